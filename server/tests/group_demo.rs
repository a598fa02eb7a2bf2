//! The demo's HA group moved east → west by a group run of its shipped
//! definition (`migctl group run FILE --wait`: the monitor, the backup,
//! then the primary once it has released its activity, redundancy checked
//! up after each step), with real processes on gridsim, real SSH and a
//! real console, while the writer writes 50 times a second: no
//! acknowledged write is lost, every check's evidence is kept, and the
//! longest gap between acknowledged writes is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use migctl::demo_group;
use std::time::Duration;
use support::mq::{Writing, redundancy_up};
use support::{Vol, api, grids_with_shop_configured, operator_token, serve};

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

    let file = demo_group::write_definition(dir.path()).unwrap();
    let writing = Writing::start(&[a.mq1, a.mq2]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The operator's way: the shipped definition, run and followed.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_migctl"))
        .args(["group", "run", "--wait", "--url", &url])
        .arg(&file)
        .env("MIGCTL_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!("{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "group run --wait: {:?}", out.status);
    let id = said.split_whitespace().next().unwrap().to_owned();
    let (_, run) = api(&url, &token, "GET", &format!("/groups/runs/{id}"), None).await;
    assert_eq!(run["state"], "done", "{run}");
    // Every step's operation ended done; every check's evidence is kept:
    // each after-check passed twice in a row, the release answered 200.
    for step in run["steps"].as_array().unwrap() {
        let ops = step["operations"].as_array().unwrap();
        assert_eq!(ops.len(), 1, "one operation a step: {step}");
        assert_eq!(ops[0]["outcome"], "done", "{step}");
        for check in step["after"].as_array().unwrap() {
            let attempts = check["attempts"].as_array().unwrap();
            let last_two: Vec<_> = attempts.iter().rev().take(2).collect();
            assert!(
                last_two.len() == 2
                    && last_two
                        .iter()
                        .all(|a| a["outcome"] == "pass" && a["status"] == 200),
                "{}: {attempts:?}",
                check["name"]
            );
            // Each attempt with when and what was answered (a pass: the
            // node's redundancy, up).
            for a in attempts {
                assert!(
                    a["at"].is_string() && a["note"].is_string() && a["excerpt"].is_string(),
                    "{a}"
                );
            }
            assert!(
                last_two.iter().all(|a| a["excerpt"]
                    .as_str()
                    .unwrap()
                    .replace(' ', "")
                    .contains(r#""up":true"#)),
                "{attempts:?}"
            );
        }
        for action in step["actions"].as_array().unwrap() {
            assert_eq!(action["attempts"][0]["status"], 200, "{action}");
        }
    }
    assert_eq!(run["steps"][2]["actions"].as_array().unwrap().len(), 1);
    for m in run["members"].as_array().unwrap() {
        assert_eq!(m["place"], "target", "{m}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.finish(Duration::from_secs(10), 200, 3000).await;
    // All three run on west, none is left on east, as the grids say.
    for (grid, want) in [(&g.west, Some("running")), (&g.east, None)] {
        for m in ["mq1", "mq2", "mq3"] {
            let state = grid
                .app_info(&grid::AppName::new(m).unwrap())
                .await
                .ok()
                .map(|i| i.state.to_string());
            assert_eq!(state.as_deref(), want, "{m}");
        }
    }
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}
