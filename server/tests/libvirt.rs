//! `migctl demo --libvirt`, and the console migrating a real virtual machine
//! with it: virtgrid daemons for `east` and `west` on this machine's
//! libvirtd, each behind Debian's sshd with the relay as its `ForceCommand`
//! (production's path), the helper a process of the target's daemon, the
//! test guest (scripts/guest) counting on its data disk. The migrated guest
//! must resume on west at the count it reached on east; then a warm migrate
//! back to east (passes while it counts), and a snapshot on west.
//!
//! Needs root; skipped otherwise, unless `MIGCTL_REQUIRE_LIBVIRT=1`
//! (scripts/test as root), which fails it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{api, operator_token, wait_for};

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

/// One grid of the demo, as the test reaches its daemon directly.
struct Host {
    name: &'static str,
    socket: PathBuf,
}

impl Host {
    /// `line` for the grid's daemon, through its relay.
    fn relay(&self, line: &str) -> Command {
        let mut c = Command::new(virtgrid());
        c.args(["relay", "--socket"])
            .arg(&self.socket)
            .env("SSH_ORIGINAL_COMMAND", line);
        c
    }

    /// A command on the grid's daemon directly (the test's own hand).
    fn run(&self, line: &str, stdin: &[u8]) -> Vec<u8> {
        let mut relay = self
            .relay(line)
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

    /// Follows an app's log (`app log APP --follow`) until it ends (the
    /// app destroyed) or the returned process is stopped: every line.
    fn follow(&self, app: &str) -> (Running, std::thread::JoinHandle<Vec<String>>) {
        let mut relay = self
            .relay(&format!("app log {app} --follow"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(relay.stdout.take().unwrap());
        let lines = std::thread::spawn(move || out.lines().map_while(Result::ok).collect());
        (Running(relay), lines)
    }

    /// Waits until app's log has a line with `what` (the app may not
    /// exist yet: a helper being provisioned).
    fn wait_log(&self, app: &str, what: &str) -> String {
        let began = Instant::now();
        loop {
            let log = self
                .relay(&format!("app log {app}"))
                .stdin(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
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
    let (kernel, _) = guest();
    let domains = Domains(&[
        "migctl-east-vm1",
        "migctl-west-vm1",
        "migctl-west-vm1snap",
        "migctl-east-vm2",
        "migctl-west-vm2",
        "migctl-east-vm3",
        "migctl-east-vm4",
    ]);
    domains.clear();
    let dir = tempfile::Builder::new()
        .prefix("migctl-libvirt")
        .tempdir()
        .unwrap();
    // The images outside the console's directory (which it keeps 0700).
    let images = tempfile::Builder::new()
        .prefix("migctl-libvirt-images")
        .tempdir()
        .unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_migctl"))
        .env("MIGCTL_LOG", "warn")
        .env("MIGCTL_GUEST_DIR", kernel.parent().unwrap())
        .env("MIGCTL_DEMO_STORAGE", images.path())
        // West pulls a copy in well under a second: at 4 MiB/s the helper
        // is still copying when the test kills it (the kernel's 14 MiB).
        .args(["demo", "--libvirt", "--copy-rate-limit-mib", "4"])
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let _demo = Running(demo);
    let mut printed = vec![];
    for line in said.by_ref() {
        let line = line.unwrap();
        printed.push(line.clone());
        if line.starts_with("password: ") {
            break;
        }
    }
    let field = |k: &str| {
        printed
            .iter()
            .find_map(|l| l.strip_prefix(k).map(str::to_owned))
            .unwrap_or_else(|| panic!("the demo did not print {k:?}: {printed:?}"))
    };
    let url = field("url: ").trim_end_matches('/').to_owned();
    assert_eq!(field("user: "), "admin");
    for g in ["east", "west"] {
        assert!(
            printed
                .iter()
                .any(|l| l.starts_with(&format!("grid: {g} at 127.0.0.1:"))),
            "{printed:?}"
        );
    }
    let base = dir.path().join("libvirt");
    let (east, west) = (
        Host {
            name: "east",
            socket: base.join("east-run/dialect.sock"),
        },
        Host {
            name: "west",
            socket: base.join("west-run/dialect.sock"),
        },
    );
    // The demo's vm1 on east, counting.
    assert_eq!(east.json("app info vm1")["state"], "running");
    east.wait_log("vm1", "counter: 10");
    let token = operator_token(dir.path());

    let cold = json!({
        "source_grid": "east", "source_app": "vm1",
        "target_grid": "west", "target_app": "vm1",
        "action": "migrate",
    });
    let (following, followed) = east.follow("vm1");
    let (id, began) = start(&url, &token, &cold).await;
    finish(&url, &token, &id, &cold, began).await;
    drop(following);
    let followed = followed.join().unwrap();
    let said = support::helper_lines(&url, &token, &id).await.join("\n");
    println!("the helper said:\n{said}");
    // West's daemon read east's disks itself, over the trust between them
    // (one encrypted hop), rather than through the helper.
    assert!(
        said.contains("copy method: west pulls from east"),
        "the helper did not copy by vol pull:\n{said}"
    );

    // The monitor showed the guest's console: its last line on east, where
    // it stopped counting, is among the operation's events from the source.
    let events = support::events(&url, &token, &id).await;
    let stopped_at = events
        .iter()
        .filter(|e| e["source"] == "source")
        .filter_map(|e| e["data"]["text"].as_str())
        .find(|t| t.contains("stopped at counter: "))
        .map(|t| counter_after(t, "stopped at counter: "))
        .unwrap_or_else(|| {
            let from_source: Vec<_> = events
                .iter()
                .filter(|e| e["source"] == "source")
                .map(|e| format!("{} {}", e["data"]["seq"], e["data"]["text"]))
                .collect();
            panic!(
                "the operation's events never showed the guest's `stopped at counter` line; from the source:\n{}\n\neast's log of vm1, followed by the test:\n{}",
                from_source.join("\n"),
                followed.join("\n")
            )
        });

    // On west it runs and resumes exactly where it stopped on east: nothing
    // lost, nothing torn.
    assert_eq!(west.json("app info vm1")["state"], "running");
    let resumed = west.wait_log("vm1", "resumed at counter: ");
    let n = counter_after(&resumed, "resumed at counter: ");
    assert_eq!(
        n, stopped_at,
        "vm1 stopped on east at {stopped_at} and resumed on west at {n}"
    );
    assert!(
        n >= 10,
        "vm1 resumed on west at {n}: it had counted to 10 on east"
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

    // Warm, back to east: passes while the guest counts, then a short cutover.
    let op = operation(
        &url,
        &token,
        json!({
            "source_grid": "west", "source_app": "vm1",
            "target_grid": "east", "target_app": "vm1",
            "action": "migrate", "warm": true,
        }),
    )
    .await;
    assert!(
        !op["passes"].as_array().unwrap().is_empty(),
        "a warm migrate without passes: {op}"
    );
    assert_eq!(east.json("app info vm1")["state"], "running");
    // West had counted at least to n + 3 before the migrate began.
    let last = n + 3;
    let resumed = east.wait_log("vm1", "resumed at counter: ");
    let m = counter_after(&resumed, "resumed at counter: ");
    assert!(
        m >= last,
        "vm1 resumed on east at {m}, below {last}, which west had reached"
    );
    assert_eq!(west.json("app list"), json!([]));

    // A snapshot of it on west: a copy, stopped; the original runs on.
    let op = operation(
        &url,
        &token,
        json!({
            "source_grid": "east", "source_app": "vm1",
            "target_grid": "west", "target_app": "vm1snap",
            "action": "snapshot",
        }),
    )
    .await;
    assert_eq!(west.json("app info vm1snap")["state"], "stopped", "{op}");
    assert_eq!(east.json("app info vm1")["state"], "running");

    // The helper killed mid-copy: west's daemon starts it again, it resumes,
    // and the migrate ends done.
    let (id, began) = start(&url, &token, &cold).await;
    // Killed once it has begun to copy (its line about the first volume,
    // read in its own log on west, not through the console). Should the
    // copy be over by then, the restarted helper finds the target started
    // by its first run and ends the same way.
    west.wait_log("MigHelper_vm1", "volume data: ");
    let record = images.path().join("west/MigHelper_vm1/app.json");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let pid = record["pid"].as_u64().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let op = finish(&url, &token, &id, &cold, began).await;
    let lines = support::helper_lines(&url, &token, &id).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("killed by signal 9") && l.contains("restart 1 of 3")),
        "the helper's restart is not in its log:\n{}",
        lines.join("\n")
    );
    // The restarted helper measured the downtime from its first run's stop.
    assert!(op["downtime_ms"].as_u64().is_some(), "{op}");
    assert_eq!(west.json("app info vm1")["state"], "running");
    assert_eq!(east.json("app list"), json!([]));
    west.run("app stop vm1", b"");
    west.run("app destroy vm1", b"");
    west.run("app destroy vm1snap", b"");

    faults(&url, &token, &east, &west, images.path()).await;
}

/// A guest that ignores its ACPI power button is forced off at the
/// operation's stop timeout and the outcome says so; a qcow2 disk and a
/// target without room are refused at pre-flight, before anything stops.
async fn faults(url: &str, token: &str, east: &Host, west: &Host, images: &Path) {
    let (kernel, initrd) = guest();
    let machine = |cmdline: Option<&str>| {
        json!({
            "memory_mib": 256, "vcpus": 1, "arch": "x86_64", "machine_type": "pc",
            "boot": match cmdline {
                Some(c) => json!({"kind": "kernel", "cmdline": c}),
                None => json!({"kind": "disk"}),
            },
            "disks": [{"volume": "data", "dev": "vda", "bus": "virtio"}],
            "serial_console": true,
        })
    };
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    let descriptor = json!({
        "template": null, "properties": {},
        "volumes": [
            {"name": "data", "size": 16 << 20},
            {"name": "boot-kernel", "size": len(&kernel)},
            {"name": "boot-initrd", "size": len(&initrd)},
        ],
        "machine": machine(Some("console=ttyS0 quiet panic=-1 migguest.acpi=ignore")),
    });
    east.run("app create vm2", descriptor.to_string().as_bytes());
    east.run(
        "vol write vm2:boot-kernel",
        &std::fs::read(&kernel).unwrap(),
    );
    east.run(
        "vol write vm2:boot-initrd",
        &std::fs::read(&initrd).unwrap(),
    );
    east.run("app start vm2", b"");
    // It listens to its power button, and will ignore it.
    east.wait_log("vm2", "power button: /dev/input/");
    east.wait_log("vm2", "counter: 5");
    let body = json!({
        "source_grid": "east", "source_app": "vm2",
        "target_grid": "west", "target_app": "vm2",
        "action": "migrate", "stop_timeout_secs": 5,
    });
    let (following, followed) = east.follow("vm2");
    let (id, began) = start(url, token, &body).await;
    let op = finish(url, token, &id, &body, began).await;
    drop(following);
    let followed = followed.join().unwrap();
    assert_eq!(op["stop_timeout_secs"], 5, "{op}");
    assert_eq!(
        op["source_stop"]["forced"], true,
        "the outcome does not say the source was forced off: {op}"
    );
    let events = support::events(url, token, &id).await;
    let said = |from: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["source"] == from)
            .filter_map(|e| e["data"]["text"].as_str().map(str::to_owned))
            .collect()
    };
    let source = said("source");
    let seqs: Vec<String> = events
        .iter()
        .filter(|e| e["source"] == "source")
        .map(|e| format!("{} {}", e["data"]["seq"], e["data"]["text"]))
        .collect();
    assert!(
        source
            .iter()
            .any(|t| t.contains("acpi power button: ignored")),
        "the guest's console never said it ignored the button:\n{}\n\neast's log of vm2, followed by the test:\n{}",
        seqs.join("\n"),
        followed.join("\n")
    );
    assert!(
        source
            .iter()
            .any(|t| t.contains("did not shut down within 5 s") && t.contains("forced off")),
        "east's log never said it forced vm2 off:\n{}",
        source.join("\n")
    );
    assert!(
        said("helper")
            .iter()
            .any(|t| t.contains("was forced off") && t.contains("5 s stop timeout")),
        "the helper's report is not among the events"
    );
    // The monitor says it at the top, with the outcome.
    let page = reqwest::Client::new()
        .get(format!("{url}/operations/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shown = support::testid_text(&page, "source-stop").unwrap_or_default();
    assert!(
        shown.contains("forced off") && shown.contains("5 s"),
        "the monitor says {shown:?}"
    );
    // Forced off between two records: it resumes on west at a whole record,
    // at least the last count its console showed on east.
    let last = source
        .iter()
        .filter_map(|t| {
            t.strip_prefix("counter: ")
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .max()
        .unwrap();
    let resumed = west.wait_log("vm2", "resumed at counter: ");
    let n = counter_after(&resumed, "resumed at counter: ");
    assert!(n >= last, "vm2 resumed on west at {n}, below {last}");
    west.run("app stop vm2 --timeout 1", b"");
    west.run("app destroy vm2", b"");

    // A qcow2 disk (an operator's image, converted by hand here): refused at
    // pre-flight with the disk named; nothing stopped, no lock taken.
    let small = |data: u64| {
        json!({
            "template": null, "properties": {},
            "volumes": [{"name": "data", "size": data}],
            "machine": machine(None),
        })
        .to_string()
    };
    east.run("app create vm3", small(8 << 20).as_bytes());
    let dir = images.join("east/vm3");
    let converted = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(dir.join("data.raw"))
        .arg(dir.join("data.qcow2"))
        .status()
        .unwrap();
    assert!(converted.success());
    let xml = Command::new("virsh")
        .args(["-q", "-c", "qemu:///system", "dumpxml", "migctl-east-vm3"])
        .output()
        .unwrap();
    let xml = String::from_utf8(xml.stdout)
        .unwrap()
        .replace("type='raw'", "type='qcow2'")
        .replace("data.raw", "data.qcow2");
    std::fs::write(dir.join("domain.xml"), xml).unwrap();
    let defined = Command::new("virsh")
        .args(["-q", "-c", "qemu:///system", "define"])
        .arg(dir.join("domain.xml"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(defined.success());
    let refused = |app: &'static str| {
        json!({
            "source_grid": "east", "source_app": app,
            "target_grid": "west", "target_app": app,
            "action": "migrate",
        })
    };
    let (status, body) = api(url, token, "POST", "/operations", Some(refused("vm3"))).await;
    assert_eq!(status, 422, "{body}");
    let said = body.to_string();
    assert!(
        said.contains("source_app") && said.contains("disk vda is a qcow2 image"),
        "{body}"
    );
    let (status, lock) = api(url, token, "GET", "/lock", None).await;
    assert_eq!(status, 404, "a lock is held: {lock}");

    // A target without room: vm4's disk is 15 TiB (sparse, as thin disks
    // are); west has far less free. Refused at pre-flight, naming both.
    east.run("app create vm4", small(8 << 20).as_bytes());
    let image = std::fs::OpenOptions::new()
        .write(true)
        .open(images.join("east/vm4/data.raw"))
        .unwrap();
    image.set_len(15 << 40).unwrap();
    let (status, body) = api(url, token, "POST", "/operations", Some(refused("vm4"))).await;
    assert_eq!(status, 422, "{body}");
    let said = body.to_string();
    assert!(
        said.contains("target_grid") && said.contains("grid west has") && said.contains("15 TiB"),
        "{body}"
    );
    assert_eq!(east.json("app info vm4")["state"], "stopped");
    for app in ["vm3", "vm4"] {
        east.run(&format!("app destroy {app}"), b"");
    }
}

/// Starts an operation: its id, and when.
async fn start(url: &str, token: &str, body: &serde_json::Value) -> (String, Instant) {
    let (status, started) = api(url, token, "POST", "/operations", Some(body.clone())).await;
    assert_eq!(status, 201, "{started}");
    (started["id"].as_str().unwrap().to_owned(), Instant::now())
}

/// Waits for an operation's outcome and requires `done`; prints its figures.
async fn finish(
    url: &str,
    token: &str,
    id: &str,
    body: &serde_json::Value,
    began: Instant,
) -> serde_json::Value {
    // An operation held for an operator never ends by itself: say so now.
    let op = wait_for(url, token, id, |op| !op["outcome"].is_null() || held(op)).await;
    let lines = support::helper_lines(url, token, id).await;
    assert_eq!(
        op["outcome"],
        "done",
        "{op}\nthe helper said:\n{}",
        lines.join("\n")
    );
    println!(
        "{} {}/{} → {}/{}{}: {:.1?}, {} bytes copied of {}, down {} ms, {} pass(es)",
        body["action"].as_str().unwrap_or(""),
        body["source_grid"].as_str().unwrap_or(""),
        body["source_app"].as_str().unwrap_or(""),
        body["target_grid"].as_str().unwrap_or(""),
        body["target_app"].as_str().unwrap_or(""),
        if body["warm"] == true { " (warm)" } else { "" },
        began.elapsed(),
        op["bytes_copied"],
        op["bytes_total"],
        op["downtime_ms"],
        op["passes"].as_array().map_or(0, Vec::len),
    );
    op
}

/// Whether reconciliation keeps the operation's lock until an operator
/// looks (its reason says what to do).
fn held(op: &serde_json::Value) -> bool {
    op["outcome"].is_null()
        && op["reason"].as_str().is_some_and(|r| {
            r.contains("override the lock")
                || r.contains("nothing is destroyed")
                || r.contains("is kept")
        })
}

/// Starts an operation and waits for it to end `done`.
async fn operation(url: &str, token: &str, body: serde_json::Value) -> serde_json::Value {
    let (id, began) = start(url, token, &body).await;
    finish(url, token, &id, &body, began).await
}
