//! The source and target apps' own logs during an operation, stored as
//! events (`source` / `target`) so the monitor shows all four — at a cost
//! the console bounds, since an app writes what it likes, as much as it
//! likes: a line is kept to [`MAX_LINE_CHARS`], an app's log to
//! [`LINES_PER_TICK`] lines a metering tick and [`LINES_PER_OPERATION`] an
//! operation, and what is not stored is counted and said in the log. The
//! logs are followed (a stream, read a line at a time) while the helper
//! works, and the following ends with the metering.

use super::Engine;
use crate::lock::Lock;
use app::model::{EventKind, EventSource};
use futures_util::FutureExt;
use grid::dialect::LogLine;
use grid::{AppName, Connection, LogFollower};
use serde_json::json;
use std::sync::Arc;

/// The longest line stored; a longer one is cut and says so.
pub const MAX_LINE_CHARS: usize = 2000;
/// Lines of one app stored in one metering tick (half a second); the rest
/// of the tick's lines are counted in one line.
pub const LINES_PER_TICK: usize = 200;
/// Lines of one app stored in one operation; after them, one line says
/// that the rest stay in the app's log on its grid.
pub const LINES_PER_OPERATION: u64 = 20_000;
/// Lines read from one app's stream in one tick, stored or not: a flood is
/// read at this pace and the SSH channel's window holds the controller
/// back.
const READ_PER_TICK: usize = 20_000;

pub(super) struct AppLogs {
    apps: Vec<AppLog>,
}

struct AppLog {
    source: EventSource,
    conn: Option<Arc<Connection>>,
    app: AppName,
    /// The last line read (stored or counted).
    since: Option<u64>,
    follower: Option<LogFollower>,
    /// Lines of this app this operation has stored.
    stored: u64,
    /// Lines read but not stored since the last line that said so.
    unstored: u64,
    /// The operation's share is used up and a line said so.
    full: bool,
}

impl AppLogs {
    pub(super) async fn new(engine: &Engine, lock: &Lock, dst: &Arc<Connection>) -> AppLogs {
        let op = &lock.op_id;
        let src = engine.connection(&lock.source_grid).await.ok();
        // The source's history before this operation is not part of it:
        // start after the last line this operation stored, else after the
        // source's last line when the helper was provisioned (the helper
        // may stop it before the console first gets here), else (not
        // recorded) after its last line now.
        let mut source_since = match engine.last_seq(op, EventSource::Source).await {
            Some(seq) => Some(seq),
            None => engine.source_log_since(op).await,
        };
        if source_since.is_none()
            && let Some(c) = &src
            && let Ok(lines) = c.app_log(&lock.source_app_name, None).await
        {
            source_since = Some(lines.last().map_or(0, |l| l.seq));
        }
        let target_since = engine.last_seq(op, EventSource::Target).await;
        let mut apps = vec![];
        for (source, conn, app, since) in [
            (
                EventSource::Source,
                src,
                lock.source_app_name.clone(),
                source_since,
            ),
            (
                EventSource::Target,
                Some(dst.clone()),
                lock.target_app_name.clone(),
                target_since,
            ),
        ] {
            let stored = engine.app_lines_stored(op, source).await;
            apps.push(AppLog {
                source,
                conn,
                app,
                since,
                follower: None,
                stored,
                unstored: 0,
                full: stored >= LINES_PER_OPERATION,
            });
        }
        AppLogs { apps }
    }

    /// One metering tick: what each app wrote since the last, as far as
    /// the share allows, without waiting for more.
    pub(super) async fn tick(&mut self, engine: &Engine, op: &str) {
        for a in &mut self.apps {
            if a.follower.is_none() {
                let Some(c) = &a.conn else { continue };
                // A missing app (the target before it is created) has no log yet.
                a.follower = c.app_log_follow(&a.app, a.since).await.ok();
            }
            let mut read = 0;
            let mut this_tick = 0;
            while read < READ_PER_TICK {
                let Some(follower) = a.follower.as_mut() else {
                    break;
                };
                // Only what has arrived: a line not yet whole waits for the next tick.
                match follower.next().now_or_never() {
                    None => break,
                    Some(Some(Ok(line))) => {
                        read += 1;
                        a.take(engine, op, &line, &mut this_tick).await;
                    }
                    // The log ended (app destroyed) or broke: follow again next tick.
                    Some(Some(Err(_)) | None) => a.follower = None,
                }
            }
            a.say_unstored(engine, op).await;
        }
    }

    /// What each app wrote since the last line stored, read once (a
    /// console that was away catches up before the operation settles).
    pub(super) async fn read_once(&mut self, engine: &Engine, op: &str) {
        for a in &mut self.apps {
            let Some(c) = &a.conn else { continue };
            let Ok(lines) = c.app_log(&a.app, a.since).await else {
                continue;
            };
            let mut this_tick = 0;
            for line in &lines {
                a.take(engine, op, line, &mut this_tick).await;
            }
            a.say_unstored(engine, op).await;
        }
    }
}

impl AppLog {
    /// Stores `line` if the share allows, else counts it.
    async fn take(&mut self, engine: &Engine, op: &str, line: &LogLine, this_tick: &mut usize) {
        self.since = Some(line.seq);
        if self.full || *this_tick >= LINES_PER_TICK {
            self.unstored += 1;
            return;
        }
        if self.stored >= LINES_PER_OPERATION {
            self.full = true;
            self.unstored += 1;
            let text = format!(
                "[the console stops storing this app's log here: an operation stores {LINES_PER_OPERATION} lines of it; the rest stay in its log on its grid]"
            );
            self.store(engine, op, line.seq, text).await;
            return;
        }
        *this_tick += 1;
        self.stored += 1;
        let text = cut(&line.text);
        self.store(engine, op, line.seq, text).await;
    }

    /// One line that counts the lines not stored since the last such line
    /// (none after the operation's share is used up: it said so once).
    async fn say_unstored(&mut self, engine: &Engine, op: &str) {
        if self.unstored == 0 || self.full {
            self.unstored = 0;
            return;
        }
        let Some(seq) = self.since else { return };
        let text = format!(
            "[{} more lines not stored: the console stores {LINES_PER_TICK} lines of an app's log each half second; they stay in its log on its grid]",
            self.unstored
        );
        self.unstored = 0;
        self.store(engine, op, seq, text).await;
    }

    async fn store(&self, engine: &Engine, op: &str, seq: u64, text: String) {
        let data = json!({"seq": seq, "text": text});
        engine
            .app_line(op, self.source, seq, EventKind::Log, data)
            .await;
    }
}

/// `text` kept to [`MAX_LINE_CHARS`], saying how long it was when cut.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_LINE_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}… [line cut: {} bytes in all]", &text[..end], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_and_says_how_long_it_was() {
        assert_eq!(cut("short"), "short");
        let exact = "é".repeat(MAX_LINE_CHARS);
        assert_eq!(cut(&exact), exact);
        let long = "é".repeat(MAX_LINE_CHARS + 5);
        let kept = cut(&long);
        assert!(kept.starts_with(&"é".repeat(MAX_LINE_CHARS)), "{kept}");
        assert!(
            kept.ends_with(&format!("… [line cut: {} bytes in all]", long.len())),
            "{kept}"
        );
    }
}
