//! The `users` table: every query on it lives here.

use app::model::{Role, UserRow};
use sqlx::{FromRow, SqlitePool};

/// A user as stored.
#[derive(Clone, Debug, FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: RoleColumn,
    pub password_hash: String,
    pub disabled: bool,
    pub session_epoch: i64,
}

impl User {
    pub fn role(&self) -> Role {
        self.role.0
    }
}

/// `Role` as a column (the role type lives in the shared `app` crate).
#[derive(Clone, Copy, Debug)]
pub struct RoleColumn(pub Role);

impl TryFrom<String> for RoleColumn {
    type Error = app::model::UnknownRole;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map(RoleColumn)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user `{0}` already exists; pick another name or change it with `migctl user passwd`")]
    Exists(String),
    #[error("there is no user `{0}`; `migctl user list` shows who exists")]
    NoSuchUser(String),
    #[error(
        "`{0}` is not a valid user name: start with a letter, then up to 63 letters, digits, `.`, `_`, `-` or `@`"
    )]
    BadName(String),
    #[error("{0} is the only active admin; make another user admin first")]
    LastAdmin(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub fn check_name(name: &str) -> Result<(), AccountError> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_owned()))
    }
}

const COLUMNS: &str = "id, name, role, password_hash, disabled, session_epoch";

pub async fn find_by_name(pool: &SqlitePool, name: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE name = ?"))
        .bind(name)
        .fetch_optional(pool)
        .await
}

pub async fn find_by_id(pool: &SqlitePool, id: i64) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn count(pool: &SqlitePool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

/// An update or delete by name must have found the user.
fn touched(r: &sqlx::sqlite::SqliteQueryResult, name: &str) -> Result<(), AccountError> {
    if r.rows_affected() == 0 {
        return Err(AccountError::NoSuchUser(name.to_owned()));
    }
    Ok(())
}

pub async fn create(
    pool: &SqlitePool,
    name: &str,
    role: Role,
    password_hash: &str,
) -> Result<i64, AccountError> {
    check_name(name)?;
    let done = sqlx::query("INSERT INTO users (name, role, password_hash) VALUES (?, ?, ?)")
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .execute(pool)
        .await;
    match done {
        Ok(r) => Ok(r.last_insert_rowid()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(AccountError::Exists(name.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets the password and ends the user's sessions.
pub async fn set_password(
    pool: &SqlitePool,
    name: &str,
    password_hash: &str,
) -> Result<(), AccountError> {
    let r = sqlx::query(
        "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1,
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE name = ?",
    )
    .bind(password_hash)
    .bind(name)
    .execute(pool)
    .await?;
    touched(&r, name)
}

/// Keeps a change from leaving no active admin. It is part of the UPDATE
/// itself, so the check and the change are one write: two admins demoting
/// each other at once cannot both pass it (SQLite serialises writers, and a
/// statement reads the rows as the write lock finds them).
const KEEPS_AN_ADMIN: &str = "(role != 'admin' OR disabled = 1
    OR (SELECT COUNT(*) FROM users o WHERE o.role = 'admin' AND o.disabled = 0 AND o.name != users.name) > 0)";

/// An update by name that changed nothing: no such user, or the guard held.
async fn refused(pool: impl sqlx::SqliteExecutor<'_>, name: &str) -> Result<(), AccountError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Err(match exists {
        Some(_) => AccountError::LastAdmin(name.to_owned()),
        None => AccountError::NoSuchUser(name.to_owned()),
    })
}

/// Changes the user's role; it applies from their next request. The last
/// active admin cannot be demoted (`LastAdmin`).
pub async fn set_role(pool: &SqlitePool, name: &str, role: Role) -> Result<(), AccountError> {
    let r = sqlx::query(&format!(
        "UPDATE users SET role = ?1, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
         WHERE name = ?2 AND (?1 = 'admin' OR {KEEPS_AN_ADMIN})"
    ))
    .bind(role.as_str())
    .bind(name)
    .execute(pool)
    .await?;
    if r.rows_affected() == 0 {
        return refused(pool, name).await;
    }
    Ok(())
}

/// Disables (ending the user's sessions and revoking their API tokens, so
/// enabling the user again brings none of them back) or enables the user.
/// The last active admin cannot be disabled (`LastAdmin`).
pub async fn set_disabled(
    pool: &SqlitePool,
    name: &str,
    disabled: bool,
) -> Result<(), AccountError> {
    let mut tx = pool.begin().await?;
    let r = sqlx::query(&format!(
        "UPDATE users SET disabled = ?1, session_epoch = session_epoch + ?1,
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
         WHERE name = ?2 AND (?1 = 0 OR {KEEPS_AN_ADMIN})"
    ))
    .bind(i64::from(disabled))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 0 {
        return refused(&mut *tx, name).await;
    }
    if disabled {
        sqlx::query("DELETE FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE name = ?)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Lets the user sign in again at once: a running console forgets their
/// failed sign-ins at their next attempt (`signin_epoch`).
pub async fn unlock(pool: &SqlitePool, name: &str) -> Result<(), AccountError> {
    let r = sqlx::query("UPDATE users SET signin_epoch = signin_epoch + 1 WHERE name = ?")
        .bind(name)
        .execute(pool)
        .await?;
    touched(&r, name)
}

/// How many times the user was unlocked (0 for a name nobody has).
pub async fn signin_epoch(pool: &SqlitePool, name: &str) -> sqlx::Result<i64> {
    let epoch: Option<i64> = sqlx::query_scalar("SELECT signin_epoch FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(epoch.unwrap_or(0))
}

/// Deletes the user; their tokens go with them and their sessions end.
pub async fn delete(pool: &SqlitePool, name: &str) -> Result<(), AccountError> {
    let r = sqlx::query("DELETE FROM users WHERE name = ?")
        .bind(name)
        .execute(pool)
        .await?;
    touched(&r, name)
}

pub async fn list(pool: &SqlitePool) -> sqlx::Result<Vec<UserRow>> {
    let rows: Vec<(String, String, bool, String, i64)> = sqlx::query_as(
        "SELECT u.name, u.role, u.disabled, u.created_at,
                (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id)
         FROM users u ORDER BY u.name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(name, role, disabled, created_at, api_tokens)| {
            let role = role
                .parse()
                .map_err(|e: app::model::UnknownRole| sqlx::Error::Decode(e.into()))?;
            Ok(UserRow {
                name,
                role,
                disabled,
                created_at,
                api_tokens,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_rule() {
        for ok in ["admin", "ana.lopez", "ops-1", "x@corp"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1x", "a b", "a;b", "é", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
