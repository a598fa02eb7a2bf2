//! Apps of a libvirt host that are not virtual machines: migctl's helper
//! (`MigHelper_<app>`, a process of the host supervised by the daemon, so it
//! outlives the SSH command that provisioned it) and the empty apps the
//! console creates as signals (e.g. "cut over now"). Each is a record in its
//! directory of the storage (`app.json`: template, properties, state, pid).

use grid::dialect::AppState;
use grid::{AppName, TemplateName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const RECORD: &str = "app.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub template: Option<TemplateName>,
    pub properties: BTreeMap<String, String>,
    pub state: AppState,
    /// The process running for it, while one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// A template of this host: what a provisioned app runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: TemplateName,
    #[serde(default)]
    pub description: String,
    /// The program (argv) the app runs while `running`; its stdout and
    /// stderr are the app's log. It gets the app's properties as its
    /// environment, over `env`.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How many times in a row the daemon restarts a process killed by a
    /// signal it was not sent by a stop (0: never; the app is `failed`).
    #[serde(default)]
    pub restart_on_crash: u32,
}

pub fn file(app_dir: &Path) -> PathBuf {
    app_dir.join(RECORD)
}

pub fn load(app_dir: &Path) -> std::io::Result<Option<Record>> {
    match std::fs::read(file(app_dir)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the record whole or not at all (a new file renamed over the old).
pub fn save(app_dir: &Path, r: &Record) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(app_dir)?;
    // A name of its own: two saves at once never rename each other's half.
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let tmp = app_dir.join(format!("{RECORD}.{}.{n}.new", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(r)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file(app_dir))?;
    std::fs::File::open(app_dir)?.sync_all()
}

/// Every record in the storage, by app.
pub fn all(storage: &Path) -> std::io::Result<BTreeMap<AppName, Record>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(storage) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(app) = AppName::new(entry.file_name().to_string_lossy()) else {
            continue;
        };
        if let Some(r) = load(&entry.path())? {
            out.insert(app, r);
        }
    }
    Ok(out)
}

/// Whether `pid` is still the process a record names: alive, and running
/// the template's program (a pid reused by another program is not it).
pub fn still_running(pid: u32, program: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| c.split(|b| *b == 0).next().map(<[u8]>::to_vec))
        .is_some_and(|argv0| argv0 == program.as_bytes())
}
