//! Group runs (issue 25): an HA group moved member by member to one target
//! grid, each step one migctl operation (taking and releasing the lock as
//! any operation does), with typed checks before and after each step.
//!
//! - [`Groups`] (this file): starting a run and an operator's pause,
//!   resume/retry, abort and approval; the runs' tasks, resumed at start-up.
//! - `drive`: a run's task: the check, action or operation at its position,
//!   then the next position, stored before anything it names is started.
//! - [`probe`]: what one attempt of a check or an action finds.
//! - `store`: the tables. `view`: a run as the API and the pages show it.
//! - [`files`]: definitions kept in the console's directory.
//! - `rollback`: whether a run can be rolled back, where that begins, and
//!   an operator's request.
//!
//! The definitions and the verdict rule are the `group` crate's.

mod drive;
pub mod files;
pub mod probe;
mod rollback;
mod store;
mod view;

use crate::grids::GridMonitor;
use crate::operation::Engine;
use group::Definition;
use operation_model::group_run::{GroupRunView, RunState, Stage};
use sqlx::SqlitePool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why a request about a run was refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("there is no group run {0:?}")]
    NoSuchRun(String),
    /// The definition is wrong: every problem with where it sits.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Definition(Vec<group::DefinitionError>),
    /// The request does not fit the run's state: what it is and what to do.
    #[error("{0}")]
    Conflict(String),
    /// The request's body is wrong.
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for GroupError {
    fn from(e: sqlx::Error) -> Self {
        GroupError::Unexpected(e.into())
    }
}

pub struct Groups {
    pool: SqlitePool,
    engine: Arc<Engine>,
    grids: Arc<GridMonitor>,
    http: reqwest::Client,
    /// Runs with a task now. Held while a task decides to end and while
    /// an operator resumes, so a resumed run always has exactly one task.
    driving: tokio::sync::Mutex<HashSet<String>>,
    /// Wakes a run's task when an operator acts on it.
    wake: Mutex<HashMap<String, Arc<Notify>>>,
    tasks: TaskTracker,
    /// Cancelled at shutdown: tasks stop where they are; the next start
    /// continues from their stored positions.
    stop: CancellationToken,
}

/// An operator's reason, trimmed: required (kept with their name), at
/// most 1000 characters; `why` says what it explains.
fn given_reason<'r>(reason: &'r str, why: &str) -> Result<&'r str, GroupError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(GroupError::Bad(format!(
            "reason: say why {why} (it is kept with your name)"
        )));
    }
    if reason.chars().count() > 1000 {
        return Err(GroupError::Bad("reason: at most 1000 characters".into()));
    }
    Ok(reason)
}

fn new_run_id() -> String {
    crate::operation::stamped_id("run")
}

impl Groups {
    pub fn new(pool: SqlitePool, engine: Arc<Engine>, grids: Arc<GridMonitor>) -> Arc<Groups> {
        Arc::new(Groups {
            pool,
            engine,
            grids,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            driving: Default::default(),
            wake: Default::default(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        })
    }

    fn notify(&self, id: &str) -> Arc<Notify> {
        let mut m = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(id.to_owned()).or_default().clone()
    }

    /// One task a run waits: a permit is kept if it is not waiting yet.
    fn wake(&self, id: &str) {
        self.notify(id).notify_one();
    }

    /// At start-up: every run that was running continues from its stored
    /// position (an operation in flight is reconciled by the engine first).
    pub async fn resume_all(self: &Arc<Self>) {
        match store::unended(&self.pool).await {
            Ok(runs) => {
                let mut driving = self.driving.lock().await;
                for r in runs.into_iter().filter(|r| r.state == RunState::Running) {
                    tracing::info!(run = %r.id, "group run continues from its stored position");
                    if driving.insert(r.id.clone()) {
                        self.spawn(r.id);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the group runs to resume them"),
        }
    }

    fn spawn(self: &Arc<Self>, id: String) {
        let me = self.clone();
        self.tasks.spawn(async move { me.drive(id).await });
    }

    /// Stops every run's task where it is and waits for them.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Starts a run of `definition` (the API's JSON) by `user`.
    pub async fn start(
        self: &Arc<Self>,
        definition: serde_json::Value,
        user: &str,
    ) -> Result<GroupRunView, GroupError> {
        let def = Definition::from_json(definition.clone()).map_err(GroupError::Definition)?;
        let id = new_run_id();
        let text = serde_json::to_string(&definition).map_err(anyhow::Error::from)?;
        // Under the lock every start and resume takes: two starts moving
        // the same member cannot both be admitted.
        let mut driving = self.driving.lock().await;
        self.admissible(&def).await?;
        // The run and its audit line are kept together, or neither is.
        let mut tx = self.pool.begin().await?;
        store::insert(
            &mut *tx,
            &store::NewRun {
                id: &id,
                name: &def.name,
                source_grid: &def.source_grid,
                target_grid: &def.target_grid,
                definition: &text,
                first: group::position::first(&def),
                created_by: user,
            },
        )
        .await?;
        crate::db::audit(
            &mut *tx,
            user,
            "group.start",
            &format!(
                "{id}: group {} ({}) from {} to {}",
                def.name,
                def.steps
                    .iter()
                    .map(|s| s.member.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                def.source_grid,
                def.target_grid
            ),
        )
        .await?;
        tx.commit().await?;
        driving.insert(id.clone());
        self.spawn(id.clone());
        drop(driving);
        self.view(&id).await
    }

    /// What a definition asks that no run may do, or that another run
    /// that has not ended already does.
    async fn admissible(&self, def: &Definition) -> Result<(), GroupError> {
        let known: Vec<String> = self.grids.snapshot().into_iter().map(|g| g.name).collect();
        let mut problems = vec![];
        for (at, grid) in [
            ("source_grid", &def.source_grid),
            ("target_grid", &def.target_grid),
        ] {
            if !known.contains(grid) {
                problems.push(group::DefinitionError {
                    at: at.into(),
                    message: format!(
                        "no grid {grid} in the console's inventory (it has {}); name one of them",
                        known.join(", ")
                    ),
                });
            }
        }
        if def.source_grid == def.target_grid {
            problems.push(group::DefinitionError {
                at: "target_grid".into(),
                message: "the group moves to another grid: name one other than source_grid".into(),
            });
        }
        if !problems.is_empty() {
            return Err(GroupError::Definition(problems));
        }
        self.no_other_run_moves(def, None).await
    }

    /// Refused when a run that has not ended (other than `except`) moves
    /// one of `def`'s members too.
    async fn no_other_run_moves(
        &self,
        def: &Definition,
        except: Option<&str>,
    ) -> Result<(), GroupError> {
        for other in store::unended(&self.pool).await? {
            if Some(other.id.as_str()) == except {
                continue;
            }
            let Ok(o) =
                Definition::from_json(serde_json::from_str(&other.definition).unwrap_or_default())
            else {
                continue;
            };
            if o.source_grid != def.source_grid {
                continue;
            }
            if let Some(m) = def.members.iter().find(|m| o.member(&m.app).is_some()) {
                return Err(GroupError::Conflict(format!(
                    "group run {} ({}) has not ended and moves {} too: wait for it, or abort it first",
                    other.id, other.state, m.app
                )));
            }
        }
        Ok(())
    }

    pub async fn view(&self, id: &str) -> Result<GroupRunView, GroupError> {
        let run = store::get(&self.pool, id)
            .await?
            .ok_or_else(|| GroupError::NoSuchRun(id.to_owned()))?;
        self.view_of(&run).await
    }

    pub async fn list(&self) -> Result<Vec<GroupRunView>, GroupError> {
        let mut out = vec![];
        for run in store::list(&self.pool, 200).await? {
            out.push(self.view_of(&run).await?);
        }
        Ok(out)
    }

    async fn view_of(&self, run: &store::RunRow) -> Result<GroupRunView, GroupError> {
        let mut v = view::of(&self.pool, &self.grids, run).await?;
        if v.keep_source
            && matches!(
                v.state,
                RunState::Paused | RunState::Done | RunState::Aborted
            )
            && let Ok(def) = view::definition(run)
        {
            v.can_roll_back = self.turn(run, &def).await?.is_ok();
        }
        Ok(v)
    }

    async fn run(&self, id: &str) -> Result<store::RunRow, GroupError> {
        store::get(&self.pool, id)
            .await?
            .ok_or_else(|| GroupError::NoSuchRun(id.to_owned()))
    }

    /// Starts nothing new: the attempt or the operation in flight finishes
    /// (an operation's outcome is still taken in), then the run waits.
    pub async fn pause(&self, id: &str, user: &str) -> Result<GroupRunView, GroupError> {
        let run = self.run(id).await?;
        let why = format!("paused by {user}");
        if !store::set_state(
            &self.pool,
            id,
            &[RunState::Running],
            RunState::Paused,
            Some(&why),
        )
        .await?
        {
            return Err(GroupError::Conflict(format!(
                "group run {id} is {}: only a running run pauses",
                run.state
            )));
        }
        crate::db::audit(&self.pool, user, "group.pause", id).await?;
        self.wake(id);
        self.view(id).await
    }

    /// A paused run goes on from its position: the check there starts
    /// afresh (its passes and deadline counted anew), a step whose
    /// operation ended other than done starts a new one. `retry` names the
    /// same for a run a failure paused.
    pub async fn resume(
        self: &Arc<Self>,
        id: &str,
        user: &str,
        verb: &str,
    ) -> Result<GroupRunView, GroupError> {
        let mut driving = self.driving.lock().await;
        let run = self.run(id).await?;
        if run.state != RunState::Paused {
            return Err(GroupError::Conflict(format!(
                "group run {id} is {}: only a paused run can {verb}",
                run.state
            )));
        }
        let mut clear_op = false;
        if let (Some(pos), Some(op)) = (run.position()?, run.current_op.as_deref())
            && matches!(pos.stage, Stage::Operation | Stage::Undo)
        {
            let ended = crate::operation::store::get(&self.pool, op)
                .await?
                .and_then(|o| o.outcome);
            clear_op = ended.is_some_and(|o| o != app::model::Outcome::Done);
        }
        // An abort may have come since it was read.
        if !store::resume(&self.pool, id, clear_op).await? {
            let now = self.run(id).await?;
            return Err(GroupError::Conflict(format!(
                "group run {id} is {}: only a paused run can {verb}",
                now.state
            )));
        }
        crate::db::audit(&self.pool, user, &format!("group.{verb}"), id).await?;
        if driving.insert(id.to_owned()) {
            self.spawn(id.to_owned());
        } else {
            self.wake(id);
        }
        drop(driving);
        self.view(id).await
    }

    /// Stops the run for good: the operation in flight is cancelled as a
    /// cancel does (one past its copy finishes), nothing new starts.
    pub async fn abort(
        &self,
        id: &str,
        user: &str,
        reason: &str,
    ) -> Result<GroupRunView, GroupError> {
        let run = self.run(id).await?;
        let reason = reason.trim();
        let why = if reason.is_empty() {
            format!("aborted by {user}")
        } else {
            format!("aborted by {user}: {reason}")
        };
        if !store::set_state_by(
            &self.pool,
            id,
            &[RunState::Running, RunState::Paused],
            RunState::Aborted,
            Some(&why),
            Some(user),
        )
        .await?
        {
            return Err(GroupError::Conflict(format!(
                "group run {id} has already ended ({}): there is nothing to abort",
                run.state
            )));
        }
        metrics::counter!("migctl_group_runs_ended_total", "state" => "aborted").increment(1);
        crate::db::audit(&self.pool, user, "group.abort", &format!("{id}: {why}")).await?;
        self.wake(id);
        if let Some(op) = self.run(id).await?.current_op {
            self.cancel_step(id, &op, user).await;
        }
        self.view(id).await
    }

    /// Cancels a step's operation for an aborted run; one that has ended
    /// or is past its copy is left to finish, and the run's record says so.
    async fn cancel_step(&self, id: &str, op: &str, user: &str) {
        use crate::operation::EngineError;
        match self.engine.cancel(op, user).await {
            Ok(_) | Err(EngineError::Ended { .. }) => {}
            Err(e) => {
                tracing::warn!(run = %id, op = %op, error = %e, "the aborted run's operation goes on");
                let _ = crate::db::audit(
                    &self.pool,
                    user,
                    "group.abort",
                    &format!("{id}: operation {op} not cancelled: {e}"),
                )
                .await;
            }
        }
    }

    /// An operator's word on the approval check the run waits at.
    pub async fn approve(
        &self,
        id: &str,
        user: &str,
        approved: bool,
        reason: &str,
    ) -> Result<GroupRunView, GroupError> {
        let reason = given_reason(reason, "you approve or refuse")?;
        let run = self.run(id).await?;
        let def = view::definition(&run)?;
        let waiting = run
            .position()?
            .filter(|_| run.state == RunState::Running)
            .and_then(|p| Some((p, view::check_at(&def, p)?)))
            .filter(|(_, c)| matches!(c.probe, group::Probe::Approval { .. }));
        let Some((pos, _)) = waiting else {
            return Err(GroupError::Conflict(format!(
                "group run {id} is not waiting for an approval (it is {}); nothing to approve",
                run.state
            )));
        };
        let kept = store::add_approval(
            &self.pool,
            id,
            pos,
            &store::Word {
                approved,
                decided_by: user,
                reason,
            },
        )
        .await?;
        if !kept {
            // Another operator's word waits unread, or the run moved on.
            return Err(GroupError::Conflict(
                match store::unread_approval(&self.pool, id, pos).await? {
                    Some(given) => format!(
                        "{} already {} this check at {}; the run reads that word next",
                        given.decided_by,
                        if given.approved {
                            "approved"
                        } else {
                            "refused"
                        },
                        given.decided_at
                    ),
                    None => format!(
                        "group run {id} is no longer waiting at this check (it moved on or was paused); nothing to approve"
                    ),
                },
            ));
        }
        crate::db::audit(
            &self.pool,
            user,
            if approved {
                "group.approve"
            } else {
                "group.refuse"
            },
            &format!("{id}: {reason}"),
        )
        .await?;
        self.wake(id);
        self.view(id).await
    }
}
