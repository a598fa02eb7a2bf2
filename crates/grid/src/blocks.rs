//! The one definition of a block's digest, shared by every controller (gridsim's
//! and the libvirt host's): BLAKE3 and/or XXH3-128 of each block of a volume,
//! or "zero" for a block of zeros (counted, never hashed; holes of a sparse
//! file are skipped without reading them), and the whole-volume checksum
//! `vol checksum` gives. A hashed `vol write` and a `vol hash` of the same
//! bytes give the same digests because both go through [`BlockHasher`].

use crate::dialect::HashAlgorithm;
use std::io::SeekFrom;

const IO_BUFFER: usize = 1 << 20;

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

/// Zeros to compare with (a `memcmp`, much faster than testing each byte).
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

fn all_zero(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let n = bytes.len().min(ZEROS.len());
        if bytes[..n] != ZEROS[..n] {
            return false;
        }
        bytes = &bytes[n..];
    }
    true
}

/// Which digests a [`BlockHasher`] computes.
#[derive(Clone, Copy, Debug)]
pub struct Which {
    pub blake3: bool,
    pub xxh3: bool,
}

impl Which {
    pub const BOTH: Which = Which {
        blake3: true,
        xxh3: true,
    };

    pub fn only(algorithm: HashAlgorithm) -> Which {
        Which {
            blake3: algorithm == HashAlgorithm::Blake3,
            xxh3: algorithm == HashAlgorithm::Xxh3,
        }
    }
}

/// The digests of consecutive blocks of a byte stream, as `vol hash`
/// gives them: BLAKE3 and/or XXH3-128 hex per block, or all zeros. Zeros
/// at the start of a block are only counted: a block that stays zero is
/// never hashed.
pub struct BlockHasher {
    block_size: u64,
    filled: u64,
    /// The block's first `filled` bytes are zeros not yet fed to the hashers.
    zero: bool,
    blake3: Option<Box<blake3::Hasher>>,
    xxh3: Option<Box<xxhash_rust::xxh3::Xxh3>>,
    out: Vec<Known>,
}

impl BlockHasher {
    pub fn new(block_size: u64, which: Which) -> BlockHasher {
        BlockHasher {
            block_size,
            filled: 0,
            zero: true,
            blake3: which.blake3.then(Box::default),
            xxh3: which.xxh3.then(Box::default),
            out: vec![],
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if let Some(h) = self.blake3.as_mut() {
            h.update(bytes);
        }
        if let Some(h) = self.xxh3.as_mut() {
            h.update(bytes);
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = usize::try_from(self.block_size - self.filled).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            if self.zero && !all_zero(now) {
                self.zero = false;
                self.zeros(self.filled);
            }
            if !self.zero {
                self.feed(now);
            }
            self.filled += now.len() as u64;
            bytes = rest;
            if self.filled == self.block_size {
                self.close();
            }
        }
    }

    /// Feeds `n` zero bytes to the hashers (the zeros a block began with).
    fn zeros(&mut self, mut n: u64) {
        while n > 0 {
            let k = usize::try_from(n.min(ZEROS.len() as u64)).unwrap_or(ZEROS.len());
            self.feed(&ZEROS[..k]);
            n -= k as u64;
        }
    }

    /// `n` bytes known to be zero (a hole of a sparse file) without reading them.
    pub fn skip_zeros(&mut self, mut n: u64) {
        while n > 0 {
            let room = self.block_size - self.filled;
            let now = room.min(n);
            if !self.zero {
                self.zeros(now);
            }
            self.filled += now;
            n -= now;
            if self.filled == self.block_size {
                self.close();
            }
        }
    }

    fn close(&mut self) {
        let known = if self.zero {
            Known::Zero
        } else {
            Known::Data {
                blake3: self.blake3.as_mut().map(|h| {
                    let hex = h.finalize().to_hex().to_string();
                    h.reset();
                    hex
                }),
                xxh3: self.xxh3.as_mut().map(|h| {
                    let hex = format!("{:032x}", h.digest128());
                    h.reset();
                    hex
                }),
            }
        };
        self.out.push(known);
        self.filled = 0;
        self.zero = true;
    }

    pub fn finish(mut self) -> Vec<Known> {
        if self.filled > 0 {
            self.close();
        }
        self.out
    }
}

/// One algorithm's digests of `known` blocks (`None`: all zero, or not computed).
pub fn digests_of(known: &[Known], algorithm: HashAlgorithm) -> Vec<Option<String>> {
    known
        .iter()
        .map(|k| k.digest(algorithm).flatten())
        .collect()
}

/// The digests of each block of `length` bytes from `offset`.
pub fn hash_blocks(
    path: &std::path::Path,
    block_size: u64,
    offset: u64,
    length: u64,
    which: Which,
) -> std::io::Result<Vec<Known>> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(path)?;
    // The same digests a hashed `vol write` gives: one definition of a block's digest.
    let mut hasher = BlockHasher::new(block_size, which);
    let mut buf = vec![0u8; IO_BUFFER];
    let (mut at, end) = (offset, offset + length);
    while at < end {
        // Holes of the sparse file are zeros: skipped, not read.
        let data = next_data(&f, at).min(end);
        if data > at {
            hasher.skip_zeros(data - at);
            at = data;
            continue;
        }
        f.seek(SeekFrom::Start(at))?;
        let want = usize::try_from((end - at).min(IO_BUFFER as u64)).unwrap_or(IO_BUFFER);
        let n = match f.read(&mut buf[..want])? {
            // A volume file shorter than its size reads as zeros past its end.
            0 => {
                hasher.skip_zeros(end - at);
                break;
            }
            n => n,
        };
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finish())
}

/// Where the next data at or after `at` begins (`SEEK_DATA`): the bytes
/// before it are a hole. Past the last data, or where the file system
/// cannot tell, `u64::MAX` or `at` (read it all).
pub fn next_data(f: &std::fs::File, at: u64) -> u64 {
    match rustix::fs::seek(f, rustix::fs::SeekFrom::Data(at)) {
        Ok(data) => data,
        Err(rustix::io::Errno::NXIO) => u64::MAX,
        Err(_) => at,
    }
}

/// BLAKE3 of the volume's `size` bytes (a shorter file counts as padded with zeros).
pub fn checksum(path: &std::path::Path, size: u64) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut reader = std::io::BufReader::with_capacity(IO_BUFFER, f.take(size));
    let copied = std::io::copy(&mut reader, &mut hasher)?;
    // Pad a short file with the zeros it stands for.
    let zeros = vec![0u8; 64 * 1024];
    let mut left = size - copied;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        hasher.update(&zeros[..n]);
        left -= n as u64;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The digests whatever way the bytes come: in odd pieces, with zeros
    /// at a block's start counted rather than hashed, or as a hole skipped.
    #[test]
    fn block_digests_do_not_depend_on_how_the_bytes_arrive() {
        let block = 8192usize;
        let mut bytes = vec![0u8; block * 4 + 100];
        bytes[block + 5000] = 7; // block 1: zeros, then data
        bytes[block * 3..block * 3 + 10].fill(9); // block 3: data first
        bytes[block * 4 + 99] = 1; // the short last block
        for algorithm in [HashAlgorithm::Blake3, HashAlgorithm::Xxh3] {
            let want: Vec<Option<String>> = bytes
                .chunks(block)
                .map(|b| {
                    (!b.iter().all(|x| *x == 0)).then(|| match algorithm {
                        HashAlgorithm::Blake3 => blake3::hash(b).to_hex().to_string(),
                        HashAlgorithm::Xxh3 => format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b)),
                    })
                })
                .collect();
            assert_eq!(want[0], None);
            assert_eq!(want[2], None);
            for piece in [1usize, 777, 4096, 100_000] {
                let mut h = BlockHasher::new(block as u64, Which::only(algorithm));
                for p in bytes.chunks(piece) {
                    h.update(p);
                }
                assert_eq!(
                    digests_of(&h.finish(), algorithm),
                    want,
                    "{algorithm} in pieces of {piece}"
                );
            }
            // Block 0, 2 and the zeros of block 1 arrive as holes.
            let mut h = BlockHasher::new(block as u64, Which::only(algorithm));
            h.skip_zeros(block as u64 + 5000);
            h.update(&bytes[block + 5000..block * 2]);
            h.skip_zeros(block as u64);
            h.update(&bytes[block * 3..]);
            assert_eq!(
                digests_of(&h.finish(), algorithm),
                want,
                "{algorithm} with holes"
            );
        }
    }

    #[test]
    fn a_sparse_file_hashes_as_its_bytes_holes_included() {
        use std::io::{Seek, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vol");
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(40 << 20)).unwrap();
        f.write_all(&[5u8; 3 << 20]).unwrap();
        drop(f);
        let mut whole = vec![0u8; 64 << 20];
        whole[40 << 20..43 << 20].fill(5);
        let hashes = digests_of(
            &hash_blocks(&path, 4 << 20, 0, 64 << 20, Which::BOTH).unwrap(),
            HashAlgorithm::Blake3,
        );
        let want: Vec<Option<String>> = whole
            .chunks(4 << 20)
            .map(|b| (!b.iter().all(|x| *x == 0)).then(|| blake3::hash(b).to_hex().to_string()))
            .collect();
        assert_eq!(hashes, want);
        // A range that starts inside a hole and ends inside the data.
        let part = digests_of(
            &hash_blocks(&path, 4 << 20, 36 << 20, 6 << 20, Which::BOTH).unwrap(),
            HashAlgorithm::Blake3,
        );
        assert_eq!(part[0], None);
        assert_eq!(
            part[1].as_deref(),
            Some(blake3::hash(&whole[40 << 20..42 << 20]).to_hex().as_str())
        );
    }
}
