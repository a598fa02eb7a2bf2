use clap::Parser;
use migctl::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let filter = EnvFilter::try_from_env("MIGCTL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
