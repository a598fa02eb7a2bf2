//! gridsim: several simulated grid controllers in one process, each an SSH
//! server on its own loopback port with its own host key, all speaking the
//! controller dialect. The demo, the tests and the benchmarks run against it.
//!
//! A simulator directory holds:
//! - `sim.toml` — grids, ports, templates, timings;
//! - `grids/<grid>/` — host key, authorized_keys, `state.json`, apps and volumes;
//! - `console/` — what a console needs: `id_ed25519`, `known_hosts`, `grids.toml`
//!   (rewritten at every start with the ports actually bound);
//! - `trust/` — the key grids trust each other with (helpers use it to reach
//!   another grid), with its own `known_hosts` and `grids.toml`.

pub mod config;
pub mod controller;
pub mod digests;
pub mod disk;
pub mod faults;
pub mod mount;
pub mod ssh;
pub mod store;

use anyhow::Context;
pub use config::{GridConfig, SimConfig, TemplateConfig};
pub use controller::Controller;
use grid::known_hosts;
use grid::{GridName, TemplateName, keys};
use russh::keys::PublicKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct SimPaths {
    pub dir: PathBuf,
}

impl SimPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SimPaths { dir: dir.into() }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("sim.toml")
    }
    pub fn grid_dir(&self, grid: &GridName) -> PathBuf {
        self.dir.join("grids").join(grid.as_str())
    }
    pub fn console_dir(&self) -> PathBuf {
        self.dir.join("console")
    }
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.join("trust")
    }
}

fn ensure_key(path: &Path) -> anyhow::Result<PublicKey> {
    if !path.exists() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        keys::save(path, &keys::generate())?;
    }
    Ok(keys::load(path)?.public_key().clone())
}

/// Writes a simulator directory: `sim.toml` (unless present), a host key per
/// grid, the console's key and the grids' trust key, and authorized_keys
/// admitting both on every grid. Running it again keeps existing keys.
pub fn init(
    dir: &Path,
    grids: &[&str],
    base_port: u16,
    helper_command: Vec<String>,
) -> anyhow::Result<SimConfig> {
    let paths = SimPaths::new(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = if paths.config().exists() {
        SimConfig::load(&paths.config())?
    } else {
        let mut config = SimConfig::with_grids(grids)?;
        for (i, g) in config.grids.iter_mut().enumerate() {
            g.port = if base_port == 0 {
                0
            } else {
                base_port + u16::try_from(i).unwrap_or(0)
            };
        }
        config.templates = vec![
            TemplateConfig {
                name: TemplateName::new("MigHelper")?,
                description: "migctl's helper: stops, copies and starts an app".into(),
                command: helper_command,
                env: [
                    ("MIG_KEY_FILE", paths.trust_dir().join("id_ed25519")),
                    ("MIG_KNOWN_HOSTS", paths.trust_dir().join("known_hosts")),
                    ("MIG_GRIDS_FILE", paths.trust_dir().join("grids.toml")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.display().to_string()))
                .collect(),
                mounts: vec![],
                disks: vec![],
                // A console inside a stopped source cannot act: the grid
                // brings a crashed helper back, and it resumes the copy.
                restart_on_crash: 3,
            },
            TemplateConfig {
                name: TemplateName::new("Generic")?,
                description: "an app that only changes state".into(),
                command: vec![],
                env: Default::default(),
                mounts: vec![],
                disks: vec![],
                restart_on_crash: 0,
            },
        ];
        config.save(&paths.config())?;
        config
    };
    let console = ensure_key(&paths.console_dir().join("id_ed25519"))?;
    let trust = ensure_key(&paths.trust_dir().join("id_ed25519"))?;
    let mut listed = vec![];
    for g in &config.grids {
        let gdir = paths.grid_dir(&g.name);
        let host = ensure_key(&gdir.join("host_key"))?;
        let lines = [&console, &trust]
            .iter()
            .map(|k| k.to_openssh().map(|s| s + "\n"))
            .collect::<Result<String, _>>()?;
        std::fs::write(gdir.join("authorized_keys"), lines)?;
        listed.push((g.name.clone(), SocketAddr::new(g.listen_ip(), g.port), host));
    }
    // With fixed ports the console's files can be written now; with port 0
    // they are written when `start` knows the ports.
    if config.grids.iter().all(|g| g.port != 0) {
        write_console_files(&paths, &listed)?;
    }
    Ok(config)
}

/// The console's and the trust key's `known_hosts` and `grids.toml`.
fn write_console_files(
    paths: &SimPaths,
    grids: &[(GridName, SocketAddr, PublicKey)],
) -> anyhow::Result<()> {
    let known: String = grids
        .iter()
        .map(|(_, addr, key)| {
            known_hosts::pin_line(&addr.ip().to_string(), addr.port(), key) + "\n"
        })
        .collect();
    let inventory: String = grids
        .iter()
        .map(|(name, addr, _)| {
            format!(
                "[[grid]]\nname = \"{name}\"\naddress = \"{addr}\"\nuser = \"migctl\"\ndescription = \"gridsim grid {name}\"\n\n"
            )
        })
        .collect();
    for d in [paths.console_dir(), paths.trust_dir()] {
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("known_hosts"), &known)?;
        std::fs::write(d.join("grids.toml"), &inventory)?;
    }
    Ok(())
}

pub struct RunningGrid {
    pub name: GridName,
    pub address: SocketAddr,
    pub host_key: PublicKey,
    pub controller: Arc<Controller>,
}

pub struct RunningSim {
    pub dir: PathBuf,
    pub grids: Vec<RunningGrid>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    pub fn grid(&self, name: &str) -> Option<&RunningGrid> {
        self.grids.iter().find(|g| g.name.as_str() == name)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for g in &self.grids {
            g.controller.kill_processes();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts every grid of the simulator directory on loopback and rewrites
/// the console's and the trust key's `known_hosts` and `grids.toml`.
pub async fn start(dir: &Path) -> anyhow::Result<RunningSim> {
    let paths = SimPaths::new(dir);
    let config = Arc::new(SimConfig::load(&paths.config())?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut grids = vec![];
    let mut tasks = vec![];
    for g in &config.grids {
        let gdir = paths.grid_dir(&g.name);
        let host_key = keys::load(&gdir.join("host_key"))?;
        let authorized = Arc::new(ssh::read_authorized_keys(&gdir.join("authorized_keys"))?);
        let controller = Controller::open(
            g.name.clone(),
            gdir,
            config.clone(),
            Some(paths.trust_dir()),
        )?;
        let listener = tokio::net::TcpListener::bind((g.listen_ip(), g.port))
            .await
            .with_context(|| {
                format!(
                    "grid {}: cannot listen on {}:{}",
                    g.name,
                    g.listen_ip(),
                    g.port
                )
            })?;
        let address = listener.local_addr()?;
        grids.push(RunningGrid {
            name: g.name.clone(),
            address,
            host_key: host_key.public_key().clone(),
            controller: controller.clone(),
        });
        tasks.push(tokio::spawn(ssh::serve(
            listener,
            controller,
            ssh::server_config(host_key),
            authorized,
            stopped.clone(),
        )));
    }
    let listed: Vec<_> = grids
        .iter()
        .map(|g| (g.name.clone(), g.address, g.host_key.clone()))
        .collect();
    write_console_files(&paths, &listed)?;
    Ok(RunningSim {
        dir: dir.to_owned(),
        grids,
        stop,
        tasks,
    })
}

/// Runs one command against a grid's state on stdin/stdout, for OpenSSH's
/// `ForceCommand` (the line comes from `SSH_ORIGINAL_COMMAND`). Returns the
/// exit status.
pub async fn run_stdio(dir: &Path, grid: &GridName, line: &str) -> anyhow::Result<i32> {
    let paths = SimPaths::new(dir);
    let config = Arc::new(SimConfig::load(&paths.config())?);
    let controller = Controller::open(
        grid.clone(),
        paths.grid_dir(grid),
        config,
        Some(paths.trust_dir()),
    )?;
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let outcome = controller.execute(line, &mut stdin, &mut stdout).await;
    use tokio::io::AsyncWriteExt;
    stdout.flush().await?;
    Ok(match outcome {
        Ok(()) => 0,
        Err(refusal) => {
            eprint!("{}", refusal.to_line());
            1
        }
    })
}
