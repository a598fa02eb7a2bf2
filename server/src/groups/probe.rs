//! One attempt of an HTTP check or action, with its evidence: the URL's
//! placeholders filled from the members' properties as the grids report
//! them now, the request bounded by the attempt's timeout, the answer's
//! status and a bounded excerpt kept.
//!
//! What cannot be told is **inconclusive** — no answer in time, a refused
//! connection, a property no grid reports — never a pass, never a failure.

use group::definition::EXCERPT_BYTES;
use group::{AttemptOutcome, HttpMethod, HttpProbe, JsonExpect};
use std::time::{Duration, Instant};

/// The most of an answer read to compare a JSON value (an answer longer
/// than this is a failure of a check that expects JSON).
const MAX_BODY: usize = 256 << 10;

/// What an attempt found: kept, whatever it was.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub outcome: AttemptOutcome,
    /// The status answered, if an answer came.
    pub status: Option<u16>,
    /// The first bytes of the answer, control characters made visible.
    pub excerpt: String,
    /// Why, in words: `answered 503, wanted 200`, `no answer within 5 s`.
    pub note: String,
    pub ms: u64,
}

impl Evidence {
    pub fn of(outcome: AttemptOutcome, note: impl Into<String>, started: Instant) -> Evidence {
        Evidence {
            outcome,
            status: None,
            excerpt: String::new(),
            note: note.into(),
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

fn method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

/// A request to `url` (a template), answered `status`, and with `json`
/// holding in the answer if given. `property(member, name)`: what the
/// grids report of a member now.
pub async fn http(
    client: &reqwest::Client,
    probe: &HttpProbe,
    body: Option<&serde_json::Value>,
    property: impl Fn(&str, &str) -> Option<String>,
    timeout: Duration,
) -> Evidence {
    let started = Instant::now();
    let url = match probe.url.render(property) {
        Ok(u) => u,
        Err(e) => {
            return Evidence::of(
                AttemptOutcome::Inconclusive,
                format!("{e}: cannot tell where to ask"),
                started,
            );
        }
    };
    let mut request = client.request(method(probe.method), &url).timeout(timeout);
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_timeout() {
                format!("no answer from {url} within {:.1} s", timeout.as_secs_f64())
            } else if e.is_connect() {
                format!("cannot connect to {url}")
            } else {
                format!("{url}: {e}")
            };
            return Evidence::of(AttemptOutcome::Inconclusive, why, started);
        }
    };
    let status = response.status().as_u16();
    let (bytes, whole) = match read_bounded(response, MAX_BODY, started + timeout).await {
        Ok(b) => b,
        Err(why) => {
            let mut e = Evidence::of(
                AttemptOutcome::Inconclusive,
                format!("{url} answered {status}, then {why}"),
                started,
            );
            e.status = Some(status);
            return e;
        }
    };
    let excerpt = {
        let cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
        operation_model::visible(&String::from_utf8_lossy(cut)).into_owned()
    };
    let (outcome, note) = judge(probe, status, &bytes, whole);
    Evidence {
        outcome,
        status: Some(status),
        excerpt,
        note,
        ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The answer against what the probe wants.
fn judge(probe: &HttpProbe, status: u16, bytes: &[u8], whole: bool) -> (AttemptOutcome, String) {
    if status != probe.status {
        return (
            AttemptOutcome::Fail,
            format!("answered {status}, wanted {}", probe.status),
        );
    }
    let Some(expect) = &probe.json else {
        return (AttemptOutcome::Pass, format!("answered {status}"));
    };
    if !whole {
        return (
            AttemptOutcome::Fail,
            format!(
                "answered {status} with more than {} KiB: not the JSON wanted",
                MAX_BODY >> 10
            ),
        );
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) => (
            AttemptOutcome::Fail,
            format!("answered {status}, not JSON: {e}"),
        ),
        Ok(v) => match JsonExpect::holds(expect, &v) {
            Ok(()) => (
                AttemptOutcome::Pass,
                format!(
                    "answered {status} with {} {} {}",
                    expect.pointer,
                    expect.op.as_str(),
                    expect.value
                ),
            ),
            Err(why) => (
                AttemptOutcome::Fail,
                format!("answered {status}, but {why}"),
            ),
        },
    }
}

/// At most `max` bytes of the body, and whether that was all of it.
async fn read_bounded(
    mut r: reqwest::Response,
    max: usize,
    deadline: Instant,
) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r.chunk()).await {
            Err(_) => return Err("its answer did not end in time".into()),
            Ok(Err(e)) => return Err(format!("its answer broke off: {e}")),
            Ok(Ok(None)) => return Ok((out, true)),
            Ok(Ok(Some(chunk))) => {
                out.extend_from_slice(&chunk);
                if out.len() > max {
                    out.truncate(max);
                    return Ok((out, false));
                }
            }
        }
    }
}
