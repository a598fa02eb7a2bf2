//! The outcome of a finished operation at a glance: what happened, how long
//! the app was down against what the operation promised, how long it took,
//! where the app runs now and what the console did to settle it. Built
//! from the operation's recorded evidence only (its outcome, the helper's
//! reports, the console's settle steps), never from guesses.

use crate::model::{KeptState, OperationView, Outcome, human_bytes, human_duration};
use operation_model::{Action, CutoverReason, Settled};

/// An operation's outcome, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub outcome: Outcome,
    /// The result in one sentence.
    pub result: String,
    /// How long the app was down, against what was expected.
    pub downtime: Option<String>,
    /// A warm operation whose downtime broke its promise: why.
    pub broken_promise: Option<String>,
    /// How long the operation took.
    pub duration: Option<String>,
    /// Where the app runs now (grid, app), when the outcome says.
    pub runs_on: Option<(String, String)>,
    /// What the console did to settle it, one sentence each.
    pub settled: Vec<String>,
}

/// One of the three apps an operation involves, as its page's cards show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Helper,
    Target,
}

/// What the console's settling made of `side`, in a word or two, when it
/// did something to it (its card says this rather than a last seen state).
pub fn fate(op: &OperationView, side: Side) -> Option<&'static str> {
    let kept = op.kept_source.as_ref().map(|k| k.state);
    op.settled.iter().rev().find_map(|s| match (side, s) {
        (Side::Source, Settled::SourceDestroyed) => Some("destroyed"),
        (Side::Source, Settled::SourceKept) => Some(match kept {
            Some(KeptState::RolledBack) => "running (rolled back to)",
            Some(KeptState::Released) => "destroyed (released)",
            _ => "stopped (kept)",
        }),
        (Side::Source, Settled::SourceStarted) => Some("running (started again)"),
        (Side::Helper, Settled::HelperRemoved) => Some("removed"),
        (Side::Target, Settled::TargetRemoved) => Some("removed"),
        _ => None,
    })
}

impl Summary {
    /// `None` while the operation runs.
    pub fn of(op: &OperationView) -> Option<Summary> {
        let outcome = op.outcome?;
        let source = format!("{}/{}", op.source_grid, op.source_app);
        let target = format!("{}/{}", op.target_grid, op.target_app);
        let what = op.action.as_str();
        let overridden = op.settled.contains(&Settled::LockOverridden);
        let kept = op.kept_source.as_ref().map(|k| k.state);
        let result = match outcome {
            _ if overridden => format!(
                "An admin overrode the {what}'s lock: migctl did not finish or settle it; look at both grids{}",
                op.reason
                    .as_deref()
                    .map(|r| format!(" ({r})."))
                    .unwrap_or_else(|| ".".into())
            ),
            Outcome::Done
                if op.action == Action::Migrate && kept == Some(KeptState::RolledBack) =>
            {
                format!(
                    "Migrated {source} to {target}, verified; later rolled back: the app runs on {source} again."
                )
            }
            Outcome::Done => match op.action {
                Action::Snapshot => {
                    format!("Snapshot of {source} made as {target}, verified; {source} runs again.")
                }
                Action::Rollback => format!(
                    "Rolled back: {target} runs again with what {source} changed, verified."
                ),
                Action::Migrate => {
                    format!("Migrated {source} to {target}, verified; the app runs on {target}.")
                }
            },
            Outcome::Failed => format!(
                "The {what} failed: {}",
                op.reason.as_deref().unwrap_or("no reason was recorded")
            ),
            Outcome::Cancelled => format!(
                "The {what} was cancelled{}",
                op.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_else(|| ".".into())
            ),
            Outcome::Elsewhere => format!(
                "This console runs in a snapshot copy the {what} made: its outcome belongs to the console in {source}."
            ),
        };
        // Said only from evidence: the outcome's contract, a kept source
        // rolled back to, a source the console started again or never
        // stopped. An overridden operation was settled by nobody.
        let at_source = || Some((op.source_grid.clone(), op.source_app.clone()));
        let runs_on = match (outcome, op.action) {
            _ if overridden => None,
            (Outcome::Done, Action::Migrate) if kept == Some(KeptState::RolledBack) => at_source(),
            (Outcome::Done, Action::Migrate | Action::Rollback) => {
                Some((op.target_grid.clone(), op.target_app.clone()))
            }
            (Outcome::Done, Action::Snapshot) => at_source(),
            (Outcome::Failed | Outcome::Cancelled, _)
                if op.settled.contains(&Settled::SourceStarted) || op.source_stop.is_none() =>
            {
                at_source()
            }
            _ => None,
        };
        let last_pass = op
            .passes
            .iter()
            .filter(|p| !p.final_pass)
            .max_by_key(|p| p.pass);
        let final_pass = op.passes.iter().find(|p| p.final_pass);
        let broken_promise = op
            .cutover_report
            .as_ref()
            .filter(|c| c.reason.breaks_promise())
            .map(|c| {
                let down = op
                    .downtime_ms
                    .map(|ms| format!(", and the app was down {:.1} s", ms as f64 / 1000.0))
                    .unwrap_or_default();
                format!(
                    "Warm promised a short stop, but its passes did not converge: {}{down}. The app writes about as fast as the copy moves: lower its writes during the passes, raise the copy's rate, or set the pass limit to wait for an operator.",
                    c.reason
                )
            });
        let downtime = op.downtime_ms.map(|ms| {
            let secs = ms as f64 / 1000.0;
            match (&op.cutover_report, final_pass) {
                (Some(c), Some(f)) => format!(
                    "The app was down {secs:.1} s: warm, it cut over after pass {} ({}), then the final pass copied {} with the app stopped{}.",
                    c.after_pass,
                    match &c.reason {
                        CutoverReason::Converged { .. } => "the passes had converged".to_owned(),
                        CutoverReason::Requested { by } => format!("{by} asked"),
                        CutoverReason::Scheduled => "at the scheduled time".to_owned(),
                        CutoverReason::PassLimit { .. } => "the pass limit".to_owned(),
                    },
                    human_bytes(f.copied),
                    last_pass
                        .map(|p| format!(" (the last pass before it had found {} changed)", human_bytes(p.delta)))
                        .unwrap_or_default()
                ),
                _ if op.warm && !op.passes.is_empty() => {
                    format!("The app was down {secs:.1} s (warm).")
                }
                _ if op.warm => format!(
                    "The app was down {secs:.1} s: asked warm, it copied cold (the log says why), stopped for the whole copy."
                ),
                _ => format!(
                    "The app was down {secs:.1} s: cold, it was stopped for the whole copy, as expected."
                ),
            }
        });
        let duration = op
            .duration_ms
            .map(|ms| format!("It took {}.", human_duration(ms.div_ceil(1000))));
        let helper = operation_model::name::helper_of(&op.target_app);
        let settled = op
            .settled
            .iter()
            .map(|s| match s {
                Settled::HelperRemoved => format!("The helper {}/{helper} was removed.", op.target_grid),
                Settled::SourceStarted => format!("The source {source} was started again."),
                Settled::SourceDestroyed => {
                    format!("The source {source} was destroyed, after the target was verified.")
                }
                Settled::SourceKept => match &op.kept_source {
                    Some(k) if k.state == KeptState::Kept => {
                        format!("The source {source} is kept, stopped, until {} (it can be rolled back to).", crate::pages::utc_text(&k.until))
                    }
                    Some(k) if k.state == KeptState::RolledBack => {
                        format!("The source {source} was kept, and later rolled back to.")
                    }
                    _ => format!("The source {source} was kept, and later released (destroyed)."),
                },
                Settled::TargetRemoved => format!("The partial target {target} was removed."),
                Settled::LockOverridden => "An admin overrode the lock; nothing more was settled.".to_owned(),
            })
            .collect();
        Some(Summary {
            outcome,
            result,
            downtime,
            broken_promise,
            duration,
            runs_on,
            settled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MIB: u64 = 1 << 20;

    fn op(extra: serde_json::Value) -> OperationView {
        let mut v = json!({"id": "op-1", "action": "migrate", "source_grid": "east", "source_app": "shop",
            "target_grid": "west", "target_app": "shop", "phase": "done", "outcome": "done",
            "bytes_done": 0, "bytes_total": 0, "created_by": "ada", "created_at": "2026-12-05T10:00:00Z",
            "updated_at": "2026-12-05T10:01:00Z", "finished_at": "2026-12-05T10:01:00Z",
            "settled": ["source_destroyed", "helper_removed"], "duration_ms": 61_000});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn passes(deltas: &[u64]) -> serde_json::Value {
        let n = deltas.len();
        json!(
            deltas
                .iter()
                .enumerate()
                .map(|(i, d)| json!({"pass": i + 1, "delta": d, "copied": d,
            "ms": 1000, "final": i + 1 == n}))
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn a_running_operation_has_no_summary() {
        assert_eq!(
            Summary::of(&op(json!({"outcome": null, "phase": "copying"}))),
            None
        );
    }

    #[test]
    fn a_done_migrate_says_where_the_app_runs_and_what_became_of_the_source() {
        let s = Summary::of(&op(json!({"downtime_ms": 1_200}))).unwrap();
        assert_eq!(
            s.result,
            "Migrated east/shop to west/shop, verified; the app runs on west/shop."
        );
        assert_eq!(s.runs_on, Some(("west".into(), "shop".into())));
        assert_eq!(s.duration.as_deref(), Some("It took 1 min 1 s."));
        assert_eq!(
            s.downtime.as_deref(),
            Some("The app was down 1.2 s: cold, it was stopped for the whole copy, as expected.")
        );
        assert_eq!(s.broken_promise, None);
        assert_eq!(
            s.settled,
            [
                "The source east/shop was destroyed, after the target was verified.",
                "The helper west/MigHelper_shop was removed."
            ]
        );
    }

    #[test]
    fn a_warm_cutover_at_the_pass_limit_is_flagged_with_why() {
        let s = Summary::of(&op(json!({"warm": true, "downtime_ms": 38_100,
            "passes": passes(&[384 * MIB, 332 * MIB, 300 * MIB, 300 * MIB]),
            "cutover_report": {"after_pass": 3, "reason": {"why": "pass_limit", "delta": 300 * MIB}}})))
        .unwrap();
        let flag = s.broken_promise.unwrap();
        assert!(flag.starts_with("Warm promised a short stop, but its passes did not converge: the pass limit is reached and the delta is still 300.0 MiB"), "{flag}");
        assert!(flag.contains("the app was down 38.1 s"), "{flag}");
        assert!(s.downtime.unwrap().contains(
            "it cut over after pass 3 (the pass limit), then the final pass copied 300 MiB"
        ));
    }

    #[test]
    fn a_converged_warm_cutover_keeps_its_promise() {
        let s = Summary::of(&op(json!({"warm": true, "downtime_ms": 256,
            "passes": passes(&[384 * MIB, 23 * MIB, MIB + MIB / 4, MIB / 8]),
            "cutover_report": {"after_pass": 3, "reason": {"why": "converged", "delta": MIB + MIB / 4}}})))
        .unwrap();
        assert_eq!(s.broken_promise, None);
        assert_eq!(
            s.downtime.as_deref(),
            Some(
                "The app was down 0.3 s: warm, it cut over after pass 3 (the passes had converged), then the final pass copied 128 KiB with the app stopped (the last pass before it had found 1.2 MiB changed)."
            )
        );
    }

    #[test]
    fn an_overridden_operation_says_where_nothing_runs_for_sure() {
        let s = Summary::of(&op(json!({"outcome": "failed", "phase": "failed",
            "reason": "lock overridden by ana: the console host died", "settled": ["helper_removed", "lock_overridden"],
            "source_stop": {"forced": false, "ms": 10, "timeout_secs": 120}})))
        .unwrap();
        assert!(
            s.result.starts_with("An admin overrode the migrate's lock"),
            "{}",
            s.result
        );
        assert_eq!(s.runs_on, None);
    }

    #[test]
    fn a_failed_operation_says_where_the_app_runs_only_from_evidence() {
        let stopped = json!({"forced": false, "ms": 10, "timeout_secs": 120});
        let never_stopped = Summary::of(&op(
            json!({"outcome": "failed", "settled": ["helper_removed"]}),
        ))
        .unwrap();
        assert_eq!(never_stopped.runs_on, Some(("east".into(), "shop".into())));
        let started = Summary::of(&op(json!({"outcome": "failed", "source_stop": stopped,
            "settled": ["helper_removed", "source_started"]})))
        .unwrap();
        assert_eq!(started.runs_on, Some(("east".into(), "shop".into())));
        let unknown = Summary::of(&op(json!({"outcome": "failed", "source_stop": stopped,
            "settled": ["helper_removed"]})))
        .unwrap();
        assert_eq!(
            unknown.runs_on, None,
            "stopped, and nobody said it runs again"
        );
    }

    #[test]
    fn a_migrate_rolled_back_says_the_app_runs_on_its_source_again() {
        let s = Summary::of(&op(json!({"settled": ["source_kept", "helper_removed"],
            "kept_source": {"grid": "east", "app": "shop", "until": "2026-12-08T10:00:00Z", "state": "rolled_back"}})))
        .unwrap();
        assert_eq!(s.runs_on, Some(("east".into(), "shop".into())));
        assert!(
            s.result
                .ends_with("later rolled back: the app runs on east/shop again."),
            "{}",
            s.result
        );
        let o = op(json!({"settled": ["source_kept"],
            "kept_source": {"grid": "east", "app": "shop", "until": "2026-12-08T10:00:00Z", "state": "released"}}));
        assert_eq!(fate(&o, Side::Source), Some("destroyed (released)"));
    }

    #[test]
    fn the_cards_say_what_became_of_each_app() {
        let done = op(json!({}));
        assert_eq!(fate(&done, Side::Source), Some("destroyed"));
        assert_eq!(fate(&done, Side::Helper), Some("removed"));
        assert_eq!(
            fate(&done, Side::Target),
            None,
            "the target runs: its state says so"
        );
        let cancelled =
            op(json!({"settled": ["helper_removed", "source_started", "target_removed"]}));
        assert_eq!(
            fate(&cancelled, Side::Source),
            Some("running (started again)")
        );
        assert_eq!(fate(&cancelled, Side::Target), Some("removed"));
    }

    #[test]
    fn a_cancelled_operation_says_what_was_cleaned_up_and_that_the_source_runs() {
        let s = Summary::of(&op(json!({"outcome": "cancelled", "phase": "cancelled",
            "reason": "cancelled by ada", "settled": ["helper_removed", "source_started", "target_removed"]})))
        .unwrap();
        assert_eq!(s.result, "The migrate was cancelled: cancelled by ada");
        assert_eq!(s.runs_on, Some(("east".into(), "shop".into())));
        assert_eq!(
            s.settled,
            [
                "The helper west/MigHelper_shop was removed.",
                "The source east/shop was started again.",
                "The partial target west/shop was removed."
            ]
        );
    }
}
