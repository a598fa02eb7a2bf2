//! The SQLite database in the config directory: opened in WAL mode, migrated at start.

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// The database holds password hashes and live session ids: it is created
/// readable by the console's user only, and one found readable by others
/// (an older console made it 0644) is tightened at start, with a warning.
/// SQLite gives its `-wal` and `-shm` files the database's mode.
fn owner_only(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !file.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("cannot create the database {}", file.display()))?;
    }
    for path in [
        file.to_owned(),
        file.with_extension("db-wal"),
        file.with_extension("db-shm"),
    ] {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).with_context(
                || format!("{} is mode {mode:o}; cannot make it 0600", path.display()),
            )?;
            tracing::warn!(file = %path.display(), was = format!("{mode:o}"), "the database was readable by others; it is 0600 now");
        }
    }
    Ok(())
}

pub async fn open(file: &Path) -> anyhow::Result<SqlitePool> {
    owner_only(file)?;
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open the database {}", file.display()))?;
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .with_context(|| format!("cannot migrate the database {}", file.display()))?;
    Ok(pool)
}

/// Appends to the audit trail. Who did what is never lost silently: a failure
/// is returned to the caller.
pub async fn audit<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    actor: &str,
    action: &str,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO audit_log (actor, action, detail) VALUES (?, ?, ?)")
        .bind(actor)
        .bind(action)
        .bind(detail)
        .execute(ex)
        .await?;
    Ok(())
}

/// The newest audit entries first, filtered (`AuditFilter`): at most
/// `limit` (200 by default, 1000 at most).
pub async fn audit_entries(
    pool: &SqlitePool,
    f: &app::model::AuditFilter,
) -> sqlx::Result<Vec<app::model::AuditEntry>> {
    let actor = f.actor.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let action = f.action.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let limit = i64::from(
        f.limit
            .unwrap_or(200)
            .clamp(1, app::model::AuditFilter::MAX_LIMIT),
    );
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT id, at, actor, action, detail FROM audit_log
         WHERE (?1 IS NULL OR actor = ?1)
           AND (?2 IS NULL OR action = ?2 OR substr(action, 1, length(?2) + 1) = ?2 || '.')
         ORDER BY id DESC LIMIT ?3",
    )
    .bind(actor)
    .bind(action)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, at, actor, action, detail)| app::model::AuditEntry {
            id,
            at,
            actor,
            action,
            detail,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_action_filter_matches_a_family_and_no_wildcards() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir.path().join("migctl.db")).await.unwrap();
        for action in [
            "login",
            "login.failed",
            "loginx",
            "user.role",
            "user_role",
            "a%b",
        ] {
            audit(&pool, "ana", action, "").await.unwrap();
        }
        let actions = |action: &str| {
            let pool = pool.clone();
            let filter = app::model::AuditFilter {
                action: Some(action.to_owned()),
                ..Default::default()
            };
            async move {
                let mut a: Vec<String> = audit_entries(&pool, &filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.action)
                    .collect();
                a.sort();
                a
            }
        };
        assert_eq!(actions("login").await, ["login", "login.failed"]);
        assert_eq!(actions("%").await, Vec::<String>::new());
        assert_eq!(actions("_").await, Vec::<String>::new());
        assert_eq!(actions("user_role").await, ["user_role"]);
        assert_eq!(actions("user").await, ["user.role"]);
        assert_eq!(actions("a%b").await, ["a%b"]);
    }
}
