//! The console migrating a real virtual machine between two libvirt grids:
//! virtgrid daemons for `east` and `west` on this machine's libvirtd, each
//! behind Debian's sshd with the relay as its `ForceCommand` (production's
//! path), the helper a process of the target's daemon, the test guest
//! (scripts/guest) counting on its data disk. The migrated guest must
//! resume on west at the count it reached on east.
//!
//! Needs root; skipped otherwise, unless `MIGCTL_REQUIRE_LIBVIRT=1`
//! (scripts/test as root), which fails it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use grid::keys;
use grid::known_hosts::pin_line;
use serde_json::json;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{api, operator_token, wait_for};

const SSHD: &str = "/usr/sbin/sshd";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn virtgrid() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_migctl")).with_file_name("virtgrid");
    assert!(
        exe.exists(),
        "{} is missing: cargo build -p virtgrid (cargo test at the root builds it)",
        exe.display()
    );
    exe
}

fn libvirt_here() -> bool {
    let required = std::env::var("MIGCTL_REQUIRE_LIBVIRT").as_deref() == Ok("1");
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        assert!(!required, "MIGCTL_REQUIRE_LIBVIRT=1 but this is not root");
        eprintln!("skipped: libvirt's system connection needs root");
        return false;
    }
    let host = Command::new("bash")
        .arg(root().join("scripts/libvirt-host"))
        .status()
        .unwrap();
    assert!(host.success() || !required, "scripts/libvirt-host failed");
    host.success()
}

fn guest() -> (PathBuf, PathBuf) {
    let dir = root().join("target/guest");
    if !dir.join("vmlinuz").exists() || !dir.join("initrd.img").exists() {
        let built = Command::new("bash")
            .arg(root().join("scripts/guest/build"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(built.success(), "scripts/guest/build failed");
    }
    (dir.join("vmlinuz"), dir.join("initrd.img"))
}

/// A process stopped (by pid) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Domains this test makes, ended and undefined however it ends (and
/// before it starts: an earlier run may have been killed).
struct Domains(&'static [&'static str]);

impl Domains {
    fn clear(&self) {
        for d in self.0 {
            for verb in ["destroy", "undefine"] {
                let _ = Command::new("virsh")
                    .args(["-q", "-c", "qemu:///system", verb, d])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for Domains {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One grid: its virtgrid daemon and the sshd in front of it.
struct Host {
    name: &'static str,
    socket: PathBuf,
    port: u16,
    /// Its known_hosts line.
    pin: String,
    _daemon: Running,
    _sshd: Running,
}

fn free_port(attempt: u16) -> u16 {
    let pid = u16::try_from(std::process::id() % 4000).unwrap();
    (0..200)
        .map(|i| 20_000 + (pid * 7 + attempt * 409 + i * 13) % 12_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

fn start_host(dir: &Path, name: &'static str, trust: &Path, authorized: &str) -> Host {
    let storage = dir.join(name);
    let run = dir.join(format!("{name}-run"));
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = run.join("dialect.sock");
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"grid = "{name}"
storage = "{storage}"
socket = "{socket}"
kvm_probe_kernel = "{kernel}"

[[template]]
name = "MigHelper"
description = "migctl's helper: stops, copies and starts an app"
command = ["{migctl}", "helper"]
env = {{ MIG_KEY_FILE = "{trust}/id_ed25519", MIG_KNOWN_HOSTS = "{trust}/known_hosts", MIG_GRIDS_FILE = "{trust}/grids.toml", MIGCTL_LOG = "warn" }}
"#,
            storage = storage.display(),
            socket = socket.display(),
            kernel = guest().0.display(),
            migctl = env!("CARGO_BIN_EXE_migctl"),
            trust = trust.display(),
        ),
    )
    .unwrap();
    let mut daemon = Command::new(virtgrid())
        .args(["daemon", "--config"])
        .arg(&config)
        .env("VIRTGRID_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("serving on"), "virtgrid said {first:?}");
    let daemon = Running(daemon);

    let host_key_path = dir.join(format!("{name}-sshd-key"));
    let host_key = keys::generate();
    keys::save(&host_key_path, &host_key).unwrap();
    let auth = dir.join(format!("{name}-authorized_keys"));
    std::fs::write(&auth, authorized).unwrap();
    std::fs::create_dir_all("/run/sshd").ok();
    for attempt in 0..5 {
        let port = free_port(attempt);
        let sshd_config = dir.join(format!("{name}-sshd_config"));
        std::fs::write(
            &sshd_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowUsers root\nForceCommand {} relay --socket {}\n",
                host_key_path.display(),
                auth.display(),
                dir.join(format!("{name}-sshd.pid")).display(),
                virtgrid().display(),
                socket.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&sshd_config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break child.try_wait().unwrap().is_none();
            }
            assert!(Instant::now() < deadline, "sshd did not start on {port}");
            std::thread::sleep(Duration::from_millis(50));
        };
        if up {
            return Host {
                name,
                socket,
                port,
                pin: pin_line("127.0.0.1", port, host_key.public_key()),
                _daemon: daemon,
                _sshd: Running(child),
            };
        }
    }
    panic!("sshd did not start on any of 5 ports");
}

impl Host {
    /// A command on the grid's daemon directly (the test's own hand).
    fn run(&self, line: &str, stdin: &[u8]) -> Vec<u8> {
        let mut relay = Command::new(virtgrid())
            .args(["relay", "--socket"])
            .arg(&self.socket)
            .env("SSH_ORIGINAL_COMMAND", line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = relay.stdin.take().unwrap();
        let bytes = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        });
        let out = relay.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(
            out.status.success(),
            "grid {}: `{line}` failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn log(&self, app: &str) -> String {
        String::from_utf8(self.run(&format!("app log {app}"), b"")).unwrap()
    }

    fn wait_log(&self, app: &str, what: &str) -> String {
        let began = Instant::now();
        loop {
            let log = self.log(app);
            if let Some(l) = log.lines().find(|l| l.contains(what)) {
                return l.to_owned();
            }
            assert!(
                began.elapsed() < Duration::from_secs(120),
                "grid {}: app {app} never said {what:?}:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn json(&self, line: &str) -> serde_json::Value {
        serde_json::from_slice(&self.run(&format!("{line} --json"), b"")).unwrap()
    }
}

fn counter_after(line: &str, what: &str) -> u64 {
    let at = line.find(what).unwrap() + what.len();
    line[at..].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_migrates_a_virtual_machine_between_libvirt_hosts() {
    if !libvirt_here() {
        return;
    }
    let (kernel, initrd) = guest();
    let domains = Domains(&["migctl-east-vm1", "migctl-west-vm1"]);
    domains.clear();
    let dir = tempfile::Builder::new()
        .prefix("migctl-libvirt")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The console's key and the helper's (trust between the grids).
    let (console, trust) = (dir.path().join("console"), dir.path().join("trust"));
    std::fs::create_dir_all(&console).unwrap();
    std::fs::create_dir_all(&trust).unwrap();
    let (console_key, trust_key) = (keys::generate(), keys::generate());
    keys::save(&console.join("id_ed25519"), &console_key).unwrap();
    keys::save(&trust.join("id_ed25519"), &trust_key).unwrap();
    let authorized = format!(
        "{}\n{}\n",
        console_key.public_key().to_openssh().unwrap(),
        trust_key.public_key().to_openssh().unwrap()
    );
    let east = start_host(dir.path(), "east", &trust, &authorized);
    let west = start_host(dir.path(), "west", &trust, &authorized);
    let mut grids = String::new();
    let mut known = String::new();
    for h in [&east, &west] {
        grids += &format!(
            "[[grid]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\nuser = \"root\"\n\n",
            h.name, h.port
        );
        known += &format!("{}\n", h.pin.trim_end());
    }
    for d in [&console, &trust] {
        std::fs::write(d.join("grids.toml"), &grids).unwrap();
        std::fs::write(d.join("known_hosts"), &known).unwrap();
    }

    // vm1 on east: the test guest, counting.
    let (k, i) = (
        std::fs::read(kernel).unwrap(),
        std::fs::read(initrd).unwrap(),
    );
    let descriptor = json!({
        "volumes": [
            {"name": "data", "size": 64 << 20},
            {"name": "boot-kernel", "size": k.len()},
            {"name": "boot-initrd", "size": i.len()},
        ],
        "machine": {
            "memory_mib": 256, "vcpus": 1, "arch": "x86_64", "machine_type": "pc",
            "boot": {"kind": "kernel", "cmdline": "console=ttyS0 quiet panic=-1"},
            "disks": [{"volume": "data", "dev": "vda", "bus": "virtio"}],
            "serial_console": true
        }
    });
    east.run("app create vm1", descriptor.to_string().as_bytes());
    east.run("vol write vm1:boot-kernel", &k);
    east.run("vol write vm1:boot-initrd", &i);
    east.run("app start vm1", b"");
    east.wait_log("vm1", "counter: 10");

    let config = dir.path().join("migctl");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("migctl.toml"),
        format!(
            "grids_file = \"{}\"\nprivate_key_file = \"{}\"\nknown_hosts_file = \"{}\"\n",
            console.join("grids.toml").display(),
            console.join("id_ed25519").display(),
            console.join("known_hosts").display()
        ),
    )
    .unwrap();
    let token = operator_token(&config);
    let (console_process, url) = support::serve_logging(&config, Stdio::inherit(), &[]);
    let _console = Running(console_process);

    let (status, started) = api(
        &url,
        &token,
        "POST",
        "/operations",
        Some(json!({
            "source_grid": "east", "source_app": "vm1",
            "target_grid": "west", "target_app": "vm1",
            "action": "migrate",
        })),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let began = Instant::now();
    let op = wait_for(&url, &token, &id, |op| !op["outcome"].is_null()).await;
    let took = began.elapsed();
    let lines = support::helper_lines(&url, &token, &id).await;
    assert_eq!(
        op["outcome"],
        "done",
        "{op}\nthe helper said:\n{}",
        lines.join("\n")
    );
    println!(
        "migrated vm1 east → west in {took:.1?}: {} bytes copied of {}, down {} ms",
        op["bytes_copied"], op["bytes_total"], op["downtime_ms"]
    );
    println!("the helper said:\n{}", lines.join("\n"));

    // On west it runs and resumes where it stopped on east.
    assert_eq!(west.json("app info vm1")["state"], "running");
    let resumed = west.wait_log("vm1", "resumed at counter: ");
    let n = counter_after(&resumed, "resumed at counter: ");
    assert!(
        n >= 10,
        "vm1 resumed on west at {n}: its disk did not come along"
    );
    west.wait_log("vm1", &format!("counter: {}", n + 3));
    // The source is gone from east once the target was verified; so is the helper.
    assert_eq!(east.json("app list"), json!([]));
    let apps: Vec<String> = west
        .json("app list")
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(apps, ["vm1"]);
    west.run("app stop vm1", b"");
    west.run("app destroy vm1", b"");
}
