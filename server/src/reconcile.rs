//! Start-up reconciliation as a pure function: from the lock, the grid this
//! console runs on, and what the controllers report, decide what to do.
//! Carrying the steps out is the engine's job; each step is idempotent, so
//! deciding again after a crash half-way ends in the same place.
//!
//! MIG decided from where it woke up. migctl keeps MIG's table and also
//! checks the controllers before destroying anything: the source app is
//! destroyed only when the target runs and the copy is verified: the helper
//! compared every block of the stopped source with the target and the side
//! that stays stopped still matches the fingerprint it reported
//! (`Report::Verified`), or, from an older helper without those reports, every
//! volume's whole checksum matches.

use crate::lock::Lock;
use app::model::Action;
use grid::dialect::AppState;
use grid::{AppName, GridName};

/// Where the console runs, relative to an operation's apps. MIG's rows
/// keyed on the current grid describe a console that lives *inside* the
/// app it moves; a console anywhere else decides from what it observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Inside the source app (it woke up on the source grid).
    InSource,
    /// Inside the target app, i.e. inside the copy (it woke up on the target grid).
    InTarget,
    /// Outside the operation's apps (or where it runs is not configured).
    Outside,
}

impl Place {
    /// From the console's configured whereabouts (`current_grid`,
    /// `current_app`): inside an app only when both name it. A console
    /// that names no app (the demo's outside console) is outside every
    /// operation, whatever its grid.
    pub fn of(lock: &Lock, grid: Option<&GridName>, app: Option<&AppName>) -> Place {
        Place::among(
            (lock.source_grid.as_str(), lock.source_app_name.as_str()),
            (lock.target_grid.as_str(), lock.target_app_name.as_str()),
            grid.map(GridName::as_str),
            app.map(AppName::as_str),
        )
    }

    /// The same from names: (grid, app) of the source and of the target.
    pub fn among(
        source: (&str, &str),
        target: (&str, &str),
        grid: Option<&str>,
        app: Option<&str>,
    ) -> Place {
        let (Some(grid), Some(app)) = (grid, app) else {
            return Place::Outside;
        };
        if (grid, app) == target && target.0 != source.0 {
            Place::InTarget
        } else if (grid, app) == source {
            Place::InSource
        } else {
            Place::Outside
        }
    }
}

/// What a controller says about one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Absent,
    State(AppState),
    /// The grid could not be asked; never act on a guess.
    Unknown(String),
}

/// Source and target volumes compared by whole-volume checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksums {
    Match,
    Mismatch(String),
    /// Not compared (an app is missing, or a grid could not be asked).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub source: Seen,
    pub target: Seen,
    pub helper: Seen,
    pub checksums: Checksums,
    /// What a failed helper left behind.
    pub helper_failure: Option<HelperFailure>,
}

/// Why a helper failed, as far as its log tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelperFailure {
    /// Its own `failed` report: what it said was wrong.
    Reported(String),
    /// No report (it was killed, or its grid lost it): the last line of its
    /// log, often the grid's own account ("its process ended with …").
    Unreported { last_line: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    DestroyHelper,
    StartSource,
    DestroySource,
    /// Keep the stopped source (a migrate that keeps it): record it as
    /// kept, with its fingerprint and deadline, instead of destroying it.
    KeepSource,
    /// Remove a partial, stopped target left by a copy that did not finish.
    DestroyTarget,
    /// Record the outcome and archive the lock.
    Finish(Outcome),
    /// The operation is still running (the helper works); meter it.
    Wait(String),
    /// Keep the lock: a person must look. The reason says why.
    Hold(String),
    /// A grid cannot be asked now (a controller restarting, a network
    /// blip): keep the lock with the reason and ask again.
    Retry(String),
    /// MIG's "manually started snapshot copy": this console runs in a copy
    /// the operation made. Destroy nothing anywhere; record that the
    /// operation's outcome is the source console's, and free this console.
    InSnapshotCopy,
}

impl std::fmt::Display for Seen {
    /// What the pages show: `running`, `absent`, `unknown (why)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Absent => f.write_str("absent"),
            Seen::State(s) => write!(f, "{s}"),
            Seen::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sums = match &self.checksums {
            Checksums::Match => "match".to_owned(),
            Checksums::Mismatch(v) => format!("differ ({v})"),
            Checksums::Unknown => "not compared".to_owned(),
        };
        write!(
            f,
            "source {}, target {}, helper {}, checksums {sums}",
            self.source, self.target, self.helper
        )
    }
}

impl std::fmt::Display for Step {
    /// The step as the operation's log says it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::DestroyHelper => f.write_str("destroy the helper"),
            Step::StartSource => f.write_str("start the source app"),
            Step::DestroySource => f.write_str("destroy the source app"),
            Step::KeepSource => f.write_str("keep the stopped source app until its deadline"),
            Step::DestroyTarget => f.write_str("remove the partial target app"),
            Step::Finish(Outcome::Done) => f.write_str("record done and release the lock"),
            Step::Finish(Outcome::Failed(why)) => {
                write!(f, "record failed ({why}) and release the lock")
            }
            Step::Wait(why) => write!(f, "wait: {why}"),
            Step::Hold(why) => write!(f, "keep the lock: {why}"),
            Step::Retry(why) => write!(f, "ask again: {why}"),
            Step::InSnapshotCopy => f.write_str(
                "this console runs in a snapshot copy the operation made: destroy nothing, record that, release the copied lock",
            ),
        }
    }
}

fn active(s: &Seen) -> bool {
    matches!(
        s,
        Seen::State(AppState::Starting | AppState::Running | AppState::Stopping)
    )
}

fn running(s: &Seen) -> bool {
    matches!(s, Seen::State(AppState::Running))
}

fn present(s: &Seen) -> bool {
    matches!(s, Seen::State(_))
}

fn describe(what: &str, s: &Seen) -> String {
    match s {
        Seen::Absent => format!("the {what} app does not exist"),
        Seen::State(st) => format!("the {what} app is {st}"),
        Seen::Unknown(why) => format!("the {what} app cannot be checked ({why})"),
    }
}

/// The steps for this lock, in order.
pub fn decide(lock: &Lock, place: Place, seen: &Observed) -> Vec<Step> {
    let on_target = place == Place::InTarget;
    if on_target && lock.action == Action::Snapshot {
        return vec![Step::InSnapshotCopy];
    }
    for (what, s) in [
        ("source", &seen.source),
        ("target", &seen.target),
        ("helper", &seen.helper),
    ] {
        if let Seen::Unknown(why) = s {
            return vec![Step::Retry(format!(
                "cannot decide: the {what} grid cannot be asked ({why})"
            ))];
        }
    }
    if active(&seen.helper) {
        return vec![Step::Wait("the helper is still working".into())];
    }
    let helper = if present(&seen.helper) {
        vec![Step::DestroyHelper]
    } else {
        vec![]
    };
    let verified = running(&seen.target) && seen.checksums == Checksums::Match;

    match lock.action {
        Action::Migrate | Action::Rollback if verified => {
            if active(&seen.source) {
                return vec![Step::Hold(format!(
                    "both the source and the target run {}: the migrated copy is verified, but the source was restarted; stop the one you do not want, then override the lock",
                    lock.target_app_name
                ))];
            }
            let mut steps = helper;
            if present(&seen.source) {
                steps.push(if lock.keep_source_hours.is_some() {
                    Step::KeepSource
                } else {
                    Step::DestroySource
                });
            }
            steps.push(Step::Finish(Outcome::Done));
            steps
        }
        Action::Migrate | Action::Rollback if on_target => {
            // MIG would destroy the source here; migctl first wants proof.
            let why = match (&seen.target, &seen.checksums) {
                (Seen::State(AppState::Running), Checksums::Mismatch(v)) => {
                    format!("the checksum of volume {v} differs")
                }
                (t, _) if !running(t) => describe("target", t),
                _ => "the volume checksums could not be compared".into(),
            };
            vec![Step::Hold(format!(
                "the migration is not verified ({why}); the source {} is kept",
                lock.source_app_name
            ))]
        }
        Action::Snapshot
            if present(&seen.target)
                && !active(&seen.target)
                && seen.checksums == Checksums::Match
                && seen.helper != Seen::State(AppState::Failed) =>
        {
            let mut steps = helper;
            if !running(&seen.source) && present(&seen.source) {
                steps.push(Step::StartSource);
            }
            steps.push(Step::Finish(Outcome::Done));
            steps
        }
        _ => {
            // The copy did not finish: bring the source back, clear the
            // helper and any partial, stopped target, and record the failure.
            let reason = match (&seen.helper, &seen.helper_failure) {
                (Seen::State(AppState::Failed), Some(HelperFailure::Reported(said))) => {
                    format!("the helper failed: {said}")
                }
                (Seen::State(AppState::Failed), Some(HelperFailure::Unreported { last_line })) => {
                    format!(
                        "the helper ended without saying why; the last line of its log: {last_line}"
                    )
                }
                (Seen::State(AppState::Failed), None) => {
                    "the helper failed without saying why; its log may tell".to_owned()
                }
                (Seen::Absent, _) => {
                    "the operation was interrupted before the copy finished".to_owned()
                }
                _ => match &seen.checksums {
                    Checksums::Mismatch(v) => format!("the checksum of volume {v} differs"),
                    _ => format!(
                        "the copy did not complete ({})",
                        describe("target", &seen.target)
                    ),
                },
            };
            if !present(&seen.source) {
                return vec![Step::Hold(format!(
                    "{reason}, and the source app {} is gone: nothing is destroyed; look at both grids",
                    lock.source_app_name
                ))];
            }
            let mut steps = helper;
            if !running(&seen.source) {
                steps.push(Step::StartSource);
            }
            let mut reason = reason;
            if present(&seen.target) && !active(&seen.target) {
                if lock.update_target {
                    // It existed before the operation: never destroyed by it.
                    reason = format!(
                        "{reason}; the existing target {} may be partly updated and is kept, stopped (a retry that updates it moves only what still differs)",
                        lock.target_app_name
                    );
                } else {
                    steps.push(Step::DestroyTarget);
                }
            } else if active(&seen.target) {
                return vec![Step::Hold(format!(
                    "{reason}, but the unverified target {} is {}; stop it, then override the lock",
                    lock.target_app_name,
                    describe("target", &seen.target)
                ))];
            }
            steps.push(Step::Finish(Outcome::Failed(reason)));
            steps
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{ConsoleId, LOCK_VERSION};
    use AppState::*;

    fn lock(action: Action) -> Lock {
        Lock {
            version: LOCK_VERSION,
            op_id: "op-1".into(),
            action,
            source_grid: "east".parse().unwrap(),
            source_app_name: "shop".parse().unwrap(),
            target_grid: "west".parse().unwrap(),
            target_app_name: "shop".parse().unwrap(),
            created_at: "2026-11-21T10:00:00Z".parse().unwrap(),
            created_by: "ana".into(),
            console: ConsoleId {
                host: "h".into(),
                pid: 1,
            },
            update_target: false,
            warm: None,
            stop_timeout_secs: None,
            keep_source_hours: None,
            rollback_of: None,
        }
    }

    fn obs(source: Seen, target: Seen, helper: Seen, checksums: Checksums) -> Observed {
        Observed {
            source,
            target,
            helper,
            checksums,
            helper_failure: None,
        }
    }

    fn st(s: AppState) -> Seen {
        Seen::State(s)
    }

    fn g(name: &str) -> GridName {
        name.parse().unwrap()
    }

    use Checksums::{Match, Unknown as NotCompared};
    use Seen::Absent;

    #[test]
    fn the_design_table_row_by_row() {
        let done = Step::Finish(Outcome::Done);
        // source_grid == current, snapshot: snapshot finished, destroy the helper.
        let finished = obs(st(Running), st(Stopped), st(Stopped), Match);
        assert_eq!(
            decide(&lock(Action::Snapshot), Place::InSource, &finished),
            vec![Step::DestroyHelper, done.clone()]
        );
        // source_grid == current, migrate: the source restarted after a failed migrate.
        let failed = obs(st(Running), st(Stopped), st(Failed), NotCompared);
        let steps = decide(&lock(Action::Migrate), Place::InSource, &failed);
        assert_eq!(steps[0], Step::DestroyHelper);
        assert_eq!(steps[1], Step::DestroyTarget);
        assert!(matches!(steps[2], Step::Finish(Outcome::Failed(_))));
        // target_grid == current, migrate: succeeded, destroy helper then source.
        let migrated = obs(st(Stopped), st(Running), st(Stopped), Match);
        assert_eq!(
            decide(&lock(Action::Migrate), Place::InTarget, &migrated),
            vec![Step::DestroyHelper, Step::DestroySource, done.clone()]
        );
        // target_grid == current, snapshot: a manually started copy; nothing.
        assert!(matches!(
            decide(&lock(Action::Snapshot), Place::InTarget, &migrated)[..],
            [Step::InSnapshotCopy]
        ));
    }

    #[test]
    fn a_failed_migrate_is_recorded_with_the_helper_own_reason() {
        let mut failed = obs(st(Running), st(Stopped), st(Failed), NotCompared);
        failed.helper_failure = Some(HelperFailure::Reported(
            "checksum mismatch on volume data".into(),
        ));
        let steps = decide(&lock(Action::Migrate), Place::InSource, &failed);
        assert_eq!(
            steps.last(),
            Some(&Step::Finish(Outcome::Failed(
                "the helper failed: checksum mismatch on volume data".into()
            )))
        );
        // Killed without a report: the grid's last word is the reason.
        failed.helper_failure = Some(HelperFailure::Unreported {
            last_line:
                "app MigHelper_shop2 is failed: its process ended with the previous controller"
                    .into(),
        });
        let steps = decide(&lock(Action::Migrate), Place::InSource, &failed);
        assert_eq!(
            steps.last(),
            Some(&Step::Finish(Outcome::Failed(
                "the helper ended without saying why; the last line of its log: \
                 app MigHelper_shop2 is failed: its process ended with the previous controller"
                    .into()
            )))
        );
    }

    #[test]
    fn a_console_is_inside_an_app_only_when_it_names_the_app() {
        let l = lock(Action::Snapshot);
        let shop: AppName = "shop".parse().unwrap();
        let other: AppName = "shopsnap".parse().unwrap();
        assert_eq!(
            Place::of(&l, Some(&g("west")), Some(&shop)),
            Place::InTarget
        );
        assert_eq!(
            Place::of(&l, Some(&g("east")), Some(&shop)),
            Place::InSource
        );
        assert_eq!(Place::of(&l, Some(&g("west")), None), Place::Outside);
        assert_eq!(
            Place::of(&l, Some(&g("west")), Some(&other)),
            Place::Outside
        );
        assert_eq!(Place::of(&l, None, None), Place::Outside);
    }

    /// The demo's console (current grid east, inside no app) snapshots
    /// west/shop into its own grid: it meters the helper and finishes,
    /// instead of taking itself for a console inside the copy.
    #[test]
    fn a_snapshot_into_the_console_own_grid_runs_and_finishes() {
        let mut l = lock(Action::Snapshot);
        l.source_grid = g("west");
        l.target_grid = g("east");
        l.target_app_name = "shopsnap".parse().unwrap();
        let place = Place::of(&l, Some(&g("east")), None);
        let copying = obs(st(Stopped), Absent, st(Running), NotCompared);
        assert!(matches!(decide(&l, place, &copying)[..], [Step::Wait(_)]));
        let copied = obs(st(Running), st(Stopped), st(Stopped), Match);
        assert_eq!(
            decide(&l, place, &copied),
            vec![Step::DestroyHelper, Step::Finish(Outcome::Done)]
        );
    }

    #[test]
    fn on_the_target_an_unverified_migration_is_held_not_finished() {
        let mismatch = obs(
            st(Stopped),
            st(Running),
            st(Stopped),
            Checksums::Mismatch("data".into()),
        );
        let steps = decide(&lock(Action::Migrate), Place::InTarget, &mismatch);
        let [Step::Hold(why)] = &steps[..] else {
            panic!("{steps:?}")
        };
        assert!(
            why.contains("checksum of volume data differs") && why.contains("source shop is kept"),
            "{why}"
        );
        let not_running = obs(st(Stopped), st(Stopped), Absent, Match);
        let steps = decide(&lock(Action::Migrate), Place::InTarget, &not_running);
        assert!(
            matches!(&steps[..], [Step::Hold(w)] if w.contains("the target app is stopped")),
            "{steps:?}"
        );
    }

    #[test]
    fn a_working_helper_means_wait_and_an_unreachable_grid_means_ask_again() {
        let copying = obs(st(Stopped), st(Stopped), st(Running), NotCompared);
        assert!(matches!(
            decide(&lock(Action::Migrate), Place::Outside, &copying)[..],
            [Step::Wait(_)]
        ));
        let blind = obs(
            Seen::Unknown("timeout".into()),
            st(Stopped),
            st(Stopped),
            NotCompared,
        );
        assert!(
            matches!(&decide(&lock(Action::Migrate), Place::Outside, &blind)[..], [Step::Retry(w)] if w.contains("timeout"))
        );
    }

    #[test]
    fn interrupted_before_the_helper_existed_restarts_the_source() {
        let early = obs(st(Stopped), Absent, Absent, NotCompared);
        let steps = decide(&lock(Action::Migrate), Place::Outside, &early);
        assert_eq!(steps[0], Step::StartSource);
        assert!(matches!(&steps[1], Step::Finish(Outcome::Failed(r)) if r.contains("interrupted")));
    }

    #[test]
    fn snapshot_verified_restarts_a_stopped_source_and_is_done() {
        let s = obs(st(Stopped), st(Stopped), st(Stopped), Match);
        assert_eq!(
            decide(&lock(Action::Snapshot), Place::Outside, &s),
            vec![
                Step::DestroyHelper,
                Step::StartSource,
                Step::Finish(Outcome::Done)
            ]
        );
    }

    #[test]
    fn a_verified_migrate_that_keeps_its_source_keeps_it_instead_of_destroying_it() {
        let mut l = lock(Action::Migrate);
        l.keep_source_hours = Some(24);
        let migrated = obs(st(Stopped), st(Running), st(Stopped), Match);
        for place in [Place::Outside, Place::InTarget] {
            assert_eq!(
                decide(&l, place, &migrated),
                vec![
                    Step::DestroyHelper,
                    Step::KeepSource,
                    Step::Finish(Outcome::Done)
                ]
            );
        }
    }

    /// Every combination of observed states, both actions, with and
    /// without keeping the source, every place the console may run: the
    /// source is destroyed only when the target runs verified and it is not
    /// to be kept; it is kept only then too; a running target is never
    /// destroyed; nothing is destroyed when the helper works or a grid
    /// cannot be asked.
    #[test]
    fn safety_holds_for_every_observed_combination() {
        let states = || {
            let mut v = vec![Absent, Seen::Unknown("x".into())];
            v.extend([Stopped, Starting, Running, Stopping, Failed].map(st));
            v
        };
        let sums = [Match, Checksums::Mismatch("v".into()), NotCompared];
        let shop: AppName = "shop".parse().unwrap();
        let places = [None, Some(g("east")), Some(g("west")), Some(g("north"))]
            .map(|grid| Place::of(&lock(Action::Migrate), grid.as_ref(), Some(&shop)));
        let mut cases = 0;
        for (action, keep) in [
            (Action::Migrate, None),
            (Action::Migrate, Some(24)),
            (Action::Snapshot, None),
            (Action::Rollback, None),
            (Action::Rollback, Some(24)),
        ] {
            let mut l = lock(action);
            l.keep_source_hours = keep;
            // A rollback's target is the kept source: it exists, and is updated.
            if action == Action::Rollback {
                l.update_target = true;
                l.rollback_of = Some("op-0".into());
            }
            for place in &places {
                for source in states() {
                    for target in states() {
                        for helper in states() {
                            for sum in &sums {
                                let o = obs(
                                    source.clone(),
                                    target.clone(),
                                    helper.clone(),
                                    sum.clone(),
                                );
                                let steps = decide(&l, *place, &o);
                                cases += 1;
                                assert!(!steps.is_empty(), "{o:?}");
                                let has = |s: &Step| steps.contains(s);
                                for ends_source in [Step::DestroySource, Step::KeepSource] {
                                    if has(&ends_source) {
                                        assert!(action.moves(), "{action}");
                                        assert!(
                                            running(&o.target) && o.checksums == Match,
                                            "{o:?} → {steps:?}"
                                        );
                                        assert!(!active(&o.source), "{o:?} → {steps:?}");
                                    }
                                }
                                // A rollback never destroys the kept source it moves into.
                                if action == Action::Rollback {
                                    assert!(!has(&Step::DestroyTarget), "{o:?} → {steps:?}");
                                }
                                if keep.is_some() {
                                    assert!(!has(&Step::DestroySource), "kept: {o:?} → {steps:?}");
                                    // A done migrate whose source exists kept it.
                                    if has(&Step::Finish(Outcome::Done)) && present(&o.source) {
                                        assert!(has(&Step::KeepSource), "{o:?} → {steps:?}");
                                    }
                                } else {
                                    assert!(!has(&Step::KeepSource), "{o:?} → {steps:?}");
                                }
                                if has(&Step::DestroyTarget) {
                                    assert!(!active(&o.target), "{o:?} → {steps:?}");
                                    assert!(
                                        present(&o.source),
                                        "never lose both copies: {o:?} → {steps:?}"
                                    );
                                }
                                if active(&o.helper)
                                    || [&o.source, &o.target, &o.helper]
                                        .iter()
                                        .any(|s| matches!(s, Seen::Unknown(_)))
                                {
                                    assert!(
                                        steps.iter().all(|s| matches!(
                                            s,
                                            Step::Wait(_)
                                                | Step::Hold(_)
                                                | Step::Retry(_)
                                                | Step::InSnapshotCopy
                                        )),
                                        "{o:?} → {steps:?}"
                                    );
                                }
                                // Finishing is always last, and at most once.
                                let finishes = steps
                                    .iter()
                                    .filter(|s| matches!(s, Step::Finish(_)))
                                    .count();
                                assert!(finishes <= 1);
                                if finishes == 1 {
                                    assert!(matches!(steps.last(), Some(Step::Finish(_))));
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 4 * 7 * 7 * 7 * 3);
    }
}
