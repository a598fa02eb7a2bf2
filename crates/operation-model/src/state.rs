//! What an operation does and where it is: action, mode, phase, outcome.

use crate::wire_enum;
use serde::{Deserialize, Serialize};

/// What an operation does to the source app.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Copy to the target, start it, destroy the source once the target is verified.
    Migrate,
    /// Copy to the target (which stays stopped) and restart the source.
    Snapshot,
    /// Move a migrated app back into the source its migrate kept: only the
    /// blocks it changed since the cutover are copied; then the kept
    /// source runs again (a migrate in the other direction into an
    /// existing target, linked to the migrate it undoes).
    Rollback,
}

wire_enum!(Action, "action", [Migrate => "migrate", Snapshot => "snapshot", Rollback => "rollback"]);

impl Action {
    /// The action as a noun, for buttons and sentences: "Start the migration".
    pub fn noun(self) -> &'static str {
        match self {
            Action::Migrate => "migration",
            Action::Snapshot => "snapshot",
            Action::Rollback => "rollback",
        }
    }

    /// The app moves to the target, which then runs (a migrate or a
    /// rollback); a snapshot copies it and the source runs again.
    pub fn moves(self) -> bool {
        matches!(self, Action::Migrate | Action::Rollback)
    }

    /// Whether the console's mode offers this action.
    pub fn allowed_by(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (_, Mode::Both)
                | (Action::Migrate | Action::Rollback, Mode::Migrate)
                | (Action::Snapshot, Mode::Snapshot)
        )
    }

    /// The phases an operation of this action goes through when all goes
    /// well, in order (what the monitor's pipeline shows); a warm one
    /// pre-copies while the source runs before it stops it.
    pub fn pipeline(self, warm: bool) -> Vec<Phase> {
        let mut phases = vec![Phase::Preflight, Phase::Provisioning];
        if warm {
            phases.push(Phase::PreCopying);
        }
        phases.extend([
            Phase::StoppingSource,
            Phase::Copying,
            Phase::Verifying,
            match self {
                Action::Migrate | Action::Rollback => Phase::StartingTarget,
                Action::Snapshot => Phase::RestartingSource,
            },
            Phase::Reconciling,
            Phase::Done,
        ]);
        phases
    }
}

/// When a warm operation stops the source for its last pass.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cutover {
    /// As soon as a pass leaves a delta small enough to copy in moments.
    #[default]
    Auto,
    /// When an operator presses "cut over now"; passes go on meanwhile.
    Manual,
    /// At a time the operator chose; passes go on until then.
    Scheduled,
}

wire_enum!(Cutover, "cutover", [Auto => "auto", Manual => "manual", Scheduled => "scheduled"]);

/// What became of a migrate's kept source: still kept (stopped, until its
/// deadline), released (destroyed by an operator or the deadline, its
/// fingerprint checked first) or rolled back (it runs again, the
/// target's changes copied into it).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptState {
    Kept,
    Released,
    RolledBack,
}

wire_enum!(KeptState, "kept source state", [Kept => "kept", Released => "released", RolledBack => "rolled_back"]);

/// What a warm operation does when its passes reach the limit without
/// the delta becoming small (the app writes faster than the copy).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtPassLimit {
    /// Cut over anyway (a longer final pass), and say so.
    #[default]
    CutOver,
    /// Keep the source running and wait for "cut over now", pre-copying on.
    Wait,
}

wire_enum!(AtPassLimit, "at_pass_limit", [CutOver => "cut_over", Wait => "wait"]);

/// Which actions the console offers (MIG's `mode` property).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Migrate,
    Snapshot,
    #[default]
    Both,
}

wire_enum!(Mode, "mode", [Migrate => "migrate", Snapshot => "snapshot", Both => "both"]);

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Migrate => "migrate only",
            Mode::Snapshot => "snapshot only",
            Mode::Both => "migrate and snapshot",
        }
    }
}

/// Where an operation is. An operation starts in `Preflight` (the start
/// request is checked and the lock taken at once: there is no queue) and
/// ends in one of the terminal phases, which are its [`Outcome`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Preflight,
    Provisioning,
    /// Warm: copying pass after pass while the source runs.
    PreCopying,
    StoppingSource,
    Copying,
    Verifying,
    StartingTarget,
    RestartingSource,
    Reconciling,
    Done,
    Failed,
    Cancelled,
    /// See [`Outcome::Elsewhere`].
    Elsewhere,
}

wire_enum!(Phase, "phase", [
    Preflight => "preflight",
    Provisioning => "provisioning",
    PreCopying => "pre_copying",
    StoppingSource => "stopping_source",
    Copying => "copying",
    Verifying => "verifying",
    StartingTarget => "starting_target",
    RestartingSource => "restarting_source",
    Reconciling => "reconciling",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
    Elsewhere => "elsewhere",
]);

/// What the console did to an app to settle an operation, recorded as it
/// does it: the evidence behind the outcome summary's "what became of".
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    HelperRemoved,
    SourceStarted,
    SourceDestroyed,
    SourceKept,
    TargetRemoved,
    /// An admin overrode the operation's lock: migctl did not settle it.
    LockOverridden,
}

wire_enum!(Settled, "settle step", [HelperRemoved => "helper_removed", SourceStarted => "source_started",
    SourceDestroyed => "source_destroyed", SourceKept => "source_kept", TargetRemoved => "target_removed",
    LockOverridden => "lock_overridden"]);

/// What a cancel in a given phase cleans up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelCleanup {
    /// The source was not stopped yet: the helper goes, the lock is released.
    RemoveHelper,
    /// Warm, before the cutover: the source keeps running; the helper and
    /// the partial target go.
    RemoveCopy,
    /// The source is stopped or being copied: the helper goes, the source
    /// is started again and the partial target removed.
    RestoreSource,
}

impl Phase {
    /// The outcome this phase is, for the terminal phases.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            Phase::Done => Some(Outcome::Done),
            Phase::Failed => Some(Outcome::Failed),
            Phase::Cancelled => Some(Outcome::Cancelled),
            Phase::Elsewhere => Some(Outcome::Elsewhere),
            _ => None,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.outcome().is_some()
    }

    /// What cancelling does in this phase; `None` when it is refused: the
    /// copy is complete and the target (or the restarted source) is starting,
    /// or the operation has ended.
    pub fn cancel(self) -> Option<CancelCleanup> {
        match self {
            Phase::Preflight | Phase::Provisioning => Some(CancelCleanup::RemoveHelper),
            Phase::PreCopying => Some(CancelCleanup::RemoveCopy),
            Phase::StoppingSource | Phase::Copying | Phase::Verifying => {
                Some(CancelCleanup::RestoreSource)
            }
            Phase::StartingTarget
            | Phase::RestartingSource
            | Phase::Reconciling
            | Phase::Done
            | Phase::Failed
            | Phase::Cancelled
            | Phase::Elsewhere => None,
        }
    }

    pub fn cancellable(self) -> bool {
        self.cancel().is_some()
    }

    /// The phase in words, as every page shows it: `stopping the source`.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Preflight => "pre-flight",
            Phase::Provisioning => "provisioning the helper",
            Phase::PreCopying => "pre-copying",
            Phase::StoppingSource => "stopping the source",
            Phase::Copying => "copying",
            Phase::Verifying => "verifying",
            Phase::StartingTarget => "starting the target",
            Phase::RestartingSource => "restarting the source",
            Phase::Reconciling => "reconciling",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
            Phase::Elsewhere => "ended elsewhere",
        }
    }
}

/// How an operation ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Failed,
    Cancelled,
    /// Recorded by a console that runs in a snapshot copy this operation
    /// made: its database was copied mid-operation, and the operation's
    /// outcome belongs to the console in the source app. Nothing was destroyed.
    Elsewhere,
}

wire_enum!(Outcome, "outcome", [Done => "done", Failed => "failed", Cancelled => "cancelled", Elsewhere => "elsewhere"]);

impl Outcome {
    /// The terminal phase an operation with this outcome is in.
    pub fn phase(self) -> Phase {
        match self {
            Outcome::Done => Phase::Done,
            Outcome::Failed => Phase::Failed,
            Outcome::Cancelled => Phase::Cancelled,
            Outcome::Elsewhere => Phase::Elsewhere,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_what_it_writes_on_the_wire_and_in_rows() {
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>(), Ok(*p));
            assert_eq!(
                serde_json::to_string(p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        for o in Outcome::ALL {
            assert_eq!(Phase::try_from(o.as_str().to_owned()), Ok(o.phase()));
            assert_eq!(o.phase().outcome(), Some(*o));
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
        }
    }

    #[test]
    fn an_unknown_value_is_an_error_that_names_the_known_ones() {
        let e = "teleport".parse::<Action>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`teleport` is not a known action; use one of: migrate, snapshot, rollback"
        );
        assert!("queued".parse::<Phase>().is_err(), "there is no queue");
        assert!(serde_json::from_str::<Outcome>("\"overridden\"").is_err());
        let long = "x".repeat(10_000).parse::<Phase>().unwrap_err();
        assert!(long.to_string().len() < 400, "the message stays short");
    }

    #[test]
    fn cancel_is_allowed_until_the_copy_is_complete() {
        use CancelCleanup::*;
        let rules: Vec<_> = Phase::ALL.iter().map(|p| (*p, p.cancel())).collect();
        assert_eq!(
            rules,
            [
                (Phase::Preflight, Some(RemoveHelper)),
                (Phase::Provisioning, Some(RemoveHelper)),
                (Phase::PreCopying, Some(RemoveCopy)),
                (Phase::StoppingSource, Some(RestoreSource)),
                (Phase::Copying, Some(RestoreSource)),
                (Phase::Verifying, Some(RestoreSource)),
                (Phase::StartingTarget, None),
                (Phase::RestartingSource, None),
                (Phase::Reconciling, None),
                (Phase::Done, None),
                (Phase::Failed, None),
                (Phase::Cancelled, None),
                (Phase::Elsewhere, None),
            ]
        );
        for p in Phase::ALL {
            assert!(!(p.is_terminal() && p.cancellable()), "{p}");
        }
    }

    #[test]
    fn the_pipeline_ends_done_and_a_snapshot_restarts_the_source() {
        let m = Action::Migrate.pipeline(false);
        let s = Action::Snapshot.pipeline(true);
        assert!(!m.contains(&Phase::PreCopying));
        assert_eq!(
            s[2],
            Phase::PreCopying,
            "a warm one pre-copies before the stop"
        );
        assert_eq!(m.last(), Some(&Phase::Done));
        assert!(m.contains(&Phase::StartingTarget) && !m.contains(&Phase::RestartingSource));
        assert!(s.contains(&Phase::RestartingSource) && !s.contains(&Phase::StartingTarget));
        assert_eq!(m.iter().filter(|p| p.is_terminal()).count(), 1);
        assert!(Action::Snapshot.allowed_by(Mode::Both));
        assert!(!Action::Migrate.allowed_by(Mode::Snapshot));
    }
}
