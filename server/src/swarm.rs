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
    pub deliveries: usize,
    pub delay_ms_p50: Option<f64>,
    pub delay_ms_p99: Option<f64>,
    pub delay_ms_max: Option<f64>,
}

/// One watcher's share: events received, delays (ms) of the events stored
/// once it was following, and what went wrong (if anything).
type Watched = (usize, Vec<f64>, Option<String>);

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
    let events_url = format!("{url}/api/v1/operations/{op}/events?after={after}");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..watchers {
        let (http, events_url, token) = (http.clone(), events_url.clone(), token.to_owned());
        tasks.spawn(async move { watch(&http, &events_url, &token, until).await });
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
    while let Some(done) = tasks.join_next().await {
        let (count, mut seen, problem): Watched =
            done.unwrap_or_else(|e| (0, vec![], Some(e.to_string())));
        if let Some(p) = problem {
            *report.problems.entry(p).or_default() += 1;
        }
        report.events_per_watcher_min = report.events_per_watcher_min.min(count);
        report.events_per_watcher_max = report.events_per_watcher_max.max(count);
        delays.append(&mut seen);
    }
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

/// Follows the stream until `until` (or until it ends: then a problem).
async fn watch(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    until: tokio::time::Instant,
) -> Watched {
    use eventsource_stream::Eventsource;
    let sent = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send();
    let response = match tokio::time::timeout_at(until, sent).await {
        Ok(Ok(r)) if r.status().is_success() => r,
        Ok(Ok(r)) => return (0, vec![], Some(format!("status {}", r.status()))),
        Ok(Err(e)) => return (0, vec![], Some(format!("connect: {e}"))),
        Err(_) => return (0, vec![], Some("not connected in time".into())),
    };
    let following = time::OffsetDateTime::now_utc();
    let mut events = response.bytes_stream().eventsource();
    let mut count = 0;
    let mut delays = vec![];
    loop {
        let event = match tokio::time::timeout_at(until, events.next()).await {
            Err(_) => return (count, delays, None),
            Ok(None) => return (count, delays, Some("the stream ended early".into())),
            Ok(Some(Err(e))) => return (count, delays, Some(format!("stream: {e}"))),
            Ok(Some(Ok(event))) => event,
        };
        let Ok(parsed) = serde_json::from_str::<StreamEvent>(&event.data) else {
            continue;
        };
        let now = time::OffsetDateTime::now_utc();
        count += 1;
        if let Ok(Timestamp(stored)) = parsed.at.parse::<Timestamp>()
            && stored >= following
        {
            delays.push((now - stored).as_seconds_f64() * 1000.0);
        }
    }
}
