//! The JSON API under `/api/v1`. Every route is behind the sign-in gate.

use super::AppState;
use super::error::ApiError;
use super::gate::CurrentUser;
use crate::auth::accounts;
use app::model::{AppView, ConsoleInfo, GridView, Role, SignedIn, UserRow};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/console", get(console))
        .route("/users", get(users))
        .route("/grids", get(grids))
        .route("/grids/{grid}/apps", get(grid_apps))
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
