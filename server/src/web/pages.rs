//! The Leptos side of the server: the backend the pages' server functions
//! call, and the handlers that render pages and answer server functions.

use super::AppState;
use crate::auth::accounts;
use crate::config::Settings;
use crate::grids::GridMonitor;
use app::backend::{Backend, BackendHandle, BoxFuture};
use app::model::{ConsoleInfo, GridView, UserRow};
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
}

pub fn backend(
    settings: Arc<Settings>,
    pool: SqlitePool,
    grids: Arc<GridMonitor>,
) -> BackendHandle {
    BackendHandle(Arc::new(ConsoleBackend {
        settings,
        pool,
        grids,
    }))
}

pub async fn server_fn(State(state): State<AppState>, request: Request) -> impl IntoResponse {
    let backend = state.backend.clone();
    leptos_axum::handle_server_fns_with_context(move || provide_context(backend.clone()), request)
        .await
}
