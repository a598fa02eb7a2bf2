//! `migctl swarm` (hidden; scripts/load): many watchers of one operation's
//! event stream, as that many browser tabs would be, measuring the delay from
//! each event being stored (its `at`) to each watcher receiving it. A tool
//! for measuring the console, kept in the binary that scripts/test builds.

use crate::clock::Timestamp;
use app::model::StreamEvent;
use futures_util::StreamExt;
use std::time::Duration;

/// What the swarm saw: printed as one JSON object.
#[derive(Debug, Default, serde::Serialize)]
pub struct SwarmReport {
    pub watchers: usize,
    /// Refusals and broken streams, counted by what happened.
    pub problems: std::collections::BTreeMap<String, usize>,
    pub events_per_watcher_min: usize,
    pub events_per_watcher_max: usize,
    /// Watchers that lack an event stored more than a second before the
    /// end (a gap or a duplicate is a problem of its own).
    pub watchers_missing_events: usize,
    pub deliveries: usize,
    pub delay_ms_p50: Option<f64>,
    pub delay_ms_p99: Option<f64>,
    pub delay_ms_max: Option<f64>,
}

/// One watcher's share.
#[derive(Default)]
struct Watched {
    received: usize,
    /// Of the events stored once it was following, in ms.
    delays: Vec<f64>,
    problem: Option<String>,
    /// The last event received, and the last stored before `settled`.
    last_seq: i64,
    settled_seq: i64,
}

pub async fn run(
    url: &str,
    token: &str,
    op: &str,
    after: i64,
    watchers: usize,
    seconds: u64,
) -> anyhow::Result<SwarmReport> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    // Every watcher must have every event stored a second before the end;
    // later ones may reach some watchers and not others before the end.
    let settled = time::OffsetDateTime::now_utc() + Duration::from_secs(seconds.saturating_sub(1));
    let events_url = format!("{url}/api/v1/operations/{op}/events?after={after}");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..watchers {
        let (http, events_url, token) = (http.clone(), events_url.clone(), token.to_owned());
        tasks.spawn(async move { watch(&http, &events_url, &token, after, until, settled).await });
        if i % 50 == 49 {
            // Tabs open in bursts, not all in one instant.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut report = SwarmReport {
        watchers,
        events_per_watcher_min: usize::MAX,
        ..SwarmReport::default()
    };
    let mut delays = vec![];
    let mut lasts = vec![];
    let mut settled_seq = after;
    while let Some(done) = tasks.join_next().await {
        let mut w = done.unwrap_or_else(|e| Watched {
            problem: Some(e.to_string()),
            ..Watched::default()
        });
        if let Some(p) = w.problem {
            *report.problems.entry(p).or_default() += 1;
        }
        report.events_per_watcher_min = report.events_per_watcher_min.min(w.received);
        report.events_per_watcher_max = report.events_per_watcher_max.max(w.received);
        settled_seq = settled_seq.max(w.settled_seq);
        lasts.push(w.last_seq);
        delays.append(&mut w.delays);
    }
    report.watchers_missing_events = lasts.iter().filter(|&&l| l < settled_seq).count();
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let i = ((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1));
        delays.get(i).map(|d| (d * 10.0).round() / 10.0)
    };
    report.deliveries = delays.len();
    report.delay_ms_p50 = pct(0.50);
    report.delay_ms_p99 = pct(0.99);
    report.delay_ms_max = pct(1.0);
    Ok(report)
}

/// Follows the stream until `until` (or until it ends: then a problem),
/// checking that events come in order, each once.
async fn watch(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    after: i64,
    until: tokio::time::Instant,
    settled: time::OffsetDateTime,
) -> Watched {
    use eventsource_stream::Eventsource;
    let mut w = Watched {
        last_seq: after,
        settled_seq: after,
        ..Watched::default()
    };
    let sent = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send();
    let response = match tokio::time::timeout_at(until, sent).await {
        Ok(Ok(r)) if r.status().is_success() => r,
        Ok(Ok(r)) => return w.with(format!("status {}", r.status())),
        Ok(Err(e)) => return w.with(format!("connect: {e}")),
        Err(_) => return w.with("not connected in time".into()),
    };
    let following = time::OffsetDateTime::now_utc();
    let mut events = response.bytes_stream().eventsource();
    loop {
        let event = match tokio::time::timeout_at(until, events.next()).await {
            Err(_) => return w,
            Ok(None) => return w.with("the stream ended early".into()),
            Ok(Some(Err(e))) => return w.with(format!("stream: {e}")),
            Ok(Some(Ok(event))) => event,
        };
        let Ok(parsed) = serde_json::from_str::<StreamEvent>(&event.data) else {
            continue;
        };
        let now = time::OffsetDateTime::now_utc();
        if parsed.seq != w.last_seq + 1 {
            let problem = format!(
                "event {} after {}: a gap or a repeat",
                parsed.seq, w.last_seq
            );
            return w.with(problem);
        }
        w.received += 1;
        w.last_seq = parsed.seq;
        if let Ok(Timestamp(stored)) = parsed.at.parse::<Timestamp>() {
            if stored >= following {
                w.delays.push((now - stored).as_seconds_f64() * 1000.0);
            }
            if stored <= settled {
                w.settled_seq = parsed.seq;
            }
        }
    }
}

impl Watched {
    fn with(mut self, problem: String) -> Watched {
        self.problem = Some(problem);
        self
    }
}
