//! Keep the source, roll back: a 1 GiB app migrated east → west keeping
//! its source, writing on west for a while, then rolled back — the console
//! (`migctl serve`), the helper and gridsim through real SSH, with shop's
//! process (`migctl shop`) writing to `data` all along.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use grid::dialect::VolRef;
use grid::{AppName, Connection, VolumeName};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{
    Vol, api, filling, grids_with_reseeded_shop, last_run, operator_token, serve, source_run,
    wait_for,
};

/// shop's `data`: 1 GiB, of which the first 128 MiB hold data (a full copy back would be 12.5 %) at the start.
const DATA: u64 = 1 << 30;
const FILLED: std::ops::Range<u64> = 0..128 << 20;
/// shop writes this many KiB a second, 64 KiB at a time.
const WRITE_KIB: u64 = 64;

/// Where shop's `data` on `c` first differs from its `filled` bytes with
/// `runs` replayed on them in order (`None`: it holds every write).
async fn first_difference(
    c: &Connection,
    size: u64,
    filled: std::ops::Range<u64>,
    runs: &[support::Run],
) -> Option<usize> {
    let mut expected = vec![0u8; size as usize];
    expected[filled.start as usize..filled.end as usize].copy_from_slice(&filling(filled));
    for run in runs {
        run.replay(&mut expected);
    }
    let r = VolRef::new(
        AppName::new("shop").unwrap(),
        VolumeName::new("data").unwrap(),
    );
    let mut held = vec![];
    c.vol_read(&r, 0, None, &mut held).await.unwrap();
    assert_eq!(held.len(), expected.len());
    held.iter().zip(&expected).position(|(a, b)| a != b)
}

async fn app_lines(c: &Connection, app: &str) -> Vec<String> {
    c.app_log(&AppName::new(app).unwrap(), None)
        .await
        .map(|l| l.into_iter().map(|l| l.text).collect())
        .unwrap_or_default()
}

/// Waits until shop on grid `name` says how much it has written (it does
/// every 5 s): it has run and written there for a while.
async fn has_written(c: &Connection, name: &str) {
    let began = Instant::now();
    while !app_lines(c, "shop")
        .await
        .iter()
        .any(|l| l.starts_with("shop has written"))
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "shop never wrote on {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn state(c: &Connection, app: &str) -> Option<String> {
    c.app_info(&AppName::new(app).unwrap())
        .await
        .ok()
        .map(|i| i.state.to_string())
}

async fn get(url: &str, token: &str, id: &str) -> Value {
    api(url, token, "GET", &format!("/operations/{id}"), None)
        .await
        .1
}

/// A 1 GiB app migrated keeping its source, then writing on west: the
/// rollback's preview says how much west changed, the rollback moves only
/// that (≤ 5 % of 1 GiB), the source on east runs again holding every
/// write shop made on west, west's copy is gone, and the history links the
/// two operations both ways.
#[tokio::test]
async fn a_rollback_moves_back_only_what_the_target_changed_and_loses_no_write() {
    let g = grids_with_reseeded_shop(&[Vol("data", DATA, FILLED)], WRITE_KIB).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    let began = Instant::now();
    let (status, op) = api(
        &url,
        &token,
        "POST",
        "/operations",
        Some(
            json!({"source_grid": "east", "source_app": "shop", "target_grid": "west",
            "target_app": "shop", "action": "migrate", "keep_source": true}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{op}");
    let migrate = op["id"].as_str().unwrap().to_owned();
    let done = wait_for(&url, &token, &migrate, |op| !op["outcome"].is_null()).await;
    let migrate_took = began.elapsed();
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(done["kept_source"]["state"], "kept", "{done}");
    let n = source_run(&url, &token, &migrate).await;
    assert!(n.writes > 0, "shop wrote on east");

    // shop writes on west for a while: until it says how much (every 5 s).
    has_written(&g.west, "west").await;

    // The preview: how much west changed since the cutover.
    let (status, plan) = api(
        &url,
        &token,
        "POST",
        &format!("/operations/{migrate}/rollback/plan"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["action"], "rollback", "{plan}");
    let changed = plan["bytes_to_move"].as_u64().unwrap();
    assert!(
        changed > 0 && changed <= DATA / 20,
        "the preview says {changed} bytes changed: {plan}"
    );
    assert_eq!(plan["changed_since"], done["finished_at"], "{plan}");
    // The page says it in words, with the same figure.
    let page = reqwest::Client::new()
        .get(format!("{url}/operations/{migrate}/rollback"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let said = support::testid_text(&page, "rollback-changed").unwrap_or_default();
    assert!(
        said.starts_with(&format!(
            "west/shop changed {} (",
            app::model::human_bytes(changed)
        )) && said.contains("% of its 1 GiB"),
        "the rollback page says {said:?}"
    );

    let began = Instant::now();
    let (status, rb) = api(
        &url,
        &token,
        "POST",
        &format!("/operations/{migrate}/rollback"),
        Some(json!({"keep_target": false})),
    )
    .await;
    assert_eq!(status, 201, "{rb}");
    assert_eq!(
        (
            &rb["action"],
            &rb["rollback_of"],
            &rb["source_grid"],
            &rb["target_grid"]
        ),
        (
            &json!("rollback"),
            &json!(migrate),
            &json!("west"),
            &json!("east")
        ),
        "{rb}"
    );
    let rollback = rb["id"].as_str().unwrap().to_owned();
    let ended = wait_for(&url, &token, &rollback, |op| !op["outcome"].is_null()).await;
    let rollback_took = began.elapsed();
    assert_eq!(ended["outcome"], "done", "{ended}");
    let copied = ended["bytes_copied"].as_u64().unwrap();
    // The baseline, measured in the same run: the migrate east → west was
    // a full copy of the same app, as a copy back without a kept source is.
    eprintln!(
        "rollback: {copied} bytes copied of {DATA} ({:.2} %), preview said {changed}; down {} ms, \
         in {} ms; a full copy (the migrate): {} bytes ({:.2} %), down {} ms, in {} ms",
        copied as f64 * 100.0 / DATA as f64,
        ended["downtime_ms"],
        rollback_took.as_millis(),
        done["bytes_copied"],
        done["bytes_copied"].as_u64().unwrap_or(0) as f64 * 100.0 / DATA as f64,
        done["downtime_ms"],
        migrate_took.as_millis(),
    );
    assert!(
        copied > 0 && copied <= DATA / 20,
        "the rollback copied {copied} bytes: more than 5 % of 1 GiB"
    );

    // Linked both ways; the kept source is rolled back, no longer kept.
    let original = get(&url, &token, &migrate).await;
    let monitor = reqwest::Client::new()
        .get(format!("{url}/operations/{rollback}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        monitor.contains(&format!(r#"href="/operations/{migrate}""#)),
        "the rollback's page does not link the migrate it undoes"
    );
    assert_eq!(original["rolled_back_by"], json!(rollback), "{original}");
    assert_eq!(
        original["kept_source"]["state"], "rolled_back",
        "{original}"
    );
    // West's copy is gone (as chosen); east runs again.
    assert_eq!(state(&g.west, "shop").await, None);
    assert_eq!(state(&g.east, "shop").await.as_deref(), Some("running"));
    assert!(ended["kept_source"].is_null(), "{ended}");

    // East holds every write: its n before the migrate, west's m, then its
    // own k since it started again.
    let m = source_run(&url, &token, &rollback).await;
    assert!(m.writes > 0, "shop wrote on west");
    g.east
        .app_stop(&AppName::new("shop").unwrap(), None)
        .await
        .unwrap();
    let k = last_run(&g.east).await;
    let first = first_difference(&g.east, DATA, FILLED, &[n, m, k]).await;
    assert_eq!(
        first, None,
        "east's data differs from shop's runs: {n} on east, {m} on west and {k} on east again"
    );
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}

/// The pid of the helper on `c` (its grid's line "… (pid N)").
async fn helper_pid(c: &Connection) -> Option<String> {
    app_lines(c, "MigHelper_shop")
        .await
        .iter()
        .rev()
        .find_map(|l| {
            l.split_once("(pid ")
                .map(|(_, p)| p.trim_end_matches(')').to_owned())
        })
}

/// Migrates shop from `from` to `to` keeping its source, waits until shop
/// has written on `to`, and starts the rollback with `to`'s writes made
/// slow on `from` (the kept source: the rollback's target), so that the
/// rollback is still copying when something is killed. The migrate's and
/// the rollback's ids.
async fn rollback_under_way(
    url: &str,
    token: &str,
    g: &support::Grids,
    (from, to): (&str, &str),
) -> (String, String) {
    let (status, op) = api(
        url,
        token,
        "POST",
        "/operations",
        Some(
            json!({"source_grid": from, "source_app": "shop", "target_grid": to,
            "target_app": "shop", "action": "migrate", "keep_source": true}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{op}");
    let migrate = op["id"].as_str().unwrap().to_owned();
    let done = wait_for(url, token, &migrate, |op| !op["outcome"].is_null()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    has_written(if to == "west" { &g.west } else { &g.east }, to).await;
    g.sim.grid(from).unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("vol write".into(), 1500);
    });
    let (status, rb) = api(
        url,
        token,
        "POST",
        &format!("/operations/{migrate}/rollback"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{rb}");
    let rollback = rb["id"].as_str().unwrap().to_owned();
    wait_for(url, token, &rollback, |op| op["phase"] == "copying").await;
    (migrate, rollback)
}

/// After a rollback of shop back to `home`: done, the kept source rolled
/// back and running, the migrate's target gone, the lock resolved.
async fn rolled_back(
    url: &str,
    token: &str,
    g: &support::Grids,
    dir: &std::path::Path,
    (migrate, rollback): (&str, &str),
    home: &str,
) {
    let ended = wait_for(url, token, rollback, |op| !op["outcome"].is_null()).await;
    assert_eq!(ended["outcome"], "done", "{ended}");
    let original = get(url, token, migrate).await;
    assert_eq!(
        original["kept_source"]["state"], "rolled_back",
        "{original}"
    );
    let (here, there) = if home == "east" {
        (&g.east, &g.west)
    } else {
        (&g.west, &g.east)
    };
    assert_eq!(state(here, "shop").await.as_deref(), Some("running"));
    assert_eq!(state(there, "shop").await, None);
    assert_eq!(
        state(here, "MigHelper_shop").await,
        None,
        "no helper is left"
    );
    assert!(!dir.join("mig.lock").exists(), "the lock is resolved");
}

/// A rollback survives its console killed mid-copy (the next start meters
/// the helper, which went on, and settles it) and its helper killed
/// mid-copy (its grid restarts it; it moves what still differs): each ends
/// done, one side running verified, the kept source never destroyed.
#[tokio::test]
async fn a_rollback_survives_its_console_and_its_helper_killed_mid_copy() {
    let g = grids_with_reseeded_shop(&[Vol("data", 32 << 20, 0..16 << 20)], WRITE_KIB).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    // The console killed while the rollback copies into east.
    let (migrate, rollback) = rollback_under_way(&url, &token, &g, ("east", "west")).await;
    support::sigkill(&mut console);
    g.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.delay_ms.clear());
    let (mut console, url) = serve(dir.path());
    rolled_back(&url, &token, &g, dir.path(), (&migrate, &rollback), "east").await;
    let first = [migrate, rollback];

    // Again, the helper killed while the rollback copies into east.
    let (migrate, rollback) = rollback_under_way(&url, &token, &g, ("east", "west")).await;
    let pid = helper_pid(&g.east)
        .await
        .expect("the helper's pid is in its log");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    g.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.delay_ms.clear());
    rolled_back(&url, &token, &g, dir.path(), (&migrate, &rollback), "east").await;
    let lines = support::helper_lines(&url, &token, &rollback)
        .await
        .join("\n");
    assert!(
        lines.contains("restart 1 of 3"),
        "the helper's restart is not in its log:\n{lines}"
    );

    // Through both kills, no write was lost: east holds shop's writes on
    // east, on west, on east, on west, and on east since.
    let mut runs = vec![];
    for op in first.iter().chain([&migrate, &rollback]) {
        runs.push(source_run(&url, &token, op).await);
    }
    g.east
        .app_stop(&AppName::new("shop").unwrap(), None)
        .await
        .unwrap();
    runs.push(last_run(&g.east).await);
    let differs = first_difference(&g.east, 32 << 20, 0..16 << 20, &runs).await;
    assert_eq!(
        differs, None,
        "east's data differs from shop's runs on east, west, east, west, east: {runs:?}"
    );
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}

/// A warm rollback: west (the migrate's target) keeps serving through the
/// pre-copy passes and stops only for the last changes; west's copy is kept
/// when asked (it becomes the rollback's kept source), and that rollback
/// can itself be rolled back — forward to west again — with no write lost
/// on the way: west ends holding shop's writes on east, on west, on east
/// again and on west again.
#[tokio::test]
async fn a_warm_rollback_keeps_the_target_serving_and_can_be_rolled_back_in_turn() {
    const SMALL: u64 = 64 << 20;
    const HALF: std::ops::Range<u64> = 0..32 << 20;
    let g = grids_with_reseeded_shop(&[Vol("data", SMALL, HALF)], WRITE_KIB).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    let (status, op) = api(
        &url,
        &token,
        "POST",
        "/operations",
        Some(
            json!({"source_grid": "east", "source_app": "shop", "target_grid": "west",
            "target_app": "shop", "action": "migrate", "keep_source": true}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{op}");
    let migrate = op["id"].as_str().unwrap().to_owned();
    let done = wait_for(&url, &token, &migrate, |op| !op["outcome"].is_null()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    has_written(&g.west, "west").await;

    // Warm, keeping west's copy.
    let (status, rb) = api(
        &url,
        &token,
        "POST",
        &format!("/operations/{migrate}/rollback"),
        Some(json!({"warm": true, "keep_target": true})),
    )
    .await;
    assert_eq!(status, 201, "{rb}");
    assert_eq!(rb["warm"], true, "{rb}");
    let rollback = rb["id"].as_str().unwrap().to_owned();
    let ended = wait_for(&url, &token, &rollback, |op| !op["outcome"].is_null()).await;
    assert_eq!(ended["outcome"], "done", "{ended}");
    let passes = ended["passes"].as_array().cloned().unwrap_or_default();
    assert!(
        passes.len() >= 2 && passes.last().is_some_and(|p| p["final"] == true),
        "a warm rollback copies in passes while west serves, then a final one: {ended}"
    );
    let lines = support::helper_lines(&url, &token, &rollback)
        .await
        .join("\n");
    assert!(
        lines.contains("small enough to copy with the app stopped"),
        "{lines}"
    );
    assert_eq!(
        (
            &ended["kept_source"]["grid"],
            &ended["kept_source"]["app"],
            &ended["kept_source"]["state"]
        ),
        (&json!("west"), &json!("shop"), &json!("kept")),
        "west's copy is kept, as asked: {ended}"
    );
    assert_eq!(state(&g.east, "shop").await.as_deref(), Some("running"));
    assert_eq!(state(&g.west, "shop").await.as_deref(), Some("stopped"));
    let original = get(&url, &token, &migrate).await;
    assert_eq!(original["rolled_back_by"], json!(rollback), "{original}");

    // The rollback rolled back in turn: forward to west, cold, east's copy
    // destroyed.
    has_written(&g.east, "east").await;
    let (status, forward) = api(
        &url,
        &token,
        "POST",
        &format!("/operations/{rollback}/rollback"),
        Some(json!({"keep_target": false})),
    )
    .await;
    assert_eq!(status, 201, "{forward}");
    let forward = forward["id"].as_str().unwrap().to_owned();
    let back = wait_for(&url, &token, &forward, |op| !op["outcome"].is_null()).await;
    assert_eq!(back["outcome"], "done", "{back}");
    assert_eq!(back["rollback_of"], json!(rollback), "{back}");
    assert_eq!(state(&g.west, "shop").await.as_deref(), Some("running"));
    assert_eq!(state(&g.east, "shop").await, None);

    // West holds every write: n on east, m on west, k on east, j on west.
    let n = source_run(&url, &token, &migrate).await;
    let m = source_run(&url, &token, &rollback).await;
    let k = source_run(&url, &token, &forward).await;
    g.west
        .app_stop(&AppName::new("shop").unwrap(), None)
        .await
        .unwrap();
    let j = last_run(&g.west).await;
    let first = first_difference(&g.west, SMALL, HALF, &[n, m, k, j]).await;
    assert_eq!(
        first, None,
        "west's data differs from shop's runs: {n} on east, {m} on west, {k} on east, {j} on west"
    );
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}
