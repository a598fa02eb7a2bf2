//! HA groups: apps that serve together, moved one member at a time by a
//! group run, with typed checks between the steps (as Solace moves its HA
//! triplet and Rhino's orca a cluster).
//!
//! - [`definition`]: what an operator writes (a TOML file kept in version
//!   control, or the same as JSON through the API), read and checked once
//!   into a [`Definition`] — every problem named by where it sits.
//! - [`check`]: the rule that turns a check's attempts into its verdict;
//!   an inconclusive attempt (a timeout, a connection refused) is never a
//!   pass and never a failure.
//! - [`position`]: what a run does first and next, and which members
//!   it has moved by then.
//! - [`template`]: URLs that name a member's properties
//!   (`http://{mq1.LISTEN}/redundancy`).

pub mod check;
pub mod definition;
pub mod position;
pub mod template;

pub use check::{AttemptOutcome, OnFailure, Policy, Verdict, verdict};
pub use definition::{
    Action, Check, CompareOp, Definition, DefinitionError, HttpMethod, HttpProbe, JsonExpect,
    Member, Probe, Step,
};
pub use template::{Template, TemplateError};
