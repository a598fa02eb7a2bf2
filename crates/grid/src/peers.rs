//! The grids a controller trusts (a trust directory: `id_ed25519`, 0600,
//! `known_hosts` pinning their host keys, `grids.toml` naming them) and the
//! one `vol pull` over them: the target's controller reads the source's
//! volume itself, one encrypted hop, and writes what arrives as its own
//! `vol write` would — gridsim's and virtgrid's alike. Idle connections are
//! kept for the next pull; pulls at once each get their own, so their
//! encryption runs on separate tasks.

use crate::dialect::{ErrorCode, PullReceipt, Refusal};
use crate::inventory::Inventory;
use crate::known_hosts::KnownHosts;
use crate::serve::{Platform, Pull};
use crate::volume_file::IO_BUFFER;
use crate::{ClientConfig, Connection, Endpoint, GridName, keys};
use std::collections::HashMap;
use std::path::PathBuf;

/// Idle connections kept per grid.
const KEEP: usize = 16;

pub struct Peers {
    trust_dir: PathBuf,
    idle: std::sync::Mutex<HashMap<GridName, Vec<Connection>>>,
}

impl Peers {
    pub fn new(trust_dir: PathBuf) -> Peers {
        Peers {
            trust_dir,
            idle: std::sync::Mutex::default(),
        }
    }

    /// Reads the trust directory's key once, so that a controller with an
    /// unusable key (missing, open to others, encrypted) says so when it
    /// starts. `known_hosts` and `grids.toml` are read at each new
    /// connection: grids are added to them without a restart.
    pub fn check(&self) -> Result<(), String> {
        keys::load(&self.trust_dir.join("id_ed25519"))
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "the trust directory {} (for vol pull) is not usable: {e}",
                    self.trust_dir.display()
                )
            })
    }

    /// A connection to `grid`: an idle one, or a new one.
    pub async fn take(&self, grid: &GridName) -> Result<Connection, Refusal> {
        if let Ok(mut idle) = self.idle.lock()
            && let Some(list) = idle.get_mut(grid)
        {
            while let Some(c) = list.pop() {
                if !c.is_closed() {
                    return Ok(c);
                }
            }
        }
        let denied = |what: String| Refusal::new(ErrorCode::Denied, what);
        let inventory = Inventory::load(&self.trust_dir.join("grids.toml"))
            .map_err(|e| denied(format!("this grid's trust inventory cannot be read: {e}")))?;
        let entry = inventory.get(grid).ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotFound,
                format!("grid {grid} is not among the grids this grid trusts"),
            )
        })?;
        let config = ClientConfig::new(
            keys::load(&self.trust_dir.join("id_ed25519"))
                .map_err(|e| denied(format!("this grid's trust key cannot be read: {e}")))?,
            KnownHosts::load(&self.trust_dir.join("known_hosts"))
                .map_err(|e| denied(format!("this grid's known_hosts cannot be read: {e}")))?,
        );
        Connection::open(&Endpoint::from(entry), &config)
            .await
            .map_err(|e| denied(format!("cannot reach grid {grid}: {e}")))
    }

    /// Keeps a connection that is still open for the next pull.
    pub fn give_back(&self, grid: &GridName, c: Connection) {
        if c.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(grid.clone()).or_default();
            if list.len() < KEEP {
                list.push(c);
            }
        }
    }
}

/// Reads `p.from` on `p.from_grid` through `peers` and writes it into
/// `p.vol` with `platform`'s own `vol write` (its rules and refusals apply).
/// A refused write is the answer even when the read then broke off; a
/// source that sent fewer bytes than asked for is an error, never a short
/// volume.
pub async fn pull(
    platform: &dyn Platform,
    peers: &Peers,
    p: Pull<'_>,
) -> Result<PullReceipt, Refusal> {
    let peer = peers.take(p.from_grid).await?;
    let (mut sending, mut receiving) = tokio::io::duplex(IO_BUFFER);
    let read = async {
        let n = peer
            .vol_read_as(p.from, p.offset, Some(p.length), p.compress, &mut sending)
            .await;
        drop(sending);
        n
    };
    let write = platform.vol_write(p.vol, p.offset, p.hash_blocks, p.compress, &mut receiving);
    let (read, written) = tokio::join!(read, write);
    let (written, hashes) = written?;
    let (from_grid, from) = (p.from_grid, p.from);
    let wire_bytes = read.map_err(|e| match e.refusal() {
        Some(r) => Refusal::new(r.code, format!("grid {from_grid}: {}", r.message)),
        None => Refusal::new(
            ErrorCode::Internal,
            format!("reading {from} from grid {from_grid}: {e}"),
        ),
    })?;
    peers.give_back(from_grid, peer);
    if written != p.length {
        return Err(Refusal::new(
            ErrorCode::Internal,
            format!(
                "grid {from_grid} sent {written} bytes of {from} where {} were asked for",
                p.length
            ),
        ));
    }
    Ok(PullReceipt {
        written,
        wire_bytes,
        offset: p.offset,
        block_size: p.hash_blocks,
        hashes: hashes.unwrap_or_default(),
    })
}
