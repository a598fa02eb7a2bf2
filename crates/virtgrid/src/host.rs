//! One libvirt host's grid as a [`Platform`]: apps are the domains whose
//! migctl metadata names this grid, volumes their raw disk images (and a
//! direct-boot kernel and initrd), the log their serial console.

use crate::applog::AppLog;
use crate::config::{HostConfig, VirtType};
use crate::define::{self, Definition};
use crate::domain::{Domain, Volume};
use crate::state::app_state;
use crate::virsh::Virsh;
use grid::blocks::{Which, checksum, digests_of, hash_blocks};
use grid::dialect::{
    AppInfo, AppState, AppSummary, BlockHashes, Boot, Checksum, Compression, DIALECT_VERSION,
    Descriptor, ErrorCode, GridInfo, HashAlgorithm, HowStopped, LogLine, PullReceipt, Refusal,
    TemplateInfo, VolRef, VolumeSpec,
};
use grid::serve::{Platform, Pull, Stdin, Stdout, range};
use grid::volume_file;
use grid::{AppName, TemplateName};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a stop looks at the domain's state, and presses the power
/// button again (a press made before the guest listened is lost).
const STOP_POLL: Duration = Duration::from_millis(250);
const PRESS_AGAIN: Duration = Duration::from_secs(5);
/// The longest `app stop --timeout` (a day).
const MAX_STOP_TIMEOUT: u64 = 86_400;

pub struct Host {
    me: std::sync::Weak<Host>,
    /// Held while the daemon lives: one daemon a grid's storage.
    _only: std::fs::File,
    config: HostConfig,
    virsh: Virsh,
    virt_type: VirtType,
    /// The apps' logs; read and written on blocking threads (a line is
    /// synced to disk before it counts), never on the runtime's workers.
    logs: Arc<std::sync::Mutex<HashMap<AppName, AppLog>>>,
    /// Per app: commands that change it (create, start, stop, destroy) take
    /// it alone; a `vol write` shares it for its whole stream, so nothing
    /// boots or destroys an app while its disk is being written.
    locks: std::sync::Mutex<HashMap<AppName, Arc<tokio::sync::RwLock<()>>>>,
    /// Host apps' processes the daemon supervises now.
    pub(crate) processes: std::sync::Mutex<HashMap<AppName, crate::supervise::Process>>,
    /// Restarts after crashes since each host app's last `app start`.
    pub(crate) restarts: std::sync::Mutex<HashMap<AppName, u32>>,
    /// The grids `vol pull` reads from (`trust` in the configuration).
    peers: Option<grid::peers::Peers>,
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(ErrorCode::Internal, e.to_string())
}

/// Locks `STORAGE/.virtgrid.lock`: a second daemon for the same storage
/// would number console lines twice and end the first one's helpers.
fn only_daemon(config: &HostConfig) -> anyhow::Result<std::fs::File> {
    let path = config.storage.join(".virtgrid.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            anyhow::anyhow!(
                "another virtgrid daemon serves grid {} from {} ({} is locked)",
                config.grid,
                config.storage.display(),
                path.display()
            )
        },
    )?;
    Ok(file)
}

fn not_found(app: &AppName) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("there is no app {app}"))
}

impl Host {
    /// Checks that libvirt answers and the storage directory can be made.
    pub async fn open(config: HostConfig) -> anyhow::Result<Arc<Host>> {
        let virsh = Virsh::new(&config.uri, Duration::from_secs(config.virsh_timeout_secs));
        virsh.run(&["version"]).await.map_err(|e| {
            anyhow::anyhow!(
                "libvirt at {} does not answer ({e}); is libvirtd running?",
                config.uri
            )
        })?;
        std::fs::create_dir_all(&config.storage)
            .map_err(|e| anyhow::anyhow!("cannot make {}: {e}", config.storage.display()))?;
        // Before the probe: a second daemon is refused at once.
        let only = only_daemon(&config)?;
        let peers = config.trust.clone().map(grid::peers::Peers::new);
        if let Some(p) = &peers {
            p.check().map_err(anyhow::Error::msg)?;
        }
        let probe = match &config.kvm_probe_kernel {
            Some(k) => crate::accel::Probe::Kernel(k),
            None => crate::accel::Probe::BootSector,
        };
        let virt_type =
            crate::accel::resolve(config.virt_type, &virsh, probe, &config.storage).await;
        tracing::info!(grid = %config.grid, ?virt_type, "virtual machines of this grid run with this accelerator");
        let host = Arc::new_cyclic(|me| Host {
            me: me.clone(),
            _only: only,
            config,
            virsh,
            virt_type,
            logs: Default::default(),
            locks: Default::default(),
            processes: Default::default(),
            restarts: Default::default(),
            peers,
        });
        host.settle_records().await?;
        Ok(host)
    }

    pub(crate) fn arc(&self) -> Result<Arc<Host>, Refusal> {
        self.me
            .upgrade()
            .ok_or_else(|| internal("the daemon is stopping"))
    }

    /// Forgets an app's open log (its directory is going).
    pub(crate) async fn forget(&self, app: &AppName) {
        self.forget_log(app);
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    pub fn virt_type(&self) -> VirtType {
        self.virt_type
    }

    fn lock_of(&self, app: &AppName) -> Arc<tokio::sync::RwLock<()>> {
        match self.locks.lock() {
            Ok(mut m) => m.entry(app.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    pub(crate) fn app_dir(&self, app: &AppName) -> PathBuf {
        self.config.storage.join(app.as_str())
    }

    /// Every domain of this grid, by app name.
    async fn domains(&self) -> Result<BTreeMap<AppName, Domain>, Refusal> {
        let names = self.virsh.run(&["list", "--all", "--name"]).await?;
        let mut out = BTreeMap::new();
        for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
            let xml = match self.virsh.run(&["dumpxml", "--domain", name]).await {
                Ok(x) => x,
                // Undefined between the listing and now.
                Err(e) if e.no_domain => continue,
                Err(e) => return Err(e.into()),
            };
            // One domain (of any grid) with a bad definition must not hide the rest.
            let d = match Domain::parse(&xml) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(domain = name, error = %e, "a domain that cannot be read is left out");
                    continue;
                }
            };
            if let Some(meta) = d.meta.as_ref().filter(|m| m.grid == self.config.grid) {
                out.insert(meta.app.clone(), d);
            }
        }
        Ok(out)
    }

    async fn find(&self, app: &AppName) -> Result<Domain, Refusal> {
        // The name this grid gives its domains first; then any adopted one.
        let ours = define::domain_name(&self.config.grid, app);
        if let Ok(xml) = self.virsh.run(&["dumpxml", "--domain", &ours]).await {
            let d = Domain::parse(&xml).map_err(internal)?;
            if d.meta
                .as_ref()
                .is_some_and(|m| m.grid == self.config.grid && &m.app == app)
            {
                return Ok(d);
            }
        }
        self.domains()
            .await?
            .remove(app)
            .ok_or_else(|| not_found(app))
    }

    /// Whether the app is a domain of this grid; an error that is not
    /// "no such app" is an error, never an absence.
    async fn exists(&self, app: &AppName) -> Result<bool, Refusal> {
        match self.find(app).await {
            Ok(_) => Ok(true),
            Err(e) if e.code == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forces the domain off and checks that it is: a `virsh destroy` that
    /// did not take is an error, never a stopped app.
    async fn end(&self, app: &AppName, d: &Domain) -> Result<(), Refusal> {
        let ended = self.virsh.run(&["destroy", "--domain", &d.name]).await;
        match self.state(d).await? {
            AppState::Stopped => Ok(()),
            s => Err(Refusal::new(
                ErrorCode::Internal,
                format!(
                    "app {app}: domain {} is still {s} after virsh destroy{}",
                    d.name,
                    ended.err().map(|e| format!(" ({e})")).unwrap_or_default()
                ),
            )),
        }
    }

    async fn state(&self, d: &Domain) -> Result<AppState, Refusal> {
        let s = self.virsh.run(&["domstate", "--domain", &d.name]).await?;
        app_state(&s).map_err(|e| internal(format!("domain {}: {e}", d.name)))
    }

    /// Appends to the app's log (and first the console's new lines, so the
    /// order is the order things happened in).
    pub(crate) async fn log(&self, app: &AppName, console: Option<&PathBuf>, text: String) {
        let logs = self.logs.clone();
        let dir = self.app_dir(app);
        let (app, console) = (app.clone(), console.cloned());
        let done = tokio::task::spawn_blocking(move || {
            let Ok(mut logs) = logs.lock() else {
                tracing::error!(%app, "the app logs' lock is poisoned");
                return;
            };
            let log = match logs.entry(app.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => match AppLog::open(&dir) {
                    Ok(l) => v.insert(l),
                    Err(e) => {
                        tracing::error!(%app, error = %e, "cannot open the app log");
                        return;
                    }
                },
            };
            if let Some(c) = console
                && let Err(e) = log.ingest(&c)
            {
                tracing::error!(%app, error = %e, "cannot read the console");
            }
            if !text.is_empty()
                && let Err(e) = log.append(text)
            {
                tracing::error!(%app, error = %e, "cannot append to the app log");
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "the app log's task failed");
        }
    }

    /// The app's log lines after `after`, read on a blocking thread.
    async fn read_log(&self, app: &AppName, after: u64) -> Result<Vec<LogLine>, Refusal> {
        let logs = self.logs.clone();
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let logs = logs
                .lock()
                .map_err(|_| internal("the app logs' lock is poisoned"))?;
            match logs.get(&app) {
                Some(l) => l.read(after).map_err(internal),
                None => Ok(vec![]),
            }
        })
        .await
        .map_err(internal)?
    }

    /// Drops what is held of a removed app's log.
    fn forget_log(&self, app: &AppName) {
        if let Ok(mut logs) = self.logs.lock() {
            logs.remove(app);
        }
    }

    /// Reads every app's new console lines (the daemon calls it every second,
    /// so a line's time is when it was written, within a second).
    pub async fn ingest_consoles(&self) {
        let Ok(domains) = self.domains().await else {
            return;
        };
        for (app, d) in domains {
            if d.console.is_some() {
                self.log(&app, d.console.as_ref(), String::new()).await;
            }
        }
    }

    /// The file of a volume, its size and the app's state; a disk that is
    /// not a raw image file is refused, naming it.
    async fn volume(&self, vol: &VolRef) -> Result<(PathBuf, u64, AppState), Refusal> {
        let d = self.find(&vol.app).await?;
        let vols = d.volumes().map_err(internal)?;
        let (_, v) = vols
            .into_iter()
            .find(|(n, _)| n == &vol.vol)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::NotFound,
                    format!("app {} has no volume {}", vol.app, vol.vol),
                )
            })?;
        let file = match v {
            Volume::BootFile(f) => f,
            Volume::Disk(disk) => match (disk.unsupported(), disk.file) {
                (None, Some(file)) => file,
                (why, _) => {
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        format!(
                            "volume {vol} (domain {}): {}",
                            d.name,
                            why.unwrap_or_else(|| "not an image file".into())
                        ),
                    ));
                }
            },
        };
        let size = std::fs::metadata(&file)
            .map_err(|e| internal(format!("volume {vol}: {}: {e}", file.display())))?
            .len();
        Ok((file, size, self.state(&d).await?))
    }

    fn info_of(&self, app: &AppName, d: &Domain, state: AppState) -> Result<AppInfo, Refusal> {
        let meta = d.meta.clone().ok_or_else(|| not_found(app))?;
        let volumes = d
            .volumes()
            .map_err(internal)?
            .into_iter()
            .map(|(name, v)| {
                let file = match v {
                    Volume::Disk(disk) => disk.file,
                    Volume::BootFile(f) => Some(f),
                };
                let size = file
                    .and_then(|f| std::fs::metadata(f).ok())
                    .map_or(0, |m| m.len());
                VolumeSpec { name, size }
            })
            .collect();
        Ok(AppInfo {
            name: app.clone(),
            state,
            template: meta.template,
            properties: meta.properties,
            volumes,
            machine: Some(d.machine().map_err(internal)?),
        })
    }

    async fn create(&self, app: &AppName, desc: Descriptor) -> Result<(), Refusal> {
        let lock = self.lock_of(app);
        let _one = lock.write().await;
        if self.record(app)?.is_some() || self.exists(app).await? {
            return Err(Refusal::new(
                ErrorCode::Exists,
                format!("there is an app {app} already"),
            ));
        }
        if desc.machine.is_none() && desc.volumes.is_empty() {
            return self
                .record_create(app, desc.template, desc.properties)
                .await;
        }
        let machine = desc.machine.ok_or_else(|| {
            Refusal::bad_request(
                "an app of a libvirt host is a virtual machine: the descriptor needs its `machine` (the source's `app info` on a libvirt host gives it)",
            )
        })?;
        define::check(&machine).map_err(Refusal::bad_request)?;
        let mut wanted: Vec<&str> = machine.disks.iter().map(|d| d.volume.as_str()).collect();
        if matches!(machine.boot, Boot::Kernel { .. }) {
            wanted.extend([Boot::KERNEL, Boot::INITRD]);
        }
        let given: Vec<&str> = desc.volumes.iter().map(|v| v.name.as_str()).collect();
        let mut w = wanted.clone();
        let mut g = given.clone();
        w.sort_unstable();
        g.sort_unstable();
        if w != g {
            return Err(Refusal::bad_request(format!(
                "the descriptor's volumes ({}) are not the machine's ({})",
                given.join(", "),
                wanted.join(", ")
            )));
        }
        let need: u64 = desc.volumes.iter().map(|v| v.size).sum();
        let info = self.grid_info().await?;
        if need > info.free_bytes {
            return Err(Refusal::new(
                ErrorCode::Denied,
                format!(
                    "app {app} needs {need} bytes; grid {} has {} free",
                    self.config.grid, info.free_bytes
                ),
            ));
        }
        let dir = self.app_dir(app);
        // A directory of its own, new: what is removed on failure is only
        // what this command made.
        if let Err(e) = std::fs::create_dir(&dir) {
            return Err(Refusal::new(
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ErrorCode::Exists
                } else {
                    ErrorCode::Internal
                },
                format!(
                    "cannot make {} for app {app}: {e} (left by an app removed outside migctl? move it away)",
                    dir.display()
                ),
            ));
        }
        let made = (|| -> std::io::Result<()> {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            // QEMU may pass through, nobody else may look in; images are
            // the owner's (libvirt gives them to QEMU's user at start).
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
            for v in &desc.volumes {
                let f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(0o600)
                    .open(define::volume_file(&dir, v.name.as_str()))?;
                f.set_len(v.size)?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(internal(format!(
                "cannot make app {app}'s images in {}: {e}",
                dir.display()
            )));
        }
        let xml = Definition {
            grid: &self.config.grid,
            app,
            machine: &machine,
            properties: &desc.properties,
            app_dir: &dir,
            virt_type: self.virt_type,
        }
        .xml();
        let file = dir.join("domain.xml");
        let defined = match std::fs::write(&file, xml) {
            Ok(()) => self
                .virsh
                .run(&["define", &file.to_string_lossy()])
                .await
                .map_err(Refusal::from),
            Err(e) => Err(internal(e)),
        };
        if let Err(e) = defined {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.log(
            app,
            None,
            format!(
                "app {app} is stopped: created as domain {} ({} MiB, {} vCPU, {})",
                define::domain_name(&self.config.grid, app),
                machine.memory_mib,
                machine.vcpus,
                match self.virt_type {
                    VirtType::Kvm => "KVM",
                    _ => "TCG",
                },
            ),
        )
        .await;
        Ok(())
    }

    async fn start(&self, app: &AppName) -> Result<(), Refusal> {
        let d = self.find(app).await?;
        match self.state(&d).await? {
            AppState::Running | AppState::Starting => return Ok(()),
            AppState::Stopping => {
                return Err(Refusal::new(
                    ErrorCode::BadState,
                    format!("app {app} is stopping; start it once it has stopped"),
                ));
            }
            AppState::Stopped => {}
            AppState::Failed => {
                // A crashed or paused domain is ended before it boots again.
                self.end(app, &d).await?;
            }
        }
        self.log(app, d.console.as_ref(), String::new()).await;
        self.virsh.run(&["start", "--domain", &d.name]).await?;
        self.log(
            app,
            None,
            format!("app {app} is running: domain {} started", d.name),
        )
        .await;
        Ok(())
    }

    /// ACPI shutdown, then a forced power-off after `timeout_secs`; the log
    /// says which it was.
    async fn stop(&self, app: &AppName, timeout_secs: u64) -> Result<HowStopped, Refusal> {
        let d = self.find(app).await?;
        match self.state(&d).await? {
            AppState::Stopped => return Ok(HowStopped::NotRunning),
            AppState::Failed => {
                self.end(app, &d).await?;
                self.log(
                    app,
                    d.console.as_ref(),
                    format!(
                        "app {app} is stopped: the failed domain {} was ended",
                        d.name
                    ),
                )
                .await;
                return Ok(HowStopped::NotRunning);
            }
            _ => {}
        }
        self.log(app, d.console.as_ref(), format!(
            "app {app} is stopping: ACPI power button pressed; forced off if not shut down within {timeout_secs} s"
        ))
        .await;
        let began = Instant::now();
        let deadline = began + Duration::from_secs(timeout_secs);
        let mut pressed = began;
        if let Err(e) = self.virsh.run(&["shutdown", "--domain", &d.name]).await {
            self.log(
                app,
                None,
                format!("the ACPI power button could not be pressed: {e}"),
            )
            .await;
        }
        loop {
            tokio::time::sleep(STOP_POLL).await;
            if self.state(&d).await? == AppState::Stopped {
                let secs = began.elapsed().as_secs_f64();
                self.log(
                    app,
                    d.console.as_ref(),
                    format!(
                        "app {app} is stopped: it shut down {secs:.1} s after the ACPI power button"
                    ),
                )
                .await;
                return Ok(HowStopped::ByItself);
            }
            if Instant::now() >= deadline {
                break;
            }
            if pressed.elapsed() >= PRESS_AGAIN {
                self.virsh
                    .run(&["shutdown", "--domain", &d.name])
                    .await
                    .ok();
                pressed = Instant::now();
            }
        }
        self.end(app, &d).await?;
        self.log(app, d.console.as_ref(), format!(
            "app {app} is stopped: it did not shut down within {timeout_secs} s of the ACPI power button and was forced off (virsh destroy); what it had not written to its disks is lost"
        ))
        .await;
        Ok(HowStopped::Forced)
    }

    async fn destroy(&self, app: &AppName) -> Result<(), Refusal> {
        let d = self.find(app).await?;
        let state = self.state(&d).await?;
        if !matches!(state, AppState::Stopped | AppState::Failed) {
            return Err(Refusal::new(
                ErrorCode::BadState,
                format!("app {app} is {state}; stop it before destroying it"),
            ));
        }
        if state == AppState::Failed {
            self.end(app, &d).await?;
        }
        self.virsh.run(&["undefine", "--domain", &d.name]).await?;
        self.forget_log(app);
        let dir = self.app_dir(app);
        // Only the app's own directory of this grid's storage is removed;
        // an adopted domain's images elsewhere stay where they are.
        if dir.starts_with(&self.config.storage) && dir != self.config.storage {
            std::fs::remove_dir_all(&dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(internal)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Platform for Host {
    async fn grid_info(&self) -> Result<GridInfo, Refusal> {
        let fs = rustix::fs::statvfs(&self.config.storage).map_err(internal)?;
        let apps = self.domains().await?.len();
        Ok(GridInfo {
            name: self.config.grid.clone(),
            dialect: DIALECT_VERSION,
            free_bytes: fs.f_bavail.saturating_mul(fs.f_frsize),
            total_bytes: fs.f_blocks.saturating_mul(fs.f_frsize),
            apps: u32::try_from(apps).unwrap_or(u32::MAX),
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
        let mut out: Vec<AppSummary> = crate::hostapp::all(&self.config.storage)
            .map_err(internal)?
            .into_iter()
            .map(|(name, r)| AppSummary {
                name,
                state: r.state,
                template: r.template,
            })
            .collect();
        for (app, d) in self.domains().await? {
            out.push(AppSummary {
                state: self.state(&d).await?,
                template: d.meta.and_then(|m| m.template),
                name: app,
            });
        }
        Ok(out)
    }

    async fn app_info(&self, app: &AppName) -> Result<AppInfo, Refusal> {
        if let Some(r) = self.record(app)? {
            return Ok(AppInfo {
                name: app.clone(),
                state: r.state,
                template: r.template,
                properties: r.properties,
                volumes: vec![],
                machine: None,
            });
        }
        let d = self.find(app).await?;
        let state = self.state(&d).await?;
        self.info_of(app, &d, state)
    }

    async fn app_provision(
        &self,
        template: &TemplateName,
        app: &AppName,
        properties: BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        if self.template(template).is_none() {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!(
                    "there is no template {template} on grid {}; `template list` shows them",
                    self.config.grid
                ),
            ));
        }
        let lock = self.lock_of(app);
        let _one = lock.write().await;
        if self.record(app)?.is_some() || self.exists(app).await? {
            return Err(Refusal::new(
                ErrorCode::Exists,
                format!("there is an app {app} already"),
            ));
        }
        self.record_create(app, Some(template.clone()), properties)
            .await
    }

    async fn app_create(&self, app: &AppName, descriptor: Descriptor) -> Result<(), Refusal> {
        self.create(app, descriptor).await
    }

    async fn app_start(&self, app: &AppName) -> Result<(), Refusal> {
        let lock = self.lock_of(app);
        let _one = lock.write().await;
        match self.record(app)? {
            Some(r) => self.record_start(app, r).await,
            None => self.start(app).await,
        }
    }

    async fn app_stop(&self, app: &AppName, timeout_secs: u64) -> Result<HowStopped, Refusal> {
        if timeout_secs > MAX_STOP_TIMEOUT {
            return Err(Refusal::bad_request(format!(
                "a stop timeout of {timeout_secs} s is more than {MAX_STOP_TIMEOUT} s (a day)"
            )));
        }
        let lock = self.lock_of(app);
        let _one = lock.write().await;
        match self.record(app)? {
            Some(r) => self.record_stop(app, r, timeout_secs).await,
            None => self.stop(app, timeout_secs).await,
        }
    }

    async fn app_destroy(&self, app: &AppName) -> Result<(), Refusal> {
        let lock = self.lock_of(app);
        let _one = lock.write().await;
        match self.record(app)? {
            Some(r) => self.record_destroy(app, r).await,
            None => self.destroy(app).await,
        }
    }

    async fn log_lines(&self, app: &AppName, after: u64) -> Result<Option<Vec<LogLine>>, Refusal> {
        // A host app (the helper, followed all through an operation) first:
        // its record is one file, a domain lookup is virsh calls.
        if self.record(app)?.is_some() {
            self.log(app, None, String::new()).await;
            return self.read_log(app, after).await.map(Some);
        }
        let d = match self.find(app).await {
            Ok(d) => d,
            Err(e) if e.code == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.log(app, d.console.as_ref(), String::new()).await;
        self.read_log(app, after).await.map(Some)
    }

    async fn vol_read(
        &self,
        vol: &VolRef,
        offset: u64,
        length: Option<u64>,
        out: Stdout<'_>,
    ) -> Result<(), Refusal> {
        let (file, size, _) = self.volume(vol).await?;
        let length = range(size, offset, length)?;
        volume_file::read(&file, offset, length, out).await
    }

    async fn vol_write(
        &self,
        vol: &VolRef,
        offset: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
        stdin: Stdin<'_>,
    ) -> Result<(u64, Option<Vec<Option<String>>>), Refusal> {
        let lock = self.lock_of(&vol.app);
        let _writing = lock.read().await;
        let (file, size, state) = self.volume(vol).await?;
        // An adopted domain's files may be shared (a kernel in /boot, an
        // image of another's): written only within this grid's storage.
        if !file.starts_with(&self.config.storage) {
            return Err(Refusal::new(
                ErrorCode::Denied,
                format!(
                    "volume {vol} is {}, outside grid {}'s storage {}; migctl writes only the images it made there",
                    file.display(),
                    self.config.grid,
                    self.config.storage.display()
                ),
            ));
        }
        if state != AppState::Stopped {
            return Err(Refusal::new(
                ErrorCode::BadState,
                format!(
                    "app {} is {state}; volumes are written only while it is stopped",
                    vol.app
                ),
            ));
        }
        range(size, offset, Some(0))?;
        let w = volume_file::Write {
            vol,
            offset,
            size,
            hash_blocks,
            compress,
            corrupt_first: false,
        };
        let (n, known) = volume_file::write_stream(&file, &w, stdin).await?;
        Ok((n, known.map(|k| digests_of(&k, HashAlgorithm::Blake3))))
    }

    async fn vol_pull(&self, p: Pull<'_>) -> Result<PullReceipt, Refusal> {
        let peers = self.peers.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Denied,
                format!(
                    "grid {} trusts no other grid (no `trust` directory in its virtgrid configuration); {} is copied through the helper's stream instead",
                    self.config.grid, p.vol
                ),
            )
        })?;
        grid::peers::pull(self, peers, p).await
    }

    async fn vol_hash(
        &self,
        vol: &VolRef,
        block_size: u64,
        (offset, length): (u64, Option<u64>),
        algorithm: HashAlgorithm,
    ) -> Result<BlockHashes, Refusal> {
        let (file, size, _) = self.volume(vol).await?;
        let length = range(size, offset, length)?;
        let known = tokio::task::spawn_blocking(move || {
            hash_blocks(&file, block_size, offset, length, Which::only(algorithm))
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        Ok(BlockHashes {
            size,
            block_size,
            offset,
            algorithm,
            hashes: digests_of(&known, algorithm),
        })
    }

    async fn vol_checksum(&self, vol: &VolRef) -> Result<Checksum, Refusal> {
        let (file, size, _) = self.volume(vol).await?;
        let digest = tokio::task::spawn_blocking(move || checksum(&file, size))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(Checksum {
            algorithm: "blake3".into(),
            digest,
            size,
        })
    }
}
