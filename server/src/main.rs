use clap::Parser;
use migctl::cli::{Cli, run};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let filter = EnvFilter::try_from_env("MIGCTL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a log file keeps plain text.
        .with_ansi(std::io::stderr().is_terminal());
    // One JSON object a line for log collectors; an operation's lines carry
    // its id (the `operation` span and an `op` field).
    match std::env::var("MIGCTL_LOG_FORMAT").as_deref() {
        Err(_) | Ok("text") => logs.init(),
        Ok("json") => logs.json().with_current_span(true).init(),
        Ok(other) => {
            eprintln!(
                "error: MIGCTL_LOG_FORMAT={other:?} is not a log format\n  fix: set it to \"text\" (the default) or \"json\""
            );
            std::process::exit(2);
        }
    }
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
