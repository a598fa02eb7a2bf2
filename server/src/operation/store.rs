//! The `operations` and `operation_events` tables: every query on them.

use app::model::{Action, OperationView};
use sqlx::SqlitePool;

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
);

const COLUMNS: &str = "id, action, source_grid, source_app, target_grid, target_app, phase, outcome, reason, \
                       bytes_done, bytes_total, created_by, created_at, updated_at, finished_at";

fn view(r: Row) -> OperationView {
    OperationView {
        id: r.0,
        action: if r.1 == "snapshot" {
            Action::Snapshot
        } else {
            Action::Migrate
        },
        source_grid: r.2,
        source_app: r.3,
        target_grid: r.4,
        target_app: r.5,
        phase: r.6,
        outcome: r.7,
        reason: r.8,
        bytes_done: r.9,
        bytes_total: r.10,
        created_by: r.11,
        created_at: r.12,
        updated_at: r.13,
        finished_at: r.14,
    }
}

pub async fn insert(pool: &SqlitePool, op: &OperationView) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO operations (id, action, source_grid, source_app, target_grid, target_app, phase,
             bytes_total, created_by, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&op.id)
    .bind(op.action.as_str())
    .bind(&op.source_grid)
    .bind(&op.source_app)
    .bind(&op.target_grid)
    .bind(&op.target_app)
    .bind(&op.phase)
    .bind(op.bytes_total)
    .bind(&op.created_by)
    .bind(&op.created_at)
    .bind(&op.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<OperationView>> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM operations WHERE id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(view))
}

pub async fn list(pool: &SqlitePool, limit: i64) -> sqlx::Result<Vec<OperationView>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM operations ORDER BY created_at DESC, id DESC LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(view).collect())
}

pub async fn set_phase(pool: &SqlitePool, id: &str, phase: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET phase = ?, updated_at = ? WHERE id = ?")
        .bind(phase)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Progress never goes backwards: the larger value wins.
pub async fn set_progress(pool: &SqlitePool, id: &str, done: i64, total: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE operations SET bytes_done = MAX(bytes_done, ?), bytes_total = MAX(bytes_total, ?),
             updated_at = ? WHERE id = ?",
    )
    .bind(done)
    .bind(total)
    .bind(now())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_reason(pool: &SqlitePool, id: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET reason = ?, updated_at = ? WHERE id = ?")
        .bind(reason)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn finish(
    pool: &SqlitePool,
    id: &str,
    outcome: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    let at = now();
    sqlx::query(
        "UPDATE operations SET outcome = ?, phase = ?, reason = COALESCE(?, reason),
             updated_at = ?, finished_at = ? WHERE id = ? AND outcome IS NULL",
    )
    .bind(outcome)
    .bind(outcome)
    .bind(reason)
    .bind(&at)
    .bind(&at)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Appends an event with the operation's next sequence number. The
/// outcome's phase event is the last one: later events (a poll that was
/// under way) are dropped and `None` returned, so every reader's log ends
/// with the outcome.
pub async fn append_event(
    pool: &SqlitePool,
    op_id: &str,
    kind: &str,
    source: &str,
    data: &serde_json::Value,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO operation_events (op_id, seq, at, kind, source, data)
         SELECT ?, next, ?, ?, ?, ? FROM
           (SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM operation_events WHERE op_id = ?)
         WHERE NOT EXISTS (SELECT 1 FROM operation_events WHERE op_id = ? AND kind = 'phase'
                             AND json_extract(data, '$.phase') IN ('done', 'failed', 'cancelled'))
         RETURNING seq",
    )
    .bind(op_id)
    .bind(now())
    .bind(kind)
    .bind(source)
    .bind(data.to_string())
    .bind(op_id)
    .bind(op_id)
    .fetch_optional(pool)
    .await
}

/// A stored event: the same shape the pages and the SSE stream use.
pub use app::model::StreamEvent as EventRow;

type EventTuple = (i64, String, String, String, String);

fn event_row((seq, at, kind, source, data): EventTuple) -> EventRow {
    EventRow {
        seq,
        at,
        kind,
        source,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
    }
}

pub async fn events_after(
    pool: &SqlitePool,
    op_id: &str,
    after: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let rows: Vec<EventTuple> = sqlx::query_as(
        "SELECT seq, at, kind, source, data FROM operation_events WHERE op_id = ? AND seq > ? ORDER BY seq",
    )
    .bind(op_id)
    .bind(after)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(event_row).collect())
}

/// The last app-log sequence number stored for `source` (helper, source or target).
pub async fn last_app_seq(
    pool: &SqlitePool,
    op_id: &str,
    source: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MAX(json_extract(data, '$.seq')) FROM operation_events
         WHERE op_id = ? AND source = ?",
    )
    .bind(op_id)
    .bind(source)
    .fetch_one(pool)
    .await
}

/// The copy rate of the most recently finished operation that copied
/// anything, with its id: what the pre-flight estimate is based on.
pub async fn last_rate(pool: &SqlitePool) -> sqlx::Result<Option<(u64, String)>> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT json_extract(e.data, '$.progress.rate_bytes_per_sec'), o.id
           FROM operation_events e JOIN operations o ON o.id = e.op_id
          WHERE o.outcome = 'done' AND e.kind = 'progress'
            AND json_extract(e.data, '$.progress.copied') > 0
          ORDER BY o.finished_at DESC, e.seq DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(rate, id)| (u64::try_from(rate).unwrap_or(0), id)))
}

/// The operation's newest event.
pub async fn last_event(pool: &SqlitePool, op_id: &str) -> sqlx::Result<Option<EventRow>> {
    events_tail(pool, op_id, None).await
}

/// The operation's newest progress sample: (done, total, at).
pub async fn last_progress(
    pool: &SqlitePool,
    op_id: &str,
) -> sqlx::Result<Option<(i64, i64, String)>> {
    Ok(events_tail(pool, op_id, Some("progress")).await?.map(|e| {
        let p = &e.data["progress"];
        (
            p["done"].as_i64().unwrap_or(0),
            p["total"].as_i64().unwrap_or(0),
            e.at,
        )
    }))
}

async fn events_tail(
    pool: &SqlitePool,
    op_id: &str,
    kind: Option<&str>,
) -> sqlx::Result<Option<EventRow>> {
    let row: Option<EventTuple> = sqlx::query_as(
        "SELECT seq, at, kind, source, data FROM operation_events
          WHERE op_id = ? AND (? IS NULL OR kind = ?)
          ORDER BY seq DESC LIMIT 1",
    )
    .bind(op_id)
    .bind(kind)
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(event_row))
}
