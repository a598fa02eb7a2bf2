//! The `operations` and `operation_events` tables: every query on them.
//! Rows are read into named types; a value the model does not know (a
//! phase, an outcome, a time) is an error, never a default.

use crate::clock::{self, Timestamp};
use crate::lock::Lock;
use app::model::{
    Action, Cutover, EventKind, EventSource, KeptSource, KeptState, OperationView, Outcome, Pass,
    Phase, StreamEvent,
};
use operation_model::{BlockDigest, CutoverReport, Progress, Settled, SourceStop};
use sqlx::SqlitePool;

#[derive(sqlx::FromRow)]
struct OperationRow {
    id: String,
    #[sqlx(try_from = "String")]
    action: Action,
    source_grid: String,
    source_app: String,
    target_grid: String,
    target_app: String,
    #[sqlx(try_from = "String")]
    phase: Phase,
    outcome: Option<String>,
    reason: Option<String>,
    bytes_done: i64,
    bytes_total: i64,
    created_by: String,
    #[sqlx(try_from = "String")]
    created_at: Timestamp,
    #[sqlx(try_from = "String")]
    updated_at: Timestamp,
    finished_at: Option<String>,
    bytes_copied: i64,
    downtime_ms: Option<i64>,
    warm: bool,
    cutover: Option<String>,
    cutover_at: Option<String>,
    passes: String,
    stop_timeout_secs: i64,
    source_stop_forced: Option<bool>,
    source_stop_ms: Option<i64>,
    kept_grid: Option<String>,
    kept_app: Option<String>,
    kept_until: Option<String>,
    kept_state: Option<String>,
    kept_problem: Option<String>,
    kept_ended_by: Option<String>,
    kept_ended_at: Option<String>,
    kept_reason: Option<String>,
    rollback_of: Option<String>,
    rolled_back_by: Option<String>,
    cutover_report: Option<String>,
    settled: String,
}

const COLUMNS: &str = "o.id, o.action, o.source_grid, o.source_app, o.target_grid, o.target_app, o.phase, \
                       o.outcome, o.reason, o.bytes_done, o.bytes_total, o.created_by, o.created_at, \
                       o.updated_at, o.finished_at, o.bytes_copied, o.downtime_ms, o.warm, o.cutover, \
                       o.cutover_at, o.passes, o.stop_timeout_secs, o.source_stop_forced, o.source_stop_ms, \
                       k.grid AS kept_grid, k.app AS kept_app, k.until AS kept_until, \
                       k.state AS kept_state, k.problem AS kept_problem, k.ended_by AS kept_ended_by, \
                       k.ended_at AS kept_ended_at, k.reason AS kept_reason, o.rollback_of, \
                       (SELECT r.id FROM operations r WHERE r.rollback_of = o.id \
                        ORDER BY r.created_at DESC, r.id DESC LIMIT 1) AS rolled_back_by, \
                       o.cutover_report, o.settled";

/// An operation's row and its kept source's, if it kept one.
const FROM: &str = "operations o LEFT JOIN kept_sources k ON k.op_id = o.id";

fn decode_error(column: &str, e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    }
}

impl TryFrom<OperationRow> for OperationView {
    type Error = sqlx::Error;
    fn try_from(r: OperationRow) -> sqlx::Result<OperationView> {
        let outcome = r
            .outcome
            .map(|o| o.parse::<Outcome>())
            .transpose()
            .map_err(|e| decode_error("outcome", e))?;
        let finished_at = r
            .finished_at
            .map(|t| t.parse::<Timestamp>())
            .transpose()
            .map_err(|e| decode_error("finished_at", e))?;
        let cutover = r
            .cutover
            .map(|c| c.parse::<Cutover>())
            .transpose()
            .map_err(|e| decode_error("cutover", e))?;
        let passes: Vec<Pass> =
            serde_json::from_str(&r.passes).map_err(|e| decode_error("passes", e))?;
        let cutover_report: Option<CutoverReport> = r
            .cutover_report
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| decode_error("cutover_report", e))?;
        let settled: Vec<Settled> =
            serde_json::from_str(&r.settled).map_err(|e| decode_error("settled", e))?;
        let duration_ms = finished_at
            .map(|end| u64::try_from((end.0 - r.created_at.0).whole_milliseconds()).unwrap_or(0));
        let kept_source = match (r.kept_grid, r.kept_app, r.kept_until, r.kept_state) {
            (Some(grid), Some(app), Some(until), Some(state)) => Some(KeptSource {
                grid,
                app,
                until,
                state: state
                    .parse::<KeptState>()
                    .map_err(|e| decode_error("kept_sources.state", e))?,
                problem: r.kept_problem,
                ended_by: r.kept_ended_by,
                ended_at: r.kept_ended_at,
                reason: r.kept_reason,
            }),
            _ => None,
        };
        Ok(OperationView {
            id: r.id,
            action: r.action,
            source_grid: r.source_grid,
            source_app: r.source_app,
            target_grid: r.target_grid,
            target_app: r.target_app,
            phase: r.phase,
            outcome,
            reason: r.reason,
            bytes_done: r.bytes_done,
            bytes_total: r.bytes_total,
            created_by: r.created_by,
            created_at: r.created_at.to_string(),
            updated_at: r.updated_at.to_string(),
            finished_at: finished_at.map(|t| t.to_string()),
            bytes_copied: r.bytes_copied,
            downtime_ms: r.downtime_ms,
            warm: r.warm,
            cutover,
            cutover_at: r.cutover_at,
            passes,
            stop_timeout_secs: u64::try_from(r.stop_timeout_secs).unwrap_or(0),
            source_stop: r.source_stop_forced.map(|forced| SourceStop {
                forced,
                ms: r
                    .source_stop_ms
                    .and_then(|ms| u64::try_from(ms).ok())
                    .unwrap_or(0),
                timeout_secs: u64::try_from(r.stop_timeout_secs).unwrap_or(0),
            }),
            kept_source,
            rollback_of: r.rollback_of,
            rolled_back_by: r.rolled_back_by,
            cutover_report,
            settled,
            duration_ms,
        })
    }
}

/// Records the operation `lock` guards, in `phase`.
pub async fn insert(
    pool: &SqlitePool,
    lock: &Lock,
    phase: Phase,
    bytes_total: u64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO operations (id, action, source_grid, source_app, target_grid, target_app, phase,
             bytes_total, created_by, created_at, updated_at, warm, cutover, cutover_at,
             stop_timeout_secs, rollback_of)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&lock.op_id)
    .bind(lock.action.as_str())
    .bind(lock.source_grid.as_str())
    .bind(lock.source_app_name.as_str())
    .bind(lock.target_grid.as_str())
    .bind(lock.target_app_name.as_str())
    .bind(phase.as_str())
    .bind(i64::try_from(bytes_total).unwrap_or(i64::MAX))
    .bind(&lock.created_by)
    .bind(lock.created_at.to_string())
    .bind(clock::now().to_string())
    .bind(lock.warm.is_some())
    .bind(lock.warm.as_ref().map(|w| w.cutover.as_str()))
    .bind(
        lock.warm
            .as_ref()
            .and_then(|w| w.cutover_at)
            .map(|t| t.to_string()),
    )
    .bind(i64::try_from(lock.stop_timeout()).unwrap_or(i64::MAX))
    .bind(lock.rollback_of.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<OperationView>> {
    sqlx::query_as::<_, OperationRow>(&format!("SELECT {COLUMNS} FROM {FROM} WHERE o.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(OperationView::try_from)
        .transpose()
}

/// The rollbacks of migrate `id`, oldest first.
pub async fn rollbacks_of(pool: &SqlitePool, id: &str) -> sqlx::Result<Vec<OperationView>> {
    sqlx::query_as::<_, OperationRow>(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE o.rollback_of = ? ORDER BY o.created_at, o.id"
    ))
    .bind(id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(OperationView::try_from)
    .collect()
}

/// The operations whose source is still kept, the nearest deadline first.
pub async fn with_kept_source(pool: &SqlitePool) -> sqlx::Result<Vec<OperationView>> {
    sqlx::query_as::<_, OperationRow>(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE k.state = 'kept' ORDER BY k.until, o.id"
    ))
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(OperationView::try_from)
    .collect()
}

pub async fn list(pool: &SqlitePool, limit: i64) -> sqlx::Result<Vec<OperationView>> {
    sqlx::query_as::<_, OperationRow>(&format!(
        "SELECT {COLUMNS} FROM {FROM} ORDER BY o.created_at DESC, o.id DESC LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(OperationView::try_from)
    .collect()
}

pub async fn set_phase(pool: &SqlitePool, id: &str, phase: Phase) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET phase = ?, updated_at = ? WHERE id = ? AND outcome IS NULL")
        .bind(phase.as_str())
        .bind(clock::now().to_string())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Progress never goes backwards: the larger value wins.
/// Records how long the app was down, as the helper measured it.
/// Passes an operation keeps: the first and the latest others. A warm
/// operation that waits for its cutover may pass for hours.
pub const PASSES_KEPT: u32 = 100;

/// Adds a warm pass that ended (a pass reported twice, by a helper that
/// was restarted, is kept once: the later report wins). Keeps pass 1 and
/// the latest [`PASSES_KEPT`] − 1; the numbers say what is left out.
pub async fn add_pass(pool: &SqlitePool, id: &str, pass: &Pass) -> sqlx::Result<()> {
    // One statement: a read then a write in a deferred transaction fails
    // at once (SQLITE_BUSY_SNAPSHOT) when another write lands in between,
    // and a final pass went missing that way under load.
    let pass = serde_json::to_string(pass).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "UPDATE operations SET passes = (
           SELECT json_group_array(json(v)) FROM (
             SELECT v FROM (
               SELECT value AS v FROM json_each(COALESCE(operations.passes, '[]'))
                 WHERE json_extract(value, '$.pass') != json_extract(?1, '$.pass')
               UNION ALL SELECT json(?1) AS v)
             WHERE json_extract(v, '$.pass') = 1
                OR json_extract(v, '$.pass') > MAX(json_extract(?1, '$.pass'), COALESCE(
                     (SELECT MAX(json_extract(value, '$.pass'))
                        FROM json_each(COALESCE(operations.passes, '[]'))), 0)) - ?4
             ORDER BY json_extract(v, '$.pass'))),
           updated_at = ?2
         WHERE id = ?3",
    )
    .bind(pass)
    .bind(clock::now().to_string())
    .bind(id)
    .bind(PASSES_KEPT - 1)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_downtime(pool: &SqlitePool, id: &str, ms: u64) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET downtime_ms = ?, updated_at = ? WHERE id = ?")
        .bind(i64::try_from(ms).unwrap_or(i64::MAX))
        .bind(clock::now().to_string())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Why a warm operation cut over, as its helper said (the last word
/// stands: a restarted helper that cuts over again says it again).
pub async fn set_cutover_report(
    pool: &SqlitePool,
    id: &str,
    report: &CutoverReport,
) -> sqlx::Result<()> {
    let json = serde_json::to_string(report).map_err(|e| decode_error("cutover_report", e))?;
    sqlx::query("UPDATE operations SET cutover_report = ?, updated_at = ? WHERE id = ?")
        .bind(json)
        .bind(clock::now().to_string())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a step the console carried out to settle the operation (once:
/// a settle repeated after a restart does not say it twice).
pub async fn add_settled(pool: &SqlitePool, id: &str, step: Settled) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE operations SET settled = json_insert(settled, '$[#]', ?1), updated_at = ?2
         WHERE id = ?3 AND NOT EXISTS (SELECT 1 FROM json_each(operations.settled) WHERE value = ?1)",
    )
    .bind(step.as_str())
    .bind(clock::now().to_string())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// How the helper's stop of the source went.
pub async fn set_source_stop(pool: &SqlitePool, id: &str, stop: &SourceStop) -> sqlx::Result<()> {
    // A forced stop stays said: a later report (a restarted helper's) never
    // turns it into one that stopped by itself.
    sqlx::query(
        "UPDATE operations SET source_stop_forced = MAX(COALESCE(source_stop_forced, 0), ?),
             source_stop_ms = ?, stop_timeout_secs = ?, updated_at = ? WHERE id = ?",
    )
    .bind(stop.forced)
    .bind(i64::try_from(stop.ms).unwrap_or(i64::MAX))
    .bind(i64::try_from(stop.timeout_secs).unwrap_or(i64::MAX))
    .bind(clock::now().to_string())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_progress(pool: &SqlitePool, id: &str, p: &Progress) -> sqlx::Result<()> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE operations SET bytes_done = MAX(bytes_done, ?), bytes_total = MAX(bytes_total, ?),
             bytes_copied = MAX(bytes_copied, ?),
             copy_rate = CASE WHEN ? > 0 THEN ? ELSE copy_rate END,
             updated_at = ? WHERE id = ?",
    )
    .bind(n(p.done))
    .bind(n(p.total))
    .bind(n(p.copied))
    .bind(n(p.copied))
    .bind(n(p.rate_bytes_per_sec))
    .bind(clock::now().to_string())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_reason(pool: &SqlitePool, id: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET reason = ?, updated_at = ? WHERE id = ?")
        .bind(reason)
        .bind(clock::now().to_string())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The grids answer again: the held lock's reason no longer holds.
pub async fn clear_reason(pool: &SqlitePool, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE operations SET reason = NULL, updated_at = ? WHERE id = ? AND outcome IS NULL",
    )
    .bind(clock::now().to_string())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the outcome, once: a second outcome for the same operation is ignored.
pub async fn finish(
    pool: &SqlitePool,
    id: &str,
    outcome: Outcome,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    let at = clock::now().to_string();
    sqlx::query(
        "UPDATE operations SET outcome = ?, phase = ?, reason = COALESCE(?, reason),
             updated_at = ?, finished_at = ? WHERE id = ? AND outcome IS NULL",
    )
    .bind(outcome.as_str())
    .bind(outcome.phase().as_str())
    .bind(reason)
    .bind(&at)
    .bind(&at)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// An event about to be stored.
pub struct NewEvent<'a> {
    pub kind: EventKind,
    pub source: EventSource,
    pub data: &'a serde_json::Value,
    /// The line's number in its app's log, for lines from an app's log.
    pub app_seq: Option<u64>,
    /// True for the outcome's phase event.
    pub last: bool,
}

/// Appends an event with the operation's next sequence number. The
/// outcome's phase event is the last one: later events (a poll that was
/// under way) are dropped and `None` returned, so every reader's log ends
/// with the outcome.
pub async fn append_event(
    pool: &SqlitePool,
    op_id: &str,
    e: NewEvent<'_>,
) -> sqlx::Result<Option<StreamEvent>> {
    let stored: Option<EventRow> = sqlx::query_as(&format!(
        "INSERT INTO operation_events (op_id, seq, at, kind, source, data, app_seq, final)
         SELECT ?, next, ?, ?, ?, ?, ?, ? FROM
           (SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM operation_events WHERE op_id = ?)
         WHERE NOT EXISTS (SELECT 1 FROM operation_events WHERE op_id = ? AND final = 1)
         RETURNING {EVENT_COLUMNS}"
    ))
    .bind(op_id)
    .bind(clock::now().to_string())
    .bind(e.kind.as_str())
    .bind(e.source.as_str())
    .bind(e.data.to_string())
    .bind(e.app_seq.and_then(|s| i64::try_from(s).ok()))
    .bind(e.last)
    .bind(op_id)
    .bind(op_id)
    .fetch_optional(pool)
    .await?;
    Ok(stored.map(StreamEvent::from))
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    #[sqlx(try_from = "String")]
    at: Timestamp,
    #[sqlx(try_from = "String")]
    kind: EventKind,
    #[sqlx(try_from = "String")]
    source: EventSource,
    data: String,
}

impl From<EventRow> for StreamEvent {
    fn from(r: EventRow) -> StreamEvent {
        StreamEvent {
            seq: r.seq,
            at: r.at.to_string(),
            kind: r.kind,
            source: r.source,
            // Stored by this module as JSON; anything else is shown as text.
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::String(r.data)),
        }
    }
}

const EVENT_COLUMNS: &str = "seq, at, kind, source, data";

/// Records `app` on `grid` as kept by operation `op_id` until `until`
/// (once: a settle repeated after a crash keeps the first deadline).
pub async fn keep_source(
    pool: &SqlitePool,
    op_id: &str,
    grid: &str,
    app: &str,
    until: Timestamp,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO kept_sources (op_id, grid, app, kept_at, until) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(op_id)
    .bind(grid)
    .bind(app)
    .bind(clock::now().to_string())
    .bind(until.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

/// A kept source still kept: its operation, grid and app, its deadline and
/// the problem said about it, if any.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Kept {
    pub op_id: String,
    pub grid: String,
    pub app: String,
    #[sqlx(try_from = "String")]
    pub until: Timestamp,
    pub problem: Option<String>,
}

/// The sources still kept, the nearest deadline first.
pub async fn kept(pool: &SqlitePool) -> sqlx::Result<Vec<Kept>> {
    sqlx::query_as(
        "SELECT op_id, grid, app, until, problem FROM kept_sources WHERE state = 'kept' ORDER BY until, op_id",
    )
    .fetch_all(pool)
    .await
}

/// Ends a kept source (released or rolled back), if it is still kept:
/// whether it was.
pub async fn end_kept(
    pool: &SqlitePool,
    op_id: &str,
    state: KeptState,
    by: &str,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE kept_sources SET state = ?, ended_at = ?, ended_by = ?, reason = ?, problem = NULL
         WHERE op_id = ? AND state = 'kept'",
    )
    .bind(state.as_str())
    .bind(clock::now().to_string())
    .bind(by)
    .bind(reason)
    .bind(op_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Says why a kept source's deadline did not release it (`None`: no
/// problem any more). Whether the problem is new (changed), so that it is
/// audited once.
pub async fn set_kept_problem(
    pool: &SqlitePool,
    op_id: &str,
    problem: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE kept_sources SET problem = ? WHERE op_id = ? AND state = 'kept' AND problem IS NOT ?",
    )
    .bind(problem)
    .bind(op_id)
    .bind(problem)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A helper's `verified` report: the fingerprint of `volume` (a later
/// report of the same volume, a restarted helper's, replaces it).
pub async fn add_verified(
    pool: &SqlitePool,
    op_id: &str,
    volume: &str,
    digest: &BlockDigest,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO verified_volumes (op_id, volume, algorithm, block_size, hex)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(op_id)
    .bind(volume)
    .bind(digest.algorithm.as_str())
    .bind(i64::try_from(digest.block_size).unwrap_or(i64::MAX))
    .bind(digest.hex())
    .execute(pool)
    .await?;
    Ok(())
}

/// What the helper verified for an operation: volume → fingerprint.
pub async fn verified(
    pool: &SqlitePool,
    op_id: &str,
) -> sqlx::Result<std::collections::BTreeMap<String, BlockDigest>> {
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT volume, algorithm, block_size, hex FROM verified_volumes WHERE op_id = ?",
    )
    .bind(op_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(volume, algorithm, block_size, hex)| {
            BlockDigest::from_parts(&algorithm, block_size, &hex)
                .map(|d| (volume, d))
                .map_err(|e| decode_error("verified_volumes", e))
        })
        .collect()
}

/// At most `limit` events after `after`, in order: a stream or a download
/// reads a long log a page at a time.
pub async fn events_page(
    pool: &SqlitePool,
    op_id: &str,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<StreamEvent>> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM operation_events WHERE op_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(op_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StreamEvent::from).collect())
}

/// Where the operation's share of the source's log begins: its last line
/// when the helper was provisioned.
pub async fn set_source_log_since(pool: &SqlitePool, id: &str, seq: u64) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET source_log_since = ? WHERE id = ?")
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// [`set_source_log_since`]'s line, if it was recorded.
pub async fn source_log_since(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<u64>> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT source_log_since FROM operations WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .flatten();
    Ok(seq.and_then(|s| u64::try_from(s).ok()))
}

/// The last app-log line number stored from `source` (helper, source or target).
pub async fn last_app_seq(
    pool: &SqlitePool,
    op_id: &str,
    source: EventSource,
) -> sqlx::Result<Option<u64>> {
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(app_seq) FROM operation_events WHERE op_id = ? AND source = ?",
    )
    .bind(op_id)
    .bind(source.as_str())
    .fetch_one(pool)
    .await?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()))
}

/// Lines of `source`'s log an operation has stored.
pub async fn app_lines_stored(
    pool: &SqlitePool,
    op_id: &str,
    source: EventSource,
) -> sqlx::Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM operation_events WHERE op_id = ? AND source = ? AND kind = 'log'",
    )
    .bind(op_id)
    .bind(source.as_str())
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The copy rate of the most recently finished operation that copied
/// anything, with its id: what the pre-flight estimate is based on.
pub async fn last_rate(pool: &SqlitePool) -> sqlx::Result<Option<(u64, String)>> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT copy_rate, id FROM operations
          WHERE outcome = 'done' AND bytes_copied > 0
          ORDER BY finished_at DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(rate, id)| (u64::try_from(rate).unwrap_or(0), id)))
}

/// The snapshot operation whose copy this console runs in: the newest one
/// recorded `elsewhere` with `grid`/`app` as its target.
pub async fn copy_origin(pool: &SqlitePool, grid: &str, app: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT id FROM operations
          WHERE outcome = 'elsewhere' AND target_grid = ? AND target_app = ?
          ORDER BY finished_at DESC LIMIT 1",
    )
    .bind(grid)
    .bind(app)
    .fetch_optional(pool)
    .await
}

/// The operation's newest event.
pub async fn last_event(pool: &SqlitePool, op_id: &str) -> sqlx::Result<Option<StreamEvent>> {
    events_tail(pool, op_id, None).await
}

/// The operation's newest progress sample and when it came.
pub async fn last_progress(
    pool: &SqlitePool,
    op_id: &str,
) -> sqlx::Result<Option<(Progress, String)>> {
    Ok(events_tail(pool, op_id, Some(EventKind::Progress))
        .await?
        .and_then(|e| Some((e.progress()?, e.at))))
}

async fn events_tail(
    pool: &SqlitePool,
    op_id: &str,
    kind: Option<EventKind>,
) -> sqlx::Result<Option<StreamEvent>> {
    let kind = kind.map(EventKind::as_str);
    let row: Option<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM operation_events
          WHERE op_id = ? AND (? IS NULL OR kind = ?)
          ORDER BY seq DESC LIMIT 1"
    ))
    .bind(op_id)
    .bind(kind)
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(StreamEvent::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes reported while other writes land are all kept, in order
    /// (a read-then-write transaction lost them to SQLITE_BUSY_SNAPSHOT).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_reported_under_concurrent_writes_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("migctl.db"))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO operations (id, action, source_grid, source_app, target_grid,
               target_app, phase, created_by, created_at, updated_at)
             VALUES ('op', 'migrate', 'east', 'shop', 'west', 'shop', 'pre_copying', 'olga',
               '2026-11-24T09:00:00Z', '2026-11-24T09:00:00Z')",
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in (1..=40).rev() {
            let pool = pool.clone();
            tasks.spawn(async move {
                let pass = Pass {
                    pass: n,
                    delta: u64::from(n) << 20,
                    ..Pass::default()
                };
                add_pass(&pool, "op", &pass).await.unwrap();
                set_downtime(&pool, "op", u64::from(n)).await.unwrap();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let op = get(&pool, "op").await.unwrap().unwrap();
        let numbers: Vec<u32> = op.passes.iter().map(|p| p.pass).collect();
        assert_eq!(numbers, (1..=40).collect::<Vec<_>>());
        assert_eq!(op.passes[9].delta, 10 << 20);

        // Hours of passes keep pass 1 and the latest 99; a late report of
        // an old pass moves nothing.
        for n in 41..=386 {
            let pass = Pass {
                pass: n,
                ..Pass::default()
            };
            add_pass(&pool, "op", &pass).await.unwrap();
        }
        add_pass(
            &pool,
            "op",
            &Pass {
                pass: 100,
                ..Pass::default()
            },
        )
        .await
        .unwrap();
        let op = get(&pool, "op").await.unwrap().unwrap();
        let numbers: Vec<u32> = op.passes.iter().map(|p| p.pass).collect();
        let kept: Vec<u32> = std::iter::once(1).chain(288..=386).collect();
        assert_eq!(numbers, kept);
    }
}
