//! What the end of an app's process makes of the app, for every controller
//! that runs template processes (gridsim's apps, a libvirt host's helper):
//! one rule for when the grid restarts it and which state it settles in.

use crate::dialect::AppState;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// The signal that killed a process no stop asked to end (`killed`: the
/// controller killed it; `stopping`: an `app stop` is under way): a crash,
/// which the grid may restart as its template allows.
pub fn crash_signal(
    status: &std::io::Result<ExitStatus>,
    killed: bool,
    stopping: bool,
) -> Option<i32> {
    status
        .as_ref()
        .ok()
        .and_then(ExitStatusExt::signal)
        .filter(|_| !killed && !stopping)
}

/// The state the app settles in, and why: `stopped` after status 0 or a
/// stop, `failed` otherwise.
pub fn settle(status: &std::io::Result<ExitStatus>, stopping: bool) -> (AppState, String) {
    match status {
        Ok(s) if s.success() => (
            AppState::Stopped,
            "the process exited with status 0".to_owned(),
        ),
        Ok(s) if stopping => (AppState::Stopped, format!("the process was stopped ({s})")),
        Ok(s) => (AppState::Failed, format!("the process exited with {s}")),
        Err(e) => (
            AppState::Failed,
            format!("cannot wait for the process: {e}"),
        ),
    }
}
