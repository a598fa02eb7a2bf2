//! `GET /metrics`: the Prometheus text format, for whoever holds the
//! `metrics_token` (as a bearer token) or, without one set, for clients on
//! loopback (a Prometheus on the same host) — unless the console sits behind
//! a proxy (`public_url` set): then every request comes from loopback and
//! that proves nothing, so without a token nobody may read it.

use super::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let sent = super::gate::bearer(&headers);
    let behind_a_proxy = state.settings.public_url.is_some();
    let allowed = match (&state.settings.metrics_token, sent) {
        (Some(token), Some(sent)) => same(token.expose().as_bytes(), sent.as_bytes()),
        (Some(_), None) => false,
        (None, _) => peer.ip().is_loopback() && !behind_a_proxy,
    };
    if !allowed {
        let why = if state.settings.metrics_token.is_some() {
            "send the metrics_token as `Authorization: Bearer …`"
        } else if behind_a_proxy {
            "/metrics needs metrics_token when public_url is set: behind a proxy every request comes from loopback"
        } else {
            "/metrics answers loopback clients only; set metrics_token to scrape from elsewhere"
        };
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let lock = state.engine.lock_state();
    match crate::telemetry::render(&lock, &state.grids.snapshot()) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the metrics recorder could not be installed in this process",
        )
            .into_response(),
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
