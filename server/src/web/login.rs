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

/// A sign-in form is a name, a password and a path: a few KiB at most.
pub const MAX_BODY: usize = 8 << 10;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Only paths on this console: `/` then visible ASCII (no `\\`, no space or
/// control character: browsers drop tabs and newlines from URLs, so
/// `/<TAB>/evil.example` would become `//evil.example`), never `//host`.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local && next != "/login" { next } else { "/" }
}

/// Counts a refused sign-in by why (`migctl_signins_refused_total`).
fn refused(reason: &'static str) {
    metrics::counter!("migctl_signins_refused_total", "reason" => reason).increment(1);
}

/// A sign-in refused for too many attempts at once: 503 with `Retry-After`.
fn busy(next: &str) -> Response {
    let retry = password::QUEUE_WAIT.as_secs().max(1);
    let link = super::gate::urlencode(next);
    let page = format!(
        "<!doctype html><title>Busy — migctl</title><p>The console is busy checking other sign-ins. \
         <a href=\"/login?next={link}\">Try again</a> in {retry} seconds.</p>"
    );
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [
            (axum::http::header::RETRY_AFTER, retry.to_string()),
            (
                axum::http::header::CONTENT_TYPE,
                "text/html; charset=utf-8".to_owned(),
            ),
        ],
        page,
    )
        .into_response()
}

/// What a refused or failed attempt leaves in the audit log about the
/// name it tried: at most 64 characters, control characters escaped.
fn name_for_audit(name: &str) -> String {
    let shown: String = name
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().count() > 64 {
        format!("{shown}… ({} bytes)", name.len())
    } else {
        shown
    }
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
    let now = Instant::now();
    // Fields beyond what any account can have are refused before anything
    // is hashed, kept or logged in full; they still count as attempts.
    if accounts::check_name(name).is_err() || form.password.len() > password::MAX_LEN {
        let shown = name_for_audit(name);
        let _ = state.throttle.reserve(&shown, peer.ip(), now, 0);
        let detail = format!(
            "from {}: user name of {} bytes, password of {} bytes",
            peer.ip(),
            name.len(),
            form.password.len()
        );
        if let Err(e) = db::audit(&state.pool, &shown, "login.refused", &detail).await {
            tracing::error!(error = %e, "cannot record a refused sign-in");
        }
        refused("invalid");
        return back_to_login("invalid", &next, "");
    }
    // Counted before the slow check, atomically with the check of the limit.
    let epoch = match accounts::signin_epoch(&state.pool, name).await {
        Ok(epoch) => epoch,
        Err(e) => return super::error::ApiError::from(e).into_response(),
    };
    if let Err(wait) = state.throttle.reserve(name, peer.ip(), now, epoch) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(user = name, address = %peer.ip(), "sign-in refused: throttled");
        refused("throttled");
        return back_to_login("throttled", &next, &format!("&retry={secs}"));
    }
    let user = match accounts::find_by_name(&state.pool, name).await {
        Ok(u) => u.filter(|u| !u.disabled),
        Err(e) => return super::error::ApiError::from(e).into_response(),
    };
    let ok = match password::verify(
        form.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await
    {
        Ok(ok) => ok,
        Err(password::Busy) => {
            tracing::warn!(user = name, address = %peer.ip(), "sign-in refused: hashing is busy");
            refused("busy");
            return busy(&next);
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        let detail = format!("from {}", peer.ip());
        if let Err(e) = db::audit(&state.pool, name, "login.failed", &detail).await {
            tracing::error!(error = %e, "cannot record a failed sign-in");
        }
        refused("password");
        return back_to_login("invalid", &next, "");
    };
    state.throttle.record_success(name, peer.ip());
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
        // What browsers strip from a URL must not turn a path into a host.
        for bad in [
            "/\t/evil.example/phish",
            "/\n/evil",
            "/\r\n/x",
            "/\x0b/x",
            "/ /x",
            "/é",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
        assert_eq!(
            safe_next("/operations?state=done&app=shop"),
            "/operations?state=done&app=shop"
        );
        assert_eq!(
            safe_next("/%09/evil.example"),
            "/%09/evil.example",
            "a path, still"
        );
    }

    #[test]
    fn audited_names_are_short_and_escaped() {
        assert_eq!(super::name_for_audit("ana"), "ana");
        let long = super::name_for_audit(&"x".repeat(1 << 20));
        assert!(
            long.len() < 100 && long.ends_with("(1048576 bytes)"),
            "{long}"
        );
        assert_eq!(super::name_for_audit("a\nb"), "a\\nb");
    }
}
