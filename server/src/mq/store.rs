//! A node's writes, kept on its volume (`state`): an append-only file of
//! JSON lines, one a write, read back when the node starts — on whichever
//! grid its volume now is.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub key: String,
    pub value: String,
}

pub struct Store {
    file: PathBuf,
    data: BTreeMap<String, String>,
    log: Vec<Entry>,
}

impl Store {
    /// The store kept in `dir` (empty if none). A torn last line (the node
    /// killed mid-write) is left out: that write was never acknowledged.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("writes.jsonl");
        let mut s = Store {
            file,
            data: BTreeMap::new(),
            log: vec![],
        };
        if let Ok(text) = std::fs::read_to_string(&s.file) {
            for line in text.lines() {
                match serde_json::from_str::<Entry>(line) {
                    Ok(e) => s.apply(e),
                    Err(e) => {
                        tracing::warn!("{}: a torn line is left out: {e}", s.file.display());
                        break;
                    }
                }
            }
        }
        Ok(s)
    }

    fn apply(&mut self, e: Entry) {
        self.data.insert(e.key.clone(), e.value.clone());
        self.log.push(e);
    }

    /// The sequence number of the last write (0: none).
    pub fn last_seq(&self) -> u64 {
        self.log.last().map_or(0, |e| e.seq)
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.log
    }

    /// Appends a write to the file (flushed to the OS before it counts),
    /// then to the store.
    pub fn append(&mut self, e: Entry) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)?;
        let mut line = serde_json::to_vec(&e)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.flush()?;
        self.apply(e);
        Ok(())
    }

    /// Replaces everything with `entries` (a state transfer): written to a
    /// new file, then renamed over the old one.
    pub fn replace(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        let tmp = self.file.with_extension("jsonl.new");
        let mut out = Vec::new();
        for e in &entries {
            out.extend(serde_json::to_vec(e)?);
            out.push(b'\n');
        }
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &self.file)?;
        self.data.clear();
        self.log.clear();
        entries.into_iter().for_each(|e| self.apply(e));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, key: &str) -> Entry {
        Entry {
            seq,
            key: key.into(),
            value: format!("v{seq}"),
        }
    }

    #[test]
    fn writes_survive_a_restart_and_a_torn_line_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.append(entry(1, "a")).unwrap();
        s.append(entry(2, "b")).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("writes.jsonl"))
            .unwrap();
        f.write_all(br#"{"seq":3,"key":"c","va"#).unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.last_seq(), 2);
        assert_eq!(s.get("b").map(String::as_str), Some("v2"));
        assert_eq!(s.get("c"), None);
    }

    #[test]
    fn a_transfer_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.append(entry(1, "old")).unwrap();
        s.replace(vec![entry(1, "a"), entry(2, "b")]).unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.entries(), &[entry(1, "a"), entry(2, "b")]);
        assert_eq!(s.get("old"), None);
    }
}
