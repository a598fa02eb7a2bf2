//! Rolling back a migrate that kept its source: a new operation of its own
//! kind (`rollback`, linked both ways) that moves the app from the
//! migrate's target back into the kept source — an update of an existing
//! target, so only the blocks the target changed since the cutover move —
//! verifies, starts the kept source, and destroys or keeps the migrate's
//! target as the operator chose. The lock, pre-flight, verification and
//! reconciliation are a migrate's; a rollback never destroys the kept
//! source it moves into (it is an updated target).

use super::kept::{ReleaseCheck, Unreleasable};
use super::{Engine, EngineError, StartRequest, store};
use app::model::{Action, KeptState, OperationView, Outcome, PlanView};
use serde::Deserialize;
use std::sync::Arc;

/// How to roll back: what becomes of the migrate's target (the rollback's
/// source), and how to copy.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Keep the migrate's target, stopped, once the kept source runs
    /// verified (it becomes this rollback's kept source); default: the
    /// console's `keep_source`.
    #[serde(default)]
    pub keep_target: Option<bool>,
    /// Hours the kept target stays, 1 to 8760; default: the console's
    /// `keep_source_hours`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8760)]
    pub keep_target_hours: Option<u64>,
    /// Copy while the target keeps serving, pass after pass; it stops only
    /// for the last changes.
    #[serde(default)]
    pub warm: bool,
    /// Seconds the target may take to stop by itself before it is forced.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub stop_timeout_secs: Option<u64>,
}

impl Engine {
    /// The operation that rolls back migrate `id`, as a start request.
    pub(crate) async fn rollback_request(
        &self,
        id: &str,
        req: &RollbackRequest,
    ) -> Result<StartRequest, EngineError> {
        let op = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()))?;
        let not = |why: String| EngineError::NotRollbackable {
            id: id.to_owned(),
            why,
        };
        if op.action != Action::Migrate && op.action != Action::Rollback {
            return Err(not(format!(
                "it is a {}; only a migrate (or a rollback) that kept its source moves back",
                op.action
            )));
        }
        if op.outcome != Some(Outcome::Done) {
            return Err(not(match op.outcome {
                None => "it is still running".to_owned(),
                Some(o) => format!("it ended {o}"),
            }));
        }
        let kept = match &op.kept_source {
            Some(k) if k.state == KeptState::Kept => k.clone(),
            Some(k) => {
                return Err(not(format!(
                    "its source {}/{} was {} already",
                    k.grid, k.app, k.state
                )));
            }
            None => {
                return Err(not(
                    "it did not keep its source (keep_source), so there is nothing to move back into"
                        .into(),
                ));
            }
        };
        Ok(StartRequest {
            source_grid: op.target_grid,
            source_app: op.target_app,
            target_grid: kept.grid,
            target_app: kept.app,
            action: Action::Rollback,
            update_target: true,
            warm: req.warm,
            cutover: None,
            cutover_at: None,
            stop_timeout_secs: req.stop_timeout_secs,
            keep_source: req.keep_target,
            keep_source_hours: req.keep_target_hours,
            rollback_of: Some(id.to_owned()),
        })
    }

    /// Starts the rollback of migrate `id` (as `by`).
    pub async fn rollback(
        self: &Arc<Self>,
        id: &str,
        by: &str,
        req: &RollbackRequest,
    ) -> Result<OperationView, EngineError> {
        let start = self.rollback_request(id, req).await?;
        self.start(start, by).await
    }

    /// What the rollback of migrate `id` would do: its plan, whose bytes
    /// to move are what the target changed since the cutover (the blocks
    /// that differ from the kept source).
    pub async fn plan_rollback(
        &self,
        id: &str,
        req: &RollbackRequest,
    ) -> Result<PlanView, EngineError> {
        let start = self.rollback_request(id, req).await?;
        let mut plan = self.plan(&start).await?;
        plan.changed_since = store::get(&self.pool, id)
            .await?
            .and_then(|op| op.finished_at);
        Ok(plan)
    }

    /// Pre-flight of a rollback: the kept source it moves into is stopped
    /// and holds what the helper verified at the cutover — unless an
    /// earlier rollback of the same migrate wrote into it and did not
    /// finish (then this one moves what still differs).
    pub(super) async fn rollback_target_unchanged(
        &self,
        kept: &store::Kept,
    ) -> Result<(), EngineError> {
        let earlier = store::rollbacks_of(&self.pool, &kept.op_id).await?;
        let partly = earlier.iter().any(|r| r.outcome != Some(Outcome::Done));
        match self.releasable(kept).await {
            Ok(()) => Ok(()),
            Err(ReleaseCheck::Failed(e)) => Err(e),
            Err(ReleaseCheck::Found(Unreleasable::Changed(_))) if partly => Ok(()),
            Err(ReleaseCheck::Found(why)) => Err(EngineError::NotRollbackable {
                id: kept.op_id.clone(),
                why: format!(
                    "its kept source {}/{} cannot take it: {why}",
                    kept.grid, kept.app
                ),
            }),
        }
    }
}
