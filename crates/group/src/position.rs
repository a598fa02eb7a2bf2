//! Walking a definition: what a run does first, what it does after
//! something succeeded, and which members it has moved by then. A run's
//! position only ever moves forward past what succeeded. Rolling back
//! walks the moved steps in reverse order: each step's rollback operation
//! (`undo`), then its checks after applied again (`recheck`).

use crate::Definition;
use operation_model::group_run::{Position, Stage};

/// The first thing a run of `def` does (`None`: a definition with no
/// steps, which reading one never gives).
pub fn first(def: &Definition) -> Option<Position> {
    settle(
        def,
        Position {
            step: 0,
            stage: Stage::Before,
            item: 0,
        },
    )
}

/// What follows `at` once it succeeded; `None`: the run is done.
pub fn next(def: &Definition, at: Position) -> Option<Position> {
    settle(
        def,
        Position {
            item: at.item + 1,
            ..at
        },
    )
}

/// `at` if it names something to do, else the next position that does.
fn settle(def: &Definition, mut at: Position) -> Option<Position> {
    loop {
        let step = def.steps.get(at.step as usize)?;
        let len = match at.stage {
            Stage::Before => step.before.len(),
            Stage::Actions => step.actions.len(),
            Stage::Operation | Stage::Undo => 1,
            Stage::After | Stage::Recheck => step.after.len(),
        };
        if (at.item as usize) < len {
            return Some(at);
        }
        at = match at.stage {
            Stage::Before => Position {
                stage: Stage::Actions,
                item: 0,
                ..at
            },
            Stage::Actions => Position {
                stage: Stage::Operation,
                item: 0,
                ..at
            },
            Stage::Operation => Position {
                stage: Stage::After,
                item: 0,
                ..at
            },
            Stage::After => Position {
                step: at.step + 1,
                stage: Stage::Before,
                item: 0,
            },
            Stage::Undo => Position {
                stage: Stage::Recheck,
                item: 0,
                ..at
            },
            // The step before, back: none before the first.
            Stage::Recheck => Position {
                step: at.step.checked_sub(1)?,
                stage: Stage::Undo,
                item: 0,
            },
        };
    }
}

/// Where rolling back a run at `at` begins (`None` for a done run): the
/// last step whose member it moved, or the one whose operation
/// `operation_done` says ended done at `at`. `None`: it moved nothing.
pub fn first_back(
    def: &Definition,
    at: Option<Position>,
    operation_done: bool,
) -> Option<Position> {
    let last = def.steps.len().checked_sub(1)? as u32;
    let step = match at {
        None => last,
        Some(p) if p.stage.back() => return Some(p),
        Some(p) if p.stage == Stage::After || (p.stage == Stage::Operation && operation_done) => {
            p.step
        }
        Some(p) => p.step.checked_sub(1)?,
    };
    settle(
        def,
        Position {
            step,
            stage: Stage::Undo,
            item: 0,
        },
    )
}

/// Whether a run at `at` (`None`: ended; `rolled_back`: by rolling back)
/// has `member` on the target grid: its step's operation ended done, and
/// no rollback has returned it.
pub fn moved(def: &Definition, at: Option<Position>, rolled_back: bool, member: &str) -> bool {
    let Some(at) = at else {
        return !rolled_back;
    };
    match def.steps.iter().position(|s| s.member == member) {
        None => false,
        Some(s) => {
            let s = s as u32;
            match at.stage {
                Stage::Undo => s <= at.step,
                Stage::Recheck => s < at.step,
                _ => s < at.step || (s == at.step && at.stage == Stage::After),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
name = "g"
source_grid = "east"
target_grid = "west"
[[members]]
app = "a"
[[members]]
app = "b"
[[steps]]
member = "a"
[[steps]]
member = "b"
[[steps.before]]
wait = { secs = 1 }
[[steps.actions]]
http = { url = "http://{b.LISTEN}/x" }
[[after_each_step]]
wait = { secs = 1 }
"#;

    fn at(step: u32, stage: Stage, item: u32) -> Position {
        Position { step, stage, item }
    }

    #[test]
    fn a_run_walks_every_check_action_and_operation_once_in_order() {
        let def = Definition::from_toml(TWO).unwrap();
        let mut walk = vec![];
        let mut p = first(&def);
        while let Some(at) = p {
            walk.push(at);
            p = next(&def, at);
        }
        assert_eq!(
            walk,
            vec![
                at(0, Stage::Operation, 0),
                at(0, Stage::After, 0),
                at(1, Stage::Before, 0),
                at(1, Stage::Actions, 0),
                at(1, Stage::Operation, 0),
                at(1, Stage::After, 0),
            ]
        );
    }

    #[test]
    fn a_member_counts_as_moved_once_its_operation_succeeded() {
        let def = Definition::from_toml(TWO).unwrap();
        assert!(!moved(&def, Some(at(0, Stage::Operation, 0)), false, "a"));
        assert!(moved(&def, Some(at(0, Stage::After, 0)), false, "a"));
        assert!(moved(&def, Some(at(1, Stage::Before, 0)), false, "a"));
        assert!(!moved(&def, Some(at(1, Stage::Actions, 0)), false, "b"));
        assert!(moved(&def, None, false, "b"));
        assert!(!moved(&def, Some(at(1, Stage::Before, 0)), false, "b"));
    }

    #[test]
    fn rolling_back_walks_the_moved_steps_in_reverse_and_returns_each_member() {
        let def = Definition::from_toml(TWO).unwrap();
        // A done run: both moved; b comes back first, its checks again,
        // then a, its checks again.
        let mut walk = vec![];
        let mut p = first_back(&def, None, false);
        while let Some(at) = p {
            walk.push(at);
            p = next(&def, at);
        }
        assert_eq!(
            walk,
            vec![
                at(1, Stage::Undo, 0),
                at(1, Stage::Recheck, 0),
                at(0, Stage::Undo, 0),
                at(0, Stage::Recheck, 0),
            ]
        );
        assert!(moved(&def, Some(at(1, Stage::Undo, 0)), false, "b"));
        assert!(!moved(&def, Some(at(1, Stage::Recheck, 0)), false, "b"));
        assert!(moved(&def, Some(at(1, Stage::Recheck, 0)), false, "a"));
        assert!(!moved(&def, Some(at(0, Stage::Recheck, 0)), false, "a"));
        assert!(!moved(&def, None, true, "a"));
        // A check after b failed: b moved, so b first.
        assert_eq!(
            first_back(&def, Some(at(1, Stage::After, 0)), false),
            Some(at(1, Stage::Undo, 0))
        );
        // Before b moved (its actions): only a is back.
        assert_eq!(
            first_back(&def, Some(at(1, Stage::Actions, 0)), false),
            Some(at(0, Stage::Undo, 0))
        );
        // b's operation ended done but the run had not moved on yet.
        assert_eq!(
            first_back(&def, Some(at(1, Stage::Operation, 0)), true),
            Some(at(1, Stage::Undo, 0))
        );
        // Nothing moved yet: nothing to roll back.
        assert_eq!(
            first_back(&def, Some(at(0, Stage::Operation, 0)), false),
            None
        );
        // Already rolling back: where it is.
        assert_eq!(
            first_back(&def, Some(at(0, Stage::Recheck, 0)), false),
            Some(at(0, Stage::Recheck, 0))
        );
    }
}
