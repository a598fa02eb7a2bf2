//! Rolling a run back: whether it can be, and where it begins — one rule
//! for an operator's request and for the page's button — and the request.
//! The walk back itself is `drive`'s (stages `undo` and `recheck`).

use super::{GroupError, Groups, store, view};
use group::Definition;
use operation_model::group_run::{GroupRunView, Position, RunState, Stage};
use std::sync::Arc;

/// Where a rollback begins, and whether the operation at that position
/// stays current (an aborted rollback continued: its operation ended done).
pub(super) struct Turn {
    pub to: Position,
    pub keep_op: bool,
}

impl Groups {
    /// Where rolling `run` back would begin, or why it cannot (the words
    /// follow "group run ID"). Transient obstacles (its task still busy)
    /// are [`Groups::roll_back`]'s.
    pub(super) async fn turn(
        &self,
        run: &store::RunRow,
        def: &Definition,
    ) -> Result<Result<Turn, String>, GroupError> {
        if !def.keep_source {
            return Ok(Err("moved its members without keeping their sources (keep_source = true in its definition): there is nothing to roll back to".into()));
        }
        let pos = run.position()?;
        let back = pos.is_some_and(|p| p.stage.back());
        match run.state {
            RunState::Running => {
                return Ok(Err(
                    "is running: pause it first (what is in flight finishes), then roll it back"
                        .into(),
                ));
            }
            RunState::RolledBack => {
                return Ok(Err(
                    "is rolled back already: nothing is left to roll back".into()
                ));
            }
            RunState::Paused if back => {
                return Ok(Err(
                    "is rolling back already (paused): resume it to go on".into()
                ));
            }
            RunState::Paused | RunState::Done | RunState::Aborted => {}
        }
        // The operation at the position: the one recorded, or one started
        // but not recorded before the console stopped.
        let mut op = run.current_op.clone();
        if op.is_none()
            && let Some(p) = pos
            && p.stage == Stage::Operation
            && let Some(member) = def
                .steps
                .get(p.step as usize)
                .and_then(|s| def.member(&s.member))
        {
            op = store::unrecorded_op(
                &self.pool,
                (&def.source_grid, &member.app),
                (&def.target_grid, &member.target_app),
                run.stage_since,
            )
            .await?;
        }
        let mut op_done = false;
        if let Some(op) =
            op.filter(|_| pos.is_some_and(|p| matches!(p.stage, Stage::Operation | Stage::Undo)))
        {
            match crate::operation::store::get(&self.pool, &op)
                .await?
                .and_then(|o| o.outcome)
            {
                None => {
                    return Ok(Err(format!(
                        "has operation {op} in flight: wait for its outcome, then roll back"
                    )));
                }
                Some(o) => op_done = o == app::model::Outcome::Done,
            }
        }
        let turn = match pos {
            // An aborted rollback goes on from where it stopped.
            Some(p) if back => Turn {
                to: p,
                keep_op: op_done,
            },
            _ => match group::position::first_back(def, pos, op_done) {
                Some(to) => Turn { to, keep_op: false },
                None => {
                    return Ok(Err(
                        "has moved no member: there is nothing to roll back".into()
                    ));
                }
            },
        };
        // Every member still to return has a kept source to return to (the
        // engine's own rule), or is back already.
        let last = match turn.to.stage {
            Stage::Recheck => turn.to.step.checked_sub(1),
            _ => Some(turn.to.step),
        };
        for step in last.map(|l| (0..=l).rev()).into_iter().flatten() {
            let member = &def.steps[step as usize].member;
            let Some(moving) = store::moving_op(&self.pool, &run.id, step).await? else {
                return Ok(Err(format!(
                    "cannot roll back step {} ({member}): no operation of this run moved it",
                    step + 1
                )));
            };
            if turn.keep_op && step == turn.to.step {
                continue;
            }
            if store::unrecorded_rollback(&self.pool, &moving, run.stage_since)
                .await?
                .is_some()
            {
                continue;
            }
            if let Err(e) = self
                .engine
                .rollback_request(&moving, &rollback_of(def, step))
                .await
            {
                return Ok(Err(format!(
                    "cannot roll back step {} ({member}): {e}",
                    step + 1
                )));
            }
        }
        Ok(Ok(turn))
    }

    /// Turns the run back: the members it moved return to their kept
    /// sources, the last moved first, each by a rollback operation, the
    /// step's checks after applied again once it is back; an aborted
    /// rollback goes on from where it stopped. For a run that is paused
    /// (not in the middle of a step's operation), done or aborted, whose
    /// definition kept the sources.
    pub async fn roll_back(
        self: &Arc<Self>,
        id: &str,
        user: &str,
        reason: &str,
    ) -> Result<GroupRunView, GroupError> {
        let reason = super::given_reason(reason, "the run is rolled back")?;
        let mut driving = self.driving.lock().await;
        let conflict = |why: String| Err(GroupError::Conflict(format!("group run {id} {why}")));
        let run = self.run(id).await?;
        // Its task finishes what it began first (an attempt, an
        // operation's start): nothing of it may land on the way back. (A
        // running run is refused by the rule below.)
        if run.state != RunState::Running && driving.contains(id) {
            return conflict(format!(
                "is {} but still finishing what it began (an attempt, or an operation's start or outcome): roll it back once that is over",
                run.state
            ));
        }
        let def = view::definition(&run)?;
        let turn = match self.turn(&run, &def).await? {
            Ok(turn) => turn,
            Err(why) => return conflict(why),
        };
        if run.state.ended() {
            self.no_other_run_moves(&def, Some(id)).await?;
        }
        let why = format!("rolling back: asked by {user}: {reason}");
        // The turn and its audit line are kept together, or neither is.
        let mut tx = self.pool.begin().await?;
        let turned = store::turn_back(
            &mut *tx,
            id,
            (&[run.state], run.position()?),
            (Some(turn.to), turn.keep_op),
            &why,
        )
        .await?;
        if !turned {
            drop(tx);
            let now = self.run(id).await?;
            return conflict(format!(
                "changed meanwhile (it is {}); look again",
                now.state
            ));
        }
        crate::db::audit(&mut *tx, user, "group.rollback", &format!("{id}: {reason}")).await?;
        tx.commit().await?;
        driving.insert(id.to_owned());
        self.spawn(id.to_owned());
        drop(driving);
        self.view(id).await
    }
}

/// The rollback of step `step`'s migrate, as a run asks it: the console's
/// defaults, warm when the step was.
pub(super) fn rollback_of(def: &Definition, step: u32) -> crate::operation::RollbackRequest {
    crate::operation::RollbackRequest {
        keep_target: None,
        keep_target_hours: None,
        warm: def.steps.get(step as usize).is_some_and(|s| s.warm),
        stop_timeout_secs: None,
    }
}
