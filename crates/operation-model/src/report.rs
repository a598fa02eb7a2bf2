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
    /// The app is running again: it was down `ms` milliseconds, from the
    /// source leaving `running` until the target runs (migrate) or the
    /// source runs again (snapshot, or a restart after a failure).
    Downtime {
        ms: u64,
    },
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
            Report::Progress(p) => format!(
                "{}: {} of {} bytes in place",
                p.volume, p.volume_done, p.volume_total
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
