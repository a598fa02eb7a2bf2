//! Driving an operation: provision the helper (fresh starts), then observe,
//! decide, and meter or settle until it has an outcome or is held (a grid
//! that cannot be asked is asked again, the lock kept meanwhile). At
//! start-up an existing lock is driven the same way. Drive tasks are
//! tracked; at shutdown they stop where they are and the lock stays.

use super::settle::Applied;
use super::{Driving, Engine, store};
use crate::lock::{Lock, LockState};
use crate::reconcile::{self, Place, Seen, Step};
use app::model::Phase;
use std::sync::Arc;
use std::time::Duration;

/// How long a restarted console waits for a helper whose provisioning was
/// under way when the previous console stopped.
pub const PROVISION_GRACE: Duration = Duration::from_secs(20);
/// How soon a grid that could not be asked is asked again, doubling up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(30);

impl Engine {
    /// Where this console runs relative to the operation's apps.
    pub(super) fn place(&self, lock: &Lock) -> Place {
        Place::of(
            lock,
            self.settings.current_grid.as_ref(),
            self.settings.current_app.as_ref(),
        )
    }

    pub(super) fn spawn_drive(self: &Arc<Self>, lock: Lock, fresh: bool) {
        use tracing::Instrument;
        let me = self.clone();
        let stop = self.drives.clone();
        let span = tracing::info_span!("operation", op = %lock.op_id);
        self.tasks.spawn(async move {
            let op = lock.op_id.clone();
            tokio::select! {
                () = me.drive(lock, fresh) => {}
                () = stop.cancelled() => {
                    tracing::info!(op, "console stopping: the operation keeps its lock and resumes at the next start");
                }
            }
        }.instrument(span));
    }

    /// At start-up: an existing lock is reconciled (and metered if the helper still works).
    pub async fn resume(self: &Arc<Self>) {
        if let (Some(g), Some(a)) = (&self.settings.current_grid, &self.settings.current_app)
            && let Ok(Some(op)) = store::copy_origin(&self.pool, g.as_str(), a.as_str()).await
        {
            self.note_copy_origin(&op);
        }
        match self.lock.read() {
            LockState::Held(lock) => {
                if matches!(store::get(&self.pool, &lock.op_id).await, Ok(None))
                    && let Err(e) = store::insert(&self.pool, &lock, Phase::Reconciling, 0).await
                {
                    tracing::error!(error = %e, "cannot record the locked operation");
                    return;
                }
                self.log(&lock.op_id, "console started: reconciling from the lock")
                    .await;
                self.spawn_drive(lock, false);
            }
            LockState::Unreadable { problem, .. } => {
                tracing::error!(%problem, "the lock file is unreadable; an admin must inspect and override it");
            }
            LockState::Free => {}
        }
    }

    /// Operation `op` still holds the lock (a cancel or an override may
    /// have settled it meanwhile).
    fn holds_lock(&self, op: &str) -> bool {
        matches!(self.lock.read(), LockState::Held(l) if l.op_id == op)
    }

    async fn drive(self: Arc<Self>, lock: Lock, fresh: bool) {
        let op = lock.op_id.clone();
        if let Ok(mut set) = self.driving.lock() {
            set.insert(op.clone());
        }
        let _driving = Driving(&self, op.clone());
        if fresh {
            // In turn with a cancel or an override: one that comes while the
            // helper is being provisioned waits until it exists, and so finds
            // and removes it (else the helper would appear after the cancel
            // and move the app with no lock). One that came first leaves
            // nothing to provision.
            let _settling = self.settling.lock().await;
            if !self.holds_lock(&op) {
                return;
            }
            if let Err(e) = self.provision(&lock).await {
                self.log(&op, format!("provisioning failed: {e}")).await;
            }
        }
        // A provision request may still be on its way when a console dies:
        // give the helper time to appear before calling the run interrupted.
        let phase_at_start = store::get(&self.pool, &op)
            .await
            .ok()
            .flatten()
            .map(|o| o.phase);
        let provisioning =
            !fresh && matches!(phase_at_start, Some(Phase::Preflight | Phase::Provisioning));
        let started = std::time::Instant::now();
        let place = self.place(&lock);
        // A console works on it now: the last word of one that stopped
        // (a held lock's reason) no longer holds.
        self.say_reason(&op, None).await;
        let mut retry = RETRY_FIRST;
        let mut settle_retry = RETRY_FIRST;
        let mut said = String::new();
        loop {
            let seen = self.observe(&lock).await;
            if provisioning && seen.helper == Seen::Absent && started.elapsed() < PROVISION_GRACE {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let steps = reconcile::decide(&lock, place, &seen);
            let next = steps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", then ");
            let line = format!("observed: {seen}; next: {next}");
            if line != said {
                self.log(&op, line.clone()).await;
                said = line;
            }
            if retry > RETRY_FIRST && !matches!(&steps[..], [Step::Retry(_)]) {
                self.say_reason(&op, None).await;
                retry = RETRY_FIRST;
            }
            match &steps[..] {
                [Step::Wait(_)] => {
                    self.meter(&lock).await;
                    continue;
                }
                // A grid that cannot be asked: the lock stays, saying why,
                // and the console asks again until the grid answers (or a
                // cancel or an override settles the operation).
                [Step::Retry(why)] => {
                    self.say_reason(&op, Some(why)).await;
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    if !self.holds_lock(&op) {
                        return;
                    }
                    continue;
                }
                _ => {}
            }
            let applied = {
                // A cancel or an override may have settled the operation meanwhile.
                let _settling = self.settling.lock().await;
                if !self.holds_lock(&op) {
                    return;
                }
                // A console in a snapshot copy records only what its database
                // held when the copy was made; the rest is the source's.
                if steps != [Step::InSnapshotCopy] {
                    self.catch_up(&lock).await;
                }
                // A step that failed before is tried again: its reason is
                // said again if it fails again, never kept past a success.
                if settle_retry > RETRY_FIRST {
                    self.say_reason(&op, None).await;
                }
                self.phase(
                    &op,
                    Phase::Reconciling,
                    "settling the operation from what the grids report",
                )
                .await;
                self.apply(&lock, steps).await
            };
            match applied {
                Applied::All => return,
                // A step that failed (a grid that dropped the connection, a
                // database busy a moment): nothing else would settle the
                // operation until the console restarts, so look at the
                // grids again and decide anew, less and less often, as
                // for a grid that cannot be asked.
                Applied::Failed => {
                    tokio::time::sleep(settle_retry).await;
                    settle_retry = (settle_retry * 2).min(RETRY_MAX);
                    if !self.holds_lock(&op) {
                        return;
                    }
                    said.clear();
                }
            }
        }
    }
}
