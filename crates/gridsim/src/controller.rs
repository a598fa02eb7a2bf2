//! One grid's controller: executes dialect commands against the grid's
//! stored state. State changes take time (`starting`, `stopping`), apps of
//! templates with a command run it as a real child process whose output
//! becomes the app log, and volumes are real sparse files.

use crate::config::SimConfig;
use crate::digests::{Digests, Known};
use crate::faults::Faults;
use crate::mount;
use crate::store::{AppRecord, Layout, State};
use grid::blocks::{Which, checksum, digests_of, hash_blocks};
use grid::dialect::{
    AppInfo, AppState, AppSummary, BlockHashes, Checksum, Compression, DIALECT_VERSION, Descriptor,
    ErrorCode, GridInfo, HashAlgorithm, HowStopped, LogLine, PullReceipt, Refusal, Request,
    TemplateInfo, VolRef,
};
use grid::peers::Peers;
use grid::serve::{Platform, Pull, range, write};
pub use grid::serve::{Stdin, Stdout};
use grid::{AppName, GridName, TemplateName, VolumeName};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead};
use tokio::sync::{Mutex, watch};

pub struct Controller {
    /// This controller, for the tasks a command leaves running.
    me: std::sync::Weak<Controller>,
    pub name: GridName,
    pub faults: Faults,
    layout: Layout,
    config: Arc<SimConfig>,
    state: Mutex<State>,
    /// Bumped on every state change; waiters re-check when it moves.
    changed: watch::Sender<u64>,
    processes: std::sync::Mutex<HashMap<AppName, Process>>,
    /// Restarts after crashes since each app's last `app start`.
    restarts: std::sync::Mutex<HashMap<AppName, u32>>,
    /// The most recent command lines received, oldest first.
    recent: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// The grids this one trusts, for `vol pull`; `None`: it trusts none.
    peers: Option<Peers>,
    /// Block digests of volumes only this controller writes.
    digests: Arc<Digests>,
    /// Commands being executed now.
    running: std::sync::atomic::AtomicUsize,
}

/// Counts a command in [`Controller::commands_running`] while it runs.
struct Running<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Process {
    pid: Option<u32>,
    kill: tokio::sync::mpsc::Sender<()>,
    /// Set when a stop kills it at its timeout: every stop waiting on it
    /// (one that joins a stop under way too) says it was forced.
    forced: Arc<std::sync::atomic::AtomicBool>,
    /// Volumes the process writes through the controller.
    disks: Vec<VolumeName>,
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(ErrorCode::Internal, e.to_string())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn not_found(app: &AppName) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("there is no app {app}"))
}

impl Controller {
    fn arc(&self) -> Result<Arc<Controller>, Refusal> {
        self.me
            .upgrade()
            .ok_or_else(|| internal("the controller is closing"))
    }

    /// Opens the grid's state. Transitional states left by a previous run
    /// settle, and apps whose process died with that run are marked failed.
    pub fn open(
        name: GridName,
        dir: PathBuf,
        config: Arc<SimConfig>,
        trust_dir: Option<PathBuf>,
    ) -> std::io::Result<Arc<Controller>> {
        let layout = Layout { dir };
        let mut state = layout.load()?;
        for (app, rec) in state.apps.iter_mut() {
            rec.next_log_seq = layout.read_log(app, 0)?.last().map_or(1, |l| l.seq + 1);
            let has_process = rec
                .template
                .as_ref()
                .and_then(|t| config.template(t))
                .is_some_and(|t| !t.command.is_empty());
            rec.state = match rec.state {
                AppState::Starting | AppState::Running | AppState::Stopping if has_process => {
                    let line = LogLine {
                        seq: rec.next_log_seq,
                        at: now(),
                        text: format!(
                            "app {app} is failed: its process ended with the previous controller"
                        ),
                    };
                    rec.next_log_seq += 1;
                    layout.append_log(app, &line)?;
                    AppState::Failed
                }
                AppState::Starting => AppState::Running,
                AppState::Stopping => AppState::Stopped,
                s => s,
            };
        }
        layout.save(&state)?;
        let controller = Arc::new_cyclic(|me| Controller {
            me: me.clone(),
            name,
            faults: Faults::default(),
            layout,
            config,
            state: Mutex::new(state),
            changed: watch::channel(0).0,
            processes: std::sync::Mutex::default(),
            restarts: std::sync::Mutex::default(),
            recent: std::sync::Mutex::default(),
            peers: trust_dir.map(Peers::new),
            digests: Arc::default(),
            running: Default::default(),
        });
        Ok(controller)
    }

    /// Commands this controller is executing now (a client that stopped
    /// listening and did not close its channel leaves one running).
    pub fn commands_running(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The last (up to 1000) command lines this controller received; tests
    /// use it to prove that a refused request never reached a controller.
    pub fn recent_commands(&self) -> Vec<String> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.layout.dir
    }

    pub fn host_key_file(&self) -> PathBuf {
        self.layout.host_key()
    }

    pub fn authorized_keys_file(&self) -> PathBuf {
        self.layout.authorized_keys()
    }

    async fn log(&self, app: &AppName, text: impl Into<String>) {
        let mut state = self.state.lock().await;
        self.log_locked(&mut state, app, text.into());
    }

    fn log_locked(&self, state: &mut State, app: &AppName, text: String) {
        let Some(rec) = state.apps.get_mut(app) else {
            return;
        };
        let line = LogLine {
            seq: rec.next_log_seq,
            at: now(),
            text,
        };
        rec.next_log_seq += 1;
        if let Err(e) = self.layout.append_log(app, &line) {
            tracing::error!(grid = %self.name, %app, error = %e, "cannot append to the app log");
        }
    }

    /// Sets an app's state, persists it, logs the change and wakes waiters.
    async fn set_state(&self, app: &AppName, to: AppState, why: &str) -> Result<(), Refusal> {
        let mut state = self.state.lock().await;
        let Some(rec) = state.apps.get_mut(app) else {
            return Err(not_found(app));
        };
        if rec.state == to {
            return Ok(());
        }
        rec.state = to;
        let text = if why.is_empty() {
            format!("app {app} is {to}")
        } else {
            format!("app {app} is {to}: {why}")
        };
        self.log_locked(&mut state, app, text);
        self.layout.save(&state).map_err(internal)?;
        self.changed.send_modify(|g| *g += 1);
        Ok(())
    }

    async fn app_state(&self, app: &AppName) -> Option<AppState> {
        self.state.lock().await.apps.get(app).map(|r| r.state)
    }

    /// Waits until the app's state is one of `until` (or the app is gone).
    async fn wait_for(
        &self,
        app: &AppName,
        until: &[AppState],
        limit: Duration,
    ) -> Option<AppState> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let s = self.app_state(app).await?;
            if until.contains(&s) {
                return Some(s);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Some(s);
            }
        }
    }

    /// Runs one exec line. Output goes to `stdout`; a refusal is the caller's
    /// to write to stderr with a non-zero exit.
    pub async fn execute(
        self: &Arc<Self>,
        line: &str,
        stdin: Stdin<'_>,
        stdout: Stdout<'_>,
    ) -> Result<(), Refusal> {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _running = Running(&self.running);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= 1000 {
                recent.pop_front();
            }
            recent.push_back(line.to_owned());
        }
        let argv = shell_words::split(line)
            .map_err(|e| Refusal::bad_request(format!("cannot split the command line: {e}")))?;
        if argv.first().map(String::as_str) == Some("sim") {
            return match argv.get(1).map(String::as_str) {
                Some("fault") => {
                    let out = self.faults.apply(&argv[2..])?;
                    write(stdout, format!("{out}\n").as_bytes()).await
                }
                _ => Err(Refusal::bad_request("usage: sim fault …")),
            };
        }
        let request = Request::parse_line(line)?;
        let verb = request.command.verb();
        if let Some(old) = self.faults.get().dialect
            && request.command.since_dialect() > old
        {
            return Err(Refusal::bad_request(format!(
                "`{verb}` with these options is not in dialect v{old}"
            )));
        }
        // A pull writes: faults set on `vol write` hold for it too.
        let also = (verb == "vol pull").then_some("vol write");
        let delay = self
            .faults
            .delay(verb)
            .or_else(|| also.and_then(|v| self.faults.delay(v)));
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(refusal) = self
            .faults
            .failure(verb)
            .or_else(|| also.and_then(|v| self.faults.failure(v)))
        {
            return Err(refusal);
        }
        if self.faults.get().endless.contains(verb) {
            // Until the client closes the channel (the write then fails).
            let chunk = vec![b'x'; 64 << 10];
            loop {
                write(stdout, &chunk).await?;
            }
        }
        grid::serve::serve(self.as_ref(), request, stdin, stdout).await
    }

    async fn provision(
        &self,
        template: &TemplateName,
        app: &AppName,
        properties: BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        if self.config.template(template).is_none() {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!("there is no template {template}; `template list` shows them"),
            ));
        }
        self.insert(
            app,
            AppRecord {
                state: AppState::Stopped,
                template: Some(template.clone()),
                properties,
                volumes: vec![],
                next_log_seq: 1,
            },
            format!("provisioned {app} from template {template}"),
        )
        .await
    }

    async fn create(&self, app: &AppName, d: Descriptor) -> Result<(), Refusal> {
        let mut names = std::collections::HashSet::new();
        if let Some(dup) = d.volumes.iter().find(|v| !names.insert(v.name.clone())) {
            return Err(Refusal::bad_request(format!(
                "volume {} is listed twice",
                dup.name
            )));
        }
        for (k, v) in &d.properties {
            grid::dialect::Property::new(k.clone(), v.clone())?;
        }
        if let Some(t) = &d.template
            && self.config.template(t).is_none()
        {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!("there is no template {t}"),
            ));
        }
        let needed: u64 = d.volumes.iter().map(|v| v.size).sum();
        self.insert(
            app,
            AppRecord {
                state: AppState::Stopped,
                template: d.template,
                properties: d.properties,
                volumes: d.volumes,
                next_log_seq: 1,
            },
            format!("created {app} with {needed} bytes of volumes"),
        )
        .await
    }

    async fn insert(&self, app: &AppName, rec: AppRecord, why: String) -> Result<(), Refusal> {
        let mut state = self.state.lock().await;
        if state.apps.contains_key(app) {
            return Err(Refusal::new(
                ErrorCode::Exists,
                format!("app {app} already exists on grid {}", self.name),
            ));
        }
        let needed: u64 = rec.volumes.iter().map(|v| v.size).sum();
        let free = self
            .config
            .capacity_bytes
            .saturating_sub(state.allocated_bytes());
        if needed > free {
            return Err(Refusal::new(
                ErrorCode::Denied,
                format!(
                    "not enough free storage on grid {}: {app} needs {needed} bytes, {free} are free",
                    self.name
                ),
            ));
        }
        self.layout.remove_app(app).map_err(internal)?;
        self.digests.forget_under(&self.layout.app_dir(app));
        self.layout
            .create_volumes(app, &rec.volumes)
            .map_err(internal)?;
        state.apps.insert(app.clone(), rec);
        self.log_locked(&mut state, app, why);
        self.layout.save(&state).map_err(internal)?;
        self.changed.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Starts the app and waits until it runs (or fails).
    async fn start(self: &Arc<Self>, app: &AppName) -> Result<(), Refusal> {
        let current = self.app_state(app).await.ok_or_else(|| not_found(app))?;
        match current {
            AppState::Running => return Ok(()),
            AppState::Stopping => {
                return Err(Refusal::new(
                    ErrorCode::BadState,
                    format!("app {app} is stopping; start it once it has stopped"),
                ));
            }
            AppState::Starting => {}
            AppState::Stopped | AppState::Failed => {
                if let Ok(mut r) = self.restarts.lock() {
                    r.remove(app);
                }
                self.set_state(app, AppState::Starting, "").await?;
                self.launch(app).await?;
            }
        }
        let limit = Duration::from_millis(self.config.start_delay_ms) + Duration::from_secs(60);
        match self
            .wait_for(
                app,
                &[AppState::Running, AppState::Failed, AppState::Stopped],
                limit,
            )
            .await
        {
            Some(AppState::Running) => Ok(()),
            Some(s) => Err(Refusal::new(
                ErrorCode::BadState,
                format!("app {app} did not start: it is {s}; see `app log {app}`"),
            )),
            None => Err(not_found(app)),
        }
    }

    /// Runs the app's process (if its template has one) with its mounted
    /// volumes, and moves it from `starting` to `running` after the start
    /// delay. The app is `starting`.
    fn launch<'a>(
        self: &'a Arc<Self>,
        app: &'a AppName,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Refusal>> + Send + 'a>> {
        Box::pin(async move {
            let command = {
                let state = self.state.lock().await;
                let rec = state.apps.get(app).ok_or_else(|| not_found(app))?;
                rec.template
                    .as_ref()
                    .and_then(|t| self.config.template(t))
                    .map(|t| {
                        let mut env = t.env.clone();
                        env.extend(rec.properties.clone());
                        let mounts: Vec<VolumeName> = t
                            .mounts
                            .iter()
                            .filter(|m| rec.volumes.iter().any(|v| &v.name == *m))
                            .cloned()
                            .collect();
                        let disks: Vec<VolumeName> = t
                            .disks
                            .iter()
                            .filter(|d| rec.volumes.iter().any(|v| &v.name == *d))
                            .cloned()
                            .collect();
                        (t.command.clone(), env, (mounts, disks))
                    })
            };
            if let Some((cmd, mut env, (mounts, disks))) = command.filter(|(c, _, _)| !c.is_empty())
            {
                for vol in &mounts {
                    // Its files change while the process runs: forget it.
                    self.digests.forget(&self.layout.volume_file(app, vol));
                    let dir = self.layout.mount_dir(app, vol);
                    let file = self.layout.volume_file(app, vol);
                    let name = vol.to_string();
                    let unpacked = {
                        let dir = dir.clone();
                        tokio::task::spawn_blocking(move || mount::unpack(&name, &file, &dir))
                            .await
                            .map_err(internal)?
                    };
                    if let Err(e) = unpacked {
                        self.set_state(app, AppState::Failed, &e.to_string())
                            .await?;
                        return Err(Refusal::new(
                            ErrorCode::BadState,
                            format!("app {app} did not start: {e}"),
                        ));
                    }
                    env.insert(format!("GRIDSIM_VOL_{vol}"), dir.display().to_string());
                }
                self.spawn_process(app, cmd, env, (mounts, disks)).await?;
            }
            let me = self.clone();
            let app2 = app.clone();
            let delay = Duration::from_millis(self.config.start_delay_ms);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if me.app_state(&app2).await == Some(AppState::Starting) {
                    let _ = me.set_state(&app2, AppState::Running, "").await;
                }
            });
            Ok(())
        })
    }

    async fn spawn_process(
        self: &Arc<Self>,
        app: &AppName,
        cmd: Vec<String>,
        props: BTreeMap<String, String>,
        (mounts, disks): (Vec<VolumeName>, Vec<VolumeName>),
    ) -> Result<(), Refusal> {
        let mut served = crate::disk::Disks::new();
        let mut disk_env = vec![];
        for vol in &disks {
            let (file, size, _) = self.volume(&VolRef::new(app.clone(), vol.clone())).await?;
            let socket = self.layout.disk_socket(app, vol);
            served
                .serve(&socket, file, size, self.digests.clone())
                .map_err(|e| internal(format!("cannot serve disk {vol}: {e}")))?;
            disk_env.push((format!("GRIDSIM_DISK_{vol}"), socket));
        }
        let mut command = tokio::process::Command::new(&cmd[0]);
        command
            .args(&cmd[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .env("GRIDSIM_GRID", self.name.as_str())
            .env("GRIDSIM_APP", app.as_str())
            .envs(disk_env);
        for (k, v) in &props {
            if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                command.env(k, v);
            }
        }
        let mut child = command.spawn().map_err(|e| {
            Refusal::new(ErrorCode::Internal, format!("cannot run {}: {e}", cmd[0]))
        })?;
        let pid = child.id();
        self.log(
            app,
            format!("process {} started (pid {})", cmd[0], pid.unwrap_or(0)),
        )
        .await;
        for (stream, prefix) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>),
                "",
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>),
                "stderr: ",
            ),
        ] {
            let Some(stream) = stream else { continue };
            let me = self.clone();
            let app2 = app.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    me.log(&app2, format!("{prefix}{line}")).await;
                }
            });
        }
        let (kill_tx, mut kill_rx) = tokio::sync::mpsc::channel::<()>(1);
        if let Ok(mut p) = self.processes.lock() {
            p.insert(
                app.clone(),
                Process {
                    pid,
                    kill: kill_tx,
                    forced: Arc::default(),
                    disks,
                },
            );
        }
        let me = self.clone();
        let app2 = app.clone();
        tokio::spawn(async move {
            let (status, killed) = tokio::select! {
                s = child.wait() => (s, false),
                _ = kill_rx.recv() => {
                    let _ = child.start_kill();
                    (child.wait().await, true)
                }
            };
            // Every write the process sent in full is in its volume first.
            served.close().await;
            if let Ok(mut p) = me.processes.lock() {
                p.remove(&app2);
            }
            // Give the output readers a moment to drain the pipes into the log.
            tokio::time::sleep(Duration::from_millis(50)).await;
            // The mounted volumes' files go back into their images before
            // the app is stopped: a stopped app's volumes are consistent.
            let packed = me.pack_mounts(&app2, &mounts).await;
            let stopping = me.app_state(&app2).await == Some(AppState::Stopping);
            let signal = grid::process::crash_signal(&status, killed, stopping);
            if let Some(signal) = signal.filter(|_| packed.is_ok())
                && let Some((n, limit)) = me.may_restart(&app2).await
            {
                let why = format!(
                    "the process was killed by signal {signal}; the grid restarts it (restart {n} of {limit})"
                );
                me.log(&app2, why.clone()).await;
                if me.set_state(&app2, AppState::Starting, &why).await.is_ok()
                    && let Err(e) = me.launch(&app2).await
                {
                    let _ = me
                        .set_state(
                            &app2,
                            AppState::Failed,
                            &format!("restart failed: {}", e.message),
                        )
                        .await;
                }
                return;
            }
            let (to, why) = match packed {
                Err(e) => (AppState::Failed, e),
                Ok(()) => grid::process::settle(&status, stopping),
            };
            let _ = me.set_state(&app2, to, &why).await;
        });
        Ok(())
    }

    /// Whether the app's template lets the grid restart its crashed process
    /// once more: (this restart, the limit). Counted until the next `app start`.
    async fn may_restart(&self, app: &AppName) -> Option<(u32, u32)> {
        let template = self.state.lock().await.apps.get(app)?.template.clone()?;
        let limit = self.config.template(&template)?.restart_on_crash;
        let mut restarts = self.restarts.lock().ok()?;
        let n = restarts.entry(app.clone()).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some((*n, limit))
    }

    /// Packs each mounted volume's directory back into its image. A volume
    /// whose files do not fit keeps its old image and the files stay in the
    /// directory; the error says so.
    async fn pack_mounts(&self, app: &AppName, mounts: &[VolumeName]) -> Result<(), String> {
        let mut problems = vec![];
        for vol in mounts {
            let Ok((file, size, _)) = self.volume(&VolRef::new(app.clone(), vol.clone())).await
            else {
                continue;
            };
            let dir = self.layout.mount_dir(app, vol);
            let name = vol.to_string();
            self.digests.forget(&file);
            let image = file.clone();
            let packed =
                tokio::task::spawn_blocking(move || mount::pack(&name, &dir, &file, size)).await;
            // Again: a hash read while packing is not remembered.
            self.digests.forget(&image);
            match packed {
                Ok(Ok(used)) => {
                    self.log(
                        app,
                        format!("volume {vol}: {used} bytes of files written back"),
                    )
                    .await
                }
                Ok(Err(e)) => {
                    self.log(app, e.to_string()).await;
                    problems.push(e.to_string());
                }
                Err(e) => problems.push(format!("volume {vol}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Stops the app and waits until it has stopped; a process that does not
    /// stop within `timeout_secs` of SIGTERM is killed.
    async fn stop(
        self: &Arc<Self>,
        app: &AppName,
        timeout_secs: u64,
    ) -> Result<HowStopped, Refusal> {
        let current = self.app_state(app).await.ok_or_else(|| not_found(app))?;
        // Set when the process is killed at the timeout (shared with a
        // stop under way, which this one may join).
        let forced = self
            .processes
            .lock()
            .ok()
            .and_then(|p| p.get(app).map(|p| p.forced.clone()))
            .unwrap_or_default();
        match current {
            AppState::Stopped => return Ok(HowStopped::NotRunning),
            AppState::Failed => {
                self.set_state(app, AppState::Stopped, "stopped after a failure")
                    .await?;
                return Ok(HowStopped::NotRunning);
            }
            AppState::Stopping => {}
            AppState::Running | AppState::Starting => {
                self.set_state(app, AppState::Stopping, "").await?;
                let process = self
                    .processes
                    .lock()
                    .ok()
                    .and_then(|p| p.get(app).map(|p| (p.pid, p.kill.clone())));
                match process {
                    Some((pid, kill)) => {
                        if let Some(pid) = pid {
                            let _ = tokio::process::Command::new("kill")
                                .args(["-TERM", &pid.to_string()])
                                .status()
                                .await;
                        }
                        let me = self.clone();
                        let app2 = app.clone();
                        let forced = forced.clone();
                        tokio::spawn(async move {
                            let limit = Duration::from_secs(timeout_secs);
                            if me
                                .wait_for(&app2, &[AppState::Stopped, AppState::Failed], limit)
                                .await
                                == Some(AppState::Stopping)
                            {
                                me.log(&app2, format!("the process did not stop within {timeout_secs} s; killing it")).await;
                                forced.store(true, std::sync::atomic::Ordering::SeqCst);
                                let _ = kill.send(()).await;
                            }
                        });
                    }
                    None => {
                        let me = self.clone();
                        let app2 = app.clone();
                        let delay = Duration::from_millis(self.config.stop_delay_ms);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            if me.app_state(&app2).await == Some(AppState::Stopping) {
                                let _ = me.set_state(&app2, AppState::Stopped, "").await;
                            }
                        });
                    }
                }
            }
        }
        let limit = Duration::from_secs(timeout_secs)
            + Duration::from_millis(self.config.stop_delay_ms)
            + Duration::from_secs(10);
        match self
            .wait_for(app, &[AppState::Stopped, AppState::Failed], limit)
            .await
        {
            Some(AppState::Stopped) | Some(AppState::Failed) | None => {
                Ok(if forced.load(std::sync::atomic::Ordering::SeqCst) {
                    HowStopped::Forced
                } else {
                    HowStopped::ByItself
                })
            }
            Some(s) => Err(Refusal::new(
                ErrorCode::BadState,
                format!("app {app} did not stop: it is {s}"),
            )),
        }
    }

    async fn destroy(&self, app: &AppName) -> Result<(), Refusal> {
        let mut state = self.state.lock().await;
        let rec = state.apps.get(app).ok_or_else(|| not_found(app))?;
        if !matches!(rec.state, AppState::Stopped | AppState::Failed) {
            return Err(Refusal::new(
                ErrorCode::BadState,
                format!("app {app} is {}; stop it before destroying it", rec.state),
            ));
        }
        state.apps.remove(app);
        self.layout.save(&state).map_err(internal)?;
        self.layout.remove_app(app).map_err(internal)?;
        self.digests.forget_under(&self.layout.app_dir(app));
        self.changed.send_modify(|g| *g += 1);
        Ok(())
    }

    async fn log_lines(&self, app: &AppName, after: u64) -> Result<Option<Vec<LogLine>>, Refusal> {
        if self.app_state(app).await.is_none() {
            return Ok(None);
        }
        self.layout.read_log(app, after).map(Some).map_err(internal)
    }

    async fn volume(&self, vol: &VolRef) -> Result<(PathBuf, u64, AppState), Refusal> {
        let state = self.state.lock().await;
        let rec = state
            .apps
            .get(&vol.app)
            .ok_or_else(|| not_found(&vol.app))?;
        let spec = rec
            .volumes
            .iter()
            .find(|v| v.name == vol.vol)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::NotFound,
                    format!("app {} has no volume {}", vol.app, vol.vol),
                )
            })?;
        Ok((
            self.layout.volume_file(&vol.app, &vol.vol),
            spec.size,
            rec.state,
        ))
    }

    fn writable(vol: &VolRef, state: AppState) -> Result<(), Refusal> {
        if state != AppState::Stopped {
            return Err(Refusal::new(
                ErrorCode::BadState,
                format!(
                    "app {} is {state}; volumes are written only while it is stopped",
                    vol.app
                ),
            ));
        }
        Ok(())
    }

    /// Dialect 4 reads a running app's volumes (what warm migration's
    /// passes need); an older controller only a stopped app's.
    fn readable(&self, vol: &VolRef, state: AppState) -> Result<(), Refusal> {
        match self.faults.get().dialect {
            Some(old) if old < 4 && state != AppState::Stopped && state != AppState::Failed => {
                Err(Refusal::new(
                    ErrorCode::BadState,
                    format!(
                        "app {} is {state}; a dialect v{old} controller reads only a stopped app's volumes",
                        vol.app
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    async fn vol_read(
        &self,
        vol: &VolRef,
        offset: u64,
        length: Option<u64>,
        stdout: Stdout<'_>,
    ) -> Result<(), Refusal> {
        let (path, size, state) = self.volume(vol).await?;
        self.readable(vol, state)?;
        let length = range(size, offset, length)?;
        grid::volume_file::read(&path, offset, length, stdout).await
    }

    /// Writes stdin (a zstd stream with [`Compression::Zstd`]) at `offset`;
    /// with `hash_blocks`, also the BLAKE3 digest of each block as written
    /// (the bytes that reach the file), and both digests of every whole
    /// block are remembered.
    async fn vol_write(
        &self,
        vol: &VolRef,
        offset: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
        stdin: Stdin<'_>,
    ) -> Result<(u64, Option<Vec<Option<String>>>), Refusal> {
        let (path, size, state) = self.volume(vol).await?;
        Self::writable(vol, state)?;
        range(size, offset, Some(0))?;
        self.digests.writing(&path);
        let w = grid::volume_file::Write {
            vol,
            offset,
            size,
            hash_blocks,
            compress,
            corrupt_first: self.faults.get().corrupt_writes,
        };
        let written = grid::volume_file::write_stream(&path, &w, stdin).await;
        let (written, known) = match written {
            Ok(w) => w,
            Err(e) => {
                // How far it got is not known here: forget the volume.
                self.digests.forget(&path);
                return Err(e);
            }
        };
        let (Some(known), Some(b)) = (known, hash_blocks) else {
            self.digests.changed(&path, offset, written);
            return Ok((written, None));
        };
        // Whole blocks are remembered (a short last block counts at the
        // volume's end); the rest of what was written is no longer known.
        let whole = if offset + written == size {
            written
        } else {
            written / b * b
        };
        let count = usize::try_from(whole.div_ceil(b)).unwrap_or(0);
        let blocks = usize::try_from(size.div_ceil(b)).unwrap_or(0);
        let first = usize::try_from(offset / b).unwrap_or(usize::MAX);
        self.digests.changed(&path, offset + whole, written - whole);
        self.digests.put(
            &path,
            (b, blocks),
            first,
            known[..count.min(known.len())].to_vec(),
        );
        Ok((written, Some(digests_of(&known, HashAlgorithm::Blake3))))
    }

    async fn vol_hash(
        &self,
        vol: &VolRef,
        block_size: u64,
        offset: u64,
        length: Option<u64>,
        algorithm: HashAlgorithm,
    ) -> Result<BlockHashes, Refusal> {
        let (path, size, state) = self.volume(vol).await?;
        self.readable(vol, state)?;
        let length = range(size, offset, length)?;
        let end = offset + length;
        // Whole blocks of a volume only the controller writes: what is remembered.
        let hashes = if self.tracked(vol)
            && offset.is_multiple_of(block_size)
            && (end == size || end.is_multiple_of(block_size))
        {
            self.hash_remembered(&path, size, block_size, (offset, length), algorithm)
                .await?
        } else {
            let known = tokio::task::spawn_blocking(move || {
                hash_blocks(&path, block_size, offset, length, Which::only(algorithm))
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
            digests_of(&known, algorithm)
        };
        Ok(BlockHashes {
            size,
            block_size,
            offset,
            algorithm,
            hashes,
        })
    }

    /// Whether only the controller writes the volume: its app has no
    /// process, or the process writes it as a disk (through the controller).
    fn tracked(&self, vol: &VolRef) -> bool {
        self.processes
            .lock()
            .is_ok_and(|p| p.get(&vol.app).is_none_or(|p| p.disks.contains(&vol.vol)))
    }

    /// `vol hash` from the digests remembered; only blocks not known are
    /// read, and then both digests are computed, so the other algorithm is
    /// known next time.
    async fn hash_remembered(
        &self,
        path: &std::path::Path,
        size: u64,
        block_size: u64,
        (offset, length): (u64, u64),
        algorithm: HashAlgorithm,
    ) -> Result<Vec<Option<String>>, Refusal> {
        let blocks = usize::try_from(size.div_ceil(block_size)).unwrap_or(0);
        let first = usize::try_from(offset / block_size).unwrap_or(0);
        let count = usize::try_from(length.div_ceil(block_size)).unwrap_or(0);
        let mut known = self.digests.get(path, block_size, first, count);
        let have = |k: &Option<Known>| k.as_ref().and_then(|k| k.digest(algorithm)).is_some();
        let mut i = 0;
        while i < count {
            if have(&known[i]) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < count && !have(&known[j]) {
                j += 1;
            }
            let from = (first + i) as u64 * block_size;
            let to = ((first + j) as u64 * block_size).min(size);
            let generation = self.digests.generation(path);
            let p = path.to_owned();
            let fresh = tokio::task::spawn_blocking(move || {
                hash_blocks(&p, block_size, from, to - from, Which::BOTH)
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
            self.digests.put_read(
                path,
                generation,
                (block_size, blocks),
                first + i,
                fresh.clone(),
            );
            for (k, f) in fresh.into_iter().enumerate() {
                if let Some(slot) = known.get_mut(i + k) {
                    *slot = Some(f);
                }
            }
            i = j;
        }
        Ok(known
            .into_iter()
            .map(|k| k.and_then(|k| k.digest(algorithm)).flatten())
            .collect())
    }

    /// Reads `from` on `from_grid` over a trusted connection and writes
    /// what arrives as `vol write` would (the same faults apply).
    async fn vol_pull(&self, p: Pull<'_>) -> Result<PullReceipt, Refusal> {
        let (_, size, state) = self.volume(p.vol).await?;
        Self::writable(p.vol, state)?;
        range(size, p.offset, Some(p.length))?;
        let peers = self.peers.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Denied,
                format!("grid {} trusts no other grid; it cannot pull", self.name),
            )
        })?;
        grid::peers::pull(self, peers, p).await
    }

    async fn vol_checksum(&self, vol: &VolRef) -> Result<Checksum, Refusal> {
        let (path, size, state) = self.volume(vol).await?;
        self.readable(vol, state)?;
        let digest = tokio::task::spawn_blocking(move || checksum(&path, size))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(Checksum {
            algorithm: "blake3".into(),
            digest,
            size,
        })
    }

    /// The pid of an app's process, while it has one: a test kills it as a
    /// crash would (the grid then restarts it, when its template says so).
    pub fn pid_of(&self, app: &AppName) -> Option<u32> {
        self.processes
            .lock()
            .ok()
            .and_then(|p| p.get(app).and_then(|p| p.pid))
    }

    /// Kills every app process (the simulator is stopping).
    pub fn kill_processes(&self) {
        if let Ok(p) = self.processes.lock() {
            for proc_ in p.values() {
                let _ = proc_.kill.try_send(());
            }
        }
    }
}

#[async_trait::async_trait]
impl Platform for Controller {
    async fn grid_info(&self) -> Result<GridInfo, Refusal> {
        let state = self.state.lock().await;
        let total = self.config.capacity_bytes;
        Ok(GridInfo {
            name: self.name.clone(),
            dialect: self.faults.get().dialect.unwrap_or(DIALECT_VERSION),
            free_bytes: total.saturating_sub(state.allocated_bytes()),
            total_bytes: total,
            apps: u32::try_from(state.apps.len()).unwrap_or(u32::MAX),
        })
    }

    async fn template_list(&self) -> Result<Vec<TemplateInfo>, Refusal> {
        Ok(self
            .config
            .templates
            .iter()
            .map(|t| TemplateInfo {
                name: t.name.clone(),
                description: t.description.clone(),
            })
            .collect())
    }

    async fn app_list(&self) -> Result<Vec<AppSummary>, Refusal> {
        Ok(self
            .state
            .lock()
            .await
            .apps
            .iter()
            .map(|(name, r)| AppSummary {
                name: name.clone(),
                state: r.state,
                template: r.template.clone(),
            })
            .collect())
    }

    async fn app_info(&self, app: &AppName) -> Result<AppInfo, Refusal> {
        self.state
            .lock()
            .await
            .info(app)
            .ok_or_else(|| not_found(app))
    }

    async fn app_provision(
        &self,
        template: &TemplateName,
        app: &AppName,
        properties: BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        self.provision(template, app, properties).await
    }

    async fn app_create(&self, app: &AppName, descriptor: Descriptor) -> Result<(), Refusal> {
        self.create(app, descriptor).await
    }

    async fn app_start(&self, app: &AppName) -> Result<(), Refusal> {
        self.arc()?.start(app).await
    }

    async fn app_stop(&self, app: &AppName, timeout_secs: u64) -> Result<HowStopped, Refusal> {
        self.arc()?.stop(app, timeout_secs).await
    }

    async fn app_destroy(&self, app: &AppName) -> Result<(), Refusal> {
        self.destroy(app).await
    }

    async fn log_lines(&self, app: &AppName, after: u64) -> Result<Option<Vec<LogLine>>, Refusal> {
        Controller::log_lines(self, app, after).await
    }

    async fn vol_read(
        &self,
        vol: &VolRef,
        offset: u64,
        length: Option<u64>,
        out: Stdout<'_>,
    ) -> Result<(), Refusal> {
        Controller::vol_read(self, vol, offset, length, out).await
    }

    async fn vol_write(
        &self,
        vol: &VolRef,
        offset: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
        stdin: Stdin<'_>,
    ) -> Result<(u64, Option<Vec<Option<String>>>), Refusal> {
        Controller::vol_write(self, vol, offset, hash_blocks, compress, stdin).await
    }

    async fn vol_pull(&self, p: Pull<'_>) -> Result<PullReceipt, Refusal> {
        Controller::vol_pull(self, p).await
    }

    async fn vol_hash(
        &self,
        vol: &VolRef,
        block_size: u64,
        (offset, length): (u64, Option<u64>),
        algorithm: HashAlgorithm,
    ) -> Result<BlockHashes, Refusal> {
        Controller::vol_hash(self, vol, block_size, offset, length, algorithm).await
    }

    async fn vol_checksum(&self, vol: &VolRef) -> Result<Checksum, Refusal> {
        Controller::vol_checksum(self, vol).await
    }
}
