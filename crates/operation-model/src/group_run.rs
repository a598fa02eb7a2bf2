//! A group run as the console stores it and the API and the pages show it:
//! its state, where it stands, each step with its operations and each
//! check with its attempts (the evidence), and where every member is.

use crate::{Outcome, wire_enum};
use serde::{Deserialize, Serialize};

/// Where a run is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Its task is checking, acting or moving a member.
    Running,
    /// Waiting for an operator (paused by one, or by a check or a step
    /// that did not succeed): resume, retry or abort.
    Paused,
    /// Every member moved, every check passed.
    Done,
    /// Stopped for good; its members are where `members` says.
    Aborted,
    /// Rolled back: every member it had moved is on the source grid again
    /// (each by a rollback operation into its kept source), and the checks
    /// after each passed again.
    RolledBack,
}

wire_enum!(RunState, "run state", [Running => "running", Paused => "paused", Done => "done", Aborted => "aborted", RolledBack => "rolled_back"]);

impl RunState {
    pub fn ended(self) -> bool {
        matches!(
            self,
            RunState::Done | RunState::Aborted | RunState::RolledBack
        )
    }
}

/// The part of a step a run is in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The checks before the member moves.
    Before,
    /// The actions before it moves (e.g. releasing a primary's activity).
    Actions,
    /// The migctl operation that moves it.
    Operation,
    /// The checks after it moved.
    After,
    /// Rolling back: the rollback operation that returns the member to its
    /// kept source.
    Undo,
    /// Rolling back: the step's checks after (its own, then
    /// `after_each_step`) applied again once the member is back.
    Recheck,
}

wire_enum!(Stage, "stage", [Before => "before", Actions => "actions", Operation => "operation", After => "after", Undo => "undo", Recheck => "recheck"]);

impl Stage {
    /// Whether a run at this stage is rolling back.
    pub fn back(self) -> bool {
        matches!(self, Stage::Undo | Stage::Recheck)
    }
}

/// What a run does next: step `step`, its `stage`, the `item`-th check
/// or action there (0 for the operation).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub step: u32,
    pub stage: Stage,
    pub item: u32,
}

/// One attempt's word.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Pass,
    Fail,
    /// Could not tell: a timeout, a connection error, no answer.
    Inconclusive,
}

wire_enum!(AttemptOutcome, "attempt outcome", [Pass => "pass", Fail => "fail", Inconclusive => "inconclusive"]);

/// One attempt of a check or an action, kept as evidence.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    /// The check's round: 1, then one more each time it is started afresh
    /// (a resume, a retry).
    pub round: u32,
    /// RFC 3339.
    pub at: String,
    pub outcome: AttemptOutcome,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// The first bytes answered, control characters made visible.
    pub excerpt: String,
    /// Why, in words.
    pub note: String,
    pub ms: u64,
}

/// Where a check or an action stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not reached yet.
    Pending,
    /// The run is at it now.
    Current,
    /// Passed (a check) or answered as it must (an action).
    Passed,
}

wire_enum!(ItemState, "item state", [Pending => "pending", Current => "current", Passed => "passed"]);

/// A check or an action of a step, with its attempts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    pub name: String,
    /// `http`, `app_state`, `approval`, `wait` or `action`.
    pub kind: String,
    pub state: ItemState,
    /// Consecutive passes it needs (1 for an action).
    pub passes: u32,
    /// `pause`, `abort` or `roll_back`; an action that fails pauses.
    pub on_failure: String,
    pub attempts: Vec<AttemptView>,
}

/// An operation a step started.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOperation {
    pub id: String,
    /// `migrate` (moving the member) or `rollback` (returning it).
    pub action: crate::Action,
    /// `None` while it runs.
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
}

/// Where a step stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Current,
    Done,
    /// Its member is on the source grid again, its checks passed again.
    RolledBack,
}

wire_enum!(StepState, "step state", [Pending => "pending", Current => "current", Done => "done", RolledBack => "rolled_back"]);

/// One member moved: its checks, actions and operations.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub member: String,
    pub target_app: String,
    pub warm: bool,
    pub state: StepState,
    pub before: Vec<ItemView>,
    pub actions: Vec<ItemView>,
    /// Every operation it started, the latest last (a rollback's too).
    pub operations: Vec<StepOperation>,
    pub after: Vec<ItemView>,
    /// The checks after, applied again once a rollback returned the
    /// member (empty unless the run rolls back).
    pub rechecks: Vec<ItemView>,
}

/// Where a member is, as the run knows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberPlace {
    /// On the source grid: not moved (or its move ended other than done).
    Source,
    /// An operation is moving it.
    Moving,
    /// Moved: on the target grid.
    Target,
}

wire_enum!(MemberPlace, "member place", [Source => "source", Moving => "moving", Target => "target"]);

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub app: String,
    pub place: MemberPlace,
    pub grid: String,
    /// Its name there.
    pub name: String,
    /// What the grid said of it at its last check (`running`, `stopped`,
    /// `absent`), if the console has heard.
    pub state: Option<String>,
    /// In words: `on west as mq1, running (moved by op-…)`.
    pub says: String,
}

/// An operator's word on an approval check.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub step: u32,
    pub stage: Stage,
    pub item: u32,
    pub approved: bool,
    pub decided_by: String,
    pub decided_at: String,
    pub reason: String,
}

/// A group run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRunView {
    pub id: String,
    pub name: String,
    pub source_grid: String,
    pub target_grid: String,
    pub state: RunState,
    /// Its definition keeps the members' sources (`keep_source`).
    pub keep_source: bool,
    /// It can be rolled back now (`POST …/rollback`): its sources kept, it
    /// is paused, done or aborted, no operation in flight, and every member
    /// still to return has its kept source.
    pub can_roll_back: bool,
    /// What it does next; `None` once nothing is left.
    pub position: Option<Position>,
    /// Why it paused or was aborted, in words.
    pub reason: Option<String>,
    /// The position is an approval check waiting for an operator's word.
    pub awaiting_approval: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    pub steps: Vec<StepView>,
    pub members: Vec<MemberView>,
    pub approvals: Vec<ApprovalView>,
}
