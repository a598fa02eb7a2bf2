//! `migctl demo --libvirt`: real grids on this machine. Two libvirt grids,
//! `east` and `west`, on this host's libvirtd — each a virtgrid daemon
//! behind Debian's sshd with the relay as its `ForceCommand`, exactly as on
//! a real host — the test guest `vm1` (scripts/guest) running on east, and
//! the console. Root, libvirt, QEMU, sshd and the test guest are required;
//! what is missing is named with how to get it.

use crate::cli::CliError;
use crate::config;
use crate::demo;
use anyhow::{Context, anyhow};
use grid::dialect::{Boot, Descriptor, Machine, MachineDisk, VolRef, VolumeSpec};
use grid::known_hosts::{KnownHosts, pin_line};
use grid::{AppName, ClientConfig, Connection, Endpoint, GridName, VolumeName, keys};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const GRIDS: [&str; 2] = ["east", "west"];
const SSHD: &str = "/usr/sbin/sshd";
const APP: &str = "vm1";
const DATA_MIB: u64 = 64;
/// Where the grids keep their VMs' images (one libvirtd per machine: one
/// place), unless `MIGCTL_DEMO_STORAGE` says otherwise.
const DEFAULT_STORAGE: &str = "/var/lib/migctl/demo";

/// A process of the demo, ended (SIGTERM, by its pid) when the demo ends.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// What the demo needs and this machine lacks, each with how to get it.
fn missing(virtgrid: &Path, guest: &Path) -> Vec<String> {
    let mut out = vec![];
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().next().unwrap_or("").to_owned())
        });
    if uid.as_deref() != Some("0") {
        out.push("root (libvirt's system connection, and sshd): run it as root".to_owned());
    }
    for (tool, package) in [
        ("virsh", "libvirt-clients"),
        ("libvirtd", "libvirt-daemon libvirt-daemon-driver-qemu"),
        ("qemu-system-x86_64", "qemu-system-x86"),
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()));
        if !found {
            out.push(format!(
                "{tool}: apt-get install {package} (scripts/setup --test does)"
            ));
        }
    }
    if !Path::new(SSHD).exists() {
        out.push(format!("{SSHD}: apt-get install openssh-server"));
    }
    if !virtgrid.exists() {
        out.push(format!(
            "{}: the libvirt grid controller, built with migctl: cargo build -p virtgrid",
            virtgrid.display()
        ));
    }
    for f in ["vmlinuz", "initrd.img"] {
        if !guest.join(f).exists() {
            out.push(format!(
                "{}: the test guest: scripts/guest/build (scripts/demo --libvirt builds it)",
                guest.join(f).display()
            ));
        }
    }
    out
}

pub async fn libvirt(
    dir: &Path,
    listen: SocketAddr,
    copy_rate_limit_mib: Option<u64>,
) -> Result<(), CliError> {
    let exe = std::env::current_exe().context("cannot tell where migctl is")?;
    let virtgrid = exe.with_file_name("virtgrid");
    // target/debug/migctl → target/guest, where scripts/guest/build puts it.
    let guest = std::env::var_os("MIGCTL_GUEST_DIR")
        .map(PathBuf::from)
        .or_else(|| exe.parent()?.parent().map(|t| t.join("guest")))
        .unwrap_or_else(|| PathBuf::from("target/guest"));
    let lacking = missing(&virtgrid, &guest);
    if !lacking.is_empty() {
        return Err(anyhow!(
            "migctl demo --libvirt needs what this machine lacks:\n  - {}",
            lacking.join("\n  - ")
        )
        .into());
    }
    let answers = tokio::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system", "version"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !answers {
        return Err(anyhow!(
            "libvirtd does not answer on qemu:///system: start it (scripts/libvirt-host does, on machines without systemd)"
        )
        .into());
    }

    let base = dir.join("libvirt");
    let (console, trust) = (base.join("console"), base.join("trust"));
    for d in [&base, &console, &trust] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot make {}", d.display()))?;
    }
    // The images live outside the console's directory, which the console
    // keeps closed to others: libvirt's QEMU (libvirt-qemu) must reach them.
    let images = std::env::var_os("MIGCTL_DEMO_STORAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORAGE));
    std::fs::create_dir_all(&images)
        .with_context(|| format!("cannot make {}", images.display()))?;
    std::fs::set_permissions(&images, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot open {} to libvirt's QEMU", images.display()))?;
    let console_key = key(&console.join("id_ed25519"))?;
    let trust_key = key(&trust.join("id_ed25519"))?;
    let authorized = format!(
        "{}\n{}\n",
        console_key
            .public_key()
            .to_openssh()
            .map_err(anyhow::Error::from)?,
        trust_key
            .public_key()
            .to_openssh()
            .map_err(anyhow::Error::from)?
    );

    let mut children = vec![];
    let mut hosts = vec![];
    for name in GRIDS {
        let (daemon, sshd, port, pin) = start_host(
            &base,
            &images.join(name),
            name,
            &exe,
            &virtgrid,
            &guest,
            &trust,
            &authorized,
        )
        .await?;
        children.push(daemon);
        children.push(sshd);
        hosts.push((name, port, pin));
    }
    let mut grids = String::from("# Written by `migctl demo --libvirt`.\n");
    let mut known = String::new();
    for (name, port, pin) in &hosts {
        grids += &format!(
            "[[grid]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nuser = \"root\"\ndescription = \"libvirt on this host\"\n\n"
        );
        known += &format!("{}\n", pin.trim_end());
    }
    for d in [&console, &trust] {
        for (file, text) in [("grids.toml", &grids), ("known_hosts", &known)] {
            std::fs::write(d.join(file), text)
                .with_context(|| format!("cannot write {}", d.join(file).display()))?;
        }
    }
    let east = Endpoint {
        grid: GridName::new("east").map_err(anyhow::Error::from)?,
        host: "127.0.0.1".into(),
        port: hosts[0].1,
        user: "root".into(),
    };
    let client = ClientConfig::new(
        console_key,
        KnownHosts::load(&console.join("known_hosts")).map_err(anyhow::Error::from)?,
    );
    let mut conns = vec![];
    for (i, (name, port, _)) in hosts.iter().enumerate() {
        let endpoint = Endpoint {
            grid: GridName::new(*name).map_err(anyhow::Error::from)?,
            port: *port,
            ..east.clone()
        };
        let conn = Connection::open(if i == 0 { &east } else { &endpoint }, &client)
            .await
            .map_err(|e| anyhow!("cannot reach grid {name} through its sshd: {e}"))?;
        conns.push(conn);
    }
    place_guest(&conns, &guest).await?;

    let file = dir.join(config::CONFIG_FILE);
    if !file.exists() {
        std::fs::write(
            &file,
            "# Written by `migctl demo --libvirt`: libvirt grids on this host.\n\
             grids_file = \"libvirt/console/grids.toml\"\n\
             private_key_file = \"libvirt/console/id_ed25519\"\n\
             known_hosts_file = \"libvirt/console/known_hosts\"\n",
        )
        .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let grids: Vec<(String, String)> = hosts
        .iter()
        .map(|(name, port, _)| ((*name).to_owned(), format!("127.0.0.1:{port}")))
        .collect();
    let served = demo::serve_console(dir, listen, copy_rate_limit_mib, &grids).await;
    // The daemons end their helpers; the VMs run on, defined in libvirt,
    // and the next demo finds them.
    drop(children);
    served
}

fn key(path: &Path) -> anyhow::Result<keys::PrivateKey> {
    if path.exists() {
        return keys::load(path).map_err(anyhow::Error::from);
    }
    let k = keys::generate();
    keys::save(path, &k)?;
    Ok(k)
}

/// One grid: its virtgrid daemon, and sshd in front of it; sshd's port and
/// its known_hosts line.
#[allow(clippy::too_many_arguments)]
async fn start_host(
    base: &Path,
    storage: &Path,
    name: &str,
    migctl: &Path,
    virtgrid: &Path,
    guest: &Path,
    trust: &Path,
    authorized: &str,
) -> anyhow::Result<(Child, Child, u16, String)> {
    let run = base.join(format!("{name}-run"));
    for d in [storage, run.as_path()] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot make {}", d.display()))?;
    }
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))?;
    let socket = run.join("dialect.sock");
    let config = base.join(format!("{name}.toml"));
    let q = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned()).to_string();
    std::fs::write(
        &config,
        format!(
            "# Written by `migctl demo --libvirt`.\ngrid = \"{name}\"\nstorage = {}\nsocket = {}\nkvm_probe_kernel = {}\n\
             # The other grid: its daemon reads this one's volumes itself (vol pull).\ntrust = {}\n\n\
             [[template]]\nname = \"MigHelper\"\ndescription = \"migctl's helper: stops, copies and starts an app\"\n\
             command = [{}, \"helper\"]\nenv = {{ MIG_KEY_FILE = {}, MIG_KNOWN_HOSTS = {}, MIG_GRIDS_FILE = {} }}\n\
             # A helper killed mid-copy is started again and resumes the copy.\nrestart_on_crash = 3\n",
            q(storage),
            q(&socket),
            q(&guest.join("vmlinuz")),
            q(trust),
            q(migctl),
            q(&trust.join("id_ed25519")),
            q(&trust.join("known_hosts")),
            q(&trust.join("grids.toml")),
        ),
    )?;
    let mut daemon = tokio::process::Command::new(virtgrid)
        .args(["daemon", "--config"])
        .arg(&config)
        .env("VIRTGRID_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", virtgrid.display()))?;
    let stdout = daemon.stdout.take().context("the daemon has no stdout")?;
    let daemon = Child(daemon);
    let mut first = String::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::BufReader::new(stdout).read_line(&mut first),
    )
    .await
    .map_err(|_| anyhow!("grid {name}'s virtgrid daemon did not start within 60 s"))??;
    if !first.contains("serving on") {
        return Err(anyhow!(
            "grid {name}'s virtgrid daemon did not start (see its errors above)"
        ));
    }

    let host_key_path = base.join(format!("{name}-sshd-key"));
    let host_key = key(&host_key_path)?;
    let auth = base.join(format!("{name}-authorized_keys"));
    std::fs::write(&auth, authorized)?;
    std::fs::create_dir_all("/run/sshd").ok();
    for _ in 0..5 {
        let port = demo::free_port_below_ephemeral("127.0.0.1:0".parse()?)?.port();
        let sshd_config = base.join(format!("{name}-sshd_config"));
        std::fs::write(
            &sshd_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowUsers root\nForceCommand {} relay --socket {}\n",
                host_key_path.display(),
                auth.display(),
                base.join(format!("{name}-sshd.pid")).display(),
                virtgrid.display(),
                socket.display()
            ),
        )?;
        let mut sshd = tokio::process::Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&sshd_config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {SSHD}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let up = loop {
            if sshd.try_wait()?.is_some() {
                break false;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break sshd.try_wait()?.is_none();
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!("sshd for grid {name} did not start on port {port}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if up {
            let pin = pin_line("127.0.0.1", port, host_key.public_key());
            return Ok((daemon, Child(sshd), port, pin));
        }
    }
    Err(anyhow!(
        "sshd for grid {name} did not start on any of 5 ports"
    ))
}

/// `vm1` on east (the first grid), counting, unless a grid has it already.
async fn place_guest(grids: &[Connection], guest: &Path) -> anyhow::Result<()> {
    let app = AppName::new(APP)?;
    for g in grids {
        if g.app_info(&app).await.is_ok() {
            return Ok(());
        }
    }
    let east = grids.first().context("no grids")?;
    let (kernel, initrd) = (guest.join("vmlinuz"), guest.join("initrd.img"));
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len());
    let vol = |n: &str| VolumeName::new(n);
    let descriptor = Descriptor {
        template: None,
        properties: [(
            "about".to_owned(),
            "the test guest: counts on its disk data".to_owned(),
        )]
        .into(),
        volumes: vec![
            VolumeSpec {
                name: vol("data")?,
                size: DATA_MIB << 20,
            },
            VolumeSpec {
                name: vol(Boot::KERNEL)?,
                size: size(&kernel)?,
            },
            VolumeSpec {
                name: vol(Boot::INITRD)?,
                size: size(&initrd)?,
            },
        ],
        machine: Some(Machine {
            memory_mib: 256,
            vcpus: 1,
            arch: "x86_64".into(),
            machine_type: "pc".into(),
            boot: Boot::Kernel {
                cmdline: "console=ttyS0 quiet panic=-1".into(),
            },
            disks: vec![MachineDisk {
                volume: vol("data")?,
                dev: "vda".into(),
                bus: "virtio".into(),
            }],
            serial_console: true,
            not_carried: vec![],
        }),
    };
    east.app_create(&app, &descriptor).await?;
    for (v, file) in [(Boot::KERNEL, &kernel), (Boot::INITRD, &initrd)] {
        let mut f = tokio::fs::File::open(file).await?;
        east.vol_write(&VolRef::new(app.clone(), vol(v)?), 0, &mut f)
            .await?;
    }
    east.app_start(&app).await?;
    Ok(())
}
