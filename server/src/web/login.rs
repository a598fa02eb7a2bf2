//! Sign-in and sign-out. Plain form posts answered with redirects, so they
//! work without JavaScript; the sign-in page shows `?error=…`.

use super::AppState;
use super::gate::{SESSION_EPOCH, SESSION_USER};
use crate::auth::{accounts, password};
use crate::db;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Instant;
use tower_sessions::Session;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Only paths on this console; never `//host` or a scheme.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local && next != "/login" { next } else { "/" }
}

fn back_to_login(error: &str, next: &str, extra: &str) -> Response {
    let mut target = format!("/login?error={error}{extra}");
    if next != "/" {
        target.push_str("&next=");
        target.push_str(&super::gate::urlencode(next));
    }
    Redirect::to(&target).into_response()
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let name = form.username.trim();
    if name.is_empty() || form.password.is_empty() {
        return back_to_login("missing", &next, "");
    }
    if let Err(wait) = state.throttle.check(name, peer.ip(), Instant::now()) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(user = name, address = %peer.ip(), "sign-in refused: throttled");
        return back_to_login("throttled", &next, &format!("&retry={secs}"));
    }
    let user = match accounts::find_by_name(&state.pool, name).await {
        Ok(u) => u.filter(|u| !u.disabled),
        Err(e) => return super::error::ApiError::from(e).into_response(),
    };
    let ok = password::verify(
        form.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let Some(user) = user.filter(|_| ok) else {
        state
            .throttle
            .record_failure(name, peer.ip(), Instant::now());
        let detail = format!("from {}", peer.ip());
        if let Err(e) = db::audit(&state.pool, name, "login.failed", &detail).await {
            tracing::error!(error = %e, "cannot record a failed sign-in");
        }
        return back_to_login("invalid", &next, "");
    };
    state.throttle.record_success(name);
    // A new id at sign-in: an id planted before sign-in is worth nothing after.
    let stored = async {
        session.cycle_id().await?;
        session.insert(SESSION_USER, user.id).await?;
        session.insert(SESSION_EPOCH, user.session_epoch).await
    }
    .await;
    if let Err(e) = stored {
        return super::error::ApiError::Unexpected(e.into()).into_response();
    }
    if let Err(e) = db::audit(
        &state.pool,
        &user.name,
        "login",
        &format!("from {}", peer.ip()),
    )
    .await
    {
        tracing::error!(error = %e, "cannot record a sign-in");
    }
    Redirect::to(&next).into_response()
}

pub async fn logout(session: Session) -> Response {
    if let Err(e) = session.flush().await {
        return super::error::ApiError::Unexpected(e.into()).into_response();
    }
    Redirect::to("/login?signed_out=1").into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_console() {
        assert_eq!(safe_next("/users"), "/users");
        assert_eq!(safe_next("//evil.example/x"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next(""), "/");
        assert_eq!(safe_next("/login"), "/");
    }
}
