use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;
use virtgrid::config::HostConfig;

/// The controller dialect on a libvirt host.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve one grid of this host on its Unix socket (runs as root, or as a
    /// user libvirt lets manage domains)
    Daemon {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one command from SSH_ORIGINAL_COMMAND (or the arguments) on the
    /// daemon, with this process's stdin and stdout: OpenSSH's ForceCommand
    Relay {
        #[arg(long)]
        socket: PathBuf,
        line: Vec<String>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("VIRTGRID_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match Cli::parse().command {
        Cmd::Daemon { config } => match daemon(&config).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
        Cmd::Relay { socket, line } => {
            let line = std::env::var("SSH_ORIGINAL_COMMAND").unwrap_or_else(|_| line.join(" "));
            virtgrid::socket::relay(&socket, &line).await
        }
    };
    std::process::exit(code);
}

async fn daemon(config: &std::path::Path) -> anyhow::Result<()> {
    let config = HostConfig::load(config)?;
    let socket = config.socket.clone();
    let host = virtgrid::host::Host::open(config).await?;
    let listener = virtgrid::socket::bind(&socket)?;
    println!(
        "grid {} on {} serving on {} ({:?})",
        host.config().grid,
        host.config().uri,
        socket.display(),
        host.virt_type()
    );
    let consoles = {
        let host = host.clone();
        tokio::spawn(async move {
            loop {
                host.ingest_consoles().await;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        })
    };
    let served = tokio::spawn(virtgrid::socket::serve(listener, host.clone()));
    shutdown_signal().await;
    consoles.abort();
    served.abort();
    virtgrid::supervise::stop_all(&host).await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
