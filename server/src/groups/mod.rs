//! Group runs (issue 25, in progress): what a check's or an action's
//! attempt finds ([`probe`]). The definitions and the verdict rule are the
//! `group` crate's; the run itself (steps as operations, checks between
//! them, pause/resume/abort, restart) comes next.

pub mod probe;
