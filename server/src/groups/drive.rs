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
    /// The run turns back: its moved members return, in reverse order.
    RollBack(String),
    /// The task stops here, its position kept: an operator paused or
    /// aborted the run meanwhile, or the console is stopping.
    Stopped,
}

/// How a run's task ended.
enum Exit {
    /// The run no longer runs (paused, aborted, done): its task left the
    /// `driving` set under the lock a resume takes.
    Left,
    /// The console stops: the position stays, the next start continues.
    Shutdown,
    /// The task cannot go on (the database failed, or the task panicked).
    Failed(String),
}

/// Time since `t`, by the wall clock (a round's deadline and soak count
/// across a console's restart).
fn since(t: crate::clock::Timestamp) -> Duration {
    Duration::try_from(crate::clock::now().0 - t.0).unwrap_or(Duration::ZERO)
}

impl Groups {
    /// A run's task. Whatever way its body ends, the run is never left
    /// "running" with no task: a failure pauses it, saying why.
    pub(super) async fn drive(self: Arc<Self>, id: String) {
        let me = self.clone();
        let run = id.clone();
        // The body in a task of its own, so that a panic is caught here.
        let exit = match tokio::spawn(async move { me.drive_run(&run).await }).await {
            Ok(exit) => exit,
            Err(e) => Exit::Failed(format!("its task failed: {e}")),
        };
        if let Exit::Failed(why) = exit {
            tracing::error!(run = %id, reason = %why, "group run paused: its task cannot go on");
            let mut driving = self.driving.lock().await;
            let why = format!("{why}; resume once that is fixed");
            if let Err(e) = store::set_state(
                &self.pool,
                &id,
                &[RunState::Running],
                RunState::Paused,
                Some(&why),
            )
            .await
            {
                tracing::error!(run = %id, error = %e, "cannot pause the group run either; the next start continues it");
            }
            driving.remove(&id);
        }
    }

    async fn drive_run(self: Arc<Self>, id: &str) -> Exit {
        loop {
            if self.stop.is_cancelled() {
                return Exit::Shutdown;
            }
            let run = match store::get(&self.pool, id).await {
                Ok(Some(r)) => r,
                Ok(None) => return Exit::Failed("its record is gone".into()),
                Err(e) => return Exit::Failed(format!("cannot read the group run: {e}")),
            };
            if run.state != RunState::Running {
                // Under the lock a resume takes: either it sees this task
                // gone, or this task sees the run running again.
                let mut driving = self.driving.lock().await;
                match store::get(&self.pool, id).await {
                    Ok(Some(r)) if r.state == RunState::Running => continue,
                    Ok(_) => {
                        driving.remove(id);
                        return Exit::Left;
                    }
                    Err(e) => {
                        drop(driving);
                        return Exit::Failed(format!("cannot read the group run: {e}"));
                    }
                }
            }
            let came = match (view::definition(&run), run.position()) {
                (Err(e), _) => Came::Pause(format!("its stored definition cannot be read: {e}")),
                (_, Err(e)) => Came::Pause(format!("its stored position cannot be read: {e}")),
                (Ok(_), Ok(None)) => {
                    if let Err(e) =
                        store::set_state(&self.pool, id, &[RunState::Running], RunState::Done, None)
                            .await
                    {
                        return Exit::Failed(format!("cannot store the run's end: {e}"));
                    }
                    continue;
                }
                (Ok(def), Ok(Some(pos))) => {
                    let came = match pos.stage {
                        Stage::Before | Stage::After | Stage::Recheck => {
                            self.check(&run, &def, pos).await
                        }
                        Stage::Actions => self.action(&run, &def, pos).await,
                        Stage::Operation => self.operation(&run, &def, pos).await,
                        Stage::Undo => self.undo(&run, &def, pos).await,
                    };
                    if let Came::RollBack(why) = &came {
                        let to = group::position::first_back(&def, Some(pos), false);
                        let why = format!("rolling back: {why}");
                        tracing::warn!(run = %id, reason = %why, "group run rolls back");
                        match store::turn_back(
                            &self.pool,
                            id,
                            (&[RunState::Running], Some(pos)),
                            (to, false),
                            &why,
                        )
                        .await
                        {
                            Ok(true) if to.is_none() => {
                                metrics::counter!("migctl_group_runs_ended_total", "state" => "rolled_back")
                                    .increment(1);
                            }
                            Ok(true) => {}
                            // An operator paused it first: the cause is kept
                            // with the operator's word (roll back from there).
                            Ok(false) => {
                                if let Err(e) = store::add_reason(&self.pool, id, &why).await {
                                    return Exit::Failed(format!(
                                        "cannot store the run's state: {e}"
                                    ));
                                }
                            }
                            Err(e) => {
                                return Exit::Failed(format!(
                                    "cannot store the run's turn back: {e}"
                                ));
                            }
                        }
                        continue;
                    }
                    if let Came::Succeeded = came {
                        let next = group::position::next(&def, pos);
                        match store::advance(&self.pool, id, pos, next).await {
                            Ok(true) if next.is_none() => {
                                let end = if pos.stage.back() {
                                    RunState::RolledBack
                                } else {
                                    RunState::Done
                                };
                                tracing::info!(run = %id, state = %end, "group run ended");
                                metrics::counter!("migctl_group_runs_ended_total", "state" => end.as_str())
                                    .increment(1);
                            }
                            // Moved on; or an operator aborted it meanwhile.
                            Ok(_) => {}
                            Err(e) => {
                                return Exit::Failed(format!(
                                    "cannot store the run's next position: {e}"
                                ));
                            }
                        }
                        continue;
                    }
                    came
                }
            };
            let stored = match &came {
                Came::Pause(why) => {
                    tracing::warn!(run = %id, reason = %why, "group run paused");
                    match store::set_state(
                        &self.pool,
                        id,
                        &[RunState::Running],
                        RunState::Paused,
                        Some(why),
                    )
                    .await
                    {
                        // An operator paused it first: the cause is kept too.
                        Ok(false) => store::add_reason(&self.pool, id, why).await,
                        other => other.map(|_| ()),
                    }
                }
                Came::Abort(why) => {
                    tracing::warn!(run = %id, reason = %why, "group run aborted");
                    match store::set_state(
                        &self.pool,
                        id,
                        &[RunState::Running, RunState::Paused],
                        RunState::Aborted,
                        Some(why),
                    )
                    .await
                    {
                        Ok(true) => {
                            metrics::counter!("migctl_group_runs_ended_total", "state" => "aborted")
                                .increment(1);
                            Ok(())
                        }
                        other => other.map(|_| ()),
                    }
                }
                Came::Succeeded | Came::Stopped | Came::RollBack(_) => Ok(()),
            };
            if let Err(e) = stored {
                return Exit::Failed(format!("cannot store the run's state: {e}"));
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

    /// The run still runs in `round`: no operator paused, resumed or
    /// aborted it since, and the console is not stopping.
    async fn still_at(&self, id: &str, round: i64) -> bool {
        !self.stop.is_cancelled()
            && matches!(store::get(&self.pool, id).await,
                Ok(Some(r)) if r.state == RunState::Running && r.round == round)
    }

    /// `f`, unless the console stops first (`None`): shutdown never waits
    /// for an attempt's timeout.
    async fn unless_stopping<T>(&self, f: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            v = f => Some(v),
            () = self.stop.cancelled() => None,
        }
    }

    async fn check(&self, run: &store::RunRow, def: &Definition, pos: Position) -> Came {
        let id = run.id.as_str();
        let Some(check) = view::check_at(def, pos) else {
            return Came::Pause(format!("its definition has no check at {pos:?}"));
        };
        // The round was set when the run reached this position or was
        // resumed; its deadline counts from then, across restarts.
        let round = run.round;
        let slot = store::Slot::at(pos, round);
        let policy = check.policy();
        let mut outcomes = vec![];
        let mut last_note = String::from(match check.probe {
            Probe::Approval { .. } => "no operator has approved or refused it",
            _ => "no attempt answered",
        });
        loop {
            if !self.still_at(id, round).await {
                return Came::Stopped;
            }
            let began = Instant::now();
            // An attempt's evidence, and whether it is kept already.
            let attempt = match &check.probe {
                Probe::Http(p) => {
                    match self
                        .unless_stopping(self.http(def, pos, p, None, policy.timeout))
                        .await
                    {
                        Some(e) => Some((e, false)),
                        None => return Came::Stopped,
                    }
                }
                Probe::AppState { member, state } => {
                    match self
                        .unless_stopping(self.app_state(def, pos, member, state, policy.timeout))
                        .await
                    {
                        Some(e) => Some((e, false)),
                        None => return Came::Stopped,
                    }
                }
                Probe::Approval { .. } => match store::unread_approval(&self.pool, id, pos).await {
                    Ok(None) => None,
                    Ok(Some(a)) => {
                        let e = Evidence::of(
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
                        );
                        // Read and kept together: a word is never lost.
                        if let Err(err) = store::read_approval(&self.pool, id, slot, a.id, &e).await
                        {
                            return Came::Pause(format!(
                                "cannot keep an approval's reading: {err}"
                            ));
                        }
                        Some((e, true))
                    }
                    Err(e) => Some((
                        Evidence::of(
                            AttemptOutcome::Inconclusive,
                            format!("cannot read the approvals: {e}"),
                            began,
                        ),
                        false,
                    )),
                },
                Probe::Wait { secs } => {
                    let soak = Duration::from_secs_f64(*secs);
                    while since(run.stage_since) < soak {
                        if !self.still_at(id, round).await {
                            return Came::Stopped;
                        }
                        self.nap(id, soak.saturating_sub(since(run.stage_since)))
                            .await;
                    }
                    Some((
                        Evidence::of(AttemptOutcome::Pass, format!("waited {secs} s"), began),
                        false,
                    ))
                }
            };
            if let Some((e, kept)) = attempt {
                // No attempt counts without its evidence kept.
                if !kept && let Err(err) = store::add_attempt(&self.pool, id, slot, &e).await {
                    return Came::Pause(format!("cannot keep a check's evidence: {err}"));
                }
                last_note = e.note;
                outcomes.push(e.outcome);
            }
            let deadline_passed = since(run.stage_since) >= policy.deadline;
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
                        // Applied again while rolling back: no further back to go.
                        OnFailure::RollBack if pos.stage.back() => Came::Pause(format!(
                            "{why}; the run is rolling back already: see to it, then retry or abort"
                        )),
                        OnFailure::RollBack => Came::RollBack(why),
                        OnFailure::Pause => Came::Pause(why),
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
                    let left = policy.deadline.saturating_sub(since(run.stage_since));
                    let wait = policy.interval.saturating_sub(began.elapsed()).min(left);
                    self.nap(id, wait).await;
                }
            }
        }
    }

    /// An action is sent once a round; one that does not answer as it
    /// must pauses the run (retry sends it again). One the console was
    /// sending when it stopped is not sent again unasked: it may have
    /// arrived.
    async fn action(&self, run: &store::RunRow, def: &Definition, pos: Position) -> Came {
        let id = run.id.as_str();
        let step = &def.steps[pos.step as usize];
        let Some(action) = step.actions.get(pos.item as usize) else {
            return Came::Pause(format!("its definition has no action at {pos:?}"));
        };
        let round = run.round;
        let slot = store::Slot::at(pos, round);
        let failed = |note: &str| {
            Came::Pause(format!(
                "step {} ({}): action “{}” did not succeed: {note}",
                pos.step + 1,
                step.member,
                action.name
            ))
        };
        if run.action_sent == Some(round) {
            return match store::attempt_at(&self.pool, id, slot).await {
                Ok(Some((AttemptOutcome::Pass, _))) => Came::Succeeded,
                Ok(Some((_, note))) => failed(&note),
                Ok(None) => Came::Pause(format!(
                    "step {} ({}): the console stopped while sending action “{}”, which may have arrived: check what it does ({} {}), then retry to send it again",
                    pos.step + 1,
                    step.member,
                    action.name,
                    action.method.as_str(),
                    action.url
                )),
                Err(e) => Came::Pause(format!("cannot read the action's attempts: {e}")),
            };
        }
        match store::mark_action_sent(&self.pool, id, round).await {
            Ok(true) => {}
            Ok(false) => return Came::Stopped,
            Err(e) => return Came::Pause(format!("cannot record the action's start: {e}")),
        }
        let as_probe = group::HttpProbe {
            method: action.method,
            url: action.url.clone(),
            status: action.status,
            json: None,
        };
        let Some(e) = self
            .unless_stopping(self.http(
                def,
                pos,
                &as_probe,
                action.body.as_ref(),
                Duration::from_secs_f64(action.timeout_secs),
            ))
            .await
        else {
            return Came::Stopped;
        };
        if let Err(err) = store::add_attempt(&self.pool, id, slot, &e).await {
            return Came::Pause(format!("cannot keep an action's evidence: {err}"));
        }
        match e.outcome {
            AttemptOutcome::Pass => Came::Succeeded,
            _ => failed(&e.note),
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
                        if !self.still_at(id, run.round).await {
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
                            keep_source: def.keep_source.then_some(true),
                            keep_source_hours: def.keep_source_hours,
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
                if let Err(came) = self.adopt(run, pos, &op).await {
                    return came;
                }
                op
            }
        };
        self.outcome_of(id, pos, &step.member, &op_id).await
    }

    /// A step's operation, just started or found again: recorded as the
    /// run's. An abort that came while it started found nothing to cancel:
    /// it is cancelled now, in the aborter's name (`Err`: the run stops).
    async fn adopt(&self, run: &store::RunRow, pos: Position, op: &str) -> Result<(), Came> {
        let id = run.id.as_str();
        if let Err(e) = store::set_current_op(&self.pool, id, (pos, run.round), op).await {
            return Err(Came::Pause(format!("cannot record operation {op}: {e}")));
        }
        if let Ok(Some(r)) = store::get(&self.pool, id).await
            && r.state == RunState::Aborted
        {
            let by = r.ended_by.unwrap_or(r.created_by);
            self.cancel_step(id, op, &by).await;
            return Err(Came::Stopped);
        }
        Ok(())
    }

    /// The step's operation's outcome, once it has one: done succeeds,
    /// any other pauses the run saying so. A pause waits for it; an abort
    /// or the console's shutdown does not.
    async fn outcome_of(&self, id: &str, pos: Position, member: &str, op_id: &str) -> Came {
        loop {
            match crate::operation::store::get(&self.pool, op_id).await {
                Ok(Some(op)) => match op.outcome {
                    Some(app::model::Outcome::Done) => return Came::Succeeded,
                    Some(outcome) => {
                        return Came::Pause(format!(
                            "step {} ({member}): {}operation {op_id} ended {outcome}{}",
                            pos.step + 1,
                            if pos.stage.back() { "rollback " } else { "" },
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

    /// Rolling back a step: the rollback of the migrate that moved its
    /// member (the one recorded, else one started since the position was
    /// reached that the console stopped before recording, else a new one),
    /// then its outcome. The member returns to its kept source.
    async fn undo(&self, run: &store::RunRow, def: &Definition, pos: Position) -> Came {
        let id = run.id.as_str();
        let step = &def.steps[pos.step as usize];
        let op_id = match &run.current_op {
            Some(op) => op.clone(),
            None => {
                let moving = match store::moving_op(&self.pool, id, pos.step).await {
                    Ok(Some(op)) => op,
                    Ok(None) => {
                        return Came::Pause(format!(
                            "step {} ({}): no operation of this run moved it, so there is nothing to roll back; see where it is, then abort",
                            pos.step + 1,
                            step.member
                        ));
                    }
                    Err(e) => return Came::Pause(format!("cannot read the operations: {e}")),
                };
                let found = store::unrecorded_rollback(&self.pool, &moving, run.stage_since).await;
                let op = match found {
                    Ok(Some(op)) => op,
                    Err(e) => return Came::Pause(format!("cannot read the operations: {e}")),
                    Ok(None) => {
                        if !self.still_at(id, run.round).await {
                            return Came::Stopped;
                        }
                        let req = super::rollback::rollback_of(def, pos.step);
                        match self.engine.rollback(&moving, &run.created_by, &req).await {
                            Ok(op) => op.id,
                            Err(e) => {
                                return Came::Pause(format!(
                                    "step {} ({}): its rollback could not start: {e}",
                                    pos.step + 1,
                                    step.member
                                ));
                            }
                        }
                    }
                };
                if let Err(came) = self.adopt(run, pos, &op).await {
                    return came;
                }
                op
            }
        };
        self.outcome_of(id, pos, &step.member, &op_id).await
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
        let (grid, app) = view::location(def, Some(pos), false, member);
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
        let (grid, app) = view::location(def, Some(pos), false, member);
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
