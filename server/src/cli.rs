//! The command line: `serve`, `demo`, `user …`, `op …`, `lock …`, `grid read`,
//! `completions` and `helper`; hidden: `shop`, `mq-node`, `mq-writer`, `sim` and `swarm`. The user
//! commands work on the database directly, so they run with or without a
//! console serving; `op` and `lock` ask a running console's API.

use crate::auth::{accounts, password, tokens};
use crate::config::{self, ConfigError, Overrides};
use crate::{Console, db};
use anyhow::{Context, bail};
use app::model::Role;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "migctl",
    version,
    about = "Migrate and snapshot apps between grids",
    after_help = "Exit status:\n  0  success (for `op start --wait` and `op watch`: the operation ended done)\n  1  an error: a refused request, an unreachable console or grid, a failed command\n  2  bad configuration or usage\n  3  `lock show`: no lock is held\n  4  the operation followed ended failed\n  5  the operation followed ended cancelled\n  6  the operation followed ended elsewhere (its outcome belongs to another console)\n  7  the group run followed ended aborted"
)]
pub struct Cli {
    /// The console's config directory (migctl.toml, grids.toml, keys, lock, database)
    #[arg(long, env = "MIGCTL_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of `Serve`'s settings costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web console
    Serve(Overrides),
    /// Run the console on the embedded default and print how to sign in
    Demo {
        /// Where the demo keeps its config and data
        #[arg(long, default_value = "migctl-demo")]
        dir: PathBuf,
        /// Address and port to listen on
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Copy at most this many MiB per second (to watch a copy at leisure)
        #[arg(long, env = "MIGCTL_COPY_RATE_LIMIT_MIB")]
        copy_rate_limit_mib: Option<u64>,
        /// Run the console inside the app `shop` (MIG's way): it stops, moves
        /// and wakes up with it
        #[arg(long = "self")]
        inside: bool,
        /// Real grids instead: libvirt grids east and west on this host
        /// (virtgrid behind sshd), the test guest vm1 running on east. Needs
        /// root, libvirt, QEMU, sshd and the test guest (scripts/demo --libvirt
        /// prepares them)
        #[arg(long, conflicts_with = "inside")]
        libvirt: bool,
        /// Size of shop's `data` volume in MiB, filled with incompressible
        /// bytes (applies when the demo creates shop) [default: 384, mostly sparse]
        #[arg(long)]
        shop_data_mib: Option<u64>,
        /// KiB per second shop's process writes at random offsets of `data`
        /// while it runs: changes for a warm migration to chase (applies
        /// when the demo creates shop)
        #[arg(long, default_value_t = 0)]
        shop_write_kib: u64,
        /// Also run the demo's HA group on east: mq1 (primary), mq2
        /// (backup), mq3 (monitor); prints `group: PATH`, its definition
        #[arg(long, conflicts_with_all = ["inside", "libvirt"])]
        group: bool,
    },
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Start, show, list, cancel and watch operations on a running console
    #[command(subcommand)]
    Op(OpCommand),
    /// Show or override the lock of a running console
    #[command(subcommand)]
    Lock(LockCommand),
    /// Move an HA group member by member with checks between the steps:
    /// run a definition, follow, pause, resume, abort, approve
    #[command(subcommand)]
    Group(crate::group_cli::GroupCommand),
    /// Talk to a grid's controller directly, with the console's inventory and key
    #[command(subcommand)]
    Grid(GridCommand),
    /// Print a completion script for a shell, e.g. `migctl completions bash > /etc/bash_completion.d/migctl`
    Completions { shell: clap_complete::Shell },
    /// Run as the helper app MigHelper_<target> (job from MIG_* variables)
    #[command(hide = true)]
    Helper,
    /// Run as the demo app shop's process: writes SHOP_WRITE_KIB KiB/s to its disk `data`
    #[command(hide = true)]
    Shop,
    /// Run as a node of the demo's HA group (mq1, mq2, mq3): LISTEN,
    /// MQ_KIND (monitor or node), MQ_MONITOR, and the volume `state`
    #[command(hide = true)]
    MqNode,
    /// Write to the demo's HA group at RATE writes a second until
    /// SIGINT/SIGTERM (or --secs), then read everything back and print
    /// what was lost, duplicated, and the longest gap between acknowledged
    /// writes, as JSON
    #[command(hide = true)]
    MqWriter {
        /// The nodes' addresses, e.g. 127.0.0.1:7101,127.0.0.1:7102
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Stop after this many seconds instead of at a signal
        #[arg(long)]
        secs: Option<u64>,
    },
    /// Run the simulated grids of a gridsim directory until SIGINT/SIGTERM,
    /// as `gridsim serve` does: a process of its own that the chaos run
    /// (server/tests/chaos.rs) can kill
    #[command(hide = true)]
    Sim {
        #[arg(long)]
        data: PathBuf,
    },
    /// Watch one operation's event stream N times at once for SECONDS and
    /// print the delays (scripts/load); the token from MIGCTL_TOKEN
    #[command(hide = true)]
    Swarm {
        url: String,
        op: String,
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        /// Of the watchers, how many parse events and measure their delay
        /// (the others only drain their stream)
        #[arg(long, default_value_t = 16)]
        measure: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum GridCommand {
    /// Write a volume's bytes to standard output (e.g. a backup, or the
    /// grid client's read rate in scripts/bench-copy)
    Read {
        grid: grid::GridName,
        /// APP:VOL
        volume: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; prints a generated password unless --password-stdin is given
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        /// Read the password from standard input instead of generating one
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (ends their sessions)
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user, their API tokens and sessions
    Del { name: String },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create an API token for a user and print it (shown once)
    Token { name: String },
    /// Let a user held off by failed sign-ins sign in again now (a running
    /// console forgets the name's failures at its next attempt)
    Unlock { name: String },
}

#[derive(Subcommand, Debug)]
pub enum OpCommand {
    /// Start a migrate or snapshot
    Start {
        /// GRID/APP, e.g. east/shop
        #[arg(long)]
        source: String,
        /// GRID/APP, e.g. west/shop
        #[arg(long)]
        target: String,
        #[arg(long, value_parser = ["migrate", "snapshot"])]
        action: String,
        /// The target app exists (stopped, same volumes): copy only the blocks
        /// that differ into it, e.g. to refresh an earlier snapshot
        #[arg(long)]
        update_target: bool,
        /// Copy while the source runs, pass after pass; stop it only for the
        /// final pass (needs a source grid of dialect 4, else it copies cold)
        #[arg(long, conflicts_with = "cold")]
        warm: bool,
        /// Stop the source for the whole copy (MIG's way; the default)
        #[arg(long)]
        cold: bool,
        /// Warm: when to cut over: auto (once a pass finds little changed),
        /// manual (`migctl op cutover ID`) or scheduled (with --cutover-at)
        #[arg(long, requires = "warm", value_parser = ["auto", "manual", "scheduled"])]
        cutover: Option<String>,
        /// Warm: cut over at this time, RFC 3339 (e.g. 2026-11-24T18:00:00Z)
        #[arg(long, requires = "warm")]
        cutover_at: Option<String>,
        /// Seconds the source may take to stop by itself (a process exits, a
        /// guest shuts down on its ACPI button) before it is forced off
        /// [default: 120]
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=operation_model::MAX_STOP_TIMEOUT_SECS))]
        stop_timeout: Option<u64>,
        /// Migrate: keep the source, stopped, once the target runs verified,
        /// so that the migrate can be rolled back [default: the console's keep_source]
        #[arg(long, conflicts_with = "destroy_source")]
        keep_source: bool,
        /// Migrate: destroy the source once the target runs verified (MIG's way)
        #[arg(long)]
        destroy_source: bool,
        /// Hours a kept source stays before its deadline releases it
        /// [default: the console's keep_source_hours]
        #[arg(long, value_name = "HOURS", value_parser = clap::value_parser!(u64).range(1..=operation_model::MAX_KEEP_SOURCE_HOURS))]
        keep_source_hours: Option<u64>,
        /// Wait for the outcome, showing progress
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Show one operation
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// List operations, newest first
    List {
        /// The operations as the API gives them (a JSON array)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Cut a warm operation over now: stop the source and copy the last changes
    Cutover {
        id: String,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Cancel a running operation
    Cancel {
        id: String,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Roll a done migrate back into the source it kept: only what the
    /// target changed since the cutover is copied; the kept source runs again
    Rollback {
        id: String,
        /// Keep the migrate's target, stopped, once the source runs again
        /// (it can be rolled forward) [default: the console's keep_source]
        #[arg(long, conflicts_with = "destroy_target")]
        keep_target: bool,
        /// Destroy the migrate's target once the source runs verified
        #[arg(long)]
        destroy_target: bool,
        /// Hours a kept target stays [default: the console's keep_source_hours]
        #[arg(long, value_name = "HOURS", value_parser = clap::value_parser!(u64).range(1..=operation_model::MAX_KEEP_SOURCE_HOURS))]
        keep_target_hours: Option<u64>,
        /// Copy while the target keeps serving; stop it only for the last changes
        #[arg(long)]
        warm: bool,
        /// Seconds the target may take to stop by itself before it is forced off [default: 120]
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=operation_model::MAX_STOP_TIMEOUT_SECS))]
        stop_timeout: Option<u64>,
        /// Wait for the outcome, showing progress
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Release a migrate's kept source: checked against its fingerprint,
    /// then destroyed (refused, and kept, if it runs or changed)
    ReleaseSource {
        id: String,
        /// Why (kept in the audit trail)
        #[arg(long)]
        reason: String,
        /// Admins: release it even though it no longer matches its
        /// fingerprint (or has none); never one that runs
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Follow an operation: progress bar and merged log until it ends
    Watch {
        id: String,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Show the lock (exit status 0 when one is held, 3 when none)
    Show {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Move the lock aside (admins): type its op id and say why
    Override {
        #[arg(long)]
        op: String,
        #[arg(long)]
        reason: String,
        /// Also stop and destroy the helper app on the target grid
        #[arg(long)]
        destroy_helper: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
}

/// Errors the command line reports; configuration errors exit with 2.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// The operation a command followed ended other than done: its exit
/// status says how (see `migctl --help`).
#[derive(Debug, thiserror::Error)]
#[error("operation {id} ended {outcome}")]
pub struct EndedBadly {
    pub id: String,
    pub outcome: app::model::Outcome,
}

impl EndedBadly {
    fn check(op: &app::model::OperationView) -> Result<(), EndedBadly> {
        match op.outcome {
            Some(app::model::Outcome::Done) | None => Ok(()),
            Some(outcome) => Err(EndedBadly {
                id: op.id.clone(),
                outcome,
            }),
        }
    }

    fn exit_code(&self) -> i32 {
        use app::model::Outcome;
        match self.outcome {
            Outcome::Done => 0,
            Outcome::Failed => 4,
            Outcome::Cancelled => 5,
            Outcome::Elsewhere => 6,
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) => 2,
            CliError::Other(e) if e.downcast_ref::<crate::grids::GridSetupError>().is_some() => 2,
            CliError::Other(e) if let Some(end) = e.downcast_ref::<EndedBadly>() => end.exit_code(),
            CliError::Other(e)
                if e.downcast_ref::<crate::group_cli::RunEndedOtherwise>()
                    .is_some() =>
            {
                7
            }
            CliError::Other(_) => 1,
        }
    }
}

fn config_dir(cli: &Cli) -> Result<&Path, CliError> {
    cli.config_dir.as_deref().ok_or_else(|| {
        ConfigError::Value {
            setting: "config directory".into(),
            message: "no config directory given".into(),
            fix: "pass --config-dir DIR or set MIGCTL_CONFIG_DIR".into(),
        }
        .into()
    })
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Serve(overrides) => serve(config_dir(&cli)?, overrides).await,
        Command::Demo {
            dir,
            listen,
            copy_rate_limit_mib,
            inside,
            libvirt,
            shop_data_mib,
            shop_write_kib,
            group,
        } => {
            let shop = crate::demo::ShopShape {
                data_mib: *shop_data_mib,
                write_kib: *shop_write_kib,
            };
            if *libvirt {
                crate::demo_libvirt::libvirt(dir, *listen, *copy_rate_limit_mib).await
            } else if *inside {
                crate::demo::inside_shop(dir, *listen, *copy_rate_limit_mib, shop).await
            } else {
                crate::demo::outside(dir, *listen, *copy_rate_limit_mib, shop, *group).await
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "migctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Sim { data } => {
            let sim = gridsim::start(data).await?;
            for g in &sim.grids {
                println!("grid {} listening on {}", g.name, g.address);
            }
            shutdown_signal().await;
            sim.stop().await;
            Ok(())
        }
        Command::Shop => {
            crate::demo::shop_process(shutdown_signal()).await?;
            Ok(())
        }
        Command::MqNode => {
            crate::mq::node::run(crate::mq::node::Config::from_env()?, shutdown_signal()).await?;
            Ok(())
        }
        Command::MqWriter { nodes, rate, secs } => {
            let mut w = crate::mq::writer::Writer::new(nodes.clone())?;
            match secs {
                Some(s) => {
                    w.run(
                        *rate,
                        tokio::time::sleep(std::time::Duration::from_secs(*s)),
                    )
                    .await
                }
                None => w.run(*rate, shutdown_signal()).await,
            }
            let report = w.report(std::time::Duration::from_secs(30)).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?
            );
            if !report.lost.is_empty() {
                return Err(
                    anyhow::anyhow!("{} acknowledged writes were lost", report.lost.len()).into(),
                );
            }
            Ok(())
        }
        Command::Swarm {
            url,
            op,
            after,
            watchers,
            measure,
            seconds,
        } => {
            let token = std::env::var("MIGCTL_TOKEN")
                .map_err(|_| anyhow::anyhow!("set MIGCTL_TOKEN to an API token"))?;
            let report =
                crate::swarm::run(url, &token, op, *after, *watchers, *measure, *seconds).await?;
            println!(
                "{}",
                serde_json::to_string(&report).map_err(anyhow::Error::from)?
            );
            Ok(())
        }
        Command::User(cmd) => Ok(user(config_dir(&cli)?, cmd).await?),
        Command::Op(cmd) => Ok(op_command(cmd).await?),
        Command::Lock(cmd) => Ok(lock_command(cmd).await?),
        Command::Group(cmd) => Ok(crate::group_cli::run(cmd).await?),
        Command::Grid(cmd) => Ok(grid_command(config_dir(&cli)?, cmd).await?),
        // The same entry point as `mighelper`: its reports are its answer.
        Command::Helper => {
            std::process::exit(helper::run::main_with(|k| std::env::var(k).ok()).await)
        }
    }
}

async fn serve(dir: &Path, overrides: &Overrides) -> Result<(), CliError> {
    let (settings, warnings) = config::load(dir, overrides)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let listen = settings.listen;
    let console = Console::open(settings).await?;
    if let Some(secret) = console.bootstrap_admin().await? {
        println!("created the first user (the password is shown only now):");
        println!("user: admin");
        println!("password: {secret}");
        println!("change it with: migctl user passwd admin");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; pick another with --listen"))?;
    println!(
        "url: http://{}/",
        listener.local_addr().map_err(anyhow::Error::from)?
    );
    console.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn grid_command(dir: &Path, cmd: &GridCommand) -> anyhow::Result<()> {
    let GridCommand::Read { grid, volume } = cmd;
    let (settings, _) = config::load(dir, &Overrides::default())?;
    let monitor = crate::grids::GridMonitor::load(&settings)?;
    let client = monitor
        .client()
        .map_err(|e| anyhow::anyhow!("the console cannot reach any grid: {e}"))?;
    let vol = grid::dialect::VolRef::parse(volume)
        .map_err(|e| anyhow::anyhow!("{volume:?}: {}", e.message))?;
    let c = client.connection(grid).await.ok_or_else(|| {
        anyhow::anyhow!("grid {grid} is not in {}", settings.grids_file.display())
    })??;
    let mut out = tokio::io::stdout();
    let n = c.vol_read(&vol, 0, None, &mut out).await?;
    eprintln!("read {n} bytes of {vol} from grid {grid}");
    Ok(())
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read the password from standard input")?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s).to_owned();
    password::check_strength(&s).map_err(anyhow::Error::msg)?;
    Ok(s)
}

fn shell_actor() -> String {
    format!(
        "shell:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

async fn user(dir: &Path, cmd: &UserCommand) -> anyhow::Result<()> {
    let pool = db::open(&dir.join(config::DATABASE_FILE)).await?;
    let actor = shell_actor();
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            accounts::check_name(name)?;
            let (secret, generated) = if *password_stdin {
                (read_password_stdin()?, false)
            } else {
                (password::random(), true)
            };
            crate::auth::add_user::add_user(&pool, &actor, name, *role, secret.clone(), None)
                .await?;
            println!("added {name} ({role})");
            if generated {
                println!("password: {secret}");
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (secret, generated) = if *password_stdin {
                (read_password_stdin()?, false)
            } else {
                (password::random(), true)
            };
            let hash = password::hash(secret.clone()).await?;
            accounts::set_password(&pool, name, &hash).await?;
            db::audit(&pool, &actor, "user.passwd", name).await?;
            println!("changed the password of {name}; their sessions have ended");
            if generated {
                println!("password: {secret}");
            }
        }
        UserCommand::Del { name } => {
            let users = accounts::list(&pool).await?;
            let admins = users
                .iter()
                .filter(|u| u.role == Role::Admin && !u.disabled)
                .count();
            let target = users.iter().find(|u| &u.name == name);
            if target.is_some_and(|u| u.role == Role::Admin) && admins <= 1 {
                bail!("{name} is the last admin; add another admin before deleting this one");
            }
            accounts::delete(&pool, name).await?;
            db::audit(&pool, &actor, "user.del", name).await?;
            println!("deleted {name}");
        }
        UserCommand::List { json } => {
            let users = accounts::list(&pool).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!(
                    "{:<24} {:<9} {:<9} {:>6}  CREATED",
                    "NAME", "ROLE", "STATUS", "TOKENS"
                );
                for u in users {
                    let status = if u.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<24} {:<9} {:<9} {:>6}  {}",
                        u.name, u.role, status, u.api_tokens, u.created_at
                    );
                }
            }
        }
        UserCommand::Unlock { name } => {
            accounts::unlock(&pool, name).await?;
            db::audit(&pool, &actor, "user.unlock", name).await?;
            println!("unlocked {name}: their failed sign-ins no longer hold them off");
        }
        UserCommand::Token { name } => {
            let user = accounts::find_by_name(&pool, name)
                .await?
                .ok_or_else(|| accounts::AccountError::NoSuchUser(name.clone()))?;
            let token = tokens::create(&pool, user.id).await?;
            db::audit(&pool, &actor, "user.token", name).await?;
            eprintln!("API token for {name} (shown once; send it as `Authorization: Bearer …`):");
            println!("{token}");
        }
    }
    pool.close().await;
    Ok(())
}

async fn op_command(cmd: &OpCommand) -> anyhow::Result<()> {
    use crate::remote::{self, Remote};
    match cmd {
        OpCommand::Start {
            source,
            target,
            action,
            update_target,
            warm,
            cold: _,
            cutover,
            cutover_at,
            stop_timeout,
            keep_source,
            destroy_source,
            keep_source_hours,
            wait,
            remote: r,
        } => {
            let api = Remote::new(r)?;
            let options = remote::StartOptions {
                update_target: *update_target,
                warm: *warm,
                cutover: cutover.clone(),
                cutover_at: cutover_at.clone(),
                stop_timeout_secs: *stop_timeout,
                keep_source: match (keep_source, destroy_source) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                keep_source_hours: *keep_source_hours,
            };
            let op = remote::start(&api, (source, target, action), &options).await?;
            println!("{}", remote::describe(&op));
            if *wait {
                let end = remote::watch(&api, &op.id).await?;
                println!("{}", remote::describe(&end));
                EndedBadly::check(&end)?;
            }
        }
        OpCommand::Show {
            id,
            json,
            remote: r,
        } => {
            let v = Remote::new(r)?.get(&format!("/operations/{id}")).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", remote::describe(&serde_json::from_value(v)?));
            }
        }
        OpCommand::List { json, remote: r } => {
            let v = Remote::new(r)?.get("/operations").await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let ops: Vec<app::model::OperationView> = serde_json::from_value(v)?;
            for op in ops {
                println!("{}", remote::describe(&op));
            }
        }
        OpCommand::Cutover { id, remote: r } => {
            let v = Remote::new(r)?
                .post(&format!("/operations/{id}/cutover"), serde_json::json!({}))
                .await?;
            println!(
                "{}",
                v["requested"].as_str().unwrap_or("cut over requested")
            );
        }
        OpCommand::Cancel { id, remote: r } => {
            let v = Remote::new(r)?
                .post(&format!("/operations/{id}/cancel"), serde_json::json!({}))
                .await?;
            for step in v["cleanup"].as_array().into_iter().flatten() {
                println!("{}", step.as_str().unwrap_or(""));
            }
        }
        OpCommand::Rollback {
            id,
            keep_target,
            destroy_target,
            keep_target_hours,
            warm,
            stop_timeout,
            wait,
            remote: r,
        } => {
            let api = Remote::new(r)?;
            let mut body = serde_json::json!({ "warm": warm });
            match (keep_target, destroy_target) {
                (true, _) => body["keep_target"] = true.into(),
                (_, true) => body["keep_target"] = false.into(),
                _ => {}
            }
            if let Some(h) = keep_target_hours {
                body["keep_target_hours"] = (*h).into();
            }
            if let Some(s) = stop_timeout {
                body["stop_timeout_secs"] = (*s).into();
            }
            let v = api
                .post(&format!("/operations/{id}/rollback"), body)
                .await?;
            let op: app::model::OperationView = serde_json::from_value(v)?;
            println!("{}", remote::describe(&op));
            if *wait {
                let end = remote::watch(&api, &op.id).await?;
                println!("{}", remote::describe(&end));
                EndedBadly::check(&end)?;
            }
        }
        OpCommand::ReleaseSource {
            id,
            reason,
            force,
            remote: r,
        } => {
            let v = Remote::new(r)?
                .post(
                    &format!("/operations/{id}/release-source"),
                    serde_json::json!({ "reason": reason, "force": force }),
                )
                .await?;
            let op: app::model::OperationView = serde_json::from_value(v)?;
            println!("{}", remote::describe(&op));
        }
        OpCommand::Watch { id, remote: r } => {
            let end = remote::watch(&Remote::new(r)?, id).await?;
            println!("{}", remote::describe(&end));
            EndedBadly::check(&end)?;
        }
    }
    Ok(())
}

async fn lock_command(cmd: &LockCommand) -> anyhow::Result<()> {
    use crate::remote::Remote;
    match cmd {
        LockCommand::Show { json, remote: r } => {
            let api = Remote::new(r)?;
            match api.get("/lock").await {
                Ok(v) if *json => println!("{}", serde_json::to_string_pretty(&v)?),
                Ok(v) => println!(
                    "locked by {} ({} of {}/{} to {}/{}, by {} at {})",
                    v["op_id"].as_str().unwrap_or("an unreadable lock"),
                    v["action"].as_str().unwrap_or("?"),
                    v["source_grid"].as_str().unwrap_or("?"),
                    v["source_app_name"].as_str().unwrap_or("?"),
                    v["target_grid"].as_str().unwrap_or("?"),
                    v["target_app_name"].as_str().unwrap_or("?"),
                    v["created_by"].as_str().unwrap_or("?"),
                    v["created_at"].as_str().unwrap_or("?")
                ),
                Err(e) if e.to_string().contains("404") => {
                    println!("no lock");
                    std::process::exit(3);
                }
                Err(e) => return Err(e),
            }
        }
        LockCommand::Override {
            op,
            reason,
            destroy_helper,
            remote: r,
        } => {
            let body = serde_json::json!({"op_id": op, "reason": reason, "destroy_helper": destroy_helper});
            let v = Remote::new(r)?.post("/lock/override", body).await?;
            println!(
                "lock of {op} moved to {}",
                v["archived_to"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("stopping: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command's arguments, to the deepest subcommand: a default
    /// clap shows (`default_value_t`) said again in the doc comment reads
    /// `[default: 0] [default: 0]` in `--help`.
    #[test]
    fn no_help_says_a_default_twice() {
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let said = [arg.get_help(), arg.get_long_help()]
                    .into_iter()
                    .flatten()
                    .any(|h| h.to_string().contains("[default: "));
                // A flag's implicit `false` is never shown.
                let shown = arg.get_action().takes_values()
                    && !arg.is_hide_default_value_set()
                    && !arg.get_default_values().is_empty();
                assert!(
                    !(said && shown),
                    "`{path} --help` says the default of --{} twice",
                    arg.get_id()
                );
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "migctl");
    }
}
