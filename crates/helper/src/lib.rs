//! MigHelper: what runs as `MigHelper_<target app>` on the target grid. It
//! stops the source app, creates the target app from the source's
//! descriptor, copies every volume block by block (skipping blocks that are
//! all zero or already equal on the target; pulled by the target's
//! controller when it can, else relayed), verifies every block from the
//! digests both grids give, then starts the target (migrate) or restarts the source (snapshot).
//!
//! Its log (stdout, which the grid keeps as the app log) is one
//! `operation_model::Report` a line (JSON): phases, progress and text. Exit status 0 means
//! done and verified; anything else means failed, with the reason logged.
//! Running it again after a failure resumes: equal blocks are not copied again.
//! Warm (`MIG_WARM=1`): passes while the source runs, then the stop and a
//! final pass of what changed since (`warm`).

pub mod copy;
pub mod env;
pub mod plan;
pub mod run;
pub mod warm;

pub use env::Job;
