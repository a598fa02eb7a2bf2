//! The checks every request passes: the Host check (the console answers only
//! to its own names, so a DNS-rebinding page cannot talk to it), the Origin
//! check on state-changing requests (no cross-site form or fetch can act for
//! a signed-in user), then the sign-in gate (session cookie or bearer token)
//! for everything but the sign-in page, the health check and static assets.

use super::AppState;
use super::error::ApiError;
use crate::auth::{accounts, tokens};
use app::model::{Role, SignedIn};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

pub const SESSION_USER: &str = "user_id";
pub const SESSION_EPOCH: &str = "epoch";

/// The names this console answers to: the host of `public_url` when set,
/// `localhost`, and IP addresses (an IP literal cannot be rebound by DNS,
/// so a rebinding page can never present one). Any other name is refused.
#[derive(Clone, Debug)]
pub struct OwnOrigins {
    /// `public_url` without a trailing slash, lower case.
    public: Option<String>,
}

impl OwnOrigins {
    pub fn new(public_url: Option<&str>) -> OwnOrigins {
        OwnOrigins {
            public: public_url.map(|u| u.trim_end_matches('/').to_ascii_lowercase()),
        }
    }

    fn public_authority(&self) -> Option<&str> {
        self.public.as_deref()?.split_once("://").map(|(_, a)| a)
    }

    /// Whether a `Host` names this console.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.public_authority() == Some(host.as_str()) || is_local_name(&host)
    }

    /// Whether a state-changing request's `Origin` is this console: its
    /// `public_url` (scheme, host and port), or `http://` and the very host
    /// and port the request was sent to (another port of the same machine
    /// is another site). An origin is its scheme too (RFC 6454): the console
    /// serves no TLS itself, so an `https://` origin is only ever its
    /// `public_url`, behind a TLS proxy.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.public.as_deref() == Some(origin.as_str()) {
            return true;
        }
        let authority = match origin.split_once("://") {
            Some(("http", authority)) => authority,
            _ => return false,
        };
        host.is_some_and(|h| {
            h.eq_ignore_ascii_case(authority) && is_local_name(&h.to_ascii_lowercase())
        })
    }

    fn describe(&self) -> String {
        match &self.public {
            Some(p) => format!("{p}, or http:// and localhost or an IP address"),
            None => "http:// and localhost or an IP address; behind a TLS proxy, set public_url"
                .to_owned(),
        }
    }
}

/// `localhost` or an IP address, with or without a port.
fn is_local_name(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

/// Refuses a request whose `Host` is not one of this console's names
/// (421): what a DNS-rebinding page would send.
pub async fn own_host_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if !state.origins.host_allowed(&h) => {
            tracing::warn!(host = %h, path = request.uri().path(), "refused a request for another host name");
            let why = format!(
                "this console answers to {} only, not {h:?}; reach it by one of those, or set public_url to the name it is reached by",
                state.origins.describe()
            );
            (StatusCode::MISDIRECTED_REQUEST, why).into_response()
        }
        _ => next.run(request).await,
    }
}

fn is_public(path: &str) -> bool {
    // `/metrics` checks its own access (a token, or loopback).
    path == "/login"
        || path == "/healthz"
        || path == "/metrics"
        || path == "/api/v1/openapi.json"
        || path == "/favicon.ico"
        || path == "/favicon.svg"
        || path.starts_with("/pkg/")
}

/// Paths answered with JSON (401) rather than a redirect to the sign-in page.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/sfn/")
}

/// The token of `Authorization: Bearer …`; the scheme's case does not
/// matter (RFC 9110 §11.1), for the API and `/metrics` alike.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn signed_in(user: &accounts::User) -> SignedIn {
    SignedIn {
        user_id: user.id,
        name: user.name.clone(),
        role: user.role(),
    }
}

/// The session's user, if the session is live and the account unchanged since sign-in.
pub async fn session_user(
    state: &AppState,
    session: &Session,
) -> Result<Option<SignedIn>, ApiError> {
    let id: Option<i64> = session
        .get(SESSION_USER)
        .await
        .map_err(anyhow::Error::from)?;
    let epoch: Option<i64> = session
        .get(SESSION_EPOCH)
        .await
        .map_err(anyhow::Error::from)?;
    let (Some(id), Some(epoch)) = (id, epoch) else {
        return Ok(None);
    };
    let user = accounts::find_by_id(&state.pool, id).await?;
    Ok(user
        .filter(|u| !u.disabled && u.session_epoch == epoch)
        .map(|u| signed_in(&u)))
}

pub async fn require_sign_in(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) {
        // Someone already signed in has no use for the sign-in form.
        if path == "/login"
            && request.method() == Method::GET
            && let Ok(Some(_)) = session_user(&state, &session).await
        {
            return Redirect::to("/").into_response();
        }
        return next.run(request).await;
    }
    let user = match bearer(request.headers()) {
        Some(token) => match tokens::user_of(&state.pool, token).await {
            Ok(user) => user.map(|u| signed_in(&u)),
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => match session_user(&state, &session).await {
            Ok(user) => user,
            Err(e) => return e.into_response(),
        },
    };
    match user {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None if is_api(&path) => ApiError::Unauthorized.into_response(),
        None => {
            let wanted = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let target = if wanted == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", urlencode(wanted))
            };
            Redirect::to(&target).into_response()
        }
    }
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Refuses state-changing requests that a browser sent on behalf of another
/// site. Requests carrying a bearer token are exempt: browsers never add one
/// on their own.
pub async fn same_origin_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || bearer(request.headers()).is_some()
    {
        return next.run(request).await;
    }
    match origin_verdict(request.headers(), &state.origins) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            tracing::warn!(path = request.uri().path(), %why, "refused a cross-origin request");
            if is_api(request.uri().path()) {
                ApiError::Forbidden(why).into_response()
            } else {
                (StatusCode::FORBIDDEN, why).into_response()
            }
        }
    }
}

fn origin_verdict(headers: &HeaderMap, origins: &OwnOrigins) -> Result<(), String> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) if origins.origin_allowed(origin, host) => Ok(()),
        Some(origin) => Err(format!(
            "cross-origin request refused: Origin {origin} is not this console ({})",
            origins.describe()
        )),
        None => match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("same-origin" | "none") => Ok(()),
            _ => Err(
                "request refused: a state-changing request must carry an Origin header from this console, or a bearer token".to_owned(),
            ),
        },
    }
}

/// The signed-in user of a request that passed the gate.
pub struct CurrentUser(pub SignedIn);

impl CurrentUser {
    pub fn require(&self, role: Role) -> Result<&SignedIn, ApiError> {
        if self.0.role.allows(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {role} role; {} is {}",
                self.0.name, self.0.role
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<SignedIn>()
            .cloned()
            .map(CurrentUser)
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_must_be_this_console() {
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(origin_verdict(&same, &own(None)).is_ok());
        let evil = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        let err = origin_verdict(&evil, &own(None)).err().unwrap();
        assert!(
            err.contains("Origin http://evil.example is not this console"),
            "{err}"
        );
        let proxied = headers(&[
            ("host", "10.0.0.5:8080"),
            ("origin", "https://mig.example.com"),
        ]);
        assert!(origin_verdict(&proxied, &own(Some("https://mig.example.com"))).is_ok());
        assert!(origin_verdict(&proxied, &own(None)).is_err());
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(origin_verdict(&null, &own(None)).is_err());
    }

    fn own(public: Option<&str>) -> OwnOrigins {
        OwnOrigins::new(public)
    }

    #[test]
    fn the_console_answers_to_its_own_names_only() {
        let o = own(None);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "10.1.2.3",
            "LOCALHOST:9",
        ] {
            assert!(o.host_allowed(ok), "{ok}");
        }
        // A rebinding page's names.
        for bad in [
            "evil.example:8080",
            "localhost.evil.example:8080",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!o.host_allowed(bad), "{bad}");
        }
        let p = own(Some("https://mig.example.com/"));
        assert!(p.host_allowed("mig.example.com"));
        assert!(p.origin_allowed("https://mig.example.com", Some("10.0.0.5:8080")));
        assert!(!p.origin_allowed("https://evil.example", Some("evil.example")));
        // The origin is the host the request went to, port included.
        assert!(o.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!o.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        // Its scheme too: the console serves no TLS itself.
        assert!(!o.origin_allowed("https://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://mig.example.com", Some("mig.example.com")));
        assert!(!o.origin_allowed("http://evil.example:8080", Some("evil.example:8080")));
        assert!(!o.origin_allowed("file://127.0.0.1:8080", Some("127.0.0.1:8080")));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k3n", "bearer t0k3n", "BEARER  t0k3n "] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(bearer(&h), Some("t0k3n"), "{value}");
        }
        for value in ["Basic dTpw", "Bearer", "Bearer ", "t0k3n"] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(bearer(&h), None, "{value}");
        }
    }

    #[test]
    fn without_origin_only_same_origin_fetch_metadata_passes() {
        assert!(origin_verdict(&headers(&[("sec-fetch-site", "same-origin")]), &own(None)).is_ok());
        assert!(origin_verdict(&headers(&[("sec-fetch-site", "cross-site")]), &own(None)).is_err());
        assert!(origin_verdict(&headers(&[("host", "h")]), &own(None)).is_err());
    }

    #[test]
    fn next_paths_are_encoded() {
        assert_eq!(urlencode("/users?x=1&y"), "/users%3Fx%3D1%26y");
    }
}
