//! The group runs' part of `/api/v1`: start a run from a definition, list
//! and show runs, and an operator's pause, resume, retry, abort, approval
//! and rollback. Behind the sign-in gate like the rest of the API.

use super::AppState;
use super::error::ApiError;
use super::gate::CurrentUser;
use super::openapi;
use crate::groups::GroupError;
use app::model::Role;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use operation_model::group_run::GroupRunView;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/groups/runs", get(runs).post(start_run))
        .route("/groups/runs/{id}", get(run))
        .route("/groups/runs/{id}/pause", post(pause_run))
        .route("/groups/runs/{id}/resume", post(resume_run))
        .route("/groups/runs/{id}/retry", post(retry_run))
        .route("/groups/runs/{id}/abort", post(abort_run))
        .route("/groups/runs/{id}/approve", post(approve_run))
        .route("/groups/runs/{id}/rollback", post(rollback_run))
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::NoSuchRun(_) => ApiError::NotFound(e.to_string()),
            GroupError::Definition(_) | GroupError::Bad(_) => {
                ApiError::Unprocessable(e.to_string())
            }
            GroupError::Conflict(_) => ApiError::Conflict(e.to_string()),
            GroupError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

const DEFINITION: &str = "a group definition as JSON: name, source_grid, target_grid, members \
                          [{app}], and optionally warm, steps and after_each_step (see README.md)";

#[utoipa::path(post, path = "/api/v1/groups/runs", tag = "groups",
    request_body(content = Object, description = "A group definition, the TOML file's shape as JSON: `name`, `source_grid`, `target_grid`, `members` (`[{\"app\": \"mq3\"}]`), and optionally `warm`, `steps` (`member`, `warm`, `before`, `actions`, `after`) and `after_each_step`. Unknown keys and bad values are refused naming where they sit."),
    responses((status = 201, description = "The run, started", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::Conflict, openapi::Unprocessable))]
pub async fn start_run(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<GroupRunView>), ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let Json(def) = body.map_err(|e| ApiError::bad_json(&e, DEFINITION))?;
    let run = state.groups.start(def, &who).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[utoipa::path(get, path = "/api/v1/groups/runs", tag = "groups",
    responses((status = 200, description = "Group runs, newest first (200 at most)", body = Vec<GroupRunView>), openapi::Unauthorized))]
pub async fn runs(
    State(state): State<AppState>,
    _: CurrentUser,
) -> Result<Json<Vec<GroupRunView>>, ApiError> {
    Ok(Json(state.groups.list().await?))
}

#[utoipa::path(get, path = "/api/v1/groups/runs/{id}", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "The run: its steps, checks with their attempts, operations and members; with `Accept: text/event-stream`, a stream of `run` events, the run each time it changes, that ends once the run has ended",
            content((GroupRunView = "application/json"), (GroupRunView = "text/event-stream"))),
        openapi::Unauthorized, openapi::NotFound, openapi::TooManyStreams))]
pub async fn run(
    State(state): State<AppState>,
    _: CurrentUser,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let first = state.groups.view(&id).await?;
    let wants_stream = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        return Ok(Json(first).into_response());
    }
    Ok(follow_run(&state, id)?.into_response())
}

/// How often a run's stream looks at the run.
const RUN_STREAM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The run as Server-Sent Events: `run` with the whole view each time it
/// changes, ending once the run has ended (or the console stops).
fn follow_run(
    state: &AppState,
    id: String,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
        + use<>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let slot = state.streams.admit()?;
    let groups = state.groups.clone();
    let closing = state.engine.shutdown_token();
    let start = (groups, id, String::new(), closing, slot);
    let stream = futures_util::stream::unfold(Some(start), |s| async move {
        let (groups, id, last, closing, slot) = s?;
        loop {
            match groups.view(&id).await {
                Ok(run) => {
                    let text = serde_json::to_string(&run).unwrap_or_default();
                    let ended = run.state.ended();
                    if text != last {
                        let event = Event::default().event("run").data(&text);
                        let next = (!ended).then_some((groups, id, text, closing, slot));
                        return Some((Ok(event), next));
                    }
                    if ended {
                        return None;
                    }
                }
                Err(e) => {
                    let event = Event::default()
                        .event(app::model::STREAM_ERROR_EVENT)
                        .data(e.to_string());
                    return Some((Ok(event), None));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RUN_STREAM_EVERY) => {}
                () = closing.cancelled() => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[utoipa::path(post, path = "/api/v1/groups/runs/{id}/pause", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "Paused: the attempt or operation in flight finishes, nothing new starts", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict))]
pub async fn pause_run(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<GroupRunView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    Ok(Json(state.groups.pause(&id, &who).await?))
}

#[utoipa::path(post, path = "/api/v1/groups/runs/{id}/resume", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "Running again from its position (the check there starts afresh)", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict))]
pub async fn resume_run(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<GroupRunView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    Ok(Json(state.groups.resume(&id, &who, "resume").await?))
}

#[utoipa::path(post, path = "/api/v1/groups/runs/{id}/retry", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "The failed check, action or step tried again", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict))]
pub async fn retry_run(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<GroupRunView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    Ok(Json(state.groups.resume(&id, &who, "retry").await?))
}

/// Why a run is aborted (optional; kept in the audit trail).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/groups/runs/{id}/abort", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    request_body = AbortRequest,
    responses((status = 200, description = "Aborted: the step in flight cancelled (one past its copy finishes), nothing new started; `members` says where each is", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::Unprocessable))]
pub async fn abort_run(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<AbortRequest>, JsonRejection>,
) -> Result<Json<GroupRunView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let req = match body {
        Ok(Json(r)) => r,
        Err(JsonRejection::MissingJsonContentType(_)) => AbortRequest::default(),
        Err(e) => return Err(ApiError::bad_json(&e, "{\"reason\": TEXT} or nothing")),
    };
    if req.reason.chars().count() > 1000 {
        return Err(ApiError::Unprocessable(
            "reason: at most 1000 characters".into(),
        ));
    }
    Ok(Json(state.groups.abort(&id, &who, &req.reason).await?))
}

/// An operator's word on the approval check a run waits at.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// True approves, false refuses (the check fails).
    pub approve: bool,
    /// Why; kept with the operator's name.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/groups/runs/{id}/approve", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    request_body = ApproveRequest,
    responses((status = 200, description = "The word recorded; the run goes on (or, refused, its check fails)", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound, openapi::Conflict, openapi::Unprocessable))]
pub async fn approve_run(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<ApproveRequest>, JsonRejection>,
) -> Result<Json<GroupRunView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let Json(req) =
        body.map_err(|e| ApiError::bad_json(&e, "{\"approve\": true|false, \"reason\": TEXT}"))?;
    Ok(Json(
        state
            .groups
            .approve(&id, &who, req.approve, &req.reason)
            .await?,
    ))
}

/// Why a run is rolled back.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRunRequest {
    /// Kept with the operator's name in the run's reason and the audit.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/groups/runs/{id}/rollback", tag = "groups",
    params(("id" = String, Path, description = "The run's id")),
    request_body = RollbackRunRequest,
    responses((status = 200, description = "Rolling back: the members the run moved return to their kept sources, the last moved first, each by a rollback operation, the step's checks after applied again once it is back; the run ends `rolled_back`", body = GroupRunView),
        openapi::Unauthorized, openapi::Forbidden, openapi::NotFound,
        (status = 409, description = "The run cannot be rolled back now: running (pause it first), an operation in flight, rolling back already, nothing moved, or its sources were not kept (the message says which)", body = super::error::ErrorBody),
        openapi::Unprocessable))]
pub async fn rollback_run(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<RollbackRunRequest>, JsonRejection>,
) -> Result<Json<GroupRunView>, ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let Json(req) = body.map_err(|e| ApiError::bad_json(&e, "{\"reason\": TEXT}"))?;
    Ok(Json(state.groups.roll_back(&id, &who, &req.reason).await?))
}
