//! MIG's way, for real: the console runs as the process of app `shop`
//! (`migctl demo --self`), with its config directory on shop's `config`
//! volume. It migrates its own app: it stops with it, travels in the volume
//! and finishes the operation on the grid where it wakes up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{AppName, ClientConfig, Connection, Endpoint, GridName, keys};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `migctl demo --self` in a scratch directory, and a browser signed in to
/// the console inside `shop`.
struct SelfDemo {
    dir: tempfile::TempDir,
    demo: std::process::Child,
    url: String,
    browser: reqwest::Client,
}

impl SelfDemo {
    async fn start() -> SelfDemo {
        SelfDemo::start_with(&[]).await
    }

    /// With more `migctl demo` arguments (e.g. a copy rate limit).
    async fn start_with(args: &[&str]) -> SelfDemo {
        let dir = tempfile::tempdir().unwrap();
        let mut demo = Command::new(env!("CARGO_BIN_EXE_migctl"))
            .env("MIGCTL_LOG", "warn")
            .args(["demo", "--self", "--dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
        let errors = dir.path().join("demo.err");
        let mut said = |prefix: &str| {
            lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
                .unwrap_or_else(|| {
                    panic!(
                        "the demo ended before saying {prefix:?}: {}",
                        std::fs::read_to_string(&errors).unwrap_or_default()
                    )
                })
        };
        assert_eq!(said("console: "), "inside shop on east");
        let url = said("url: ").trim_end_matches('/').to_owned();
        let secret = said("password: ");
        // An operator's browser session: it must survive the move.
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let r = browser
            .post(format!("{url}/login"))
            .header("origin", &url)
            .form(&[("username", "admin"), ("password", secret.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], "/", "signed in");
        SelfDemo {
            dir,
            demo,
            url,
            browser,
        }
    }

    /// GET under /api/v1; `None` while the console does not answer.
    async fn api(&self, path: &str) -> Option<Value> {
        let r = self
            .browser
            .get(format!("{}/api/v1{path}", self.url))
            .header("accept", "application/json")
            .send()
            .await
            .ok()?;
        r.json::<Value>().await.ok()
    }

    /// Starts `action` of east/shop to west/`target`; waits for the outcome
    /// through the console's absence. Returns the operation and how long
    /// the console did not answer.
    async fn run(&self, action: &str, target: &str) -> (Value, Duration) {
        let id = self.begin(("east", "shop"), ("west", target), action).await;
        self.outcome(&id, action).await
    }

    /// Starts an operation; returns its id.
    async fn begin(&self, source: (&str, &str), target: (&str, &str), action: &str) -> String {
        self.post(
            "/operations",
            json!({"source_grid": source.0, "source_app": source.1, "target_grid": target.0, "target_app": target.1, "action": action}),
        )
        .await
    }

    /// POSTs `body` under /api/v1 (an operation's start: 201); returns the
    /// new operation's id.
    async fn post(&self, path: &str, body: Value) -> String {
        let r = self
            .browser
            .post(format!("{}/api/v1{path}", self.url))
            .header("origin", &self.url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let op: Value = r.json().await.unwrap();
        op["id"].as_str().unwrap().to_owned()
    }

    /// Waits for the operation's outcome through the console's absence.
    async fn outcome(&self, id: &str, action: &str) -> (Value, Duration) {
        let started = Instant::now();
        let mut away = Duration::ZERO;
        loop {
            let asked = Instant::now();
            match self.api(&format!("/operations/{id}")).await {
                Some(op) if !op["outcome"].is_null() => {
                    eprintln!(
                        "self-{action}: {:?} in all, the console unreachable for about {away:?}",
                        started.elapsed()
                    );
                    return (op, away);
                }
                Some(_) => {}
                None => away += asked.elapsed().max(Duration::from_millis(200)),
            }
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "no outcome; away {away:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A connection to a demo grid with the demo's operator key.
    async fn grid(&self, name: &str) -> Connection {
        let trust = self.dir.path().join("gridsim/console");
        let client = ClientConfig::new(
            keys::load(&trust.join("id_ed25519")).unwrap(),
            KnownHosts::load(&trust.join("known_hosts")).unwrap(),
        );
        let inventory = Inventory::load(&trust.join("grids.toml")).unwrap();
        let endpoint = Endpoint::from(inventory.get(&GridName::new(name).unwrap()).unwrap());
        Connection::open(&endpoint, &client).await.unwrap()
    }

    /// The operation's stored events.
    async fn events(&self, id: &str) -> Vec<Value> {
        let events = self.api(&format!("/operations/{id}/events")).await.unwrap();
        events.as_array().unwrap().clone()
    }

    /// The apps a grid page lists: (name, state).
    async fn apps(&self, grid: &str) -> Vec<(String, String)> {
        let apps = self.api(&format!("/grids/{grid}/apps")).await.unwrap();
        apps.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap().to_owned();
                (s("name"), s("state"))
            })
            .collect()
    }
}

/// A row of a grid's app list: (name, state).
fn app_in(name: &str, state: &str) -> (String, String) {
    (name.to_owned(), state.to_owned())
}

impl Drop for SelfDemo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.demo.id().to_string()])
            .status();
        let _ = self.demo.wait();
    }
}

#[tokio::test]
async fn the_console_inside_shop_migrates_itself_and_finishes_on_the_target() {
    let d = SelfDemo::start().await;
    let console = d.api("/console").await.unwrap();
    assert_eq!(
        (
            console["current_grid"].as_str(),
            console["current_app"].as_str()
        ),
        (Some("east"), Some("shop"))
    );
    let (done, away) = d.run("migrate", "shop").await;
    let id = done["id"].as_str().unwrap().to_owned();
    assert_eq!(done["outcome"], "done", "{done}");
    assert!(away > Duration::ZERO, "the console was never away");
    assert!(
        done["downtime_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{done}"
    );
    let console = d.api("/console").await.unwrap();
    assert_eq!(console["current_grid"], "west", "it woke up on west");

    // Every event, consecutive from 1, the outcome last; every helper line.
    let events = d.api(&format!("/operations/{id}/events")).await.unwrap();
    let events = events.as_array().unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let last = events.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["data"]["phase"].as_str()),
        (Some("phase"), Some("done"))
    );
    let helper: Vec<i64> = events
        .iter()
        .filter(|e| e["source"] == "helper")
        .map(|e| e["data"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        helper,
        (1..=helper.len() as i64).collect::<Vec<_>>(),
        "every line of the helper's log, in order, none twice"
    );
    assert!(
        events.iter().any(|e| e["data"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("console stopping with its app shop on east"))),
        "the log says why the console was away"
    );
    // The grids agree: the source and the helper are gone.
    assert_eq!(d.apps("east").await, []);
    assert_eq!(d.apps("west").await, [app_in("shop", "running")]);
}

/// MIG's way, undone: the console inside shop migrates itself keeping its
/// source, wakes up on west, and rolls itself back from there — it stops
/// with shop on west, travels back into the kept source on east and
/// finishes the rollback there; west's copy is destroyed, and the history
/// it carried links the two operations.
#[tokio::test]
async fn the_console_inside_shop_rolls_itself_back_from_the_target() {
    let d = SelfDemo::start().await;
    let migrate = d
        .post(
            "/operations",
            json!({"source_grid": "east", "source_app": "shop", "target_grid": "west",
                "target_app": "shop", "action": "migrate", "keep_source": true}),
        )
        .await;
    let (done, _) = d.outcome(&migrate, "migrate").await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(done["kept_source"]["state"], "kept", "{done}");
    assert_eq!(d.api("/console").await.unwrap()["current_grid"], "west");
    assert_eq!(
        d.apps("east").await,
        [app_in("shop", "stopped")],
        "the kept source stays, stopped"
    );

    let rollback = d
        .post(
            &format!("/operations/{migrate}/rollback"),
            json!({"keep_target": false}),
        )
        .await;
    let (ended, away) = d.outcome(&rollback, "rollback").await;
    assert_eq!(ended["outcome"], "done", "{ended}");
    assert_eq!(ended["rollback_of"], json!(migrate), "{ended}");
    assert!(away > Duration::ZERO, "the console was never away");
    assert_eq!(
        d.api("/console").await.unwrap()["current_grid"],
        "east",
        "it woke up in the kept source"
    );
    let original = d.api(&format!("/operations/{migrate}")).await.unwrap();
    assert_eq!(original["rolled_back_by"], json!(rollback), "{original}");
    assert_eq!(
        original["kept_source"]["state"], "rolled_back",
        "{original}"
    );
    assert_eq!(d.apps("east").await, [app_in("shop", "running")]);
    assert_eq!(
        d.apps("west").await,
        [],
        "west's copy and the helper are gone"
    );
    let lock = d
        .browser
        .get(format!("{}/api/v1/lock", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 404, "the lock is resolved");
}

/// A snapshot of the console's own app: the console stops with shop, the
/// helper copies and restarts the source, the console wakes up on east
/// (`source_grid == current`, snapshot) and records `done`; the copy stays
/// stopped on west.
#[tokio::test]
async fn the_console_inside_shop_snapshots_itself_and_wakes_up_on_the_source() {
    let d = SelfDemo::start().await;
    let (done, away) = d.run("snapshot", "shopcopy").await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert!(away > Duration::ZERO, "the console was never away");
    let console = d.api("/console").await.unwrap();
    assert_eq!(console["current_grid"], "east", "it woke up where it was");
    assert_eq!(d.apps("east").await, [app_in("shop", "running")]);
    assert_eq!(
        d.apps("west").await,
        [app_in("shopcopy", "stopped")],
        "the copy stays stopped and the helper is gone"
    );
}

/// MIG's fourth row, for real: an operator starts the snapshot copy by
/// hand. Its console wakes up inside the copy with the database and lock
/// as they were when shop stopped; it destroys nothing anywhere, records
/// that it is a copy of that snapshot, and takes a new operation.
#[tokio::test]
async fn a_snapshot_copy_started_by_hand_destroys_nothing_and_is_free_to_work() {
    let d = SelfDemo::start().await;
    let (done, _) = d.run("snapshot", "shopcopy").await;
    assert_eq!(done["outcome"], "done", "{done}");
    let id = done["id"].as_str().unwrap().to_owned();

    // The copy listens where shop does (the property travelled): stop shop first.
    let (east, west) = (d.grid("east").await, d.grid("west").await);
    let app = |n: &str| AppName::new(n).unwrap();
    east.app_stop(&app("shop"), Some(30)).await.unwrap();
    west.app_start(&app("shopcopy")).await.unwrap();
    // It answers (the session travelled), then reconciles from the copied lock.
    let mut console = Value::Null;
    for _ in 0..300 {
        console = d.api("/console").await.unwrap_or_default();
        if !console["snapshot_copy_of"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        (
            console["current_grid"].as_str(),
            console["current_app"].as_str(),
            console["snapshot_copy_of"].as_str()
        ),
        (Some("west"), Some("shopcopy"), Some(id.as_str())),
        "{console}"
    );
    // In the copy, the snapshot is recorded as the source console's to finish.
    let mut op = Value::Null;
    for _ in 0..100 {
        op = d.api(&format!("/operations/{id}")).await.unwrap();
        if !op["outcome"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(op["outcome"], "elsewhere", "{op}");
    let reason = op["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("nothing was destroyed anywhere") && reason.contains("east/shop"),
        "{reason}"
    );
    // Nothing destroyed anywhere, and no lock blocks this console.
    assert_eq!(d.apps("east").await, [app_in("shop", "stopped")]);
    assert_eq!(d.apps("west").await, [app_in("shopcopy", "running")]);
    let lock = d.api("/lock").await.unwrap();
    assert!(
        lock["message"]
            .as_str()
            .is_some_and(|m| m.contains("there is no lock")),
        "{lock}"
    );

    // Its operator can work: the copy snapshots itself to north.
    let next = d
        .begin(("west", "shopcopy"), ("north", "shopcopy2"), "snapshot")
        .await;
    let (next, _) = d.outcome(&next, "snapshot").await;
    assert_eq!(next["outcome"], "done", "{next}");
    assert_eq!(d.apps("north").await, [app_in("shopcopy2", "stopped")]);
}

/// A self-migrate whose copy fails verification (west corrupts what it
/// stores): the helper restarts shop, the console wakes up on east, removes
/// the helper and the partial target, and records `failed` with the
/// helper's own reason, after every line the helper wrote.
#[tokio::test]
async fn a_self_migrate_whose_copy_fails_ends_failed_back_on_the_source() {
    let d = SelfDemo::start().await;
    let west = d.grid("west").await;
    west.call_line("sim fault", "sim fault corrupt-writes on", None)
        .await
        .unwrap();
    let (failed, away) = d.run("migrate", "shop").await;
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert!(away > Duration::ZERO, "the console was never away");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the helper failed: checksum mismatch on volume"),
        "{reason}"
    );
    let console = d.api("/console").await.unwrap();
    assert_eq!(console["current_grid"], "east", "it woke up where it was");
    assert_eq!(d.apps("east").await, [app_in("shop", "running")]);
    assert_eq!(
        d.apps("west").await,
        [],
        "helper and partial target removed"
    );

    let id = failed["id"].as_str().unwrap();
    let events = d.events(id).await;
    let helper: Vec<&Value> = events.iter().filter(|e| e["source"] == "helper").collect();
    let seqs: Vec<i64> = helper
        .iter()
        .map(|e| e["data"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(
        helper.iter().any(|e| e["data"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("failed: checksum mismatch"))),
        "the helper's failure is in the log"
    );
    let last = events.last().unwrap();
    assert_eq!(last["data"]["phase"], "failed");
}

/// The helper is SIGKILLed mid-copy while the console sits in the stopped
/// source: its grid restarts it, it resumes into the partial target, and
/// the console wakes up on west to record `done`.
#[tokio::test]
async fn a_helper_killed_mid_copy_is_restarted_by_its_grid_and_the_self_migrate_ends_done() {
    let d = SelfDemo::start_with(&["--copy-rate-limit-mib", "40"]).await;
    let west = d.grid("west").await;
    let id = d.begin(("east", "shop"), ("west", "shop"), "migrate").await;
    let helper = AppName::new("MigHelper_shop").unwrap();
    let started = Instant::now();
    let pid = loop {
        assert!(started.elapsed() < Duration::from_secs(60), "no copy seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(lines) = west.app_log(&helper, None).await else {
            continue;
        };
        let copying = lines.iter().any(|l| {
            matches!(operation_model::Report::decode(&l.text),
                operation_model::Report::Progress(p) if p.copied > 0)
        });
        let pid = lines.iter().rev().find_map(|l| {
            l.text
                .split_once("(pid ")
                .and_then(|(_, p)| p.trim_end_matches(')').parse::<u32>().ok())
        });
        if let (true, Some(pid)) = (copying, pid) {
            break pid;
        }
    };
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let (done, _) = d.outcome(&id, "migrate").await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(d.apps("east").await, []);
    assert_eq!(d.apps("west").await, [app_in("shop", "running")]);
    let texts: Vec<String> = d
        .events(&id)
        .await
        .iter()
        .filter(|e| e["source"] == "helper")
        .filter_map(|e| e["data"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("killed by signal 9; the grid restarts it")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("resuming into the existing target")),
        "{texts:#?}"
    );
}

/// `migctl op start --wait` from a terminal rides through the console's
/// absence: it says the console is away, says when it answers again from
/// west, prints every helper line once, and exits 0 on `done`.
#[tokio::test]
async fn op_watch_from_the_shell_rides_through_the_move() {
    let d = SelfDemo::start().await;
    // A token in the console's own database, which travels with shop.
    let config = d.dir.path().join("gridsim/grids/east/mnt/shop/config");
    let out = Command::new(env!("CARGO_BIN_EXE_migctl"))
        .env("MIGCTL_LOG", "warn")
        .arg("--config-dir")
        .arg(&config)
        .args(["user", "token", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = d.url.clone();
    let watch = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_migctl"))
            .env("MIGCTL_LOG", "warn")
            .env("MIGCTL_URL", url)
            .env("MIGCTL_TOKEN", token)
            .args([
                "op",
                "start",
                "--source",
                "east/shop",
                "--target",
                "west/shop",
            ])
            .args(["--action", "migrate", "--wait"])
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(240), watch)
        .await
        .expect("op start --wait ended")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("console does not answer"), "{text}");
    assert!(text.contains("console answers again after"), "{text}");
    assert!(
        text.lines().last().unwrap_or_default().contains(" done"),
        "{text}"
    );
    // Each line of the helper's log printed once, however long the gap.
    let helper: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("helper |"))
        .collect();
    let mut unique = helper.clone();
    unique.sort_unstable();
    unique.dedup();
    assert!(helper.len() > 5, "{text}");
    assert_eq!(helper.len(), unique.len(), "a line printed twice: {text}");
}
