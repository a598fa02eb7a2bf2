//! The operation forms of the pages: plain posts answered with redirects,
//! so starting and cancelling work without JavaScript.

use super::AppState;
use super::gate::{CurrentUser, urlencode};
use crate::operation::{EngineError, StartRequest, form_time};
use app::model::{Action, Cutover, Notice, Role};
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
    /// "1" (the checkbox) when the existing target is updated.
    #[serde(default)]
    update_target: String,
    /// "1": warm (pre-copy while the source runs).
    #[serde(default)]
    warm: String,
    #[serde(default)]
    cutover: String,
    /// A `datetime-local` value, UTC.
    #[serde(default)]
    cutover_at: String,
    /// Seconds; empty: the default.
    #[serde(default)]
    stop_timeout_secs: String,
    /// "1" keeps a migrate's source, "0" destroys it; empty: the console's default.
    #[serde(default)]
    keep_source: String,
    /// Hours; empty: the console's default.
    #[serde(default)]
    keep_source_hours: String,
}

/// The longest value a field is echoed back with (names are 64 at most).
const ECHO_MAX: usize = 64;

fn echo(value: &str) -> String {
    urlencode(&value.chars().take(ECHO_MAX).collect::<String>())
}

/// Back to the form, its values echoed and the refusal as a notice.
fn back(
    state: &AppState,
    user: &CurrentUser,
    form: &NewOperationForm,
    error: &str,
    field: Option<&str>,
) -> Response {
    let mut to = format!(
        "/operations/new?source_grid={}&source_app={}&target_grid={}&target_app={}&action={}",
        echo(&form.source_grid),
        echo(&form.source_app),
        echo(&form.target_grid),
        echo(&form.target_app),
        echo(&form.action)
    );
    if !form.update_target.is_empty() {
        to.push_str("&update_target=1");
    }
    if !form.stop_timeout_secs.is_empty() {
        to.push_str("&stop_timeout_secs=");
        to.push_str(&echo(&form.stop_timeout_secs));
    }
    if !form.keep_source.is_empty() || !form.keep_source_hours.is_empty() {
        to.push_str("&keep_source=");
        to.push_str(&echo(&form.keep_source));
        to.push_str("&keep_source_hours=");
        to.push_str(&echo(&form.keep_source_hours));
    }
    if form.warm == "1" {
        to.push_str("&warm=1&cutover=");
        to.push_str(&echo(&form.cutover));
        to.push_str("&cutover_at=");
        to.push_str(&echo(&form.cutover_at));
    }
    state
        .notices
        .redirect(&to, &user.0, Notice::refused(error, field))
}

pub async fn new_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<NewOperationForm>,
) -> Response {
    let who = match user.require(Role::Operator) {
        Ok(u) => u.name.clone(),
        Err(e) => return back(&state, &user, &form, &e.to_string(), None),
    };
    // Names are 64 characters at most: a longer value is refused here,
    // before anything echoes it back.
    for (field, value) in [
        ("source_grid", &form.source_grid),
        ("source_app", &form.source_app),
        ("target_grid", &form.target_grid),
        ("target_app", &form.target_app),
    ] {
        let n = value.chars().count();
        if n > ECHO_MAX {
            let error = format!("{field}: {n} characters is too long: 64 at most");
            return back(&state, &user, &form, &error, Some(field));
        }
    }
    let Ok(action) = form.action.parse::<Action>() else {
        return back(&state, &user, &form, "choose migrate or snapshot", None);
    };
    let warm = form.warm == "1";
    let cutover = match form.cutover.as_str() {
        "" => None,
        c => match c.parse::<Cutover>() {
            Ok(c) => Some(c),
            Err(e) => return back(&state, &user, &form, &e.to_string(), Some("cutover")),
        },
    };
    let stop_timeout_secs = match form.stop_timeout_secs.trim() {
        "" => None,
        t => match t.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let error = format!(
                    "stop_timeout_secs: write a whole number of seconds, 1 to {}, or leave it empty for {}",
                    operation_model::MAX_STOP_TIMEOUT_SECS,
                    operation_model::DEFAULT_STOP_TIMEOUT_SECS
                );
                return back(&state, &user, &form, &error, Some("stop_timeout_secs"));
            }
        },
    };
    let keep_source = match form.keep_source.as_str() {
        "" => None,
        "1" => Some(true),
        "0" => Some(false),
        _ => {
            let error = "keep_source: choose whether the source is kept or destroyed";
            return back(&state, &user, &form, error, Some("keep_source"));
        }
    };
    let keep_source_hours = match form.keep_source_hours.trim() {
        "" => None,
        _ if keep_source == Some(false) || action == Action::Snapshot => None,
        t => match t.parse::<u64>() {
            Ok(h) => Some(h),
            Err(_) => {
                let error = format!(
                    "keep_source_hours: write a whole number of hours, 1 to {}, or leave it empty for the console's",
                    operation_model::MAX_KEEP_SOURCE_HOURS
                );
                return back(&state, &user, &form, &error, Some("keep_source_hours"));
            }
        },
    };
    let request = StartRequest {
        source_grid: form.source_grid.clone(),
        source_app: form.source_app.clone(),
        target_grid: form.target_grid.clone(),
        target_app: form.target_app.clone(),
        action,
        update_target: !form.update_target.is_empty(),
        warm,
        // A cold operation's form still carries the (hidden) cutover fields.
        cutover: cutover.filter(|_| warm),
        // The time only with a scheduled cutover: hidden otherwise, it may
        // still carry what was typed before another choice.
        cutover_at: form_time(&form.cutover_at)
            .filter(|_| warm && cutover == Some(operation_model::Cutover::Scheduled)),
        stop_timeout_secs,
        // A snapshot's form still carries the (migrate-only) keep choice.
        keep_source: keep_source.filter(|_| action == Action::Migrate),
        keep_source_hours,
        rollback_of: None,
    };
    match state.engine.start(request, &who).await {
        Ok(op) => Redirect::to(&format!("/operations/{}", op.id)).into_response(),
        Err(EngineError::Unexpected(e)) => {
            tracing::error!(error = format!("{e:#}"), "starting an operation failed");
            back(
                &state,
                &user,
                &form,
                "the console hit an unexpected error; its log has the cause",
                None,
            )
        }
        Err(e) => back(&state, &user, &form, &e.to_string(), e.field_name()),
    }
}

pub async fn cancel_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    let result = match user.require(Role::Operator) {
        Ok(u) => state.engine.cancel(&id, &u.name.clone()).await.map(drop),
        Err(e) => return back_to_monitor(&state, &user, &id, Err(e.to_string())),
    };
    back_to_monitor(&state, &user, &id, result.map_err(|e| e.to_string()))
}

/// "Cut over now" from the monitor.
pub async fn cutover_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    let result = match user.require(Role::Operator) {
        Ok(u) => state.engine.cutover(&id, &u.name.clone()).await.map(drop),
        Err(e) => return back_to_monitor(&state, &user, &id, Err(e.to_string())),
    };
    back_to_monitor(&state, &user, &id, result.map_err(|e| e.to_string()))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    /// "1" keeps the migrate's target, "0" destroys it; empty: the console's default.
    #[serde(default)]
    keep_target: String,
}

/// "Roll back" from the rollback preview: to the new operation's monitor,
/// or back to the preview with the refusal.
pub async fn rollback_operation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let page = format!("/operations/{}/rollback", urlencode(&id));
    let who = match operator_or_back(&state, &user, &page) {
        Ok(who) => who,
        Err(back) => return *back,
    };
    let req = crate::operation::RollbackRequest {
        keep_target: match form.keep_target.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        },
        ..Default::default()
    };
    match state.engine.rollback(&id, &who, &req).await {
        Ok(op) => Redirect::to(&format!("/operations/{}", urlencode(&op.id))).into_response(),
        Err(e) => state
            .notices
            .redirect(&page, &user.0, Notice::refused(e.to_string(), None)),
    }
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    #[serde(default)]
    reason: String,
}

/// "Release the kept source" from the operation's page.
pub async fn release_source(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ReleaseForm>,
) -> Response {
    let result = match user.require(Role::Operator) {
        Ok(u) => state
            .engine
            .release_source(&id, &u.name.clone(), &form.reason, false)
            .await
            .map(drop),
        Err(e) => return back_to_monitor(&state, &user, &id, Err(e.to_string())),
    };
    back_to_monitor(&state, &user, &id, result.map_err(|e| e.to_string()))
}

/// Back to the operation's monitor, with the refusal when there is one.
fn back_to_monitor(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    result: Result<(), String>,
) -> Response {
    let monitor = format!("/operations/{}", urlencode(id));
    match result {
        Ok(()) => Redirect::to(&monitor).into_response(),
        Err(e) => state
            .notices
            .redirect(&monitor, &user.0, Notice::refused(e, None)),
    }
}

/// The operator's name, or back to `page` saying that this needs the
/// operator role.
pub(super) fn operator_or_back(
    state: &AppState,
    user: &CurrentUser,
    page: &str,
) -> Result<String, Box<Response>> {
    user.require(Role::Operator)
        .map(|u| u.name.clone())
        .map_err(|e| {
            Box::new(
                state
                    .notices
                    .redirect(page, &user.0, Notice::refused(e.to_string(), None)),
            )
        })
}
