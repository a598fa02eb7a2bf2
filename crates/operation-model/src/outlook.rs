//! What the warm passes so far say about cutting over: how fast the app
//! changes its volumes against how fast the copy moves, what a cutover now
//! would copy with the app stopped, and whether the passes converge. One
//! reading for the helper's warning line and the monitor's figures.

use crate::report::{Pass, mib};

/// A pass whose delta is more than this share of the previous pass's did
/// not shrink enough: at that pace the passes take more than a pass
/// limit's worth (8 by default) to come down from a volume to what a
/// cutover copies quickly — the app writes about as fast as the copy moves.
const SHRINKS_TO: f64 = 0.5;
/// Deltas this small are converged whatever their trend, unless the reader
/// knows the operation's own threshold: what a default automatic cutover
/// takes (`warm_converged_mib`, 16).
pub const DEFAULT_SMALL: u64 = 16 << 20;

/// The reading after a live pass (one the app ran through).
#[derive(Clone, Debug, PartialEq)]
pub struct Outlook {
    /// The last live pass.
    pub pass: u32,
    /// Bytes a second the app changed: what the last pass found changed,
    /// over the time since the pass before it began (that pass, and any
    /// pause between the two).
    pub change_rate: u64,
    /// Bytes a second the copy moved, over the passes that moved anything.
    pub copy_rate: u64,
    /// What a cutover now would copy with the app stopped: what changes
    /// at [`Outlook::change_rate`] in the time the last pass took.
    pub cutover_bytes: u64,
    /// How long that copy takes at [`Outlook::copy_rate`].
    pub cutover_copy_ms: u64,
    /// The passes shrink (or are already small).
    pub converging: bool,
}

impl Outlook {
    /// The reading of `passes` (the final pass, if any, is left out);
    /// `None` until two live passes have ended. Deltas up to
    /// [`DEFAULT_SMALL`] count as converged.
    pub fn of(passes: &[Pass]) -> Option<Outlook> {
        Outlook::with_threshold(passes, DEFAULT_SMALL)
    }

    /// As [`Outlook::of`], deltas up to `converged` (the operation's own
    /// threshold, as the helper knows it) counting as converged.
    pub fn with_threshold(passes: &[Pass], converged: u64) -> Option<Outlook> {
        let live: Vec<&Pass> = passes.iter().filter(|p| !p.final_pass).collect();
        let [.., before, last] = live.as_slice() else {
            return None;
        };
        let (moved, ms) = live
            .iter()
            .filter(|p| p.copied > 0)
            .fold((0u64, 0u64), |(b, t), p| (b + p.copied, t + p.ms));
        let per_sec = |bytes: u64, ms: u64| {
            u64::try_from(u128::from(bytes) * 1000 / u128::from(ms.max(1))).unwrap_or(u64::MAX)
        };
        let change_rate = per_sec(last.delta, before.ms.saturating_add(last.waited_ms));
        let copy_rate = per_sec(moved, ms);
        let cutover_bytes = if last.delta == 0 {
            0
        } else {
            u64::try_from(u128::from(change_rate) * u128::from(last.ms.max(1)) / 1000)
                .unwrap_or(u64::MAX)
                .max(1)
        };
        let cutover_copy_ms = if copy_rate == 0 {
            0
        } else {
            u64::try_from(u128::from(cutover_bytes) * 1000 / u128::from(copy_rate))
                .unwrap_or(u64::MAX)
        };
        let converging =
            last.delta <= converged || (last.delta as f64) <= before.delta as f64 * SHRINKS_TO;
        Some(Outlook {
            pass: last.pass,
            change_rate,
            copy_rate,
            cutover_bytes,
            cutover_copy_ms,
            converging,
        })
    }

    /// The warning when the passes do not converge, in the words the
    /// helper's log and the monitor both use.
    pub fn warning(&self) -> Option<String> {
        (!self.converging).then(|| {
            format!(
                "passes are not converging: the app writes {}/s, the copy moves {}/s",
                mib(self.change_rate),
                mib(self.copy_rate)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(pass: u32, delta: u64, copied: u64, ms: u64) -> Pass {
        Pass {
            pass,
            delta,
            copied,
            ms,
            final_pass: false,
            waited_ms: 0,
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn one_pass_says_nothing_yet() {
        assert_eq!(Outlook::of(&[]), None);
        assert_eq!(Outlook::of(&[pass(1, 384 * MIB, 384 * MIB, 48_000)]), None);
    }

    #[test]
    fn shrinking_passes_converge_and_say_what_a_cutover_would_copy() {
        let o = Outlook::of(&[
            pass(1, 384 * MIB, 384 * MIB, 48_000),
            pass(2, 24 * MIB, 24 * MIB, 3_000),
        ])
        .unwrap();
        assert!(o.converging);
        assert_eq!(o.warning(), None);
        assert_eq!(o.pass, 2);
        // 24 MiB changed in 48 s: 0.5 MiB/s; in the 3 s pass 2 took, 1.5 MiB.
        assert_eq!(o.change_rate, MIB / 2);
        assert_eq!(o.cutover_bytes, 3 * MIB / 2);
        assert_eq!(o.copy_rate, 8 * MIB);
        assert_eq!(o.cutover_copy_ms, 187);
    }

    #[test]
    fn passes_that_stay_large_do_not_converge_and_say_why() {
        let o = Outlook::of(&[
            pass(1, 384 * MIB, 384 * MIB, 48_000),
            pass(2, 330 * MIB, 330 * MIB, 41_250),
            pass(3, 320 * MIB, 320 * MIB, 40_000),
        ])
        .unwrap();
        assert!(!o.converging);
        assert_eq!(
            o.warning().unwrap(),
            "passes are not converging: the app writes 7.8 MiB/s, the copy moves 8.0 MiB/s"
        );
    }

    #[test]
    fn small_deltas_converge_whatever_their_trend_and_the_final_pass_is_left_out() {
        let mut last = pass(4, 200 << 10, 200 << 10, 50);
        let o = Outlook::of(&[
            pass(1, 384 * MIB, 384 * MIB, 48_000),
            pass(2, 100 << 10, 100 << 10, 30),
            last.clone(),
        ])
        .unwrap();
        assert!(o.converging);
        last.final_pass = true;
        let o = Outlook::of(&[
            pass(1, 384 * MIB, 384 * MIB, 48_000),
            pass(2, 100 << 10, 100 << 10, 30),
            last,
        ])
        .unwrap();
        assert_eq!(o.pass, 2);
    }

    #[test]
    fn a_pause_before_a_pass_counts_in_the_change_rate() {
        // Pass 2 took 2 s, then the helper waited 6 s for the cutover: the
        // 4 MiB pass 3 found changed over 8 s, not over 2 s.
        let mut third = pass(3, 4 * MIB, 4 * MIB, 500);
        third.waited_ms = 6_000;
        let o = Outlook::of(&[
            pass(1, 384 * MIB, 384 * MIB, 48_000),
            pass(2, 8 * MIB, 8 * MIB, 2_000),
            third,
        ])
        .unwrap();
        assert_eq!(o.change_rate, MIB / 2);
    }

    #[test]
    fn an_idle_app_has_nothing_to_copy_at_cutover() {
        let o = Outlook::of(&[pass(1, 384 * MIB, 384 * MIB, 48_000), pass(2, 0, 0, 1)]).unwrap();
        assert_eq!(
            (o.cutover_bytes, o.cutover_copy_ms, o.converging),
            (0, 0, true)
        );
    }
}
