//! Carrying out reconciliation's steps in order. A failed step keeps the
//! lock with the reason; the outcome is recorded last, after the grids the
//! operation touched have been read again, so that what the API and the
//! grid pages say agrees with the outcome the moment it is published.

use super::{Engine, EngineError, destroy, remove_helper, store};
use crate::clock;
use crate::lock::Lock;
use crate::reconcile::{Outcome as Decided, Step};
use app::model::Outcome;
use operation_model::Settled;
use std::time::Duration;

/// How long publishing an outcome waits for the grids to be re-read.
const REREAD_LIMIT: Duration = Duration::from_secs(5);

/// How carrying out a decision's steps ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// Every step was carried out (the last one ends the operation, or
    /// keeps its lock for an operator).
    All,
    /// A step failed: the lock is kept with the reason, and the grids are
    /// to be looked at again (a failure may be passing).
    Failed,
}

impl Engine {
    pub(super) async fn apply(&self, lock: &Lock, steps: Vec<Step>) -> Applied {
        let op = &lock.op_id;
        for step in steps {
            let done = match &step {
                Step::Finish(decided) => match decided {
                    Decided::Done => match self.rolled_back(lock).await {
                        Err(e) => Err(e),
                        Ok(()) => {
                            let mut text = "the operation is complete".to_owned();
                            if let Some(of) = &lock.rollback_of {
                                text = format!(
                                    "{text}: {}/{} runs again with what {}/{} changed since migrate {of}",
                                    lock.target_grid,
                                    lock.target_app_name,
                                    lock.source_grid,
                                    lock.source_app_name
                                );
                            }
                            if let Some(said) = self.kept_until(op).await {
                                text = format!("{text}; {said}");
                            }
                            self.conclude(lock, Outcome::Done, None, &text).await
                        }
                    },
                    Decided::Failed(r) => self.conclude(lock, Outcome::Failed, Some(r), r).await,
                },
                Step::InSnapshotCopy => self.record_copy(lock).await,
                Step::Hold(reason) | Step::Wait(reason) | Step::Retry(reason) => {
                    self.say_reason(op, Some(reason)).await;
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
                        Step::Hold(_)
                            | Step::InSnapshotCopy
                            | Step::Wait(_)
                            | Step::Retry(_)
                            | Step::Finish(_)
                    ) => {}
                Ok(()) => self.log(op, format!("{step}: done")).await,
                Err(e) => {
                    let reason = format!("{step} failed: {e}; the lock is kept");
                    self.say_reason(op, Some(&reason)).await;
                    self.log(op, reason).await;
                    return Applied::Failed;
                }
            }
        }
        Applied::All
    }

    /// One step that changes a grid, recorded once done (the evidence the
    /// outcome summary says "what became of" from).
    async fn act(&self, lock: &Lock, step: &Step) -> Result<(), EngineError> {
        self.carry_out(lock, step).await?;
        let settled = match step {
            Step::DestroyHelper => Settled::HelperRemoved,
            Step::StartSource => Settled::SourceStarted,
            Step::DestroySource => Settled::SourceDestroyed,
            Step::KeepSource => Settled::SourceKept,
            Step::DestroyTarget => Settled::TargetRemoved,
            Step::Finish(_)
            | Step::Hold(_)
            | Step::InSnapshotCopy
            | Step::Wait(_)
            | Step::Retry(_) => return Ok(()),
        };
        self.settled(&lock.op_id, settled).await;
        Ok(())
    }

    /// Records what the console did to settle `op` (a failure to record is
    /// logged: the grid has changed either way).
    pub(super) async fn settled(&self, op: &str, step: Settled) {
        if let Err(e) = store::add_settled(&self.pool, op, step).await {
            tracing::error!(error = %e, op, "cannot record a settle step");
        }
    }

    async fn carry_out(&self, lock: &Lock, step: &Step) -> Result<(), EngineError> {
        match step {
            Step::DestroyHelper => {
                let c = self.connection(&lock.target_grid).await?;
                remove_helper(&c, &lock.target_app_name, 30).await?;
            }
            Step::StartSource => {
                let c = self.connection(&lock.source_grid).await?;
                c.app_start(&lock.source_app_name).await?;
            }
            Step::DestroySource => {
                let c = self.connection(&lock.source_grid).await?;
                destroy(&c, &lock.source_app_name).await?;
            }
            Step::KeepSource => {
                self.fingerprint_kept(lock).await?;
                let hours = lock
                    .keep_source_hours
                    .unwrap_or(operation_model::DEFAULT_KEEP_SOURCE_HOURS);
                let until = clock::now().plus_hours(hours);
                store::keep_source(
                    &self.pool,
                    &lock.op_id,
                    lock.source_grid.as_str(),
                    lock.source_app_name.as_str(),
                    until,
                )
                .await?;
            }
            Step::DestroyTarget => {
                let c = self.connection(&lock.target_grid).await?;
                destroy(&c, &lock.target_app_name).await?;
            }
            Step::Finish(_)
            | Step::Hold(_)
            | Step::InSnapshotCopy
            | Step::Wait(_)
            | Step::Retry(_) => {}
        }
        Ok(())
    }

    /// A rollback that is done ends the kept source it moved into: it runs
    /// again, no longer a kept copy (idempotent: a repeated settle finds it
    /// ended).
    async fn rolled_back(&self, lock: &Lock) -> Result<(), EngineError> {
        let Some(of) = &lock.rollback_of else {
            return Ok(());
        };
        if store::end_kept(
            &self.pool,
            of,
            app::model::KeptState::RolledBack,
            &lock.created_by,
            &format!("rolled back by {}", lock.op_id),
        )
        .await?
        {
            crate::db::audit(
                &self.pool,
                &lock.created_by,
                "kept_source.rolled_back",
                &format!(
                    "{of}: {}/{} runs again, rolled back by {}",
                    lock.target_grid, lock.target_app_name, lock.op_id
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// The kept source's fingerprint: what the helper verified of it (its
    /// reports, stored); without them (an older helper), the source's
    /// block digests now, while it is stopped and verified, so that its
    /// release always has something to check it by.
    async fn fingerprint_kept(&self, lock: &Lock) -> Result<(), EngineError> {
        if !store::verified(&self.pool, &lock.op_id).await?.is_empty() {
            return Ok(());
        }
        let c = self.connection(&lock.source_grid).await?;
        let info = c.app_info(&lock.source_app_name).await?;
        for v in &info.volumes {
            let vol = grid::dialect::VolRef::new(lock.source_app_name.clone(), v.name.clone());
            let h = c
                .vol_hash_with(
                    &vol,
                    helper::plan::block_size(v.size, helper::env::DEFAULT_BLOCK_SIZE),
                    0,
                    None,
                    grid::dialect::HashAlgorithm::Blake3,
                )
                .await?;
            let digest = helper::copy::blocks_digest(&h);
            store::add_verified(&self.pool, &lock.op_id, v.name.as_str(), &digest).await?;
        }
        Ok(())
    }

    /// "source east/shop kept until …" when the operation kept its source.
    async fn kept_until(&self, op: &str) -> Option<String> {
        let kept = store::get(&self.pool, op).await.ok()??.kept_source?;
        Some(format!(
            "source {}/{} kept, stopped, until {} (roll back or release it before then; the deadline releases it once its fingerprint is checked)",
            kept.grid, kept.app, kept.until
        ))
    }

    /// MIG's "manually started snapshot copy": this console woke up inside
    /// the copy, with the database and lock as they were when the source
    /// stopped. Nothing is destroyed anywhere; the operation is recorded as
    /// `elsewhere` (its outcome is the source console's) and this copy of
    /// the lock is archived, so the copy's operator can work.
    async fn record_copy(&self, lock: &Lock) -> Result<(), EngineError> {
        // Inside the copy: where this console runs is the lock's target.
        let source = format!("{}/{}", lock.source_grid, lock.source_app_name);
        let text = format!(
            "this console runs in {}/{}, a snapshot copy of {source} made by this operation: nothing was destroyed anywhere; the operation's outcome is recorded by the console in {source}; this console is free for new operations",
            lock.target_grid, lock.target_app_name
        );
        self.conclude(lock, Outcome::Elsewhere, Some(&text), &text)
            .await?;
        self.note_copy_origin(&lock.op_id);
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
        self.reread_grids(lock).await;
        let op = &lock.op_id;
        store::finish(&self.pool, op, outcome, reason).await?;
        metrics::counter!(
            "migctl_operations_ended_total",
            "action" => lock.action.as_str(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        if let Ok(Some(row)) = store::get(&self.pool, op).await {
            let copied = u64::try_from(row.bytes_copied).unwrap_or(0);
            let total = u64::try_from(row.bytes_total).unwrap_or(0);
            metrics::counter!("migctl_bytes_copied_total").increment(copied);
            metrics::counter!("migctl_bytes_skipped_total").increment(total.saturating_sub(copied));
        }
        let archived = self
            .lock
            .archive(outcome.as_str(), Some(op), op)
            .map(drop)
            .map_err(|e| EngineError::Unexpected(e.into()));
        self.phase(op, outcome.phase(), text).await;
        archived
    }

    /// Re-reads the operation's grids into the pages' cache, for a few
    /// seconds at most: a grid that does not answer does not hold up the
    /// outcome (its page says when it was last checked).
    pub(super) async fn reread_grids(&self, lock: &Lock) {
        let grids = [&lock.source_grid, &lock.target_grid];
        if tokio::time::timeout(REREAD_LIMIT, self.grids.refresh_only(&grids))
            .await
            .is_err()
        {
            tracing::warn!(
                op = lock.op_id,
                "the grids were not re-read in time; their pages catch up at the next check"
            );
        }
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
