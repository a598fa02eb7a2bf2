//! The group-run tables: every query on them. A run's position is stored
//! before anything it names is started; state changes say which states
//! they come from, so an operator's pause or abort and the run's own task
//! never overwrite each other.

use crate::clock::{self, Timestamp};
use operation_model::group_run::{AttemptOutcome, AttemptView, Position, RunState, Stage};
use sqlx::SqlitePool;

/// A run as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub name: String,
    pub source_grid: String,
    pub target_grid: String,
    /// The definition as received (JSON).
    pub definition: String,
    #[sqlx(try_from = "String")]
    pub state: RunState,
    step: Option<i64>,
    stage: Option<String>,
    item: i64,
    pub round: i64,
    #[sqlx(try_from = "String")]
    pub stage_since: Timestamp,
    pub action_sent: Option<i64>,
    pub current_op: Option<String>,
    pub reason: Option<String>,
    pub ended_by: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
}

impl RunRow {
    /// What the run does next; `None`: nothing is left.
    pub fn position(&self) -> sqlx::Result<Option<Position>> {
        let (Some(step), Some(stage)) = (self.step, self.stage.as_deref()) else {
            return Ok(None);
        };
        let stage: Stage = stage
            .parse()
            .map_err(|e: operation_model::UnknownValue| sqlx::Error::Decode(e.into()))?;
        Ok(Some(Position {
            step: u32::try_from(step).unwrap_or(0),
            stage,
            item: u32::try_from(self.item).unwrap_or(0),
        }))
    }
}

const COLUMNS: &str = "id, name, source_grid, target_grid, definition, state, step, stage, item, \
                       round, stage_since, action_sent, current_op, reason, ended_by, created_by, \
                       created_at, updated_at, ended_at";

/// What a new run is.
pub struct NewRun<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub source_grid: &'a str,
    pub target_grid: &'a str,
    pub definition: &'a str,
    pub first: Option<Position>,
    pub created_by: &'a str,
}

pub async fn insert<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    run: &NewRun<'_>,
) -> sqlx::Result<()> {
    let now = clock::now().to_string();
    sqlx::query(
        "INSERT INTO group_runs (id, name, source_grid, target_grid, definition, state, step, stage,
             item, round, stage_since, created_by, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, 1, ?, ?, ?, ?)",
    )
    .bind(run.id)
    .bind(run.name)
    .bind(run.source_grid)
    .bind(run.target_grid)
    .bind(run.definition)
    .bind(run.first.map(|p| i64::from(p.step)))
    .bind(run.first.map(|p| p.stage.as_str()))
    .bind(run.first.map_or(0, |p| i64::from(p.item)))
    .bind(&now)
    .bind(run.created_by)
    .bind(&now)
    .bind(&now)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!("SELECT {COLUMNS} FROM group_runs WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Newest first.
pub async fn list(pool: &SqlitePool, limit: i64) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!(
        "SELECT {COLUMNS} FROM group_runs ORDER BY created_at DESC, id DESC LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Runs that have not ended (running or paused).
pub async fn unended(pool: &SqlitePool) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!(
        "SELECT {COLUMNS} FROM group_runs WHERE state IN ('running', 'paused') ORDER BY created_at"
    ))
    .fetch_all(pool)
    .await
}

/// Moves a run from `at` to `to` (`None`: it ends, `done` forward or
/// `rolled_back` back, which keeps its reason: why it was rolled back),
/// if it is still at `at` and has not ended; a new position starts at
/// round 1.
/// False when it was not at `at` (someone else moved it).
pub async fn advance(
    pool: &SqlitePool,
    id: &str,
    at: Position,
    to: Option<Position>,
) -> sqlx::Result<bool> {
    let now = clock::now().to_string();
    let done = to.is_none();
    let end = if at.stage.back() {
        RunState::RolledBack
    } else {
        RunState::Done
    };
    let r = sqlx::query(
        "UPDATE group_runs SET step = ?, stage = ?, item = ?, round = 1, stage_since = ?,
             action_sent = NULL, current_op = NULL, updated_at = ?,
             state = CASE WHEN ? THEN ? ELSE state END,
             reason = CASE WHEN ? AND ? = 'done' THEN NULL ELSE reason END,
             ended_at = CASE WHEN ? THEN ? ELSE ended_at END
         WHERE id = ? AND state IN ('running', 'paused') AND step = ? AND stage = ? AND item = ?",
    )
    .bind(to.map(|p| i64::from(p.step)))
    .bind(to.map(|p| p.stage.as_str()))
    .bind(to.map_or(0, |p| i64::from(p.item)))
    .bind(&now)
    .bind(&now)
    .bind(done)
    .bind(end.as_str())
    .bind(done)
    .bind(end.as_str())
    .bind(done)
    .bind(&now)
    .bind(id)
    .bind(i64::from(at.step))
    .bind(at.stage.as_str())
    .bind(i64::from(at.item))
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The run turns back: from `from` (one of those states; at `at`, when
/// given) it runs again at `to`, where rolling back begins, the reason
/// saying why; `to` = `None` (it moved nothing) ends it `rolled_back` at
/// once. An ended run is no longer ended. Its round goes up, so a task
/// still at its earlier round stops there. `keep_op`: the operation at
/// `to` stays current (an aborted rollback continued whose operation ended
/// done). False when it was not in one of `from` (at `at`).
pub async fn turn_back<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    id: &str,
    (from, at): (&[RunState], Option<Position>),
    (to, keep_op): (Option<Position>, bool),
    why: &str,
) -> sqlx::Result<bool> {
    let now = clock::now().to_string();
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let state = if to.is_some() {
        RunState::Running
    } else {
        RunState::RolledBack
    };
    let r = sqlx::query(
        "UPDATE group_runs SET state = ?, step = ?, stage = ?, item = ?, round = round + 1,
             stage_since = ?, action_sent = NULL, reason = ?, updated_at = ?,
             current_op = CASE WHEN ? THEN current_op ELSE NULL END,
             ended_at = CASE WHEN ? THEN ? ELSE NULL END
         WHERE id = ? AND state IN (SELECT value FROM json_each(?))
           AND (? IS NULL OR (step = ? AND stage = ? AND item = ?))",
    )
    .bind(state.as_str())
    .bind(to.map(|p| i64::from(p.step)))
    .bind(to.map(|p| p.stage.as_str()))
    .bind(to.map_or(0, |p| i64::from(p.item)))
    .bind(&now)
    .bind(why)
    .bind(&now)
    .bind(keep_op)
    .bind(to.is_none())
    .bind(&now)
    .bind(id)
    .bind(serde_json::to_string(&from).unwrap_or_default())
    .bind(at.map(|p| i64::from(p.step)))
    .bind(at.map(|p| i64::from(p.step)))
    .bind(at.map(|p| p.stage.as_str()))
    .bind(at.map(|p| i64::from(p.item)))
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The migrate that moved step `step`'s member: the run's latest
/// operation of that step that ended done.
pub async fn moving_op(pool: &SqlitePool, id: &str, step: u32) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT g.op_id FROM group_run_operations g JOIN operations o ON o.id = g.op_id
         WHERE g.run_id = ? AND g.step = ? AND o.action = 'migrate' AND o.outcome = 'done'
         ORDER BY g.started_at DESC, g.op_id DESC LIMIT 1",
    )
    .bind(id)
    .bind(i64::from(step))
    .fetch_optional(pool)
    .await
}

/// A rollback of `of` by nobody's record: one the run started just before
/// the console stopped, before it could record it (since `since`, when the
/// round began), one still running whenever it started (a resume began a
/// new round meanwhile), or one that ended done (an operator rolled the
/// member back by hand): the member is back, or on its way.
pub async fn unrecorded_rollback(
    pool: &SqlitePool,
    of: &str,
    since: Timestamp,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT o.id FROM operations o
         WHERE o.action = 'rollback' AND o.rollback_of = ?
           AND (julianday(o.created_at) >= julianday(?) OR o.outcome IS NULL OR o.outcome = 'done')
           AND NOT EXISTS (SELECT 1 FROM group_run_operations g WHERE g.op_id = o.id)
         ORDER BY julianday(o.created_at) DESC LIMIT 1",
    )
    .bind(of)
    .bind(since.to_string())
    .fetch_optional(pool)
    .await
}

/// A paused run runs again, the thing at its position started afresh
/// (its next round, counted from now), in one UPDATE: a word or an attempt
/// given before belongs to the round before. `clear_op`: the step's
/// operation ended other than done, so the step starts a new one. False
/// when the run was not paused.
pub async fn resume(pool: &SqlitePool, id: &str, clear_op: bool) -> sqlx::Result<bool> {
    let now = clock::now().to_string();
    let r = sqlx::query(
        "UPDATE group_runs SET state = 'running', reason = NULL, round = round + 1,
             stage_since = ?, action_sent = NULL, updated_at = ?,
             current_op = CASE WHEN ? THEN NULL ELSE current_op END
         WHERE id = ? AND state = 'paused'",
    )
    .bind(&now)
    .bind(&now)
    .bind(clear_op)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The action at the run's position is about to be sent in `round`:
/// recorded first, so a console stopped while sending knows it may have
/// arrived. False when the run no longer runs in that round.
pub async fn mark_action_sent(pool: &SqlitePool, id: &str, round: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE group_runs SET action_sent = round, updated_at = ?
         WHERE id = ? AND state = 'running' AND round = ?",
    )
    .bind(clock::now().to_string())
    .bind(id)
    .bind(round)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The outcome and note of the attempt kept at `at` (its round), if any.
pub async fn attempt_at(
    pool: &SqlitePool,
    id: &str,
    at: Slot,
) -> sqlx::Result<Option<(AttemptOutcome, String)>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT outcome, note FROM group_attempts
         WHERE run_id = ? AND step = ? AND stage = ? AND item = ? AND round = ?
         ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .bind(i64::from(at.step))
    .bind(at.stage.as_str())
    .bind(i64::from(at.item))
    .bind(at.round)
    .fetch_optional(pool)
    .await?;
    row.map(|(o, n)| Ok((o.parse().map_err(decode)?, n)))
        .transpose()
}

/// A failure's reason for a run an operator paused meanwhile: kept after
/// the operator's, not lost.
pub async fn add_reason(pool: &SqlitePool, id: &str, why: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE group_runs SET reason = COALESCE(reason || '; then ', '') || ?, updated_at = ?
         WHERE id = ? AND state = 'paused'",
    )
    .bind(why)
    .bind(clock::now().to_string())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Changes a run's state from one of `from` to `to`, with a reason (or
/// none); false when it was in none of them.
pub async fn set_state(
    pool: &SqlitePool,
    id: &str,
    from: &[RunState],
    to: RunState,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    set_state_by(pool, id, from, to, reason, None).await
}

/// `set_state`, naming who ended the run (an abort by an operator).
pub async fn set_state_by(
    pool: &SqlitePool,
    id: &str,
    from: &[RunState],
    to: RunState,
    reason: Option<&str>,
    by: Option<&str>,
) -> sqlx::Result<bool> {
    let now = clock::now().to_string();
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let r = sqlx::query(
        "UPDATE group_runs SET state = ?, reason = ?, updated_at = ?, ended_by = COALESCE(?, ended_by),
             ended_at = CASE WHEN ? THEN ? ELSE ended_at END
         WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(&now)
    .bind(by)
    .bind(to.ended())
    .bind(&now)
    .bind(id)
    .bind(serde_json::to_string(&from).unwrap_or_default())
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The step's operation started: recorded among the run's operations, and
/// as its current one while the run is still at `at` in `round`.
pub async fn set_current_op(
    pool: &SqlitePool,
    id: &str,
    (at, round): (Position, i64),
    op_id: &str,
) -> sqlx::Result<()> {
    let step = at.step;
    let now = clock::now().to_string();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT OR IGNORE INTO group_run_operations (run_id, step, op_id, started_at) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(i64::from(step))
    .bind(op_id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE group_runs SET current_op = ?, updated_at = ?
         WHERE id = ? AND step = ? AND stage = ? AND item = ? AND round = ?",
    )
    .bind(op_id)
    .bind(&now)
    .bind(id)
    .bind(i64::from(at.step))
    .bind(at.stage.as_str())
    .bind(i64::from(at.item))
    .bind(round)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A migrate of `app` to `target_grid/target_app` started since `since`
/// (the round began: a resume starts a new one) by nobody's record: the
/// one a run started just before the console stopped, before it could
/// record it. Times compare as times (julianday), not as strings.
pub async fn unrecorded_op(
    pool: &SqlitePool,
    source: (&str, &str),
    target: (&str, &str),
    since: Timestamp,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT o.id FROM operations o
         WHERE o.action = 'migrate' AND o.source_grid = ? AND o.source_app = ?
           AND o.target_grid = ? AND o.target_app = ? AND julianday(o.created_at) >= julianday(?)
           AND NOT EXISTS (SELECT 1 FROM group_run_operations g WHERE g.op_id = o.id)
         ORDER BY julianday(o.created_at) DESC LIMIT 1",
    )
    .bind(source.0)
    .bind(source.1)
    .bind(target.0)
    .bind(target.1)
    .bind(since.to_string())
    .fetch_optional(pool)
    .await
}

/// Every operation of a run: (step, op id), in the order started.
pub async fn operations(pool: &SqlitePool, id: &str) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT step, op_id FROM group_run_operations WHERE run_id = ? ORDER BY started_at, op_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// Where an attempt belongs.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub step: u32,
    pub stage: Stage,
    pub item: u32,
    pub round: i64,
}

impl Slot {
    /// The thing at `pos`, in its `round`.
    pub fn at(pos: Position, round: i64) -> Slot {
        Slot {
            step: pos.step,
            stage: pos.stage,
            item: pos.item,
            round,
        }
    }
}

/// One attempt, kept.
pub async fn add_attempt(
    pool: &SqlitePool,
    id: &str,
    at: Slot,
    e: &super::probe::Evidence,
) -> sqlx::Result<()> {
    insert_attempt(pool, id, at, e).await
}

async fn insert_attempt<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    id: &str,
    at: Slot,
    e: &super::probe::Evidence,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO group_attempts (run_id, step, stage, item, round, at, outcome, status, excerpt, note, ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(i64::from(at.step))
    .bind(at.stage.as_str())
    .bind(i64::from(at.item))
    .bind(at.round)
    .bind(clock::now().to_string())
    .bind(e.outcome.as_str())
    .bind(e.status.map(i64::from))
    .bind(&e.excerpt)
    .bind(&e.note)
    .bind(i64::try_from(e.ms).unwrap_or(i64::MAX))
    .execute(ex)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    step: i64,
    stage: String,
    item: i64,
    round: i64,
    at: String,
    outcome: String,
    status: Option<i64>,
    excerpt: String,
    note: String,
    ms: i64,
}

/// A run's attempts: ((step, stage, item), attempt), oldest first.
pub async fn attempts(
    pool: &SqlitePool,
    id: &str,
) -> sqlx::Result<Vec<((u32, Stage, u32), AttemptView)>> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT step, stage, item, round, at, outcome, status, excerpt, note, ms
         FROM group_attempts WHERE run_id = ? ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let stage: Stage = r.stage.parse().map_err(decode)?;
            let outcome: AttemptOutcome = r.outcome.parse().map_err(decode)?;
            Ok((
                (
                    u32::try_from(r.step).unwrap_or(0),
                    stage,
                    u32::try_from(r.item).unwrap_or(0),
                ),
                AttemptView {
                    round: u32::try_from(r.round).unwrap_or(0),
                    at: r.at,
                    outcome,
                    status: r.status.and_then(|s| u16::try_from(s).ok()),
                    excerpt: r.excerpt,
                    note: r.note,
                    ms: u64::try_from(r.ms).unwrap_or(0),
                },
            ))
        })
        .collect()
}

fn decode(e: operation_model::UnknownValue) -> sqlx::Error {
    sqlx::Error::Decode(e.into())
}

/// An operator's word on an approval check.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Approval {
    pub id: i64,
    pub step: i64,
    pub stage: String,
    pub item: i64,
    /// The check's round that read it; `None`: not read yet.
    pub round: Option<i64>,
    pub approved: bool,
    pub decided_by: String,
    pub decided_at: String,
    pub reason: String,
}

/// What an operator says at a check.
pub struct Word<'a> {
    pub approved: bool,
    pub decided_by: &'a str,
    pub reason: &'a str,
}

/// Keeps an operator's word on the check at `at` if the run still runs
/// there, no other word waits unread at it and none was read in its
/// round (one statement, so two operators at once cannot both be kept);
/// false otherwise.
pub async fn add_approval(
    pool: &SqlitePool,
    id: &str,
    at: Position,
    w: &Word<'_>,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT OR IGNORE INTO group_approvals
             (run_id, step, stage, item, round, approved, decided_by, decided_at, reason)
         SELECT r.id, r.step, r.stage, r.item, NULL, ?, ?, ?, ? FROM group_runs r
         WHERE r.id = ? AND r.state = 'running' AND r.step = ? AND r.stage = ? AND r.item = ?
           AND NOT EXISTS (SELECT 1 FROM group_approvals a
                           WHERE a.run_id = r.id AND a.step = r.step AND a.stage = r.stage
                             AND a.item = r.item AND a.round = r.round)",
    )
    .bind(w.approved)
    .bind(w.decided_by)
    .bind(clock::now().to_string())
    .bind(w.reason)
    .bind(id)
    .bind(i64::from(at.step))
    .bind(at.stage.as_str())
    .bind(i64::from(at.item))
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

const APPROVAL_COLUMNS: &str =
    "id, step, stage, item, round, approved, decided_by, decided_at, reason";

/// A run's approvals, oldest first.
pub async fn approvals(pool: &SqlitePool, id: &str) -> sqlx::Result<Vec<Approval>> {
    sqlx::query_as(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM group_approvals WHERE run_id = ? ORDER BY id"
    ))
    .bind(id)
    .fetch_all(pool)
    .await
}

/// The word that waits unread at the check at `at`, if any.
pub async fn unread_approval(
    pool: &SqlitePool,
    id: &str,
    at: Position,
) -> sqlx::Result<Option<Approval>> {
    sqlx::query_as(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM group_approvals
         WHERE run_id = ? AND step = ? AND stage = ? AND item = ? AND round IS NULL"
    ))
    .bind(id)
    .bind(i64::from(at.step))
    .bind(at.stage.as_str())
    .bind(i64::from(at.item))
    .fetch_optional(pool)
    .await
}

/// The check's round `at` reads word `approval`: marked read and its
/// attempt kept, together (neither without the other).
pub async fn read_approval(
    pool: &SqlitePool,
    id: &str,
    at: Slot,
    approval: i64,
    e: &super::probe::Evidence,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE group_approvals SET round = ? WHERE id = ? AND round IS NULL")
        .bind(at.round)
        .bind(approval)
        .execute(&mut *tx)
        .await?;
    insert_attempt(&mut *tx, id, at, e).await?;
    tx.commit().await
}
