//! The operation engine: pre-flight, the lock, the helper on the target grid,
//! metering (helper log, app states), and the finish through reconciliation.
//! Every phase change, log line and progress sample is an event in SQLite.

mod inspect;
pub mod store;

use crate::config::Settings;
use crate::grids::GridMonitor;
use crate::lock::{ConsoleId, LOCK_VERSION, Lock, LockError, LockFile, LockState};
use crate::reconcile::{self, Checksums, Observed, Outcome, Seen, Step};
use app::model::{Action, OperationView};
use grid::dialect::{AppState, ErrorCode, Property, VolRef};
use grid::{AppName, Connection, GridError, GridName, TemplateName};
use serde::Deserialize;
use serde_json::json;
use sqlx::SqlitePool;
use std::sync::Arc;
use std::time::Duration;

pub const HELPER_TEMPLATE: &str = "MigHelper";
/// How long a restarted console waits for a helper whose provisioning was
/// under way when the previous console stopped.
pub const PROVISION_GRACE: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Deserialize)]
pub struct StartRequest {
    pub source_grid: String,
    pub source_app: String,
    pub target_grid: String,
    pub target_app: String,
    pub action: Action,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for EngineError {
    fn from(e: sqlx::Error) -> Self {
        EngineError::Unexpected(e.into())
    }
}

/// What pre-flight established about a request.
struct Preflight {
    source_grid: GridName,
    source_app: AppName,
    target_grid: GridName,
    target_app: AppName,
    helper: AppName,
    source: grid::dialect::AppInfo,
    target_free_bytes: u64,
    /// A `MigHelper_<target>` left by an aborted run, destroyed before provisioning.
    stale_helper: bool,
}

pub struct Engine {
    settings: Arc<Settings>,
    pool: SqlitePool,
    grids: Arc<GridMonitor>,
    lock: LockFile,
    /// Woken on every stored event: subscribers (SSE) read the new rows.
    events: tokio::sync::watch::Sender<u64>,
    /// Operations this console is driving right now.
    driving: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Held while an operation is being settled (reconciliation's steps, a
    /// cancel, an override), so two of them never act on the grids at once;
    /// whoever comes second sees the first one's outcome and stands back.
    settling: tokio::sync::Mutex<()>,
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

fn helper_name(target: &AppName) -> Result<AppName, EngineError> {
    AppName::new(format!("MigHelper_{target}")).map_err(|_| {
        EngineError::BadInput(format!(
            "target app name {target} is too long: its helper MigHelper_{target} must fit in 64 characters"
        ))
    })
}

fn parse_name<T>(field: &str, value: &str) -> Result<T, EngineError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| EngineError::BadInput(format!("{field}: {value:?} is not a valid name ({e})")))
}

/// Destroys an app; one already gone counts as destroyed, so steps stay idempotent.
async fn destroy(conn: &Connection, app: &AppName) -> Result<(), String> {
    match conn.app_destroy(app).await {
        Err(e) if !not_found(&e) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Stops the helper (best effort: it may already have stopped) and destroys it.
async fn remove_helper(
    conn: &Connection,
    helper: &AppName,
    stop_timeout_secs: u64,
) -> Result<(), String> {
    let _ = conn.app_stop(helper, Some(stop_timeout_secs)).await;
    destroy(conn, helper).await
}

fn not_found(e: &GridError) -> bool {
    e.refusal().is_some_and(|r| r.code == ErrorCode::NotFound)
}

fn new_op_id() -> String {
    use rand::Rng;
    let t = time::OffsetDateTime::now_utc();
    let suffix: u32 = rand::rng().random_range(0..0x10000);
    format!(
        "op-{:04}{:02}{:02}-{:02}{:02}{:02}-{suffix:04x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Engine {
    pub fn new(settings: Arc<Settings>, pool: SqlitePool, grids: Arc<GridMonitor>) -> Arc<Engine> {
        let lock = LockFile::new(&settings.config_dir);
        Arc::new(Engine {
            settings,
            pool,
            grids,
            lock,
            events: tokio::sync::watch::channel(0).0,
            driving: Default::default(),
            settling: tokio::sync::Mutex::new(()),
        })
    }

    /// True while this console works on `op` (provisions, meters or settles it).
    pub fn is_driving(&self, op: &str) -> bool {
        self.driving.lock().is_ok_and(|set| set.contains(op))
    }

    pub fn lock_state(&self) -> std::io::Result<LockState> {
        self.lock.read()
    }

    async fn connection(&self, grid: &GridName) -> Result<Arc<Connection>, EngineError> {
        let grids = self.grids.client().map_err(|e| {
            EngineError::Unavailable(format!("the console cannot reach grids: {e}"))
        })?;
        match grids.connection(grid).await {
            None => Err(EngineError::BadInput(format!(
                "grid {grid} is not in the grid inventory"
            ))),
            Some(Err(e)) => Err(EngineError::Unavailable(e.to_string())),
            Some(Ok(c)) => Ok(c),
        }
    }

    /// Pre-flight: valid names, the mode allows the action, no lock, both
    /// grids reachable, the source exists, the target name is free, the
    /// target grid has room. Nothing is changed anywhere.
    async fn preflight(&self, req: &StartRequest) -> Result<Preflight, EngineError> {
        let source_grid = parse_name::<GridName>("source_grid", &req.source_grid)?;
        let source_app = parse_name::<AppName>("source_app", &req.source_app)?;
        let target_grid = parse_name::<GridName>("target_grid", &req.target_grid)?;
        let target_app = parse_name::<AppName>("target_app", &req.target_app)?;
        let helper = helper_name(&target_app)?;
        if !req.action.allowed_by(self.settings.mode) {
            return Err(EngineError::NotAllowed(format!(
                "this console's mode is {}: it does not {}",
                self.settings.mode, req.action
            )));
        }
        if source_grid == target_grid && source_app == target_app {
            return Err(EngineError::BadInput(
                "the target is the source; pick another target app name or grid".into(),
            ));
        }

        // A held lock answers at once, before any grid is asked.
        match self
            .lock
            .read()
            .map_err(|e| EngineError::Unexpected(e.into()))?
        {
            LockState::Free => {}
            held => {
                return Err(EngineError::Locked(
                    LockError::Held(Box::new(held)).to_string(),
                ));
            }
        }
        let (src, dst) =
            tokio::try_join!(self.connection(&source_grid), self.connection(&target_grid))?;
        let source = match src.app_info(&source_app).await {
            Ok(info) => info,
            Err(e) if not_found(&e) => {
                return Err(EngineError::BadInput(format!(
                    "there is no app {source_app} on grid {source_grid}"
                )));
            }
            Err(e) => return Err(EngineError::Unavailable(e.to_string())),
        };
        match dst.app_info(&target_app).await {
            Ok(_) => {
                return Err(EngineError::BadInput(format!(
                    "target_app: {target_app} already exists on grid {target_grid}; pick another name"
                )));
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(EngineError::Unavailable(e.to_string())),
        }
        let total: u64 = source.volumes.iter().map(|v| v.size).sum();
        let info = dst
            .grid_info()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        if info.free_bytes < total {
            return Err(EngineError::BadInput(format!(
                "grid {target_grid} has {} bytes free; {source_app} needs {total}",
                info.free_bytes
            )));
        }
        let stale_helper = dst.app_info(&helper).await.is_ok();
        Ok(Preflight {
            source_grid,
            source_app,
            target_grid,
            target_app,
            helper,
            source,
            target_free_bytes: info.free_bytes,
            stale_helper,
        })
    }

    /// Pre-flight, lock, record, then drive the operation in the background.
    pub async fn start(
        self: &Arc<Self>,
        req: StartRequest,
        user: &str,
    ) -> Result<OperationView, EngineError> {
        let Preflight {
            source_grid,
            source_app,
            target_grid,
            target_app,
            source,
            ..
        } = self.preflight(&req).await?;
        let total: u64 = source.volumes.iter().map(|v| v.size).sum();
        let now = store::now();
        let op = OperationView {
            id: new_op_id(),
            action: req.action,
            source_grid: source_grid.to_string(),
            source_app: source_app.to_string(),
            target_grid: target_grid.to_string(),
            target_app: target_app.to_string(),
            phase: "preflight".into(),
            outcome: None,
            reason: None,
            bytes_done: 0,
            bytes_total: i64::try_from(total).unwrap_or(i64::MAX),
            created_by: user.to_owned(),
            created_at: now.clone(),
            updated_at: now.clone(),
            finished_at: None,
        };
        let lock = Lock {
            version: LOCK_VERSION,
            op_id: op.id.clone(),
            action: req.action,
            source_grid,
            source_app_name: source_app,
            target_grid,
            target_app_name: target_app,
            created_at: now,
            created_by: user.to_owned(),
            console: ConsoleId::this_process(),
        };
        let lock_file = LockFile::new(&self.settings.config_dir);
        let lock = tokio::task::spawn_blocking(move || lock_file.acquire(&lock).map(|()| lock))
            .await
            .map_err(|e| EngineError::Unexpected(e.into()))?
            .map_err(|e| match e {
                LockError::Held(_) => EngineError::Locked(e.to_string()),
                other => EngineError::Unexpected(other.into()),
            })?;
        if let Err(e) = store::insert(&self.pool, &op).await {
            // Never a lock without a recorded operation.
            let _ = self.lock.archive("aborted", Some(&op.id), &op.id);
            return Err(e.into());
        }
        self.event(
            &op.id,
            "phase",
            "console",
            json!({"phase": "preflight", "text": "pre-flight passed; lock taken"}),
        )
        .await;
        let me = self.clone();
        tokio::spawn(async move { me.drive(lock, true).await });
        Ok(op)
    }

    async fn event(&self, op: &str, kind: &str, source: &str, data: serde_json::Value) {
        match store::append_event(&self.pool, op, kind, source, &data).await {
            Ok(Some(_)) => self.events.send_modify(|n| *n += 1),
            Ok(None) => tracing::debug!(op, kind, "event after the outcome dropped"),
            Err(e) => tracing::error!(error = %e, op, "cannot store an operation event"),
        }
    }

    /// A receiver that changes whenever any operation gets an event.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    async fn phase(&self, op: &str, phase: &str, text: &str) {
        if let Err(e) = store::set_phase(&self.pool, op, phase).await {
            tracing::error!(error = %e, op, "cannot store the phase");
        }
        self.event(
            op,
            "phase",
            "console",
            json!({"phase": phase, "text": text}),
        )
        .await;
    }

    /// At start-up: an existing lock is reconciled (and metered if the helper still works).
    pub async fn resume(self: &Arc<Self>) {
        match self.lock.read() {
            Ok(LockState::Held(lock)) => {
                if store::get(&self.pool, &lock.op_id)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                {
                    let op = OperationView {
                        id: lock.op_id.clone(),
                        action: lock.action,
                        source_grid: lock.source_grid.to_string(),
                        source_app: lock.source_app_name.to_string(),
                        target_grid: lock.target_grid.to_string(),
                        target_app: lock.target_app_name.to_string(),
                        phase: "reconciling".into(),
                        outcome: None,
                        reason: None,
                        bytes_done: 0,
                        bytes_total: 0,
                        created_by: lock.created_by.clone(),
                        created_at: lock.created_at.clone(),
                        updated_at: store::now(),
                        finished_at: None,
                    };
                    if let Err(e) = store::insert(&self.pool, &op).await {
                        tracing::error!(error = %e, "cannot record the locked operation");
                        return;
                    }
                }
                self.event(
                    &lock.op_id,
                    "log",
                    "console",
                    json!({"text": "console started: reconciling from the lock"}),
                )
                .await;
                let me = self.clone();
                tokio::spawn(async move { me.drive(lock, false).await });
            }
            Ok(LockState::Unreadable { problem, .. }) => {
                tracing::error!(%problem, "the lock file is unreadable; an admin must inspect and override it");
            }
            Ok(LockState::Free) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the lock file"),
        }
    }

    /// Provisions the helper (fresh starts), then meters and reconciles until
    /// the operation has an outcome or is held.
    async fn drive(self: Arc<Self>, lock: Lock, fresh: bool) {
        let op = lock.op_id.clone();
        if let Ok(mut set) = self.driving.lock() {
            set.insert(op.clone());
        }
        let _driving = Driving(&self, op.clone());
        if fresh && let Err(e) = self.provision(&lock).await {
            let text = format!("provisioning failed: {e}");
            self.event(&op, "log", "console", json!({ "text": text }))
                .await;
        }
        // A provision request may still be on its way when a console dies:
        // give the helper time to appear before calling the run interrupted.
        let phase_at_start = store::get(&self.pool, &op)
            .await
            .ok()
            .flatten()
            .map(|o| o.phase);
        let provisioning = !fresh
            && matches!(
                phase_at_start.as_deref(),
                Some("preflight" | "provisioning")
            );
        let started = std::time::Instant::now();
        loop {
            let seen = self.observe(&lock).await;
            if provisioning && seen.helper == Seen::Absent && started.elapsed() < PROVISION_GRACE {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let steps = reconcile::decide(&lock, self.settings.current_grid.as_ref(), &seen);
            self.event(
                &op,
                "log",
                "console",
                json!({"text": format!("observed: {seen}; next: {}", steps.iter().map(ToString::to_string).collect::<Vec<_>>().join(", then "))}),
            )
            .await;
            if let [Step::Wait(_)] = &steps[..] {
                self.meter(&lock).await;
                continue;
            }
            // A cancel or an override may have settled the operation meanwhile.
            let _settling = self.settling.lock().await;
            if !matches!(self.lock.read(), Ok(LockState::Held(l)) if l.op_id == op) {
                return;
            }
            self.phase(
                &op,
                "reconciling",
                "settling the operation from what the grids report",
            )
            .await;
            self.apply(&lock, steps).await;
            return;
        }
    }

    async fn provision(&self, lock: &Lock) -> Result<(), EngineError> {
        let op = &lock.op_id;
        self.phase(
            op,
            "provisioning",
            &format!("provisioning the helper on grid {}", lock.target_grid),
        )
        .await;
        let dst = self.connection(&lock.target_grid).await?;
        let helper = helper_name(&lock.target_app_name)?;
        // A helper left by an aborted run is removed first (MIG did the same).
        if let Ok(info) = dst.app_info(&helper).await {
            self.event(
                op,
                "log",
                "console",
                json!({"text": format!("destroying a stale {helper} ({})", info.state)}),
            )
            .await;
            remove_helper(&dst, &helper, 30)
                .await
                .map_err(EngineError::Unavailable)?;
        }
        let job = helper::Job {
            op_id: op.clone(),
            action: match lock.action {
                Action::Migrate => helper::env::Action::Migrate,
                Action::Snapshot => helper::env::Action::Snapshot,
            },
            source_grid: lock.source_grid.clone(),
            source_app: lock.source_app_name.clone(),
            target_grid: lock.target_grid.clone(),
            target_app: lock.target_app_name.clone(),
            grids_file: Default::default(),
            key_file: Default::default(),
            known_hosts: Default::default(),
            block_size: helper::env::DEFAULT_BLOCK_SIZE,
            stop_timeout_secs: helper::env::DEFAULT_STOP_TIMEOUT,
            rate_limit: self.settings.copy_rate_limit_mib.unwrap_or(0) << 20,
        };
        let props = job
            .properties()
            .into_iter()
            .map(|(k, v)| Property::new(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let template =
            TemplateName::new(HELPER_TEMPLATE).map_err(|e| EngineError::Unexpected(e.into()))?;
        dst.app_provision(&template, &helper, props)
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        self.event(
            op,
            "log",
            "console",
            json!({"text": format!("{helper} is running on {}", lock.target_grid)}),
        )
        .await;
        Ok(())
    }

    /// Follows the helper's log and the apps' states until the helper stops working.
    async fn meter(&self, lock: &Lock) {
        let op = &lock.op_id;
        let Ok(dst) = self.connection(&lock.target_grid).await else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return;
        };
        let Ok(helper) = helper_name(&lock.target_app_name) else {
            return;
        };
        let since = self.last_seq(op, "helper").await;
        let mut apps = AppLogs::new(self, lock, &dst).await;
        let mut follower = match dst.app_log_follow(&helper, since).await {
            Ok(f) => f,
            Err(e) => {
                self.event(
                    op,
                    "log",
                    "console",
                    json!({"text": format!("cannot follow the helper log: {e}")}),
                )
                .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        let mut last_states: Option<(String, String, String)> = None;
        loop {
            tokio::select! {
                line = follower.next() => match line {
                    Some(Ok(line)) => self.helper_line(op, &line).await,
                    Some(Err(e)) => {
                        self.event(op, "log", "console", json!({"text": format!("helper log: {e}")})).await;
                        break;
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    apps.poll(self, op).await;
                    let seen = self.states(lock).await;
                    let states = (seen.0.to_string(), seen.1.to_string(), seen.2.to_string());
                    if last_states.as_ref() != Some(&states) {
                        self.event(op, "state", "console", json!({"source": states.0, "target": states.1, "helper": states.2})).await;
                        last_states = Some(states);
                    }
                    if !matches!(seen.2, Seen::State(AppState::Starting | AppState::Running | AppState::Stopping)) {
                        // Drain what the helper wrote last.
                        while let Ok(Some(Ok(line))) = tokio::time::timeout(Duration::from_millis(300), follower.next()).await {
                            self.helper_line(op, &line).await;
                        }
                        break;
                    }
                }
            }
        }
        follower.close().await;
    }

    async fn last_seq(&self, op: &str, source: &str) -> Option<u64> {
        store::last_app_seq(&self.pool, op, source)
            .await
            .ok()
            .flatten()
            .and_then(|s| u64::try_from(s).ok())
    }

    async fn helper_line(&self, op: &str, line: &grid::dialect::LogLine) {
        if let Some(json) = line.text.strip_prefix("progress ")
            && let Ok(p) = serde_json::from_str::<serde_json::Value>(json)
        {
            let done = p["done"].as_i64().unwrap_or(0);
            let total = p["total"].as_i64().unwrap_or(0);
            let _ = store::set_progress(&self.pool, op, done, total).await;
            let data = json!({"seq": line.seq, "progress": p});
            self.event(op, "progress", "helper", data).await;
            return;
        }
        let phase = [
            ("stopping the source", "stopping_source"),
            ("created the target", "copying"),
            ("resuming into", "copying"),
            ("verified volume", "verifying"),
            ("starting the target", "starting_target"),
            ("restarting the source", "restarting_source"),
        ]
        .iter()
        .find(|(prefix, _)| line.text.starts_with(prefix))
        .map(|(_, phase)| *phase);
        self.event(
            op,
            "log",
            "helper",
            json!({"seq": line.seq, "at": line.at, "text": line.text}),
        )
        .await;
        if let Some(phase) = phase {
            self.phase(op, phase, &line.text).await;
        }
    }

    async fn seen(conn: &Result<Arc<Connection>, EngineError>, app: &AppName) -> Seen {
        match conn {
            Err(e) => Seen::Unknown(e.to_string()),
            Ok(c) => match c.app_info(app).await {
                Ok(info) => Seen::State(info.state),
                Err(e) if not_found(&e) => Seen::Absent,
                Err(e) => Seen::Unknown(e.to_string()),
            },
        }
    }

    async fn states(&self, lock: &Lock) -> (Seen, Seen, Seen) {
        let src = self.connection(&lock.source_grid).await;
        let dst = self.connection(&lock.target_grid).await;
        let helper = match helper_name(&lock.target_app_name) {
            Ok(h) => Self::seen(&dst, &h).await,
            Err(e) => Seen::Unknown(e.to_string()),
        };
        (
            Self::seen(&src, &lock.source_app_name).await,
            Self::seen(&dst, &lock.target_app_name).await,
            helper,
        )
    }

    async fn observe(&self, lock: &Lock) -> Observed {
        let (source, target, helper) = self.states(lock).await;
        let checksums = if matches!(source, Seen::State(_)) && matches!(target, Seen::State(_)) {
            self.compare(lock).await
        } else {
            Checksums::Unknown
        };
        Observed {
            source,
            target,
            helper,
            checksums,
        }
    }

    async fn compare(&self, lock: &Lock) -> Checksums {
        let (Ok(src), Ok(dst)) = (
            self.connection(&lock.source_grid).await,
            self.connection(&lock.target_grid).await,
        ) else {
            return Checksums::Unknown;
        };
        let (Ok(s), Ok(t)) = (
            src.app_info(&lock.source_app_name).await,
            dst.app_info(&lock.target_app_name).await,
        ) else {
            return Checksums::Unknown;
        };
        if s.volumes != t.volumes {
            return Checksums::Mismatch("(the volume lists differ)".into());
        }
        for v in &s.volumes {
            let a = src
                .vol_checksum(&VolRef::new(s.name.clone(), v.name.clone()))
                .await;
            let b = dst
                .vol_checksum(&VolRef::new(t.name.clone(), v.name.clone()))
                .await;
            match (a, b) {
                (Ok(a), Ok(b)) if a.digest == b.digest => {}
                (Ok(_), Ok(_)) => return Checksums::Mismatch(v.name.to_string()),
                _ => return Checksums::Unknown,
            }
        }
        Checksums::Match
    }

    async fn apply(&self, lock: &Lock, steps: Vec<Step>) {
        let op = &lock.op_id;
        for step in steps {
            let done = match &step {
                Step::DestroyHelper => match (
                    self.connection(&lock.target_grid).await,
                    helper_name(&lock.target_app_name),
                ) {
                    (Ok(c), Ok(h)) => remove_helper(&c, &h, 30).await,
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                },
                Step::StartSource => match self.connection(&lock.source_grid).await {
                    Ok(c) => c
                        .app_start(&lock.source_app_name)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Step::DestroySource => match self.connection(&lock.source_grid).await {
                    Ok(c) => destroy(&c, &lock.source_app_name).await,
                    Err(e) => Err(e.to_string()),
                },
                Step::DestroyTarget => match self.connection(&lock.target_grid).await {
                    Ok(c) => destroy(&c, &lock.target_app_name).await,
                    Err(e) => Err(e.to_string()),
                },
                Step::Finish(outcome) => {
                    let (kind, reason) = match outcome {
                        Outcome::Done => ("done", None),
                        Outcome::Failed(r) => ("failed", Some(r.as_str())),
                    };
                    let recorded = store::finish(&self.pool, op, kind, reason)
                        .await
                        .map_err(|e| e.to_string());
                    let archived = recorded.and_then(|()| {
                        self.lock
                            .archive(kind, Some(op), op)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    });
                    self.event(op, "phase", "console", json!({"phase": kind, "text": reason.unwrap_or("the operation is complete")})).await;
                    archived
                }
                Step::Hold(reason) | Step::Nothing(reason) | Step::Wait(reason) => {
                    let _ = store::set_reason(&self.pool, op, reason).await;
                    self.event(
                        op,
                        "log",
                        "console",
                        json!({"text": format!("lock kept: {reason}")}),
                    )
                    .await;
                    Ok(())
                }
            };
            match done {
                // The outcome's phase event is an operation's last event:
                // streams end with it.
                Ok(())
                    if matches!(
                        step,
                        Step::Hold(_) | Step::Nothing(_) | Step::Wait(_) | Step::Finish(_)
                    ) => {}
                Ok(()) => {
                    self.event(
                        op,
                        "log",
                        "console",
                        json!({"text": format!("{step}: done")}),
                    )
                    .await
                }
                Err(e) => {
                    let reason = format!("{step} failed: {e}; the lock is kept");
                    let _ = store::set_reason(&self.pool, op, &reason).await;
                    self.event(op, "log", "console", json!({"text": reason}))
                        .await;
                    return;
                }
            }
        }
    }
}

/// What `cancel` did, for the answer to the operator.
#[derive(Debug, serde::Serialize)]
pub struct Cancelled {
    pub operation: OperationView,
    pub cleanup: Vec<String>,
}

/// What an override did.
#[derive(Debug, serde::Serialize)]
pub struct Overridden {
    pub op_id: String,
    pub archived_to: String,
    pub helper_destroyed: bool,
}

impl Engine {
    /// Cancels a running operation with the clean-up its phase calls for:
    /// before the source is stopped, the helper goes and the lock is
    /// released; during the copy, the helper is stopped, the source
    /// restarted and the partial target removed; once the target starts,
    /// cancelling is refused.
    pub async fn cancel(&self, id: &str, user: &str) -> Result<Cancelled, EngineError> {
        let _settling = self.settling.lock().await;
        let op = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::BadInput(format!("there is no operation {id:?}")))?;
        if let Some(outcome) = &op.outcome {
            return Err(EngineError::Locked(format!(
                "operation {id} has already ended: {outcome}"
            )));
        }
        if matches!(
            op.phase.as_str(),
            "starting_target" | "restarting_source" | "reconciling"
        ) {
            return Err(EngineError::Locked(format!(
                "operation {id} cannot be cancelled in phase {}: the copy is complete and the {} is starting; let it finish",
                op.phase,
                if op.action == Action::Migrate {
                    "target"
                } else {
                    "source"
                }
            )));
        }
        let lock = match self
            .lock
            .read()
            .map_err(|e| EngineError::Unexpected(e.into()))?
        {
            LockState::Held(l) if l.op_id == id => l,
            _ => {
                return Err(EngineError::Locked(format!(
                    "operation {id} does not hold the lock"
                )));
            }
        };
        self.event(
            id,
            "log",
            "console",
            json!({"text": format!("cancel requested by {user} in phase {}", op.phase)}),
        )
        .await;
        let mut cleanup = vec![];
        let dst = self.connection(&lock.target_grid).await?;
        let src = self.connection(&lock.source_grid).await?;
        let helper = helper_name(&lock.target_app_name)?;
        if dst.app_info(&helper).await.is_ok() {
            remove_helper(&dst, &helper, 10)
                .await
                .map_err(EngineError::Unavailable)?;
            cleanup.push(format!("stopped and removed {helper}"));
        }
        match src.app_info(&lock.source_app_name).await {
            Ok(info) if info.state != AppState::Running => {
                src.app_start(&lock.source_app_name)
                    .await
                    .map_err(|e| EngineError::Unavailable(e.to_string()))?;
                cleanup.push(format!("restarted the source app {}", lock.source_app_name));
            }
            _ => {}
        }
        if let Ok(info) = dst.app_info(&lock.target_app_name).await
            && matches!(info.state, AppState::Stopped | AppState::Failed)
        {
            destroy(&dst, &lock.target_app_name)
                .await
                .map_err(EngineError::Unavailable)?;
            cleanup.push(format!(
                "removed the partial target {}",
                lock.target_app_name
            ));
        }
        let reason = format!("cancelled by {user}");
        store::finish(&self.pool, id, "cancelled", Some(&reason)).await?;
        self.lock
            .archive("cancelled", Some(id), id)
            .map_err(|e| EngineError::Unexpected(e.into()))?;
        cleanup.push("released the lock".into());
        self.event(
            id,
            "phase",
            "console",
            json!({"phase": "cancelled", "text": cleanup.join("; ")}),
        )
        .await;
        let operation = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::BadInput(format!("there is no operation {id:?}")))?;
        Ok(Cancelled { operation, cleanup })
    }

    /// Moves the lock aside (admins): the operator typed the op id (or
    /// `unreadable` for a lock that cannot be read) and a reason.
    pub async fn override_lock(
        &self,
        op_id: &str,
        reason: &str,
        admin: &str,
        destroy_helper: bool,
    ) -> Result<Overridden, EngineError> {
        if reason.trim().is_empty() {
            return Err(EngineError::BadInput(
                "reason: say why the lock is overridden".into(),
            ));
        }
        let _settling = self.settling.lock().await;
        let state = self
            .lock
            .read()
            .map_err(|e| EngineError::Unexpected(e.into()))?;
        let held = match &state {
            LockState::Free => {
                return Err(EngineError::BadInput("there is no lock to override".into()));
            }
            LockState::Held(l) if l.op_id != op_id => {
                return Err(EngineError::BadInput(format!(
                    "op_id: the lock belongs to {}; type that id to override it",
                    l.op_id
                )));
            }
            LockState::Unreadable { .. } if op_id != "unreadable" => {
                return Err(EngineError::BadInput(
                    "op_id: the lock is unreadable; type `unreadable` to override it".into(),
                ));
            }
            LockState::Held(l) => Some(l.clone()),
            LockState::Unreadable { .. } => None,
        };
        let mut helper_destroyed = false;
        if let (true, Some(l)) = (destroy_helper, &held) {
            let dst = self.connection(&l.target_grid).await?;
            let helper = helper_name(&l.target_app_name)?;
            if dst.app_info(&helper).await.is_ok() {
                remove_helper(&dst, &helper, 10)
                    .await
                    .map_err(EngineError::Unavailable)?;
                helper_destroyed = true;
            }
        }
        let expected = held.as_ref().map(|l| l.op_id.as_str());
        let dest = self
            .lock
            .archive("overridden", expected, op_id)
            .map_err(|e| EngineError::Unexpected(e.into()))?;
        let text = format!("lock overridden by {admin}: {reason}");
        if held.is_some() {
            store::finish(&self.pool, op_id, "failed", Some(&text)).await?;
            self.event(
                op_id,
                "phase",
                "console",
                json!({"phase": "failed", "text": text}),
            )
            .await;
        }
        let detail = json!({"op_id": op_id, "reason": reason, "archived_to": dest.display().to_string(), "helper_destroyed": helper_destroyed});
        crate::db::audit(&self.pool, admin, "lock.override", &detail.to_string()).await?;
        Ok(Overridden {
            op_id: op_id.to_owned(),
            archived_to: dest.display().to_string(),
            helper_destroyed,
        })
    }
}

/// The source and target apps' own logs, read on every metering tick and
/// stored as events (`source` / `target`), so the monitor shows all four.
struct AppLogs {
    apps: Vec<AppLog>,
}

/// (event source, its grid's connection, the app, the last line stored).
type AppLog = (&'static str, Option<Arc<Connection>>, AppName, Option<u64>);

impl AppLogs {
    async fn new(engine: &Engine, lock: &Lock, dst: &Arc<Connection>) -> AppLogs {
        let op = &lock.op_id;
        let src = engine.connection(&lock.source_grid).await.ok();
        // The source's history before this operation is not part of it:
        // start after its last line unless this operation already stored some.
        let mut source_since = engine.last_seq(op, "source").await;
        if source_since.is_none()
            && let Some(c) = &src
            && let Ok(lines) = c.app_log(&lock.source_app_name, None).await
        {
            source_since = Some(lines.last().map_or(0, |l| l.seq));
        }
        let target_since = engine.last_seq(op, "target").await;
        AppLogs {
            apps: vec![
                ("source", src, lock.source_app_name.clone(), source_since),
                (
                    "target",
                    Some(dst.clone()),
                    lock.target_app_name.clone(),
                    target_since,
                ),
            ],
        }
    }

    async fn poll(&mut self, engine: &Engine, op: &str) {
        for (source, conn, app, since) in &mut self.apps {
            let Some(c) = conn else { continue };
            // A missing app (the target before it is created) has no log yet.
            let Ok(lines) = c.app_log(app, *since).await else {
                continue;
            };
            for l in lines {
                *since = Some(l.seq);
                engine
                    .event(op, "log", source, json!({"seq": l.seq, "text": l.text}))
                    .await;
            }
        }
    }
}
