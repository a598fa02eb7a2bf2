//! The chaos run: operations back to back on gridsim while the console,
//! the helper and gridsim itself (with every process it runs, as a grid
//! host that crashes) are SIGKILLed at random moments and started again,
//! and gridsim hangs (SIGSTOP for [`HANG`], then SIGCONT: its connections
//! stay open and nothing answers), at random and mid-copy and mid-cutover;
//! while it hangs the console answers, and a running operation's reason
//! names the grid that does not. Some operations meet a target grid that
//! corrupts writes. While each runs, a watcher checks that the source is
//! never gone while the target does not hold its data; after every
//! operation the invariants an operator relies on are checked:
//! it has exactly one recorded outcome; the source exists (with its data)
//! unless the target runs with the same checksums; nothing half-made is
//! left on the target; no helper (app or process) and no cutover signal is
//! left; the lock is free; its events have no gap in their sequence.
//!
//! `cargo test --test chaos` runs a short run (MIGCTL_CHAOS_OPS, default 6;
//! MIGCTL_CHAOS_SEED, default 42); `scripts/chaos [OPS] [SEED]` is the long
//! one. Every violation is listed
//! at the end and fails the run; the seed that reproduces the kills'
//! choices is printed first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use grid::dialect::{Descriptor, VolRef, VolumeSpec};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{AppName, ClientConfig, Connection, Endpoint, GridName, VolumeName, keys};
use gridsim::{SimConfig, SimPaths};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Vol, api, filling, migctl};

const GRIDS: [&str; 2] = ["east", "west"];
const VOLUMES: [Vol; 2] = [
    Vol("data", 16 << 20, 0..(6 << 20)),
    Vol("config", 4 << 20, (1 << 20)..(2 << 20)),
];
/// How long an operation may take to reach its outcome, kills included.
const OUTCOME_WITHIN: Duration = Duration::from_secs(240);
/// How long gridsim hangs when it is the victim.
const HANG: Duration = Duration::from_secs(30);

/// xorshift64*: the run's choices, repeatable from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    Console,
    Helper,
    Gridsim,
    /// gridsim stopped (SIGSTOP), not killed, at a moment of the operation.
    Hang(Moment),
}

/// When a hang begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Moment {
    /// After a random pause, as the kills.
    Any,
    /// While the helper copies (a warm pre-copy pass, or a cold copy).
    Copy,
    /// Once the source has been stopped and before the operation ends:
    /// the app is down, and the grid that should bring it back hangs.
    Cutover,
}

impl Moment {
    /// Whether an operation in `phase` is at this moment.
    fn reached(self, phase: &str) -> bool {
        match self {
            Moment::Any => true,
            Moment::Copy => matches!(phase, "pre_copying" | "copying"),
            Moment::Cutover => matches!(
                phase,
                "stopping_source"
                    | "copying"
                    | "verifying"
                    | "starting_target"
                    | "restarting_source"
            ),
        }
    }
}

/// The processes of the run and where they keep their state.
struct World {
    root: tempfile::TempDir,
    sim_dir: PathBuf,
    console_dir: PathBuf,
    sim: Child,
    console: Child,
    port: u16,
    url: String,
    token: String,
    admin_token: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn log_file(root: &Path, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(name))
        .unwrap()
        .into()
}

impl World {
    /// gridsim in a process (group) of its own: it and every app process it
    /// runs die together, as on a grid host that crashes.
    fn start_sim(root: &Path, sim_dir: &Path) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_migctl"))
            .env("GRIDSIM_LOG", "warn")
            .args(["sim", "--data"])
            .arg(sim_dir)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(log_file(root, "gridsim.log"))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in GRIDS {
            let line = lines.next().expect("gridsim ended at start").unwrap();
            assert!(line.starts_with("grid "), "{line}");
        }
        child
    }

    /// The console on its port (the same across restarts); a port taken by
    /// someone else in between is waited for.
    fn start_console(root: &Path, dir: &Path, port: u16) -> (Child, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut child = migctl(dir)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::piped())
                .stderr(log_file(root, "console.log"))
                .spawn()
                .unwrap();
            let url = BufReader::new(child.stdout.take().unwrap())
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("url: ")
                        .map(|u| u.trim_end_matches('/').to_owned())
                });
            if let Some(url) = url {
                return (child, url);
            }
            let status = child.wait().unwrap();
            assert!(
                Instant::now() < deadline,
                "the console does not start again ({status}); see {}",
                root.join("console.log").display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    async fn new() -> World {
        let root = tempfile::tempdir().unwrap();
        let sim_dir = root.path().join("sim");
        let helper = vec![env!("CARGO_BIN_EXE_migctl").to_owned(), "helper".to_owned()];
        gridsim::init(&sim_dir, &GRIDS, 0, helper).unwrap();
        let path = SimPaths::new(&sim_dir).config();
        let mut config = SimConfig::load(&path).unwrap();
        config.start_delay_ms = 300;
        config.stop_delay_ms = 300;
        // Fixed ports: the console's inventory stays true across restarts.
        for g in &mut config.grids {
            g.port = free_port();
        }
        config.save(&path).unwrap();
        let sim = World::start_sim(root.path(), &sim_dir);

        let east = connect(&sim_dir, "east").await;
        let shop = AppName::new("shop").unwrap();
        let descriptor = Descriptor {
            volumes: VOLUMES
                .iter()
                .map(|Vol(name, size, _)| VolumeSpec {
                    name: VolumeName::new(*name).unwrap(),
                    size: *size,
                })
                .collect(),
            ..Descriptor::default()
        };
        east.app_create(&shop, &descriptor).await.unwrap();
        for Vol(name, _, range) in &VOLUMES {
            let bytes = filling(range.clone());
            let vol = VolRef::new(shop.clone(), VolumeName::new(*name).unwrap());
            east.vol_write(&vol, range.start, &mut &bytes[..])
                .await
                .unwrap();
        }
        east.app_start(&shop).await.unwrap();

        let console_dir = root.path().join("console");
        std::fs::create_dir(&console_dir).unwrap();
        let files = SimPaths::new(&sim_dir).console_dir();
        std::fs::write(
            console_dir.join("migctl.toml"),
            format!(
                "grids_file = \"{}\"\nprivate_key_file = \"{}\"\nknown_hosts_file = \"{}\"\n\
                 mode = \"both\"\ncopy_rate_limit_mib = 4\ngrid_timeout_secs = 5\n",
                files.join("grids.toml").display(),
                files.join("id_ed25519").display(),
                files.join("known_hosts").display()
            ),
        )
        .unwrap();
        let token = support::operator_token(&console_dir);
        let admin_token = support::user_token(&console_dir, "ada", "admin");
        let port = free_port();
        let (console, url) = World::start_console(root.path(), &console_dir, port);
        World {
            root,
            sim_dir,
            console_dir,
            sim,
            console,
            port,
            url,
            token,
            admin_token,
        }
    }

    fn restart_console(&mut self) {
        let (console, url) = World::start_console(self.root.path(), &self.console_dir, self.port);
        self.console = console;
        self.url = url;
    }

    fn kill_console(&mut self) {
        support::sigkill(&mut self.console);
    }

    /// SIGKILL to gridsim's whole process group: the controllers and every
    /// app process (the helper among them).
    fn kill_sim(&mut self) {
        assert!(kill(&format!("-{}", self.sim.id())), "gridsim is gone");
        self.sim.wait().unwrap();
    }

    fn restart_sim(&mut self) {
        self.sim = World::start_sim(self.root.path(), &self.sim_dir);
    }

    /// SIGSTOP (`true`) or SIGCONT to gridsim's own process: the helper and
    /// the apps go on, and everything asked of a grid waits.
    fn hang_sim(&self, hang: bool) {
        let signal = if hang { "-STOP" } else { "-CONT" };
        let sent = Command::new("kill")
            .args([signal, &self.sim.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "gridsim is gone");
    }

    /// The helper's process, from its app's log ("process … started (pid N)"),
    /// if it runs.
    async fn helper_pid(&self, target_grid: &str, target_app: &str) -> Option<i32> {
        let c = connect(&self.sim_dir, target_grid).await;
        let helper = AppName::new(format!("MigHelper_{target_app}")).ok()?;
        let log = c.app_log(&helper, None).await.ok()?;
        let pid = log.iter().rev().find_map(|l| {
            let rest = l.text.split("(pid ").nth(1)?;
            rest.trim_end_matches(')').parse::<i32>().ok()
        })?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Processes gridsim runs (its group, itself aside).
    fn sim_children(&self) -> Vec<(i32, String)> {
        let pgid = self.sim.id().to_string();
        let mut found = vec![];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp …: comm may hold spaces; split after ')'.
            let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
                continue;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.as_str())
                && pid.to_string() != pgid
                && fields.first() != Some(&"Z")
            {
                let cmd = std::fs::read_to_string(entry.path().join("cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                found.push((pid, cmd));
            }
        }
        found
    }
}

/// A run that panics midway leaves no console or grid running.
impl Drop for World {
    fn drop(&mut self) {
        if self.console.try_wait().ok().flatten().is_none() {
            let _ = self.console.kill();
            let _ = self.console.wait();
        }
        if self.sim.try_wait().ok().flatten().is_none() {
            kill(&format!("-{}", self.sim.id()));
            let _ = self.sim.wait();
        }
    }
}

/// SIGKILL to a process, or to a process group (`-PGID`): whether it was there.
fn kill(target: &str) -> bool {
    Command::new("kill")
        .args(["-KILL", "--", target])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Where a grid is and how to reach it, from the console's files.
fn reach(sim_dir: &Path, grid: &str) -> (Endpoint, ClientConfig) {
    let files = SimPaths::new(sim_dir).console_dir();
    let client = ClientConfig::new(
        keys::load(&files.join("id_ed25519")).unwrap(),
        KnownHosts::load(&files.join("known_hosts")).unwrap(),
    );
    let inventory = Inventory::load(&files.join("grids.toml")).unwrap();
    let endpoint = Endpoint::from(inventory.get(&GridName::new(grid).unwrap()).unwrap());
    (endpoint, client)
}

/// A fresh connection to a grid (gridsim may have been restarted since the last).
async fn connect(sim_dir: &Path, grid: &str) -> Connection {
    let (endpoint, client) = reach(sim_dir, grid);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Connection::open(&endpoint, &client).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "grid {grid}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Turns a grid's corruption of every write on or off (`sim fault`).
async fn corrupt_writes(sim_dir: &Path, grid: &str, on: bool) {
    let line = format!("sim fault corrupt-writes {}", if on { "on" } else { "off" });
    connect(sim_dir, grid)
        .await
        .call_line("sim fault", &line, None)
        .await
        .unwrap();
}

/// A connection to a grid, or `None` when it does not answer within 10 s.
async fn try_connect(sim_dir: &Path, grid: &str) -> Option<Connection> {
    let (endpoint, client) = reach(sim_dir, grid);
    tokio::time::timeout(
        Duration::from_secs(10),
        Connection::open(&endpoint, &client),
    )
    .await
    .ok()?
    .ok()
}

/// What a grid says of an app while an operation runs.
enum Sighting {
    Absent,
    /// Its volumes' checksums.
    There(Vec<String>),
    /// The grid did not answer (killed, hanging, restarting).
    Unknown,
}

async fn sight(c: &Connection, app: &str) -> Sighting {
    let name = AppName::new(app).unwrap();
    let asked = tokio::time::timeout(Duration::from_secs(10), async {
        match c.app_info(&name).await {
            Err(grid::GridError::Refused { refusal, .. })
                if refusal.code == grid::dialect::ErrorCode::NotFound =>
            {
                Sighting::Absent
            }
            Err(_) => Sighting::Unknown,
            Ok(_) => {
                let mut sums = vec![];
                for Vol(vol, _, _) in &VOLUMES {
                    let vol = VolRef::new(name.clone(), VolumeName::new(*vol).unwrap());
                    match c.vol_checksum(&vol).await {
                        Ok(s) => sums.push(s.digest),
                        Err(_) => return Sighting::Unknown,
                    }
                }
                Sighting::There(sums)
            }
        }
    })
    .await;
    asked.unwrap_or(Sighting::Unknown)
}

/// Watches an operation while it runs until `stop`: whenever the source is
/// seen gone, the target must already hold the source's data (the source
/// is destroyed only once the target is verified). Returns what it saw wrong
/// and how many times it could look.
async fn watch_the_source(
    sim_dir: PathBuf,
    (source, target, target_app): (String, String, String),
    sums: Vec<String>,
    stop: tokio_util::sync::CancellationToken,
) -> (Vec<String>, usize) {
    let mut wrong = vec![];
    let mut looks = 0;
    let (mut src, mut dst) = (None, None);
    while !stop.is_cancelled() {
        if src.is_none() {
            src = try_connect(&sim_dir, &source).await;
        }
        if dst.is_none() {
            dst = try_connect(&sim_dir, &target).await;
        }
        if let (Some(s), Some(d)) = (&src, &dst) {
            match sight(s, "shop").await {
                Sighting::Absent => match sight(d, &target_app).await {
                    Sighting::There(t) if t == sums => looks += 1,
                    Sighting::There(t) => wrong.push(format!(
                        "the source is gone while the target's volumes are {t:?}, not {sums:?}"
                    )),
                    Sighting::Absent => {
                        wrong.push("the source is gone and there is no target".into());
                    }
                    Sighting::Unknown => dst = None,
                },
                Sighting::There(_) => looks += 1,
                Sighting::Unknown => src = None,
            }
            if wrong.len() > 3 {
                break;
            }
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    (wrong, looks)
}

/// An app's state and the checksums of its volumes, or `None` when absent.
async fn app_on(c: &Connection, app: &str) -> Option<(String, Vec<String>)> {
    let name = AppName::new(app).unwrap();
    let info = c.app_info(&name).await.ok()?;
    let mut sums = vec![];
    for Vol(vol, _, _) in &VOLUMES {
        let sum = c
            .vol_checksum(&VolRef::new(name.clone(), VolumeName::new(*vol).unwrap()))
            .await
            .map_or_else(|e| format!("unreadable: {e}"), |s| s.digest);
        sums.push(sum);
    }
    Some((info.state.to_string(), sums))
}

/// One operation to run: migrate cold or warm, or snapshot.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Migrate,
    MigrateWarm,
    Snapshot,
}

struct Tally {
    ops: usize,
    kills: BTreeMap<Victim, usize>,
    outcomes: BTreeMap<String, usize>,
    violations: Vec<String>,
}

/// The first victim of operations 1–5, so that every run, whatever its
/// seed, kills each kind and hangs gridsim mid-copy and mid-cutover.
const EACH: [Victim; 5] = [
    Victim::Console,
    Victim::Helper,
    Victim::Gridsim,
    Victim::Hang(Moment::Copy),
    Victim::Hang(Moment::Cutover),
];

/// Waits (polling its phase) until the operation is at `moment`; `false`
/// if it ended first.
async fn at_moment(w: &World, id: &str, moment: Moment) -> bool {
    let deadline = Instant::now() + OUTCOME_WITHIN;
    while Instant::now() < deadline {
        let (status, op) = api(&w.url, &w.token, "GET", &format!("/operations/{id}"), None).await;
        if status == 200 {
            if !op["outcome"].is_null() {
                return false;
            }
            if moment.reached(op["phase"].as_str().unwrap_or_default()) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// What must hold while gridsim hangs: the console answers (within 10 s),
/// and a running operation's reason names a grid of it that does not
/// answer before the hang is over (the console gives up on a command after
/// `grid_timeout_secs`, 5 s here).
async fn while_hung(w: &World, id: &str, grids: (&str, &str)) -> Vec<String> {
    let began = Instant::now();
    let client = reqwest::Client::new();
    let mut last = Value::Null;
    while began.elapsed() < HANG - Duration::from_secs(2) {
        let answered = client
            .get(format!("{}/api/v1/operations/{id}", w.url))
            .bearer_auth(&w.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let op: Value = match answered {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            other => {
                return vec![format!(
                    "while gridsim hung, the console did not answer in 10 s: {other:?}"
                )];
            }
        };
        if !op["outcome"].is_null() {
            // Ended before the console had to ask a grid.
            return vec![];
        }
        let reason = op["reason"].as_str().unwrap_or_default();
        let named = [grids.0, grids.1]
            .iter()
            .any(|g| reason.contains(&format!("grid {g}: ")));
        if named && reason.contains("timed out") {
            println!(
                "  gridsim hung {:.1}s: the reason says {reason:?}",
                began.elapsed().as_secs_f64()
            );
            return vec![];
        }
        last = op;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    vec![format!(
        "gridsim hung for {} s and the operation's reason never named a grid that does not answer: {}",
        began.elapsed().as_secs(),
        last["reason"]
    )]
}

/// Polls the operation until it has an outcome (through console restarts).
async fn outcome_of(w: &World, id: &str) -> Option<Value> {
    let deadline = Instant::now() + OUTCOME_WITHIN;
    while Instant::now() < deadline {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/operations/{id}", w.url))
            .bearer_auth(&w.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = r
            && let Ok(op) = r.json::<Value>().await
            && !op["outcome"].is_null()
        {
            return Some(op);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Every invariant after operation `id` ended; returns what was violated.
async fn check(
    w: &World,
    id: &str,
    op: &Value,
    kind: Kind,
    (source, target, target_app): (&str, &str, &str),
    sums: &[String],
) -> Vec<String> {
    let mut wrong = vec![];
    let outcome = op["outcome"].as_str().unwrap_or("").to_owned();
    let events = support::events(&w.url, &w.token, id).await;
    let ends = events
        .iter()
        .filter(|e| {
            e["kind"] == "phase"
                && ["done", "failed", "cancelled", "elsewhere"]
                    .contains(&e["data"]["phase"].as_str().unwrap_or(""))
        })
        .count();
    if ends != 1 {
        wrong.push(format!("{ends} outcome events, not 1"));
    }
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    if seqs.first() != Some(&1) || !seqs.windows(2).all(|p| p[1] == p[0] + 1) {
        wrong.push(format!(
            "a gap in the event sequence ({} events, first {:?}, last {:?})",
            seqs.len(),
            seqs.first(),
            seqs.last()
        ));
    }
    let (status, lock) = api(&w.url, &w.token, "GET", "/lock", None).await;
    if status != 404 {
        wrong.push(format!("the lock is still held after the outcome: {lock}"));
    }

    let (src, dst) = (
        connect(&w.sim_dir, source).await,
        connect(&w.sim_dir, target).await,
    );
    // The helper's app goes before the outcome; its process may take a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = vec![];
        for c in [&src, &dst] {
            for a in c.app_list().await.unwrap() {
                let name = a.name.to_string();
                if name.starts_with("MigHelper_") || name.starts_with("MigCutNow_") {
                    left.push(name);
                }
            }
        }
        left.extend(
            w.sim_children()
                .into_iter()
                .map(|(p, c)| format!("pid {p}: {c}")),
        );
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            wrong.push(format!("left behind: {}", left.join(", ")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let source_app = app_on(&src, "shop").await;
    let target_now = app_on(&dst, target_app).await;
    let same = |a: &Option<(String, Vec<String>)>| a.as_ref().is_some_and(|(_, s)| s == sums);
    let running =
        |a: &Option<(String, Vec<String>)>| a.as_ref().is_some_and(|(s, _)| s == "running");
    match (kind, outcome.as_str()) {
        (Kind::Migrate | Kind::MigrateWarm, "done") => {
            if source_app.is_some() {
                wrong.push(format!(
                    "done, but the source is still on {source}: {source_app:?}"
                ));
            }
            if !(running(&target_now) && same(&target_now)) {
                wrong.push(format!("done, but the target is {target_now:?}"));
            }
        }
        (Kind::Snapshot, "done") if !same(&target_now) => {
            wrong.push(format!("done, but the snapshot is {target_now:?}"));
        }
        (_, "done") => {}
        (_, _) if target_now.is_some() => {
            wrong.push(format!("{outcome}, but a target was left: {target_now:?}"));
        }
        _ => {}
    }
    let moved = matches!(kind, Kind::Migrate | Kind::MigrateWarm) && outcome == "done";
    let kept = running(&source_app) && same(&source_app);
    if !moved && !kept {
        wrong.push(format!(
            "{outcome}: the source should run with its data, but is {source_app:?}"
        ));
    }
    wrong
}

async fn run(ops: usize, seed: u64) -> Tally {
    let mut rng = Rng(seed | 1);
    let mut w = World::new().await;
    println!(
        "chaos: {ops} operations, seed {seed}, logs in {}",
        w.root.path().display()
    );
    let sums = app_on(&connect(&w.sim_dir, "east").await, "shop")
        .await
        .unwrap()
        .1;
    let mut here = "east";
    let mut tally = Tally {
        ops: 0,
        kills: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        violations: vec![],
    };
    for i in 1..=ops {
        let there = if here == "east" { "west" } else { "east" };
        let kind = match rng.below(4) {
            0 | 1 => Kind::Migrate,
            2 => Kind::MigrateWarm,
            _ => Kind::Snapshot,
        };
        let target_app = match kind {
            Kind::Snapshot => format!("snap{i}"),
            _ => "shop".to_owned(),
        };
        let body = json!({
            "source_grid": here,
            "source_app": "shop",
            "target_grid": there,
            "target_app": target_app,
            "action": if matches!(kind, Kind::Snapshot) { "snapshot" } else { "migrate" },
            "warm": matches!(kind, Kind::MigrateWarm),
        });
        // Operation 5 (and then one in eight) meets a target grid that
        // corrupts every write: it must fail, the source kept.
        let corrupt = i == 5 || (i > 5 && rng.below(8) == 0);
        if corrupt {
            corrupt_writes(&w.sim_dir, there, true).await;
        }
        // A start that cannot be sent is a finding, not a panic: the run's
        // logs are kept (below) to say why.
        let sent = reqwest::Client::new()
            .post(format!("{}/api/v1/operations", w.url))
            .bearer_auth(&w.token)
            .json(&body)
            .send()
            .await;
        let (status, started) = match sent {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            ),
            Err(e) => {
                tally
                    .violations
                    .push(format!("op {i}: the start could not be sent: {e}"));
                break;
            }
        };
        if status != 201 {
            tally.violations.push(format!(
                "op {i}: the start was refused ({status}): {started}"
            ));
            break;
        }
        let id = started["id"].as_str().unwrap().to_owned();
        let began = Instant::now();
        let watching = tokio_util::sync::CancellationToken::new();
        let watcher = tokio::spawn(watch_the_source(
            w.sim_dir.clone(),
            (here.to_owned(), there.to_owned(), target_app.clone()),
            sums.clone(),
            watching.clone(),
        ));

        // 0–2 kills at random moments, each victim started again after a pause.
        let mut done_kills = vec![];
        let forced = EACH.get(i - 1).copied();
        let kills = rng.below(3).max(u64::from(forced.is_some()));
        for k in 0..kills {
            let pause = rng.millis(4000);
            // A hang (30 s) is drawn less often than a kill.
            let drawn = match rng.below(7) {
                0 | 1 => Victim::Console,
                2 | 3 => Victim::Helper,
                4 | 5 => Victim::Gridsim,
                _ => Victim::Hang(Moment::Any),
            };
            let victim = forced.filter(|_| k == 0).unwrap_or(drawn);
            // A hang at a moment waits for it (and does not happen if the
            // operation ends first); every other victim after a pause.
            match victim {
                Victim::Hang(moment) if moment != Moment::Any => {
                    if !at_moment(&w, &id, moment).await {
                        println!("op {i}: ended before {moment:?}; no hang");
                        continue;
                    }
                }
                // The helper a run must kill is killed as soon as it is
                // there: an operation may end within the pause.
                Victim::Helper if forced == Some(Victim::Helper) && k == 0 => {}
                _ => tokio::time::sleep(pause).await,
            }
            let victim = match victim {
                // A gridsim started again has no faults: the corrupting
                // grid stays up (it may still hang).
                Victim::Gridsim if corrupt => Victim::Console,
                v => v,
            };
            let pause = rng.millis(1500);
            match victim {
                Victim::Console => {
                    w.kill_console();
                    tokio::time::sleep(pause).await;
                    w.restart_console();
                }
                Victim::Helper => {
                    // A forced kill waits for the helper to be there.
                    let tries = if forced == Some(Victim::Helper) {
                        50
                    } else {
                        1
                    };
                    let mut killed = false;
                    for _ in 0..tries {
                        if let Some(pid) = w.helper_pid(there, &target_app).await
                            && kill(&pid.to_string())
                        {
                            killed = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    if !killed {
                        continue;
                    }
                }
                Victim::Gridsim => {
                    w.kill_sim();
                    tokio::time::sleep(pause).await;
                    w.restart_sim();
                }
                Victim::Hang(_) => {
                    w.hang_sim(true);
                    let hung = Instant::now();
                    let problems = while_hung(&w, &id, (here, there)).await;
                    tally
                        .violations
                        .extend(problems.into_iter().map(|p| format!("op {i} ({id}): {p}")));
                    tokio::time::sleep(HANG.saturating_sub(hung.elapsed())).await;
                    w.hang_sim(false);
                }
            }
            *tally.kills.entry(victim).or_default() += 1;
            done_kills.push(format!("{victim:?}@{:.1}s", began.elapsed().as_secs_f64()));
        }

        let line = format!(
            "op {i}/{ops} {kind:?}{} {here}→{there} kills [{}]",
            if corrupt { " (corrupt writes)" } else { "" },
            done_kills.join(", ")
        );
        tally.ops += 1;
        let ended = outcome_of(&w, &id).await;
        watching.cancel();
        let (seen_wrong, looks) = watcher.await.unwrap();
        tally.violations.extend(
            seen_wrong
                .into_iter()
                .map(|v| format!("{line} ({id}), while it ran: {v}")),
        );
        if looks == 0 {
            tally.violations.push(format!(
                "{line} ({id}): the grids were never seen while it ran"
            ));
        }
        if corrupt {
            // Off again (a gridsim started since has no faults).
            corrupt_writes(&w.sim_dir, there, false).await;
        }
        let Some(op) = ended else {
            let (_, lock) = api(&w.url, &w.token, "GET", "/lock", None).await;
            tally.violations.push(format!(
                "{line}: no outcome within {}s; lock {lock}",
                OUTCOME_WITHIN.as_secs()
            ));
            println!("{line} → NO OUTCOME");
            // Go on from a free console: an admin overrides.
            api(
                &w.url,
                &w.admin_token,
                "POST",
                "/lock/override",
                Some(json!({"op_id": id, "reason": "chaos: no outcome"})),
            )
            .await;
            continue;
        };
        let outcome = op["outcome"].as_str().unwrap_or("?").to_owned();
        let wrong = check(&w, &id, &op, kind, (here, there, &target_app), &sums).await;
        let why = op["reason"]
            .as_str()
            .map(|r| format!(" ({})", r.chars().take(160).collect::<String>()))
            .unwrap_or_default();
        println!(
            "{line} → {outcome}{why} in {:.1}s{}",
            began.elapsed().as_secs_f64(),
            if wrong.is_empty() {
                String::new()
            } else {
                format!(": {}", wrong.join("; "))
            }
        );
        tally
            .violations
            .extend(wrong.into_iter().map(|v| format!("{line} ({id}): {v}")));
        *tally
            .outcomes
            .entry(format!("{kind:?} {outcome}"))
            .or_default() += 1;
        // (A gridsim started again meanwhile has no faults.)
        let restarted = done_kills.iter().any(|k| k.starts_with("Gridsim@"));
        if corrupt && outcome == "done" && !restarted {
            tally.violations.push(format!(
                "{line} ({id}): done, though every write to {there} was corrupted"
            ));
        }
        if matches!(kind, Kind::Migrate | Kind::MigrateWarm) && outcome == "done" {
            here = there;
        }
        if matches!(kind, Kind::Snapshot) && outcome == "done" {
            let c = connect(&w.sim_dir, there).await;
            c.app_destroy(&AppName::new(&target_app).unwrap())
                .await
                .unwrap();
        }
    }
    println!(
        "chaos: {} operations, kills {:?}, outcomes {:?}, {} invariant violations",
        tally.ops,
        tally.kills,
        tally.outcomes,
        tally.violations.len()
    );
    w.kill_console();
    w.kill_sim();
    if !tally.violations.is_empty() {
        // Keep the logs of a failed run.
        let kept = std::mem::replace(&mut w.root, tempfile::tempdir().unwrap()).keep();
        println!("chaos: logs kept in {}", kept.display());
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_keep_their_invariants_while_processes_are_killed_at_random() {
    let ops = std::env::var("MIGCTL_CHAOS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = std::env::var("MIGCTL_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let tally = run(ops, seed).await;
    assert_eq!(tally.ops, ops, "{:#?}", tally.violations);
    // A run that killed nobody of a kind tested nothing about it.
    if ops >= 6 {
        for victim in EACH {
            assert!(
                tally.kills.get(&victim).is_some_and(|&n| n > 0),
                "seed {seed}: no {victim:?} was killed in {ops} operations ({:?}); pick a seed that kills each",
                tally.kills
            );
        }
    }
    assert!(
        tally.violations.is_empty(),
        "seed {seed}: {} violations:\n{}",
        tally.violations.len(),
        tally.violations.join("\n")
    );
}
