//! The daemon as the supervisor of its host apps' processes (the helper):
//! started from a template with the app's properties as environment, its
//! output the app's log, stopped by SIGTERM and then SIGKILL at the stop's
//! timeout (the log says which), restarted after a crash as the template
//! allows, and settled when the daemon starts again.

use crate::host::Host;
use crate::hostapp::{self, Record};
use grid::dialect::{AppState, ErrorCode, HowStopped, Refusal};
use grid::{AppName, TemplateName};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt};

const POLL: Duration = Duration::from_millis(100);

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(ErrorCode::Internal, e.to_string())
}

type Launch<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Refusal>> + Send + 'a>>;

/// A running process, as the daemon holds it.
pub struct Process {
    pub kill: tokio::sync::mpsc::Sender<()>,
    pub pid: Option<u32>,
}

/// The environment a host app's process gets: nothing of the daemon's
/// (it runs as root), a plain `PATH`, the app's properties named `MIG_*`
/// (what the helper reads; never `LD_*`, `PATH` or the like), then the
/// template's own `env`, which no property overrides.
fn environment(
    template: &BTreeMap<String, String>,
    properties: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([(
        "PATH".to_owned(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    )]);
    env.extend(
        properties
            .iter()
            .filter(|(k, _)| k.starts_with("MIG_"))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    env.extend(template.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The longest output line of a process kept whole.
const MAX_LINE: usize = 8192;

impl Host {
    pub(crate) fn record(&self, app: &AppName) -> Result<Option<Record>, Refusal> {
        hostapp::load(&self.app_dir(app)).map_err(internal)
    }

    fn save_record(&self, app: &AppName, r: &Record) -> Result<(), Refusal> {
        hostapp::save(&self.app_dir(app), r).map_err(internal)
    }

    /// At start-up: a process of the previous daemon is ended (it is no
    /// longer supervised), and its app is `failed`, saying so.
    pub(crate) async fn settle_records(&self) -> std::io::Result<()> {
        for (app, mut r) in hostapp::all(&self.config().storage)? {
            let program = r
                .template
                .as_ref()
                .and_then(|t| self.template(t))
                .and_then(|t| t.command.first().cloned());
            let to = match (r.state, &program) {
                (AppState::Starting | AppState::Running | AppState::Stopping, Some(p)) => {
                    if let Some(pid) = r.pid
                        && hostapp::still_running(pid, p)
                        && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
                    {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        // Gone (or a zombie: its cmdline is empty) before it counts as ended.
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while hostapp::still_running(pid.as_raw_nonzero().get() as u32, p)
                            && Instant::now() < deadline
                        {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                    self.log(
                        &app,
                        None,
                        format!("app {app} is failed: its process ended with the previous daemon"),
                    )
                    .await;
                    AppState::Failed
                }
                (AppState::Starting, None) => AppState::Running,
                (AppState::Stopping, None) => AppState::Stopped,
                (s, _) => s,
            };
            if to != r.state || r.pid.is_some() {
                r.state = to;
                r.pid = None;
                hostapp::save(&self.app_dir(&app), &r)?;
            }
        }
        Ok(())
    }

    pub(crate) fn template(&self, name: &TemplateName) -> Option<&hostapp::Template> {
        self.config().templates.iter().find(|t| &t.name == name)
    }

    /// A new host app, stopped: of `template` (provision) or of none (an
    /// empty app, e.g. the console's signal).
    pub(crate) async fn record_create(
        &self,
        app: &AppName,
        template: Option<TemplateName>,
        properties: BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        let why = match &template {
            Some(t) => format!("provisioned from template {t}"),
            None => "created empty".to_owned(),
        };
        self.save_record(
            app,
            &Record {
                template,
                properties,
                state: AppState::Stopped,
                pid: None,
            },
        )?;
        self.log(app, None, format!("app {app} is stopped: {why}"))
            .await;
        Ok(())
    }

    pub(crate) async fn record_start(&self, app: &AppName, mut r: Record) -> Result<(), Refusal> {
        match r.state {
            AppState::Running | AppState::Starting => return Ok(()),
            AppState::Stopping => {
                return Err(Refusal::new(
                    ErrorCode::BadState,
                    format!("app {app} is stopping; start it once it has stopped"),
                ));
            }
            AppState::Stopped | AppState::Failed => {}
        }
        if let Ok(mut restarts) = self.restarts.lock() {
            restarts.remove(app);
        }
        let has_program = r
            .template
            .as_ref()
            .and_then(|t| self.template(t))
            .is_some_and(|t| !t.command.is_empty());
        if !has_program {
            r.state = AppState::Running;
            self.save_record(app, &r)?;
            self.log(app, None, format!("app {app} is running")).await;
            return Ok(());
        }
        self.launch(app, r).await
    }

    /// Boxed, with its type said: a restart launches from within what a
    /// launch spawned.
    fn launch<'a>(&'a self, app: &'a AppName, r: Record) -> Launch<'a> {
        Box::pin(self.launch_now(app, r))
    }

    async fn launch_now(&self, app: &AppName, mut r: Record) -> Result<(), Refusal> {
        let me = self.arc()?;
        let t = r
            .template
            .as_ref()
            .and_then(|t| self.template(t))
            .cloned()
            .ok_or_else(|| internal(format!("app {app}: its template is no longer configured")))?;
        let Some((program, args)) = t.command.split_first() else {
            return Err(internal(format!("template {} runs nothing", t.name)));
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(environment(&t.env, &r.properties))
            .current_dir(self.app_dir(app))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| internal(format!("app {app}: cannot run {program}: {e}")))?;
        r.pid = child.id();
        r.state = AppState::Running;
        self.save_record(app, &r)?;
        self.log(
            app,
            None,
            format!(
                "app {app} is running: process {} ({program})",
                r.pid.unwrap_or(0)
            ),
        )
        .await;
        let readers: Vec<(Option<Box<dyn AsyncRead + Unpin + Send>>, &str)> = vec![
            (child.stdout.take().map(|s| Box::new(s) as _), ""),
            (child.stderr.take().map(|s| Box::new(s) as _), "stderr: "),
        ];
        let mut drained = vec![];
        for (stream, prefix) in readers {
            let Some(stream) = stream else { continue };
            let (me, app) = (me.clone(), app.clone());
            drained.push(tokio::spawn(async move {
                // Bytes, not text: a line that is not UTF-8 is logged as
                // well as it can be, and the pipe is drained to its end
                // (a reader that stopped would kill the process with SIGPIPE).
                let mut out = tokio::io::BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match (&mut out)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut line)
                        .await
                    {
                        Ok(0) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line);
                            let text = text.trim_end_matches(['\n', '\r']);
                            me.log(&app, None, format!("{prefix}{text}")).await;
                        }
                        Err(e) => {
                            me.log(&app, None, format!("{prefix}(output unreadable: {e})"))
                                .await;
                            break;
                        }
                    }
                }
            }));
        }
        let (kill, mut kill_rx) = tokio::sync::mpsc::channel::<()>(1);
        if let Ok(mut p) = self.processes.lock() {
            p.insert(app.clone(), Process { kill, pid: r.pid });
        }
        let app = app.clone();
        tokio::spawn(async move {
            let (status, killed) = tokio::select! {
                s = child.wait() => (s, false),
                _ = kill_rx.recv() => {
                    let _ = child.start_kill();
                    (child.wait().await, true)
                }
            };
            // Every line the process wrote is in the log before its end is.
            for d in drained {
                let _ = d.await;
            }
            if let Ok(mut p) = me.processes.lock() {
                p.remove(&app);
            }
            me.ended(&app, status, killed, t.restart_on_crash).await;
        });
        Ok(())
    }

    /// A process ended: its app is stopped, failed, or started again.
    async fn ended(
        &self,
        app: &AppName,
        status: std::io::Result<std::process::ExitStatus>,
        killed: bool,
        restart_limit: u32,
    ) {
        let Ok(Some(mut r)) = self.record(app) else {
            return;
        };
        let stopping = r.state == AppState::Stopping;
        if let Some(signal) = grid::process::crash_signal(&status, killed, stopping) {
            let n = self.restarts.lock().map_or(u32::MAX, |mut m| {
                let n = m.entry(app.clone()).or_insert(0);
                *n += 1;
                *n
            });
            if n <= restart_limit {
                self.log(
                    app,
                    None,
                    format!("app {app}: its process was killed by signal {signal}; the daemon restarts it (restart {n} of {restart_limit})"),
                )
                .await;
                if let Err(e) = self.launch(app, r.clone()).await {
                    r.state = AppState::Failed;
                    r.pid = None;
                    let _ = self.save_record(app, &r);
                    self.log(
                        app,
                        None,
                        format!("app {app} is failed: restart failed: {}", e.message),
                    )
                    .await;
                }
                return;
            }
        }
        let (to, why) = grid::process::settle(&status, stopping);
        r.state = to;
        r.pid = None;
        if let Err(e) = self.save_record(app, &r) {
            tracing::error!(%app, error = %e.message, "cannot save the app's record");
        }
        self.log(app, None, format!("app {app} is {to}: {why}"))
            .await;
    }

    /// SIGTERM, then SIGKILL after `timeout_secs`; the log says which.
    pub(crate) async fn record_stop(
        &self,
        app: &AppName,
        mut r: Record,
        timeout_secs: u64,
    ) -> Result<HowStopped, Refusal> {
        match r.state {
            AppState::Stopped | AppState::Failed if r.pid.is_none() => {
                return Ok(HowStopped::NotRunning);
            }
            _ => {}
        }
        // Only a process this daemon supervises is signalled (a pid in the
        // record may be anyone's by now).
        let supervised = self
            .processes
            .lock()
            .ok()
            .and_then(|p| p.get(app).map(|p| (p.pid, p.kill.clone())));
        let Some((Some(pid), _)) = supervised else {
            r.state = AppState::Stopped;
            r.pid = None;
            self.save_record(app, &r)?;
            self.log(app, None, format!("app {app} is stopped")).await;
            return Ok(HowStopped::NotRunning);
        };
        r.state = AppState::Stopping;
        self.save_record(app, &r)?;
        self.log(app, None, format!("app {app} is stopping: SIGTERM sent to process {pid}; killed if it has not exited within {timeout_secs} s"))
            .await;
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            if !self.supervised(app) {
                self.settled(app).await?;
                return Ok(HowStopped::ByItself);
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.log(app, None, format!("app {app}: its process did not exit within {timeout_secs} s of SIGTERM; killed (SIGKILL)"))
            .await;
        let kill = self
            .processes
            .lock()
            .ok()
            .and_then(|p| p.get(app).map(|p| p.kill.clone()));
        if let Some(k) = kill {
            let _ = k.send(()).await;
        }
        while self.supervised(app) {
            tokio::time::sleep(POLL).await;
        }
        self.settled(app).await?;
        Ok(HowStopped::Forced)
    }

    /// Waits until the ended process's state is saved (its task removes it
    /// from the supervised ones just before), so the reply is not `stopping`.
    async fn settled(&self, app: &AppName) -> Result<(), Refusal> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.record(app)? {
                Some(r) if r.state == AppState::Stopping => tokio::time::sleep(POLL).await,
                _ => break,
            }
        }
        Ok(())
    }

    fn supervised(&self, app: &AppName) -> bool {
        self.processes.lock().is_ok_and(|p| p.contains_key(app))
    }

    pub(crate) async fn record_destroy(&self, app: &AppName, r: Record) -> Result<(), Refusal> {
        if !matches!(r.state, AppState::Stopped | AppState::Failed) || self.supervised(app) {
            return Err(Refusal::new(
                ErrorCode::BadState,
                format!("app {app} is {}; stop it before destroying it", r.state),
            ));
        }
        self.forget(app).await;
        std::fs::remove_dir_all(self.app_dir(app)).map_err(internal)
    }
}

/// The daemon is stopping: every supervised process is killed (a helper
/// resumes its copy when provisioned again), and waited for, up to 5 s.
pub async fn stop_all(host: &Arc<Host>) {
    if let Ok(p) = host.processes.lock() {
        for proc_ in p.values() {
            let _ = proc_.kill.try_send(());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.processes.lock().is_ok_and(|p| !p.is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
}
