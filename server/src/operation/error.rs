//! What the engine answers when it refuses or fails: typed, so the HTTP
//! boundary picks the status and a form puts the message next to its field.

use app::model::{Action, Mode, Outcome, Phase};
use grid::GridError;

/// A field of a start, cancel or override request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    SourceGrid,
    SourceApp,
    TargetGrid,
    TargetApp,
    OpId,
    Reason,
    Cutover,
    CutoverAt,
    StopTimeout,
    KeepSource,
    KeepSourceHours,
    Action,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::SourceGrid => "source_grid",
            Field::SourceApp => "source_app",
            Field::TargetGrid => "target_grid",
            Field::TargetApp => "target_app",
            Field::OpId => "op_id",
            Field::Reason => "reason",
            Field::Cutover => "cutover",
            Field::CutoverAt => "cutover_at",
            Field::StopTimeout => "stop_timeout_secs",
            Field::KeepSource => "keep_source",
            Field::KeepSourceHours => "keep_source_hours",
            Field::Action => "action",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A value of the request is wrong; the message says why and what to do.
    #[error("{message}")]
    BadField { field: Field, message: String },
    /// The request as a whole cannot be done (e.g. the target grid is full).
    #[error("{0}")]
    BadInput(String),
    #[error("this console's mode is {mode}: it does not {action}")]
    ModeForbids { mode: Mode, action: Action },
    #[error("there is no operation {0:?}")]
    NoSuchOperation(String),
    /// The lock is held (the message names the holder) or not this operation's.
    #[error("{0}")]
    Locked(String),
    #[error("operation {id} has already ended: {outcome}")]
    Ended { id: String, outcome: Outcome },
    #[error(
        "operation {id} cannot be cancelled in phase {phase}: the copy is complete and the {starting} is starting; let it finish"
    )]
    NotCancellable {
        id: String,
        phase: Phase,
        starting: &'static str,
    },
    /// A migrate that cannot be rolled back: why.
    #[error("operation {id} cannot be rolled back: {why}")]
    NotRollbackable { id: String, why: String },
    /// A kept source that is not released: why.
    #[error("operation {id}: {why}")]
    NotReleasable { id: String, why: String },
    /// "Cut over now" for an operation that is not pre-copying.
    #[error("operation {id} {why}")]
    NoCutover { id: String, why: String },
    #[error("grid {0} is not in the grid inventory")]
    UnknownGrid(grid::GridName),
    /// A grid could not be asked or refused a command; the error names the grid.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// The console cannot talk to grids at all, or a step on a grid failed.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for EngineError {
    fn from(e: sqlx::Error) -> Self {
        EngineError::Unexpected(e.into())
    }
}

impl EngineError {
    pub fn field(field: Field, message: impl Into<String>) -> EngineError {
        EngineError::BadField {
            field,
            message: message.into(),
        }
    }

    /// The form field the error is about, if one.
    pub fn field_name(&self) -> Option<&'static str> {
        match self {
            EngineError::BadField { field, .. } => Some(field.as_str()),
            _ => None,
        }
    }
}
