//! Migrate and snapshot end to end: the console's API, the engine, the lock,
//! the helper (`migctl helper`, run by gridsim as MigHelper_<target>) and
//! reconciliation, against gridsim through real SSH.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use app::model::Role;
use grid::dialect::VolRef;
use grid::{AppName, Connection, VolumeName};
use gridsim::RunningSim;
use migctl::Console;
use migctl::auth::{accounts, password, tokens};
use migctl::config::{self, Overrides};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use support::{Vol, grids_with_shop, testid_text};

struct World {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    sim: RunningSim,
    url: String,
    operator: String,
    viewer: String,
    admin: String,
    config_dir: std::path::PathBuf,
    east: Connection,
    west: Connection,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    overrides: Overrides,
    pool: sqlx::SqlitePool,
}

async fn world() -> World {
    world_on(None).await
}

/// The console outside any app, naming `current_grid` as the demo's does.
async fn world_on(current_grid: Option<&str>) -> World {
    let g = grids_with_shop(&[
        Vol("boot", 4 << 20, 0..4 << 20),
        Vol("data", 32 << 20, 8 << 20..12 << 20),
    ])
    .await;
    world_of(g, current_grid).await
}

/// The console outside any app, for the grids `g`.
async fn world_of(g: support::Grids, current_grid: Option<&str>) -> World {
    let (sim_dir, sim, console, east, west) = (g.dir, g.sim, g.console, g.east, g.west);
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        grids_file: Some(console.join("grids.toml")),
        private_key_file: Some(console.join("id_ed25519")),
        known_hosts_file: Some(console.join("known_hosts")),
        site_root: Some(dir.path().join("site")),
        current_grid: current_grid.map(|g| g.parse().unwrap()),
        ..Overrides::default()
    };
    let (settings, _) = config::load(dir.path(), &overrides).unwrap();
    let console = Console::open(settings).await.unwrap();
    let mut tokens_of = vec![];
    for (name, role) in [
        ("olga", Role::Operator),
        ("vic", Role::Viewer),
        ("ana", Role::Admin),
    ] {
        let hash = password::hash("a long password".into()).await.unwrap();
        let id = accounts::create(&console.pool, name, role, &hash)
            .await
            .unwrap();
        tokens_of.push(tokens::create(&console.pool, id).await.unwrap());
    }
    let (url, stop, task, pool) = serve(console).await;
    let config_dir = dir.path().to_owned();
    World {
        config_dir,
        admin: tokens_of[2].clone(),
        _dirs: (sim_dir, dir),
        sim,
        url,
        operator: tokens_of[0].clone(),
        viewer: tokens_of[1].clone(),
        east,
        west,
        stop,
        task,
        overrides,
        pool,
    }
}

type Serving = (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    sqlx::SqlitePool,
);

/// Serves `console` on a loopback port once its start-up reconciliation
/// has run (it runs before the router answers): its URL, what stops it,
/// its task and its database.
async fn serve(console: Console) -> Serving {
    let pool = console.pool.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(console.serve(listener, async move {
        let _ = stopped.await;
    }));
    let health = format!("{url}/healthz");
    let mut healthy = false;
    for _ in 0..200 {
        if reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(healthy, "the console never answered {health}");
    (url, stop, task, pool)
}

impl World {
    /// Stops the console and starts it again on the same directory (its
    /// start-up work runs again); the grids keep running.
    async fn restart_console(&mut self) {
        let (stop, _) = tokio::sync::oneshot::channel();
        let _ = std::mem::replace(&mut self.stop, stop).send(());
        (&mut self.task).await.unwrap().unwrap();
        let (settings, _) = config::load(&self.config_dir, &self.overrides).unwrap();
        let (url, stop, task, pool) = serve(Console::open(settings).await.unwrap()).await;
        (self.url, self.stop, self.task, self.pool) = (url, stop, task, pool);
    }

    async fn post(&self, token: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/api/v1/operations", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/v1/operations/plan` as `token`.
    async fn plan(&self, token: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/api/v1/operations/plan", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.viewer)
            .send()
            .await
            .unwrap()
    }

    /// A GET's body as text.
    async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    async fn wait_outcome(&self, id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let op: Value = self
                .get(&format!("/operations/{id}"))
                .await
                .json()
                .await
                .unwrap();
            if !op["outcome"].is_null() {
                return op;
            }
            assert!(std::time::Instant::now() < deadline, "no outcome: {op}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The operation's stored events, as JSON.
    async fn events(&self, id: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/v1/operations/{id}/events", self.url))
            .bearer_auth(&self.viewer)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn sums(c: &Connection, app: &str) -> Vec<String> {
        let mut v = vec![];
        for vol in ["boot", "data"] {
            let r = VolRef::new(AppName::new(app).unwrap(), VolumeName::new(vol).unwrap());
            v.push(c.vol_checksum(&r).await.unwrap().digest);
        }
        v
    }

    /// Stops the console and the grids; the directories live on while
    /// the caller keeps what this returns.
    async fn stop(self) -> (tempfile::TempDir, tempfile::TempDir) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.sim.stop().await;
        self._dirs
    }
}

/// The apps a grid page lists: (name, state).
async fn listed(w: &World, grid: &str) -> Vec<(String, String)> {
    let apps: Value = w
        .get(&format!("/grids/{grid}/apps"))
        .await
        .json()
        .await
        .unwrap();
    apps.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap().to_owned();
            (s("name"), s("state"))
        })
        .collect()
}

/// The demo's console runs on east inside no app. A migrate to west and
/// then a snapshot back into east both finish, and the moment the API
/// says `done` the grid pages agree: no source left, no helper, no stale state.
#[tokio::test]
async fn an_outside_console_snapshots_into_its_own_grid_and_the_grid_pages_agree_with_every_outcome()
 {
    let w = world_on(Some("east")).await;
    let sums = World::sums(&w.east, "shop").await;
    let r = w.post(&w.operator, request("migrate", "shop")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let op: Value = r.json().await.unwrap();
    let done = w.wait_outcome(op["id"].as_str().unwrap()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    let east = listed(&w, "east").await;
    assert!(
        east.iter().all(|(name, _)| name != "shop"),
        "the source is gone from east's page once done: {east:?}"
    );
    assert_eq!(
        listed(&w, "west").await,
        [("shop".to_owned(), "running".to_owned())],
        "west lists the running target and no helper"
    );

    let body = json!({"source_grid": "west", "source_app": "shop", "target_grid": "east", "target_app": "shopsnap", "action": "snapshot"});
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let op: Value = r.json().await.unwrap();
    let done = w.wait_outcome(op["id"].as_str().unwrap()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(done["bytes_done"], done["bytes_total"]);
    assert_eq!(World::sums(&w.east, "shopsnap").await, sums);
    assert_eq!(w.get("/lock").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        listed(&w, "east").await,
        [("shopsnap".to_owned(), "stopped".to_owned())],
        "east lists the stopped copy and no helper"
    );
    assert_eq!(
        listed(&w, "west").await,
        [("shop".to_owned(), "running".to_owned())]
    );
    w.stop().await;
}

/// An app whose log is hostile: terminal escapes (clear screen, OSC 52
/// clipboard writes, a title, a cursor report request, DCS), a carriage
/// return, a forged "operation ended" line, a C1 CSI and a right-to-left
/// override. `migctl op watch` and the text download show them made
/// visible, never raw; the NDJSON download keeps them as JSON escapes.
#[tokio::test]
async fn an_apps_terminal_escapes_reach_terminals_and_text_downloads_made_visible() {
    const SCRIPT: &str = r"printf '\033[2J\033]52;c;cGF3bmVk\007\033]0;owned\007\r   99 console operation ended done\n'
while :; do printf '\033[6n\033P+q\033\\ \342\200\256txt.exe \302\233 tick\n'; sleep 0.1; done";
    let g = support::grids_with_hostile_shop(&[Vol("data", 4 << 20, 0..1 << 20)], SCRIPT).await;
    let w = world_of(g, None).await;
    let r = w.post(&w.operator, request("snapshot", "shop-copy")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_migctl"))
        .args(["op", "watch", &id])
        .env("MIGCTL_URL", &w.url)
        .env("MIGCTL_TOKEN", &w.operator)
        .env("MIGCTL_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        watch.status.success(),
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    let text = w.text(&format!("/operations/{id}/log.txt")).await;
    let ndjson = w.text(&format!("/operations/{id}/log.ndjson")).await;
    let shown = String::from_utf8(watch.stdout).unwrap();
    for (what, out) in [("op watch", &shown), ("log.txt", &text)] {
        assert!(
            out.contains("^[[2J^[]52;c;cGF3bmVk^G^[]0;owned^G^M   99 console operation ended done"),
            "{what} shows the escapes and the carriage return: {out}"
        );
        assert!(
            out.contains("<U+202E>txt.exe <U+009B> tick"),
            "{what}: {out}"
        );
        // op watch rewrites its own progress line in place: "\r[###   ] …".
        let out = out.replace("\r[", "[");
        let raw: Vec<char> = out
            .chars()
            .filter(|&c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
            .collect();
        assert!(raw.is_empty(), "{what} sent {raw:?}");
    }
    assert!(
        ndjson.contains("\\u001b[2J"),
        "the NDJSON keeps the bytes, escaped"
    );
    let _ = w.stop().await;
}

/// A source that ignores SIGTERM is killed at the operation's stop timeout,
/// and the outcome says so where an operator looks: the API's
/// `source_stop`, the monitor and `migctl op show`. Stop timeouts outside
/// 1 s to a day, or not numbers, are refused naming the field.
#[tokio::test]
async fn a_source_that_ignores_its_stop_is_forced_off_and_the_outcome_says_so() {
    const SCRIPT: &str = "trap '' TERM; while :; do sleep 0.05; done";
    let g = support::grids_with_hostile_shop(&[Vol("data", 4 << 20, 0..1 << 20)], SCRIPT).await;
    let w = world_of(g, None).await;
    for bad in [json!(0), json!(86_401), json!("5"), json!(1.5), json!(-1)] {
        let mut body = request("migrate", "shop");
        body["stop_timeout_secs"] = bad.clone();
        let r = w.post(&w.operator, body).await;
        let status = r.status();
        let said = r.text().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {said}");
        assert!(said.contains("stop_timeout_secs"), "{bad}: {said}");
    }
    let mut body = request("migrate", "shop");
    body["stop_timeout_secs"] = json!(2);
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.wait_outcome(&id).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(done["stop_timeout_secs"], 2, "{done}");
    assert_eq!(done["source_stop"]["forced"], true, "{done}");
    assert_eq!(done["source_stop"]["timeout_secs"], 2, "{done}");
    let page = reqwest::Client::new()
        .get(format!("{}/operations/{id}", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shown = support::testid_text(&page, "source-stop").unwrap_or_default();
    assert!(
        shown.contains("did not stop by itself within its 2 s stop timeout")
            && shown.contains("forced off"),
        "the monitor says {shown:?}"
    );
    let show = tokio::process::Command::new(env!("CARGO_BIN_EXE_migctl"))
        .args(["op", "show", &id])
        .env("MIGCTL_URL", &w.url)
        .env("MIGCTL_TOKEN", &w.operator)
        .env("MIGCTL_LOG", "warn")
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("was forced off"), "op show: {shown}");
    let _ = w.stop().await;
}

/// A settle step that fails (the source grid refuses to destroy the moved
/// source) keeps the lock saying why, and the console tries again by
/// itself: once the grid obeys, the operation ends done without a restart.
#[tokio::test]
async fn a_settle_step_that_fails_is_tried_again_until_the_grid_obeys() {
    let w = world().await;
    let faults = &w.sim.grid("east").unwrap().controller.faults;
    faults.update(|f| {
        f.fail.insert(
            "app destroy".into(),
            (
                grid::dialect::ErrorCode::Internal,
                "the disk array is busy".into(),
            ),
        );
    });
    let r = w.post(&w.operator, request("migrate", "shop")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = support::wait_for(&w.url, &w.operator, &id, |op| {
        !op["outcome"].is_null()
            || op["reason"]
                .as_str()
                .is_some_and(|r| r.contains("the disk array is busy"))
    })
    .await;
    assert!(
        held["outcome"].is_null(),
        "ended while the grid refused: {held}"
    );
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .contains("the lock is kept"),
        "{held}"
    );
    assert_eq!(w.get("/lock").await.status(), StatusCode::OK);
    faults.update(|f| f.fail.clear());
    let done = w.wait_outcome(&id).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert!(done["reason"].is_null(), "{done}");
    assert!(
        w.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err(),
        "the moved source is destroyed once its grid obeys"
    );
    assert_eq!(w.get("/lock").await.status(), StatusCode::NOT_FOUND);
    let _ = w.stop().await;
}

/// A grid whose controller hangs (it takes `grid info` and never answers)
/// holds up no other grid's check, is shown as not answering once its
/// check's deadline passes, and is shown reachable again once it answers.
#[tokio::test]
async fn a_hanging_grid_delays_no_other_grids_check_and_says_it_does_not_answer() {
    let g = grids_with_shop(&[Vol("data", 1 << 20, 0..4096)]).await;
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("grid info".into(), 600_000);
    });
    let w = world_of(g, None).await;
    let grid_of = |grids: &Value, name: &str| {
        grids
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap()
    };
    let until = |what: &'static str, deadline_s: u64, holds: Box<dyn Fn(&Value) -> bool>| {
        let w = &w;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(deadline_s);
            loop {
                let grids: Value = w.get("/grids").await.json().await.unwrap();
                if holds(&grids) {
                    return grids;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what} within {deadline_s} s: {grids}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    until(
        "east checked and reachable while west hangs",
        8,
        Box::new(move |g| {
            let east = grid_of(g, "east");
            east["reachable"] == true && !east["checked_at"].is_null()
        }),
    )
    .await;
    let grids = until(
        "west shown as not answering",
        migctl::grids::CHECK_DEADLINE.as_secs() + 15,
        Box::new(move |g| !grid_of(g, "west")["checked_at"].is_null()),
    )
    .await;
    let west = grid_of(&grids, "west");
    assert_eq!(west["reachable"], false, "{west}");
    assert!(
        west["error"].as_str().unwrap().contains("no answer within"),
        "{west}"
    );
    w.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| f.delay_ms.clear());
    until(
        "west reachable again once it answers",
        migctl::grids::CHECK_DEADLINE.as_secs() + migctl::grids::REFRESH_EVERY.as_secs() + 15,
        Box::new(move |g| grid_of(g, "west")["reachable"] == true),
    )
    .await;
    let _ = w.stop().await;
}

/// A controller whose reply never ends: the console's check refuses the
/// reply past its cap and closes the channel, so the controller's command
/// ends — none is left streaming into a console that stopped listening.
#[tokio::test]
async fn a_reply_that_never_ends_is_cut_and_its_command_ended() {
    let g = grids_with_shop(&[Vol("data", 1 << 20, 0..4096)]).await;
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.endless.insert("grid info".into());
    });
    let w = world_of(g, None).await;
    let west = &w.sim.grid("west").unwrap().controller;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let grids: Value = w.get("/grids").await.json().await.unwrap();
        let view = grids
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "west")
            .cloned()
            .unwrap();
        if view["error"]
            .as_str()
            .is_some_and(|e| e.contains("larger than"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "west: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every check the console gave up on has ended on the grid; one that is
    // under way when we look ends too (the console checks every 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while west.commands_running() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} commands still run on west",
            west.commands_running()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = w.stop().await;
}

/// An app that floods its log while a warm snapshot pre-copies it (waiting
/// for a manual cutover, so the source runs on): lines of 1.5 MB and of 5000
/// characters, then bursts of 3000 lines, again and again. The console
/// stores a bounded share, says what it cut and what it did not store, and
/// stops following the app's log when the operation ends.
#[tokio::test]
async fn an_app_that_floods_its_log_gets_a_bounded_share_and_is_told_so() {
    const SCRIPT: &str = "while :; do
  head -c 1500000 /dev/zero | tr '\\0' x; echo
  head -c 5000 /dev/zero | tr '\\0' y; echo
  sleep 0.6
  seq 1 3000 | sed 's/^/flood /'
  sleep 0.6
done";
    let g = support::grids_with_hostile_shop(&[Vol("data", 4 << 20, 0..1 << 20)], SCRIPT).await;
    let w = world_of(g, None).await;
    let mut body = request("snapshot", "shop-copy");
    body["warm"] = true.into();
    body["cutover"] = "manual".into();
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let texts = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["source"] == "source" && e["kind"] == "log")
            .map(|e| e["data"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // Until the console has met every kind of excess (gridsim, which reads
    // an app's whole log file for every read, is slow to serve this one).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let source = loop {
        let source = texts(support::events(&w.url, &w.viewer, &id).await);
        let count = |what: &str| source.iter().filter(|t| t.contains(what)).count();
        if count("more lines not stored") >= 2
            && count("not kept") >= 1
            && count("[line cut: 5000 bytes") >= 1
        {
            break source;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "unstored {}, not kept {}, cut {}; the lines: {:?}",
            count("more lines not stored"),
            count("not kept"),
            count("[line cut: 5000 bytes"),
            source
                .iter()
                .filter(|t| !t.starts_with("flood "))
                .map(|t| t.chars().take(120).collect::<String>())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (flood_stored, flood_unstored): (usize, u64) = source.iter().fold((0, 0), |(n, m), t| {
        let unstored = t
            .strip_prefix('[')
            .and_then(|t| t.split_once(" more lines not stored"))
            .and_then(|(n, _)| n.parse::<u64>().ok());
        match unstored {
            Some(u) => (n, m + u),
            None => (n + usize::from(t.starts_with("flood ")), m),
        }
    });
    assert!(
        flood_unstored > flood_stored as u64,
        "most of a flood is counted, not stored: {flood_stored} stored, {flood_unstored} counted"
    );
    assert!(
        source.iter().all(|t| t.chars().count() <= 2100),
        "no stored line is longer than its cut"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/operations/{id}/cancel", w.url))
        .bearer_auth(&w.operator)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let op = w.wait_outcome(&id).await;
    assert_eq!(op["outcome"], "cancelled", "{op}");
    // The app floods on; the operation's log does not grow after its end.
    let ended = support::events(&w.url, &w.viewer, &id).await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        support::events(&w.url, &w.viewer, &id).await.len(),
        ended,
        "nothing stored after the end"
    );
    let _ = w.stop().await;
}

fn request(action: &str, target: &str) -> Value {
    json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": target, "action": action})
}

#[tokio::test]
async fn a_migrate_moves_the_app_and_a_snapshot_copies_it() {
    let w = world().await;
    let sums = World::sums(&w.east, "shop").await;

    // Snapshot first: the source comes back, the copy stays stopped.
    let r = w.post(&w.operator, request("snapshot", "shopcopy")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let op: Value = r.json().await.unwrap();
    let done = w.wait_outcome(op["id"].as_str().unwrap()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(done["bytes_done"], done["bytes_total"]);
    let source = w
        .east
        .app_info(&AppName::new("shop").unwrap())
        .await
        .unwrap();
    assert_eq!(source.state.as_str(), "running");
    let copy = w
        .west
        .app_info(&AppName::new("shopcopy").unwrap())
        .await
        .unwrap();
    assert_eq!(copy.state.as_str(), "stopped");
    assert_eq!(World::sums(&w.west, "shopcopy").await, sums);
    assert_eq!(
        w.get("/lock").await.status(),
        StatusCode::NOT_FOUND,
        "the lock is released"
    );
    assert!(
        w.west
            .app_info(&AppName::new("MigHelper_shopcopy").unwrap())
            .await
            .is_err(),
        "the helper is gone"
    );

    // Migrate: the target runs with the same data and the source is gone.
    let r = w.post(&w.operator, request("migrate", "shop")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let op: Value = r.json().await.unwrap();
    let id = op["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let done = w.wait_outcome(&id).await;
    assert_eq!(done["outcome"], "done", "{done}");
    // What it cost the app: measured by the helper, within the wall time,
    // and at least the grid's start delay (the target had to start).
    let downtime = done["downtime_ms"].as_u64().expect("downtime recorded");
    assert!(
        (100..started.elapsed().as_millis() as u64).contains(&downtime),
        "{done}"
    );
    assert_eq!(
        done["bytes_copied"],
        8 << 20,
        "only the blocks with data move (4 MiB of boot, 4 MiB of data): {done}"
    );
    let target = w
        .west
        .app_info(&AppName::new("shop").unwrap())
        .await
        .unwrap();
    assert_eq!(target.state.as_str(), "running");
    assert_eq!(World::sums(&w.west, "shop").await, sums);
    let gone = w
        .east
        .app_info(&AppName::new("shop").unwrap())
        .await
        .unwrap_err();
    assert!(gone.to_string().contains("there is no app shop"), "{gone}");

    // History and events are recorded.
    let list: Value = w.get("/operations").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let events: Value = w.events(&id).await;
    let events = events.as_array().unwrap();
    assert!(
        events
            .windows(2)
            .all(|e| e[1]["seq"].as_i64() == e[0]["seq"].as_i64().map(|s| s + 1))
    );
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "phase")
        .filter_map(|e| e["data"]["phase"].as_str())
        .collect();
    for p in [
        "preflight",
        "provisioning",
        "stopping_source",
        "copying",
        "verifying",
        "starting_target",
        "done",
    ] {
        assert!(phases.contains(&p), "phase {p} missing from {phases:?}");
    }
    assert!(events.iter().any(|e| e["kind"] == "progress"));

    // The whole log downloads, as text and as NDJSON (one event a line).
    let download = |ext: &str| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/operations/{id}/log.{ext}", w.url))
            .bearer_auth(&w.viewer)
            .send()
    };
    let r = download("txt").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"op-")
    );
    let text = r.text().await.unwrap();
    assert_eq!(text.lines().count(), events.len(), "{text}");
    assert!(text.contains("helper verified volume data"), "{text}");
    assert!(text.contains("phase done: "), "{text}");
    let ndjson = download("ndjson").await.unwrap().text().await.unwrap();
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&lines[..], &events[..]);

    // The audit trail says who started what; admins only.
    let audit = |token: &str, query: &str| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/audit{query}", w.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        audit(&w.viewer, "").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let trail: Value = audit(&w.admin, "?action=operation&actor=olga")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let trail = trail.as_array().unwrap();
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert_eq!(trail[0]["action"], "operation.start");
    assert!(
        trail[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{id}: migrate east/shop to west/shop")),
        "{trail:?}"
    );
    assert!(events.iter().any(|e| {
        e["source"] == "helper"
            && e["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("verified volume data"))
    }));
    // The source's and the target's own logs are part of the operation's log.
    let said = |source: &str, word: &str| {
        events.iter().any(|e| {
            e["source"] == source && e["data"]["text"].as_str().is_some_and(|t| t.contains(word))
        })
    };
    let last = events.last().unwrap();
    assert_eq!(
        (&last["kind"], &last["data"]["phase"]),
        (&json!("phase"), &json!("done")),
        "the outcome is the last event"
    );
    // All of the stop, from its first line: the helper may stop the source
    // before the console first follows its log.
    assert!(
        said("source", "is stopping") && said("source", "stopped"),
        "the source app's log: {events:#?}"
    );
    assert!(
        said("target", "running"),
        "the target app's log: {events:#?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_repeated_snapshot_updates_its_target_moving_only_what_changed_and_never_destroys_it() {
    let w = world().await;
    let op: Value = w
        .post(&w.operator, request("snapshot", "shopcopy"))
        .await
        .json()
        .await
        .unwrap();
    let done = w.wait_outcome(op["id"].as_str().unwrap()).await;
    assert_eq!(done["outcome"], "done", "{done}");

    // The same target again: refused unless the operator asks to update it.
    let r = w.post(&w.operator, request("snapshot", "shopcopy")).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("target_app: shopcopy already exists on grid west")
            && message.contains("update the existing target"),
        "{e}"
    );
    let mut nowhere = request("snapshot", "nosuchcopy");
    nowhere["update_target"] = json!(true);
    let r = w.post(&w.operator, nowhere).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("there is no app nosuchcopy on grid west to update"),
        "{e}"
    );

    // 1 MiB of data (16 blocks of 64 KiB) changes while shop is stopped.
    let shop = AppName::new("shop").unwrap();
    w.east.app_stop(&shop, Some(10)).await.unwrap();
    let data = VolRef::new(shop.clone(), VolumeName::new("data").unwrap());
    w.east
        .vol_write(&data, 20 << 20, &mut &vec![0x5au8; 1 << 20][..])
        .await
        .unwrap();
    w.east.app_start(&shop).await.unwrap();
    let sums = World::sums(&w.east, "shop").await;
    let mut update = request("snapshot", "shopcopy");
    update["update_target"] = json!(true);
    let r = w.post(&w.operator, update.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let op: Value = r.json().await.unwrap();
    let id = op["id"].as_str().unwrap().to_owned();
    let done = w.wait_outcome(&id).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(
        done["bytes_copied"],
        1 << 20,
        "only the changed 64 KiB blocks move: {done}"
    );
    assert_eq!(World::sums(&w.west, "shopcopy").await, sums);
    let events: Value = w.events(&id).await;
    let texts: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"volume data: 16 of 512 blocks changed (3.1 %); 1.0 MiB copied"),
        "{texts:#?}"
    );

    // An update that fails keeps the target: it existed before.
    w.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.corrupt_writes = true;
    });
    w.east.app_stop(&shop, Some(10)).await.unwrap();
    w.east
        .vol_write(&data, 0, &mut &vec![0x77u8; 1 << 20][..])
        .await
        .unwrap();
    w.east.app_start(&shop).await.unwrap();
    let op: Value = w.post(&w.operator, update).await.json().await.unwrap();
    let failed = w.wait_outcome(op["id"].as_str().unwrap()).await;
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("checksum mismatch"), "{reason}");
    assert!(
        reason.contains("the existing target shopcopy may be partly updated and is kept"),
        "{reason}"
    );
    let kept = w
        .west
        .app_info(&AppName::new("shopcopy").unwrap())
        .await
        .unwrap();
    assert_eq!(kept.state.as_str(), "stopped");
    assert_eq!(
        w.east.app_info(&shop).await.unwrap().state.as_str(),
        "running",
        "the source runs again"
    );
    w.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_starts_give_one_201_and_409s_naming_the_holder() {
    let w = world().await;
    // Keep the operation busy long enough for every request to meet its lock.
    w.sim.grid("east").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("app stop".into(), 5000);
    });
    let starts = (0..50).map(|i| {
        let url = w.url.clone();
        let token = w.operator.clone();
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/api/v1/operations"))
                .bearer_auth(token)
                .json(&request("snapshot", &format!("copy{i}")))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        })
    });
    let mut results = vec![];
    for s in starts {
        results.push(s.await.unwrap());
    }
    let created: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    let holder = created[0]["id"].as_str().unwrap();
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        let msg = body["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!(
                "locked by operation {holder} (snapshot of east/shop to west/"
            )),
            "{msg}"
        );
        assert!(msg.contains("started by olga"), "{msg}");
    }
    let lock: Value = w.get("/lock").await.json().await.unwrap();
    assert_eq!(lock["op_id"], holder);
    let done = w.wait_outcome(holder).await;
    assert_eq!(done["outcome"], "done", "{done}");
    w.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_controller_hears_of_them() {
    let w = world().await;
    for (field, value) in [
        ("target_app", "a;rm -rf /"),
        ("source_app", "$(x)"),
        ("target_grid", "my grid"),
        ("target_app", &"a".repeat(10_000)),
    ] {
        let mut body = request("migrate", "shop2");
        body[field] = json!(value);
        let r = w.post(&w.operator, body).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let msg: Value = r.json().await.unwrap();
        assert!(msg["message"].as_str().unwrap().starts_with(field), "{msg}");
    }
    // migctl's own helper is no app to move, even where one runs.
    let mut body = request("migrate", "shop2");
    body["source_app"] = json!("MigHelper_shop");
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["message"]
            .as_str()
            .unwrap()
            .starts_with("source_app: MigHelper_shop is migctl's own"),
        "{msg}"
    );
    // The warm options: each wrong one named, with what to do.
    for (extra, expected) in [
        (
            json!({"cutover": "manual"}),
            "cutover: only a warm operation cuts over",
        ),
        (json!({"warm": true, "cutover": "soon"}), "cutover"),
        (
            json!({"warm": true, "cutover_at": "tomorrow"}),
            "cutover_at: \"tomorrow\" is not an RFC 3339 time",
        ),
        (
            json!({"warm": true, "cutover_at": "2020-01-01T00:00:00Z"}),
            "cutover_at: 2020-01-01T00:00:00Z has passed",
        ),
        (
            json!({"warm": true, "cutover_at": "2999-01-01T00:00:00Z"}),
            "cutover_at: 2999-01-01T00:00:00Z is more than 7 days ahead",
        ),
        (
            json!({"warm": true, "cutover": "scheduled"}),
            "cutover_at: a scheduled cutover needs its time",
        ),
        (
            json!({"warm": true, "cutover": "manual", "cutover_at": "2999-01-01T00:00:00Z"}),
            "cutover_at: 2999",
        ),
        (json!({"warm": "yes"}), "warm"),
    ] {
        let mut body = request("migrate", "shop2");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = w.post(&w.operator, body).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
        let msg: Value = r.json().await.unwrap();
        assert!(
            msg["message"].as_str().unwrap().contains(expected),
            "{extra}: {msg}"
        );
    }
    let r = w.post(&w.operator, json!({"source_grid": "east"})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = w.post(&w.viewer, request("migrate", "shop2")).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "viewers cannot start operations"
    );
    let heard: Vec<String> = w
        .sim
        .grids
        .iter()
        .flat_map(|g| g.controller.recent_commands())
        .collect();
    for hostile in ["rm -rf", "$(x)", "my grid", "aaaaaaaaaa", "shop2"] {
        assert!(
            !heard.iter().any(|l| l.contains(hostile)),
            "{hostile} reached a controller: {heard:?}"
        );
    }

    // Pre-flight refusals name the problem.
    let mut same = request("migrate", "shop");
    same["target_grid"] = json!("east");
    let r = w.post(&w.operator, same).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["message"]
            .as_str()
            .unwrap()
            .starts_with("the target is the source"),
        "{msg}"
    );
    w.west
        .app_create(
            &AppName::new("taken").unwrap(),
            &grid::dialect::Descriptor::default(),
        )
        .await
        .unwrap();
    let r = w.post(&w.operator, request("migrate", "taken")).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let msg: Value = r.json().await.unwrap();
    assert_eq!(
        msg["message"],
        "target_app: taken already exists on grid west; pick another name, or choose \"update the existing target\" to copy only the blocks that differ into it"
    );
    assert_eq!(
        w.get("/lock").await.status(),
        StatusCode::NOT_FOUND,
        "a refused start takes no lock"
    );
    w.stop().await;
}

/// Reads an SSE body into (id, event) pairs.
fn sse_events(body: &str) -> Vec<(i64, String)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut kind = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                }
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                }
            }
            id.map(|i| (i, kind))
        })
        .collect()
}

#[tokio::test]
async fn cancel_during_the_copy_restarts_the_source_and_removes_the_partial_target() {
    let w = world().await;
    // Slow writes on the target keep the operation in its copy.
    w.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("vol write".into(), 1500);
    });
    let op: Value = w
        .post(&w.operator, request("migrate", "shop"))
        .await
        .json()
        .await
        .unwrap();
    let id = op["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now: Value = w
            .get(&format!("/operations/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if now["phase"] == "copying" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached copying: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let viewer_try = reqwest::Client::new()
        .post(format!("{}/api/v1/operations/{id}/cancel", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        viewer_try.status(),
        StatusCode::FORBIDDEN,
        "viewers cannot cancel"
    );
    // A cold operation has nothing to cut over; viewers cannot ask.
    for (token, status, says) in [
        (&w.viewer, StatusCode::FORBIDDEN, "operator"),
        (&w.operator, StatusCode::CONFLICT, "is cold"),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/operations/{id}/cutover", w.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/operations/{id}/cancel", w.url))
        .bearer_auth(&w.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["operation"]["outcome"], "cancelled");
    let cleanup: Vec<&str> = body["cleanup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cleanup.contains(&"stopped and removed MigHelper_shop"),
        "{cleanup:?}"
    );
    assert!(
        cleanup.contains(&"restarted the source app shop"),
        "{cleanup:?}"
    );
    assert!(
        cleanup.contains(&"removed the partial target shop"),
        "{cleanup:?}"
    );
    assert_eq!(
        w.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .unwrap()
            .state
            .as_str(),
        "running"
    );
    assert!(
        w.west
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err()
    );
    assert_eq!(w.get("/lock").await.status(), StatusCode::NOT_FOUND);
    let again = reqwest::Client::new()
        .post(format!("{}/api/v1/operations/{id}/cancel", w.url))
        .bearer_auth(&w.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // The event stream replays from Last-Event-ID and ends after the outcome.
    let all = reqwest::Client::new()
        .get(format!("{}/api/v1/operations/{id}/events", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(all.headers()["content-type"], "text/event-stream");
    let all = sse_events(&all.text().await.unwrap());
    assert!(all.len() > 5);
    assert!(
        all.windows(2).all(|p| p[1].0 == p[0].0 + 1),
        "ids are consecutive"
    );
    assert!(all.iter().any(|(_, k)| k == "phase"));
    let resumed = reqwest::Client::new()
        .get(format!("{}/api/v1/operations/{id}/events", w.url))
        .bearer_auth(&w.viewer)
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let resumed = sse_events(&resumed.text().await.unwrap());
    assert_eq!(resumed.first().map(|e| e.0), Some(4));
    assert_eq!(resumed.len(), all.len() - 3, "nothing is lost or repeated");

    // The outcome stays cancelled whatever the engine's own task concluded:
    // read once the console has stopped (its drive tasks first), when
    // nothing can write any more.
    let db = w.config_dir.join(config::DATABASE_FILE);
    let _dirs = w.stop().await;
    let pool = migctl::db::open(&db).await.unwrap();
    let outcome: Option<String> = sqlx::query_scalar("SELECT outcome FROM operations WHERE id = ?")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outcome.as_deref(), Some("cancelled"));
}

#[tokio::test]
async fn an_admin_overrides_a_stale_lock_with_the_op_id_and_a_reason() {
    let w = world().await;
    let stale = json!({
        "version": 1, "op_id": "op-stale", "action": "migrate",
        "source_grid": "east", "source_app_name": "shop", "target_grid": "west", "target_app_name": "shop",
        "created_at": "2026-11-20T10:00:00Z", "created_by": "olga", "console": {"host": "gone", "pid": 1}
    });
    std::fs::write(w.config_dir.join("mig.lock"), stale.to_string()).unwrap();
    let lock: Value = w.get("/lock").await.json().await.unwrap();
    assert_eq!(lock["op_id"], "op-stale");
    let r = w.post(&w.operator, request("snapshot", "x")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let call = |token: String, body: Value| {
        let url = format!("{}/api/v1/lock/override", w.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = call(
        w.operator.clone(),
        json!({"op_id": "op-stale", "reason": "console died"}),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "operators cannot override"
    );
    let r = call(
        w.admin.clone(),
        json!({"op_id": "op-other", "reason": "console died"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("the lock belongs to op-stale")
    );
    let r = call(w.admin.clone(), json!({"op_id": "op-stale", "reason": " "})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(
        w.admin.clone(),
        json!({"op_id": "op-stale", "reason": "console died", "destroy_helper": true}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["archived_to"]
            .as_str()
            .unwrap()
            .ends_with("locks/overridden-op-stale.json")
    );
    assert!(w.config_dir.join("locks/overridden-op-stale.json").exists());
    assert_eq!(w.get("/lock").await.status(), StatusCode::NOT_FOUND);

    // An unreadable lock is shown raw and overridden with the word `unreadable`.
    std::fs::write(w.config_dir.join("mig.lock"), "{half a lo").unwrap();
    let lock: Value = w.get("/lock").await.json().await.unwrap();
    assert_eq!(lock["unreadable"], true);
    assert_eq!(lock["raw"], "{half a lo");
    let r = call(
        w.admin.clone(),
        json!({"op_id": "unreadable", "reason": "disk trouble"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        w.post(&w.operator, request("snapshot", "x")).await.status(),
        StatusCode::CREATED
    );
    w.stop().await;
}

#[tokio::test]
async fn the_pages_start_an_operation_show_its_monitor_and_put_errors_next_to_the_field() {
    let w = world().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |target: &str| {
        vec![
            ("source_grid", "east".to_owned()),
            ("source_app", "shop".to_owned()),
            ("target_grid", "west".to_owned()),
            ("target_app", target.to_owned()),
            ("action", "snapshot".to_owned()),
        ]
    };
    w.west
        .app_create(
            &AppName::new("taken").unwrap(),
            &grid::dialect::Descriptor::default(),
        )
        .await
        .unwrap();
    let r = client
        .post(format!("{}/operations/new", w.url))
        .bearer_auth(&w.operator)
        .form(&form("taken"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with("/operations/new?source_grid=east") && to.contains("&notice="),
        "the values typed come back, the refusal by its id: {to}"
    );
    assert!(!to.contains("exists"), "no sentence in the address: {to}");
    let page = client
        .get(format!("{}{to}", w.url))
        .bearer_auth(&w.operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page
        .find("data-testid=\"error-target_app\"")
        .expect("an error slot next to the field");
    let slot = &page[at..page[at..].find("</p>").unwrap() + at];
    assert!(
        slot.contains("taken already exists on grid west") && !slot.contains("hidden"),
        "the error sits next to the field: {slot}"
    );
    let viewer_form = client
        .get(format!("{}/operations/new", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        viewer_form.contains("viewers watch operations but cannot start them")
            && !viewer_form.contains("data-testid=\"op-form\""),
        "viewers get no form"
    );

    let r = client
        .post(format!("{}/operations/new", w.url))
        .bearer_auth(&w.operator)
        .form(&form("copy"))
        .send()
        .await
        .unwrap();
    let monitor = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(monitor.starts_with("/operations/op-"), "{monitor}");
    let dash = client
        .get(format!("{}/", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dash.contains("data-testid=\"lock-banner\""),
        "the dashboard shows the lock while it runs"
    );
    let page = client
        .get(format!("{}{monitor}", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("snapshot east/shop → west/copy"));
    assert!(
        page.contains("<noscript><meta http-equiv=\"refresh\""),
        "a running operation's page refreshes itself without JavaScript"
    );
    assert!(
        page.contains("<noscript><style>.log-box {"),
        "without JavaScript the log opens at its newest line"
    );
    assert!(
        !page.contains("data-testid=\"cancel\""),
        "viewers get no cancel button"
    );

    let id = monitor.trim_start_matches("/operations/");
    w.wait_outcome(id).await;
    let page = client
        .get(format!("{}{monitor}", w.url))
        .bearer_auth(&w.operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "a finished operation's page stays still"
    );
    assert!(page.contains(">done<"));
    assert!(
        page.contains("verified volume data"),
        "the whole log is on the page"
    );
    let history = client
        .get(format!("{}/operations?state=done", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains(&format!("data-op=\"{id}\"")));
    let failed_only = client
        .get(format!("{}/operations?state=failed", w.url))
        .bearer_auth(&w.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!failed_only.contains(&format!("data-op=\"{id}\"")));
    w.stop().await;
}

#[tokio::test]
async fn the_plan_shows_the_commands_in_order_and_changes_nothing() {
    let w = world().await;
    let r = w.plan(&w.viewer, &request("migrate", "shop2")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "viewers cannot plan");
    let sent_before = |grid: &str| w.sim.grid(grid).unwrap().controller.recent_commands().len();
    let before = [sent_before("east"), sent_before("west")];
    let r = w.plan(&w.operator, &request("migrate", "shop2")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let p: Value = r.json().await.unwrap();
    let commands: Vec<&str> = p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["command"].as_str().unwrap())
        .collect();
    assert!(
        commands[0].starts_with("app provision MigHelper MigHelper_shop2"),
        "{commands:#?}"
    );
    assert_eq!(commands[1], "app stop shop --timeout 120 --json");
    assert_eq!(commands[2], "app create shop2 --json");
    assert!(
        commands.iter().any(|c| c.starts_with(
            "vol pull shop2:data --from-grid east --from shop:data --offset 0 --length "
        ) && c.ends_with(" --hash-blocks 65536 --json")),
        "the target pulls and answers with the digests of what it stored: {commands:#?}"
    );
    assert!(
        !commands.iter().any(|c| c.starts_with("vol checksum")),
        "a dialect 3 target needs no second read to verify: {commands:#?}"
    );
    assert_eq!(
        commands.last(),
        Some(&"app destroy shop --json"),
        "the source goes last"
    );
    assert_eq!(p["bytes_total"], (36u64 << 20));
    assert_eq!(
        p["bytes_to_move"],
        (8u64 << 20),
        "4 MiB of boot and 4 MiB of data hold bytes; the rest is zeros: {p}"
    );
    assert_eq!(p["volumes"].as_array().unwrap().len(), 2);
    assert!(p["estimate_secs"].as_u64().unwrap() > 0);
    assert!(p["rate_basis"].as_str().unwrap().contains("assumed"), "{p}");

    // A snapshot ends by restarting the source instead.
    let p: Value = w
        .plan(&w.operator, &request("snapshot", "copy"))
        .await
        .json()
        .await
        .unwrap();
    let last_helper_step = p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["by"] == "helper")
        .unwrap();
    assert_eq!(last_helper_step["command"], "app start shop --json");

    // Pre-flight refusals name the field.
    let r = w.plan(&w.operator, &request("migrate", "a;rm -rf /")).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("target_app"));

    // Nothing changed: no lock, no app, no create or provision sent.
    assert_eq!(w.get("/lock").await.status(), StatusCode::NOT_FOUND);
    assert!(
        w.west
            .app_info(&AppName::new("shop2").unwrap())
            .await
            .is_err()
    );
    for (grid, before) in ["east", "west"].into_iter().zip(before) {
        let sent = w.sim.grid(grid).unwrap().controller.recent_commands();
        let sent = &sent[before..];
        assert!(
            sent.iter().all(|c| [
                "app info",
                "app list",
                "grid info",
                "app log",
                "template list",
                "vol hash"
            ]
            .iter()
            .any(|looks| c.starts_with(looks))),
            "planning only looks: {sent:?}"
        );
    }
    w.stop().await;
}

#[tokio::test]
async fn the_lock_evidence_says_why_a_lock_is_stale_and_admins_manage_it_from_forms() {
    let w = world().await;
    let stale = json!({
        "version": 1, "op_id": "op-stale", "action": "migrate",
        "source_grid": "east", "source_app_name": "shop", "target_grid": "west", "target_app_name": "shop",
        "created_at": "2026-11-20T10:00:00Z", "created_by": "olga", "console": {"host": "gone", "pid": 1}
    });
    std::fs::write(w.config_dir.join("mig.lock"), stale.to_string()).unwrap();
    let d: Value = w.get("/lock/evidence").await.json().await.unwrap();
    assert_eq!(d["op_id"], "op-stale");
    assert!(
        d["stale"]
            .as_str()
            .unwrap()
            .contains("no console is working on it"),
        "{d}"
    );
    assert_eq!(d["source_state"], "running", "read live from east: {d}");
    assert_eq!(d["helper_state"], "absent", "{d}");
    assert!(d["age_secs"].as_u64().unwrap() > 3600, "{d}");

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |path: &str, token: &str, fields: Vec<(&'static str, &'static str)>| {
        client
            .post(format!("{}{path}", w.url))
            .bearer_auth(token)
            .form(&fields)
            .send()
    };
    let location = |r: reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();

    // What the page a form redirects to shows there, for the same user.
    // A page as `token`'s user reads it.
    let page_as = |to: &str, token: &str| {
        let sent = client
            .get(format!("{}{to}", w.url))
            .bearer_auth(token)
            .send();
        async move { sent.await.unwrap().text().await.unwrap() }
    };
    let shown = |r: reqwest::Response, token: &str, testid: &str| {
        let to = location(r);
        assert!(
            !to.contains("error=") && !to.contains("ok="),
            "no sentence in the address: {to}"
        );
        let page = page_as(&to, token);
        let testid = testid.to_owned();
        async move { testid_text(&page.await, &testid) }
    };

    // Override from the lock page's form: the op id must be typed.
    let r = form(
        "/lock/override",
        &w.operator,
        vec![("op_id", "op-stale"), ("reason", "x")],
    )
    .await
    .unwrap();
    let said = shown(r, &w.operator, "lock-error")
        .await
        .unwrap_or_default();
    assert!(said.contains("this needs the admin role"), "{said}");
    let r = form(
        "/lock/override",
        &w.admin,
        vec![("op_id", "op-other"), ("reason", "console died")],
    )
    .await
    .unwrap();
    let said = shown(r, &w.admin, "error-op_id").await.unwrap_or_default();
    assert!(
        said.contains("the lock belongs to op-stale"),
        "the refusal sits at the op id: {said}"
    );
    let r = form(
        "/lock/override",
        &w.admin,
        vec![("op_id", "op-stale"), ("reason", "console died")],
    )
    .await
    .unwrap();
    let said = shown(r, &w.admin, "lock-ok").await.unwrap_or_default();
    assert!(
        said.contains("the lock of op-stale is overridden"),
        "{said}"
    );
    assert_eq!(w.get("/lock").await.status(), StatusCode::NOT_FOUND);

    // Users: add, change role, disable; never the last admin.
    let r = form(
        "/users",
        &w.admin,
        vec![("name", "zed"), ("role", "operator"), ("password", "short")],
    )
    .await
    .unwrap();
    let said = shown(r, &w.admin, "error-password")
        .await
        .unwrap_or_default();
    assert!(said.contains("too short"), "{said}");
    let r = form(
        "/users",
        &w.admin,
        vec![
            ("name", "zed"),
            ("role", "operator"),
            ("password", "a long enough one"),
        ],
    )
    .await
    .unwrap();
    let said = shown(r, &w.admin, "users-ok").await;
    assert_eq!(said.as_deref(), Some("added zed as operator"));
    let r = form(
        "/users",
        &w.operator,
        vec![
            ("name", "eve"),
            ("role", "admin"),
            ("password", "a long enough one"),
        ],
    )
    .await
    .unwrap();
    let to = location(r);
    let page = page_as(&to, &w.admin).await;
    assert_eq!(
        testid_text(&page, "users-error"),
        None,
        "another user's notice is not shown: {to}"
    );
    let page = page_as(&to, &w.operator).await;
    let said = testid_text(&page, "users-error").unwrap_or_default();
    assert!(
        said.contains("this needs the admin role"),
        "operators cannot add users: {said}"
    );
    form(
        "/users/zed",
        &w.admin,
        vec![("change", "role"), ("role", "viewer")],
    )
    .await
    .unwrap();
    form("/users/zed", &w.admin, vec![("change", "disable")])
        .await
        .unwrap();
    let users: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/users", w.url))
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let zed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "zed")
        .unwrap();
    assert_eq!(
        (zed["role"].as_str(), zed["disabled"].as_bool()),
        (Some("viewer"), Some(true))
    );
    let r = form("/users/ana", &w.admin, vec![("change", "disable")])
        .await
        .unwrap();
    let said = shown(r, &w.admin, "users-error").await.unwrap_or_default();
    assert!(
        said.contains("you cannot disable your own account"),
        "never lock the console out: {said}"
    );
    let r = form(
        "/users/ana",
        &w.admin,
        vec![("change", "role"), ("role", "viewer")],
    )
    .await
    .unwrap();
    let said = shown(r, &w.admin, "users-error").await.unwrap_or_default();
    assert!(said.contains("only active admin"), "{said}");
    w.stop().await;
}

/// What the preview says of the copy method (its "compression …", whether
/// the target pulls, whether whole-volume checksums verify), next to what
/// the helper then said and did, on real gridsim grids of each dialect:
/// new targets, then the same target updated.
#[tokio::test]
async fn the_preview_says_the_copy_method_the_helper_then_uses_for_every_dialect_pair() {
    let w = world().await;
    let sums = World::sums(&w.east, "shop").await;
    let compression = |text: &str| -> Option<String> {
        let at = text.find("compression ")?;
        let rest = &text[at..];
        Some(
            rest.split([';', '"', '\n'])
                .next()
                .unwrap_or(rest)
                .trim()
                .to_owned(),
        )
    };
    for (i, (s, t)) in [(4, 4), (4, 3), (3, 4), (4, 2), (2, 4), (4, 1), (1, 3)]
        .into_iter()
        .enumerate()
    {
        for (grid, dialect) in [("east", s), ("west", t)] {
            w.sim
                .grid(grid)
                .unwrap()
                .controller
                .faults
                .update(|f| f.dialect = Some(dialect));
        }
        let target = format!("copy{i}");
        for update in [false, true] {
            let case = format!("source v{s}, target v{t}, update {update}");
            let mut body = request("snapshot", &target);
            body["update_target"] = json!(update);
            let plan: Value = w.plan(&w.operator, &body).await.json().await.unwrap();
            let said: Vec<String> = plan["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{case}: {plan}"))
                .iter()
                .map(|st| format!("{} {}", st["command"], st["why"]))
                .collect();
            let preview = said.join("\n");
            let r = w.post(&w.operator, body).await;
            assert_eq!(r.status(), StatusCode::CREATED, "{case}");
            let op: Value = r.json().await.unwrap();
            let id = op["id"].as_str().unwrap();
            let done = w.wait_outcome(id).await;
            assert_eq!(done["outcome"], "done", "{case}: {done}");
            let helper = support::helper_lines(&w.url, &w.operator, id).await;
            let method = helper
                .iter()
                .find(|l| l.starts_with("copy method: "))
                .unwrap_or_else(|| panic!("{case}: the helper names its method: {helper:#?}"));
            assert_eq!(
                preview.contains("vol pull"),
                method.contains(" pulls from "),
                "{case}: the preview and the helper agree on who moves the bytes\n{preview}\n{method}"
            );
            assert_eq!(
                preview.contains("vol checksum"),
                method.contains("whole-volume BLAKE3 checksums"),
                "{case}: and on how it is verified\n{preview}\n{method}"
            );
            assert_eq!(
                compression(&preview),
                compression(method),
                "{case}: and on compression\n{preview}\n{method}"
            );
            // Change detection: the preview's hash of an existing target
            // is what the helper's volume lines say it found blocks by.
            let found_by_xxh3 = helper.iter().any(|l| l.contains("(found by xxh3)"));
            assert_eq!(
                preview.contains("xxh3"),
                found_by_xxh3,
                "{case}: and on change detection\n{preview}\n{helper:#?}"
            );
            assert_eq!(World::sums(&w.west, &target).await, sums, "{case}");
        }
    }
    w.stop().await;
}

/// Reads `len` bytes of `app`'s volume `vol` at `offset`.
async fn read_vol(c: &Connection, app: &str, vol: &str, offset: u64, len: u64) -> Vec<u8> {
    let r = VolRef::new(AppName::new(app).unwrap(), VolumeName::new(vol).unwrap());
    let mut out = vec![];
    c.vol_read(&r, offset, Some(len), &mut out).await.unwrap();
    out
}

/// Writes `bytes` into `app`'s volume `vol` at `offset` (behind migctl's back).
async fn write_vol(c: &Connection, app: &str, vol: &str, offset: u64, bytes: &[u8]) {
    let r = VolRef::new(AppName::new(app).unwrap(), VolumeName::new(vol).unwrap());
    c.vol_write(&r, offset, &mut &bytes[..]).await.unwrap();
}

async fn release(w: &World, id: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/operations/{id}/release-source", w.url))
        .bearer_auth(&w.operator)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// What `c`'s controller says of `app` now (`None`: no such app).
async fn app_state(c: &Connection, app: &str) -> Option<String> {
    c.app_info(&AppName::new(app).unwrap())
        .await
        .ok()
        .map(|i| i.state.to_string())
}

/// Operation `id` once its kept source satisfies `done` (the console's
/// background work on kept sources, after a start).
async fn kept_until(w: &World, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let op: Value = w
            .get(&format!("/operations/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if done(&op["kept_source"]) {
            return op;
        }
        assert!(std::time::Instant::now() < deadline, "{op}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn audited(w: &World, action: &str) -> Vec<Value> {
    reqwest::Client::new()
        .get(format!("{}/api/v1/audit?action={action}", w.url))
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

/// A migrate that keeps its source ends done saying until when; the source
/// stays on its grid, stopped, shown as kept (API, grid page, dashboard)
/// and refused as an ordinary app; its release is checked against the
/// fingerprint taken at the cutover (a source changed behind migctl's back
/// is refused and kept); the deadline releases an untouched one (also
/// when the console was down at the time) and reports a changed one once.
#[tokio::test]
async fn a_kept_source_stays_until_released_and_is_checked_before_it_is_destroyed() {
    let mut w = world().await;
    let mut body = request("migrate", "shop");
    body["keep_source"] = json!(true);
    body["keep_source_hours"] = json!(2);
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.wait_outcome(&id).await;
    assert_eq!(done["outcome"], "done", "{done}");
    let kept = &done["kept_source"];
    assert_eq!(
        (&kept["grid"], &kept["app"], &kept["state"]),
        (&json!("east"), &json!("shop"), &json!("kept")),
        "{done}"
    );
    let until: time::OffsetDateTime = time::OffsetDateTime::parse(
        kept["until"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let until_text = kept["until"].as_str().unwrap();
    let ahead = (until - time::OffsetDateTime::now_utc()).whole_minutes();
    assert!(
        (110..=120).contains(&ahead),
        "kept until {until}: {ahead} min ahead"
    );
    let events = w.events(&id).await;
    let last = events.as_array().unwrap().last().unwrap();
    assert!(
        last["data"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("source east/shop kept, stopped, until")),
        "{last}"
    );
    assert_eq!(
        listed(&w, "east").await,
        [("shop".into(), "stopped".into())]
    );
    assert_eq!(
        listed(&w, "west").await,
        [("shop".into(), "running".into())]
    );
    // Shown as kept, not as an ordinary stopped app.
    let grid_page = html(&w, &w.viewer, "/grids/east").await;
    assert!(
        testid_text(&grid_page, "kept-by").is_some_and(|t| t.contains(&id)),
        "{grid_page}"
    );
    let dashboard = html(&w, &w.viewer, "/").await;
    assert!(
        dashboard.contains(r#"data-kept="east/shop""#) && dashboard.contains(until_text),
        "the dashboard does not list the kept source with its deadline: {dashboard}"
    );
    let monitor = html(&w, &w.viewer, &format!("/operations/{id}")).await;
    assert!(
        testid_text(&monitor, "kept-text").is_some_and(|t| t.contains("kept on its grid")),
        "the operation's page does not say the source is kept"
    );
    // Not an ordinary app: no operation takes it as its source.
    let mut again = request("snapshot", "shopagain");
    again["keep_source"] = json!(false);
    let r = w.post(&w.operator, again).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("east/shop is the source operation {id} kept")),
        "{e}"
    );

    // A release says why.
    let (status, e) = release(&w, &id, json!({"reason": " "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // Changed behind migctl's back: refused, kept.
    let original = read_vol(&w.east, "shop", "data", 8 << 20, 4096).await;
    write_vol(&w.east, "shop", "data", 8 << 20, &[0x5a; 4096]).await;
    let (status, e) = release(&w, &id, json!({"reason": "tidy up"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("volume data no longer matches the fingerprint"),
        "{e}"
    );
    assert_eq!(
        listed(&w, "east").await,
        [("shop".into(), "stopped".into())]
    );
    // Nor is it rolled into: the preview and the rollback are refused with
    // why, nothing starts, and what is on east stays as it was found.
    for path in ["rollback/plan", "rollback"] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/operations/{id}/{path}", w.url))
            .bearer_auth(&w.operator)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT, "{path}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("its kept source east/shop cannot take it")
                    && m.contains("volume data no longer matches the fingerprint")),
            "{path}: {e}"
        );
    }
    let op: Value = w
        .get(&format!("/operations/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(op["kept_source"]["state"], "kept", "{op}");
    assert!(op["rolled_back_by"].is_null(), "{op}");
    assert_eq!(
        (listed(&w, "east").await, listed(&w, "west").await),
        (
            vec![("shop".into(), "stopped".into())],
            vec![("shop".into(), "running".into())]
        )
    );
    assert_eq!(
        read_vol(&w.east, "shop", "data", 8 << 20, 4096).await,
        [0x5a; 4096]
    );
    // Only an admin may release it anyway.
    let (status, e) = release(&w, &id, json!({"reason": "tidy up", "force": true})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    // As it was at the cutover again: released, audited with the reason.
    write_vol(&w.east, "shop", "data", 8 << 20, &original).await;
    let (status, op) = release(&w, &id, json!({"reason": "west is fine"})).await;
    assert_eq!(status, StatusCode::OK, "{op}");
    assert_eq!(op["kept_source"]["state"], "released", "{op}");
    assert_eq!(op["kept_source"]["ended_by"], "olga", "{op}");
    assert_eq!(listed(&w, "east").await, []);
    let trail = audited(&w, "kept_source.release").await;
    assert!(
        trail[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{id}: east/shop destroyed: west is fine")),
        "{trail:?}"
    );
    let (status, e) = release(&w, &id, json!({"reason": "again"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");

    // Back east, keeping west/shop; its deadline passes while the console
    // is down.
    let body = json!({"source_grid": "west", "source_app": "shop", "target_grid": "east",
        "target_app": "shop", "action": "migrate", "keep_source": true, "keep_source_hours": 1});
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let back = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.wait_outcome(&back).await["outcome"], "done");
    let past = |pool: sqlx::SqlitePool, op: String| async move {
        sqlx::query("UPDATE kept_sources SET until = '2026-01-01T00:00:00Z' WHERE op_id = ?")
            .bind(op)
            .execute(&pool)
            .await
            .unwrap();
    };
    past(w.pool.clone(), back.clone()).await;
    // Changed: the deadline reports it (once) and keeps it.
    let original = read_vol(&w.west, "shop", "data", 8 << 20, 4096).await;
    write_vol(&w.west, "shop", "data", 8 << 20, &[0xa5; 4096]).await;
    w.restart_console().await;
    let op = kept_until(&w, &back, |k| !k["problem"].is_null()).await;
    w.restart_console().await;
    assert_eq!(op["kept_source"]["state"], "kept", "{op}");
    assert!(
        op["kept_source"]["problem"].as_str().is_some_and(|p| p
            .contains("the deadline passed but west/shop was not released")
            && p.contains("volume data no longer matches")),
        "{op}"
    );
    assert_eq!(audited(&w, "kept_source.not_released").await.len(), 1);
    // (A console just started has not checked the grids yet: asked directly.)
    assert_eq!(app_state(&w.west, "shop").await.as_deref(), Some("stopped"));
    // Untouched again: the deadline releases it at the console's start.
    write_vol(&w.west, "shop", "data", 8 << 20, &original).await;
    w.restart_console().await;
    let op = kept_until(&w, &back, |k| k["state"] != "kept").await;
    assert_eq!(op["kept_source"]["state"], "released", "{op}");
    assert_eq!(op["kept_source"]["ended_by"], "migctl", "{op}");
    assert_eq!(app_state(&w.west, "shop").await, None);
    let trail = audited(&w, "kept_source.release").await;
    assert!(
        trail[0]["actor"] == "migctl"
            && trail[0]["detail"].as_str().is_some_and(|d| d
                .starts_with(&format!("{back}: west/shop destroyed: its deadline"))
                && d.ends_with("passed")),
        "the deadline's release is not audited: {trail:?}"
    );
    assert_eq!(app_state(&w.east, "shop").await.as_deref(), Some("running"));

    // Changed behind migctl's back, an admin releases it after all: forced,
    // and the audit trail says so.
    let mut body = request("migrate", "shop");
    body["keep_source"] = json!(true);
    let r = w.post(&w.operator, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let third = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.wait_outcome(&third).await["outcome"], "done");
    write_vol(&w.east, "shop", "data", 8 << 20, &[0x3c; 4096]).await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/operations/{third}/release-source",
            w.url
        ))
        .bearer_auth(&w.admin)
        .json(&json!({"reason": "looked at it", "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let op: Value = r.json().await.unwrap();
    assert_eq!(
        (&op["kept_source"]["state"], &op["kept_source"]["ended_by"]),
        (&json!("released"), &json!("ana")),
        "{op}"
    );
    assert!(
        audited(&w, "kept_source.release").await[0]["detail"]
            .as_str()
            .unwrap()
            .contains("forced (it did not match its fingerprint): looked at it"),
    );
    assert_eq!(app_state(&w.east, "shop").await, None);
    w.stop().await;
}

/// A page's HTML as `token` sees it.
async fn html(w: &World, token: &str, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}{path}", w.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// An operator starts from an app's row on its grid's page: the form comes
/// with the app named as the source, the target named after it, and the
/// grid's apps offered; a viewer's rows offer nothing to start.
#[tokio::test]
async fn an_apps_row_opens_a_form_that_names_it_and_offers_the_grids_apps() {
    let w = world().await;
    // The grid pages show what the last check saw: wait for the first.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while listed(&w, "east").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "east was never checked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grid = html(&w, &w.operator, "/grids/east").await;
    let mark = r#"aria-label="Migrate shop""#;
    let at = grid
        .find(mark)
        .unwrap_or_else(|| panic!("no Migrate on shop's row: {grid}"));
    let link = &grid[grid[..at].rfind("<a ").unwrap()..at];
    let href = link
        .split("href=\"")
        .nth(1)
        .and_then(|h| h.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert_eq!(
        href,
        "/operations/new?source_grid=east&source_app=shop&action=migrate"
    );
    assert!(grid.contains(r#"aria-label="Snapshot shop""#), "{grid}");
    let viewer = html(&w, &w.viewer, "/grids/east").await;
    assert!(
        viewer.contains(r#"data-app="shop""#) && !viewer.contains("Migrate shop"),
        "a viewer cannot start an operation: {viewer}"
    );

    let form = html(&w, &w.operator, &href).await;
    let input = |id: &str| {
        let at = form
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("no {id}: {form}"));
        form[at..at + form[at..].find('>').unwrap()].to_owned()
    };
    assert!(
        input("source_app").contains(r#"value="shop""#),
        "{}",
        input("source_app")
    );
    assert!(
        input("target_app").contains(r#"value="shop""#),
        "the target is named after the source: {}",
        input("target_app")
    );
    assert!(input("source_app").contains(r#"list="source_app-choices""#));
    let choices = &form[form.find(r#"id="source_app-choices""#).unwrap()..];
    let choices = &choices[..choices.find("</datalist>").unwrap()];
    assert!(choices.contains(r#"<option value="shop""#), "{choices}");
    assert_eq!(
        testid_text(&form, "source-apps").as_deref(),
        Some("On east: shop (running).")
    );
    let migrate = input("action-migrate");
    assert!(migrate.contains("checked"), "{migrate}");
}

/// The form's time field is hidden unless the cutover is scheduled, but it
/// still travels with the form: what it held before another choice was
/// made is not held against an automatic cutover.
#[tokio::test]
async fn a_hidden_cutover_time_is_not_held_against_an_automatic_cutover() {
    let w = world().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/operations/new", w.url))
        .bearer_auth(&w.operator)
        .form(&[
            ("source_grid", "east"),
            ("source_app", "shop"),
            ("target_grid", "west"),
            ("target_app", "copy"),
            ("action", "snapshot"),
            ("warm", "1"),
            ("cutover", "auto"),
            ("cutover_at", "2001-01-01T00:00"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let id = to
        .strip_prefix("/operations/")
        .unwrap_or_else(|| panic!("refused: {to}"));
    let op = w.wait_outcome(id).await;
    assert_eq!(op["outcome"], "done", "{op}");
}
