//! The demo's HA group in tests: its nodes' own word on redundancy, and a
//! writer running beside a test's moves.

use migctl::mq::writer::{Report, Writer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `GET /redundancy` of the node at `at`, if it answers.
pub async fn redundancy(http: &reqwest::Client, at: SocketAddr) -> Option<serde_json::Value> {
    http.get(format!("http://{at}/redundancy"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The node's role, or `not answering`.
pub async fn role(http: &reqwest::Client, at: SocketAddr) -> String {
    redundancy(http, at)
        .await
        .and_then(|r| r["role"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "not answering".into())
}

/// Waits until all three say redundancy is up, in the same view, twice
/// in a row (the shipped check's rule); the view.
pub async fn redundancy_up(
    http: &reqwest::Client,
    nodes: [SocketAddr; 3],
    within: Duration,
) -> u64 {
    let deadline = Instant::now() + within;
    let mut passes = 0;
    loop {
        let mut views = vec![];
        for n in nodes {
            if let Some(r) = redundancy(http, n).await
                && r["up"] == true
            {
                views.push(r["view"].as_u64().unwrap());
            }
        }
        passes = if views.len() == 3 && views.iter().all(|v| *v == views[0]) {
            passes + 1
        } else {
            0
        };
        if passes == 2 {
            return views[0];
        }
        assert!(
            Instant::now() < deadline,
            "redundancy did not come back up within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A writer writing 50 times a second to `nodes` until [`Writing::finish`].
pub struct Writing {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Writer>,
}

impl Writing {
    pub fn start(nodes: &[SocketAddr]) -> Writing {
        let nodes = nodes.iter().map(ToString::to_string).collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut w = Writer::new(nodes).unwrap();
            w.run(50, async {
                let _ = stopped.await;
            })
            .await;
            w
        });
        Writing { stop, task }
    }

    /// Stops writing and reads everything back; asserts that no
    /// acknowledged write was lost, none applied twice or unasked for,
    /// more than `min_ok` acknowledged, no gap between two longer than
    /// `max_gap_ms`, and the writer kept its 50 writes a second.
    pub async fn finish(self, patience: Duration, min_ok: u64, max_gap_ms: u64) -> Report {
        self.stop.send(()).unwrap();
        let w = self.task.await.unwrap();
        let report = w.report(patience).await.unwrap();
        eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
        assert!(report.ok > min_ok, "{report:?}");
        // 50 a second asked; a few in a hundred short for the last interval
        // and the rounding.
        assert!(
            report.per_sec >= 48.0,
            "the writer kept {} writes/s, not 50: {report:?}",
            report.per_sec
        );
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
            report.longest_gap_ms <= max_gap_ms,
            "writes stopped for {} ms (at most {max_gap_ms} ms allowed)",
            report.longest_gap_ms
        );
        report
    }
}
