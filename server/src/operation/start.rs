//! Starting an operation: pre-flight (nothing changes anywhere), the lock
//! taken atomically, the operation recorded, then the drive in the background.

use super::{Engine, EngineError, Field, HELPER_TEMPLATE, helper_name, not_found, store, travel};
use crate::clock;
use crate::lock::{ConsoleId, LOCK_VERSION, Lock, LockError, LockFile, LockState};
use crate::reconcile::Place;
use app::model::{Action, OperationView, Phase};
use grid::{AppName, GridName};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct StartRequest {
    pub source_grid: String,
    pub source_app: String,
    pub target_grid: String,
    pub target_app: String,
    pub action: Action,
    /// The target app exists (stopped, the source's volumes): the copy
    /// updates it, moving only the blocks that differ, and never destroys it.
    #[serde(default)]
    pub update_target: bool,
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
    /// A `MigHelper_<target>` left by an aborted run, destroyed before provisioning.
    pub stale_helper: bool,
    /// The target exists and is updated in place.
    pub update_target: bool,
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
    use rand::Rng;
    let t = clock::now().0;
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
    /// Pre-flight: valid names, the mode allows the action, no lock, both
    /// grids reachable, the source exists, the target name is free, the
    /// target grid has room. Nothing is changed anywhere.
    pub(super) async fn preflight(&self, req: &StartRequest) -> Result<Preflight, EngineError> {
        let source_grid = parse_name::<GridName>(Field::SourceGrid, &req.source_grid)?;
        let source_app = parse_name::<AppName>(Field::SourceApp, &req.source_app)?;
        let target_grid = parse_name::<GridName>(Field::TargetGrid, &req.target_grid)?;
        let target_app = parse_name::<AppName>(Field::TargetApp, &req.target_app)?;
        let helper = helper_name(&target_app)?;
        if !req.action.allowed_by(self.settings.mode) {
            return Err(EngineError::ModeForbids {
                mode: self.settings.mode,
                action: req.action,
            });
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
            target_dialect: info.dialect,
            stale_helper,
            update_target: req.update_target,
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
