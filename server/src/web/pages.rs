//! The Leptos side of the server: the backend the pages' server functions
//! call, and the handlers that render pages and answer server functions.

use super::AppState;
use super::error::ApiError;
use crate::auth::accounts;
use crate::config::Settings;
use crate::grids::GridMonitor;
use crate::operation::{Engine, store};
use crate::operation::{EngineError, StartRequest};
use app::backend::{Backend, BackendHandle, BoxFuture};
use app::model::{
    AuditEntry, AuditFilter, ConsoleInfo, FieldError, GridView, LockDetail, LockView, MonitorState,
    OperationDetail, OperationRequest, OperationView, PlanView, UserRow,
};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use leptos::prelude::provide_context;
use sqlx::SqlitePool;
use std::sync::Arc;

/// Events folded at a time into a monitor's starting state.
const FOLD_PAGE: i64 = 1000;

pub fn console_info(settings: &Settings, engine: &Engine) -> ConsoleInfo {
    ConsoleInfo {
        snapshot_copy_of: engine.snapshot_copy_of(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        current_grid: settings.current_grid.as_ref().map(|g| g.to_string()),
        current_app: settings.current_app.as_ref().map(|a| a.to_string()),
        mode: settings.mode,
        config_dir: settings.config_dir.display().to_string(),
        grids_file: settings.grids_file.display().to_string(),
        private_key_file: settings.private_key_file.display().to_string(),
        known_hosts_file: settings.known_hosts_file.display().to_string(),
        keep_source: settings.keep_source,
        keep_source_hours: settings.keep_source_hours,
        warm_pass_limit: settings.warm_pass_limit,
        warm_converged_mib: settings.warm_converged_mib,
        warm_at_pass_limit: settings.warm_at_pass_limit,
    }
}

pub struct ConsoleBackend {
    pub settings: Arc<Settings>,
    pub pool: SqlitePool,
    pub grids: Arc<GridMonitor>,
    pub engine: Arc<Engine>,
    pub groups: Arc<crate::groups::Groups>,
    pub notices: Arc<super::notices::Notices>,
}

impl Backend for ConsoleBackend {
    fn notice(&self, user_id: i64, id: &str) -> Option<app::model::Notice> {
        self.notices.get(user_id, id)
    }

    fn group_runs(&self) -> BoxFuture<'_, Result<Vec<app::model::GroupRunView>, String>> {
        Box::pin(async move {
            self.groups.list().await.map_err(|e| {
                tracing::error!(error = %e, "cannot list group runs");
                "cannot read the group runs; the console's log has the cause".to_owned()
            })
        })
    }

    fn group_run(
        &self,
        id: String,
    ) -> BoxFuture<'_, Result<Option<app::model::GroupRunView>, String>> {
        Box::pin(async move {
            match self.groups.view(&id).await {
                Ok(run) => Ok(Some(run)),
                Err(crate::groups::GroupError::NoSuchRun(_)) => Ok(None),
                Err(e) => {
                    tracing::error!(run = %id, error = %e, "cannot read a group run");
                    Err("cannot read the group run; the console's log has the cause".to_owned())
                }
            }
        })
    }

    fn group_definitions(&self) -> Vec<String> {
        crate::groups::files::kept(&self.settings.config_dir)
    }

    fn console_info(&self) -> ConsoleInfo {
        console_info(&self.settings, &self.engine)
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, String>> {
        Box::pin(async move {
            accounts::list(&self.pool).await.map_err(|e| {
                tracing::error!(error = %e, "cannot list users");
                "cannot read the user list; the console's log has the cause".to_owned()
            })
        })
    }

    fn grids(&self) -> Vec<GridView> {
        self.grids.snapshot()
    }

    fn audit(&self, filter: AuditFilter) -> BoxFuture<'_, Result<Vec<AuditEntry>, String>> {
        Box::pin(async move {
            crate::db::audit_entries(&self.pool, &filter)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot read the audit trail");
                    "cannot read the audit trail; the console's log has the cause".to_owned()
                })
        })
    }

    fn operations(&self) -> BoxFuture<'_, Result<Vec<OperationView>, String>> {
        Box::pin(async move {
            store::list(&self.pool, 200).await.map_err(|e| {
                tracing::error!(error = %e, "cannot list operations");
                "cannot read the operations; the console's log has the cause".to_owned()
            })
        })
    }

    fn plan_rollback(
        &self,
        id: String,
        keep_target: Option<bool>,
    ) -> BoxFuture<'_, Result<PlanView, String>> {
        Box::pin(async move {
            let req = crate::operation::RollbackRequest {
                keep_target,
                ..Default::default()
            };
            self.engine
                .plan_rollback(&id, &req)
                .await
                .map_err(|e| match e {
                    EngineError::Unexpected(e) => {
                        tracing::error!(error = format!("{e:#}"), "a rollback's pre-flight failed");
                        "the console hit an unexpected error; its log has the cause".to_owned()
                    }
                    other => other.to_string(),
                })
        })
    }

    fn kept_sources(&self) -> BoxFuture<'_, Result<Vec<OperationView>, String>> {
        Box::pin(async move {
            store::with_kept_source(&self.pool).await.map_err(|e| {
                tracing::error!(error = %e, "cannot list the kept sources");
                "cannot read the kept sources; the console's log has the cause".to_owned()
            })
        })
    }

    fn operation(&self, id: String) -> BoxFuture<'_, Result<Option<OperationDetail>, String>> {
        Box::pin(async move {
            let read = async {
                let Some(operation) = store::get(&self.pool, &id).await? else {
                    return Ok(None);
                };
                // Folded a page at a time: a long log never sits whole in memory.
                let mut state = MonitorState::new(&operation);
                // What this console's helpers take as converged.
                state.converged_bytes = Some(self.settings.warm_converged_mib << 20);
                loop {
                    let page =
                        store::events_page(&self.pool, &id, state.last_seq, FOLD_PAGE).await?;
                    page.iter().for_each(|e| state.apply(e));
                    if (page.len() as i64) < FOLD_PAGE {
                        break;
                    }
                }
                let console_moves_to = console_moves_to(&self.settings, &operation);
                Ok::<_, sqlx::Error>(Some(OperationDetail {
                    operation,
                    state,
                    console_moves_to,
                }))
            };
            read.await.map_err(|e| {
                tracing::error!(error = %e, "cannot read an operation");
                "cannot read the operation; the console's log has the cause".to_owned()
            })
        })
    }

    fn lock_detail(&self) -> BoxFuture<'_, Result<Option<LockDetail>, String>> {
        self.lock_detail_now()
    }

    fn plan(&self, request: OperationRequest) -> BoxFuture<'_, Result<PlanView, FieldError>> {
        self.plan_now(request)
    }

    fn lock(&self) -> BoxFuture<'_, Option<LockView>> {
        Box::pin(async move {
            match self.engine.lock_detail(false).await {
                Ok(None) => None,
                Ok(Some(d)) => Some(LockView {
                    summary: match &d.op_id {
                        Some(_) => {
                            let f = |k: &str| {
                                d.fields
                                    .iter()
                                    .find(|(key, _)| key == k)
                                    .map(|(_, v)| v.as_str())
                                    .unwrap_or("?")
                            };
                            format!(
                                "{} — {} of {}/{} to {}/{} by {} since {}",
                                f("op_id"),
                                f("action"),
                                f("source_grid"),
                                f("source_app_name"),
                                f("target_grid"),
                                f("target_app_name"),
                                f("created_by"),
                                f("created_at")
                            )
                        }
                        None => format!(
                            "the lock file cannot be read: {}",
                            d.problem.as_deref().unwrap_or("?")
                        ),
                    },
                    op_id: d.op_id,
                    stale: d.stale,
                }),
                Err(e) => Some(LockView {
                    op_id: None,
                    summary: format!("the lock file cannot be read: {e}"),
                    stale: Some(e.to_string()),
                }),
            }
        })
    }
}

impl ConsoleBackend {
    fn lock_detail_now(&self) -> BoxFuture<'_, Result<Option<LockDetail>, String>> {
        Box::pin(async move {
            self.engine.lock_detail(true).await.map_err(|e| match e {
                EngineError::Unexpected(e) => {
                    tracing::error!(error = format!("{e:#}"), "cannot read the lock's evidence");
                    "cannot read the lock; the console's log has the cause".to_owned()
                }
                other => other.to_string(),
            })
        })
    }

    fn plan_now(&self, r: OperationRequest) -> BoxFuture<'_, Result<PlanView, FieldError>> {
        Box::pin(async move {
            let req = StartRequest {
                source_grid: r.source_grid,
                source_app: r.source_app,
                target_grid: r.target_grid,
                target_app: r.target_app,
                action: r.action,
                update_target: r.update_target,
                warm: r.warm,
                cutover: r.cutover.filter(|_| r.warm),
                cutover_at: r
                    .cutover_at
                    .as_deref()
                    .and_then(crate::operation::form_time)
                    .filter(|_| r.warm),
                stop_timeout_secs: r.stop_timeout_secs,
                keep_source: r.keep_source,
                keep_source_hours: r.keep_source_hours,
                rollback_of: None,
            };
            self.engine.plan(&req).await.map_err(|e| {
                let field = e.field_name().map(str::to_owned);
                let message = match e {
                    EngineError::Unexpected(e) => {
                        tracing::error!(error = format!("{e:#}"), "pre-flight failed");
                        "the console hit an unexpected error; its log has the cause".to_owned()
                    }
                    other => other.to_string(),
                };
                FieldError { field, message }
            })
        })
    }
}

/// When this console lives inside the operation's source app, it stops
/// with it: where it answers again (the target for a migrate; the source's
/// own grid for a snapshot).
fn console_moves_to(settings: &Settings, op: &app::model::OperationView) -> Option<String> {
    let place = crate::reconcile::Place::among(
        (&op.source_grid, &op.source_app),
        (&op.target_grid, &op.target_app),
        settings.current_grid.as_ref().map(|g| g.as_str()),
        settings.current_app.as_ref().map(|a| a.as_str()),
    );
    (place == crate::reconcile::Place::InSource).then(|| match op.action {
        app::model::Action::Migrate | app::model::Action::Rollback => op.target_grid.clone(),
        app::model::Action::Snapshot => op.source_grid.clone(),
    })
}

pub fn backend(
    settings: Arc<Settings>,
    pool: SqlitePool,
    grids: Arc<GridMonitor>,
    engine: Arc<Engine>,
    groups: Arc<crate::groups::Groups>,
    notices: Arc<super::notices::Notices>,
) -> BackendHandle {
    BackendHandle(Arc::new(ConsoleBackend {
        settings,
        pool,
        grids,
        engine,
        groups,
        notices,
    }))
}

/// Server-function arguments are a few names: a body past this is refused.
const MAX_SFN_BODY: usize = 64 << 10;

pub async fn server_fn(State(state): State<AppState>, request: Request) -> impl IntoResponse {
    let backend = state.backend.clone();
    leptos_axum::handle_server_fns_with_context(move || provide_context(backend.clone()), request)
        .await
}

/// Around every server function (`/sfn/…`, whichever route Leptos answers
/// it on): a request the function cannot decode (a missing or unknown
/// argument) or a body too large is the client's mistake, answered 422 or
/// 413 with what was wrong instead of Leptos's 500.
pub async fn server_fn_mistakes(request: Request, next: axum::middleware::Next) -> Response {
    if !request.uri().path().starts_with("/sfn/") {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_SFN_BODY) {
        return ApiError::TooLarge(format!(
            "the request body is larger than {MAX_SFN_BODY} bytes"
        ))
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let limited = axum::body::Body::new(http_body_util::Limited::new(body, MAX_SFN_BODY));
    let response = next.run(Request::from_parts(parts, limited)).await;
    if response.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_SFN_BODY)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    match text.split_once('|') {
        Some(("Args" | "MissingArg" | "Deserialization", why)) => {
            ApiError::Unprocessable(format!("the request's arguments cannot be read: {why}"))
                .into_response()
        }
        _ => Response::from_parts(parts, axum::body::Body::from(bytes)),
    }
}
