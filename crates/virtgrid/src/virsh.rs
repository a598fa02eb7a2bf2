//! libvirt through `virsh`: an argv, never a shell line, with a time limit
//! and libvirt's own error message carried back. (Why `virsh` and not the
//! C library's binding: docs/ARCHITECTURE.md, "Real grids".)

use grid::dialect::{ErrorCode, Refusal};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Virsh {
    uri: String,
    timeout: Duration,
}

/// What a failed `virsh` call said.
#[derive(Debug)]
pub struct VirshError {
    pub args: String,
    pub message: String,
    /// libvirt says the domain does not exist.
    pub no_domain: bool,
}

impl std::fmt::Display for VirshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "virsh {}: {}", self.args, self.message)
    }
}

impl From<VirshError> for Refusal {
    fn from(e: VirshError) -> Refusal {
        let code = if e.no_domain {
            ErrorCode::NotFound
        } else {
            ErrorCode::Internal
        };
        Refusal::new(code, e.to_string())
    }
}

impl Virsh {
    pub fn new(uri: impl Into<String>, timeout: Duration) -> Virsh {
        Virsh {
            uri: uri.into(),
            timeout,
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `virsh -q -c URI ARGS…`; its standard output.
    pub async fn run(&self, args: &[&str]) -> Result<String, VirshError> {
        let shown = args.join(" ");
        let fail = |message: String| VirshError {
            no_domain: message.contains("Domain not found")
                || message.contains("failed to get domain"),
            args: shown.clone(),
            message,
        };
        let child = tokio::process::Command::new("virsh")
            .arg("-q")
            .arg("-c")
            .arg(&self.uri)
            .args(args)
            // States and errors in libvirt's own words, whatever the host's locale.
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(self.timeout, child).await {
            Err(_) => {
                return Err(fail(format!(
                    "libvirt did not answer within {} s",
                    self.timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(fail(format!("cannot run virsh: {e}"))),
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = stderr
                .lines()
                .map(|l| l.trim().trim_start_matches("error: "))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(fail(if message.is_empty() {
                format!("exited with {}", out.status)
            } else {
                message
            }));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
