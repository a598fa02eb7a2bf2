//! Walking a definition: what a run does first, what it does after
//! something succeeded, and which members it has moved by then. A run's
//! position only ever moves forward past what succeeded.

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
            Stage::Operation => 1,
            Stage::After => step.after.len(),
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
        };
    }
}

/// Whether a run at `at` (`None`: done) has moved `member`: its step's
/// operation ended done.
pub fn moved(def: &Definition, at: Option<Position>, member: &str) -> bool {
    let Some(at) = at else {
        return true;
    };
    match def.steps.iter().position(|s| s.member == member) {
        None => false,
        Some(s) => {
            let s = s as u32;
            s < at.step || (s == at.step && at.stage == Stage::After)
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
        assert!(!moved(&def, Some(at(0, Stage::Operation, 0)), "a"));
        assert!(moved(&def, Some(at(0, Stage::After, 0)), "a"));
        assert!(moved(&def, Some(at(1, Stage::Before, 0)), "a"));
        assert!(!moved(&def, Some(at(1, Stage::Actions, 0)), "b"));
        assert!(moved(&def, None, "b"));
        assert!(!moved(&def, Some(at(1, Stage::Before, 0)), "b"));
    }
}
