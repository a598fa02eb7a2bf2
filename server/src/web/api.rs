//! The JSON API under `/api/v1`. Every route is behind the sign-in gate.

use super::AppState;
use super::error::ApiError;
use super::gate::CurrentUser;
use super::openapi;
use crate::auth::accounts;
use app::model::{AppView, ConsoleInfo, GridView, Role, SignedIn, UserRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/console", get(console))
        .route("/users", get(users))
        .route("/grids", get(grids))
        .route("/grids/{grid}/apps", get(grid_apps))
        .route("/operations", get(operations).post(start_operation))
        .route("/operations/plan", axum::routing::post(plan_operation))
        .route("/operations/{id}", get(operation))
        .route(
            "/operations/{id}/events",
            get(super::events::operation_events),
        )
        .route(
            "/operations/{id}/cancel",
            axum::routing::post(cancel_operation),
        )
        .route("/audit", axum::routing::get(audit))
        .route("/operations/{id}/log.txt", axum::routing::get(log_text))
        .route(
            "/operations/{id}/log.ndjson",
            axum::routing::get(log_ndjson),
        )
        .route(
            "/operations/{id}/cutover",
            axum::routing::post(cutover_operation),
        )
        .route(
            "/operations/{id}/release-source",
            axum::routing::post(release_source),
        )
        .route(
            "/operations/{id}/rollback",
            axum::routing::post(rollback_operation),
        )
        .route(
            "/operations/{id}/rollback/plan",
            axum::routing::post(plan_rollback),
        )
        .route("/lock", get(lock))
        .route("/lock/evidence", get(lock_evidence))
        .route("/lock/override", axum::routing::post(override_lock))
        .merge(super::group_api::routes())
        .fallback(|| async { ApiError::NotFound("no such API route; see README.md".into()) })
}

const START_FIELDS: &str = "source_grid, source_app, target_grid, target_app and action";

#[utoipa::path(get, path = "/api/v1/me", tag = "console",
    responses((status = 200, description = "Who is signed in", body = SignedIn), openapi::Unauthorized))]
pub async fn me(user: CurrentUser) -> Json<SignedIn> {
    Json(user.0)
}

#[utoipa::path(get, path = "/api/v1/console", tag = "console",
    responses((status = 200, description = "What this console is configured to be", body = ConsoleInfo), openapi::Unauthorized))]
pub async fn console(State(state): State<AppState>, _: CurrentUser) -> Json<ConsoleInfo> {
    Json(super::pages::console_info(&state.settings, &state.engine))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "admin",
    responses((status = 200, description = "The users (admins only)", body = Vec<UserRow>), openapi::Unauthorized, openapi::Forbidden))]
pub async fn users(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<UserRow>>, ApiError> {
    user.require(Role::Admin)?;
    Ok(Json(accounts::list(&state.pool).await?))
}

#[utoipa::path(get, path = "/api/v1/grids", tag = "grids",
    responses((status = 200, description = "The grids of the inventory as last checked (never waits on SSH)", body = Vec<GridView>), openapi::Unauthorized))]
pub async fn grids(State(state): State<AppState>, _: CurrentUser) -> Json<Vec<GridView>> {
    Json(state.grids.snapshot())
}

#[utoipa::path(get, path = "/api/v1/grids/{grid}/apps", tag = "grids",
    params(("grid" = String, Path, description = "A grid of the inventory")),
    responses((status = 200, description = "The grid's apps as last checked", body = Vec<AppView>), openapi::Unauthorized, openapi::NotFound))]
pub async fn grid_apps(
    State(state): State<AppState>,
    _: CurrentUser,
    Path(grid): Path<String>,
) -> Result<Json<Vec<AppView>>, ApiError> {
    state
        .grids
        .snapshot()
        .into_iter()
        .find(|g| g.name == grid)
        .map(|g| Json(g.apps))
        .ok_or_else(|| ApiError::NotFound(format!("there is no grid {grid:?} in the inventory")))
}

#[utoipa::path(post, path = "/api/v1/operations", tag = "operations",
    request_body = crate::operation::StartRequest,
    responses((status = 201, description = "Started: the lock is taken and the helper is on its way", body = app::model::OperationView),
        openapi::Unauthorized, openapi::Forbidden, openapi::Conflict, openapi::TooLarge, openapi::Unprocessable, openapi::Unavailable))]
pub async fn start_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Result<Json<crate::operation::StartRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<app::model::OperationView>), ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let Json(req) = body.map_err(|e| ApiError::bad_json(&e, START_FIELDS))?;
    let op = state.engine.start(req, &who).await?;
    Ok((StatusCode::CREATED, Json(op)))
}

/// A rollback's body: optional (`{}` or none takes the defaults).
fn rollback_body(
    body: Result<Json<crate::operation::RollbackRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<crate::operation::RollbackRequest, ApiError> {
    match body {
        Ok(Json(r)) => Ok(r),
        Err(axum::extract::rejection::JsonRejection::MissingJsonContentType(_)) => {
            Ok(Default::default())
        }
        Err(e) => Err(ApiError::bad_json(
            &e,
            "keep_target, keep_target_hours, warm and stop_timeout_secs, all optional",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/rollback", tag = "operations",
    params(("id" = String, Path, description = "The done migrate (or rollback) whose source is kept")),
    request_body = crate::operation::RollbackRequest,
    responses((status = 201, description = "The rollback started: a new operation (`action` rollback, `rollback_of` this one) that moves the app back into the kept source, copying only what changed since the cutover", body = app::model::OperationView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::TooLarge, openapi::Unprocessable, openapi::Unavailable))]
/// Rolls a done migrate back into the source it kept (operators).
pub async fn rollback_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<crate::operation::RollbackRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<app::model::OperationView>), ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let req = rollback_body(body)?;
    let op = state.engine.rollback(&id, &who, &req).await?;
    Ok((StatusCode::CREATED, Json(op)))
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/rollback/plan", tag = "operations",
    params(("id" = String, Path, description = "The done migrate (or rollback) whose source is kept")),
    request_body = crate::operation::RollbackRequest,
    responses((status = 200, description = "What the rollback would do; `bytes_to_move` is what the target changed since the cutover (the blocks that differ from the kept source). Changes nothing", body = app::model::PlanView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::TooLarge, openapi::Unprocessable, openapi::Unavailable))]
/// What rolling the migrate back would do; changes nothing.
pub async fn plan_rollback(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<crate::operation::RollbackRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<app::model::PlanView>, ApiError> {
    user.require(Role::Operator)?;
    let req = rollback_body(body)?;
    Ok(Json(state.engine.plan_rollback(&id, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/operations/plan", tag = "operations",
    request_body = crate::operation::StartRequest,
    responses((status = 200, description = "What starting it would do; changes nothing", body = app::model::PlanView),
        openapi::Unauthorized, openapi::Forbidden, openapi::Conflict, openapi::TooLarge, openapi::Unprocessable, openapi::Unavailable))]
/// What starting the operation would do (pre-flight, commands, estimate); changes nothing.
pub async fn plan_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Result<Json<crate::operation::StartRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<app::model::PlanView>, ApiError> {
    user.require(Role::Operator)?;
    let Json(req) = body.map_err(|e| ApiError::bad_json(&e, START_FIELDS))?;
    Ok(Json(state.engine.plan(&req).await?))
}

#[utoipa::path(get, path = "/api/v1/lock/evidence", tag = "lock",
    responses((status = 200, description = "The lock with the evidence an admin needs before overriding it", body = app::model::LockDetail),
        openapi::Unauthorized, openapi::NotFound, openapi::Unavailable))]
/// The lock with the evidence read live from the controllers (404 when none).
pub async fn lock_evidence(
    State(state): State<AppState>,
    _: CurrentUser,
) -> Result<Json<app::model::LockDetail>, ApiError> {
    state
        .engine
        .lock_detail(true)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("there is no lock".into()))
}

#[utoipa::path(get, path = "/api/v1/operations", tag = "operations",
    responses((status = 200, description = "The latest 200 operations, newest first", body = Vec<app::model::OperationView>), openapi::Unauthorized))]
pub async fn operations(
    State(state): State<AppState>,
    _: CurrentUser,
) -> Result<Json<Vec<app::model::OperationView>>, ApiError> {
    Ok(Json(crate::operation::store::list(&state.pool, 200).await?))
}

#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "operations",
    params(("id" = String, Path, description = "The operation's id")),
    responses((status = 200, description = "The operation", body = app::model::OperationView), openapi::Unauthorized, openapi::NotFound))]
pub async fn operation(
    State(state): State<AppState>,
    _: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<app::model::OperationView>, ApiError> {
    crate::operation::store::get(&state.pool, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("there is no operation {id:?}")))
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/cancel", tag = "operations",
    params(("id" = String, Path, description = "The operation's id")),
    responses((status = 200, description = "Cancelled, with the clean-up done", body = crate::operation::Cancelled),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::Unavailable))]
pub async fn cancel_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<crate::operation::Cancelled>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    if crate::operation::store::get(&state.pool, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("there is no operation {id:?}")));
    }
    Ok(Json(state.engine.cancel(&id, &who).await?))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "admin",
    params(app::model::AuditFilter),
    responses((status = 200, description = "The audit trail, newest first (admins only)", body = Vec<app::model::AuditEntry>),
        openapi::Unauthorized, openapi::Forbidden, openapi::Unprocessable))]
/// The audit trail, newest first (admins): `?actor=…&action=…&limit=…`.
pub async fn audit(
    State(state): State<AppState>,
    user: CurrentUser,
    query: Result<
        axum::extract::Query<app::model::AuditFilter>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Json<Vec<app::model::AuditEntry>>, ApiError> {
    user.require(Role::Admin)?;
    let axum::extract::Query(filter) = query.map_err(|e| {
        ApiError::Unprocessable(format!(
            "{}; filter with actor=NAME, action=ACTION and limit=COUNT",
            e.body_text()
        ))
    })?;
    if filter
        .limit
        .is_some_and(|l| !(1..=app::model::AuditFilter::MAX_LIMIT).contains(&l))
    {
        return Err(ApiError::Unprocessable(format!(
            "limit: ask for 1 to {} entries",
            app::model::AuditFilter::MAX_LIMIT
        )));
    }
    Ok(Json(crate::db::audit_entries(&state.pool, &filter).await?))
}

#[utoipa::path(get, path = "/api/v1/operations/{id}/log.txt", tag = "operations",
    params(("id" = String, Path, description = "The operation's id")),
    responses((status = 200, description = "The whole log, one line an event", content_type = "text/plain", body = String),
        openapi::Unauthorized, openapi::NotFound))]
/// An operation's whole log for people: one line an event, in order.
pub async fn log_text(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let body = whole_log(&state, &id, |e| {
        let line = match (e.progress(), e.phase()) {
            (Some(p), _) => format!(
                "{}: {} of {} in place",
                p.volume,
                app::model::human_bytes(p.done),
                app::model::human_bytes(p.total)
            ),
            (None, Some(p)) => format!("phase {}: {}", p.phase, p.text),
            (None, None) if e.kind == app::model::EventKind::State => e.data.to_string(),
            _ => e.text(),
        };
        format!("{:>6} {} {:>7} {}\n", e.seq, e.at, e.source, line)
    })
    .await?;
    Ok(download(&id, "txt", "text/plain; charset=utf-8", body))
}

#[utoipa::path(get, path = "/api/v1/operations/{id}/log.ndjson", tag = "operations",
    params(("id" = String, Path, description = "The operation's id")),
    responses((status = 200, description = "The whole log, one stored event (JSON) a line", content_type = "application/x-ndjson", body = String),
        openapi::Unauthorized, openapi::NotFound))]
/// An operation's whole log as NDJSON: one stored event (as the event
/// stream sends it) a line.
pub async fn log_ndjson(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let body = whole_log(&state, &id, |e| {
        serde_json::to_string(e).unwrap_or_default() + "\n"
    })
    .await?;
    Ok(download(&id, "ndjson", "application/x-ndjson", body))
}

/// An operation's whole log as a body streamed a page of events at a time
/// (however long the log, the console holds one page), a line an event.
async fn whole_log(
    state: &AppState,
    id: &str,
    line: fn(&app::model::StreamEvent) -> String,
) -> Result<axum::body::Body, ApiError> {
    use crate::operation::store;
    const PAGE: i64 = 1000;
    if store::get(&state.pool, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("there is no operation {id:?}")));
    }
    let start = (state.pool.clone(), id.to_owned(), 0_i64, false);
    let pages =
        futures_util::stream::try_unfold(start, move |(pool, id, after, done)| async move {
            if done {
                return Ok(None);
            }
            let page = store::events_page(&pool, &id, after, PAGE).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                return Ok(None);
            };
            let text: String = page.iter().map(line).collect();
            let done = (page.len() as i64) < PAGE;
            Ok::<_, sqlx::Error>(Some((
                axum::body::Bytes::from(text),
                (pool, id, last, done),
            )))
        });
    Ok(axum::body::Body::from_stream(pages))
}

fn download(
    id: &str,
    ext: &str,
    mime: &'static str,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let name = format!(
        "{}.{ext}",
        id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The answer to "cut over now".
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CutoverRequested {
    /// What happens next, for people.
    pub requested: String,
    pub operation: Option<app::model::OperationView>,
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/cutover", tag = "operations",
    params(("id" = String, Path, description = "The operation's id")),
    responses((status = 200, description = "The cutover is asked for; the helper stops the source after its current pass", body = CutoverRequested),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::Unavailable))]
pub async fn cutover_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<CutoverRequested>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let requested = state.engine.cutover(&id, &who).await?;
    let operation = crate::operation::store::get(&state.pool, &id).await?;
    Ok(Json(CutoverRequested {
        requested,
        operation,
    }))
}

/// Why a kept source is released.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Kept in the audit trail and with the kept source.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
    /// Admins: release a kept source that no longer matches its
    /// fingerprint (or has none) after all; never one that runs.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/release-source", tag = "operations",
    params(("id" = String, Path, description = "The migrate that kept its source")),
    request_body = ReleaseRequest,
    responses((status = 200, description = "The kept source matched its fingerprint and was destroyed; the operation with its kept source `released`", body = app::model::OperationView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::TooLarge, openapi::Unprocessable, openapi::Unavailable))]
/// Releases a migrate's kept source (operators): it is checked against
/// its fingerprint first; one that runs, is gone or changed is refused
/// (409) and kept.
pub async fn release_source(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<ReleaseRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<app::model::OperationView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let Json(req) = body.map_err(|e| ApiError::bad_json(&e, "reason (and force, admins)"))?;
    if req.force {
        user.require(Role::Admin)?;
    }
    Ok(Json(
        state
            .engine
            .release_source(&id, &who, &req.reason, req.force)
            .await?,
    ))
}

/// An admin's override of the lock of an operation that no longer moves.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The operation holding the lock (the lock's `op_id`; `unreadable` for
    /// a lock that cannot be read).
    #[schema(min_length = 1)]
    op_id: String,
    /// Why: kept in the audit trail and the operation's reason.
    #[schema(min_length = 1)]
    reason: String,
    /// Also destroy the operation's helper app.
    #[serde(default)]
    destroy_helper: bool,
}

#[utoipa::path(post, path = "/api/v1/lock/override", tag = "lock",
    request_body = OverrideRequest,
    responses((status = 200, description = "The lock is archived and the operation ended `overridden`", body = crate::operation::Overridden),
        openapi::Unauthorized, openapi::Forbidden, openapi::Conflict, openapi::TooLarge, openapi::Unprocessable, openapi::Unavailable))]
pub async fn override_lock(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Result<Json<OverrideRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::operation::Overridden>, ApiError> {
    let who = user.require(Role::Admin)?.name.clone();
    let Json(req) = body.map_err(|e| ApiError::bad_json(&e, "op_id and reason"))?;
    Ok(Json(
        state
            .engine
            .override_lock(&req.op_id, &req.reason, &who, req.destroy_helper)
            .await?,
    ))
}

/// The lock file as `GET /api/v1/lock` shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LockBody {
    Held(Box<crate::lock::Lock>),
    Unreadable(UnreadableLock),
}

/// A lock file this console cannot read: never removed silently.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UnreadableLock {
    /// Always true.
    pub unreadable: bool,
    pub problem: String,
    /// The file's first bytes.
    pub raw: String,
}

#[utoipa::path(get, path = "/api/v1/lock", tag = "lock",
    responses((status = 200, description = "The lock file: its fields, or its raw text when it cannot be read", body = LockBody),
        openapi::Unauthorized, openapi::NotFound))]
pub async fn lock(
    State(state): State<AppState>,
    _: CurrentUser,
) -> Result<Json<LockBody>, ApiError> {
    use crate::lock::LockState;
    match state.engine.lock_state() {
        LockState::Free => Err(ApiError::NotFound(
            "there is no lock: no operation is running".into(),
        )),
        LockState::Held(l) => Ok(Json(LockBody::Held(Box::new(l)))),
        LockState::Unreadable { raw, problem } => Ok(Json(LockBody::Unreadable(UnreadableLock {
            unreadable: true,
            problem,
            raw,
        }))),
    }
}
