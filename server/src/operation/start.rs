//! Starting an operation: pre-flight (nothing changes anywhere), the lock
//! taken atomically, the operation recorded, then the drive in the background.

use super::{Engine, EngineError, Field, HELPER_TEMPLATE, helper_name, not_found, store, travel};
use crate::clock;
use crate::lock::{ConsoleId, LOCK_VERSION, Lock, LockError, LockFile, LockState, WarmPlan};
use crate::reconcile::Place;
use app::model::{Action, Cutover, OperationView, Phase, human_bytes};
use grid::dialect::Machine;
use grid::{AppName, GridName};
use serde::Deserialize;

/// What to migrate or snapshot, and how. Names: a letter, then letters,
/// digits, `_` or `-`, 64 at most.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A grid of the inventory.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub source_grid: String,
    /// An app on the source grid.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub source_app: String,
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub target_grid: String,
    /// The copy's name on the target grid (a new app unless `update_target`).
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub target_app: String,
    pub action: Action,
    /// The target app exists (stopped, the source's volumes): the copy
    /// updates it, moving only the blocks that differ, and never destroys it.
    #[serde(default)]
    pub update_target: bool,
    /// Copy while the source runs, pass after pass, and stop it only for
    /// the last changes.
    #[serde(default)]
    pub warm: bool,
    /// Warm: when to cut over (default `auto`; `scheduled` with `cutover_at`).
    #[serde(default)]
    pub cutover: Option<Cutover>,
    /// Warm: the scheduled cutover, RFC 3339, at most 7 days ahead (implies `scheduled`).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub cutover_at: Option<String>,
    /// Seconds the source may take to stop by itself (a process exits, a
    /// guest shuts down on its ACPI button) before it is forced (killed,
    /// powered off), 1 to 86400; default 120.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)] // MAX_STOP_TIMEOUT_SECS (a literal for the derive)
    pub stop_timeout_secs: Option<u64>,
    /// Migrate: keep the source on its grid, stopped, once the target runs
    /// verified, so that the migrate can be rolled back; released by an
    /// operator or at its deadline. Default: the console's `keep_source`.
    #[serde(default)]
    pub keep_source: Option<bool>,
    /// Hours the kept source stays before its deadline releases it, 1 to
    /// 8760; default: the console's `keep_source_hours` (72).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8760)] // MAX_KEEP_SOURCE_HOURS
    pub keep_source_hours: Option<u64>,
    /// A rollback: the migrate it undoes. Never from a request body: a
    /// rollback starts from `POST /operations/{id}/rollback`.
    #[serde(skip)]
    pub rollback_of: Option<String>,
}

use operation_model::{MAX_KEEP_SOURCE_HOURS, MAX_STOP_TIMEOUT_SECS};

/// How long a migrate keeps its source (`None`: it destroys it), from the
/// request and the console's defaults, or what is wrong with the request.
fn keep_source(
    req: &StartRequest,
    default_keep: bool,
    default_hours: u64,
) -> Result<Option<u64>, EngineError> {
    if let Some(h) = req.keep_source_hours
        && !(1..=MAX_KEEP_SOURCE_HOURS).contains(&h)
    {
        return Err(EngineError::field(
            Field::KeepSourceHours,
            format!(
                "keep_source_hours: {h} is not between 1 and {MAX_KEEP_SOURCE_HOURS} (a year); leave it out for the console's {default_hours}"
            ),
        ));
    }
    match (req.action, req.keep_source) {
        (Action::Snapshot, Some(true)) => Err(EngineError::field(
            Field::KeepSource,
            "keep_source: a snapshot never destroys its source; keep_source is for a migrate",
        )),
        (Action::Snapshot, _) if req.keep_source_hours.is_some() => Err(EngineError::field(
            Field::KeepSourceHours,
            "keep_source_hours: a snapshot keeps no source; leave it out",
        )),
        (Action::Snapshot, _) => Ok(None),
        (Action::Migrate | Action::Rollback, keep) => {
            let keep = keep.unwrap_or(default_keep);
            if !keep && req.keep_source_hours.is_some() {
                return Err(EngineError::field(
                    Field::KeepSourceHours,
                    "keep_source_hours: the source is not kept; set \"keep_source\": true or leave the hours out",
                ));
            }
            Ok(keep.then(|| req.keep_source_hours.unwrap_or(default_hours)))
        }
    }
}

/// The stop timeout a request asks for, or what is wrong with it.
fn stop_timeout(req: &StartRequest) -> Result<Option<u64>, EngineError> {
    match req.stop_timeout_secs {
        None => Ok(None),
        Some(s) if (1..=MAX_STOP_TIMEOUT_SECS).contains(&s) => Ok(Some(s)),
        Some(s) => Err(EngineError::field(
            Field::StopTimeout,
            format!(
                "stop_timeout_secs: {s} is not between 1 and {MAX_STOP_TIMEOUT_SECS} (a day); leave it out for {} s",
                helper::env::DEFAULT_STOP_TIMEOUT
            ),
        )),
    }
}

/// A cutover time from a form: a browser's `datetime-local` value
/// (`2026-11-24T18:00`, taken as UTC, as the form says) becomes RFC 3339;
/// anything else is passed on for `warm_plan` to judge. Empty: none.
pub fn form_time(text: &str) -> Option<String> {
    let t = text.trim();
    let local = |len: usize| t.len() == len && t.as_bytes().get(10) == Some(&b'T');
    match () {
        _ if t.is_empty() => None,
        _ if local(16) => Some(format!("{t}:00Z")),
        _ if local(19) => Some(format!("{t}Z")),
        _ => Some(t.to_owned()),
    }
}

/// The furthest ahead a cutover can be scheduled.
const MAX_SCHEDULE_SECS: i64 = 7 * 24 * 3600;

/// The warm plan a request asks for, or what is wrong with it.
fn warm_plan(req: &StartRequest) -> Result<Option<WarmPlan>, EngineError> {
    if !req.warm {
        if req.cutover.is_some() || req.cutover_at.is_some() {
            return Err(EngineError::field(
                Field::Cutover,
                "cutover: only a warm operation cuts over; set \"warm\": true or leave the cutover out",
            ));
        }
        return Ok(None);
    }
    let at = match req.cutover_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let at: clock::Timestamp = text.parse().map_err(|_| {
                EngineError::field(
                    Field::CutoverAt,
                    format!(
                        "cutover_at: {text:?} is not an RFC 3339 time like 2026-11-24T18:00:00Z"
                    ),
                )
            })?;
            let ahead = (at.0 - clock::now().0).whole_seconds();
            if ahead <= 0 {
                return Err(EngineError::field(
                    Field::CutoverAt,
                    format!(
                        "cutover_at: {at} has passed; pick a time ahead, or cut over automatically"
                    ),
                ));
            }
            if ahead > MAX_SCHEDULE_SECS {
                return Err(EngineError::field(
                    Field::CutoverAt,
                    format!(
                        "cutover_at: {at} is more than 7 days ahead; pre-copying that long keeps the lock held: pick a nearer time"
                    ),
                ));
            }
            Some(at)
        }
    };
    let cutover = match (req.cutover, at) {
        (None, Some(_)) | (Some(Cutover::Scheduled), Some(_)) => Cutover::Scheduled,
        (Some(Cutover::Scheduled), None) => {
            return Err(EngineError::field(
                Field::CutoverAt,
                "cutover_at: a scheduled cutover needs its time (RFC 3339, e.g. 2026-11-24T18:00:00Z)",
            ));
        }
        (Some(c), Some(_)) => {
            return Err(EngineError::field(
                Field::Cutover,
                format!("cutover: {c} does not take a time; use \"scheduled\" with cutover_at"),
            ));
        }
        (c, None) => c.unwrap_or_default(),
    };
    Ok(Some(WarmPlan {
        cutover,
        cutover_at: at,
    }))
}

/// How the console's helpers move bytes: the target pulls when it can.
pub(super) const TRANSFER: helper::env::TransferChoice = helper::env::TransferChoice::Auto;

impl Preflight {
    /// How the helper will copy, as it will decide (assuming the target
    /// can reach the source; the helper relays when it cannot).
    pub fn method(&self) -> helper::copy::Method {
        helper::copy::Method::decide(self.source_dialect, self.target_dialect, TRANSFER, true)
    }
}

/// What pre-flight established about a request.
pub(super) struct Preflight {
    pub source_grid: GridName,
    pub source_app: AppName,
    pub target_grid: GridName,
    pub target_app: AppName,
    pub helper: AppName,
    pub source: grid::dialect::AppInfo,
    pub target_free_bytes: u64,
    /// The dialect the target's controller speaks (2: writes answer with digests).
    pub target_dialect: u32,
    /// The dialect the source's controller speaks.
    pub source_dialect: u32,
    /// A `MigHelper_<target>` left by an aborted run, destroyed before provisioning.
    pub stale_helper: bool,
    /// The target exists and is updated in place.
    pub update_target: bool,
    pub warm: Option<WarmPlan>,
    /// Why a warm request will copy cold after all (the helper finds the
    /// same): the source is not running, or its grid speaks dialect < 4.
    pub cold_because: Option<String>,
    /// The stop timeout asked for; `None`: the default.
    pub stop_timeout_secs: Option<u64>,
    /// A migrate that keeps its source: for how many hours.
    pub keep_source_hours: Option<u64>,
}

impl Preflight {
    /// The source's stop timeout, seconds (asked for, or the default).
    pub fn stop_timeout(&self) -> u64 {
        self.stop_timeout_secs
            .unwrap_or(helper::env::DEFAULT_STOP_TIMEOUT)
    }
}

fn parse_name<T>(field: Field, value: &str) -> Result<T, EngineError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.parse::<T>().map_err(|e| {
        EngineError::field(
            field,
            format!("{}: {value:?} is not a valid name ({e})", field.as_str()),
        )
    })
}

/// Why an existing target cannot receive this copy, if it cannot: the
/// operator did not ask to update it, or it runs, or its volumes differ
/// from the source's (names and sizes).
fn not_updatable(
    source: &grid::dialect::AppInfo,
    target: &grid::dialect::AppInfo,
    grid: &GridName,
    update: bool,
) -> Option<String> {
    use grid::dialect::AppState;
    if !update {
        return Some(format!(
            "already exists on grid {grid}; pick another name, or choose \"update the existing target\" to copy only the blocks that differ into it"
        ));
    }
    if !matches!(target.state, AppState::Stopped | AppState::Failed) {
        return Some(format!(
            "on grid {grid} is {}; stop it first: only a stopped app is updated",
            target.state
        ));
    }
    if target.volumes != source.volumes {
        let list = |a: &grid::dialect::AppInfo| {
            a.volumes
                .iter()
                .map(|v| format!("{} {}", v.name, app::model::human_bytes(v.size)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "on grid {grid} has other volumes ({}) than {} ({}); pick another name",
            list(target),
            source.name,
            list(source)
        ));
    }
    None
}

fn new_op_id() -> String {
    stamped_id("op")
}

/// `KIND-YYYYMMDD-HHMMSS-xxxx`: an id that sorts by when it was made and
/// says what it names (operations `op-…`, group runs `run-…`).
pub fn stamped_id(kind: &str) -> String {
    use rand::Rng;
    let t = clock::now().0;
    let suffix: u32 = rand::rng().random_range(0..0x10000);
    format!(
        "{kind}-{:04}{:02}{:02}-{:02}{:02}{:02}-{suffix:04x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Engine {
    /// Pre-flight: valid names, the mode allows the action, no lock, both
    /// grids reachable, the source exists, the target name is free, the
    /// target grid has room. Nothing is changed anywhere.
    pub(super) async fn preflight(&self, req: &StartRequest) -> Result<Preflight, EngineError> {
        let source_grid = parse_name::<GridName>(Field::SourceGrid, &req.source_grid)?;
        let source_app = parse_name::<AppName>(Field::SourceApp, &req.source_app)?;
        let target_grid = parse_name::<GridName>(Field::TargetGrid, &req.target_grid)?;
        let target_app = parse_name::<AppName>(Field::TargetApp, &req.target_app)?;
        let helper = helper_name(&target_app)?;
        let warm = warm_plan(req)?;
        let stop_timeout_secs = stop_timeout(req)?;
        if req.action == Action::Rollback && req.rollback_of.is_none() {
            return Err(EngineError::field(
                Field::Action,
                "action: a rollback undoes a done migrate that kept its source: POST /api/v1/operations/{id}/rollback (migctl op rollback ID)",
            ));
        }
        let keep_source_hours = keep_source(
            req,
            self.settings.keep_source,
            self.settings.keep_source_hours,
        )?;
        if !req.action.allowed_by(self.settings.mode) {
            return Err(EngineError::ModeForbids {
                mode: self.settings.mode,
                action: req.action,
            });
        }
        // migctl's own apps (a helper, a cutover signal) belong to the
        // operation that made them: never an operation's source.
        if operation_model::name::is_migctls_own(source_app.as_str()) {
            return Err(EngineError::field(
                Field::SourceApp,
                format!(
                    "source_app: {source_app} is migctl's own (an operation's helper or cutover signal), not an app to move; name the app itself"
                ),
            ));
        }
        if source_grid == target_grid && source_app == target_app {
            return Err(EngineError::BadInput(
                "the target is the source; pick another target app name or grid".into(),
            ));
        }

        // A held lock answers at once, before any grid is asked.
        match self.lock.read() {
            LockState::Free => {}
            held => {
                return Err(EngineError::Locked(
                    LockError::Held(Box::new(held)).to_string(),
                ));
            }
        }
        // A kept source is not an ordinary stopped app: only its rollback
        // or its release ends it.
        let kept = store::kept(&self.pool).await?;
        for (field, grid, app) in [
            (Field::SourceApp, &source_grid, &source_app),
            (Field::TargetApp, &target_grid, &target_app),
        ] {
            if let Some(k) = kept
                .iter()
                .find(|k| k.grid == grid.as_str() && k.app == app.as_str())
            {
                // A rollback moves into the source its migrate kept: checked
                // against its fingerprint first.
                if field == Field::TargetApp && req.rollback_of.as_deref() == Some(k.op_id.as_str())
                {
                    self.rollback_target_unchanged(k).await?;
                    continue;
                }
                return Err(EngineError::field(
                    field,
                    format!(
                        "{}: {grid}/{app} is the source operation {} kept (until {}); roll that operation back or release its source first",
                        field.as_str(),
                        k.op_id,
                        k.until
                    ),
                ));
            }
        }
        let (src, dst) =
            tokio::try_join!(self.connection(&source_grid), self.connection(&target_grid))?;
        let source = match src.app_info(&source_app).await {
            Ok(info) => info,
            Err(e) if not_found(&e) => {
                return Err(EngineError::field(
                    Field::SourceApp,
                    format!("there is no app {source_app} on grid {source_grid}"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        // A machine the target host cannot make again (a qcow2 disk, a
        // device not carried) is refused now, before anything stops.
        if let Some(why) = source.machine.as_ref().and_then(Machine::not_movable) {
            return Err(EngineError::field(
                Field::SourceApp,
                format!("source_app: {source_app} on grid {source_grid} cannot be moved: {why}"),
            ));
        }
        match dst.app_info(&target_app).await {
            Ok(existing) => {
                if let Some(why) =
                    not_updatable(&source, &existing, &target_grid, req.update_target)
                {
                    return Err(EngineError::field(
                        Field::TargetApp,
                        format!("target_app: {target_app} {why}"),
                    ));
                }
            }
            Err(e) if not_found(&e) => {
                if req.update_target {
                    return Err(EngineError::field(
                        Field::TargetApp,
                        format!(
                            "target_app: there is no app {target_app} on grid {target_grid} to update; leave \"update the existing target\" off to create it"
                        ),
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        }
        let templates = dst.template_list().await?;
        if let Some(why) =
            travel::missing_template(&target_grid, &source, HELPER_TEMPLATE, &templates)
        {
            return Err(EngineError::field(Field::TargetGrid, why));
        }
        // A console inside the source stops with it and must wake up with
        // everything it knows; its own writes must fit on the config volume.
        let place = Place::among(
            (source_grid.as_str(), source_app.as_str()),
            (target_grid.as_str(), target_app.as_str()),
            self.settings.current_grid.as_ref().map(GridName::as_str),
            self.settings.current_app.as_ref().map(AppName::as_str),
        );
        if place == Place::InSource {
            let dir = self.settings.config_dir.clone();
            let used = tokio::task::spawn_blocking(move || travel::used_bytes(&dir))
                .await
                .unwrap_or(0);
            if let Some(why) = travel::obstacle(&self.settings, req.action, &source, used) {
                return Err(EngineError::BadInput(why));
            }
        }
        let total: u64 = source.volumes.iter().map(|v| v.size).sum();
        let info = dst.grid_info().await?;
        // An updated target already holds its volumes' space.
        if info.free_bytes < total && !req.update_target {
            return Err(EngineError::field(
                Field::TargetGrid,
                format!(
                    "target_grid: grid {target_grid} has {} free ({} bytes); {source_app}'s volumes need {} ({total} bytes): free space on {target_grid} or pick another target grid",
                    human_bytes(info.free_bytes),
                    info.free_bytes,
                    human_bytes(total)
                ),
            ));
        }
        let stale_helper = dst.app_info(&helper).await.is_ok();
        let source_dialect = src.grid_info().await?.dialect;
        let cold_because = match &warm {
            None => None,
            Some(_) if source.state != grid::dialect::AppState::Running => Some(format!(
                "the source app {source_app} is {}, not running: there is nothing to copy while it runs",
                source.state
            )),
            Some(_) => match source_dialect {
                d if d >= 4 => None,
                d => Some(format!(
                    "the source grid {source_grid} speaks dialect {d}; reading a running app's volumes needs dialect 4"
                )),
            },
        };
        Ok(Preflight {
            source_grid,
            source_app,
            target_grid,
            target_app,
            helper,
            source,
            target_free_bytes: info.free_bytes,
            target_dialect: info.dialect,
            source_dialect,
            stale_helper,
            update_target: req.update_target,
            warm,
            cold_because,
            stop_timeout_secs,
            keep_source_hours,
        })
    }

    /// Pre-flight, lock, record, then drive the operation in the background.
    pub async fn start(
        self: &std::sync::Arc<Self>,
        req: StartRequest,
        user: &str,
    ) -> Result<OperationView, EngineError> {
        let p = self.preflight(&req).await?;
        let total: u64 = p.source.volumes.iter().map(|v| v.size).sum();
        let lock = Lock {
            version: LOCK_VERSION,
            op_id: new_op_id(),
            action: req.action,
            source_grid: p.source_grid,
            source_app_name: p.source_app,
            target_grid: p.target_grid,
            target_app_name: p.target_app,
            created_at: clock::now(),
            created_by: user.to_owned(),
            console: ConsoleId::this_process(),
            update_target: p.update_target,
            warm: p.warm,
            stop_timeout_secs: p.stop_timeout_secs,
            keep_source_hours: p.keep_source_hours,
            rollback_of: req.rollback_of.clone(),
        };
        let lock_file = LockFile::new(&self.settings.config_dir);
        let lock = tokio::task::spawn_blocking(move || lock_file.acquire(&lock).map(|()| lock))
            .await
            .map_err(|e| EngineError::Unexpected(e.into()))?
            .map_err(|e| match e {
                LockError::Held(_) => EngineError::Locked(e.to_string()),
                other => EngineError::Unexpected(other.into()),
            })?;
        let id = lock.op_id.clone();
        if let Err(e) = store::insert(&self.pool, &lock, Phase::Preflight, total).await {
            // Never a lock without a recorded operation.
            let _ = self.lock.archive("aborted", Some(&id), &id);
            return Err(e.into());
        }
        crate::db::audit(
            &self.pool,
            user,
            "operation.start",
            &format!(
                "{id}: {} {}/{} to {}/{}{}{}",
                lock.action,
                lock.source_grid,
                lock.source_app_name,
                lock.target_grid,
                lock.target_app_name,
                if lock.warm.is_some() { " (warm)" } else { "" },
                match lock.keep_source_hours {
                    Some(h) => format!(", keeping the source {h} h"),
                    None => String::new(),
                }
            ),
        )
        .await?;
        metrics::counter!(
            "migctl_operations_started_total",
            "action" => lock.action.as_str(),
            "copy" => if lock.warm.is_some() { "warm" } else { "cold" }
        )
        .increment(1);
        self.phase(&id, Phase::Preflight, "pre-flight passed; lock taken")
            .await;
        let op = store::get(&self.pool, &id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.clone()))?;
        self.spawn_drive(lock, true);
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid::dialect::{AppInfo, AppState, VolumeSpec};

    fn app(name: &str, state: AppState, sizes: &[u64]) -> AppInfo {
        AppInfo {
            name: name.parse().unwrap(),
            state,
            template: None,
            properties: Default::default(),
            volumes: sizes
                .iter()
                .enumerate()
                .map(|(i, s)| VolumeSpec {
                    name: format!("v{i}").parse().unwrap(),
                    size: *s,
                })
                .collect(),
            machine: None,
        }
    }

    #[test]
    fn only_a_stopped_target_of_the_same_shape_is_updated_and_only_when_asked() {
        let west: GridName = "west".parse().unwrap();
        let shop = app("shop", AppState::Running, &[1 << 20, 4096]);
        let same = app("copy", AppState::Stopped, &[1 << 20, 4096]);
        assert!(
            not_updatable(&shop, &same, &west, false)
                .unwrap()
                .contains("update the existing target")
        );
        assert_eq!(not_updatable(&shop, &same, &west, true), None);
        let failed = app("copy", AppState::Failed, &[1 << 20, 4096]);
        assert_eq!(not_updatable(&shop, &failed, &west, true), None);
        let running = app("copy", AppState::Running, &[1 << 20, 4096]);
        assert_eq!(
            not_updatable(&shop, &running, &west, true).as_deref(),
            Some("on grid west is running; stop it first: only a stopped app is updated")
        );
        let other = app("copy", AppState::Stopped, &[2 << 20]);
        let why = not_updatable(&shop, &other, &west, true).unwrap();
        assert!(why.contains("has other volumes (v0 2 MiB)"), "{why}");
    }
}
