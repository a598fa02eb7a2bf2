//! The operation forms of the pages: plain posts answered with redirects,
//! so starting and cancelling work without JavaScript.

use super::AppState;
use super::gate::{CurrentUser, urlencode};
use crate::operation::{EngineError, StartRequest};
use app::model::{Action, Role};
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct NewOperationForm {
    #[serde(default)]
    source_grid: String,
    #[serde(default)]
    source_app: String,
    #[serde(default)]
    target_grid: String,
    #[serde(default)]
    target_app: String,
    #[serde(default)]
    action: String,
}

/// The field an engine refusal is about, so the form shows it there.
pub(crate) fn field_of(message: &str) -> Option<&'static str> {
    if message.starts_with("target_app") || message.starts_with("target app") {
        Some("target_app")
    } else if message.starts_with("source_app") || message.starts_with("there is no app") {
        Some("source_app")
    } else if message.starts_with("source_grid") {
        Some("source_grid")
    } else if message.starts_with("target_grid") {
        Some("target_grid")
    } else if message.starts_with("op_id") {
        Some("op_id")
    } else if message.starts_with("reason") {
        Some("reason")
    } else {
        None
    }
}

fn back(form: &NewOperationForm, error: &str) -> Response {
    let mut to = format!(
        "/operations/new?error={}&source_grid={}&source_app={}&target_grid={}&target_app={}&action={}",
        urlencode(error),
        urlencode(&form.source_grid),
        urlencode(&form.source_app),
        urlencode(&form.target_grid),
        urlencode(&form.target_app),
        urlencode(&form.action)
    );
    if let Some(field) = field_of(error) {
        to.push_str("&field=");
        to.push_str(field);
    }
    Redirect::to(&to).into_response()
}

pub async fn new_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<NewOperationForm>,
) -> Response {
    let who = match user.require(Role::Operator) {
        Ok(u) => u.name.clone(),
        Err(e) => return back(&form, &e.to_string()),
    };
    let action = match form.action.as_str() {
        "migrate" => Action::Migrate,
        "snapshot" => Action::Snapshot,
        _ => return back(&form, "choose migrate or snapshot"),
    };
    let request = StartRequest {
        source_grid: form.source_grid.clone(),
        source_app: form.source_app.clone(),
        target_grid: form.target_grid.clone(),
        target_app: form.target_app.clone(),
        action,
    };
    match state.engine.start(request, &who).await {
        Ok(op) => Redirect::to(&format!("/operations/{}", op.id)).into_response(),
        Err(EngineError::Unexpected(e)) => {
            tracing::error!(error = format!("{e:#}"), "starting an operation failed");
            back(
                &form,
                "the console hit an unexpected error; its log has the cause",
            )
        }
        Err(e) => back(&form, &e.to_string()),
    }
}

pub async fn cancel_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    let monitor = format!("/operations/{}", urlencode(&id));
    let outcome = match user.require(Role::Operator) {
        Ok(u) => state
            .engine
            .cancel(&id, &u.name.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => Redirect::to(&monitor).into_response(),
        Err(e) => Redirect::to(&format!("{monitor}?error={}", urlencode(&e))).into_response(),
    }
}
