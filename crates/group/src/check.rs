//! What a check's attempts add up to. A check is tried every `interval`
//! until it has passed `passes` times in a row or its deadline comes; each
//! attempt is a pass, a failure, or **inconclusive** (a timeout, a refused
//! connection, a grid that did not answer) — never counted either way.
//!
//! At the deadline, a check whose last conclusive word was a failure has
//! failed (its `on_failure` applies); one that could not be decided pauses
//! the run, whatever `on_failure` says: a switchover that finished while
//! its check timed out must not be rolled back for it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a failed check does to its run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The run waits for an operator: retry, resume or abort.
    #[default]
    Pause,
    /// The run stops here; nothing more is started.
    Abort,
    /// The members moved so far are moved back, in reverse order.
    RollBack,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Pause => "pause",
            OnFailure::Abort => "abort",
            OnFailure::RollBack => "roll_back",
        }
    }
}

/// How a check is tried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Between the start of one attempt and the next.
    pub interval: Duration,
    /// One attempt's limit; past it the attempt is inconclusive.
    pub timeout: Duration,
    /// From the check's first attempt; always finite.
    pub deadline: Duration,
    /// Consecutive passes it needs.
    pub passes: u32,
    pub on_failure: OnFailure,
}

/// One attempt's word (shared with the pages: the evidence shows it).
pub use operation_model::group_run::AttemptOutcome;

/// Where a check stands after its attempts so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the interval.
    Continue,
    Passed,
    /// Failed: its policy's `on_failure` applies.
    Failed(OnFailure),
    /// The deadline came and the check could not be decided (its last
    /// attempts were inconclusive): the run pauses.
    Undecided,
}

/// The verdict of `attempts` (oldest first) under `policy`.
/// `deadline_passed`: the deadline has come. `decisive`: one failure is
/// the check's failure at once (an operator's refusal), rather than a
/// "not yet" that a later pass may follow (a node still starting).
pub fn verdict(
    policy: &Policy,
    attempts: &[AttemptOutcome],
    deadline_passed: bool,
    decisive: bool,
) -> Verdict {
    let need = policy.passes.max(1) as usize;
    let mut run = 0usize;
    for a in attempts {
        match a {
            AttemptOutcome::Pass => {
                run += 1;
                if run >= need {
                    return Verdict::Passed;
                }
            }
            AttemptOutcome::Fail if decisive => return Verdict::Failed(policy.on_failure),
            AttemptOutcome::Fail | AttemptOutcome::Inconclusive => run = 0,
        }
    }
    if !deadline_passed {
        return Verdict::Continue;
    }
    // The last conclusive word decides.
    match attempts
        .iter()
        .rev()
        .find(|a| **a != AttemptOutcome::Inconclusive)
    {
        Some(AttemptOutcome::Fail) => Verdict::Failed(policy.on_failure),
        // Passing when the time ran out, but not yet often enough in a row,
        // or nothing could be told: nothing says it failed.
        Some(AttemptOutcome::Pass | AttemptOutcome::Inconclusive) | None => Verdict::Undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::AttemptOutcome::{Fail, Inconclusive, Pass};
    use super::*;

    fn policy(passes: u32, on_failure: OnFailure) -> Policy {
        Policy {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(60),
            passes,
            on_failure,
        }
    }

    #[test]
    fn passes_must_come_in_a_row() {
        let p = policy(2, OnFailure::Abort);
        assert_eq!(verdict(&p, &[], false, false), Verdict::Continue);
        assert_eq!(verdict(&p, &[Pass], false, false), Verdict::Continue);
        assert_eq!(
            verdict(&p, &[Pass, Fail, Pass], false, false),
            Verdict::Continue
        );
        assert_eq!(
            verdict(&p, &[Pass, Inconclusive, Pass], false, false),
            Verdict::Continue
        );
        assert_eq!(
            verdict(&p, &[Fail, Pass, Pass], false, false),
            Verdict::Passed
        );
        // Passed once is passed: what follows does not undo it.
        assert_eq!(
            verdict(&p, &[Pass, Pass, Fail], true, false),
            Verdict::Passed
        );
    }

    #[test]
    fn a_failure_before_the_deadline_is_not_yet_a_failed_check() {
        let p = policy(1, OnFailure::Abort);
        assert_eq!(
            verdict(&p, &[Fail, Fail, Fail], false, false),
            Verdict::Continue
        );
        assert_eq!(
            verdict(&p, &[Fail, Fail, Fail], true, false),
            Verdict::Failed(OnFailure::Abort)
        );
    }

    #[test]
    fn inconclusive_at_the_deadline_pauses_whatever_on_failure_says() {
        for on in [OnFailure::Pause, OnFailure::Abort, OnFailure::RollBack] {
            let p = policy(1, on);
            assert_eq!(
                verdict(&p, &[Inconclusive; 5], true, false),
                Verdict::Undecided
            );
            assert_eq!(verdict(&p, &[], true, false), Verdict::Undecided);
            // The last conclusive word was a failure, then nothing could be
            // told: the failure stands.
            assert_eq!(
                verdict(&p, &[Inconclusive, Fail, Inconclusive], true, false),
                Verdict::Failed(on)
            );
            // Passing, but not often enough in a row before the time ran out.
            let twice = policy(2, on);
            assert_eq!(
                verdict(&twice, &[Fail, Pass], true, false),
                Verdict::Undecided
            );
        }
    }

    #[test]
    fn a_decisive_failure_fails_at_once() {
        let p = policy(1, OnFailure::Pause);
        assert_eq!(
            verdict(&p, &[Fail], false, true),
            Verdict::Failed(OnFailure::Pause)
        );
        assert_eq!(verdict(&p, &[Inconclusive], false, true), Verdict::Continue);
    }
}
