//! An app's log on a libvirt host: the controller's own lines (state
//! changes, how a stop ended) and every line of the domain's serial
//! console, numbered in one sequence and kept in the app's directory
//! (`log.jsonl`, one [`LogLine`] a line). The console file QEMU writes is
//! read from where the last reading ended (`console.read` holds the offset),
//! so a line is numbered once, also across the daemon's restarts.

use grid::dialect::LogLine;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The longest console line kept whole; longer ones are cut there.
const MAX_LINE: usize = 4096;

pub struct AppLog {
    dir: PathBuf,
    next_seq: u64,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl AppLog {
    /// The log of the app whose directory is `dir` (which must exist: a
    /// log never brings back the directory of an app being destroyed).
    pub fn open(dir: &Path) -> std::io::Result<AppLog> {
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is no app directory", dir.display()),
            ));
        }
        let mut log = AppLog {
            dir: dir.to_owned(),
            next_seq: 1,
        };
        log.next_seq = log.read(0)?.last().map_or(1, |l| l.seq + 1);
        Ok(log)
    }

    fn file(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }

    pub fn append(&mut self, text: impl Into<String>) -> std::io::Result<()> {
        self.append_all(vec![text.into()])
    }

    /// Appends lines in one write (numbered only once it is on disk).
    fn append_all(&mut self, texts: Vec<String>) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if texts.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut bytes = vec![];
        for (i, text) in texts.into_iter().enumerate() {
            let line = LogLine {
                seq: self.next_seq + i as u64,
                at: at.clone(),
                text,
            };
            bytes.extend(serde_json::to_vec(&line)?);
            bytes.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.file())?;
        let n = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        f.write_all(&bytes)?;
        f.sync_data()?;
        self.next_seq += n;
        Ok(())
    }

    /// Lines after sequence number `after`.
    pub fn read(&self, after: u64) -> std::io::Result<Vec<LogLine>> {
        let f = match std::fs::File::open(self.file()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let mut out = vec![];
        for l in std::io::BufReader::new(f).lines() {
            // A line cut by a crash mid-append is not a line.
            if let Ok(line) = serde_json::from_str::<LogLine>(&l?)
                && line.seq > after
            {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// Appends the console's complete lines written since the last reading.
    pub fn ingest(&mut self, console: &Path) -> std::io::Result<()> {
        let mark = self.dir.join("console.read");
        let mut from: u64 = std::fs::read_to_string(&mark)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut f = match std::fs::File::open(console) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < from {
            // The console file was replaced: read it from its start.
            from = 0;
        }
        if len == from {
            return Ok(());
        }
        f.seek(std::io::SeekFrom::Start(from))?;
        let mut bytes = vec![];
        f.take(len - from).read_to_end(&mut bytes)?;
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            if bytes.len() < MAX_LINE {
                return Ok(()); // a line still being written
            }
            return self.take(&bytes, from + bytes.len() as u64, &mark);
        };
        self.take(&bytes[..=end], from + end as u64 + 1, &mark)
    }

    fn take(&mut self, bytes: &[u8], upto: u64, mark: &Path) -> std::io::Result<()> {
        let texts: Vec<String> = bytes
            .split(|b| *b == b'\n')
            .map(|line| printable(&String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)])))
            .filter(|t| !t.is_empty())
            .collect();
        self.append_all(texts)?;
        // The mark replaced whole: a crash leaves the old one or the new one.
        let tmp = mark.with_extension("new");
        std::fs::write(&tmp, upto.to_string())?;
        std::fs::rename(&tmp, mark)
    }
}

/// A console line as text: terminal escape sequences (the firmware clears
/// the screen before the guest's first line) and control characters dropped.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~; other escapes: one more char.
            if chars.next_if_eq(&'[').is_some() {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn console_lines_are_numbered_once_even_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let console = dir.path().join("console.log");
        let mut log = AppLog::open(dir.path()).unwrap();
        log.append("app vm1 is running").unwrap();
        std::fs::write(
            &console,
            "\u{1b}[2J\u{1b}[01;01Hresumed at counter: 0\r\ncounter: 1\ncoun",
        )
        .unwrap();
        log.ingest(&console).unwrap();
        drop(log);
        let mut log = AppLog::open(dir.path()).unwrap();
        log.ingest(&console).unwrap();
        std::fs::write(
            &console,
            "\u{1b}[2J\u{1b}[01;01Hresumed at counter: 0\r\ncounter: 1\ncounter: 2\n",
        )
        .unwrap();
        log.ingest(&console).unwrap();
        let lines = log.read(0).unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "app vm1 is running",
                "resumed at counter: 0",
                "counter: 1",
                "counter: 2"
            ]
        );
        assert_eq!(
            lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(log.read(3).unwrap().len(), 1);
    }
}
