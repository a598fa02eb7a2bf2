//! What the controller remembers of its volumes' blocks: both digests of
//! every block it has hashed or written, so a `vol hash` of a volume it
//! knows reads only the blocks it does not (changed-block tracking, as
//! hypervisors keep it). Only the controller writes a volume it remembers:
//! its own writes, and the writes of an app's process to its disks (which
//! reach the file through the controller, `disk.rs`); a mounted volume is
//! forgotten when its process starts and again when its files are packed
//! back into the image.
//!
//! A hash reads while writes may land. Each file keeps a short log of its
//! recent changes: a hash that read while the file changed is remembered
//! all the same, except for the blocks those changes touched; when the log
//! no longer reaches back to the hash's start, nothing of it is.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

pub use grid::blocks::Known;

struct Entry {
    block_size: u64,
    blocks: Vec<Option<Known>>,
}

/// Changes kept per file for hashes still reading.
const CHANGE_LOG: usize = 4096;

/// One file: what is remembered, how many times it changed, and the
/// extents of its last changes (`None`: the whole file).
#[derive(Default)]
struct File {
    entry: Option<Entry>,
    generation: u64,
    recent: VecDeque<(u64, Option<(u64, u64)>)>,
}

impl File {
    /// Logs a change of `extent` (`None`: of unknown extent) for the hashes
    /// still reading, without touching what is remembered.
    fn log(&mut self, extent: Option<(u64, u64)>) {
        self.generation += 1;
        if self.recent.len() == CHANGE_LOG {
            self.recent.pop_front();
        }
        self.recent.push_back((self.generation, extent));
    }

    fn change(&mut self, extent: Option<(u64, u64)>) {
        self.log(extent);
        match (extent, self.entry.as_mut()) {
            (None, _) => self.entry = None,
            (Some((offset, length)), Some(e)) if length > 0 => {
                let first = usize::try_from(offset / e.block_size).unwrap_or(usize::MAX);
                let last =
                    usize::try_from((offset + length - 1) / e.block_size).unwrap_or(usize::MAX);
                for i in first..=last.min(e.blocks.len().saturating_sub(1)) {
                    e.blocks[i] = None;
                }
            }
            _ => {}
        }
    }

    /// The changes after `generation`, when the log still has all of them.
    fn since(&self, generation: u64) -> Option<Vec<Option<(u64, u64)>>> {
        if self.generation == generation {
            return Some(vec![]);
        }
        let oldest = self.recent.front()?.0;
        (oldest <= generation + 1).then(|| {
            self.recent
                .iter()
                .filter(|(g, _)| *g > generation)
                .map(|(_, e)| *e)
                .collect()
        })
    }
}

/// What is remembered, file by file.
#[derive(Default)]
pub struct Digests {
    files: std::sync::Mutex<HashMap<PathBuf, File>>,
}

impl Digests {
    /// The blocks `first..first + count` of `file` as remembered (`None`:
    /// not known), for `block_size` blocks; `None` when the volume is
    /// remembered with another block size or not at all.
    pub fn get(
        &self,
        file: &Path,
        block_size: u64,
        first: usize,
        count: usize,
    ) -> Vec<Option<Known>> {
        let Ok(files) = self.files.lock() else {
            return vec![None; count];
        };
        match files.get(file).and_then(|f| f.entry.as_ref()) {
            Some(e) if e.block_size == block_size => (first..first + count)
                .map(|i| e.blocks.get(i).cloned().flatten())
                .collect(),
            _ => vec![None; count],
        }
    }

    /// How many times `file` changed so far.
    pub fn generation(&self, file: &Path) -> u64 {
        self.files
            .lock()
            .map(|f| f.get(file).map_or(0, |f| f.generation))
            .unwrap_or(u64::MAX)
    }

    /// A write to `file` whose extent is not known yet begins: a hash that
    /// reads meanwhile is not remembered. What is remembered stays: the
    /// write says what it changed when it ends ([`Digests::changed`]).
    pub fn writing(&self, file: &Path) {
        self.with(file, |f| f.log(None));
    }

    fn with(&self, file: &Path, apply: impl FnOnce(&mut File)) {
        if let Ok(mut files) = self.files.lock() {
            apply(files.entry(file.to_owned()).or_default());
        }
    }

    /// [`Digests::put`] of a hash that read the file since `generation`:
    /// the blocks changed meanwhile stay unknown (the hash may have read
    /// them half written); nothing is kept when those changes are no
    /// longer all known.
    pub fn put_read(
        &self,
        file: &Path,
        generation: u64,
        shape: (u64, usize),
        first: usize,
        known: Vec<Known>,
    ) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        let f = files.entry(file.to_owned()).or_default();
        let Some(changes) = f.since(generation) else {
            return;
        };
        if changes.iter().any(Option::is_none) {
            return;
        }
        put(f, shape, first, known);
        let log = std::mem::take(&mut f.recent);
        let generation = f.generation;
        for extent in changes {
            f.change(extent);
        }
        // Re-applying the changes is not a change.
        f.recent = log;
        f.generation = generation;
    }

    /// Remembers blocks from `first` on of `file` (`blocks` in all, the
    /// volume's size in blocks); another block size replaces what was known.
    pub fn put(&self, file: &Path, shape: (u64, usize), first: usize, known: Vec<Known>) {
        self.with(file, |f| put(f, shape, first, known));
    }

    /// The bytes `offset..offset + length` of `file` changed: the blocks
    /// they touch are no longer known.
    pub fn changed(&self, file: &Path, offset: u64, length: u64) {
        self.with(file, |f| f.change(Some((offset, length))));
    }

    /// Forgets `file` entirely (something else may have written it).
    pub fn forget(&self, file: &Path) {
        self.with(file, |f| f.change(None));
    }

    /// Forgets every file under `dir` (an app's directory).
    pub fn forget_under(&self, dir: &Path) {
        if let Ok(mut files) = self.files.lock() {
            for (_, f) in files.iter_mut().filter(|(p, _)| p.starts_with(dir)) {
                f.change(None);
            }
        }
    }
}

fn put(f: &mut File, (block_size, blocks): (u64, usize), first: usize, known: Vec<Known>) {
    let e = f.entry.get_or_insert_with(|| Entry {
        block_size,
        blocks: vec![None; blocks],
    });
    if e.block_size != block_size || e.blocks.len() != blocks {
        *e = Entry {
            block_size,
            blocks: vec![None; blocks],
        };
    }
    for (i, k) in known.into_iter().enumerate() {
        if let Some(slot) = e.blocks.get_mut(first + i) {
            *slot = Some(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(tag: &str) -> Known {
        Known::Data {
            blake3: Some(tag.into()),
            xxh3: None,
        }
    }

    #[test]
    fn a_hash_that_read_while_writes_landed_keeps_all_but_the_blocks_they_touched() {
        let d = Digests::default();
        let f = Path::new("/v/data.img");
        let shape = (4096, 4);
        let g = d.generation(f);
        // A process writes block 2 while the hash reads.
        d.changed(f, 2 * 4096 + 10, 100);
        d.put_read(
            f,
            g,
            shape,
            0,
            vec![data("a"), data("b"), data("c"), data("d")],
        );
        let known = d.get(f, 4096, 0, 4);
        assert_eq!(
            known,
            vec![Some(data("a")), Some(data("b")), None, Some(data("d"))]
        );
        // A later write forgets what it touches, the rest stays.
        d.changed(f, 4096 - 1, 2);
        assert_eq!(
            d.get(f, 4096, 0, 4),
            vec![None, None, None, Some(data("d"))]
        );
        // A write of unknown extent begins under a hash: nothing of that
        // hash is kept, and what was known stays until the write says what
        // it changed.
        let g = d.generation(f);
        d.writing(f);
        d.put_read(f, g, shape, 0, vec![data("x"); 4]);
        assert_eq!(
            d.get(f, 4096, 0, 4),
            vec![None, None, None, Some(data("d"))]
        );
        d.forget(f);
        assert_eq!(d.get(f, 4096, 0, 4), vec![None; 4]);
        // More changes than the log keeps: nothing of that hash is kept.
        let g = d.generation(f);
        for _ in 0..=CHANGE_LOG {
            d.changed(f, 0, 1);
        }
        d.put_read(f, g, shape, 0, vec![data("y"); 4]);
        assert_eq!(d.get(f, 4096, 0, 4), vec![None; 4]);
    }
}
