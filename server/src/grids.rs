//! The grids of the inventory as the console sees them: a background task
//! checks every controller (reachability, latency of `grid info`, dialect,
//! free storage, apps) and keeps the answers; pages read the cache and never
//! wait on SSH. The SSH connections (one per grid) are shared with whatever
//! else needs the grids.

use crate::config::Settings;
use app::model::{AppView, GridView, VolumeView};
use grid::inventory::{GridEntry, Inventory};
use grid::known_hosts::KnownHosts;
use grid::{ClientConfig, Connection, Endpoint, GridError, GridName, Grids, keys};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// A check that has not finished by then is ended (its command with it) and
/// the grid shown as not answering: a hanging controller is never shown
/// reachable for long, and never holds up the other grids' checks.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(15);

pub struct GridMonitor {
    inventory: Inventory,
    /// `Err` when the console cannot talk to any grid (e.g. its key is unusable).
    client: Result<Grids, String>,
    cache: RwLock<Vec<GridView>>,
}

/// A problem with the grid configuration that should stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum GridSetupError {
    #[error(transparent)]
    Inventory(#[from] grid::inventory::InventoryError),
    #[error(
        "{0}\n  fix: correct or delete the line; `ssh-keyscan -p PORT HOST` shows a controller's key"
    )]
    KnownHosts(#[from] grid::known_hosts::KnownHostsError),
}

impl GridMonitor {
    pub fn load(settings: &Settings) -> Result<GridMonitor, GridSetupError> {
        let inventory = if settings.grids_file.exists() {
            Inventory::load(&settings.grids_file)?
        } else {
            tracing::warn!(file = %settings.grids_file.display(), "no grid inventory: the console lists no grids");
            Inventory::default()
        };
        let known_hosts = KnownHosts::load(&settings.known_hosts_file)?;
        let client = match keys::load(&settings.private_key_file) {
            Ok(key) => Ok(Grids::new(
                ClientConfig {
                    command_timeout: Duration::from_secs(settings.grid_timeout_secs),
                    ..ClientConfig::new(key, known_hosts)
                },
                inventory.grids.iter().map(Endpoint::from),
            )),
            Err(e) if inventory.grids.is_empty() => Err(e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "the console cannot reach any grid");
                Err(e.to_string())
            }
        };
        let cache = inventory.grids.iter().map(unchecked).collect();
        Ok(GridMonitor {
            inventory,
            client,
            cache: RwLock::new(cache),
        })
    }

    pub fn snapshot(&self) -> Vec<GridView> {
        self.cache.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// The shared connections, for operations.
    pub fn client(&self) -> Result<&Grids, &str> {
        self.client.as_ref().map_err(String::as_str)
    }

    /// Checks these grids now, concurrently, and replaces their cache
    /// entries: what an operation does before it publishes its outcome,
    /// so the grid pages agree with it. Each grid's entry is replaced as
    /// soon as its own check ends.
    pub async fn refresh_only(&self, grids: &[&GridName]) {
        let checks = self
            .inventory
            .grids
            .iter()
            .filter(|g| grids.contains(&&g.name))
            .map(|g| self.check_and_store(g));
        futures_util::future::join_all(checks).await;
    }

    /// Checks one grid within [`CHECK_DEADLINE`] and stores what it found.
    async fn check_and_store(&self, g: &GridEntry) {
        let view = match tokio::time::timeout(CHECK_DEADLINE, self.check(g)).await {
            Ok(view) => view,
            Err(_) => {
                let mut view = unchecked(g);
                view.error = Some(format!(
                    "no answer within {} s: the controller hangs or the link to it is cut",
                    CHECK_DEADLINE.as_secs()
                ));
                view.checked_at = Some(crate::clock::now().to_string());
                view
            }
        };
        if let Ok(mut cache) = self.cache.write() {
            match cache.iter_mut().find(|c| c.name == view.name) {
                Some(slot) => *slot = view,
                None => cache.push(view),
            }
        }
    }

    async fn check(&self, g: &GridEntry) -> GridView {
        let mut view = unchecked(g);
        let outcome = match &self.client {
            Ok(grids) => match grids.connection(&g.name).await {
                Some(Ok(conn)) => probe(&conn, &mut view).await,
                Some(Err(e)) => Err(e),
                None => Ok(()),
            },
            Err(e) => {
                view.error = Some(e.clone());
                Ok(())
            }
        };
        if let Err(e) = outcome {
            view.reachable = false;
            view.error = Some(e.to_string());
        }
        view.checked_at = Some(crate::clock::now().to_string());
        view
    }

    /// Checks each grid now and then every `every`, each on its own (a
    /// grid that hangs delays nobody else's check), until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let each = self.inventory.grids.iter().map(|g| {
            let this = &self;
            async move {
                loop {
                    this.check_and_store(g).await;
                    tokio::time::sleep(every).await;
                }
            }
        });
        tokio::select! {
            _ = futures_util::future::join_all(each) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// A grid as known before any check.
fn unchecked(g: &GridEntry) -> GridView {
    GridView {
        name: g.name.to_string(),
        address: g.address.clone(),
        description: g.description.clone(),
        reachable: false,
        checked_at: None,
        latency_ms: None,
        dialect: None,
        free_bytes: None,
        total_bytes: None,
        error: None,
        apps: vec![],
    }
}

async fn probe(conn: &Connection, view: &mut GridView) -> Result<(), GridError> {
    let started = Instant::now();
    let info = conn.grid_info().await?;
    view.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    view.reachable = true;
    view.dialect = Some(info.dialect);
    view.free_bytes = Some(info.free_bytes);
    view.total_bytes = Some(info.total_bytes);
    for summary in conn.app_list().await? {
        let info = conn.app_info(&summary.name).await?;
        view.apps.push(AppView {
            name: info.name.to_string(),
            state: info.state.to_string(),
            template: info.template.map(|t| t.to_string()),
            volumes: info
                .volumes
                .into_iter()
                .map(|v| VolumeView {
                    name: v.name.to_string(),
                    size: v.size,
                })
                .collect(),
        });
    }
    Ok(())
}
