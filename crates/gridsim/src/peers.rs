//! The grids this grid trusts and is trusted by (the simulator's `trust/`
//! key, known_hosts and inventory): `vol pull` reads another grid's volume
//! over a connection from here. Idle connections are kept for the next
//! pull; pulls at once each get their own, so their encryption runs on
//! separate tasks.

use grid::dialect::{ErrorCode, Refusal};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{ClientConfig, Connection, Endpoint, GridName, keys};
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
