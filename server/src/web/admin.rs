//! The admin forms of the pages: user management and the lock override.
//! Plain posts answered with redirects, so they work without JavaScript;
//! the answer travels in the query (`ok=` or `error=` with the `field=` it
//! concerns). Every change is audited.

use super::AppState;
use super::gate::{CurrentUser, urlencode};
use crate::auth::{accounts, password};
use crate::operation::EngineError;
use app::model::Role;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

fn to(page: &str, key: &str, text: &str, field: Option<&str>) -> Response {
    let mut url = format!("{page}?{key}={}", urlencode(text));
    if let Some(f) = field {
        url.push_str("&field=");
        url.push_str(f);
    }
    Redirect::to(&url).into_response()
}

fn unexpected(page: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "an admin form failed");
    to(
        page,
        "error",
        "the console hit an unexpected error; its log has the cause",
        None,
    )
}

#[derive(Deserialize)]
pub struct AddUser {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn add_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<AddUser>,
) -> Response {
    let admin = match user.require(Role::Admin) {
        Ok(u) => u.name.clone(),
        Err(e) => return to("/users", "error", &e.to_string(), None),
    };
    let name = form.name.trim();
    if let Err(e) = accounts::check_name(name) {
        return to("/users", "error", &e.to_string(), Some("name"));
    }
    let Ok(role) = form.role.parse::<Role>() else {
        return to(
            "/users",
            "error",
            "choose a role: viewer, operator or admin",
            Some("role"),
        );
    };
    if let Err(e) = password::check_strength(&form.password) {
        return to("/users", "error", &e, Some("password"));
    }
    let hash = match password::hash(form.password).await {
        Ok(h) => h,
        Err(e) => return unexpected("/users", e),
    };
    match accounts::create(&state.pool, name, role, &hash).await {
        Ok(_) => {}
        Err(accounts::AccountError::Exists(n)) => {
            return to(
                "/users",
                "error",
                &format!("user {n} already exists; pick another name"),
                Some("name"),
            );
        }
        Err(e) => return unexpected("/users", e),
    }
    audit(&state, &admin, "user.add", &format!("{name} as {role}")).await;
    to("/users", "ok", &format!("added {name} as {role}"), None)
}

#[derive(Deserialize)]
pub struct ChangeUser {
    /// `role`, `disable`, `enable` or `password`.
    #[serde(default)]
    change: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn change_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(name): Path<String>,
    Form(form): Form<ChangeUser>,
) -> Response {
    let admin = match user.require(Role::Admin) {
        Ok(u) => u.name.clone(),
        Err(e) => return to("/users", "error", &e.to_string(), None),
    };
    let (done, said) = match form.change.as_str() {
        "role" => match form.role.parse::<Role>() {
            Ok(role) => (
                accounts::set_role(&state.pool, &name, role).await,
                format!("{name} is now {role}"),
            ),
            Err(_) => {
                return to("/users", "error", "choose viewer, operator or admin", None);
            }
        },
        "disable" => (
            accounts::set_disabled(&state.pool, &name, true).await,
            format!("disabled {name}: their sessions and tokens stop working"),
        ),
        "enable" => (
            accounts::set_disabled(&state.pool, &name, false).await,
            format!("enabled {name}"),
        ),
        "password" => {
            if let Err(e) = password::check_strength(&form.password) {
                return to("/users", "error", &format!("{name}: {e}"), None);
            }
            match password::hash(form.password).await {
                Ok(hash) => (
                    accounts::set_password(&state.pool, &name, &hash).await,
                    format!("set a new password for {name}; their sessions ended"),
                ),
                Err(e) => return unexpected("/users", e),
            }
        }
        other => {
            return to(
                "/users",
                "error",
                &format!("unknown change {other:?}: use role, disable, enable or password"),
                None,
            );
        }
    };
    match done {
        Ok(()) => {
            audit(&state, &admin, &format!("user.{}", form.change), &said).await;
            to("/users", "ok", &said, None)
        }
        Err(e @ (accounts::AccountError::NoSuchUser(_) | accounts::AccountError::LastAdmin(_))) => {
            to("/users", "error", &e.to_string(), None)
        }
        Err(e) => unexpected("/users", e),
    }
}

#[derive(Deserialize)]
pub struct OverrideForm {
    #[serde(default)]
    op_id: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    destroy_helper: Option<String>,
}

pub async fn override_lock(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<OverrideForm>,
) -> Response {
    let admin = match user.require(Role::Admin) {
        Ok(u) => u.name.clone(),
        Err(e) => return to("/lock", "error", &e.to_string(), None),
    };
    let done = state
        .engine
        .override_lock(
            form.op_id.trim(),
            &form.reason,
            &admin,
            form.destroy_helper.is_some(),
        )
        .await;
    match done {
        Ok(o) => to(
            "/lock",
            "ok",
            &format!(
                "the lock of {} is overridden and archived to {}{}",
                o.op_id,
                o.archived_to,
                if o.helper_destroyed {
                    "; the helper was destroyed"
                } else {
                    ""
                }
            ),
            None,
        ),
        Err(EngineError::Unexpected(e)) => unexpected("/lock", format!("{e:#}")),
        Err(e) => to("/lock", "error", &e.to_string(), e.field_name()),
    }
}

async fn audit(state: &AppState, actor: &str, action: &str, detail: &str) {
    if let Err(e) = crate::db::audit(&state.pool, actor, action, detail).await {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}
