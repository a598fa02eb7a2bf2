//! The JSON API under `/api/v1`. Every route is behind the sign-in gate.

use super::AppState;
use super::error::ApiError;
use super::gate::CurrentUser;
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
        .route("/operations/{id}", get(operation))
        .route("/operations/{id}/events", get(operation_events))
        .route("/lock", get(lock))
        .fallback(|| async { ApiError::NotFound("no such API route; see README.md".into()) })
}

async fn me(user: CurrentUser) -> Json<SignedIn> {
    Json(user.0)
}

async fn console(State(state): State<AppState>, _: CurrentUser) -> Json<ConsoleInfo> {
    Json(super::pages::console_info(&state.settings))
}

async fn users(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<UserRow>>, ApiError> {
    user.require(Role::Admin)?;
    Ok(Json(accounts::list(&state.pool).await?))
}

async fn grids(State(state): State<AppState>, _: CurrentUser) -> Json<Vec<GridView>> {
    Json(state.grids.snapshot())
}

async fn grid_apps(
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

async fn start_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Result<Json<crate::operation::StartRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<app::model::OperationView>), ApiError> {
    let who = user.require(Role::Operator)?.name.clone();
    let Json(req) = body.map_err(|e| {
        ApiError::Unprocessable(format!(
            "{}; send source_grid, source_app, target_grid, target_app and action",
            e.body_text()
        ))
    })?;
    let op = state.engine.start(req, &who).await?;
    Ok((StatusCode::CREATED, Json(op)))
}

async fn operations(
    State(state): State<AppState>,
    _: CurrentUser,
) -> Result<Json<Vec<app::model::OperationView>>, ApiError> {
    Ok(Json(crate::operation::store::list(&state.pool, 200).await?))
}

async fn operation(
    State(state): State<AppState>,
    _: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<app::model::OperationView>, ApiError> {
    crate::operation::store::get(&state.pool, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("there is no operation {id:?}")))
}

/// The stored events (JSON). The live SSE stream builds on the same rows.
async fn operation_events(
    State(state): State<AppState>,
    _: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::operation::store::EventRow>>, ApiError> {
    if crate::operation::store::get(&state.pool, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("there is no operation {id:?}")));
    }
    Ok(Json(
        crate::operation::store::events_after(&state.pool, &id, 0).await?,
    ))
}

async fn lock(
    State(state): State<AppState>,
    _: CurrentUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::lock::LockState;
    match state.engine.lock_state().map_err(anyhow::Error::from)? {
        LockState::Free => Err(ApiError::NotFound(
            "there is no lock: no operation is running".into(),
        )),
        LockState::Held(l) => Ok(Json(serde_json::to_value(l).map_err(anyhow::Error::from)?)),
        LockState::Unreadable { raw, problem } => Ok(Json(
            serde_json::json!({ "unreadable": true, "problem": problem, "raw": raw }),
        )),
    }
}
