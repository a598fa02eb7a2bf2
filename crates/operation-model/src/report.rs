//! What the helper tells the console. Every line the helper writes to its
//! log is one JSON object (`{"type": "log", "text": …}`, `{"type":
//! "phase", …}`, `{"type": "progress", …}`), so the console learns the
//! phase from a typed value, never from the wording of a sentence.
//! A line that is not a report (an older helper, a crash message) is text.

use crate::state::Phase;
use serde::{Deserialize, Serialize};

/// A progress sample of the copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    pub volume: String,
    pub volume_done: u64,
    pub volume_total: u64,
    /// Bytes in place on the target, all volumes (copied or found equal).
    pub done: u64,
    pub total: u64,
    /// Bytes actually moved so far.
    pub copied: u64,
    pub rate_bytes_per_sec: u64,
    /// Warm: the pass this sample belongs to (1: the bulk copy; later
    /// ones copy what changed). 0: a cold copy.
    pub pass: u32,
    /// Bytes this copy (this pass) found to move, all volumes so far.
    pub delta: u64,
}

/// One warm pass, when it ends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pass {
    /// 1, 2, …; the final pass (after the stop) is the last one.
    pub pass: u32,
    /// Bytes that differed from the target when the pass began.
    pub delta: u64,
    /// Bytes moved (less than `delta` when a cutover cut the pass short).
    pub copied: u64,
    pub ms: u64,
    /// The pass after the source stopped.
    #[serde(rename = "final")]
    pub final_pass: bool,
    /// Milliseconds the helper paused before this pass began (waiting for
    /// a cutover): the app's changes it found accumulated over the pass
    /// before it *and* this pause.
    pub waited_ms: u64,
}

/// Why the warm passes ended and the cutover began.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum CutoverReason {
    /// A pass found `delta` bytes changed: small enough to copy with the
    /// app stopped.
    Converged { delta: u64 },
    /// An operator pressed "cut over now".
    Requested { by: String },
    /// The scheduled cutover time came.
    Scheduled,
    /// The pass limit was reached with `delta` bytes still changing between
    /// passes, and the operation was set to cut over anyway.
    PassLimit { delta: u64 },
}

impl CutoverReason {
    /// A cutover the warm promise (a short stop) does not cover: the
    /// passes never converged and it cut over anyway.
    pub fn breaks_promise(&self) -> bool {
        matches!(self, CutoverReason::PassLimit { .. })
    }
}

impl std::fmt::Display for CutoverReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutoverReason::Converged { delta } => write!(
                f,
                "the last pass found {} changed: small enough to copy with the app stopped",
                mib(*delta)
            ),
            CutoverReason::Requested { by } => write!(f, "{by} asked to cut over now"),
            CutoverReason::Scheduled => write!(f, "the scheduled cutover time has come"),
            CutoverReason::PassLimit { delta } => write!(
                f,
                "the pass limit is reached and the delta is still {} (the app writes about as fast as the copy runs); cutting over anyway, as set",
                mib(*delta)
            ),
        }
    }
}

/// A warm operation's cutover: after which pass, and why.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutoverReport {
    pub after_pass: u32,
    pub reason: CutoverReason,
}

/// Bytes as the helper's lines say them: `12.5 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// How the source stopped when the helper stopped it: by itself, or forced
/// (its process killed, its machine powered off) when the timeout ran out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStop {
    /// It did not stop within the timeout and was forced: what it had not
    /// written to its volumes yet is lost.
    pub forced: bool,
    /// How long the stop took.
    pub ms: u64,
    /// The stop timeout it was given.
    pub timeout_secs: u64,
}

impl SourceStop {
    /// [`Self::text`] as a sentence of its own (the monitor's).
    pub fn sentence(&self) -> String {
        let text = self.text();
        let mut chars = text.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
            .unwrap_or_default()
    }

    /// The words for people (the log, the CLI; [`Self::sentence`] on the monitor).
    pub fn text(&self) -> String {
        if self.forced {
            format!(
                "the source app did not stop by itself within its {} s stop timeout and was forced off: what it had not written to its volumes was lost",
                self.timeout_secs
            )
        } else {
            format!(
                "the source app stopped by itself in {:.1} s (stop timeout {} s)",
                self.ms as f64 / 1000.0,
                self.timeout_secs
            )
        }
    }
}

/// One line of the helper's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// The helper entered a phase; `text` says it for people.
    Phase {
        phase: Phase,
        text: String,
    },
    Progress(Progress),
    Log {
        text: String,
    },
    /// A warm pass ended.
    Pass(Pass),
    /// A volume was verified (the stopped source and the target held the
    /// same bytes); `digest` fingerprints the side that stays stopped (the
    /// source after a migrate, the target after a snapshot) as it was then.
    /// The console checks that side against it before it destroys
    /// anything: the other side runs, and its app may write.
    Verified {
        volume: String,
        digest: crate::BlockDigest,
    },
    /// The app is running again: it was down `ms` milliseconds, from the
    /// source leaving `running` until the target runs (migrate) or the
    /// source runs again (snapshot, or a restart after a failure).
    Downtime {
        ms: u64,
    },
    /// The helper stopped the source: how (said by controllers that tell).
    SourceStop(SourceStop),
    /// A warm operation's passes ended: the cutover begins.
    Cutover(CutoverReport),
    /// The helper gives up: why, in its own words. Its last report; the
    /// console records it as the operation's reason when it settles.
    Failed {
        reason: String,
    },
}

impl Report {
    /// The line the helper writes (no newline).
    pub fn encode(&self) -> String {
        // Serializing these plain structs cannot fail; a text line is the fallback.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
    }

    /// Reads one line of a helper log. Anything that is not a report is
    /// kept as text, so nothing is lost and nothing moves the phase.
    pub fn decode(line: &str) -> Report {
        let trimmed = line.trim_start();
        if trimmed.starts_with('{')
            && let Ok(report) = serde_json::from_str(trimmed)
        {
            return report;
        }
        Report::Log {
            text: line.to_owned(),
        }
    }

    /// The text for people, for any report.
    pub fn text(&self) -> String {
        match self {
            Report::Phase { text, .. } | Report::Log { text } => text.clone(),
            Report::Failed { reason } => format!("failed: {reason}"),
            Report::Downtime { ms } => {
                format!("the app was down for {:.1} s", *ms as f64 / 1000.0)
            }
            Report::SourceStop(stop) => stop.text(),
            Report::Cutover(c) => format!("cutting over after pass {}: {}", c.after_pass, c.reason),
            Report::Progress(p) => format!(
                "{}: {} of {} bytes in place",
                p.volume, p.volume_done, p.volume_total
            ),
            Report::Verified { volume, digest } => {
                format!("volume {volume} verified: {digest}")
            }
            Report::Pass(p) => format!(
                "{} {}: {} bytes had changed, {} copied in {:.1} s",
                if p.final_pass { "final pass" } else { "pass" },
                p.pass,
                p.delta,
                p.copied,
                p.ms as f64 / 1000.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back_what_the_helper_wrote() {
        let all = [
            Report::Phase {
                phase: Phase::Copying,
                text: "created the target app".into(),
            },
            Report::Progress(Progress {
                volume: "data".into(),
                done: 5,
                total: 9,
                ..Progress::default()
            }),
            Report::Log {
                text: "source stopped in 0.2 s".into(),
            },
            Report::Failed {
                reason: "checksum mismatch on volume data".into(),
            },
            Report::Downtime { ms: 8_600 },
            Report::SourceStop(SourceStop {
                forced: true,
                ms: 10_004,
                timeout_secs: 10,
            }),
            Report::Verified {
                volume: "data".into(),
                digest: format!("blocks-blake3:4194304:{}", "ab12".repeat(16))
                    .parse()
                    .unwrap(),
            },
            Report::Pass(Pass {
                pass: 2,
                delta: 8 << 20,
                copied: 8 << 20,
                ms: 40,
                final_pass: true,
                waited_ms: 0,
            }),
            Report::Cutover(CutoverReport {
                after_pass: 8,
                reason: CutoverReason::PassLimit { delta: 300 << 20 },
            }),
            Report::Cutover(CutoverReport {
                after_pass: 2,
                reason: CutoverReason::Requested { by: "ada".into() },
            }),
        ];
        for r in all {
            let line = r.encode();
            assert!(!line.contains('\n'));
            assert_eq!(Report::decode(&line), r);
        }
    }

    #[test]
    fn anything_else_is_text_and_never_a_phase() {
        for line in [
            "stopping the source app shop (timeout 120 s)",
            "progress {\"done\": 5}",
            "{\"type\": \"phase\", \"phase\": \"teleporting\", \"text\": \"x\"}",
            "{\"type\": \"phase\"}",
            "{\"type\": \"progress\", \"done\": \"many\"}",
            "{not json",
            "{\"type\":\"log\",\"text\":\"a\"} trailing",
            "",
            "\u{0}\u{ffff}{{{{",
        ] {
            assert_eq!(
                Report::decode(line),
                Report::Log {
                    text: line.to_owned()
                },
                "{line:?}"
            );
        }
    }
}
