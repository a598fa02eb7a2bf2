//! Warm operations end to end: the console (`migctl serve`), the helper
//! and gridsim through real SSH, with shop's process (`migctl shop`)
//! writing to its disk `data` while the passes copy it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use grid::dialect::VolRef;
use grid::{AppName, Connection, VolumeName};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{
    Run, Vol, api, filling, grids_with_reseeded_shop, helper_lines, last_run, operator_token,
    serve, sigkill, source_run, wait_for,
};

/// shop's `data`: 24 MiB, of which 0..16 MiB hold data at the start.
const DATA: u64 = 24 << 20;
const FILLED: std::ops::Range<u64> = 0..16 << 20;

struct Setup {
    _grids_dir: tempfile::TempDir,
    dir: tempfile::TempDir,
    sim: gridsim::RunningSim,
    token: String,
    east: Connection,
    west: Connection,
}

/// shop writing `write_kib` KiB/s (each run with a seed of its own) and a
/// console whose `migctl.toml` ends with `settings`.
async fn setup(write_kib: u64, settings: &str) -> Setup {
    let g = grids_with_reseeded_shop(
        &[Vol("boot", 4 << 20, 0..4 << 20), Vol("data", DATA, FILLED)],
        write_kib,
    )
    .await;
    let dir = support::console_dir(&g, settings);
    let token = operator_token(dir.path());
    Setup {
        _grids_dir: g.dir,
        dir,
        sim: g.sim,
        token,
        east: g.east,
        west: g.west,
    }
}

/// What `data` holds before shop writes.
fn initial_data() -> Vec<u8> {
    let mut v = vec![0u8; DATA as usize];
    v[FILLED.start as usize..FILLED.end as usize].copy_from_slice(&filling(FILLED));
    v
}

/// What `data` holds after shop's `run`.
fn data_after(run: Run) -> Vec<u8> {
    let mut v = initial_data();
    run.replay(&mut v);
    v
}

/// A migrated shop lost no write: stopped on west, its `data` is the
/// source's at its stop (its run's writes, from the source's own last line
/// in the operation's log) with the target's own run since it started on
/// top (another seed: the target's writes are told from the source's).
async fn assert_the_target_holds_every_write(s: &Setup, url: &str, token: &str, id: &str) {
    let n = source_run(url, token, id).await;
    assert!(n.writes > 0, "shop wrote while it was copied");
    s.west
        .app_stop(&AppName::new("shop").unwrap(), None)
        .await
        .unwrap();
    let m = last_run(&s.west).await;
    eprintln!("the source made {n}, the target {m}");
    let mut expected = data_after(n);
    m.replay(&mut expected);
    let copy = read_volume(&s.west, "shop", "data").await;
    assert_eq!(copy.len(), expected.len(), "the target's data is whole");
    let first_difference = copy.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "the target differs from the source's run ({n}) and its own ({m})"
    );
}

async fn read_volume(c: &Connection, app: &str, vol: &str) -> Vec<u8> {
    let r = VolRef::new(AppName::new(app).unwrap(), VolumeName::new(vol).unwrap());
    let mut out = vec![];
    c.vol_read(&r, 0, None, &mut out).await.unwrap();
    out
}

async fn start(url: &str, token: &str, body: Value) -> String {
    let (status, op) = api(url, token, "POST", "/operations", Some(body)).await;
    assert_eq!(status, 201, "{op}");
    op["id"].as_str().unwrap().to_owned()
}

fn warm(action: &str, target: &str, extra: Value) -> Value {
    let mut body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west",
        "target_app": target, "action": action, "warm": true});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

async fn state(c: &Connection, app: &str) -> Option<String> {
    c.app_info(&AppName::new(app).unwrap())
        .await
        .ok()
        .map(|i| i.state.to_string())
}

/// A warm snapshot of an app that writes all along: passes while it runs,
/// the pass limit reached (the delta never reaches 0) and cut over as set;
/// the stopped copy holds exactly what shop had written when it stopped.
#[tokio::test]
async fn a_warm_snapshot_of_an_app_writing_all_along_holds_every_write_up_to_the_stop() {
    // The copy slowed so each pass lasts long enough for shop's writes to
    // change something before the next (64 KiB blocks: a pass moves what
    // they changed, and a fast one would find nothing).
    let s = setup(
        1024,
        "warm_pass_limit = 3\nwarm_converged_mib = 0\nwarm_at_pass_limit = \"cut_over\"\ncopy_rate_limit_mib = 4",
    )
    .await;
    let (mut console, url) = serve(s.dir.path());
    let id = start(&url, &s.token, warm("snapshot", "shopsnap", json!({}))).await;
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    assert_eq!(op["warm"], true);
    let passes = op["passes"].as_array().unwrap();
    assert_eq!(
        passes.len(),
        4,
        "3 passes while it ran, then the final: {op}"
    );
    assert_eq!(passes[3]["final"], true);
    assert!(passes[0]["copied"].as_u64().unwrap() >= 16 << 20, "{op}");
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(lines.contains("the pass limit is reached"), "{lines}");
    assert!(op["downtime_ms"].as_u64().is_some(), "{op}");
    // The log: pass 1 and the final pass volume by volume, each pass
    // between them in one line (what it found changed and copied).
    let of_pass = |n: u32| {
        lines
            .lines()
            .filter(|l| l.starts_with(&format!("pass {n}: ")))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of_pass(1).len(),
        3,
        "pass 1, a line a volume and its own: {lines}"
    );
    for n in [2, 3] {
        let said = of_pass(n);
        assert!(
            said.len() == 1 && said[0].contains("had changed"),
            "pass {n} in one line: {said:#?}"
        );
    }
    assert_eq!(
        of_pass(4).len(),
        2,
        "the final pass, a line a volume: {lines}"
    );

    // Every write shop made before it stopped is in the copy, none after.
    let n = last_run(&s.east).await;
    assert!(n.writes > 5, "shop wrote during the passes ({n})");
    let copy = read_volume(&s.west, "shopsnap", "data").await;
    let expected = data_after(n);
    assert_eq!(copy.len(), expected.len(), "the copy is whole");
    let first_difference = copy.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "the copy differs from shop after its {n} writes"
    );
    assert_eq!(state(&s.east, "shop").await.as_deref(), Some("running"));
    assert_eq!(state(&s.west, "shopsnap").await.as_deref(), Some("stopped"));
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// A warm migrate that converges cuts over by itself; the API says how
/// long the app was down, and the grids agree with `done`.
#[tokio::test]
async fn a_warm_migrate_cuts_over_by_itself_once_a_pass_finds_little_changed() {
    let s = setup(128, "").await;
    let (mut console, url) = serve(s.dir.path());
    let id = start(&url, &s.token, warm("migrate", "shop", json!({}))).await;
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    let passes = op["passes"].as_array().unwrap();
    let last = passes.last().unwrap();
    assert_eq!(last["final"], true, "{op}");
    assert!(
        last["delta"].as_u64().unwrap() <= 16 << 20,
        "the final pass copies little: {op}"
    );
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(
        lines.contains("small enough to copy with the app stopped"),
        "{lines}"
    );
    assert!(lines.contains("verified volume data"), "{lines}");
    let down = op["downtime_ms"].as_u64().unwrap();
    assert!(down > 0, "{op}");
    assert_eq!(state(&s.east, "shop").await, None, "the source is gone");
    assert_eq!(state(&s.west, "shop").await.as_deref(), Some("running"));
    assert_eq!(state(&s.west, "MigCutNow_shop").await, None);
    assert_the_target_holds_every_write(&s, &url, &s.token, &id).await;
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// "Cut over now" during pass 1 (a slow copy): the pass stops short, the
/// final pass copies the rest with the app stopped.
#[tokio::test]
async fn cut_over_now_during_pass_one_cuts_over() {
    let s = setup(64, "copy_rate_limit_mib = 4").await;
    let (mut console, url) = serve(s.dir.path());
    let id = start(
        &url,
        &s.token,
        warm("migrate", "shop", json!({"cutover": "manual"})),
    )
    .await;
    wait_for(&url, &s.token, &id, |op| {
        op["phase"] == "pre_copying" && op["bytes_done"].as_u64() > Some(0)
    })
    .await;
    // A viewer-less cold operation has nothing to cut over; this one does.
    let (status, body) = api(
        &url,
        &s.token,
        "POST",
        &format!("/operations/{id}/cutover"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    let passes = op["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 2, "pass 1, cut short, then the final: {op}");
    assert!(
        passes[0]["copied"].as_u64() < passes[0]["delta"].as_u64(),
        "pass 1 stopped short: {op}"
    );
    assert_eq!(passes[1]["final"], true);
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(lines.contains("olga asked to cut over now"), "{lines}");
    assert_eq!(
        state(&s.west, "MigCutNow_shop").await,
        None,
        "the cutover signal goes with the helper"
    );
    let (status, body) = api(
        &url,
        &s.token,
        "POST",
        &format!("/operations/{id}/cutover"),
        None,
    )
    .await;
    assert_eq!(
        status, 409,
        "an ended operation has nothing to cut over: {body}"
    );
    assert_the_target_holds_every_write(&s, &url, &s.token, &id).await;
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// A scheduled cutover waits for its time, pre-copying meanwhile.
#[tokio::test]
async fn a_scheduled_cutover_waits_for_its_time() {
    let s = setup(64, "").await;
    let (mut console, url) = serve(s.dir.path());
    // Far enough ahead for two passes on a loaded machine (they take ~1 s).
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(20);
    let at_text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let id = start(
        &url,
        &s.token,
        warm("snapshot", "shopsnap", json!({"cutover_at": at_text})),
    )
    .await;
    let op = wait_for(&url, &s.token, &id, |op| {
        op["passes"].as_array().is_some_and(|p| p.len() >= 2)
    })
    .await;
    assert_eq!(op["cutover"], "scheduled", "{op}");
    assert!(
        time::OffsetDateTime::now_utc() < at,
        "two passes ran before the time; test too slow to judge"
    );
    assert_eq!(op["phase"], "pre_copying", "still before the time: {op}");
    assert_eq!(state(&s.east, "shop").await.as_deref(), Some("running"));
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    let events = support::events(&url, &s.token, &id).await;
    let stopping = events
        .iter()
        .find(|e| e["kind"] == "phase" && e["data"]["phase"] == "stopping_source")
        .expect("the source was stopped");
    let stopped_at = time::OffsetDateTime::parse(
        stopping["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        stopped_at >= at,
        "the source stopped at {stopped_at}, before {at}"
    );
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// Cancel during the pre-copy: the source never stopped and keeps
/// running; the helper, the partial target and the cutover signal go.
#[tokio::test]
async fn cancel_during_the_pre_copy_leaves_the_source_running_and_removes_the_partial_target() {
    let s = setup(64, "").await;
    let (mut console, url) = serve(s.dir.path());
    let id = start(
        &url,
        &s.token,
        warm("migrate", "shop", json!({"cutover": "manual"})),
    )
    .await;
    wait_for(&url, &s.token, &id, |op| {
        !op["passes"].as_array().unwrap().is_empty()
    })
    .await;
    let (status, body) = api(
        &url,
        &s.token,
        "POST",
        &format!("/operations/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operation"]["outcome"], "cancelled", "{body}");
    let cleanup = body["cleanup"].to_string();
    assert!(
        cleanup.contains("removed the partial target shop"),
        "{cleanup}"
    );
    assert!(
        !cleanup.contains("restarted the source"),
        "it never stopped: {cleanup}"
    );
    assert_eq!(state(&s.east, "shop").await.as_deref(), Some("running"));
    for gone in ["shop", "MigHelper_shop", "MigCutNow_shop"] {
        assert_eq!(state(&s.west, gone).await, None, "{gone} is left on west");
    }
    let shop_log = s
        .east
        .app_log(&AppName::new("shop").unwrap(), None)
        .await
        .unwrap();
    assert!(
        !shop_log.iter().any(|l| l.text.starts_with("shop stops")),
        "the source was never stopped"
    );
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// The delta never converges and the setting says wait: the passes go on
/// past the limit until an operator cuts over. The console is killed in
/// a pass and again right after "cut over now"; each time the one started
/// again carries on, and the operation ends once, done.
#[tokio::test]
async fn at_the_pass_limit_it_waits_for_the_operator_through_console_crashes() {
    let s = setup(
        1024,
        "warm_pass_limit = 2\nwarm_converged_mib = 0\nwarm_at_pass_limit = \"wait\"",
    )
    .await;
    let (mut console, url) = serve(s.dir.path());
    let id = start(&url, &s.token, warm("migrate", "shop", json!({}))).await;
    wait_for(&url, &s.token, &id, |op| {
        op["passes"].as_array().unwrap().len() >= 3
    })
    .await;
    sigkill(&mut console);

    let (mut console, url) = serve(s.dir.path());
    let op = wait_for(&url, &s.token, &id, |op| {
        op["passes"].as_array().unwrap().len() >= 4
    })
    .await;
    assert_eq!(op["phase"], "pre_copying", "past the limit it waits: {op}");
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(lines.contains("pass limit (2) reached"), "{lines}");
    let (status, body) = api(
        &url,
        &s.token,
        "POST",
        &format!("/operations/{id}/cutover"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    sigkill(&mut console);

    let deadline = Instant::now() + Duration::from_secs(60);
    while state(&s.west, "shop").await.as_deref() != Some("running") {
        assert!(
            Instant::now() < deadline,
            "the helper never started the target"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut console, url) = serve(s.dir.path());
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    let passes = op["passes"].as_array().unwrap();
    assert_eq!(passes.last().unwrap()["final"], true, "{op}");
    let events = support::events(&url, &s.token, &id).await;
    let outcomes = events
        .iter()
        .filter(|e| {
            e["kind"] == "phase"
                && ["done", "failed", "cancelled"]
                    .contains(&e["data"]["phase"].as_str().unwrap_or(""))
        })
        .count();
    assert_eq!(outcomes, 1, "one recorded outcome");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap in the events"
    );
    assert_eq!(state(&s.east, "shop").await, None);
    assert_the_target_holds_every_write(&s, &url, &s.token, &id).await;
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// The pid of the helper's process now (its grid's "process … started
/// (pid N)" line).
async fn helper_pid(west: &Connection) -> Option<String> {
    let lines = west
        .app_log(&AppName::new("MigHelper_shop").unwrap(), None)
        .await
        .ok()?;
    lines.iter().rev().find_map(|l| {
        l.text
            .split_once("(pid ")
            .map(|(_, p)| p.trim_end_matches(')').to_owned())
    })
}

/// The helper killed in a pass and again in the cutover: its grid
/// restarts it each time; the rerun reuses what was copied (in a pass it
/// pre-copies on into the existing target; with the source already
/// stopped it finishes cold), and the operation ends once, done.
#[tokio::test]
async fn a_helper_killed_in_a_pass_and_in_the_cutover_resumes_and_reuses_the_copy() {
    let s = setup(64, "copy_rate_limit_mib = 8").await;
    let (mut console, url) = serve(s.dir.path());
    let id = start(
        &url,
        &s.token,
        warm("migrate", "shop", json!({"cutover": "manual"})),
    )
    .await;
    wait_for(&url, &s.token, &id, |op| {
        op["bytes_done"].as_u64() > Some(8 << 20)
    })
    .await;
    let kill = |pid: String| {
        assert!(
            std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    kill(helper_pid(&s.west).await.unwrap());
    // Restarted, it finds the partial target and goes on pre-copying.
    wait_for(&url, &s.token, &id, |op| {
        !op["passes"].as_array().unwrap().is_empty()
    })
    .await;
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(
        lines.contains("the grid restarts it (restart 1 of 3)"),
        "{lines}"
    );
    assert!(
        lines.contains("resuming into the existing target shop"),
        "{lines}"
    );
    let first_rerun_pass = lines
        .lines()
        .skip_while(|l| !l.contains("resuming into the existing target"))
        .find(|l| l.starts_with("pass 1: volume data"))
        .unwrap()
        .to_owned();
    assert!(
        !first_rerun_pass.contains(", 0 already in place"),
        "the rerun reuses what was copied: {first_rerun_pass}"
    );

    // Slow final pass (its hash of the stopped source, which it always
    // makes, even when nothing changed): the kill lands in the cutover.
    s.sim.grid("east").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("vol hash".into(), 1500);
    });
    let (status, body) = api(
        &url,
        &s.token,
        "POST",
        &format!("/operations/{id}/cutover"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for(&url, &s.token, &id, |op| op["phase"] == "copying").await;
    kill(helper_pid(&s.west).await.unwrap());
    s.sim.grid("east").unwrap().controller.faults.update(|f| {
        f.delay_ms.clear();
    });
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(
        lines.contains("copying cold: the source app shop is stopped"),
        "the rerun after the stop finishes cold: {lines}"
    );
    // The rerun did not stop the source, its first run did: the downtime
    // counts from then (without it, none was reported).
    assert!(
        lines.contains("the source was stopped by this helper's earlier run"),
        "{lines}"
    );
    let down = op["downtime_ms"].as_u64();
    assert!(
        down.is_some_and(|ms| ms > 0),
        "downtime {down:?} ms: not measured from the first run's stop: {op}"
    );
    assert_eq!(state(&s.west, "shop").await.as_deref(), Some("running"));
    assert_eq!(state(&s.east, "shop").await, None);
    assert_the_target_holds_every_write(&s, &url, &s.token, &id).await;
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

/// A source grid that cannot read a running app (dialect 3) gets a cold
/// copy; the preview and the helper say why.
#[tokio::test]
async fn a_grid_that_cannot_read_a_running_app_gets_a_cold_copy_and_says_why() {
    let s = setup(64, "").await;
    s.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.dialect = Some(3));
    let (mut console, url) = serve(s.dir.path());
    let body = warm("snapshot", "shopsnap", json!({}));
    let (status, plan) = api(
        &url,
        &s.token,
        "POST",
        "/operations/plan",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        plan["copy_mode"],
        "cold after all: the source grid east speaks dialect 3; reading a running app's volumes needs dialect 4"
    );
    let id = start(&url, &s.token, body).await;
    let op = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "done", "{op}");
    assert_eq!(op["passes"], json!([]), "no passes: {op}");
    let lines = helper_lines(&url, &s.token, &id).await.join("\n");
    assert!(
        lines.contains("copying cold: the source grid east speaks dialect 3; reading a running app's volumes needs dialect 4"),
        "{lines}"
    );
    // Cold: every write before the stop is in the copy too.
    let n = last_run(&s.east).await;
    assert_eq!(
        read_volume(&s.west, "shopsnap", "data").await,
        data_after(n)
    );
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}
