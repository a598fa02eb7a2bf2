//! A volume kept as a file (gridsim's sparse files, a libvirt host's raw disk
//! images): reading a range of it, and writing a stream into it with the
//! digests of the blocks as written. Every controller reads and writes its
//! files through these, so a hashed write means the same everywhere.

use crate::blocks::{BlockHasher, Known, Which};
use crate::dialect::{Compression, ErrorCode, Refusal, VolRef};
use crate::serve::{Stdin, Stdout, write};
use std::io::SeekFrom;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

pub const IO_BUFFER: usize = 1 << 20;

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(ErrorCode::Internal, e.to_string())
}

/// Writes `length` bytes of `path` from `offset` to `out`. A file shorter
/// than the volume reads as zeros past its end.
pub async fn read(path: &Path, offset: u64, length: u64, out: Stdout<'_>) -> Result<(), Refusal> {
    let mut f = tokio::fs::File::open(path).await.map_err(internal)?;
    f.seek(SeekFrom::Start(offset)).await.map_err(internal)?;
    let mut left = length;
    let mut buf = vec![0u8; IO_BUFFER];
    while left > 0 {
        let want = usize::try_from(left.min(IO_BUFFER as u64)).unwrap_or(IO_BUFFER);
        let n = f.read(&mut buf[..want]).await.map_err(internal)?;
        if n == 0 {
            buf[..want].fill(0);
            write(out, &buf[..want]).await?;
            left -= want as u64;
            continue;
        }
        write(out, &buf[..n]).await?;
        left -= n as u64;
    }
    out.flush().await.map_err(internal)
}

/// What a write is: where, into a volume of what size, and whether its
/// blocks are hashed as written.
pub struct Write<'a> {
    pub vol: &'a VolRef,
    pub offset: u64,
    pub size: u64,
    pub hash_blocks: Option<u64>,
    pub compress: Compression,
    /// Flip the first byte written (gridsim's `corrupt_writes` fault).
    pub corrupt_first: bool,
}

/// Writes `stdin` (zstd-compressed with [`Compression::Zstd`]) into `path`
/// at `w.offset`, synced before it returns: the bytes written and, with
/// `hash_blocks`, both digests of each block as written. Data that runs past
/// the volume's end is refused, saying how much was written.
pub async fn write_stream(
    path: &Path,
    w: &Write<'_>,
    stdin: Stdin<'_>,
) -> Result<(u64, Option<Vec<Known>>), Refusal> {
    match w.compress {
        Compression::None => write_plain(path, w, stdin).await,
        Compression::Zstd => {
            let mut z = async_compression::tokio::bufread::ZstdDecoder::new(
                tokio::io::BufReader::with_capacity(IO_BUFFER, stdin),
            );
            write_plain(path, w, &mut z).await
        }
    }
}

async fn write_plain(
    path: &Path,
    w: &Write<'_>,
    stdin: Stdin<'_>,
) -> Result<(u64, Option<Vec<Known>>), Refusal> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await
        .map_err(internal)?;
    f.seek(SeekFrom::Start(w.offset)).await.map_err(internal)?;
    let mut buf = vec![0u8; IO_BUFFER];
    let mut written = 0u64;
    let mut hasher = w.hash_blocks.map(|b| BlockHasher::new(b, Which::BOTH));
    loop {
        let n = stdin.read(&mut buf).await.map_err(internal)?;
        if n == 0 {
            break;
        }
        if w.offset + written + n as u64 > w.size {
            return Err(Refusal::bad_request(format!(
                "the data runs past the end of {} ({} bytes); {written} bytes were written",
                w.vol, w.size
            )));
        }
        if written == 0 && w.corrupt_first {
            buf[0] ^= 0xFF;
        }
        f.write_all(&buf[..n]).await.map_err(internal)?;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        written += n as u64;
    }
    f.sync_data().await.map_err(internal)?;
    Ok((written, hasher.map(BlockHasher::finish)))
}
