//! `sim.toml`: which grids to run, on which ports, with which templates and timings.

use grid::{GridName, TemplateName};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Storage each grid offers, in bytes.
    #[serde(default = "default_capacity")]
    pub capacity_bytes: u64,
    /// How long `starting` lasts before an app is `running`.
    #[serde(default = "default_start_delay")]
    pub start_delay_ms: u64,
    /// How long `stopping` lasts before an app is `stopped`.
    #[serde(default = "default_stop_delay")]
    pub stop_delay_ms: u64,
    #[serde(default, rename = "grid")]
    pub grids: Vec<GridConfig>,
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    pub name: GridName,
    /// Loopback port of the grid's controller; 0 picks a free one.
    #[serde(default)]
    pub port: u16,
    /// The address it listens on: 127.0.0.1 unless set (a test that puts
    /// the helper in a network namespace gives the host's end of a veth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::IpAddr>,
}

impl GridConfig {
    pub fn listen_ip(&self) -> std::net::IpAddr {
        self.listen
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: TemplateName,
    #[serde(default)]
    pub description: String,
    /// The program an app of this template runs while `running` (argv).
    /// Without one, the app only changes state.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment the program gets besides the app's properties (the
    /// properties win): e.g. where the helper finds the grids' trust key.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Volumes the program sees as directories: each is unpacked from its
    /// image before the program starts and packed back when it ends; the
    /// program finds it in `GRIDSIM_VOL_<volume>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<grid::VolumeName>,
    /// Volumes the program writes as disks, through the controller (a Unix
    /// socket in `GRIDSIM_DISK_<volume>`, see `disk.rs`): the grid tracks
    /// the blocks it writes, so they can be read and hashed while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<grid::VolumeName>,
    /// How many times in a row the grid restarts an app's process that
    /// dies unexpectedly (killed by a signal it was not sent by a stop);
    /// 0: never, the app is `failed`. A process that exits with a status
    /// decided to end: it is never restarted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_on_crash: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_capacity() -> u64 {
    100 << 30
}
fn default_start_delay() -> u64 {
    1500
}
fn default_stop_delay() -> u64 {
    1000
}

impl SimConfig {
    pub fn with_grids(names: &[&str]) -> anyhow::Result<SimConfig> {
        Ok(SimConfig {
            capacity_bytes: default_capacity(),
            start_delay_ms: default_start_delay(),
            stop_delay_ms: default_stop_delay(),
            grids: names
                .iter()
                .map(|n| {
                    Ok(GridConfig {
                        name: GridName::new(*n)?,
                        port: 0,
                        listen: None,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            templates: vec![],
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<SimConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map_or(1, |t| t.matches('\n').count() + 1);
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
        })
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }

    pub fn template(&self, name: &TemplateName) -> Option<&TemplateConfig> {
        self.templates.iter().find(|t| &t.name == name)
    }
}
