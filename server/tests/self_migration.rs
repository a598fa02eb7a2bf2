//! MIG's way, for real: the console runs as the process of app `shop`
//! (`migctl demo --self`), with its config directory on shop's `config`
//! volume. It migrates its own app: it stops with it, travels in the volume
//! and finishes the operation on the grid where it wakes up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `migctl demo --self` in a scratch directory, and a browser signed in to
/// the console inside `shop`.
struct SelfDemo {
    _dir: tempfile::TempDir,
    demo: std::process::Child,
    url: String,
    browser: reqwest::Client,
}

impl SelfDemo {
    async fn start() -> SelfDemo {
        let dir = tempfile::tempdir().unwrap();
        let mut demo = Command::new(env!("CARGO_BIN_EXE_migctl"))
            .env("MIGCTL_LOG", "warn")
            .args(["demo", "--self", "--dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
        let mut said = |prefix: &str| {
            lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
                .unwrap()
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
            _dir: dir,
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
        let r = self
            .browser
            .post(format!("{}/api/v1/operations", self.url))
            .header("origin", &self.url)
            .json(&json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": target, "action": action}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let op: Value = r.json().await.unwrap();
        let id = op["id"].as_str().unwrap().to_owned();
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
    assert_eq!(
        d.apps("west").await,
        [("shop".to_owned(), "running".to_owned())]
    );
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
    assert_eq!(
        d.apps("east").await,
        [("shop".to_owned(), "running".to_owned())]
    );
    assert_eq!(
        d.apps("west").await,
        [("shopcopy".to_owned(), "stopped".to_owned())],
        "the copy stays stopped and the helper is gone"
    );
}
