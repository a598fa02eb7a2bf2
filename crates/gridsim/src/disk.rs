//! An app's disks: volumes its process writes through the controller, as a
//! guest writes its disks through its hypervisor. The controller serves
//! each disk on a Unix socket (`GRIDSIM_DISK_<volume>` in the process's
//! environment) and so knows every block the process writes: the volume's
//! remembered digests stay true while the app runs, and a `vol hash` of a
//! running app reads only what changed since the last one (what warm
//! migration's passes ask for).
//!
//! The protocol, one request at a time on a connection:
//! - `S` → `K` and the volume's size (u64, big-endian);
//! - `W`, offset (u64), length (u32, at most [`MAX_WRITE`]), the bytes →
//!   `K` once they are in the volume file;
//! - a refusal is `E`, a length (u32) and a UTF-8 message; the connection ends.

use crate::digests::Digests;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::task::TaskTracker;

/// Largest single write.
pub const MAX_WRITE: u32 = 4 << 20;
/// Longest socket path the kernel takes (`sun_path`, less the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The disks of one running process.
pub struct Disks {
    tasks: TaskTracker,
    accepting: Vec<tokio::task::JoinHandle<()>>,
}

impl Disks {
    pub fn new() -> Disks {
        Disks {
            tasks: TaskTracker::new(),
            accepting: vec![],
        }
    }

    /// Serves `file` (`size` bytes) at `socket`.
    pub fn serve(
        &mut self,
        socket: &Path,
        file: PathBuf,
        size: u64,
        digests: Arc<Digests>,
    ) -> std::io::Result<()> {
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(std::io::Error::other(format!(
                "the disk socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter simulator directory",
                socket.display()
            )));
        }
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let tasks = self.tasks.clone();
        self.accepting.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (file, digests) = (file.clone(), digests.clone());
                tasks.spawn(async move {
                    if let Err(e) = serve_one(stream, &file, size, &digests).await {
                        tracing::debug!(file = %file.display(), "disk connection: {e}");
                    }
                });
            }
        }));
        Ok(())
    }

    /// The process ended: no new connections; waits until every write
    /// received in full is in its file, so a stopped app's volumes hold
    /// every write its process was told was done.
    pub async fn close(self) {
        for a in &self.accepting {
            a.abort();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Default for Disks {
    fn default() -> Self {
        Disks::new()
    }
}

async fn serve_one(
    mut stream: UnixStream,
    path: &Path,
    size: u64,
    digests: &Digests,
) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
    let mut buf = Vec::new();
    loop {
        let Ok(op) = stream.read_u8().await else {
            return Ok(());
        };
        match op {
            b'S' => {
                stream.write_u8(b'K').await?;
                stream.write_u64(size).await?;
            }
            b'W' => {
                let offset = stream.read_u64().await?;
                let length = stream.read_u32().await?;
                if length > MAX_WRITE
                    || offset
                        .checked_add(u64::from(length))
                        .is_none_or(|e| e > size)
                {
                    return refuse(
                        &mut stream,
                        &format!("write {offset}+{length} is past the end of the disk ({size} bytes) or longer than {MAX_WRITE}"),
                    )
                    .await;
                }
                buf.resize(length as usize, 0);
                stream.read_exact(&mut buf).await?;
                // Before and after: a hash that reads the blocks meanwhile
                // does not remember them.
                digests.changed(path, offset, u64::from(length));
                file.seek(std::io::SeekFrom::Start(offset)).await?;
                file.write_all(&buf).await?;
                file.flush().await?;
                digests.changed(path, offset, u64::from(length));
                stream.write_u8(b'K').await?;
            }
            other => {
                return refuse(&mut stream, &format!("unknown request {other:#04x}")).await;
            }
        }
    }
}

async fn refuse(stream: &mut UnixStream, message: &str) -> std::io::Result<()> {
    stream.write_u8(b'E').await?;
    stream
        .write_u32(u32::try_from(message.len()).unwrap_or(0))
        .await?;
    stream.write_all(message.as_bytes()).await
}

/// A process's end of one disk.
pub struct Disk {
    stream: UnixStream,
    size: u64,
}

impl Disk {
    /// Connects to the disk served at `socket` (`GRIDSIM_DISK_<volume>`).
    pub async fn connect(socket: &Path) -> std::io::Result<Disk> {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_u8(b'S').await?;
        answer(&mut stream).await?;
        let size = stream.read_u64().await?;
        Ok(Disk { stream, size })
    }

    /// The disk of `volume` named in this process's environment.
    pub async fn of(volume: &str) -> std::io::Result<Disk> {
        let var = format!("GRIDSIM_DISK_{volume}");
        let path = std::env::var_os(&var).ok_or_else(|| {
            std::io::Error::other(format!(
                "{var} is not set: the app's template does not serve {volume} as a disk"
            ))
        })?;
        Disk::connect(Path::new(&path)).await
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `bytes` at `offset`; returns once they are in the volume.
    pub async fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let length = u32::try_from(bytes.len())
            .ok()
            .filter(|l| *l <= MAX_WRITE)
            .ok_or_else(|| std::io::Error::other("a disk write is at most 4 MiB"))?;
        self.stream.write_u8(b'W').await?;
        self.stream.write_u64(offset).await?;
        self.stream.write_u32(length).await?;
        self.stream.write_all(bytes).await?;
        answer(&mut self.stream).await
    }
}

async fn answer(stream: &mut UnixStream) -> std::io::Result<()> {
    match stream.read_u8().await? {
        b'K' => Ok(()),
        b'E' => {
            let n = stream.read_u32().await?;
            let mut text = vec![0u8; n.min(64 << 10) as usize];
            stream.read_exact(&mut text).await?;
            Err(std::io::Error::other(
                String::from_utf8_lossy(&text).into_owned(),
            ))
        }
        other => Err(std::io::Error::other(format!(
            "the disk answered {other:#04x}"
        ))),
    }
}

/// Bytes of one steady write.
pub const WRITE_CHUNK: u64 = 64 << 10;

/// The writes [`write_steadily`] makes from a seed, in order: a test can
/// replay them to know what a volume holds after the first `n`.
pub struct WritePattern {
    rng: rand::rngs::StdRng,
    slots: u64,
}

impl WritePattern {
    /// For a disk of `size` bytes (at least [`WRITE_CHUNK`]).
    pub fn new(seed: u64, size: u64) -> WritePattern {
        use rand::SeedableRng;
        WritePattern {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            slots: size.saturating_sub(WRITE_CHUNK) / 4096 + 1,
        }
    }

    /// The next write: fills `chunk` ([`WRITE_CHUNK`] bytes) and returns
    /// its offset (4 KiB-aligned).
    pub fn next(&mut self, chunk: &mut [u8]) -> u64 {
        use rand::{Rng, RngCore};
        self.rng.fill_bytes(chunk);
        self.rng.random_range(0..self.slots) * 4096
    }
}

/// Writes `kib_per_sec` KiB a second at random 4 KiB-aligned offsets of
/// `disk`, in [`WRITE_CHUNK`] writes drawn from `seed`, until `stop` (a
/// write under way is finished first) or an error. `acked` counts the
/// writes the disk confirmed; `tick` is told the bytes written so far
/// about every 5 s.
pub async fn write_steadily(
    disk: &mut Disk,
    (kib_per_sec, seed): (u64, u64),
    acked: &std::sync::atomic::AtomicU64,
    stop: &tokio_util::sync::CancellationToken,
    mut tick: impl FnMut(u64),
) -> std::io::Result<()> {
    if kib_per_sec == 0 || disk.size < WRITE_CHUNK {
        return Ok(());
    }
    let mut pattern = WritePattern::new(seed, disk.size);
    let mut chunk = vec![0u8; WRITE_CHUNK as usize];
    let started = tokio::time::Instant::now();
    let mut last_tick = started;
    let mut written = 0u64;
    while !stop.is_cancelled() {
        let offset = pattern.next(&mut chunk);
        disk.write_at(offset, &chunk).await?;
        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        written += WRITE_CHUNK;
        let due = std::time::Duration::from_secs_f64(written as f64 / (kib_per_sec << 10) as f64);
        tokio::select! {
            () = tokio::time::sleep_until(started + due) => {}
            () = stop.cancelled() => {}
        }
        if last_tick.elapsed() >= std::time::Duration::from_secs(5) {
            tick(written);
            last_tick = tokio::time::Instant::now();
        }
    }
    Ok(())
}
