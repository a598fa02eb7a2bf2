//! The HTTP side: one router for pages, server functions, the JSON API and
//! static assets, behind the Origin check and the sign-in gate.

pub mod admin;
pub mod api;
pub mod error;
pub mod events;
pub mod forms;
pub mod gate;
pub mod group_api;
mod group_forms;
pub mod headers;
pub mod login;
pub mod metrics;
pub mod notices;
pub mod openapi;
pub mod pages;

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use app::backend::BackendHandle;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use sqlx::SqlitePool;
use std::sync::Arc;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

pub const SESSION_COOKIE: &str = "migctl_session";

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: SqlitePool,
    pub settings: Arc<Settings>,
    pub throttle: Arc<LoginThrottle>,
    pub backend: BackendHandle,
    pub grids: Arc<crate::grids::GridMonitor>,
    pub engine: Arc<crate::operation::Engine>,
    pub groups: Arc<crate::groups::Groups>,
    pub origins: Arc<gate::OwnOrigins>,
    /// Open event streams, against `max_event_streams`.
    pub streams: Arc<events::Streams>,
    /// What forms answered, for the pages they redirect to.
    pub notices: Arc<notices::Notices>,
}

/// The pages' routes, generated once a process. Generating them runs the app
/// with resource loading suspended *process-wide* (leptos_server's
/// `SuppressResourceLoad`), so a page whose resource first polls meanwhile
/// never finishes rendering (leptos-rs/leptos#4773): two consoles in one
/// process (the tests, or a console started next to another) must not
/// generate them while either serves. Seen as a dashboard hanging for 60 s
/// in the console tests.
///
/// The app's 404 page (its `*any` route) is left out: as a server route it
/// would take unknown API addresses (their JSON 404) and every other
/// method (405); the fallback renders it instead, for any address no
/// route answers.
static ROUTES: std::sync::LazyLock<Vec<leptos_axum::AxumRouteListing>> =
    std::sync::LazyLock::new(|| {
        generate_route_list(app::App)
            .into_iter()
            .filter(|r| !r.path().contains('*'))
            .collect()
    });

/// The console's icon (browsers ask for `/favicon.ico` whatever the page
/// names; an SVG answers both).
async fn favicon() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("favicon.svg"),
    )
}

pub fn router(state: AppState, sessions: SqliteStore) -> Router {
    let session_layer = SessionManagerLayer::new(crate::auth::sessions::HashedIds::new(sessions))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(state.settings.served_over_tls())
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(12)));

    let backend = state.backend.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .leptos_routes_with_context(
            &state,
            ROUTES.clone(),
            move || {
                provide_context(backend.clone());
                headers::provide_page_policy();
            },
            move || app::shell(options.clone()),
        )
        .route(
            "/login",
            post(login::login).layer(DefaultBodyLimit::max(login::MAX_BODY)),
        )
        .route("/logout", post(login::logout))
        .route("/operations/new", post(forms::new_operation))
        .route("/operations/{id}/cancel", post(forms::cancel_operation))
        .route(
            "/operations/{id}/release-source",
            post(forms::release_source),
        )
        .route("/operations/{id}/rollback", post(forms::rollback_operation))
        .route("/operations/{id}/cutover", post(forms::cutover_operation))
        .merge(group_forms::routes())
        .route("/users", post(admin::add_user))
        .route("/users/{name}", post(admin::change_user))
        .route("/lock/override", post(admin::override_lock))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/sfn/{*name}", get(pages::server_fn).post(pages::server_fn))
        .nest("/api/v1", api::routes())
        // The site's assets, with the request's conditional headers (Leptos's
        // file handler drops them): an unchanged file is answered 304.
        .nest_service(
            "/pkg",
            tower_http::services::ServeDir::new(state.settings.site_root.join("pkg")),
        )
        // What no route answers (another method, say) gets the app's 404
        // page, with the page policy its scripts need to run.
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(
            {
                let backend = state.backend.clone();
                move || {
                    provide_context(backend.clone());
                    headers::provide_page_policy();
                }
            },
            app::shell,
        ))
        .layer(middleware::from_fn(pages::server_fn_mistakes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::require_sign_in,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::same_origin_only,
        ))
        .layer(session_layer)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::own_host_only,
        ))
        .layer(middleware::from_fn_with_state(
            state.settings.served_over_tls(),
            headers::security_headers,
        ))
        .layer(middleware::from_fn_with_state(
            state.leptos_options.hash_files,
            headers::asset_caching,
        ))
        // gzip or brotli as the browser asks; never an event stream (each
        // event must leave at once), images or tiny bodies.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
