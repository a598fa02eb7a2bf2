//! The demo's HA group on its own (no grid): a monitor and two nodes on
//! loopback, a writer at 50 writes a second, and the moves a group run
//! makes of them — the monitor stopped and started again, the backup
//! stopped and started again, the primary's activity released and the
//! primary stopped and started again. No acknowledged write may be lost,
//! and redundancy comes back up on all three after each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use migctl::mq::node::{self, Config, Kind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::mq::{Writing, redundancy_up, role};

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

    let writing = Writing::start(&[mq1, mq2]);
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

    writing.finish(Duration::from_secs(5), 100, 2999).await;
    for r in [monitor, primary, backup] {
        r.stop().await;
    }
}
