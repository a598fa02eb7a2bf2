//! Retention: operations' events and archived lock files older than
//! `retention_days` go; each operation's row (what it was, its outcome,
//! its figures) stays. Runs at start and then every hour.

use crate::clock;
use sqlx::SqlitePool;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How often the background task prunes.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What one pruning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub locks: u64,
}

/// Removes the events of operations that ended more than `days` days ago
/// and the archived locks (`locks/*.json`) not touched for as long.
pub async fn prune(pool: &SqlitePool, config_dir: &Path, days: u64) -> anyhow::Result<Pruned> {
    let age = Duration::from_secs(days * 24 * 3600);
    let cutoff = clock::Timestamp(
        clock::now().0 - time::Duration::try_from(age).unwrap_or(time::Duration::ZERO),
    );
    let events = sqlx::query(
        "DELETE FROM operation_events WHERE op_id IN
           (SELECT id FROM operations WHERE finished_at IS NOT NULL AND finished_at < ?)",
    )
    .bind(cutoff.to_string())
    .execute(pool)
    .await?
    .rows_affected();
    let dir = config_dir.join(crate::lock::ARCHIVE_DIR);
    let locks = tokio::task::spawn_blocking(move || prune_files(&dir, age)).await??;
    Ok(Pruned { events, locks })
}

fn prune_files(dir: &Path, age: Duration) -> std::io::Result<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|a| a > age);
        if old && path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Prunes now and every [`EVERY`] until `stop` changes.
pub async fn run(
    pool: SqlitePool,
    config_dir: std::path::PathBuf,
    days: u64,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        match prune(&pool, &config_dir, days).await {
            Ok(p) if p != Pruned::default() => tracing::info!(
                events = p.events,
                locks = p.locks,
                "retention: removed what is older than {days} days"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "retention: pruning failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn operation(pool: &SqlitePool, id: &str, finished_days_ago: Option<i64>) {
        let at = |days: i64| (clock::now().0 - time::Duration::days(days)).to_string();
        let t = clock::Timestamp(clock::now().0 - time::Duration::days(200));
        sqlx::query(
            "INSERT INTO operations (id, action, source_grid, source_app, target_grid, target_app,
                 phase, outcome, created_by, created_at, updated_at, finished_at)
             VALUES (?, 'migrate', 'east', 'shop', 'west', 'shop', ?, ?, 'olga', ?, ?, ?)",
        )
        .bind(id)
        .bind(if finished_days_ago.is_some() {
            "done"
        } else {
            "copying"
        })
        .bind(finished_days_ago.map(|_| "done"))
        .bind(t.to_string())
        .bind(t.to_string())
        .bind(
            finished_days_ago
                .map(|d| clock::Timestamp(clock::now().0 - time::Duration::days(d)).to_string()),
        )
        .execute(pool)
        .await
        .unwrap();
        for seq in 1..=3 {
            sqlx::query(
                "INSERT INTO operation_events (op_id, seq, at, kind, source, data)
                 VALUES (?, ?, ?, 'log', 'console', '{}')",
            )
            .bind(id)
            .bind(seq)
            .bind(at(200))
            .execute(pool)
            .await
            .unwrap();
        }
    }

    async fn events(pool: &SqlitePool, id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM operation_events WHERE op_id = ?")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn old_events_and_archived_locks_go_and_every_operation_row_stays() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("migctl.db"))
            .await
            .unwrap();
        operation(&pool, "op-old", Some(100)).await;
        operation(&pool, "op-recent", Some(10)).await;
        operation(&pool, "op-running", None).await;
        let locks = dir.path().join(crate::lock::ARCHIVE_DIR);
        std::fs::create_dir_all(&locks).unwrap();
        for (name, days) in [("done-op-old.json", 100u64), ("done-op-recent.json", 10)] {
            let f = std::fs::File::create(locks.join(name)).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(days * 24 * 3600))
                .unwrap();
        }

        let pruned = prune(&pool, dir.path(), 90).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                events: 3,
                locks: 1
            }
        );
        assert_eq!(events(&pool, "op-old").await, 0);
        assert_eq!(events(&pool, "op-recent").await, 3);
        assert_eq!(
            events(&pool, "op-running").await,
            3,
            "a running operation keeps all"
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM operations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 3, "every operation's row and outcome stay");
        assert!(!locks.join("done-op-old.json").exists());
        assert!(locks.join("done-op-recent.json").exists());
        assert_eq!(
            prune(&pool, dir.path(), 90).await.unwrap(),
            Pruned::default()
        );
    }
}
