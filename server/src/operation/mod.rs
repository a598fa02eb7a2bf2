//! The operation engine. One file a job:
//! - `start`: pre-flight, the lock, the operation's row, then the drive;
//! - `drive`: resume at start-up and the loop that observes, decides
//!   (`reconcile::decide`) and meters or settles, tracked for shutdown;
//! - `provision`: the helper app on the target grid;
//! - `meter`: the helper's reports and the apps' logs and states as events;
//! - `observe`: what the controllers say about the three apps;
//! - `settle`: carrying out reconciliation's steps, the outcome last;
//! - `intervene`: cancel and lock override;
//! - `record`: storing events and sending them to their followers (`feed`);
//! - `inspect`: the pre-flight plan and the lock's evidence (reads only);
//! - `store`: the tables.

mod app_logs;
mod drive;
mod error;
pub mod feed;
mod inspect;
mod intervene;
mod kept;
mod meter;
mod observe;
mod provision;
mod record;
mod rollback;
mod settle;
mod start;
pub mod store;
mod travel;

pub use error::{EngineError, Field};
pub use intervene::{Cancelled, Overridden};
pub use kept::KEPT_CHECK_EVERY;
pub use rollback::RollbackRequest;
pub use start::{StartRequest, form_time, stamped_id};

use crate::config::Settings;
use crate::grids::GridMonitor;
use crate::lock::{LockFile, LockState};
use grid::{AppName, Connection, GridError, GridName};
use sqlx::SqlitePool;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const HELPER_TEMPLATE: &str = "MigHelper";

pub struct Engine {
    settings: Arc<Settings>,
    pool: SqlitePool,
    grids: Arc<GridMonitor>,
    lock: LockFile,
    /// Each operation's live events for its followers (SSE streams).
    feeds: feed::Feeds,
    /// Operations this console is driving right now.
    driving: Mutex<HashSet<String>>,
    /// Held while an operation is being settled (reconciliation's steps, a
    /// cancel, an override), so two of them never act on the grids at once;
    /// whoever comes second sees the first one's outcome and stands back.
    settling: tokio::sync::Mutex<()>,
    /// Held while a kept source is checked and released, so an operator's
    /// release and the deadline never both act on one.
    releasing: tokio::sync::Mutex<()>,
    /// The drive tasks, so shutdown stops and awaits them.
    tasks: TaskTracker,
    /// Cancelled at shutdown, first: drive tasks stop where they are (the
    /// lock and the helper stay; the next start resumes).
    drives: CancellationToken,
    /// Cancelled at shutdown, last: event streams send what is stored (the
    /// console's last words included) and end.
    shutdown: CancellationToken,
    /// The snapshot operation whose copy this console runs in, if any.
    copy_origin: Mutex<Option<String>>,
    /// Each operation's phase and since when (the phase-duration metric).
    phase_clock: Mutex<std::collections::HashMap<String, (app::model::Phase, std::time::Instant)>>,
}

/// Marks an operation as driven for as long as it lives.
struct Driving<'a>(&'a Engine, String);

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.driving.lock() {
            set.remove(&self.1);
        }
    }
}

pub(crate) fn helper_name(target: &AppName) -> Result<AppName, EngineError> {
    let name = operation_model::name::helper_of(target.as_str());
    AppName::new(name.clone()).map_err(|_| {
        EngineError::field(
            Field::TargetApp,
            format!(
                "target app name {target} is too long: its helper {name} must fit in 64 characters"
            ),
        )
    })
}

/// The app whose existence on the target grid asks a warm operation's
/// helper to cut over now: `MigCutNow_<target>` (as long as the helper's name).
pub(crate) fn cutover_signal_name(target: &AppName) -> Result<AppName, EngineError> {
    helper_name(target)?;
    AppName::new(operation_model::name::cutover_signal_of(target.as_str()))
        .map_err(|e| EngineError::Unexpected(e.into()))
}

pub(crate) fn not_found(e: &GridError) -> bool {
    e.is_not_found()
}

/// Destroys an app; one already gone counts as destroyed, so steps stay idempotent.
async fn destroy(conn: &Connection, app: &AppName) -> Result<(), GridError> {
    match conn.app_destroy(app).await {
        Err(e) if !not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Stops the helper of `target`'s operation (best effort: it may already
/// have stopped) and destroys it, with its "cut over now" signal.
async fn remove_helper(
    conn: &Connection,
    target: &AppName,
    stop_timeout_secs: u64,
) -> Result<(), EngineError> {
    let helper = helper_name(target)?;
    let _ = conn.app_stop(&helper, Some(stop_timeout_secs)).await;
    destroy(conn, &helper).await?;
    destroy(conn, &cutover_signal_name(target)?).await?;
    Ok(())
}

impl Engine {
    pub fn new(settings: Arc<Settings>, pool: SqlitePool, grids: Arc<GridMonitor>) -> Arc<Engine> {
        let lock = LockFile::new(&settings.config_dir);
        Arc::new(Engine {
            settings,
            pool,
            grids,
            lock,
            feeds: feed::Feeds::default(),
            driving: Default::default(),
            settling: tokio::sync::Mutex::new(()),
            releasing: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
            drives: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            copy_origin: Mutex::default(),
            phase_clock: Mutex::default(),
        })
    }

    /// True while this console works on `op` (provisions, meters or settles it).
    pub fn is_driving(&self, op: &str) -> bool {
        self.driving.lock().is_ok_and(|set| set.contains(op))
    }

    /// The snapshot operation that made the copy this console runs in
    /// (MIG's "manually started snapshot copy"), once reconciliation found it.
    pub fn snapshot_copy_of(&self) -> Option<String> {
        self.copy_origin.lock().ok().and_then(|o| o.clone())
    }

    fn note_copy_origin(&self, op: &str) {
        if let Ok(mut o) = self.copy_origin.lock() {
            *o = Some(op.to_owned());
        }
    }

    pub fn lock_state(&self) -> LockState {
        self.lock.read()
    }

    /// Cancelled when the console is shutting down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every drive task where it is and waits for them. Operations
    /// keep their lock; the next start resumes them.
    pub async fn stop(&self) {
        if self.shutdown.is_cancelled() {
            return;
        }
        self.drives.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // Nothing else is recorded now: this is the console's last event.
        self.record_departure().await;
        self.shutdown.cancel();
    }

    /// A console inside an operation's app stops because its app stops (the
    /// helper stopping the source): the operation's log says so, so the gap
    /// until it wakes up is explained.
    async fn record_departure(&self) {
        let LockState::Held(lock) = self.lock.read() else {
            return;
        };
        if self.place(&lock) == crate::reconcile::Place::Outside {
            return;
        }
        let (grid, app) = match self.place(&lock) {
            crate::reconcile::Place::InTarget => (&lock.target_grid, &lock.target_app_name),
            _ => (&lock.source_grid, &lock.source_app_name),
        };
        // A migrated app wakes up on the target; a snapshot's source where it was.
        let wakes_on = match lock.action {
            app::model::Action::Migrate | app::model::Action::Rollback => &lock.target_grid,
            app::model::Action::Snapshot => &lock.source_grid,
        };
        let text = format!(
            "console stopping with its app {app} on {grid}: the helper carries on, and the console takes the operation up again on {wakes_on}"
        );
        self.departure(&lock.op_id, text, wakes_on).await;
    }

    async fn connection(&self, grid: &GridName) -> Result<Arc<Connection>, EngineError> {
        let grids = self.grids.client().map_err(|e| {
            EngineError::Unavailable(format!("the console cannot reach grids: {e}"))
        })?;
        match grids.connection(grid).await {
            None => Err(EngineError::UnknownGrid(grid.clone())),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(c)) => Ok(c),
        }
    }
}
