//! `migctl op watch` (and `op start --wait`): follows an operation's event
//! stream (SSE) to its outcome, printing the merged log and its progress
//! (indicatif on a terminal, plain lines otherwise). A dropped stream is
//! resumed from the last event printed (`Last-Event-ID`), through a console
//! that is away for a while (moving with its app); each event is printed
//! once.

use crate::away::{Away, Silence};
use crate::remote::{Remote, Unreachable, get_through_gap};
use app::model::{EventKind, OperationView, StreamEvent, human_bytes};
use futures_util::StreamExt;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Where the progress goes.
enum Progress {
    /// A bar at the bottom of the terminal; log lines print above it.
    Bar(indicatif::ProgressBar),
    /// Not a terminal: the bar as text, rewritten on one line.
    Plain,
}

impl Progress {
    fn new() -> Progress {
        if !std::io::stdout().is_terminal() {
            return Progress::Plain;
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "[{bar:30}] {percent:>3}% {bytes} of {total_bytes}  {bytes_per_sec}  {msg}",
        ) {
            bar.set_style(style.progress_chars("#>-"));
        }
        Progress::Bar(bar)
    }

    fn line(&self, text: &str) {
        match self {
            Progress::Bar(b) => b.println(text),
            Progress::Plain => println!("\n{text}"),
        }
    }

    fn show(&self, e: &StreamEvent) {
        let source = e.source;
        if let Some(p) = e.progress() {
            let (done, total) = (p.done, p.total.max(1));
            match self {
                Progress::Bar(b) => {
                    b.set_length(total);
                    b.set_position(done);
                    if p.pass > 0 {
                        b.set_message(format!(
                            "pass {}: {} of {} changed",
                            p.pass,
                            human_bytes(p.copied),
                            human_bytes(p.delta)
                        ));
                    }
                }
                Progress::Plain => {
                    let filled = usize::try_from(done * 30 / total).unwrap_or(30).min(30);
                    print!(
                        "\r[{}{}] {:>3}% {} of {}  {}/s   ",
                        "#".repeat(filled),
                        " ".repeat(30 - filled),
                        done * 100 / total,
                        human_bytes(done),
                        human_bytes(total),
                        human_bytes(p.rate_bytes_per_sec)
                    );
                    let _ = std::io::stdout().flush();
                }
            }
        } else if let Some(p) = e.phase() {
            self.line(&format!("{source:>7} | phase {}: {}", p.phase, p.text));
        } else if e.kind == EventKind::Log {
            self.line(&format!("{source:>7} | {}", e.text()));
        }
    }

    fn finish(&self) {
        match self {
            Progress::Bar(b) => b.finish_and_clear(),
            Progress::Plain => println!(),
        }
    }
}

/// Follows operation `id` to its outcome and returns it.
pub async fn watch(remote: &Remote, id: &str) -> anyhow::Result<OperationView> {
    let progress = Progress::new();
    let mut after = 0i64;
    let mut away = Away::default();
    loop {
        let from = after;
        let followed = follow(remote, id, after, |e| {
            if e.seq > after {
                after = e.seq;
                progress.show(&e);
            }
        })
        .await;
        // Events came: the console answered, and a later drop starts a new
        // count of its absence (two drops an hour apart are not an hour away).
        if after > from
            && let Some(lasted) = away.answered(Instant::now())
        {
            progress.line(&Away::back_line(lasted));
        }
        match followed {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<Unreachable>().is_some() => {
                match away.silent(Instant::now()) {
                    Silence::Began => progress.line(&away.began_line(&e)),
                    Silence::Continues => {}
                    Silence::TooLong => return Err(e.context(away.too_long())),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => match e.downcast_ref::<Busy>() {
                // The console serves as many streams as it may: wait as it asks.
                Some(Busy(wait)) => {
                    progress.line(&format!(
                        "the console is serving all the event streams it may; trying again in {} s",
                        wait.as_secs()
                    ));
                    tokio::time::sleep(*wait).await;
                    continue;
                }
                None => return Err(e),
            },
        }
        // The stream ended: at the outcome, or because the console stops.
        let op: OperationView = serde_json::from_value(
            get_through_gap(remote, &format!("/operations/{id}"), &mut away).await?,
        )?;
        if op.outcome.is_some() {
            // Whatever was stored after the last event the stream sent, a
            // page at a time.
            loop {
                let page: Vec<StreamEvent> = serde_json::from_value(
                    get_through_gap(
                        remote,
                        &format!("/operations/{id}/events?after={after}"),
                        &mut away,
                    )
                    .await?,
                )?;
                let Some(last) = page.last().map(|e| e.seq).filter(|&l| l > after) else {
                    break;
                };
                for e in page.iter().filter(|e| e.seq > after) {
                    progress.show(e);
                }
                after = last;
            }
            progress.finish();
            return Ok(op);
        }
    }
}

/// The console refused the stream with 429: try again after this long
/// (its `Retry-After`, 1 to 60 s).
#[derive(Debug, thiserror::Error)]
#[error("the console serves as many event streams as it may; try again in {} s", .0.as_secs())]
struct Busy(Duration);

/// Reads the event stream after `after` (`Last-Event-ID`) until it ends,
/// handing each event to `each`.
async fn follow(
    remote: &Remote,
    id: &str,
    after: i64,
    mut each: impl FnMut(StreamEvent),
) -> anyhow::Result<()> {
    use eventsource_stream::Eventsource;
    let response = remote
        .http
        .get(format!("{}/api/v1/operations/{id}/events", remote.url))
        .bearer_auth(&remote.token)
        .header("accept", "text/event-stream")
        .header("last-event-id", after.to_string())
        .send()
        .await
        .map_err(|e| Unreachable {
            url: remote.url.clone(),
            cause: crate::remote::cause(&e),
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .unwrap_or(5)
            .clamp(1, 60);
        return Err(Busy(Duration::from_secs(wait)).into());
    }
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        anyhow::bail!(
            "{} ({status})",
            body["message"].as_str().unwrap_or("the console refused")
        );
    }
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        match event {
            // The console could not read on: resume as after a drop.
            Ok(e) if e.event == app::model::STREAM_ERROR_EVENT => {
                return Err(Unreachable {
                    url: remote.url.clone(),
                    cause: e.data,
                }
                .into());
            }
            Ok(e) => {
                if let Ok(parsed) = serde_json::from_str::<StreamEvent>(&e.data) {
                    each(parsed);
                }
            }
            // A dropped connection: the caller resumes from the last event.
            Err(e) => {
                return Err(Unreachable {
                    url: remote.url.clone(),
                    cause: e.to_string(),
                }
                .into());
            }
        }
    }
    Ok(())
}
