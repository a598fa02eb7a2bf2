//! The demo's HA group moved east → west by hand, as its shipped
//! definition says (the monitor, the backup, then the primary once it has
//! released its activity), with real processes on gridsim, real SSH and a
//! real console, while the writer writes 50 times a second: no
//! acknowledged write is lost, redundancy comes back up after every move,
//! and the longest gap between acknowledged writes is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use migctl::demo_group::{self, Addresses};
use migctl::mq::writer::Writer;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{Vol, api, grids_with_shop_configured, operator_token, serve, wait_for};

async fn redundancy(http: &reqwest::Client, at: SocketAddr) -> Option<serde_json::Value> {
    http.get(format!("http://{at}/redundancy"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// All three say redundancy is up, in one view, twice in a row.
async fn redundancy_up(http: &reqwest::Client, a: Addresses, within: Duration) {
    let deadline = Instant::now() + within;
    let mut passes = 0;
    loop {
        let mut views = vec![];
        for n in [a.mq1, a.mq2, a.mq3] {
            if let Some(r) = redundancy(http, n).await
                && r["up"] == true
            {
                views.push(r["view"].clone());
            }
        }
        passes = if views.len() == 3 && views.iter().all(|v| *v == views[0]) {
            passes + 1
        } else {
            0
        };
        if passes == 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redundancy did not come back up within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_demo_group_moved_member_by_member_loses_no_acknowledged_write() {
    let g = grids_with_shop_configured(&[Vol("boot", 4 << 20, 0..4 << 20)], |c| {
        c.templates
            .push(demo_group::template(env!("CARGO_BIN_EXE_migctl")).unwrap());
    })
    .await;
    let a = demo_group::create(&g.sim).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    redundancy_up(&http, a, Duration::from_secs(30)).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    let (stop_writing, writing_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut w = Writer::new(vec![a.mq1.to_string(), a.mq2.to_string()]).unwrap();
        w.run(50, async {
            let _ = writing_stopped.await;
        })
        .await;
        w
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    for member in ["mq3", "mq2", "mq1"] {
        if member == "mq1" {
            let r = http
                .post(format!("http://{}/release-activity", a.mq1))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
        }
        let (status, op) = api(
            &url,
            &token,
            "POST",
            "/operations",
            Some(
                json!({"source_grid": "east", "source_app": member, "target_grid": "west",
                "target_app": member, "action": "migrate", "warm": true}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{op}");
        let id = op["id"].as_str().unwrap().to_owned();
        let op = wait_for(&url, &token, &id, |op| !op["outcome"].is_null()).await;
        assert_eq!(op["outcome"], "done", "{member}: {op}");
        eprintln!("{member} moved: down {} ms", op["downtime_ms"]);
        redundancy_up(&http, a, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_writing.send(()).unwrap();
    let w = writer.await.unwrap();
    let report = w.report(Duration::from_secs(10)).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.ok > 200, "{report:?}");
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
        report.longest_gap_ms <= 3000,
        "writes stopped for {} ms (goal: 3 s, the release of activity)",
        report.longest_gap_ms
    );
    // All three run on west, none is left on east.
    for (grid, want) in [("west", Some("running")), ("east", None)] {
        let (_, apps) = api(&url, &token, "GET", &format!("/grids/{grid}/apps"), None).await;
        for m in ["mq1", "mq2", "mq3"] {
            let state = apps
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == m)
                .map(|x| x["state"].as_str().unwrap().to_owned());
            assert_eq!(state.as_deref(), want, "{m} on {grid}: {apps}");
        }
    }
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}
