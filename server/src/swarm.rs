//! `migctl swarm` (hidden; scripts/load): many watchers of one operation's
//! event stream, as that many browser tabs would be. Most only drain their
//! stream (read its frames and check the ids come in order, each once), so
//! that the client is not what is measured; `--measure` of them also parse
//! each event and measure the delay from its being stored (its `at`) to its
//! arrival. A tool for measuring the console, kept in the binary that
//! scripts/test builds; scripts/load runs several at once and judges what
//! they saw against the events the console stored.

use crate::clock::Timestamp;
use app::model::StreamEvent;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What the swarm saw: printed as one JSON object.
#[derive(Debug, Default, serde::Serialize)]
pub struct SwarmReport {
    pub watchers: usize,
    /// Refusals, broken streams, gaps, repeats and unreadable events,
    /// counted by what happened.
    pub problems: std::collections::BTreeMap<String, usize>,
    /// The last sequence number each watcher received.
    pub last_seqs: Vec<i64>,
    /// Events every watcher must have: those stored up to this instant
    /// (a second before the end; later ones may reach some watchers and
    /// not others before the end).
    pub settled_at: String,
    /// The measuring watchers' delays, in ms, of events stored once they
    /// were following.
    pub delays_ms: Vec<f64>,
}

/// One watcher's share.
#[derive(Default)]
struct Watched {
    /// Of the events stored once it was following, in ms.
    delays: Vec<f64>,
    problem: Option<String>,
    /// The last event received.
    last_seq: i64,
}

/// Watchers that are following (or gave up): `run` says so on stderr once
/// all are, so that a load starts against every stream.
struct Connected {
    count: AtomicUsize,
    of: usize,
}

impl Connected {
    fn one(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.of {
            eprintln!("swarm: {} watchers following", self.of);
        }
    }
}

pub async fn run(
    url: &str,
    token: &str,
    op: &str,
    after: i64,
    watchers: usize,
    measure: usize,
    seconds: u64,
) -> anyhow::Result<SwarmReport> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let settled = time::OffsetDateTime::now_utc() + Duration::from_secs(seconds.saturating_sub(1));
    let events_url = format!("{url}/api/v1/operations/{op}/events?after={after}");
    let connected = Arc::new(Connected {
        count: AtomicUsize::new(0),
        of: watchers,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..watchers {
        let (http, events_url, token) = (http.clone(), events_url.clone(), token.to_owned());
        let connected = connected.clone();
        // The measuring ones spread among the draining ones.
        let measures = measure > 0 && i % watchers.div_ceil(measure) == 0;
        tasks.spawn(async move {
            watch(
                &http,
                &events_url,
                &token,
                after,
                until,
                measures,
                &connected,
            )
            .await
        });
        if i % 50 == 49 {
            // Tabs open in bursts, not all in one instant.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut report = SwarmReport {
        watchers,
        settled_at: Timestamp(settled).to_string(),
        ..SwarmReport::default()
    };
    while let Some(done) = tasks.join_next().await {
        let mut w = done.unwrap_or_else(|e| Watched {
            problem: Some(e.to_string()),
            ..Watched::default()
        });
        if let Some(p) = w.problem {
            *report.problems.entry(p).or_default() += 1;
        }
        report.last_seqs.push(w.last_seq);
        report.delays_ms.append(&mut w.delays);
    }
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
    measures: bool,
    connected: &Connected,
) -> Watched {
    use eventsource_stream::Eventsource;
    let mut w = Watched {
        last_seq: after,
        ..Watched::default()
    };
    let sent = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send();
    let answer = tokio::time::timeout_at(until, sent).await;
    connected.one();
    let response = match answer {
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
        let Ok(seq) = event.id.parse::<i64>() else {
            return w.with(format!(
                "an event without a sequence number: {:?}",
                event.id
            ));
        };
        if seq != w.last_seq + 1 {
            let problem = format!("event {seq} after {}: a gap or a repeat", w.last_seq);
            return w.with(problem);
        }
        w.last_seq = seq;
        if !measures {
            continue;
        }
        let now = time::OffsetDateTime::now_utc();
        let parsed = match serde_json::from_str::<StreamEvent>(&event.data) {
            Ok(parsed) if parsed.seq == seq => parsed,
            Ok(parsed) => {
                return w.with(format!("event {seq}'s data says it is {}", parsed.seq));
            }
            Err(e) => return w.with(format!("event {seq} is not an event: {e}")),
        };
        match parsed.at.parse::<Timestamp>() {
            Ok(Timestamp(stored)) if stored >= following => {
                w.delays.push((now - stored).as_seconds_f64() * 1000.0);
            }
            Ok(_) => {}
            Err(_) => return w.with(format!("event {seq}'s time is unreadable: {}", parsed.at)),
        }
    }
}

impl Watched {
    fn with(mut self, problem: String) -> Watched {
        self.problem = Some(problem);
        self
    }
}
