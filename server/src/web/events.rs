//! `GET /api/v1/operations/{id}/events`: an operation's events as
//! Server-Sent Events, or the stored ones as a JSON array. A stream first
//! reads what is stored, a page at a time, then follows the operation's
//! live feed (`operation::feed`); it reads the database again only when it
//! fell behind the feed, when the feed skips (an event stored by another
//! process), and every `LOOK_AGAIN` while nothing comes.

use super::AppState;
use super::error::ApiError;
use super::gate::CurrentUser;
use super::openapi;
use crate::operation::{feed, store};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Events read from the database at a time: a stream holds at most this
/// many besides the feed's shared ring, however long the log.
pub const PAGE: i64 = 500;
/// A quiet stream looks at the database this often (events stored by
/// another process; an operation that ended without a last event).
const LOOK_AGAIN: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Start after this sequence number (the last event you have).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// As JSON: at most this many events (default 1000); a `Link: <…>;
    /// rel="next"` header says where the rest begins.
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
}

/// Events in one JSON answer unless the client asks for fewer.
pub const JSON_PAGE: i64 = 1000;
/// The most a client may ask for in one JSON answer.
pub const JSON_PAGE_MAX: i64 = 5000;

/// Where a client resumes an operation's events: after `?after=SEQ`, or, for
/// a stream that reconnects, after its `Last-Event-ID`. Pure, so it is
/// fuzzed (`fuzz/fuzz_targets/event_resume.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// From the query: 0 (from the start) unless it says otherwise.
    pub after: i64,
    /// From the query: events in one JSON answer ([`JSON_PAGE`] unless it says otherwise).
    pub limit: i64,
    /// A reconnecting stream's last event. Only ids this console sends (a
    /// sequence number, 0 or more) count; anything else is ignored, as a
    /// browser that lost its place would be started over.
    pub last_event_id: Option<i64>,
}

impl Resume {
    /// The query string (without `?`) and the `Last-Event-ID` header's
    /// bytes. A bad `after` is refused with what to send instead.
    pub fn read(query: Option<&str>, last_event_id: Option<&[u8]>) -> Result<Resume, String> {
        let query: EventsQuery = serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| {
            format!(
                "{e}; `after` is the sequence number of the last event you have, `limit` how many to send (1 to {JSON_PAGE_MAX})"
            )
        })?;
        if query.after.is_some_and(|a| a < 0) {
            return Err("after: a sequence number, 0 or more (0: from the start)".into());
        }
        if query
            .limit
            .is_some_and(|l| !(1..=JSON_PAGE_MAX).contains(&l))
        {
            return Err(format!("limit: ask for 1 to {JSON_PAGE_MAX} events"));
        }
        let last_event_id = last_event_id
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|&seq| seq >= 0);
        Ok(Resume {
            after: query.after.unwrap_or(0),
            limit: query.limit.unwrap_or(JSON_PAGE),
            last_event_id,
        })
    }

    /// Where a stream starts: its `Last-Event-ID` wins over the query.
    pub fn stream_after(self) -> i64 {
        self.last_event_id.unwrap_or(self.after)
    }
}

/// How many event streams are open, against `max_event_streams`.
#[derive(Debug)]
pub struct Streams {
    open: AtomicUsize,
    max: usize,
}

/// One open stream's place, given back when the stream ends.
pub(super) struct Slot {
    streams: Arc<Streams>,
    _counted: crate::telemetry::Subscriber,
}

impl Streams {
    pub fn new(max: usize) -> Arc<Streams> {
        Arc::new(Streams {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub(super) fn admit(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Slot {
                streams: self.clone(),
                _counted: crate::telemetry::Subscriber::new(),
            }),
            Err(n) => Err(ApiError::TooManyStreams(format!(
                "{n} event streams are open, the most this console serves \
                 (max_event_streams); close a monitor you do not watch, or try again shortly"
            ))),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[utoipa::path(get, path = "/api/v1/operations/{id}/events", tag = "operations",
    params(("id" = String, Path, description = "The operation's id"), EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "A reconnecting stream's last event: resumes after it")),
    responses((status = 200, description = "The events: a stream that ends after the outcome, or a page of the stored ones as an array when `Accept: application/json` (a `Link` header with rel=\"next\" when there may be more)",
            content((Vec<app::model::StreamEvent> = "application/json"), (openapi::EventFrame = "text/event-stream"))),
        openapi::Unauthorized, openapi::NotFound, openapi::Unprocessable, openapi::TooManyStreams))]
/// The operation's events as Server-Sent Events (`id:` = sequence number;
/// `Last-Event-ID` resumes after it), or as a JSON array of at most `limit`
/// (1000) when the client asks for `application/json`, with a
/// `Link: <…>; rel="next"` header when there may be more. The stream ends
/// after the outcome.
/// `?after=SEQ` starts after SEQ (both forms) (a page that already shows events up to
/// SEQ); a `Last-Event-ID` from a reconnecting client wins over it.
pub async fn operation_events(
    State(state): State<AppState>,
    _: CurrentUser,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let resume = Resume::read(
        query.as_deref(),
        headers.get("last-event-id").map(|v| v.as_bytes()),
    )
    .map_err(ApiError::Unprocessable)?;
    if store::get(&state.pool, &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("there is no operation {id:?}")));
    }
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let page = store::events_page(&state.pool, &id, resume.after, resume.limit).await?;
        let next = (page.len() as i64 == resume.limit)
            .then(|| page.last().map(|e| e.seq))
            .flatten();
        let mut response = Json(page).into_response();
        if let Some(last) = next
            && let Ok(link) = axum::http::HeaderValue::from_str(&format!(
                "</api/v1/operations/{id}/events?after={last}&limit={}>; rel=\"next\"",
                resume.limit
            ))
        {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, link);
        }
        return Ok(response);
    }
    let after = resume.stream_after();
    let slot = state.streams.admit()?;
    // Follow before the first read: an event stored in between is in both
    // and sent once (by its sequence number).
    let follow = Follow {
        live: state.engine.follow(&id),
        live_closed: false,
        pool: state.pool.clone(),
        id,
        after,
        buffered: VecDeque::new(),
        read_stored: true,
        ending: false,
        quiet: false,
        closing: state.engine.shutdown_token(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(Some(follow), |f| async move {
        let mut f = f?;
        let sse = match f.next().await? {
            Ok(encoded) => match &encoded.json {
                Some(json) => Event::default()
                    .id(encoded.event.seq.to_string())
                    .event(encoded.event.kind.as_str())
                    .data(json),
                None => Event::default().comment("unencodable event"),
            },
            // The stream ends with it: the client sees why, and may
            // reconnect with the last id it got.
            Err(why) => {
                return Some((
                    Ok::<_, std::convert::Infallible>(
                        Event::default()
                            .event(app::model::STREAM_ERROR_EVENT)
                            .data(why),
                    ),
                    None,
                ));
            }
        };
        Some((Ok(sse), Some(f)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One follower of an operation's events (an open SSE stream).
struct Follow {
    pool: sqlx::SqlitePool,
    id: String,
    /// The last event sent.
    after: i64,
    /// Events to send, serialised: shared with every follower when they
    /// came from the feed, this stream's own when read from the database.
    buffered: VecDeque<Arc<feed::Encoded>>,
    /// Read the database before following the feed again.
    read_stored: bool,
    ending: bool,
    /// A look at the database found nothing new for an ended operation.
    quiet: bool,
    live: feed::Live,
    /// The feed ended (after the operation's last event, or the console's
    /// channel went): only the database is left to look at.
    live_closed: bool,
    /// The console is stopping: send what is stored, then end.
    closing: tokio_util::sync::CancellationToken,
    _slot: Slot,
}

impl Follow {
    /// The next event, or `None` when the stream ends: after the outcome's
    /// phase event (an operation's last event); for an operation that
    /// ended without one (written by an older console), once it is
    /// finished and a second look finds nothing new; and when the console
    /// stops, once every stored event is sent (the last words of a console
    /// leaving with its app included). The browser then reconnects with
    /// Last-Event-ID to whichever console answers next.
    /// `Err` says why the database could not be read; the stream ends with it.
    async fn next(&mut self) -> Option<Result<Arc<feed::Encoded>, String>> {
        loop {
            if let Some(ev) = self.buffered.pop_front() {
                if ev.event.seq <= self.after {
                    continue;
                }
                self.after = ev.event.seq;
                self.ending |= ev.event.is_final();
                return Some(Ok(ev));
            }
            if self.ending {
                return None;
            }
            if self.read_stored {
                let closing = self.closing.is_cancelled();
                let page = match store::events_page(&self.pool, &self.id, self.after, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, op = self.id, "an event stream cannot read the database");
                        metrics::counter!("migctl_event_streams_failed_total").increment(1);
                        return Some(Err(format!(
                            "the console cannot read this operation's events now ({e}); \
                             reconnect to resume after event {}",
                            self.after
                        )));
                    }
                };
                if !page.is_empty() {
                    // A full page may have more behind it: read on after it.
                    self.read_stored = page.len() as i64 == PAGE;
                    self.buffered
                        .extend(page.into_iter().map(feed::Encoded::new));
                    continue;
                }
                let finished = matches!(store::get(&self.pool, &self.id).await,
                    Ok(Some(op)) if op.outcome.is_some());
                if closing || (finished && self.quiet) {
                    return None;
                }
                self.quiet = finished;
                self.read_stored = false;
            }
            tokio::select! {
                received = self.live.recv(), if !self.live_closed => match received {
                    // The next one: send it. One further on: something
                    // came between (another process): read the database.
                    Ok(ev) if ev.event.seq <= self.after + 1 => self.buffered.push_back(ev),
                    Ok(_) | Err(RecvError::Lagged(_)) => self.read_stored = true,
                    Err(RecvError::Closed) => {
                        self.read_stored = true;
                        self.live_closed = true;
                    }
                },
                () = tokio::time::sleep(LOOK_AGAIN) => self.read_stored = true,
                () = self.closing.cancelled(), if !self.closing.is_cancelled() => {
                    self.read_stored = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Resume;

    #[test]
    fn a_stream_resumes_after_its_last_event_id_else_after_the_query() {
        let r = |q: &str, h: Option<&str>| Resume::read(Some(q), h.map(str::as_bytes));
        assert_eq!(r("after=7", None).unwrap().stream_after(), 7);
        assert_eq!(r("after=7", Some(" 12 ")).unwrap().stream_after(), 12);
        assert_eq!(r("", None).unwrap().stream_after(), 0);
        // An id this console never sends is ignored (a negative one read every event).
        assert_eq!(r("after=7", Some("-3")).unwrap().stream_after(), 7);
        assert_eq!(r("after=7", Some("x")).unwrap().stream_after(), 7);
        // The JSON form reads the query only.
        assert_eq!(r("after=7", Some("12")).unwrap().after, 7);
        assert_eq!(r("", None).unwrap().limit, super::JSON_PAGE);
        assert_eq!(r("limit=5000", None).unwrap().limit, 5000);
        for bad in ["limit=0", "limit=5001", "limit=-3"] {
            assert!(r(bad, None).unwrap_err().contains("limit"), "{bad}");
        }
        for bad in ["after=-1", "after=junk", "after=99999999999999999999"] {
            assert!(r(bad, None).unwrap_err().contains("after"), "{bad}");
        }
    }
}
