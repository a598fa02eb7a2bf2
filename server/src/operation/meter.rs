//! Metering a running helper: its reports (phases, progress, text) become
//! events, the source and target apps' own logs are stored alongside
//! (`app_logs`), and the three apps' states are sampled until the helper
//! stops working.

use super::app_logs::AppLogs;
use super::{Engine, helper_name, store};
use crate::lock::Lock;
use crate::reconcile::Seen;
use app::model::{EventKind, EventSource};
use grid::dialect::{AppState, LogLine};
use operation_model::Report;
use serde_json::json;
use std::time::Duration;

impl Engine {
    /// Follows the helper's log and the apps' states until the helper stops working.
    pub(super) async fn meter(&self, lock: &Lock) {
        let op = &lock.op_id;
        let Ok(dst) = self.connection(&lock.target_grid).await else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return;
        };
        let Ok(helper) = helper_name(&lock.target_app_name) else {
            return;
        };
        let since = self.last_seq(op, EventSource::Helper).await;
        let mut apps = AppLogs::new(self, lock, &dst).await;
        let mut follower = match dst.app_log_follow(&helper, since).await {
            Ok(f) => f,
            Err(e) => {
                self.log(op, format!("cannot follow the helper log: {e}"))
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        // A look at the apps takes several commands: ticks it missed are not
        // made up in a burst, and the helper's lines come first, so that a
        // slow grid delays the states, never the helper's log.
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_states: Option<serde_json::Value> = None;
        loop {
            tokio::select! {
                biased;
                line = follower.next() => match line {
                    Some(Ok(line)) => self.helper_line(op, &line).await,
                    Some(Err(e)) => {
                        self.log(op, format!("helper log: {e}")).await;
                        break;
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    apps.tick(self, op).await;
                    let (source, target, helper) = self.states(lock).await;
                    let states = json!({"source": source.to_string(), "target": target.to_string(), "helper": helper.to_string()});
                    if last_states.as_ref() != Some(&states) {
                        self.states_event(op, states.clone()).await;
                        last_states = Some(states);
                    }
                    if !matches!(helper, Seen::State(AppState::Starting | AppState::Running | AppState::Stopping)) {
                        // Drain what the helper wrote last.
                        while let Ok(Some(Ok(line))) = tokio::time::timeout(Duration::from_millis(300), follower.next()).await {
                            self.helper_line(op, &line).await;
                        }
                        break;
                    }
                }
            }
        }
        follower.close().await;
    }

    /// Stores what the helper and the two apps wrote after the last stored
    /// line: a console that was away (stopped with its app) missed them.
    /// Done before the operation settles, while the helper's log exists.
    pub(super) async fn catch_up(&self, lock: &Lock) {
        let op = &lock.op_id;
        let Ok(dst) = self.connection(&lock.target_grid).await else {
            return;
        };
        if let Ok(helper) = helper_name(&lock.target_app_name) {
            let since = self.last_seq(op, EventSource::Helper).await;
            if let Ok(lines) = dst.app_log(&helper, since).await {
                for line in &lines {
                    self.helper_line(op, line).await;
                }
            }
        }
        AppLogs::new(self, lock, &dst)
            .await
            .read_once(self, op)
            .await;
    }

    /// One line of the helper's log, decoded as a report. A phase report
    /// moves the operation's phase; text never does.
    async fn helper_line(&self, op: &str, line: &LogLine) {
        let mut data = json!({"seq": line.seq, "at": line.at});
        let (phase, text) = match Report::decode(&line.text) {
            Report::Progress(p) => {
                metrics::gauge!("migctl_copy_rate_bytes_per_second")
                    .set(p.rate_bytes_per_sec as f64);
                if let Err(e) = store::set_progress(&self.pool, op, &p).await {
                    tracing::error!(error = %e, op, "cannot store what the helper reported");
                }
                let data = json!({"seq": line.seq, "progress": p});
                self.app_line(op, EventSource::Helper, line.seq, EventKind::Progress, data)
                    .await;
                return;
            }
            Report::Phase { phase, text } => (Some(phase), text),
            Report::Log { text } => (None, text),
            failed @ Report::Failed { .. } => (None, failed.text()),
            verified @ Report::Verified { .. } => {
                if let Report::Verified { volume, digest } = &verified {
                    if let Err(e) = store::add_verified(&self.pool, op, volume, digest).await {
                        tracing::error!(error = %e, op, "cannot store what the helper verified");
                    }
                    data["verified"] = json!({"volume": volume, "digest": digest});
                }
                (None, verified.text())
            }
            Report::Pass(p) => {
                if let Err(e) = store::add_pass(&self.pool, op, &p).await {
                    tracing::error!(error = %e, op, "cannot store what the helper reported");
                }
                let text = Report::Pass(p.clone()).text();
                data["pass"] = serde_json::to_value(&p).unwrap_or_default();
                (None, text)
            }
            Report::SourceStop(stop) => {
                if let Err(e) = store::set_source_stop(&self.pool, op, &stop).await {
                    tracing::error!(error = %e, op, "cannot store what the helper reported");
                }
                data["source_stop"] = serde_json::to_value(stop).unwrap_or_default();
                (None, stop.text())
            }
            Report::Cutover(c) => {
                if let Err(e) = store::set_cutover_report(&self.pool, op, &c).await {
                    tracing::error!(error = %e, op, "cannot store what the helper reported");
                }
                data["cutover"] = serde_json::to_value(&c).unwrap_or_default();
                (None, Report::Cutover(c).text())
            }
            down @ Report::Downtime { ms } => {
                if let Err(e) = store::set_downtime(&self.pool, op, ms).await {
                    tracing::error!(error = %e, op, "cannot store what the helper reported");
                }
                metrics::histogram!("migctl_downtime_seconds").record(ms as f64 / 1000.0);
                data["downtime_ms"] = ms.into();
                (None, down.text())
            }
        };
        data["text"] = text.clone().into();
        self.app_line(op, EventSource::Helper, line.seq, EventKind::Log, data)
            .await;
        // The outcome is the console's to decide, after it verifies.
        if let Some(phase) = phase.filter(|p| !p.is_terminal()) {
            self.phase(op, phase, &text).await;
        }
    }
}
