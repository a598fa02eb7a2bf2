//! The console as a whole: open its database, make sure someone can sign
//! in, serve until told to stop, and stop its background work cleanly.

use crate::auth::add_user::{AddUserError, add_user};
use crate::auth::throttle::{LoginThrottle, Policy};
use crate::auth::{accounts, password};
use crate::config::Settings;
use crate::grids::GridMonitor;
use crate::{db, web};
use anyhow::Context;
use app::model::Role;
use leptos::config::LeptosOptions;
use sqlx::SqlitePool;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_sessions::ExpiredDeletion;
use tower_sessions_sqlx_store::SqliteStore;

/// How long the requests in flight get to finish once the console stops.
pub const DRAIN: Duration = Duration::from_secs(5);

pub struct Console {
    pub settings: Arc<Settings>,
    pub pool: SqlitePool,
    pub grids: Arc<GridMonitor>,
    pub engine: Arc<crate::operation::Engine>,
    pub groups: Arc<crate::groups::Groups>,
    throttle: Policy,
}

/// Tightens a config directory that others may read (made by hand, or by
/// an older console) to its owner only, and says so.
fn owner_only(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} owner-only (0700)", dir.display()))?;
        tracing::warn!(dir = %dir.display(), was = format!("{:o}", mode & 0o777), "the config directory was open to others; it is 0700 now");
    }
    Ok(())
}

impl Console {
    pub async fn open(settings: Settings) -> anyhow::Result<Console> {
        // The metrics recorder, before anything records.
        crate::telemetry::handle();
        // The config directory holds the key, the database and the lock:
        // created for the console's user only.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.config_dir)
            .with_context(|| {
                format!(
                    "cannot create the config directory {}",
                    settings.config_dir.display()
                )
            })?;
        owner_only(&settings.config_dir)?;
        let grids = Arc::new(GridMonitor::load(&settings)?);
        let pool = db::open(&settings.database_file()).await?;
        let settings = Arc::new(settings);
        let engine = crate::operation::Engine::new(settings.clone(), pool.clone(), grids.clone());
        let groups = crate::groups::Groups::new(pool.clone(), engine.clone(), grids.clone());
        Ok(Console {
            settings,
            pool,
            grids,
            engine,
            groups,
            throttle: Policy::default(),
        })
    }

    /// For tests and unusual deployments: a different sign-in throttle.
    pub fn with_throttle(mut self, policy: Policy) -> Self {
        self.throttle = policy;
        self
    }

    /// With no users at all, creates `admin` with a random password and
    /// returns the password (to be shown once).
    pub async fn bootstrap_admin(&self) -> anyhow::Result<Option<String>> {
        if accounts::count(&self.pool).await? > 0 {
            return Ok(None);
        }
        let secret = password::random();
        let added = add_user(
            &self.pool,
            "migctl",
            "admin",
            Role::Admin,
            secret.clone(),
            Some("first start"),
        )
        .await;
        match added {
            Ok(_) => Ok(Some(secret)),
            // Another process bootstrapped at the same moment: its password stands.
            Err(AddUserError::Account(accounts::AccountError::Exists(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then finishes the
    /// requests in flight and stops the background tasks.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let sessions = SqliteStore::new(self.pool.clone())
            .with_table_name("sessions")
            .map_err(|e| anyhow::anyhow!(e))?;
        sessions
            .migrate()
            .await
            .context("cannot create the sessions table")?;

        // The console's own background tasks, stopped together (as the
        // engine's are, by its token and tracker).
        let stop = tokio_util::sync::CancellationToken::new();
        let background = tokio_util::task::TaskTracker::new();
        {
            let sessions = sessions.clone();
            let stop = stop.clone();
            background.spawn(async move {
                tokio::select! {
                    r = sessions.continuously_delete_expired(Duration::from_secs(60)) => {
                        if let Err(e) = r {
                            tracing::error!(error = %e, "expired-session clean-up stopped");
                        }
                    }
                    () = stop.cancelled() => {}
                }
            });
        }

        // Start-up reconciliation: a lock left by the last run is finished first.
        self.engine.resume().await;
        // Then the group runs that were running, each from its stored position.
        self.groups.resume_all().await;
        background.spawn(
            self.grids
                .clone()
                .run(crate::grids::REFRESH_EVERY, stop.clone()),
        );
        background.spawn(crate::retention::run(
            self.pool.clone(),
            self.settings.config_dir.clone(),
            self.settings.retention_days,
            stop.clone(),
        ));
        // Kept sources whose deadline has passed (also while the console
        // was down) are checked and released, then once a minute.
        {
            let engine = self.engine.clone();
            let stop = stop.clone();
            background.spawn(async move {
                let mut first = true;
                loop {
                    engine.release_due(first).await;
                    first = false;
                    tokio::select! {
                        () = tokio::time::sleep(crate::operation::KEPT_CHECK_EVERY) => {}
                        () = stop.cancelled() => return,
                    }
                }
            });
        }
        // The console inside the demo's shop writes as shop does.
        if let Some(writes) = crate::demo::shop_writes(stop.clone()) {
            background.spawn(writes);
        }

        let local: SocketAddr = listener.local_addr()?;
        // A release build names its assets by their hash (hash.txt next to
        // the binary says which); without it they keep their plain names.
        let hashed = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("hash.txt")))
            .is_some_and(|f| f.is_file());
        let leptos_options = LeptosOptions::builder()
            .output_name("migctl")
            .site_root(self.settings.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(local)
            .hash_files(hashed)
            .build();
        let notices = Arc::new(web::notices::Notices::default());
        let state = web::AppState {
            leptos_options,
            backend: web::pages::backend(
                self.settings.clone(),
                self.pool.clone(),
                self.grids.clone(),
                self.engine.clone(),
                self.groups.clone(),
                notices.clone(),
            ),
            grids: self.grids.clone(),
            engine: self.engine.clone(),
            groups: self.groups.clone(),
            pool: self.pool.clone(),
            settings: self.settings.clone(),
            throttle: Arc::new(LoginThrottle::new(self.throttle)),
            origins: Arc::new(web::gate::OwnOrigins::new(
                self.settings.public_url.as_deref(),
            )),
            streams: web::events::Streams::new(self.settings.max_event_streams),
            notices,
        };
        let router = web::router(state, sessions);
        tracing::info!(address = %local, "serving");
        let stopping = tokio_util::sync::CancellationToken::new();
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let engine = self.engine.clone();
            let groups = self.groups.clone();
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                // Runs start nothing new, then operations stop where they are.
                groups.stop().await;
                // Streams and drive tasks end now, so the requests in
                // flight (open SSE streams) finish and the server can stop.
                engine.stop().await;
                stopping.cancel();
            }
        });
        // A graceful shutdown waits for every connection, and one a client
        // keeps open idle (a browser's keep-alive) can hold it for ever: the
        // requests in flight get `DRAIN`, then the console stops without them.
        let served = tokio::select! {
            served = served.into_future() => served,
            () = async {
                stopping.cancelled().await;
                tokio::time::sleep(DRAIN).await;
            } => {
                tracing::warn!(after = ?DRAIN, "connections still open; stopping without them");
                Ok(())
            }
        };
        self.groups.stop().await;
        self.engine.stop().await;
        stop.cancel();
        background.close();
        background.wait().await;
        self.pool.close().await;
        served.context("the web server stopped with an error")
    }
}
