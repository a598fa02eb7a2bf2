//! Shared by the console's integration tests: gridsim with grids east and
//! west whose MigHelper is this build's `migctl helper`, an app `shop` on
//! east, and client connections to both grids.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{ClientConfig, Connection, Endpoint, GridName, keys};
use gridsim::{RunningSim, SimConfig, SimPaths};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod mq;

pub struct Grids {
    pub dir: tempfile::TempDir,
    pub sim: RunningSim,
    /// Where the console's key, known_hosts and grids.toml are.
    pub console: PathBuf,
    pub east: Connection,
    pub west: Connection,
}

/// A volume of `shop`: name, size, and the range filled with data.
pub struct Vol(pub &'static str, pub u64, pub std::ops::Range<u64>);

/// gridsim (fast state changes) with `shop` running on east.
pub async fn grids_with_shop(volumes: &[Vol]) -> Grids {
    grids_with_busy_shop(volumes, None).await
}

/// gridsim with `shop` running on east; with `write`, shop's process is
/// the demo's (`migctl shop`), writing that many KiB/s at random offsets
/// of its disk `data` (a volume `data` must be among `volumes`),
/// and `(kib, seed)` for `write`: the writes are repeatable from the seed.
pub async fn grids_with_busy_shop(volumes: &[Vol], write: Option<(u64, u64)>) -> Grids {
    let shop = write.map(|(kib, seed)| busy_shop(kib, Some(seed)));
    grids_with_shop_of(volumes, shop, |_| {}).await
}

/// [`grids_with_busy_shop`] with a seed of its own at each start of shop
/// (said in its last line, see [`Run`]): each run's writes differ from
/// the others', so a replay shows a lost write of any of them.
#[allow(dead_code)] // not every test crate replays shop's runs
pub async fn grids_with_reseeded_shop(volumes: &[Vol], kib: u64) -> Grids {
    grids_with_shop_of(volumes, Some(busy_shop(kib, None)), |_| {}).await
}

fn busy_shop(kib: u64, seed: Option<u64>) -> (gridsim::TemplateConfig, Value) {
    let template = gridsim::TemplateConfig {
        name: grid::TemplateName::new("Shop").unwrap(),
        description: "the demo app".into(),
        command: vec![env!("CARGO_BIN_EXE_migctl").to_owned(), "shop".into()],
        env: Default::default(),
        mounts: vec![],
        disks: vec![grid::VolumeName::new("data").unwrap()],
        restart_on_crash: 0,
    };
    let mut properties = json!({"SHOP_WRITE_KIB": kib.to_string()});
    if let Some(seed) = seed {
        properties["SHOP_WRITE_SEED"] = json!(seed.to_string());
    }
    (template, properties)
}

/// gridsim with `shop` running on east, its configuration changed by
/// `configure` before it starts (listen addresses, the helper's command).
pub async fn grids_with_shop_configured(
    volumes: &[Vol],
    configure: impl FnOnce(&mut SimConfig),
) -> Grids {
    grids_with_shop_of(volumes, None, configure).await
}

/// gridsim with `shop` running on east as a hostile app: its process is
/// `sh -c SCRIPT`, writing to its log whatever the script prints
/// (terminal escapes, forged lines, floods).
pub async fn grids_with_hostile_shop(volumes: &[Vol], script: &str) -> Grids {
    let template = gridsim::TemplateConfig {
        name: grid::TemplateName::new("Hostile").unwrap(),
        description: "an app that prints what it likes".into(),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        mounts: vec![],
        disks: vec![],
        restart_on_crash: 0,
    };
    grids_with_shop_of(volumes, Some((template, json!({}))), |_| {}).await
}

/// gridsim with `shop` running on east, of `template` with `properties`
/// when one is given.
async fn grids_with_shop_of(
    volumes: &[Vol],
    template: Option<(gridsim::TemplateConfig, Value)>,
    configure: impl FnOnce(&mut SimConfig),
) -> Grids {
    let dir = tempfile::tempdir().unwrap();
    let helper = vec![env!("CARGO_BIN_EXE_migctl").to_owned(), "helper".to_owned()];
    gridsim::init(dir.path(), &["east", "west"], 0, helper).unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 100;
    config.stop_delay_ms = 100;
    let descriptor_of_template = template
        .as_ref()
        .map(|(t, properties)| json!({"template": t.name.to_string(), "properties": properties}));
    if let Some((t, _)) = template {
        config.templates.push(t);
    }
    configure(&mut config);
    config.save(&path).unwrap();
    let sim = gridsim::start(dir.path()).await.unwrap();

    let east = &sim.grid("east").unwrap().controller;
    let specs: Vec<String> = volumes
        .iter()
        .map(|Vol(name, size, _)| format!(r#"{{"name":"{name}","size":{size}}}"#))
        .collect();
    let specs: Vec<Value> = specs
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let mut descriptor = descriptor_of_template.unwrap_or_else(|| json!({}));
    descriptor["volumes"] = Value::Array(specs);
    let descriptor = descriptor.to_string();
    east.execute(
        "app create shop",
        &mut descriptor.as_bytes(),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    for Vol(name, _, range) in volumes {
        let bytes = filling(range.clone());
        let line = format!("vol write shop:{name} --offset {}", range.start);
        east.execute(&line, &mut &bytes[..], &mut Vec::new())
            .await
            .unwrap();
    }
    east.execute("app start shop", &mut tokio::io::empty(), &mut Vec::new())
        .await
        .unwrap();

    let console = SimPaths::new(dir.path()).console_dir();
    let client = ClientConfig::new(
        keys::load(&console.join("id_ed25519")).unwrap(),
        KnownHosts::load(&console.join("known_hosts")).unwrap(),
    );
    let inventory = Inventory::load(&console.join("grids.toml")).unwrap();
    let open = |name: &str| {
        let endpoint = Endpoint::from(inventory.get(&GridName::new(name).unwrap()).unwrap());
        let client = client.clone();
        async move { Connection::open(&endpoint, &client).await.unwrap() }
    };
    let (east, west) = (open("east").await, open("west").await);
    Grids {
        dir,
        sim,
        console,
        east,
        west,
    }
}

/// What `grids_with_shop` writes over a volume's `range`. Incompressible
/// (as most app data): zstd on the wire must not shrink a copy below the
/// byte counts the fault tests cut it at.
pub fn filling(range: std::ops::Range<u64>) -> Vec<u8> {
    let mut x = range.start | 1;
    range
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect()
}

pub fn migctl(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migctl"));
    c.env("MIGCTL_LOG", "warn").arg("--config-dir").arg(dir);
    c
}

/// A console process a test started: used as its [`Child`], and killed
/// when dropped — a test that panics leaves no console running behind it
/// (holding its gridsim's apps and a core of a 2-core CI machine).
pub struct Served(Child);

impl std::ops::Deref for Served {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `migctl serve` and returns it with its URL.
pub fn serve(dir: &Path) -> (Served, String) {
    serve_logging(dir, Stdio::null(), &[])
}

/// [`serve`] with its log (stderr) going to `log` and more environment.
pub fn serve_logging(dir: &Path, log: Stdio, env: &[(&str, &str)]) -> (Served, String) {
    let mut child = Served(
        migctl(dir)
            .envs(env.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("url: ")
                .map(|u| u.trim_end_matches('/').to_owned())
        })
        .unwrap();
    (child, url)
}

/// One call of the console's API with a bearer token: (status, JSON body).
pub async fn api(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = reqwest::Client::new();
    let req = match method {
        "POST" => c
            .post(format!("{url}/api/v1{path}"))
            .json(&body.unwrap_or(json!({}))),
        _ => c
            .get(format!("{url}/api/v1{path}"))
            .header("accept", "application/json"),
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls an operation until `what` holds (90 s at most).
pub async fn wait_for(url: &str, token: &str, id: &str, what: impl Fn(&Value) -> bool) -> Value {
    wait_for_within(Duration::from_secs(90), url, token, id, what).await
}

/// Polls an operation until `what` holds (`bound` at most).
pub async fn wait_for_within(
    bound: Duration,
    url: &str,
    token: &str,
    id: &str,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let (_, op) = api(url, token, "GET", &format!("/operations/{id}"), None).await;
        if what(&op) {
            return op;
        }
        assert!(Instant::now() < deadline, "timed out: {op}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kills a child process outright, as a crash would.
pub fn sigkill(child: &mut Child) {
    assert!(
        Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap();
}

/// Adds the operator `olga` to the console in `dir` and returns an API token of hers.
pub fn operator_token(dir: &Path) -> String {
    user_token(dir, "olga", "operator")
}

/// Adds a user with `role` to the console in `dir` and returns an API token of theirs.
pub fn user_token(dir: &Path, name: &str, role: &str) -> String {
    use std::io::Write;
    let mut add = migctl(dir)
        .args(["user", "add", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"a long password\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let out = migctl(dir).args(["user", "token", name]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A console config directory for `g`'s grids: `migctl.toml` names the
/// inventory, key and known_hosts, then `more` settings.
pub fn console_dir(g: &Grids, more: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("migctl.toml"),
        format!(
            "grids_file = \"{}\"\nprivate_key_file = \"{}\"\nknown_hosts_file = \"{}\"\n{more}\n",
            g.console.join("grids.toml").display(),
            g.console.join("id_ed25519").display(),
            g.console.join("known_hosts").display()
        ),
    )
    .unwrap();
    dir
}

/// An operation's stored events (the API's JSON).
pub async fn events(url: &str, token: &str, id: &str) -> Vec<Value> {
    let mut all: Vec<Value> = vec![];
    loop {
        let after = all.last().map_or(0, |e| e["seq"].as_i64().unwrap());
        let path = format!("/operations/{id}/events?after={after}");
        let (_, page) = api(url, token, "GET", &path, None).await;
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// The text of an operation's helper lines, in order.
pub async fn helper_lines(url: &str, token: &str, id: &str) -> Vec<String> {
    events(url, token, id)
        .await
        .iter()
        .filter(|e| e["source"] == "helper")
        .filter_map(|e| e["data"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The text of the element a page marks `data-testid="{testid}"` (tags
/// inside it dropped, entities as rendered), if the page has one: what an
/// operator reads there.
pub fn testid_text(html: &str, testid: &str) -> Option<String> {
    let mark = format!("data-testid=\"{testid}\"");
    let at = html.find(&mark)?;
    let open_end = at + html[at..].find('>')? + 1;
    let close = open_end + html[open_end..].find("</")?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[open_end..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text)
}

/// Awaits `what` for at most `limit`, else panics naming `step`: a test
/// whose step hangs fails and says which, instead of holding up the suite.
pub async fn within<T>(
    step: &str,
    limit: Duration,
    what: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(limit, what).await {
        Ok(v) => v,
        Err(_) => panic!("{step}: no end after {limit:?}"),
    }
}

/// Makes the first `n` writes of shop's process (`migctl shop`, seed
/// `seed`, from its start) on `v`, a copy of its `data` volume.
#[allow(dead_code)] // not every test crate replays shop's writes
pub fn replay_writes(v: &mut [u8], seed: u64, n: u64) {
    let mut pattern = gridsim::disk::WritePattern::new(seed, v.len() as u64);
    let mut chunk = vec![0u8; gridsim::disk::WRITE_CHUNK as usize];
    for _ in 0..n {
        let at = pattern.next(&mut chunk) as usize;
        v[at..at + chunk.len()].copy_from_slice(&chunk);
    }
}

/// One run of shop's process, from its start to its stop: with
/// [`grids_with_reseeded_shop`] each draws its own seed, so every run's
/// writes differ and a replay of all of them shows a write lost from any.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub writes: u64,
    pub seed: u64,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} writes (seed {})", self.writes, self.seed)
    }
}

impl Run {
    /// The run in shop's last line, "shop stops after N writes (seed S)".
    pub fn said_in(line: &str) -> Option<Run> {
        let (writes, rest) = line
            .strip_prefix("shop stops after ")?
            .split_once(" writes (seed ")?;
        Some(Run {
            writes: writes.parse().ok()?,
            seed: rest.strip_suffix(')')?.parse().ok()?,
        })
    }

    /// Makes this run's writes on `v` (a copy of shop's `data`).
    #[allow(dead_code)]
    pub fn replay(self, v: &mut [u8]) {
        replay_writes(v, self.seed, self.writes);
    }
}

/// The run of operation `id`'s source app that the helper stopped, as its
/// last line in the operation's log says.
#[allow(dead_code)]
pub async fn source_run(url: &str, token: &str, id: &str) -> Run {
    events(url, token, id)
        .await
        .iter()
        .rev()
        .filter(|e| e["source"] == "source")
        .find_map(|e| e["data"]["text"].as_str().and_then(Run::said_in))
        .unwrap_or_else(|| panic!("{id}: the source's last line (its writes) is not in the log"))
}

/// shop's last run on `c`, once stopped there.
#[allow(dead_code)]
pub async fn last_run(c: &Connection) -> Run {
    c.app_log(&grid::AppName::new("shop").unwrap(), None)
        .await
        .unwrap()
        .iter()
        .rev()
        .find_map(|l| Run::said_in(&l.text))
        .expect("shop's last line says its writes")
}
