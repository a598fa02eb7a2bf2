//! libvirt's domain states onto the dialect's, one by one: a state this
//! table does not know is an error that names it, never a guess.

use grid::dialect::AppState;

/// The dialect's state for what `virsh domstate` says.
pub fn app_state(domstate: &str) -> Result<AppState, String> {
    match domstate.trim() {
        // `idle` and `blocked` are a running domain waiting (Xen's words).
        "running" | "idle" | "blocked" => Ok(AppState::Running),
        "in shutdown" => Ok(AppState::Stopping),
        "shut off" => Ok(AppState::Stopped),
        // Not serving, and not safely stopped either: nothing may treat a
        // paused or suspended domain as running or as a stopped copy source.
        "crashed" | "paused" | "pmsuspended" => Ok(AppState::Failed),
        other => Err(format!(
            "libvirt says the domain is {other:?}, a state migctl does not know"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_state_virsh_prints_has_its_mapping_and_others_are_refused() {
        for (virsh, want) in [
            ("running", AppState::Running),
            ("idle", AppState::Running),
            ("blocked", AppState::Running),
            ("in shutdown", AppState::Stopping),
            ("shut off\n", AppState::Stopped),
            ("crashed", AppState::Failed),
            ("paused", AppState::Failed),
            ("pmsuspended", AppState::Failed),
        ] {
            assert_eq!(app_state(virsh).unwrap(), want, "{virsh}");
        }
        let e = app_state("dying").unwrap_err();
        assert!(e.contains("\"dying\""), "{e}");
    }
}
