//! What the controller remembers of its volumes' blocks: both digests of
//! every block it has hashed or written, so a `vol hash` of a volume it
//! knows reads only the blocks it does not (changed-block tracking, as
//! hypervisors keep it). Only the controller writes a volume it remembers:
//! a volume of an app whose process runs is forgotten when the process
//! starts and again when it ends (its mounts are packed back into the
//! image then), and remembered only while no process runs.

use grid::dialect::HashAlgorithm;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One block: all zeros, or the digests of its bytes computed so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Known {
    #[default]
    Zero,
    Data {
        blake3: Option<String>,
        xxh3: Option<String>,
    },
}

impl Known {
    /// `Some(digest)` when known (`Some(None)`: an all-zero block).
    pub fn digest(&self, algorithm: HashAlgorithm) -> Option<Option<String>> {
        match (self, algorithm) {
            (Known::Zero, _) => Some(None),
            (Known::Data { blake3, .. }, HashAlgorithm::Blake3) => blake3.clone().map(Some),
            (Known::Data { xxh3, .. }, HashAlgorithm::Xxh3) => xxh3.clone().map(Some),
        }
    }
}

struct Entry {
    block_size: u64,
    blocks: Vec<Option<Known>>,
}

/// What is remembered, and for each file a count of its changes: a hash
/// computed while the file changed is not remembered.
#[derive(Default)]
pub struct Digests {
    volumes: std::sync::Mutex<HashMap<PathBuf, Entry>>,
    generations: std::sync::Mutex<HashMap<PathBuf, u64>>,
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
        let volumes = match self.volumes.lock() {
            Ok(v) => v,
            Err(_) => return vec![None; count],
        };
        match volumes.get(file) {
            Some(e) if e.block_size == block_size => (first..first + count)
                .map(|i| e.blocks.get(i).cloned().flatten())
                .collect(),
            _ => vec![None; count],
        }
    }

    /// How many times `file` changed so far.
    pub fn generation(&self, file: &Path) -> u64 {
        self.generations
            .lock()
            .map(|g| g.get(file).copied().unwrap_or(0))
            .unwrap_or(u64::MAX)
    }

    /// A write to `file` begins: a hash that reads meanwhile is not remembered.
    pub fn writing(&self, file: &Path) {
        self.bump(file);
    }

    fn bump(&self, file: &Path) {
        if let Ok(mut g) = self.generations.lock() {
            *g.entry(file.to_owned()).or_default() += 1;
        }
    }

    /// [`Digests::put`] of a hash that read the file, unless it changed
    /// since `generation` (the hash may have read it half written).
    pub fn put_read(
        &self,
        file: &Path,
        generation: u64,
        shape: (u64, usize),
        first: usize,
        known: Vec<Known>,
    ) {
        let Ok(g) = self.generations.lock() else {
            return;
        };
        if g.get(file).copied().unwrap_or(0) == generation {
            self.put(file, shape, first, known);
        }
    }

    /// Remembers blocks from `first` on of `file` (`blocks` in all, the
    /// volume's size in blocks); another block size replaces what was known.
    pub fn put(
        &self,
        file: &Path,
        (block_size, blocks): (u64, usize),
        first: usize,
        known: Vec<Known>,
    ) {
        let Ok(mut volumes) = self.volumes.lock() else {
            return;
        };
        let e = volumes.entry(file.to_owned()).or_insert_with(|| Entry {
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

    /// The bytes `offset..offset + length` of `file` changed: the blocks
    /// they touch are no longer known.
    pub fn changed(&self, file: &Path, offset: u64, length: u64) {
        self.bump(file);
        let Ok(mut volumes) = self.volumes.lock() else {
            return;
        };
        if let Some(e) = volumes.get_mut(file)
            && length > 0
        {
            let first = usize::try_from(offset / e.block_size).unwrap_or(usize::MAX);
            let last = usize::try_from((offset + length - 1) / e.block_size).unwrap_or(usize::MAX);
            for i in first..=last.min(e.blocks.len().saturating_sub(1)) {
                e.blocks[i] = None;
            }
        }
    }

    /// Forgets `file` entirely (something else may have written it).
    pub fn forget(&self, file: &Path) {
        self.bump(file);
        if let Ok(mut volumes) = self.volumes.lock() {
            volumes.remove(file);
        }
    }

    /// Forgets every file under `dir` (an app's directory).
    pub fn forget_under(&self, dir: &Path) {
        let files: Vec<PathBuf> = self
            .volumes
            .lock()
            .map(|v| v.keys().filter(|f| f.starts_with(dir)).cloned().collect())
            .unwrap_or_default();
        for f in files {
            self.forget(&f);
        }
    }
}
