//! The demo's HA group on its own (no grid): a monitor and two nodes on
//! loopback, a writer at 50 writes a second, and the moves a group run
//! makes of them — the monitor stopped and started again, the backup
//! stopped and started again, the primary's activity released and the
//! primary stopped and started again. No acknowledged write may be lost,
//! and redundancy comes back up on all three after each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use migctl::mq::node::{self, Config, Kind};
use migctl::mq::writer::Writer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A running node: stop it as its grid would (its process ends).
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(kind: Kind, listen: SocketAddr, monitor: SocketAddr, dir: PathBuf) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        kind,
        listen,
        monitor: Some(monitor.to_string()),
        state_dir: dir,
    };
    let task = tokio::spawn(node::run(config, async move {
        let _ = stopped.await;
    }));
    Running {
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn redundancy(http: &reqwest::Client, at: SocketAddr) -> Option<serde_json::Value> {
    http.get(format!("http://{at}/redundancy"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits until all three say redundancy is up, in the same view, twice
/// in a row (the shipped check's rule); the view.
async fn redundancy_up(http: &reqwest::Client, nodes: [SocketAddr; 3], within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut passes = 0;
    loop {
        let mut views = vec![];
        for n in nodes {
            match redundancy(http, n).await {
                Some(r) if r["up"] == true => views.push(r["view"].as_u64().unwrap()),
                _ => {}
            }
        }
        if views.len() == 3 && views.iter().all(|v| *v == views[0]) {
            passes += 1;
            if passes == 2 {
                return views[0];
            }
        } else {
            passes = 0;
        }
        assert!(
            Instant::now() < deadline,
            "redundancy did not come back up within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn role(http: &reqwest::Client, at: SocketAddr) -> String {
    redundancy(http, at)
        .await
        .and_then(|r| r["role"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "not answering".into())
}

#[tokio::test]
async fn the_group_moved_node_by_node_loses_no_acknowledged_write() {
    let dirs = tempfile::tempdir().unwrap();
    let dir = |n: &str| dirs.path().join(n);
    let (mq1, mq2, mq3) = (free_addr(), free_addr(), free_addr());
    let http = reqwest::Client::new();
    let mut monitor = start(Kind::Monitor, mq3, mq3, dir("mq3"));
    let mut primary = start(Kind::Node, mq1, mq3, dir("mq1"));
    // mq1 first: the first node to ping is the primary.
    let t = Instant::now();
    while role(&http, mq1).await != "primary" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "mq1 never became the primary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut backup = start(Kind::Node, mq2, mq3, dir("mq2"));
    let all = [mq1, mq2, mq3];
    redundancy_up(&http, all, Duration::from_secs(10)).await;

    let (stop_writing, writing_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut w = Writer::new(vec![mq1.to_string(), mq2.to_string()]).unwrap();
        w.run(50, async {
            let _ = writing_stopped.await;
        })
        .await;
        w
    });
    let pause = || tokio::time::sleep(Duration::from_millis(500));
    pause().await;

    // The monitor moves: it stops, then starts again from its volume.
    monitor.stop().await;
    pause().await;
    monitor = start(Kind::Monitor, mq3, mq3, dir("mq3"));
    redundancy_up(&http, all, Duration::from_secs(10)).await;

    // The backup moves.
    backup.stop().await;
    pause().await;
    backup = start(Kind::Node, mq2, mq3, dir("mq2"));
    redundancy_up(&http, all, Duration::from_secs(10)).await;

    // The primary releases its activity to the backup, then moves.
    let r = http
        .post(format!("http://{mq1}/release-activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(role(&http, mq1).await, "idle", "mq1 stepped aside");
    primary.stop().await;
    pause().await;
    primary = start(Kind::Node, mq1, mq3, dir("mq1"));
    redundancy_up(&http, all, Duration::from_secs(10)).await;
    assert_eq!(role(&http, mq2).await, "primary");
    assert_eq!(role(&http, mq1).await, "backup");
    pause().await;

    stop_writing.send(()).unwrap();
    let w = writer.await.unwrap();
    let report = w.report(Duration::from_secs(5)).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.ok > 100, "{report:?}");
    assert_eq!(
        report.lost,
        Vec::<String>::new(),
        "acknowledged writes lost"
    );
    assert!(
        report.duplicated.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert!(
        report.longest_gap_ms < 3000,
        "writes stopped for {} ms",
        report.longest_gap_ms
    );
    for r in [monitor, primary, backup] {
        r.stop().await;
    }
}
