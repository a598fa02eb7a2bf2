//! Carrying out reconciliation's steps in order. A failed step keeps the
//! lock with the reason; the outcome is recorded last, after the grids the
//! operation touched have been read again, so that what the API and the
//! grid pages say agrees with the outcome the moment it is published.

use super::{Engine, EngineError, destroy, helper_name, remove_helper, store};
use crate::lock::Lock;
use crate::reconcile::{Outcome as Decided, Step};
use app::model::Outcome;

impl Engine {
    pub(super) async fn apply(&self, lock: &Lock, steps: Vec<Step>) {
        let op = &lock.op_id;
        for step in steps {
            let done = match &step {
                Step::Finish(decided) => match decided {
                    Decided::Done => {
                        self.conclude(lock, Outcome::Done, None, "the operation is complete")
                            .await
                    }
                    Decided::Failed(r) => self.conclude(lock, Outcome::Failed, Some(r), r).await,
                },
                Step::Hold(reason) | Step::Nothing(reason) | Step::Wait(reason) => {
                    let _ = store::set_reason(&self.pool, op, reason).await;
                    self.log(op, format!("lock kept: {reason}")).await;
                    Ok(())
                }
                act => self.act(lock, act).await,
            };
            match done {
                // The outcome's phase event is an operation's last event:
                // streams end with it.
                Ok(())
                    if matches!(
                        step,
                        Step::Hold(_) | Step::Nothing(_) | Step::Wait(_) | Step::Finish(_)
                    ) => {}
                Ok(()) => self.log(op, format!("{step}: done")).await,
                Err(e) => {
                    let reason = format!("{step} failed: {e}; the lock is kept");
                    let _ = store::set_reason(&self.pool, op, &reason).await;
                    self.log(op, reason).await;
                    return;
                }
            }
        }
    }

    /// One step that changes a grid.
    async fn act(&self, lock: &Lock, step: &Step) -> Result<(), EngineError> {
        match step {
            Step::DestroyHelper => {
                let c = self.connection(&lock.target_grid).await?;
                remove_helper(&c, &helper_name(&lock.target_app_name)?, 30).await?;
            }
            Step::StartSource => {
                let c = self.connection(&lock.source_grid).await?;
                c.app_start(&lock.source_app_name).await?;
            }
            Step::DestroySource => {
                let c = self.connection(&lock.source_grid).await?;
                destroy(&c, &lock.source_app_name).await?;
            }
            Step::DestroyTarget => {
                let c = self.connection(&lock.target_grid).await?;
                destroy(&c, &lock.target_app_name).await?;
            }
            Step::Finish(_) | Step::Hold(_) | Step::Nothing(_) | Step::Wait(_) => {}
        }
        Ok(())
    }

    /// Publishes an operation's outcome: the touched grids are read again,
    /// then the outcome (and `reason`, for the row) is recorded, the lock
    /// archived and the last event (`text`) stored. Used by reconciliation
    /// and cancel.
    pub(super) async fn conclude(
        &self,
        lock: &Lock,
        outcome: Outcome,
        reason: Option<&str>,
        text: &str,
    ) -> Result<(), EngineError> {
        self.grids
            .refresh_only(&[&lock.source_grid, &lock.target_grid])
            .await;
        let op = &lock.op_id;
        store::finish(&self.pool, op, outcome, reason).await?;
        let archived = self
            .lock
            .archive(outcome.as_str(), Some(op), op)
            .map(drop)
            .map_err(|e| EngineError::Unexpected(e.into()));
        self.phase(op, outcome.phase(), text).await;
        archived
    }

    /// Records the end of an operation whose lock has already gone (an
    /// override): its row and its last event.
    pub(super) async fn record_end(
        &self,
        op: &str,
        outcome: Outcome,
        text: &str,
    ) -> Result<(), EngineError> {
        store::finish(&self.pool, op, outcome, Some(text)).await?;
        self.phase(op, outcome.phase(), text).await;
        Ok(())
    }
}
