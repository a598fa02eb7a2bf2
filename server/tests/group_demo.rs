//! The demo's HA group moved east → west by hand, as its shipped
//! definition says (the monitor, the backup, then the primary once it has
//! released its activity), with real processes on gridsim, real SSH and a
//! real console, while the writer writes 50 times a second: no
//! acknowledged write is lost, redundancy comes back up after every move,
//! and the longest gap between acknowledged writes is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use migctl::demo_group;
use serde_json::json;
use std::time::Duration;
use support::mq::{Writing, redundancy_up};
use support::{Vol, api, grids_with_shop_configured, operator_token, serve, wait_for};

#[tokio::test]
async fn the_demo_group_moved_member_by_member_loses_no_acknowledged_write() {
    let g = grids_with_shop_configured(&[Vol("boot", 4 << 20, 0..4 << 20)], |c| {
        c.templates
            .push(demo_group::template(env!("CARGO_BIN_EXE_migctl")).unwrap());
    })
    .await;
    let a = demo_group::create(&g.sim).await.unwrap();
    let nodes = [a.mq1, a.mq2, a.mq3];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    redundancy_up(&http, nodes, Duration::from_secs(30)).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    let writing = Writing::start(&[a.mq1, a.mq2]);
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
        redundancy_up(&http, nodes, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.finish(Duration::from_secs(10), 200, 3000).await;
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
