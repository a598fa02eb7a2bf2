//! A run's task: the check, action or operation at the run's position,
//! then the next position, stored before anything it names is started.
//! An operator's pause or abort is read before every attempt and every
//! start; the console's shutdown leaves the position as it is.

use super::probe::{self, Evidence};
use super::{Groups, store, view};
use group::{Definition, OnFailure, Probe, Verdict, verdict};
use operation_model::group_run::{AttemptOutcome, Position, RunState, Stage};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a task looks at a step's operation while it runs.
const OPERATION_POLL: Duration = Duration::from_millis(500);

/// What the thing at a position came to.
enum Came {
    /// It succeeded: the run moves on.
    Succeeded,
    /// The run waits for an operator, for this reason.
    Pause(String),
    /// The run stops for good, for this reason.
    Abort(String),
    /// The task stops here, its position kept: an operator paused or
    /// aborted the run meanwhile, or the console is stopping.
    Stopped,
}

impl Groups {
    pub(super) async fn drive(self: Arc<Self>, id: String) {
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let run = match store::get(&self.pool, &id).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(run = %id, error = %e, "cannot read the group run; its task stops (it continues at the next start)");
                    return;
                }
            };
            if run.state != RunState::Running {
                // Under the lock a resume takes: either it sees this task
                // gone, or this task sees the run running again.
                let mut driving = self.driving.lock().await;
                match store::get(&self.pool, &id).await {
                    Ok(Some(r)) if r.state == RunState::Running => continue,
                    _ => {
                        driving.remove(&id);
                        return;
                    }
                }
            }
            let came = match (view::definition(&run), run.position()) {
                (Err(e), _) => Came::Pause(format!("its stored definition cannot be read: {e}")),
                (_, Err(e)) => Came::Pause(format!("its stored position cannot be read: {e}")),
                (Ok(_), Ok(None)) => {
                    let _ = store::set_state(
                        &self.pool,
                        &id,
                        &[RunState::Running],
                        RunState::Done,
                        None,
                    )
                    .await;
                    continue;
                }
                (Ok(def), Ok(Some(pos))) => {
                    let came = match pos.stage {
                        Stage::Before | Stage::After => self.check(&run, &def, pos).await,
                        Stage::Actions => self.action(&run, &def, pos).await,
                        Stage::Operation => self.operation(&run, &def, pos).await,
                    };
                    if let Came::Succeeded = came {
                        let next = group::position::next(&def, pos);
                        if let Err(e) = store::advance(&self.pool, &id, pos, next).await {
                            tracing::error!(run = %id, error = %e, "cannot store the run's next position; its task stops (it continues at the next start)");
                            return;
                        }
                        if next.is_none() {
                            tracing::info!(run = %id, "group run done");
                            metrics::counter!("migctl_group_runs_ended_total", "state" => "done")
                                .increment(1);
                        }
                        continue;
                    }
                    came
                }
            };
            let stored = match &came {
                Came::Pause(why) => {
                    tracing::warn!(run = %id, reason = %why, "group run paused");
                    store::set_state(
                        &self.pool,
                        &id,
                        &[RunState::Running],
                        RunState::Paused,
                        Some(why),
                    )
                    .await
                }
                Came::Abort(why) => {
                    tracing::warn!(run = %id, reason = %why, "group run aborted");
                    metrics::counter!("migctl_group_runs_ended_total", "state" => "aborted")
                        .increment(1);
                    store::set_state(
                        &self.pool,
                        &id,
                        &[RunState::Running, RunState::Paused],
                        RunState::Aborted,
                        Some(why),
                    )
                    .await
                }
                Came::Succeeded | Came::Stopped => Ok(true),
            };
            if let Err(e) = stored {
                tracing::error!(run = %id, error = %e, "cannot store the run's state; its task stops");
                return;
            }
        }
    }

    /// Sleeps `d`, or less when an operator acts on the run or the console stops.
    async fn nap(&self, id: &str, d: Duration) {
        let n = self.notify(id);
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = n.notified() => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// The run is still running: no operator paused or aborted it, the
    /// console is not stopping.
    async fn still_running(&self, id: &str) -> bool {
        !self.stop.is_cancelled()
            && matches!(store::get(&self.pool, id).await, Ok(Some(r)) if r.state == RunState::Running)
    }

    async fn check(&self, run: &store::RunRow, def: &Definition, pos: Position) -> Came {
        let id = run.id.as_str();
        let Some(check) = view::check_at(def, pos) else {
            return Came::Pause(format!("its definition has no check at {pos:?}"));
        };
        let round = match store::next_round(&self.pool, id).await {
            Ok(r) => r,
            Err(e) => return Came::Pause(format!("cannot record the check's start: {e}")),
        };
        let slot = store::Slot {
            step: pos.step,
            stage: pos.stage,
            item: pos.item,
            round,
        };
        let policy = check.policy();
        let started = Instant::now();
        let mut outcomes = vec![];
        let mut last_note = String::from("no attempt answered");
        loop {
            if !self.still_running(id).await {
                return Came::Stopped;
            }
            let began = Instant::now();
            let evidence = match &check.probe {
                Probe::Http(p) => Some(self.http(def, pos, p, None, policy.timeout).await),
                Probe::AppState { member, state } => Some(
                    self.app_state(def, pos, member, state, policy.timeout)
                        .await,
                ),
                Probe::Approval { .. } => match store::approval_at(&self.pool, id, slot).await {
                    Ok(None) => None,
                    Ok(Some(a)) => Some(Evidence::of(
                        if a.approved {
                            AttemptOutcome::Pass
                        } else {
                            AttemptOutcome::Fail
                        },
                        format!(
                            "{} by {}: {}",
                            if a.approved { "approved" } else { "refused" },
                            a.decided_by,
                            a.reason
                        ),
                        began,
                    )),
                    Err(e) => Some(Evidence::of(
                        AttemptOutcome::Inconclusive,
                        format!("cannot read the approvals: {e}"),
                        began,
                    )),
                },
                Probe::Wait { secs } => {
                    let soak = Duration::from_secs_f64(*secs);
                    while began.elapsed() < soak {
                        if !self.still_running(id).await {
                            return Came::Stopped;
                        }
                        self.nap(id, soak.saturating_sub(began.elapsed())).await;
                    }
                    Some(Evidence::of(
                        AttemptOutcome::Pass,
                        format!("waited {secs} s"),
                        began,
                    ))
                }
            };
            if let Some(e) = evidence {
                // No attempt counts without its evidence kept.
                if let Err(err) = store::add_attempt(&self.pool, id, slot, &e).await {
                    return Came::Pause(format!("cannot keep a check's evidence: {err}"));
                }
                last_note = e.note;
                outcomes.push(e.outcome);
            }
            let deadline_passed = started.elapsed() >= policy.deadline;
            match verdict(&policy, &outcomes, deadline_passed, check.probe.decisive()) {
                Verdict::Passed => return Came::Succeeded,
                Verdict::Failed(on) => {
                    let why = format!(
                        "step {} ({}): check “{}” failed: {last_note}",
                        pos.step + 1,
                        def.steps[pos.step as usize].member,
                        check.name
                    );
                    return match on {
                        OnFailure::Abort => Came::Abort(why),
                        // roll_back is refused when a run starts.
                        OnFailure::Pause | OnFailure::RollBack => Came::Pause(why),
                    };
                }
                Verdict::Undecided => {
                    return Came::Pause(format!(
                        "step {} ({}): check “{}” could not be decided within its deadline of {} s: {last_note}",
                        pos.step + 1,
                        def.steps[pos.step as usize].member,
                        check.name,
                        check.deadline_secs
                    ));
                }
                Verdict::Continue => {
                    let left = policy.deadline.saturating_sub(started.elapsed());
                    let wait = policy.interval.saturating_sub(began.elapsed()).min(left);
                    self.nap(id, wait).await;
                }
            }
        }
    }

    /// An action is tried once; one that does not answer as it must
    /// pauses the run (resume tries it again).
    async fn action(&self, run: &store::RunRow, def: &Definition, pos: Position) -> Came {
        let id = run.id.as_str();
        let step = &def.steps[pos.step as usize];
        let Some(action) = step.actions.get(pos.item as usize) else {
            return Came::Pause(format!("its definition has no action at {pos:?}"));
        };
        if !self.still_running(id).await {
            return Came::Stopped;
        }
        let round = match store::next_round(&self.pool, id).await {
            Ok(r) => r,
            Err(e) => return Came::Pause(format!("cannot record the action's start: {e}")),
        };
        let as_probe = group::HttpProbe {
            method: action.method,
            url: action.url.clone(),
            status: action.status,
            json: None,
        };
        let e = self
            .http(
                def,
                pos,
                &as_probe,
                action.body.as_ref(),
                Duration::from_secs_f64(action.timeout_secs),
            )
            .await;
        let slot = store::Slot {
            step: pos.step,
            stage: pos.stage,
            item: pos.item,
            round,
        };
        if let Err(err) = store::add_attempt(&self.pool, id, slot, &e).await {
            return Came::Pause(format!("cannot keep an action's evidence: {err}"));
        }
        match e.outcome {
            AttemptOutcome::Pass => Came::Succeeded,
            _ => Came::Pause(format!(
                "step {} ({}): action “{}” did not succeed: {}",
                pos.step + 1,
                step.member,
                action.name,
                e.note
            )),
        }
    }

    /// The step's operation: the one recorded, else one started since the
    /// position was reached that the console stopped before recording,
    /// else a new one; then its outcome.
    async fn operation(&self, run: &store::RunRow, def: &Definition, pos: Position) -> Came {
        let id = run.id.as_str();
        let step = &def.steps[pos.step as usize];
        let Some(member) = def.member(&step.member) else {
            return Came::Pause(format!("its definition has no member {}", step.member));
        };
        let op_id = match &run.current_op {
            Some(op) => op.clone(),
            None => {
                let found = store::unrecorded_op(
                    &self.pool,
                    (&def.source_grid, &member.app),
                    (&def.target_grid, &member.target_app),
                    run.stage_since,
                )
                .await;
                let op = match found {
                    Ok(Some(op)) => op,
                    Err(e) => return Came::Pause(format!("cannot read the operations: {e}")),
                    Ok(None) => {
                        if !self.still_running(id).await {
                            return Came::Stopped;
                        }
                        let req = crate::operation::StartRequest {
                            source_grid: def.source_grid.clone(),
                            source_app: member.app.clone(),
                            target_grid: def.target_grid.clone(),
                            target_app: member.target_app.clone(),
                            action: app::model::Action::Migrate,
                            update_target: false,
                            warm: step.warm,
                            cutover: None,
                            cutover_at: None,
                            stop_timeout_secs: None,
                            keep_source: None,
                            keep_source_hours: None,
                            rollback_of: None,
                        };
                        match self.engine.start(req, &run.created_by).await {
                            Ok(op) => op.id,
                            Err(e) => {
                                return Came::Pause(format!(
                                    "step {} ({}): its operation could not start: {e}",
                                    pos.step + 1,
                                    step.member
                                ));
                            }
                        }
                    }
                };
                if let Err(e) = store::set_current_op(&self.pool, id, pos.step, &op).await {
                    return Came::Pause(format!("cannot record operation {op}: {e}"));
                }
                // An abort that came while it started found nothing to cancel.
                if matches!(store::get(&self.pool, id).await, Ok(Some(r)) if r.state == RunState::Aborted)
                {
                    self.cancel_step(id, &op, &run.created_by).await;
                    return Came::Stopped;
                }
                op
            }
        };
        loop {
            match crate::operation::store::get(&self.pool, &op_id).await {
                Ok(Some(op)) => match op.outcome {
                    Some(app::model::Outcome::Done) => return Came::Succeeded,
                    Some(outcome) => {
                        return Came::Pause(format!(
                            "step {} ({}): operation {op_id} ended {outcome}{}",
                            pos.step + 1,
                            step.member,
                            op.reason.map(|r| format!(": {r}")).unwrap_or_default()
                        ));
                    }
                    None => {}
                },
                Ok(None) => return Came::Pause(format!("operation {op_id} is not on record")),
                Err(e) => tracing::warn!(run = %id, error = %e, "cannot read the step's operation"),
            }
            // A pause waits for the operation's outcome; an abort does not.
            if self.stop.is_cancelled()
                || matches!(store::get(&self.pool, id).await, Ok(Some(r)) if r.state == RunState::Aborted)
            {
                return Came::Stopped;
            }
            self.nap(id, OPERATION_POLL).await;
        }
    }

    /// One HTTP attempt, its URL filled from the members' properties where
    /// each member is now.
    async fn http(
        &self,
        def: &Definition,
        pos: Position,
        p: &group::HttpProbe,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Evidence {
        let mut props: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for m in p.url.members() {
            if let Ok(Some(info)) = self.app_info(def, pos, m, timeout).await {
                props.insert(m.to_owned(), info.properties);
            }
        }
        probe::http(
            &self.http,
            p,
            body,
            |m, k| props.get(m).and_then(|p| p.get(k)).cloned(),
            timeout,
        )
        .await
    }

    /// What the grid where `member` is now says of it (`None`: it is not
    /// there), or why that cannot be told.
    async fn app_info(
        &self,
        def: &Definition,
        pos: Position,
        member: &str,
        timeout: Duration,
    ) -> Result<Option<grid::dialect::AppInfo>, String> {
        let (grid, app) = view::location(def, Some(pos), member);
        let grid_name: grid::GridName = grid.parse().map_err(|e| format!("{e}"))?;
        let app_name: grid::AppName = app.parse().map_err(|e| format!("{e}"))?;
        let grids = self.grids.client().map_err(|e| e.to_owned())?;
        let conn = match grids.connection(&grid_name).await {
            None => return Err(format!("no grid {grid} in the inventory")),
            Some(Err(e)) => return Err(format!("grid {grid}: {e}")),
            Some(Ok(c)) => c,
        };
        match tokio::time::timeout(timeout, conn.app_info(&app_name)).await {
            Err(_) => Err(format!(
                "grid {grid} did not answer within {:.1} s",
                timeout.as_secs_f64()
            )),
            Ok(Err(e)) if crate::operation::not_found(&e) => Ok(None),
            Ok(Err(e)) => Err(format!("grid {grid}: {e}")),
            Ok(Ok(info)) => Ok(Some(info)),
        }
    }

    async fn app_state(
        &self,
        def: &Definition,
        pos: Position,
        member: &str,
        want: &str,
        timeout: Duration,
    ) -> Evidence {
        let began = Instant::now();
        let (grid, app) = view::location(def, Some(pos), member);
        let found = match self.app_info(def, pos, member, timeout).await {
            Ok(Some(info)) => info.state.as_str().to_owned(),
            Ok(None) => "absent".into(),
            Err(why) => return Evidence::of(AttemptOutcome::Inconclusive, why, began),
        };
        let outcome = if found == want {
            AttemptOutcome::Pass
        } else {
            AttemptOutcome::Fail
        };
        let mut e = Evidence::of(
            outcome,
            format!(
                "{app} on {grid} is {found}{}",
                if found == want {
                    String::new()
                } else {
                    format!(", wanted {want}")
                }
            ),
            began,
        );
        e.excerpt = found;
        e
    }
}
