//! Adding a user, the one way every entry point does it (the users page,
//! `migctl user add`, the console's first start): the name rule, the
//! password rule, the hash, the row, then the audit line.

use super::{accounts, password};
use app::model::Role;
use sqlx::SqlitePool;

#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error(transparent)]
    Account(#[from] accounts::AccountError),
    /// The password breaks the rule; the text says which part.
    #[error("{0}")]
    Password(String),
    #[error("cannot hash the password: {0}")]
    Hash(anyhow::Error),
    /// The user was added but the audit trail could not say so.
    #[error("added {name}, but the audit trail could not record it: {cause}")]
    Audit { name: String, cause: sqlx::Error },
}

impl AddUserError {
    /// The form field the refusal is about, if one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AddUserError::Account(
                accounts::AccountError::BadName(_) | accounts::AccountError::Exists(_),
            ) => Some("name"),
            AddUserError::Password(_) => Some("password"),
            _ => None,
        }
    }
}

/// Adds `name` with `role` and `secret` as its password; `by` is who did
/// it (for the audit trail), `why` what the trail adds to "NAME as ROLE".
pub async fn add_user(
    pool: &SqlitePool,
    by: &str,
    name: &str,
    role: Role,
    secret: String,
    why: Option<&str>,
) -> Result<i64, AddUserError> {
    accounts::check_name(name)?;
    password::check_strength(&secret).map_err(AddUserError::Password)?;
    let hash = password::hash(secret).await.map_err(AddUserError::Hash)?;
    let id = accounts::create(pool, name, role, &hash).await?;
    let detail = match why {
        Some(why) => format!("{name} as {role} ({why})"),
        None => format!("{name} as {role}"),
    };
    crate::db::audit(pool, by, "user.add", &detail)
        .await
        .map_err(|cause| AddUserError::Audit {
            name: name.to_owned(),
            cause,
        })?;
    Ok(id)
}
