//! A person steps in: an operator cancels a running operation, or an admin
//! overrides the lock. Both take turns with reconciliation (`settling`).

use super::{
    Engine, EngineError, Field, cutover_signal_name, destroy, helper_name, remove_helper, store,
};
use crate::lock::LockState;
use app::model::{Action, OperationView, Outcome, Phase};
use grid::dialect::AppState;
use operation_model::Settled;

/// What `cancel` did, for the answer to the operator.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    pub operation: OperationView,
    pub cleanup: Vec<String>,
}

/// What an override did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Overridden {
    pub op_id: String,
    pub archived_to: String,
    pub helper_destroyed: bool,
}

impl Engine {
    /// Cancels a running operation with the clean-up its phase calls for
    /// (`Phase::cancel`): before the source is stopped, the helper goes and
    /// the lock is released; during the copy, the helper is stopped, the
    /// source restarted and the partial target removed; once the target
    /// starts, cancelling is refused.
    pub async fn cancel(&self, id: &str, user: &str) -> Result<Cancelled, EngineError> {
        let _settling = self.settling.lock().await;
        let op = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()))?;
        if let Some(outcome) = op.outcome {
            return Err(EngineError::Ended {
                id: id.to_owned(),
                outcome,
            });
        }
        if !op.phase.cancellable() {
            return Err(EngineError::NotCancellable {
                id: id.to_owned(),
                phase: op.phase,
                starting: match op.action {
                    Action::Migrate | Action::Rollback => "target",
                    Action::Snapshot => "source",
                },
            });
        }
        let lock = match self.lock.read() {
            LockState::Held(l) if l.op_id == id => l,
            _ => {
                return Err(EngineError::Locked(format!(
                    "operation {id} does not hold the lock"
                )));
            }
        };
        self.log(
            id,
            format!("cancel requested by {user} in phase {}", op.phase),
        )
        .await;
        let mut cleanup = vec![];
        let dst = self.connection(&lock.target_grid).await?;
        let src = self.connection(&lock.source_grid).await?;
        let helper = helper_name(&lock.target_app_name)?;
        if dst.app_info(&helper).await.is_ok() {
            remove_helper(&dst, &lock.target_app_name, 10).await?;
            self.settled(id, Settled::HelperRemoved).await;
            cleanup.push(format!("stopped and removed {helper}"));
        }
        match src.app_info(&lock.source_app_name).await {
            Ok(info) if info.state != AppState::Running => {
                // A stop the helper began ends first (it cannot be started
                // while it stops).
                if info.state == AppState::Stopping {
                    src.app_stop(&lock.source_app_name, Some(lock.stop_timeout()))
                        .await?;
                }
                src.app_start(&lock.source_app_name).await?;
                self.settled(id, Settled::SourceStarted).await;
                cleanup.push(format!("restarted the source app {}", lock.source_app_name));
            }
            _ => {}
        }
        if lock.update_target {
            cleanup.push(format!(
                "kept the existing target {} (it may be partly updated)",
                lock.target_app_name
            ));
        } else if let Ok(info) = dst.app_info(&lock.target_app_name).await
            && matches!(info.state, AppState::Stopped | AppState::Failed)
        {
            destroy(&dst, &lock.target_app_name).await?;
            self.settled(id, Settled::TargetRemoved).await;
            cleanup.push(format!(
                "removed the partial target {}",
                lock.target_app_name
            ));
        }
        cleanup.push("released the lock".into());
        // The row's reason says who cancelled; the last event says what was cleaned up.
        let reason = format!("cancelled by {user}");
        self.conclude(
            &lock,
            Outcome::Cancelled,
            Some(&reason),
            &cleanup.join("; "),
        )
        .await?;
        crate::db::audit(
            &self.pool,
            user,
            "operation.cancel",
            &format!("{id}: {}", cleanup.join("; ")),
        )
        .await?;
        let operation = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()))?;
        Ok(Cancelled { operation, cleanup })
    }

    /// "Cut over now" for a warm operation that is pre-copying: creates
    /// the signal app its helper looks for (`MigCutNow_<target>`); the
    /// helper stops the source and runs the final pass. Asking twice is
    /// the same as asking once.
    pub async fn cutover(&self, id: &str, user: &str) -> Result<String, EngineError> {
        let _settling = self.settling.lock().await;
        let op = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| EngineError::NoSuchOperation(id.to_owned()))?;
        let refuse = |why: String| EngineError::NoCutover {
            id: id.to_owned(),
            why,
        };
        if let Some(outcome) = op.outcome {
            return Err(EngineError::Ended {
                id: id.to_owned(),
                outcome,
            });
        }
        if !op.warm {
            return Err(refuse(
                "is cold: its source is stopped for the whole copy; there is nothing to cut over"
                    .into(),
            ));
        }
        if !matches!(op.phase, Phase::Provisioning | Phase::PreCopying) {
            return Err(refuse(format!(
                "is {}: the cutover has begun already",
                op.phase.label()
            )));
        }
        let lock = match self.lock.read() {
            LockState::Held(l) if l.op_id == id => l,
            _ => {
                return Err(EngineError::Locked(format!(
                    "operation {id} does not hold the lock"
                )));
            }
        };
        let dst = self.connection(&lock.target_grid).await?;
        let signal = cutover_signal_name(&lock.target_app_name)?;
        let said = if dst.app_info(&signal).await.is_ok() {
            format!("cut over now was already asked for; {user} asked again")
        } else {
            let descriptor = grid::dialect::Descriptor {
                template: None,
                properties: [
                    ("requested_by".to_owned(), user.to_owned()),
                    ("operation".to_owned(), id.to_owned()),
                ]
                .into(),
                volumes: vec![],
                machine: None,
            };
            dst.app_create(&signal, &descriptor).await?;
            format!(
                "cut over now requested by {user}: the helper stops the source after the pass under way and copies the last changes"
            )
        };
        self.log(id, said.clone()).await;
        crate::db::audit(&self.pool, user, "operation.cutover", id).await?;
        Ok(said)
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
            return Err(EngineError::field(
                Field::Reason,
                "reason: say why the lock is overridden",
            ));
        }
        let _settling = self.settling.lock().await;
        let state = self.lock.read();
        let held = match &state {
            LockState::Free => {
                return Err(EngineError::BadInput("there is no lock to override".into()));
            }
            LockState::Held(l) if l.op_id != op_id => {
                return Err(EngineError::field(
                    Field::OpId,
                    format!(
                        "op_id: the lock belongs to {}; type that id to override it",
                        l.op_id
                    ),
                ));
            }
            LockState::Unreadable { .. } if op_id != "unreadable" => {
                return Err(EngineError::field(
                    Field::OpId,
                    "op_id: the lock is unreadable; type `unreadable` to override it",
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
                remove_helper(&dst, &l.target_app_name, 10).await?;
                self.settled(&l.op_id, Settled::HelperRemoved).await;
                helper_destroyed = true;
            }
        }
        let expected = held.as_ref().map(|l| l.op_id.as_str());
        let dest = self
            .lock
            .archive("overridden", expected, op_id)
            .map_err(|e| EngineError::Unexpected(e.into()))?;
        let text = format!("lock overridden by {admin}: {reason}");
        if let Some(l) = &held {
            self.settled(&l.op_id, Settled::LockOverridden).await;
            self.reread_grids(l).await;
            self.record_end(op_id, Outcome::Failed, &text).await?;
        }
        let detail = serde_json::json!({"op_id": op_id, "reason": reason, "archived_to": dest.display().to_string(), "helper_destroyed": helper_destroyed});
        crate::db::audit(&self.pool, admin, "lock.override", &detail.to_string()).await?;
        Ok(Overridden {
            op_id: op_id.to_owned(),
            archived_to: dest.display().to_string(),
            helper_destroyed,
        })
    }
}
