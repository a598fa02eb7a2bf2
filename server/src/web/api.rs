//! The JSON API under `/api/v1`. Every route is behind the sign-in gate.

use super::AppState;
use super::error::ApiError;
use super::gate::CurrentUser;
use crate::auth::accounts;
use app::model::{ConsoleInfo, Role, SignedIn, UserRow};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/console", get(console))
        .route("/users", get(users))
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
