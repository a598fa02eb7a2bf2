//! A run as the API and the pages show it: its steps with their checks'
//! attempts and their operations, and where every member is — from the
//! run's record and, for a member's state, the grids as last checked
//! (never waiting on SSH).

use super::{GroupError, store};
use crate::grids::GridMonitor;
use group::{Check, Definition};
use operation_model::group_run::{
    ApprovalView, GroupRunView, ItemState, ItemView, MemberPlace, MemberView, Position, RunState,
    Stage, StepOperation, StepState, StepView,
};
use sqlx::SqlitePool;

/// The run's definition, read again from what was stored.
pub fn definition(run: &store::RunRow) -> Result<Definition, GroupError> {
    let value: serde_json::Value =
        serde_json::from_str(&run.definition).map_err(anyhow::Error::from)?;
    Definition::from_json(value).map_err(GroupError::Definition)
}

/// The check at `pos` (a `before`, `after` or `recheck` position).
pub fn check_at(def: &Definition, pos: Position) -> Option<&Check> {
    let step = def.steps.get(pos.step as usize)?;
    match pos.stage {
        Stage::Before => step.before.get(pos.item as usize),
        Stage::After | Stage::Recheck => step.after.get(pos.item as usize),
        Stage::Actions | Stage::Operation | Stage::Undo => None,
    }
}

/// Where `member` is for a run at `pos` (`None`: ended, `rolled_back` or
/// not): (grid, app).
pub fn location(
    def: &Definition,
    pos: Option<Position>,
    rolled_back: bool,
    member: &str,
) -> (String, String) {
    let target = def.member(member).map_or(member, |m| m.target_app.as_str());
    if group::position::moved(def, pos, rolled_back, member) {
        (def.target_grid.clone(), target.to_owned())
    } else {
        (def.source_grid.clone(), member.to_owned())
    }
}

fn kind(check: &Check) -> &'static str {
    match check.probe {
        group::Probe::Http(_) => "http",
        group::Probe::AppState { .. } => "app_state",
        group::Probe::Approval { .. } => "approval",
        group::Probe::Wait { .. } => "wait",
    }
}

/// A forward item's state while the run is not rolling back; a rolling
/// back run's items say what their evidence says ([`back_item_state`]).
fn item_state(pos: Option<Position>, here: Position) -> ItemState {
    match pos {
        None => ItemState::Passed,
        Some(p) if p == here => ItemState::Current,
        Some(p) if (p.step, p.stage, p.item) > (here.step, here.stage, here.item) => {
            ItemState::Passed
        }
        Some(_) => ItemState::Pending,
    }
}

/// An item's state in a run that turned back (`pos`: `None` once rolled
/// back): a recheck by the walk back (later steps first) once its step's
/// member is back (`returned`), a forward item by its last attempt.
fn back_item_state(
    pos: Option<Position>,
    here: Position,
    last: Option<operation_model::group_run::AttemptOutcome>,
    returned: bool,
) -> ItemState {
    use operation_model::group_run::AttemptOutcome;
    if here.stage != Stage::Recheck {
        return if last == Some(AttemptOutcome::Pass) {
            ItemState::Passed
        } else {
            ItemState::Pending
        };
    }
    match pos {
        Some(p) if p == here => ItemState::Current,
        _ if !returned => ItemState::Pending,
        None => ItemState::Passed,
        Some(p)
            if here.step > p.step
                || (here.step == p.step && p.stage == Stage::Recheck && here.item < p.item) =>
        {
            ItemState::Passed
        }
        Some(_) => ItemState::Pending,
    }
}

pub async fn of(
    pool: &SqlitePool,
    grids: &GridMonitor,
    run: &store::RunRow,
) -> Result<GroupRunView, GroupError> {
    let pos = run.position()?;
    let rolled_back = run.state == RunState::RolledBack;
    // Turned back: rolling back now, or rolled back.
    let back = rolled_back || pos.is_some_and(|p| p.stage.back());
    let def = match definition(run) {
        Ok(def) => def,
        // Shown as it is (the list still lists it), saying why.
        Err(e) => {
            return Ok(GroupRunView {
                id: run.id.clone(),
                name: run.name.clone(),
                source_grid: run.source_grid.clone(),
                target_grid: run.target_grid.clone(),
                state: run.state,
                keep_source: false,
                can_roll_back: false,
                position: pos,
                reason: Some(format!("its stored definition cannot be read: {e}")),
                awaiting_approval: None,
                created_by: run.created_by.clone(),
                created_at: run.created_at.clone(),
                updated_at: run.updated_at.clone(),
                ended_at: run.ended_at.clone(),
                steps: vec![],
                members: vec![],
                approvals: vec![],
            });
        }
    };
    let attempts = store::attempts(pool, &run.id).await?;
    let mut operations: Vec<(u32, StepOperation)> = vec![];
    for (step, op) in store::operations(pool, &run.id).await? {
        let o = crate::operation::store::get(pool, &op).await?;
        operations.push((
            u32::try_from(step).unwrap_or(0),
            StepOperation {
                id: op,
                action: o.as_ref().map_or(app::model::Action::Migrate, |o| o.action),
                outcome: o.as_ref().and_then(|o| o.outcome),
                reason: o.and_then(|o| o.reason),
            },
        ));
    }
    // Steps with an operation of `action` that ended done.
    let done_by = |step: u32, action: app::model::Action| {
        operations.iter().any(|(at, o)| {
            *at == step && o.action == action && o.outcome == Some(app::model::Outcome::Done)
        })
    };
    let items = |step: u32, stage: Stage, list: Vec<(String, &'static str, u32, String)>| {
        list.into_iter()
            .enumerate()
            .map(|(i, (name, kind, passes, on_failure))| {
                let item = u32::try_from(i).unwrap_or(0);
                let here = Position { step, stage, item };
                let attempts: Vec<_> = attempts
                    .iter()
                    .filter(|(at, _)| *at == (step, stage, item))
                    .map(|(_, a)| a.clone())
                    .collect();
                ItemView {
                    name,
                    kind: kind.into(),
                    state: if back {
                        back_item_state(
                            pos,
                            here,
                            attempts.last().map(|a| a.outcome),
                            done_by(step, app::model::Action::Rollback),
                        )
                    } else {
                        item_state(pos, here)
                    },
                    passes,
                    on_failure,
                    attempts,
                }
            })
            .collect::<Vec<_>>()
    };
    let checks = |list: &[Check]| {
        list.iter()
            .map(|c| {
                (
                    c.name.clone(),
                    kind(c),
                    c.passes,
                    c.on_failure.as_str().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let steps: Vec<StepView> = def
        .steps
        .iter()
        .enumerate()
        .map(|(s, step)| {
            let s = u32::try_from(s).unwrap_or(0);
            let target_app = def
                .member(&step.member)
                .map_or_else(|| step.member.clone(), |m| m.target_app.clone());
            let ops: Vec<&StepOperation> = operations
                .iter()
                .filter(|(at, _)| *at == s)
                .map(|(_, o)| o)
                .collect();
            let done = |action| {
                ops.iter()
                    .any(|o| o.action == action && o.outcome == Some(app::model::Outcome::Done))
            };
            StepView {
                member: step.member.clone(),
                target_app,
                warm: step.warm,
                state: match pos {
                    Some(p) if p.step == s => StepState::Current,
                    _ if back && done(app::model::Action::Rollback) => StepState::RolledBack,
                    _ if back && done(app::model::Action::Migrate) => StepState::Done,
                    _ if back => StepState::Pending,
                    None => StepState::Done,
                    Some(p) if p.step > s => StepState::Done,
                    Some(_) => StepState::Pending,
                },
                before: items(s, Stage::Before, checks(&step.before)),
                actions: items(
                    s,
                    Stage::Actions,
                    step.actions
                        .iter()
                        .map(|a| (a.name.clone(), "action", 1, "pause".to_owned()))
                        .collect(),
                ),
                operations: operations
                    .iter()
                    .filter(|(at, _)| *at == s)
                    .map(|(_, o)| o.clone())
                    .collect(),
                after: items(s, Stage::After, checks(&step.after)),
                // Only a member the run moved comes back to be checked again.
                rechecks: if back && done_by(s, app::model::Action::Migrate) {
                    items(s, Stage::Recheck, checks(&step.after))
                } else {
                    vec![]
                },
            }
        })
        .collect();
    let seen = grids.snapshot();
    let members = def
        .members
        .iter()
        .map(|m| {
            let step = def.steps.iter().position(|s| s.member == m.app);
            let in_flight = steps
                .get(step.unwrap_or(usize::MAX))
                .and_then(|s| s.operations.last())
                .filter(|o| o.outcome.is_none())
                .map(|o| o.id.clone());
            // Its step's last operation ended done: a migrate put it on the
            // target, a rollback on the source, even if the run did not
            // move past the step (aborted meanwhile).
            let last_done = steps
                .get(step.unwrap_or(usize::MAX))
                .and_then(|s| s.operations.last())
                .filter(|o| o.outcome == Some(app::model::Outcome::Done))
                .map(|o| o.action);
            let (grid, name) = match last_done {
                Some(app::model::Action::Migrate) => {
                    (def.target_grid.clone(), m.target_app.clone())
                }
                Some(app::model::Action::Rollback) => (def.source_grid.clone(), m.app.clone()),
                _ => location(&def, pos, rolled_back, &m.app),
            };
            let place = if in_flight.is_some() {
                MemberPlace::Moving
            } else if grid == def.target_grid {
                MemberPlace::Target
            } else {
                MemberPlace::Source
            };
            let state = seen.iter().find(|g| g.name == grid).and_then(|g| {
                g.checked_at.as_ref()?;
                Some(
                    g.apps
                        .iter()
                        .find(|a| a.name == name)
                        .map_or_else(|| "absent".to_owned(), |a| a.state.clone()),
                )
            });
            let last_op = steps
                .get(step.unwrap_or(usize::MAX))
                .and_then(|s| s.operations.last());
            let moved_by = last_op.map(|o| o.id.clone());
            let returned = last_op.is_some_and(|o| o.action == app::model::Action::Rollback);
            let says = match (place, &in_flight) {
                (MemberPlace::Moving, Some(op)) if returned => format!(
                    "being moved back from {} to its kept source on {} by {op}",
                    def.target_grid, def.source_grid
                ),
                (MemberPlace::Moving, Some(op)) => {
                    format!(
                        "being moved from {} to {} by {op}",
                        def.source_grid, def.target_grid
                    )
                }
                _ => format!(
                    "on {grid} as {name}{}{}",
                    state.as_ref().map(|s| format!(", {s}")).unwrap_or_default(),
                    match (place, moved_by) {
                        (MemberPlace::Source, Some(op)) if returned && last_done.is_some() => {
                            format!(" (rolled back by {op})")
                        }
                        (MemberPlace::Target, Some(op)) if returned => {
                            format!(" (not rolled back: {op} did not finish)")
                        }
                        (MemberPlace::Target, Some(op)) => format!(" (moved by {op})"),
                        (MemberPlace::Source, Some(op)) =>
                            format!(" (not moved: {op} did not finish)"),
                        (MemberPlace::Source, None) => " (not moved yet)".into(),
                        _ => String::new(),
                    }
                ),
            };
            MemberView {
                app: m.app.clone(),
                place,
                grid,
                name,
                state,
                says,
            }
        })
        .collect();
    let raw = store::approvals(pool, &run.id).await?;
    let awaiting_approval = pos
        .filter(|_| run.state == RunState::Running)
        .and_then(|p| {
            let c = check_at(&def, p)?;
            let group::Probe::Approval { prompt } = &c.probe else {
                return None;
            };
            // A word given and not read yet answers it.
            let given = raw.iter().any(|a| {
                a.round.is_none()
                    && (a.step, a.stage.as_str(), a.item)
                        == (i64::from(p.step), p.stage.as_str(), i64::from(p.item))
            });
            (!given).then(|| prompt.clone())
        });
    let approvals = raw
        .into_iter()
        .filter_map(|a| {
            Some(ApprovalView {
                step: u32::try_from(a.step).ok()?,
                stage: a.stage.parse().ok()?,
                item: u32::try_from(a.item).ok()?,
                approved: a.approved,
                decided_by: a.decided_by,
                decided_at: a.decided_at,
                reason: a.reason,
            })
        })
        .collect::<Vec<_>>();
    Ok(GroupRunView {
        id: run.id.clone(),
        name: run.name.clone(),
        source_grid: run.source_grid.clone(),
        target_grid: run.target_grid.clone(),
        state: run.state,
        keep_source: def.keep_source,
        // Set by `Groups::view`, which knows the rule.
        can_roll_back: false,
        position: pos,
        reason: run.reason.clone(),
        awaiting_approval,
        created_by: run.created_by.clone(),
        created_at: run.created_at.clone(),
        updated_at: run.updated_at.clone(),
        ended_at: run.ended_at.clone(),
        steps,
        members,
        approvals,
    })
}
