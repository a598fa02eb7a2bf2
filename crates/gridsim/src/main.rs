use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// Simulated grid controllers over SSH.
#[derive(Parser)]
#[command(name = "gridsim", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a simulator directory: sim.toml, host keys, the console's key, trust between grids
    Init {
        dir: PathBuf,
        /// Grid names, comma-separated
        #[arg(long, default_value = "east,west,north", value_delimiter = ',')]
        grids: Vec<String>,
        /// First grid's port (the others follow); 0 picks free ports at every start
        #[arg(long, default_value_t = 2201)]
        base_port: u16,
        /// Program MigHelper apps run (argv, space-separated)
        #[arg(long)]
        helper: Option<String>,
    },
    /// Run every grid of a simulator directory until SIGINT/SIGTERM
    Serve {
        #[arg(long)]
        data: PathBuf,
    },
    /// Run one command from SSH_ORIGINAL_COMMAND (or the arguments) on stdin/stdout,
    /// for OpenSSH's ForceCommand
    Controller {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        grid: grid::GridName,
        line: Vec<String>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("GRIDSIM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Cmd::Init {
            dir,
            grids,
            base_port,
            helper,
        } => {
            let names: Vec<&str> = grids.iter().map(String::as_str).collect();
            let helper = helper
                .map(|h| h.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            let config = gridsim::init(&dir, &names, base_port, helper)?;
            println!(
                "wrote {} with grids {}",
                dir.display(),
                config
                    .grids
                    .iter()
                    .map(|g| g.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Cmd::Serve { data } => {
            let sim = gridsim::start(&data).await?;
            for g in &sim.grids {
                println!("grid {} listening on {}", g.name, g.address);
            }
            println!(
                "console files: {}",
                gridsim::SimPaths::new(&data).console_dir().display()
            );
            shutdown_signal().await;
            sim.stop().await;
            Ok(0)
        }
        Cmd::Controller { data, grid, line } => {
            let line = match std::env::var("SSH_ORIGINAL_COMMAND") {
                Ok(l) => l,
                Err(_) => shell_words::join(&line),
            };
            gridsim::run_stdio(&data, &grid, &line).await
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
