//! Recording an operation's events: each is stored with the next sequence
//! number, then sent to the operation's followers (SSE streams).

use super::{Engine, feed, store};
use app::model::{EventKind, EventSource, Phase, TextData};
use serde_json::json;

/// A write of an operation's record that failed: in the log, and counted
/// in `migctl_store_errors_total{what}` for the alert that should follow.
fn store_failed(what: &'static str, op: &str, e: &sqlx::Error) {
    tracing::error!(error = %e, op, what, "cannot write an operation's record");
    metrics::counter!("migctl_store_errors_total", "what" => what).increment(1);
}

impl Engine {
    async fn store_event(&self, op: &str, e: store::NewEvent<'_>) {
        let kind = e.kind;
        match store::append_event(&self.pool, op, e).await {
            Ok(Some(stored)) => self.feeds.publish(op, stored),
            Ok(None) => tracing::debug!(op, %kind, "event after the outcome dropped"),
            Err(e) => store_failed("event", op, &e),
        }
    }

    /// Puts why a held lock is kept on the operation's row (`Some`), or
    /// takes it off (`None`: it no longer holds). A failure is logged and
    /// counted, never silent.
    pub(super) async fn say_reason(&self, op: &str, reason: Option<&str>) {
        let done = match reason {
            Some(r) => store::set_reason(&self.pool, op, r).await,
            None => store::clear_reason(&self.pool, op).await,
        };
        if let Err(e) = done {
            store_failed("reason", op, &e);
        }
    }

    /// An event of the console's own (not from an app's log).
    async fn console_event(&self, op: &str, kind: EventKind, data: serde_json::Value, last: bool) {
        let event = store::NewEvent {
            kind,
            source: EventSource::Console,
            data: &data,
            app_seq: None,
            last,
        };
        self.store_event(op, event).await;
    }

    /// A line of the console's own log (also in the process's log).
    pub(super) async fn log(&self, op: &str, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(op, "{text}");
        let data = json!({ "text": text });
        self.console_event(op, EventKind::Log, data, false).await;
    }

    /// The console's line before it stops with its app: `away` is the grid
    /// it will answer from again, for the monitor to say so meanwhile.
    pub(super) async fn departure(&self, op: &str, text: String, away: &grid::GridName) {
        let data = TextData {
            text,
            seq: None,
            away: Some(away.to_string()),
            ..TextData::default()
        };
        let data = serde_json::to_value(data).unwrap_or_default();
        self.console_event(op, EventKind::Log, data, false).await;
    }

    /// A line from an app's log (helper, source or target) with its number there.
    pub(super) async fn app_line(
        &self,
        op: &str,
        source: EventSource,
        seq: u64,
        kind: EventKind,
        data: serde_json::Value,
    ) {
        self.store_event(
            op,
            store::NewEvent {
                kind,
                source,
                data: &data,
                app_seq: Some(seq),
                last: false,
            },
        )
        .await;
    }

    /// The live states of the three apps.
    pub(super) async fn states_event(&self, op: &str, data: serde_json::Value) {
        self.console_event(op, EventKind::State, data, false).await;
    }

    /// The operation enters `phase`: the row and an event. A terminal
    /// phase's event is the operation's last.
    pub(super) async fn phase(&self, op: &str, phase: Phase, text: &str) {
        if !phase.is_terminal()
            && let Err(e) = store::set_phase(&self.pool, op, phase).await
        {
            tracing::error!(error = %e, op, "cannot store the phase");
        }
        tracing::info!(op, %phase, "{text}");
        self.time_phase(op, phase);
        let data = json!({ "phase": phase, "text": text });
        self.console_event(op, EventKind::Phase, data, phase.is_terminal())
            .await;
    }

    /// Records how long `op` spent in the phase it leaves (a console that
    /// started mid-operation times from its start).
    fn time_phase(&self, op: &str, phase: Phase) {
        let Ok(mut clock) = self.phase_clock.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        let left = if phase.is_terminal() {
            clock.remove(op)
        } else {
            clock.insert(op.to_owned(), (phase, now))
        };
        if let Some((was, since)) = left.filter(|(was, _)| *was != phase) {
            metrics::histogram!("migctl_phase_duration_seconds", "phase" => was.as_str())
                .record(now.duration_since(since).as_secs_f64());
        } else if let Some((was, since)) = left {
            // The same phase again (a helper's report after the console's own): keep timing it.
            clock.insert(op.to_owned(), (was, since));
        }
    }

    /// Every event `op` gets from now on (see `feed`).
    pub fn follow(&self, op: &str) -> feed::Live {
        self.feeds.follow(op)
    }

    /// Lines of `source`'s log this operation has stored (0 when it cannot say).
    pub(super) async fn app_lines_stored(&self, op: &str, source: EventSource) -> u64 {
        match store::app_lines_stored(&self.pool, op, source).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, op, "cannot count the stored log lines");
                0
            }
        }
    }

    pub(super) async fn source_log_since(&self, op: &str) -> Option<u64> {
        match store::source_log_since(&self.pool, op).await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(error = %e, op, "cannot read where the source's log stood");
                None
            }
        }
    }

    pub(super) async fn last_seq(&self, op: &str, source: EventSource) -> Option<u64> {
        store::last_app_seq(&self.pool, op, source)
            .await
            .ok()
            .flatten()
    }
}
