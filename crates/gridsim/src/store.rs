//! One grid's state on disk: `state.json` (apps, their states, properties
//! and volumes), each volume a sparse file, each app's log a JSON-lines file.
//! `state.json` is replaced atomically (temporary file, fsync, rename).

use grid::dialect::{AppInfo, AppState, LogLine, VolumeSpec};
use grid::{AppName, TemplateName, VolumeName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppRecord {
    pub state: AppState,
    pub template: Option<TemplateName>,
    pub properties: BTreeMap<String, String>,
    pub volumes: Vec<VolumeSpec>,
    pub next_log_seq: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub apps: BTreeMap<AppName, AppRecord>,
}

impl State {
    pub fn info(&self, name: &AppName) -> Option<AppInfo> {
        self.apps.get(name).map(|r| AppInfo {
            name: name.clone(),
            state: r.state,
            template: r.template.clone(),
            properties: r.properties.clone(),
            volumes: r.volumes.clone(),
            machine: None,
        })
    }

    pub fn allocated_bytes(&self) -> u64 {
        self.apps
            .values()
            .flat_map(|a| a.volumes.iter())
            .map(|v| v.size)
            .sum()
    }
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn app_dir(&self, app: &AppName) -> PathBuf {
        self.dir.join("apps").join(app.as_str())
    }
    /// Where a mounted volume's files are while the app's process runs:
    /// inside this grid's own directory, never shared with another grid.
    pub fn mount_dir(&self, app: &AppName, vol: &VolumeName) -> PathBuf {
        self.dir.join("mnt").join(app.as_str()).join(vol.as_str())
    }
    /// Where the controller serves a disk of the app's process.
    pub fn disk_socket(&self, app: &AppName, vol: &VolumeName) -> PathBuf {
        self.dir
            .join("disks")
            .join(app.as_str())
            .join(format!("{vol}.sock"))
    }
    pub fn volume_file(&self, app: &AppName, vol: &VolumeName) -> PathBuf {
        self.app_dir(app).join(format!("{vol}.img"))
    }
    pub fn log_file(&self, app: &AppName) -> PathBuf {
        self.app_dir(app).join("log.jsonl")
    }
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("host_key")
    }
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    pub fn load(&self) -> std::io::Result<State> {
        match std::fs::read(self.state_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, state: &State) -> std::io::Result<()> {
        owner_only_dir(&self.dir)?;
        let tmp = self.dir.join("state.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(state)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.state_file())?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Creates the app's directory and its volumes as sparse files.
    pub fn create_volumes(&self, app: &AppName, volumes: &[VolumeSpec]) -> std::io::Result<()> {
        // An app's volumes and log are its grid's business alone.
        owner_only_dir(&self.dir)?;
        owner_only_dir(&self.app_dir(app))?;
        for v in volumes {
            let f = std::fs::File::create(self.volume_file(app, &v.name))?;
            f.set_len(v.size)?;
        }
        Ok(())
    }

    pub fn remove_app(&self, app: &AppName) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.app_dir(app)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn append_log(&self, app: &AppName, line: &LogLine) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file(app))?;
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        f.write_all(&bytes)
    }

    /// Log lines with `seq > since`.
    pub fn read_log(&self, app: &AppName, since: u64) -> std::io::Result<Vec<LogLine>> {
        let text = match std::fs::read_to_string(self.log_file(app)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
            .filter(|l| l.seq > since)
            .collect())
    }
}

/// Creates `dir` (and what is missing above it) for its owner only, and
/// tightens it if it exists open to others.
fn owner_only_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
