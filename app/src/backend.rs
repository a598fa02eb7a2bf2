//! The seam between the pages and the server: server functions the pages
//! call, and (on the server) the [`Backend`] the server plugs in to answer them.
//! Every server function runs behind the server's sign-in gate, so the
//! signed-in user is always in the request's extensions.

use crate::model::GroupRunView;
#[cfg(feature = "ssr")]
use crate::model::Role;
#[cfg(feature = "ssr")]
use crate::model::check_name;
use crate::model::{
    AuditEntry, AuditFilter, ConsoleInfo, FieldError, GridView, LockDetail, LockView, Notice,
    OperationDetail, OperationRequest, OperationView, PlanView, SignedIn, UserRow,
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
pub use ssr::{Backend, BackendHandle, BoxFuture};

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// What the server provides to the pages. Errors are operator-readable text.
    pub trait Backend: Send + Sync + 'static {
        fn console_info(&self) -> ConsoleInfo;
        fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, String>>;
        /// The grids of the inventory as last checked (never waits on SSH).
        fn grids(&self) -> Vec<GridView>;
        fn operations(&self) -> BoxFuture<'_, Result<Vec<OperationView>, String>>;
        /// The migrates whose source is still kept, the nearest deadline first.
        fn kept_sources(&self) -> BoxFuture<'_, Result<Vec<OperationView>, String>>;
        fn operation(&self, id: String) -> BoxFuture<'_, Result<Option<OperationDetail>, String>>;
        /// The lock for banners: marked stale from what the console knows (no SSH).
        fn lock(&self) -> BoxFuture<'_, Option<LockView>>;
        /// The lock with evidence read live from the controllers.
        fn lock_detail(&self) -> BoxFuture<'_, Result<Option<LockDetail>, String>>;
        /// What the operation would do; an error names the field it is about.
        fn plan(&self, request: OperationRequest) -> BoxFuture<'_, Result<PlanView, FieldError>>;
        /// What rolling migrate `id` back would do (its target kept or not:
        /// `None` is the console's default).
        fn plan_rollback(
            &self,
            id: String,
            keep_target: Option<bool>,
        ) -> BoxFuture<'_, Result<PlanView, String>>;
        /// The audit trail, newest first (admins).
        fn audit(&self, filter: AuditFilter) -> BoxFuture<'_, Result<Vec<AuditEntry>, String>>;
        /// What a form's post answered `user_id`, by the id its redirect carried.
        fn notice(&self, user_id: i64, id: &str) -> Option<Notice>;
        /// Group runs, newest first.
        fn group_runs(&self) -> BoxFuture<'_, Result<Vec<GroupRunView>, String>>;
        fn group_run(&self, id: String) -> BoxFuture<'_, Result<Option<GroupRunView>, String>>;
        /// The group definitions kept in the console's directory
        /// (`group-*.toml`), by file name.
        fn group_definitions(&self) -> Vec<String>;
    }

    /// The backend as Leptos context.
    #[derive(Clone)]
    pub struct BackendHandle(pub Arc<dyn Backend>);

    pub(super) fn backend() -> Result<BackendHandle, ServerFnError> {
        use_context::<BackendHandle>()
            .ok_or_else(|| ServerFnError::new("the console backend is not available"))
    }

    pub(super) fn signed_in() -> Result<SignedIn, ServerFnError> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<SignedIn>().cloned())
            .ok_or_else(|| ServerFnError::new("not signed in"))
    }

    /// Refuses the request (and marks the page 403) unless the user has `role`.
    pub(super) fn require(role: Role) -> Result<SignedIn, ServerFnError> {
        let user = signed_in()?;
        if user.role.allows(role) {
            Ok(user)
        } else {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::FORBIDDEN);
            }
            Err(ServerFnError::new(format!(
                "this needs the {role} role; you are signed in as {} ({})",
                user.name, user.role
            )))
        }
    }
}

/// The signed-in user.
#[server(prefix = "/sfn", endpoint = "whoami")]
pub async fn whoami() -> Result<SignedIn, ServerFnError> {
    ssr::signed_in()
}

/// How this console is configured.
#[server(prefix = "/sfn", endpoint = "console_settings")]
pub async fn console_settings() -> Result<ConsoleInfo, ServerFnError> {
    ssr::signed_in()?;
    Ok(ssr::backend()?.0.console_info())
}

/// The audit trail (admins only).
#[server(prefix = "/sfn", endpoint = "audit")]
pub async fn audit_trail(filter: AuditFilter) -> Result<Vec<AuditEntry>, ServerFnError> {
    ssr::require(Role::Admin)?;
    ssr::backend()?
        .0
        .audit(filter)
        .await
        .map_err(ServerFnError::new)
}

/// All user accounts (admins only).
#[server(prefix = "/sfn", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserRow>, ServerFnError> {
    ssr::require(Role::Admin)?;
    ssr::backend()?
        .0
        .list_users()
        .await
        .map_err(ServerFnError::new)
}

/// The grids of the inventory, as the background check last saw them.
#[server(prefix = "/sfn", endpoint = "grids")]
pub async fn list_grids() -> Result<Vec<GridView>, ServerFnError> {
    ssr::signed_in()?;
    Ok(ssr::backend()?.0.grids())
}

/// One grid with its apps.
#[server(prefix = "/sfn", endpoint = "grid")]
pub async fn grid_detail(name: String) -> Result<GridView, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .grids()
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::NOT_FOUND);
            }
            ServerFnError::new(format!("there is no grid {name:?} in the inventory"))
        })
}

/// The migrates whose source is still kept, the nearest deadline first.
#[server(prefix = "/sfn", endpoint = "kept")]
pub async fn list_kept_sources() -> Result<Vec<OperationView>, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .kept_sources()
        .await
        .map_err(ServerFnError::new)
}

/// Operations, newest first.
#[server(prefix = "/sfn", endpoint = "operations")]
pub async fn list_operations() -> Result<Vec<OperationView>, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .operations()
        .await
        .map_err(ServerFnError::new)
}

/// One operation with its events.
#[server(prefix = "/sfn", endpoint = "operation")]
pub async fn get_operation(id: String) -> Result<OperationDetail, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .operation(id.clone())
        .await
        .map_err(ServerFnError::new)?
        .ok_or_else(|| {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::NOT_FOUND);
            }
            ServerFnError::new(format!("there is no operation {id:?}"))
        })
}

/// What a form's post answered the signed-in user (`?notice=ID`): `None`
/// when the id is unknown, expired or someone else's.
#[server(prefix = "/sfn", endpoint = "notice")]
pub async fn get_notice(id: String) -> Result<Option<Notice>, ServerFnError> {
    let user = ssr::signed_in()?;
    Ok(ssr::backend()?.0.notice(user.user_id, &id))
}

/// The lock, if one is held.
#[server(prefix = "/sfn", endpoint = "lock")]
pub async fn current_lock() -> Result<Option<LockView>, ServerFnError> {
    ssr::signed_in()?;
    Ok(ssr::backend()?.0.lock().await)
}

/// The lock with the evidence an admin needs (controllers asked now).
#[server(prefix = "/sfn", endpoint = "lock_evidence")]
pub async fn lock_evidence() -> Result<Option<LockDetail>, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .lock_detail()
        .await
        .map_err(ServerFnError::new)
}

/// The pre-flight preview of an operation: what it will do, or the field
/// that is wrong and why. Operators only.
#[server(prefix = "/sfn", endpoint = "preview")]
pub async fn preview_operation(
    request: OperationRequest,
) -> Result<Result<PlanView, FieldError>, ServerFnError> {
    ssr::require(Role::Operator)?;
    Ok(ssr::backend()?.0.plan(request).await)
}

/// The preview of rolling migrate `id` back into its kept source: how much
/// its target changed since the cutover, and the commands. Operators only.
#[server(prefix = "/sfn", endpoint = "preview_rollback")]
pub async fn preview_rollback(
    id: String,
    keep_target: Option<bool>,
) -> Result<Result<PlanView, String>, ServerFnError> {
    ssr::require(Role::Operator)?;
    Ok(ssr::backend()?.0.plan_rollback(id, keep_target).await)
}

/// Checks a target app name as the operator types: the name rules, then
/// whether the target grid (as last checked) already has such an app (to
/// update one, whether it has). `None` means no objection.
#[server(prefix = "/sfn", endpoint = "check_target")]
pub async fn check_target(
    target_grid: String,
    target_app: String,
    update: bool,
) -> Result<Option<String>, ServerFnError> {
    ssr::signed_in()?;
    if let Err(e) = check_name(&target_app) {
        return Ok(Some(e));
    }
    let taken = ssr::backend()?
        .0
        .grids()
        .into_iter()
        .find(|g| g.name == target_grid)
        .is_some_and(|g| g.apps.iter().any(|a| a.name == target_app));
    Ok(match (taken, update) {
        (true, false) => Some(format!(
            "{target_app} already exists on grid {target_grid}; pick another name, or update it"
        )),
        (false, true) => Some(format!(
            "there is no {target_app} on grid {target_grid} to update"
        )),
        _ => None,
    })
}

/// Group runs, newest first.
#[server(prefix = "/sfn", endpoint = "group_runs")]
pub async fn list_group_runs() -> Result<Vec<GroupRunView>, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .group_runs()
        .await
        .map_err(ServerFnError::new)
}

/// One group run, as the API shows it.
#[server(prefix = "/sfn", endpoint = "group_run")]
pub async fn get_group_run(id: String) -> Result<GroupRunView, ServerFnError> {
    ssr::signed_in()?;
    ssr::backend()?
        .0
        .group_run(id.clone())
        .await
        .map_err(ServerFnError::new)?
        .ok_or_else(|| {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::NOT_FOUND);
            }
            ServerFnError::new(format!("there is no group run {id:?}"))
        })
}

/// The group definitions kept in the console's directory, by file name.
#[server(prefix = "/sfn", endpoint = "group_definitions")]
pub async fn list_group_definitions() -> Result<Vec<String>, ServerFnError> {
    ssr::signed_in()?;
    Ok(ssr::backend()?.0.group_definitions())
}
