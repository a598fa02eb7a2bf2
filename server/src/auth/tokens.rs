//! API tokens: random, shown once, stored as SHA-256. A token is as strong as
//! a 256-bit key, so a fast hash is enough and lookup is one indexed query.

use super::accounts::User;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

const PREFIX: &str = "migctl_";

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for the user and returns it; it is not retrievable later.
pub async fn create(pool: &SqlitePool, user_id: i64) -> sqlx::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    sqlx::query("INSERT INTO api_tokens (user_id, token_hash) VALUES (?, ?)")
        .bind(user_id)
        .bind(digest(&token))
        .execute(pool)
        .await?;
    Ok(token)
}

/// The user a token belongs to, when the token is known and the user enabled.
pub async fn user_of(pool: &SqlitePool, token: &str) -> sqlx::Result<Option<User>> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let hash = digest(token);
    let user: Option<User> = sqlx::query_as(
        "SELECT u.id, u.name, u.role, u.password_hash, u.disabled, u.session_epoch
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ? AND u.disabled = 0",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    if user.is_some() {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
             WHERE token_hash = ?",
        )
        .bind(&hash)
        .execute(pool)
        .await?;
    }
    Ok(user)
}
