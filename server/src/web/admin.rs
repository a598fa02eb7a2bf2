//! The admin forms of the pages: user management and the lock override.
//! Plain posts answered with redirects, so they work without JavaScript;
//! the answer is a [`Notice`] the page they redirect to shows. Every change
//! is audited.

use super::AppState;
use super::gate::CurrentUser;
use crate::auth::add_user::{self, AddUserError};
use crate::auth::{accounts, password};
use crate::operation::EngineError;
use app::model::{Notice, Role};
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

fn to(state: &AppState, user: &CurrentUser, page: &str, notice: Notice) -> Response {
    state.notices.redirect(page, &user.0, notice)
}

fn refused(
    state: &AppState,
    user: &CurrentUser,
    page: &str,
    text: &str,
    field: Option<&str>,
) -> Response {
    to(state, user, page, Notice::refused(text, field))
}

fn unexpected(
    state: &AppState,
    user: &CurrentUser,
    page: &str,
    e: impl std::fmt::Display,
) -> Response {
    tracing::error!(error = %e, "an admin form failed");
    refused(
        state,
        user,
        page,
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
        Err(e) => return refused(&state, &user, "/users", &e.to_string(), None),
    };
    let name = form.name.trim();
    let Ok(role) = form.role.parse::<Role>() else {
        return refused(
            &state,
            &user,
            "/users",
            "choose a role: viewer, operator or admin",
            Some("role"),
        );
    };
    match add_user::add_user(&state.pool, &admin, name, role, form.password, None).await {
        Ok(_) => to(
            &state,
            &user,
            "/users",
            Notice::done(format!("added {name} as {role}")),
        ),
        Err(e @ (AddUserError::Hash(_) | AddUserError::Audit { .. })) => {
            unexpected(&state, &user, "/users", e)
        }
        Err(AddUserError::Account(accounts::AccountError::Database(e))) => {
            unexpected(&state, &user, "/users", e)
        }
        Err(e) => refused(&state, &user, "/users", &e.to_string(), e.field()),
    }
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
        Err(e) => return refused(&state, &user, "/users", &e.to_string(), None),
    };
    let (done, said) = match form.change.as_str() {
        "role" => match form.role.parse::<Role>() {
            Ok(role) => (
                accounts::set_role(&state.pool, &name, role).await,
                format!("{name} is now {role}"),
            ),
            Err(_) => {
                return refused(
                    &state,
                    &user,
                    "/users",
                    "choose viewer, operator or admin",
                    None,
                );
            }
        },
        "disable" if name == admin => {
            return refused(
                &state,
                &user,
                "/users",
                "you cannot disable your own account (you would be signed out with no way back in); another admin can",
                None,
            );
        }
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
                return refused(&state, &user, "/users", &format!("{name}: {e}"), None);
            }
            match password::hash(form.password).await {
                Ok(hash) => (
                    accounts::set_password(&state.pool, &name, &hash).await,
                    format!("set a new password for {name}; their sessions ended"),
                ),
                Err(e) => return unexpected(&state, &user, "/users", e),
            }
        }
        other => {
            return refused(
                &state,
                &user,
                "/users",
                &format!("unknown change {other:?}: use role, disable, enable or password"),
                None,
            );
        }
    };
    match done {
        Ok(()) => {
            audit(&state, &admin, &format!("user.{}", form.change), &said).await;
            to(&state, &user, "/users", Notice::done(said.clone()))
        }
        Err(e @ (accounts::AccountError::NoSuchUser(_) | accounts::AccountError::LastAdmin(_))) => {
            refused(&state, &user, "/users", &e.to_string(), None)
        }
        Err(e) => unexpected(&state, &user, "/users", e),
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
        Err(e) => return refused(&state, &user, "/lock", &e.to_string(), None),
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
            &state,
            &user,
            "/lock",
            Notice::done(format!(
                "the lock of {} is overridden and archived to {}{}",
                o.op_id,
                o.archived_to,
                if o.helper_destroyed {
                    "; the helper was destroyed"
                } else {
                    ""
                }
            )),
        ),
        Err(EngineError::Unexpected(e)) => unexpected(&state, &user, "/lock", format!("{e:#}")),
        Err(e) => refused(&state, &user, "/lock", &e.to_string(), e.field_name()),
    }
}

async fn audit(state: &AppState, actor: &str, action: &str, detail: &str) {
    if let Err(e) = crate::db::audit(&state.pool, actor, action, detail).await {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}
