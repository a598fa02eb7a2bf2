//! Kept sources: a migrate that keeps its source leaves it on its grid,
//! stopped, fingerprinted (what the helper verified of it) and with a
//! deadline. Nothing destroys it but its release — an operator's (with a
//! reason) or the deadline's — and a release checks it first: a source
//! that runs, is gone, or no longer matches its fingerprint (it changed
//! behind migctl's back) is never destroyed; the deadline reports it once
//! and keeps it.

use super::observe::digest_now;
use super::{Engine, EngineError, Field, destroy, store};
use crate::clock;
use crate::lock::LockState;
use app::model::{KeptState, OperationView};
use grid::dialect::{AppState, VolRef};
use grid::{AppName, GridName};

/// Why a kept source cannot be released now, as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreleasable {
    /// Someone started it: it is no longer the stopped copy migctl kept.
    NotStopped(AppState),
    /// It is gone from its grid.
    Gone,
    /// A volume no longer holds what the helper verified.
    Changed(String),
    /// No fingerprint was recorded (an older helper): nothing to check it by.
    NoFingerprint,
    /// An operation in flight names it (a rollback into it, say).
    InUse(String),
}

impl std::fmt::Display for Unreleasable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreleasable::NotStopped(s) => write!(
                f,
                "it is {s}: someone started it after the migrate, so it is no longer the copy that was kept; stop it, look at it, then release it (an admin may with \"force\")"
            ),
            Unreleasable::Gone => f.write_str("it is gone from its grid: someone destroyed it"),
            Unreleasable::Changed(v) => write!(
                f,
                "volume {v} no longer matches the fingerprint taken at the cutover: it changed behind migctl's back; look at it, then an admin may release it with \"force\""
            ),
            Unreleasable::NoFingerprint => f.write_str(
                "no fingerprint was recorded for it: nothing to check it by; an admin may release it with \"force\"",
            ),
            Unreleasable::InUse(op) => write!(f, "operation {op} works on it now"),
        }
    }
}

/// How often the console looks for kept sources whose deadline passed
/// (and once at start-up).
pub const KEPT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The longest reason kept.
const MAX_REASON: usize = 500;

impl Engine {
    /// Whether the kept source of `kept` may be destroyed now.
    pub(super) async fn releasable(&self, kept: &store::Kept) -> Result<(), ReleaseCheck> {
        if let LockState::Held(l) = self.lock.read() {
            let names =
                |g: &GridName, a: &AppName| g.as_str() == kept.grid && a.as_str() == kept.app;
            if names(&l.source_grid, &l.source_app_name)
                || names(&l.target_grid, &l.target_app_name)
            {
                return Err(ReleaseCheck::Found(Unreleasable::InUse(l.op_id)));
            }
        }
        let grid: GridName = kept.grid.parse().map_err(|_| {
            ReleaseCheck::Failed(EngineError::BadInput(format!(
                "kept source grid {:?} is not a grid name",
                kept.grid
            )))
        })?;
        let app: AppName = kept.app.parse().map_err(|_| {
            ReleaseCheck::Failed(EngineError::BadInput(format!(
                "kept source app {:?} is not an app name",
                kept.app
            )))
        })?;
        let c = self.connection(&grid).await.map_err(ReleaseCheck::Failed)?;
        let info = match c.app_info(&app).await {
            Ok(info) => info,
            Err(e) if super::not_found(&e) => return Err(ReleaseCheck::Found(Unreleasable::Gone)),
            Err(e) => return Err(ReleaseCheck::Failed(e.into())),
        };
        if info.state != AppState::Stopped {
            return Err(ReleaseCheck::Found(Unreleasable::NotStopped(info.state)));
        }
        let fingerprint = store::verified(&self.pool, &kept.op_id)
            .await
            .map_err(|e| ReleaseCheck::Failed(e.into()))?;
        if fingerprint.is_empty() {
            return Err(ReleaseCheck::Found(Unreleasable::NoFingerprint));
        }
        for v in &info.volumes {
            let Some(expected) = fingerprint.get(v.name.as_str()) else {
                return Err(ReleaseCheck::Found(Unreleasable::Changed(format!(
                    "{} (not in the fingerprint)",
                    v.name
                ))));
            };
            let vol = VolRef::new(app.clone(), v.name.clone());
            match digest_now(&c, &vol, expected).await {
                Some(now) if &now == expected => {}
                Some(_) => {
                    return Err(ReleaseCheck::Found(Unreleasable::Changed(
                        v.name.to_string(),
                    )));
                }
                None => {
                    return Err(ReleaseCheck::Failed(EngineError::Unavailable(format!(
                        "grid {grid} could not hash {vol}; try again"
                    ))));
                }
            }
        }
        // A volume of the fingerprint the app no longer has.
        if let Some(missing) = fingerprint.keys().find(|name| {
            !info
                .volumes
                .iter()
                .any(|v| v.name.as_str() == name.as_str())
        }) {
            return Err(ReleaseCheck::Found(Unreleasable::Changed(format!(
                "{missing} (gone from the app)"
            ))));
        }
        Ok(())
    }

    /// Destroys a kept source whose check passed and records who released it.
    async fn release(&self, kept: &store::Kept, by: &str, reason: &str) -> Result<(), EngineError> {
        let grid: GridName = kept
            .grid
            .parse()
            .map_err(|_| EngineError::BadInput(format!("{:?} is not a grid name", kept.grid)))?;
        let app: AppName = kept
            .app
            .parse()
            .map_err(|_| EngineError::BadInput(format!("{:?} is not an app name", kept.app)))?;
        let c = self.connection(&grid).await?;
        // Started (and perhaps stopped again) while its volumes were hashed?
        match c.app_info(&app).await {
            Ok(info) if info.state == AppState::Stopped => {}
            Ok(info) => {
                return Err(EngineError::NotReleasable {
                    id: kept.op_id.clone(),
                    why: format!(
                        "its source {grid}/{app} is not released: {}",
                        Unreleasable::NotStopped(info.state)
                    ),
                });
            }
            Err(e) if super::not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        destroy(&c, &app).await?;
        // The grid's page agrees once the release is recorded (within a
        // few seconds: a grid slow to answer catches up at its next check).
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.grids.refresh_only(&[&grid]),
        )
        .await;
        if store::end_kept(&self.pool, &kept.op_id, KeptState::Released, by, reason).await? {
            crate::db::audit(
                &self.pool,
                by,
                "kept_source.release",
                &format!("{}: {grid}/{app} destroyed: {reason}", kept.op_id),
            )
            .await?;
        }
        Ok(())
    }

    /// An operator releases operation `id`'s kept source: checked, then
    /// destroyed, audited with `reason`. With `force` (the caller checked
    /// that an admin asks) a source that changed, or has no fingerprint, is
    /// destroyed too — never one that runs or that an operation uses. A
    /// source already gone is recorded as released.
    pub async fn release_source(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        force: bool,
    ) -> Result<OperationView, EngineError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(EngineError::field(
                Field::Reason,
                "reason: say why the kept source is released (it is kept in the audit trail)",
            ));
        }
        let n = reason.chars().count();
        if n > MAX_REASON {
            return Err(EngineError::field(
                Field::Reason,
                format!("reason: {n} characters is too long: {MAX_REASON} at most"),
            ));
        }
        let not = |why: String| EngineError::NotReleasable {
            id: id.to_owned(),
            why,
        };
        let _one = self.releasing.lock().await;
        let op = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()))?;
        let kept = match &op.kept_source {
            Some(k) if k.state == KeptState::Kept => store::kept(&self.pool)
                .await?
                .into_iter()
                .find(|k| k.op_id == id)
                .ok_or_else(|| not("its source was released or rolled back meanwhile".into()))?,
            Some(k) => {
                return Err(not(format!(
                    "its source {}/{} was {} already",
                    k.grid, k.app, k.state
                )));
            }
            None if op.outcome.is_none() => {
                return Err(not(
                    "it is still running: a source is kept once the target runs verified".into(),
                ));
            }
            None => return Err(not("it kept no source".into())),
        };
        let forced =
            match self.releasable(&kept).await {
                Ok(()) => false,
                Err(ReleaseCheck::Failed(e)) => return Err(e),
                Err(ReleaseCheck::Found(Unreleasable::Gone)) => {
                    self.end_gone(&kept, by, reason).await?;
                    return store::get(&self.pool, id)
                        .await?
                        .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()));
                }
                Err(ReleaseCheck::Found(
                    Unreleasable::Changed(_) | Unreleasable::NoFingerprint,
                )) if force => true,
                Err(ReleaseCheck::Found(why)) => {
                    return Err(not(format!(
                        "its source {}/{} is not released: {why}",
                        kept.grid, kept.app
                    )));
                }
            };
        let reason = if forced {
            format!("forced (it did not match its fingerprint): {reason}")
        } else {
            reason.to_owned()
        };
        self.release(&kept, by, &reason).await?;
        store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()))
    }

    /// Records a kept source found gone from its grid as released: nothing
    /// is left to keep (audited).
    async fn end_gone(
        &self,
        kept: &store::Kept,
        by: &str,
        reason: &str,
    ) -> Result<(), EngineError> {
        let why = format!("it was gone from its grid already (destroyed outside migctl): {reason}");
        if store::end_kept(&self.pool, &kept.op_id, KeptState::Released, by, &why).await? {
            crate::db::audit(
                &self.pool,
                by,
                "kept_source.gone",
                &format!("{}: {}/{} {why}", kept.op_id, kept.grid, kept.app),
            )
            .await?;
        }
        Ok(())
    }

    /// The deadline: every kept source whose time has come is checked and
    /// released; one that cannot be is reported (once, audited) and kept.
    /// Returns how many it released.
    /// A source already reported is looked at again only at a console's
    /// start (`first`), so that a changed source is not hashed every
    /// minute; an operator's release checks it again at any time.
    pub async fn release_due(&self, first: bool) -> usize {
        let due = match store::kept(&self.pool).await {
            Ok(all) => all
                .into_iter()
                .filter(|k| k.until <= clock::now() && (first || k.problem.is_none()))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the kept sources");
                return 0;
            }
        };
        let mut released = 0;
        for kept in due {
            let _one = self.releasing.lock().await;
            let problem = match self.releasable(&kept).await {
                Ok(()) => {
                    match self
                        .release(
                            &kept,
                            "migctl",
                            &format!("its deadline {} passed", kept.until),
                        )
                        .await
                    {
                        Ok(()) => {
                            released += 1;
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(op = kept.op_id, error = %e, "a kept source's deadline passed; releasing it failed, trying again later");
                            continue;
                        }
                    }
                }
                // Not now (a grid that does not answer): next time.
                Err(ReleaseCheck::Failed(e)) => {
                    tracing::warn!(op = kept.op_id, error = %e, "a kept source's deadline passed; it could not be checked, trying again later");
                    continue;
                }
                Err(ReleaseCheck::Found(Unreleasable::InUse(_))) => continue,
                Err(ReleaseCheck::Found(Unreleasable::Gone)) => {
                    if let Err(e) = self
                        .end_gone(
                            &kept,
                            "migctl",
                            &format!("its deadline {} passed", kept.until),
                        )
                        .await
                    {
                        tracing::error!(op = kept.op_id, error = %e, "cannot record a gone kept source");
                    }
                    continue;
                }
                Err(ReleaseCheck::Found(why)) => why,
            };
            let text = format!(
                "the deadline passed but {}/{} was not released: {problem}",
                kept.grid, kept.app
            );
            match store::set_kept_problem(&self.pool, &kept.op_id, Some(&text)).await {
                Ok(true) => {
                    tracing::warn!(op = kept.op_id, "{text}");
                    if let Err(e) = crate::db::audit(
                        &self.pool,
                        "migctl",
                        "kept_source.not_released",
                        &format!("{}: {text}", kept.op_id),
                    )
                    .await
                    {
                        tracing::error!(error = %e, "cannot audit a kept source's problem");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "cannot record a kept source's problem"),
            }
        }
        released
    }
}

/// A release check that found a reason not to, or could not look.
pub(super) enum ReleaseCheck {
    Found(Unreleasable),
    Failed(EngineError),
}
