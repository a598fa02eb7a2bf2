//! An operation's events as they are stored and streamed (the SSE `data:`
//! of `/api/v1/operations/{id}/events`), with typed readers of their data.

use crate::report::Progress;
use crate::state::Phase;
use crate::wire_enum;
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The operation entered a phase (`data`: [`PhaseData`]).
    Phase,
    /// A line of text (`data`: [`TextData`]).
    Log,
    /// A progress sample of the helper (`data`: `{seq, progress}`).
    Progress,
    /// Live states of the source app, the target app and the helper.
    State,
}

wire_enum!(EventKind, "event kind", [
    Phase => "phase",
    Log => "log",
    Progress => "progress",
    State => "state",
]);

/// Who said it: the console itself, the helper, or one of the two apps' logs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Console,
    Helper,
    Source,
    Target,
}

wire_enum!(EventSource, "event source", [
    Console => "console",
    Helper => "helper",
    Source => "source",
    Target => "target",
]);

/// The data of a `phase` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseData {
    pub phase: Phase,
    pub text: String,
}

/// The data of a `log` event; `seq` is the line's number in its app's log
/// (helper, source, target), absent for the console's own lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextData {
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The console stops with its app and will answer again from this grid
    /// (a console inside the app it moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
    /// The helper's measure of how long the app was down (its `downtime` report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// A warm pass that ended (the helper's `pass` report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<crate::Pass>,
    /// How the helper's stop of the source went (its `source_stop` report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_stop: Option<crate::SourceStop>,
}

#[derive(Deserialize)]
struct ProgressData {
    progress: Progress,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesData {
    pub source: String,
    pub target: String,
    pub helper: String,
}

/// One stored event of an operation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    pub seq: i64,
    pub at: String,
    pub kind: EventKind,
    pub source: EventSource,
    pub data: serde_json::Value,
}

impl StreamEvent {
    /// The phase this event moves to, for `phase` events (its text made
    /// visible, as [`Self::text`]'s).
    pub fn phase(&self) -> Option<PhaseData> {
        (self.kind == EventKind::Phase)
            .then(|| serde_json::from_value::<PhaseData>(self.data.clone()).ok())
            .flatten()
            .map(|p| PhaseData {
                text: crate::visible(&p.text).into_owned(),
                ..p
            })
    }

    pub fn progress(&self) -> Option<Progress> {
        (self.kind == EventKind::Progress)
            .then(|| serde_json::from_value::<ProgressData>(self.data.clone()).ok())
            .flatten()
            .map(|d| d.progress)
    }

    pub fn states(&self) -> Option<StatesData> {
        (self.kind == EventKind::State)
            .then(|| serde_json::from_value(self.data.clone()).ok())
            .flatten()
    }

    /// The grid the console will answer from again, for the console's
    /// "stopping with its app" line.
    pub fn away(&self) -> Option<String> {
        (self.kind == EventKind::Log && self.source == EventSource::Console)
            .then(|| serde_json::from_value::<TextData>(self.data.clone()).ok())
            .flatten()
            .and_then(|d| d.away)
    }

    /// How long the app was down, for the helper's `downtime` line.
    pub fn downtime_ms(&self) -> Option<u64> {
        (self.kind == EventKind::Log && self.source == EventSource::Helper)
            .then(|| serde_json::from_value::<TextData>(self.data.clone()).ok())
            .flatten()
            .and_then(|d| d.downtime_ms)
    }

    /// How the source stopped, for the helper's `source_stop` line.
    pub fn source_stop(&self) -> Option<crate::SourceStop> {
        (self.kind == EventKind::Log && self.source == EventSource::Helper)
            .then(|| serde_json::from_value::<TextData>(self.data.clone()).ok())
            .flatten()
            .and_then(|d| d.source_stop)
    }

    /// The warm pass that ended, for the helper's `pass` line.
    pub fn pass(&self) -> Option<crate::Pass> {
        (self.kind == EventKind::Log && self.source == EventSource::Helper)
            .then(|| serde_json::from_value::<TextData>(self.data.clone()).ok())
            .flatten()
            .and_then(|d| d.pass)
    }

    /// The event's text (empty when it has none).
    /// The event's text as pages, downloads and terminals show it: what an
    /// app, a helper or a grid wrote, control characters made visible
    /// ([`crate::visible`]).
    pub fn text(&self) -> String {
        crate::visible(self.data["text"].as_str().unwrap_or_default()).into_owned()
    }

    /// True for the outcome's phase event, an operation's last event.
    pub fn is_final(&self) -> bool {
        self.phase().is_some_and(|p| p.phase.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: EventKind, data: serde_json::Value) -> StreamEvent {
        StreamEvent {
            seq: 1,
            at: "2026-11-23T10:00:00Z".into(),
            kind,
            source: EventSource::Console,
            data,
        }
    }

    #[test]
    fn events_read_as_their_kind_says_and_nothing_else() {
        let done = ev(EventKind::Phase, json!({"phase": "done", "text": "ok"}));
        assert_eq!(done.phase().map(|p| p.phase), Some(Phase::Done));
        assert!(done.is_final());
        assert!(done.progress().is_none());
        let odd = ev(EventKind::Phase, json!({"phase": "teleporting"}));
        assert_eq!(odd.phase(), None, "an unknown phase moves nothing");
        assert!(!odd.is_final());
        let log = ev(
            EventKind::Log,
            json!({"phase": "done", "text": "said done"}),
        );
        assert_eq!(log.phase(), None, "only phase events change the phase");
        assert_eq!(log.text(), "said done");
        let wire = serde_json::to_value(&log).unwrap();
        assert_eq!(
            (wire["kind"].as_str(), wire["source"].as_str()),
            (Some("log"), Some("console"))
        );
    }
}
