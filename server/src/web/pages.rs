//! The Leptos side of the server: the backend the pages' server functions
//! call, and the handlers that render pages and answer server functions.

use super::AppState;
use crate::auth::accounts;
use crate::config::Settings;
use crate::grids::GridMonitor;
use crate::lock::LockState;
use crate::operation::{Engine, store};
use app::backend::{Backend, BackendHandle, BoxFuture};
use app::model::{
    ConsoleInfo, EventView, GridView, LockView, OperationDetail, OperationView, UserRow,
    human_bytes,
};
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use leptos::prelude::provide_context;
use sqlx::SqlitePool;
use std::sync::Arc;

pub fn console_info(settings: &Settings) -> ConsoleInfo {
    ConsoleInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        current_grid: settings.current_grid.as_ref().map(|g| g.to_string()),
        current_app: settings.current_app.as_ref().map(|a| a.to_string()),
        mode: settings.mode,
        config_dir: settings.config_dir.display().to_string(),
        grids_file: settings.grids_file.display().to_string(),
        private_key_file: settings.private_key_file.display().to_string(),
        known_hosts_file: settings.known_hosts_file.display().to_string(),
    }
}

pub struct ConsoleBackend {
    pub settings: Arc<Settings>,
    pub pool: SqlitePool,
    pub grids: Arc<GridMonitor>,
    pub engine: Arc<Engine>,
}

impl Backend for ConsoleBackend {
    fn console_info(&self) -> ConsoleInfo {
        console_info(&self.settings)
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

    fn operations(&self) -> BoxFuture<'_, Result<Vec<OperationView>, String>> {
        Box::pin(async move {
            store::list(&self.pool, 200).await.map_err(|e| {
                tracing::error!(error = %e, "cannot list operations");
                "cannot read the operations; the console's log has the cause".to_owned()
            })
        })
    }

    fn operation(&self, id: String) -> BoxFuture<'_, Result<Option<OperationDetail>, String>> {
        Box::pin(async move {
            let read = async {
                let Some(operation) = store::get(&self.pool, &id).await? else {
                    return Ok(None);
                };
                let rows = store::events_after(&self.pool, &id, 0).await?;
                let mut states = None;
                let events = rows
                    .into_iter()
                    .filter_map(|e| {
                        let text = match e.kind.as_str() {
                            "progress" => {
                                let p = &e.data["progress"];
                                format!(
                                    "{}: {} of {} copied",
                                    p["volume"].as_str().unwrap_or("?"),
                                    human_bytes(p["volume_done"].as_u64().unwrap_or(0)),
                                    human_bytes(p["volume_total"].as_u64().unwrap_or(0))
                                )
                            }
                            "state" => {
                                let s = |k: &str| e.data[k].as_str().unwrap_or("?").to_owned();
                                states = Some((s("source"), s("target"), s("helper")));
                                return None;
                            }
                            _ => e.data["text"].as_str().unwrap_or_default().to_owned(),
                        };
                        Some(EventView {
                            seq: e.seq,
                            at: e.at,
                            kind: e.kind,
                            source: e.source,
                            text,
                        })
                    })
                    .collect();
                Ok::<_, sqlx::Error>(Some(OperationDetail {
                    operation,
                    events,
                    states,
                }))
            };
            read.await.map_err(|e| {
                tracing::error!(error = %e, "cannot read an operation");
                "cannot read the operation; the console's log has the cause".to_owned()
            })
        })
    }

    fn lock(&self) -> Option<LockView> {
        match self.engine.lock_state() {
            Ok(LockState::Held(l)) => Some(LockView {
                op_id: Some(l.op_id.clone()),
                summary: format!(
                    "{} of {}/{} to {}/{} by {} since {}",
                    l.action,
                    l.source_grid,
                    l.source_app_name,
                    l.target_grid,
                    l.target_app_name,
                    l.created_by,
                    l.created_at
                ),
            }),
            Ok(LockState::Unreadable { problem, .. }) => Some(LockView {
                op_id: None,
                summary: format!("the lock file cannot be read: {problem}"),
            }),
            Ok(LockState::Free) => None,
            Err(e) => Some(LockView {
                op_id: None,
                summary: format!("the lock file cannot be read: {e}"),
            }),
        }
    }
}

pub fn backend(
    settings: Arc<Settings>,
    pool: SqlitePool,
    grids: Arc<GridMonitor>,
    engine: Arc<Engine>,
) -> BackendHandle {
    BackendHandle(Arc::new(ConsoleBackend {
        settings,
        pool,
        grids,
        engine,
    }))
}

pub async fn server_fn(State(state): State<AppState>, request: Request) -> impl IntoResponse {
    let backend = state.backend.clone();
    leptos_axum::handle_server_fns_with_context(move || provide_context(backend.clone()), request)
        .await
}
