//! virtgrid against this machine's real libvirtd and QEMU, with the test
//! guest (scripts/guest): two grids on one libvirtd, a virtual machine
//! created, written, booted, read while it runs, stopped by ACPI and by
//! force, hashed, refused where its disk is qcow2, and destroyed — every
//! command through the relay, as OpenSSH's ForceCommand runs it.
//!
//! Needs root (libvirt's system connection). Skipped otherwise, unless
//! `MIGCTL_REQUIRE_LIBVIRT=1` (scripts/test as root), which fails it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether this test can run here; panics when it must and cannot.
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
    if !host.success() {
        assert!(!required, "scripts/libvirt-host failed");
        eprintln!("skipped: this machine is no libvirt host (scripts/libvirt-host failed)");
        return false;
    }
    true
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

struct Daemon {
    child: Child,
    socket: PathBuf,
    config: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, grid: &str) -> Daemon {
        Daemon::start_with(dir, grid, "")
    }

    /// With more of `virtgrid.toml` (templates).
    fn start_with(dir: &Path, grid: &str, more: &str) -> Daemon {
        let storage = dir.join(grid);
        std::fs::create_dir_all(&storage).unwrap();
        let run = dir.join(format!("{grid}-run"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = run.join("dialect.sock");
        let config = dir.join(format!("{grid}.toml"));
        std::fs::write(
            &config,
            format!(
                "grid = \"{grid}\"\nstorage = \"{}\"\nsocket = \"{}\"\nvirt_type = \"auto\"\nkvm_probe_kernel = \"{}\"\n",
                storage.display(),
                socket.display(),
                guest().0.display()
            ) + more,
        )
        .unwrap();
        Daemon::run(config, socket)
    }

    fn run(config: PathBuf, socket: PathBuf) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_virtgrid"))
            .args(["daemon", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("serving on"), "the daemon said {first:?}");
        eprintln!("{}", first.trim());
        Daemon {
            child,
            socket,
            config,
        }
    }

    /// Killed with SIGKILL (no chance to end its processes), then started again.
    fn crash_and_restart(mut self) -> Daemon {
        let _ = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.restart()
    }

    fn restart(self) -> Daemon {
        let (config, socket) = (self.config.clone(), self.socket.clone());
        drop(self);
        Daemon::run(config, socket)
    }

    /// One command through the relay: (exit status, stdout, stderr).
    fn run_cmd(&self, line: &str, stdin: &[u8]) -> (i32, Vec<u8>, String) {
        let mut relay = Command::new(env!("CARGO_BIN_EXE_virtgrid"))
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
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, line: &str, stdin: &[u8]) -> Vec<u8> {
        let (code, out, err) = self.run_cmd(line, stdin);
        assert_eq!(code, 0, "`{line}` failed: {err}");
        out
    }

    fn json(&self, line: &str) -> serde_json::Value {
        serde_json::from_slice(&self.ok(&format!("{line} --json"), b"")).unwrap()
    }

    fn log(&self, app: &str) -> Vec<String> {
        String::from_utf8(self.ok(&format!("app log {app}"), b""))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the app's log has a line containing `what` after the
    /// line numbered `after`; that line's number.
    fn wait_log(&self, app: &str, after: u64, what: &str, limit: Duration) -> u64 {
        let began = Instant::now();
        loop {
            for l in self.log(app) {
                let seq: u64 = l.split(' ').next().unwrap().parse().unwrap();
                if seq > after && l.contains(what) {
                    return seq;
                }
            }
            assert!(
                began.elapsed() < limit,
                "app {app} never logged {what:?} in {limit:?}; its log:\n{}",
                self.log(app).join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn virsh(args: &[&str]) -> String {
    let out = Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Undefines what a failed run left behind.
struct Domains(Vec<String>);

impl Drop for Domains {
    fn drop(&mut self) {
        for d in &self.0 {
            virsh(&["destroy", d]);
            virsh(&["undefine", d]);
        }
    }
}

fn descriptor(kernel: u64, initrd: u64, cmdline: &str) -> String {
    serde_json::json!({
        "volumes": [
            {"name": "data", "size": 64 * MIB},
            {"name": "boot-kernel", "size": kernel},
            {"name": "boot-initrd", "size": initrd},
        ],
        "properties": {"role": "counter"},
        "machine": {
            "memory_mib": 256, "vcpus": 1, "arch": "x86_64", "machine_type": "pc",
            "boot": {"kind": "kernel", "cmdline": format!("console=ttyS0 quiet panic=-1 {cmdline}")},
            "disks": [{"volume": "data", "dev": "vda", "bus": "virtio"}],
            "serial_console": true
        }
    })
    .to_string()
}

/// Makes app `name` on `grid` from the test guest's files.
fn create(grid: &Daemon, name: &str, cmdline: &str) {
    let (kernel, initrd) = guest();
    let (k, i) = (
        std::fs::read(kernel).unwrap(),
        std::fs::read(initrd).unwrap(),
    );
    grid.ok(
        &format!("app create {name}"),
        descriptor(k.len() as u64, i.len() as u64, cmdline).as_bytes(),
    );
    // A hashed write's receipt gives each block's digest as written.
    let receipt: serde_json::Value = serde_json::from_slice(&grid.ok(
        &format!("vol write {name}:boot-kernel --hash-blocks 4194304 --json"),
        &k,
    ))
    .unwrap();
    let want: Vec<String> = k
        .chunks(4 << 20)
        .map(|b| blake3::hash(b).to_hex().to_string())
        .collect();
    let got: Vec<String> = receipt["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want, "the kernel's blocks as written");
    grid.ok(&format!("vol write {name}:boot-initrd"), &i);
}

fn counter_in(line: &str, what: &str) -> u64 {
    let at = line.find(what).unwrap() + what.len();
    line[at..].trim().parse().unwrap()
}

#[test]
fn a_virtual_machine_lives_its_whole_life_through_the_dialect() {
    if !libvirt_here() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("virtgrid-test")
        .tempdir()
        .unwrap();
    // QEMU (as libvirt-qemu) must reach the images.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _left = Domains(vec![
        "migctl-east-vm1".into(),
        "migctl-east-stubborn".into(),
        "migctl-east-vm3".into(),
        "migctl-east-vm4".into(),
    ]);
    let east = Daemon::start(dir.path(), "east");
    let west = Daemon::start(dir.path(), "west");

    create(&east, "vm1", "");
    let list = east.json("app list");
    assert_eq!(list[0]["name"], "vm1");
    assert_eq!(list[0]["state"], "stopped");
    // Two grids share the libvirtd; each sees only its own domains.
    assert_eq!(west.json("app list"), serde_json::json!([]));
    let info = east.json("app info vm1");
    assert_eq!(info["properties"]["role"], "counter");
    assert_eq!(info["machine"]["disks"][0]["dev"], "vda");
    let grid = east.json("grid info");
    assert_eq!(grid["apps"], 1);
    assert!(grid["free_bytes"].as_u64().unwrap() > 0);

    // Boots, counts; its disk is read while it runs.
    east.ok("app start vm1", b"");
    assert_eq!(east.json("app info vm1")["state"], "running");
    let resumed = east.wait_log("vm1", 0, "resumed at counter: 0", Duration::from_secs(90));
    let counted = east.wait_log("vm1", resumed, "counter: 5", Duration::from_secs(60));
    let head = east.ok("vol read vm1:data --length 64", b"");
    assert!(
        head.starts_with(b"counter "),
        "the running guest's disk begins {:?}",
        String::from_utf8_lossy(&head)
    );
    let (code, _, err) = east.run_cmd("vol write vm1:data", b"x");
    assert_eq!(code, 1);
    assert!(
        err.contains("bad_state") && err.contains("running"),
        "{err}"
    );
    let (code, _, err) = east.run_cmd("app destroy vm1", b"");
    assert!(code == 1 && err.contains("stop it"), "{err}");

    // ACPI shutdown: the guest stops cleanly and the log says so.
    east.ok("app stop vm1 --timeout 60", b"");
    assert_eq!(east.json("app info vm1")["state"], "stopped");
    let lines = east.log("vm1");
    let stopped_at = lines
        .iter()
        .find(|l| l.contains("stopped at counter: "))
        .map(|l| counter_in(l, "stopped at counter: "))
        .unwrap_or_else(|| panic!("no `stopped at counter` in\n{}", lines.join("\n")));
    let said = lines.last().unwrap();
    assert!(
        said.contains("shut down") && said.contains("after the ACPI power button"),
        "{said}"
    );
    assert!(counted > resumed);

    // The image as the test reads it, against what the grid says of it.
    let image = std::fs::read(dir.path().join("east/vm1/data.raw")).unwrap();
    let sum = east.json("vol checksum vm1:data");
    assert_eq!(sum["digest"], blake3::hash(&image).to_hex().as_str());
    let hashes = east.json("vol hash vm1:data --block-size 4194304");
    let want: Vec<serde_json::Value> = image
        .chunks(4 << 20)
        .map(|b| {
            if b.iter().all(|x| *x == 0) {
                serde_json::Value::Null
            } else {
                blake3::hash(b).to_hex().as_str().into()
            }
        })
        .collect();
    assert_eq!(hashes["hashes"], serde_json::Value::Array(want));

    // The daemon restarts; the log keeps its numbers, nothing twice.
    let before = east.log("vm1");
    let east = east.restart();
    assert_eq!(east.log("vm1"), before);

    // Boots again where it stopped.
    east.ok("app start vm1", b"");
    let last = before.len() as u64;
    let seq = east.wait_log("vm1", last, "resumed at counter: ", Duration::from_secs(90));
    let line = east
        .log("vm1")
        .into_iter()
        .find(|l| l.starts_with(&format!("{seq} ")))
        .unwrap();
    assert_eq!(counter_in(&line, "resumed at counter: "), stopped_at);
    east.ok("app stop vm1", b"");

    // A guest that ignores ACPI is forced off at the timeout, and the log says so.
    create(&east, "stubborn", "migguest.acpi=ignore");
    east.ok("app start stubborn", b"");
    east.wait_log("stubborn", 0, "power button: ", Duration::from_secs(90));
    let began = Instant::now();
    east.ok("app stop stubborn --timeout 4", b"");
    assert!(began.elapsed() >= Duration::from_secs(4));
    assert_eq!(east.json("app info stubborn")["state"], "stopped");
    let said = east.log("stubborn").join("\n");
    assert!(said.contains("acpi power button: ignored"), "{said}");
    assert!(
        said.contains("did not shut down within 4 s") && said.contains("forced off"),
        "{said}"
    );

    // A qcow2 disk: the app is listed, its volume refused with the disk named.
    let vm3 = dir.path().join("east/vm3");
    std::fs::create_dir_all(&vm3).unwrap();
    let qcow = vm3.join("disk.qcow2");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&qcow)
            .arg("16M")
            .status()
            .unwrap()
            .success()
    );
    let xml = vm3.join("domain.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>migctl-east-vm3</name><metadata><migctl:app xmlns:migctl='https://migctl.dev/xmlns/app/1' grid='east' name='vm3'/></metadata>\
             <memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vdb' bus='virtio'/></disk></devices></domain>",
            qcow.display()
        ),
    )
    .unwrap();
    virsh(&["define", &xml.to_string_lossy()]);
    let vm3_info = east.json("app info vm3");
    assert_eq!(vm3_info["state"], "stopped");
    // Listed as what is not carried: pre-flight refuses it before anything stops.
    assert!(
        vm3_info["machine"]["not_carried"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("disk vdb is a qcow2 image")),
        "{vm3_info}"
    );
    let (code, _, err) = east.run_cmd("vol read vm3:vdb", b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("vdb") && err.contains("qcow2") && err.contains("raw"),
        "{err}"
    );

    // An adopted domain's image outside the grid's storage is never written.
    let outside = dir.path().join("outside.raw");
    std::fs::write(&outside, vec![0u8; 1 << 20]).unwrap();
    let xml4 = dir.path().join("vm4.xml");
    std::fs::write(
        &xml4,
        format!(
            "<domain type='qemu'><name>migctl-east-vm4</name><metadata><migctl:app xmlns:migctl='https://migctl.dev/xmlns/app/1' grid='east' name='vm4'/></metadata>\
             <memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
            outside.display()
        ),
    )
    .unwrap();
    virsh(&["define", &xml4.to_string_lossy()]);
    let (code, _, err) = east.run_cmd("vol write vm4:vda", b"x");
    assert_eq!(code, 1);
    assert!(err.contains("denied") && err.contains("outside"), "{err}");
    assert_eq!(std::fs::read(&outside).unwrap()[0], 0);
    east.ok("app destroy vm4", b"");
    assert!(
        outside.exists(),
        "an adopted domain's image outside the storage was removed"
    );

    // Destroyed: gone from libvirt and from the storage.
    for app in ["vm1", "stubborn", "vm3"] {
        east.ok(&format!("app destroy {app}"), b"");
    }
    assert_eq!(east.json("app list"), serde_json::json!([]));
    assert!(!dir.path().join("east/vm1").exists());
    assert!(
        virsh(&["list", "--all", "--name"])
            .lines()
            .all(|l| !l.starts_with("migctl-east-"))
    );
    let (code, _, err) = east.run_cmd("app info vm1", b"");
    assert!(code == 1 && err.contains("not_found"), "{err}");
}

/// The relay without its daemon says what to do, as a refusal.
#[test]
fn a_relay_without_its_daemon_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_virtgrid"))
        .args(["relay", "--socket"])
        .arg(dir.path().join("none.sock"))
        .env("SSH_ORIGINAL_COMMAND", "app list")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("internal") && err.contains("virtgrid daemon"),
        "{err}"
    );
}

const TEMPLATES: &str = r#"
[[template]]
name = "Sleeper"
description = "exits when asked"
command = ["/bin/sh", "-c", "echo started as $MIG_ROLE; trap 'echo asked to stop; exit 0' TERM; while true; do sleep 0.1; done"]

[[template]]
name = "Stubborn"
command = ["/bin/sh", "-c", "trap '' TERM; echo up; while true; do sleep 0.1; done"]

[[template]]
name = "Env"
command = ["/bin/sh", "-c", "echo env: MIG_X=$MIG_X LD_PRELOAD=$LD_PRELOAD FROM=$FROM HOME=$HOME"]
env = { FROM = "template" }

[[template]]
name = "Crasher"
restart_on_crash = 1
command = ["/bin/sh", "-c", "echo run; kill -9 $$"]
"#;

fn wait_state(grid: &Daemon, app: &str, state: &str) {
    let began = Instant::now();
    while grid.json(&format!("app info {app}"))["state"] != state {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "app {app} never became {state}: {}",
            grid.log(app).join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Alive: not gone, and not a zombie (killed, not yet reaped).
fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Starts a daemon that must refuse to run (`what` it is, for the failure)
/// and returns what it said on stderr; one still running after 30 s fails
/// the test rather than hanging it.
fn refused_daemon(config: &Path, what: &str) -> String {
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_virtgrid"))
        .args(["daemon", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        if began.elapsed() > Duration::from_secs(30) {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!("{what} is still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "{what} exited successfully");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut err).unwrap();
    err
}

/// Host apps (the helper's kind): processes the daemon supervises, which
/// outlive the SSH command that provisioned them; and empty signal apps.
#[test]
fn host_apps_are_processes_the_daemon_supervises() {
    if !libvirt_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A grid of its own: the other test's grids share this libvirtd.
    let east = Daemon::start_with(dir.path(), "solo", TEMPLATES);
    let names: Vec<String> = east
        .json("template list")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Sleeper", "Stubborn", "Env", "Crasher"]);

    // The process's environment: MIG_* properties, the template's env over
    // any property, nothing of the root daemon's (no LD_PRELOAD from a client).
    east.ok(
        "app provision Env e1 MIG_X=1 LD_PRELOAD=/tmp/evil.so FROM=property",
        b"",
    );
    let line = east.wait_log("e1", 0, "env: ", Duration::from_secs(10));
    let said = east.log("e1");
    let said = said
        .iter()
        .find(|l| l.starts_with(&format!("{line} ")))
        .unwrap();
    assert!(
        said.ends_with("env: MIG_X=1 LD_PRELOAD= FROM=template HOME="),
        "{said}"
    );
    wait_state(&east, "e1", "stopped");
    east.ok("app destroy e1", b"");

    // One daemon a grid's storage.
    let err = refused_daemon(&east.config, "a second daemon for the same storage");
    assert!(
        err.contains("another virtgrid daemon serves grid solo"),
        "{err}"
    );

    // Without a trust directory a grid pulls from none, and says how to
    // give it one (the helper relays meanwhile).
    let (code, _, err) = east.run_cmd(
        "vol pull signal:data --from-grid west --from vm:data --offset 0 --length 0",
        b"",
    );
    assert!(code == 1 && err.contains("no `trust` directory"), "{err}");
    // A trust key others can read stops the daemon at its start, named.
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(trust.join("id_ed25519"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::set_permissions(
        trust.join("id_ed25519"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let open_key = dir.path().join("open-key.toml");
    std::fs::write(
        &open_key,
        format!(
            "grid = \"trusting\"\nstorage = \"{}\"\nsocket = \"{}\"\ntrust = \"{}\"\n",
            dir.path().join("trusting").display(),
            dir.path().join("solo-run/trusting.sock").display(),
            trust.display()
        ),
    )
    .unwrap();
    let err = refused_daemon(&open_key, "a daemon whose trust key others can read");
    assert!(
        err.contains("trust directory") && err.contains("644"),
        "{err}"
    );

    // Provisioned and started; it runs on after the relay has ended.
    east.ok("app provision Sleeper h1 MIG_ROLE=helper", b"");
    east.wait_log("h1", 0, "started as helper", Duration::from_secs(10));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("solo/h1/app.json")).unwrap())
            .unwrap();
    let pid = record["pid"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(pid_alive(pid));
    assert_eq!(east.json("app info h1")["state"], "running");
    east.ok("app stop h1 --timeout 10", b"");
    assert_eq!(east.json("app info h1")["state"], "stopped");
    let said = east.log("h1").join("\n");
    assert!(
        said.contains("SIGTERM") && said.contains("asked to stop"),
        "{said}"
    );
    assert!(!pid_alive(pid));

    // One that ignores SIGTERM is killed at the timeout, and the log says so.
    east.ok("app provision Stubborn h2", b"");
    east.wait_log("h2", 0, "up", Duration::from_secs(10));
    east.ok("app stop h2 --timeout 2", b"");
    assert_eq!(east.json("app info h2")["state"], "stopped");
    let said = east.log("h2").join("\n");
    assert!(
        said.contains("did not exit within 2 s of SIGTERM; killed"),
        "{said}"
    );

    // A crash is restarted as often as the template allows, then failed.
    east.ok("app provision Crasher h3", b"");
    wait_state(&east, "h3", "failed");
    let said = east.log("h3").join("\n");
    assert!(said.contains("restart 1 of 1"), "{said}");
    assert_eq!(
        said.lines().filter(|l| l.ends_with(" run")).count(),
        2,
        "{said}"
    );

    // The console's signal: an empty app, stopped, with its properties.
    east.ok(
        "app create signal",
        br#"{"properties": {"operation": "op1"}}"#,
    );
    let info = east.json("app info signal");
    assert_eq!(info["state"], "stopped");
    assert_eq!(info["properties"]["operation"], "op1");
    let (code, _, err) = east.run_cmd("app create signal", b"{}");
    assert!(code == 1 && err.contains("exists"), "{err}");
    // A VM's volumes without its machine are refused.
    let (code, _, err) = east.run_cmd(
        "app create novm",
        br#"{"volumes": [{"name": "data", "size": 1048576}]}"#,
    );
    assert!(code == 1 && err.contains("machine"), "{err}");

    // The daemon dies under a running process; the next one ends it, and
    // says the app failed.
    let seq = east.log("h1").len() as u64;
    east.ok("app start h1", b"");
    east.wait_log("h1", seq, "started as helper", Duration::from_secs(10));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("solo/h1/app.json")).unwrap())
            .unwrap();
    let pid = record["pid"].as_u64().unwrap();
    let east = east.crash_and_restart();
    assert_eq!(east.json("app info h1")["state"], "failed");
    assert!(
        !pid_alive(pid),
        "the previous daemon's process {pid} still runs"
    );

    let (code, _, err) = east.run_cmd("app provision Nothing h9", b"");
    assert!(code == 1 && err.contains("template list"), "{err}");
    for app in ["h1", "h2", "h3", "signal"] {
        east.ok(&format!("app destroy {app}"), b"");
    }
    assert_eq!(east.json("app list"), serde_json::json!([]));
}
