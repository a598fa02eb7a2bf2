//! `virtgrid.toml`: which grid this daemon is, on which libvirt connection,
//! with which storage directory and socket.

use grid::GridName;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The grid's name: the domains whose migctl metadata names it are its apps.
    pub grid: GridName,
    /// The libvirt connection (`virsh -c`).
    #[serde(default = "default_uri")]
    pub uri: String,
    /// Where the grid keeps its apps: a directory per app with its disk
    /// images, its console and its log.
    pub storage: PathBuf,
    /// The Unix socket the daemon serves the dialect on, and the relay
    /// (ForceCommand) connects to. Its directory must not be open to others.
    pub socket: PathBuf,
    /// `kvm`, `qemu` (TCG) or `auto`: KVM where `/dev/kvm` opens and libvirt
    /// offers it, TCG otherwise.
    #[serde(default)]
    pub virt_type: VirtType,
    /// A Linux kernel `auto` boots under KVM to see that KVM works (without
    /// one, a boot sector that checks less).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm_probe_kernel: Option<PathBuf>,
    /// What `app provision` can make: migctl's helper, as a process of this host.
    #[serde(default, rename = "template")]
    pub templates: Vec<crate::hostapp::Template>,
    /// The grids this one trusts, for `vol pull` (the target's daemon reads
    /// the source's volumes itself, one encrypted hop): a directory holding
    /// `id_ed25519` (0600, authorized on those grids), `known_hosts` (their
    /// host keys pinned) and `grids.toml` (their names and addresses). Without
    /// it this grid pulls from none, and the helper relays every byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<PathBuf>,
    /// How long one `virsh` call may take before it counts as hung.
    #[serde(default = "default_virsh_timeout")]
    pub virsh_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VirtType {
    #[default]
    Auto,
    Kvm,
    Qemu,
}

fn default_uri() -> String {
    "qemu:///system".into()
}

fn default_virsh_timeout() -> u64 {
    60
}

impl HostConfig {
    pub fn load(path: &Path) -> anyhow::Result<HostConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let config: HostConfig = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{} is not a virtgrid configuration: {e}", path.display())
        })?;
        if !config.storage.is_absolute() || !config.socket.is_absolute() {
            anyhow::bail!(
                "{}: storage and socket must be absolute paths (libvirt and the relay resolve them from elsewhere)",
                path.display()
            );
        }
        Ok(config)
    }
}
