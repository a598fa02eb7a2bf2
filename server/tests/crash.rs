//! Crashes: the console killed with SIGKILL mid-copy and started again, and
//! the helper killed mid-copy. Each ends with a recorded outcome, the lock
//! resolved, the source never destroyed unless the target was verified, and
//! a retry that succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use grid::dialect::VolRef;
use grid::{AppName, Connection, VolumeName};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Vol, api, grids_with_shop, operator_token, serve, sigkill, wait_for};

struct Setup {
    _grids_dir: tempfile::TempDir,
    dir: tempfile::TempDir,
    sim: gridsim::RunningSim,
    token: String,
    east: Connection,
    west: Connection,
}

async fn setup() -> Setup {
    let g = grids_with_shop(&[Vol("data", 32 << 20, 0..32 << 20)]).await;
    // Slow writes on the target: the copy takes several seconds (8 ranges of 4 MiB).
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("vol write".into(), 700);
    });
    let dir = support::console_dir(&g, "");
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

/// SIGTERM while an operation copies and a browser follows its event
/// stream: the console stops within a few seconds (the stream ends, the
/// drive task stops where it is, the lock stays), and the console started
/// again resumes the operation to its outcome.
#[tokio::test]
async fn sigterm_with_an_open_stream_and_a_running_operation_stops_promptly_and_the_next_start_resumes()
 {
    let s = setup().await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (status, op) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    assert_eq!(status, 201, "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    wait_for(&url, &s.token, &id, |op| op["phase"] == "copying").await;
    let mut stream = reqwest::Client::new()
        .get(format!("{url}/api/v1/operations/{id}/events"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.chunk().await.unwrap().is_some(),
        "the stream is live"
    );

    let asked = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &console.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = console.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "the console still runs 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit: {status:?}");
    // The stream ended with the console: cleanly (not cut off), and
    // between events (none cut in half).
    let mut rest = Vec::new();
    let ended = loop {
        match stream.chunk().await {
            Ok(Some(c)) => rest.extend_from_slice(&c),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(ended.is_ok(), "the stream was cut off: {ended:?}");
    assert!(
        rest.is_empty() || rest.ends_with(b"\n\n"),
        "an event cut in half: {:?}",
        String::from_utf8_lossy(&rest[rest.len().saturating_sub(200)..])
    );
    assert!(s.dir.path().join("mig.lock").exists(), "the lock stays");

    let (mut console, url) = serve(s.dir.path());
    let done = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert!(!s.dir.path().join("mig.lock").exists());
    sigkill(&mut console);
    s.sim.stop().await;
}

async fn checksum(c: &Connection, app: &str) -> String {
    c.vol_checksum(&VolRef::new(
        AppName::new(app).unwrap(),
        VolumeName::new("data").unwrap(),
    ))
    .await
    .unwrap()
    .digest
}

#[tokio::test]
async fn a_console_killed_mid_copy_finishes_the_migration_when_it_starts_again() {
    let s = setup().await;
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (status, op) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    assert_eq!(status, 201, "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    wait_for(&url, &s.token, &id, |op| op["phase"] == "copying").await;
    sigkill(&mut console);
    assert!(
        s.dir.path().join("mig.lock").exists(),
        "the lock survives the crash"
    );

    // The helper carries on without the console; the console restarts and reconciles.
    let (mut console, url) = serve(s.dir.path());
    let done = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(
        s.west
            .app_info(&AppName::new("shop").unwrap())
            .await
            .unwrap()
            .state
            .as_str(),
        "running"
    );
    assert_eq!(checksum(&s.west, "shop").await, sum);
    assert!(
        s.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err(),
        "the source is destroyed after verification"
    );
    assert!(!s.dir.path().join("mig.lock").exists());
    assert!(s.dir.path().join(format!("locks/done-{id}.json")).exists());
    console.kill().unwrap();
    console.wait().unwrap();
    s.sim.stop().await;
}

#[tokio::test]
async fn a_helper_killed_mid_copy_fails_cleanly_and_a_retry_succeeds() {
    let s = setup().await;
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body.clone())).await;
    let id = op["id"].as_str().unwrap().to_owned();
    wait_for(&url, &s.token, &id, |op| op["phase"] == "copying").await;
    // Kill the helper's process the way the grid would (its app stopped under it).
    s.west
        .app_stop(&AppName::new("MigHelper_shop").unwrap(), Some(1))
        .await
        .unwrap();

    let failed = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
    assert_eq!(
        s.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .unwrap()
            .state
            .as_str(),
        "running",
        "the source is back"
    );
    assert_eq!(
        checksum(&s.east, "shop").await,
        sum,
        "the source is untouched"
    );
    assert!(
        s.west
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err(),
        "the partial target is removed"
    );
    assert!(
        !s.dir.path().join("mig.lock").exists(),
        "the lock is resolved"
    );

    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (status, retry) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    assert_eq!(status, 201, "{retry}");
    let done = wait_for(&url, &s.token, retry["id"].as_str().unwrap(), |op| {
        !op["outcome"].is_null()
    })
    .await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(checksum(&s.west, "shop").await, sum);
    sigkill(&mut console);
    s.sim.stop().await;
}

/// The helper dies after it started the verified target, before it said
/// done: the grid restarts it, and the restarted run finds the target its
/// first run started. It must not copy again, nor restart the source (two
/// running copies of one app): the migration ends done, the source gone.
#[tokio::test]
async fn a_helper_killed_after_starting_the_target_ends_done_without_restarting_the_source() {
    let s = setup().await;
    let sum = checksum(&s.east, "shop").await;
    // The fingerprint of the stopped source, after the target started,
    // takes a while: the helper is killed then.
    s.sim.grid("east").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("vol hash".into(), 1500);
    });
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    let id = op["id"].as_str().unwrap().to_owned();
    let shop = AppName::new("shop").unwrap();
    let helper = AppName::new("MigHelper_shop").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !s
        .west
        .app_info(&shop)
        .await
        .is_ok_and(|t| t.state.as_str() == "running")
    {
        assert!(std::time::Instant::now() < deadline, "the target never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let west = &s.sim.grid("west").unwrap().controller;
    let pid = west.pid_of(&helper).expect("the helper runs");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let ended = wait_for(&url, &s.token, &id, |op| {
        !op["outcome"].is_null() || op["reason"].as_str().is_some_and(|r| r.contains("both"))
    })
    .await;
    let lines = support::helper_lines(&url, &s.token, &id).await;
    assert_eq!(
        ended["outcome"],
        "done",
        "{ended}\nthe helper said:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("restart 1 of 3")),
        "the helper was not restarted:\n{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("restarted the source app")),
        "{}",
        lines.join("\n")
    );
    assert!(s.east.app_info(&shop).await.is_err(), "the source is gone");
    assert_eq!(
        s.west.app_info(&shop).await.unwrap().state.as_str(),
        "running"
    );
    assert_eq!(checksum(&s.west, "shop").await, sum);
    sigkill(&mut console);
    s.sim.stop().await;
}

/// A cancel while the helper is being provisioned waits for it and removes
/// it: the helper never appears after the cancel to move the app with no
/// lock.
#[tokio::test]
async fn a_cancel_during_provisioning_leaves_no_helper_behind() {
    let s = setup().await;
    let west = &s.sim.grid("west").unwrap().controller;
    west.faults.update(|f| {
        f.delay_ms.insert("app provision".into(), 1500);
    });
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    let id = op["id"].as_str().unwrap().to_owned();
    wait_for(&url, &s.token, &id, |op| op["phase"] == "provisioning").await;
    let (status, cancelled) = api(
        &url,
        &s.token,
        "POST",
        &format!("/operations/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let ended = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(ended["outcome"], "cancelled", "{ended}");
    // Once the provision under way has ended on west, no helper is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !west
        .recent_commands()
        .iter()
        .any(|c| c.starts_with("app provision"))
        || west.commands_running() > 0
    {
        assert!(
            Instant::now() < deadline,
            "west never finished the provision"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let helper = AppName::new("MigHelper_shop").unwrap();
    assert!(
        s.west.app_info(&helper).await.is_err(),
        "the helper outlived its cancelled operation"
    );
    let shop = AppName::new("shop").unwrap();
    assert_eq!(
        s.east.app_info(&shop).await.unwrap().state.as_str(),
        "running"
    );
    assert_eq!(checksum(&s.east, "shop").await, sum);
    assert!(s.west.app_info(&shop).await.is_err(), "nothing moved");
    sigkill(&mut console);
    s.sim.stop().await;
}

#[tokio::test]
async fn the_cli_starts_and_watches_an_operation_and_shows_the_lock() {
    let s = setup().await;
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (mut console, url) = serve(s.dir.path());
    let cli = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_migctl"));
        c.env("MIGCTL_URL", &url)
            .env("MIGCTL_TOKEN", &s.token)
            .env_remove("MIGCTL_CONFIG_DIR")
            .args(args);
        c
    };
    let out = tokio::task::spawn_blocking({
        let mut c = cli(&[
            "op",
            "start",
            "--source",
            "east/shop",
            "--target",
            "west/shopcopy",
            "--action",
            "snapshot",
            "--wait",
        ]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("] 100% 32 MiB of 32 MiB"),
        "a progress bar: {stdout}"
    );
    assert!(
        stdout.contains("helper | verified volume data"),
        "the merged log: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .contains("phase done  100%  done"),
        "{stdout}"
    );

    let out = cli(&["op", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("snapshot east/shop -> west/shopcopy"));
    let out = cli(&["op", "list", "--json"]).output().unwrap();
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["target_app"], "shopcopy");
    assert_eq!(listed[0]["outcome"], "done");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        cli(&["op", "watch", &id]).output().unwrap().status.code(),
        Some(0)
    );

    // An operation that fails: the exit status says so (4; see --help).
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| f.corrupt_writes = true);
    let failed = tokio::task::spawn_blocking({
        let mut c = cli(&[
            "op",
            "start",
            "--source",
            "east/shop",
            "--target",
            "west/bad",
            "--action",
            "snapshot",
            "--wait",
        ]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        failed.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(String::from_utf8_lossy(&failed.stderr).contains("ended failed"));
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let help = cli(&["--help"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("4  the operation followed ended failed")
    );
    let completions = cli(&["completions", "bash"]).output().unwrap();
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("_migctl()"));
    let out = cli(&["lock", "show"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no lock");
    let out = cli(&[
        "op", "start", "--source", "east", "--target", "west/x", "--action", "migrate",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("write GRID/APP"));
    let out = Command::new(env!("CARGO_BIN_EXE_migctl"))
        .env_remove("MIGCTL_TOKEN")
        .args(["op", "list", "--url", &url])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("set MIGCTL_TOKEN"));
    sigkill(&mut console);
    s.sim.stop().await;
}

/// Runs a migrate, SIGKILLs the console once the operation reaches `phase`,
/// starts it again and expects a recorded outcome: done and verified, or
/// (when the helper was never provisioned) failed with the source running
/// and untouched, the lock resolved, and a retry that succeeds.
async fn kill_in_phase(phase: &str, slow: &[(&str, &str, u64)]) {
    let s = setup().await;
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    for (grid, verb, ms) in slow {
        s.sim.grid(grid).unwrap().controller.faults.update(|f| {
            f.delay_ms.insert((*verb).to_owned(), *ms);
        });
    }
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (status, op) = api(&url, &s.token, "POST", "/operations", Some(body.clone())).await;
    assert_eq!(status, 201, "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    wait_for(&url, &s.token, &id, |op| op["phase"] == phase).await;
    sigkill(&mut console);
    let (mut console, url) = serve(s.dir.path());
    let ended = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert!(
        !s.dir.path().join("mig.lock").exists(),
        "the lock is resolved"
    );
    if ended["outcome"] == "failed" {
        assert_eq!(
            phase, "provisioning",
            "only a run killed before its helper existed may fail: {ended}"
        );
        assert_eq!(
            s.east
                .app_info(&AppName::new("shop").unwrap())
                .await
                .unwrap()
                .state
                .as_str(),
            "running"
        );
        assert_eq!(checksum(&s.east, "shop").await, sum);
        let (_, retry) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
        let done = wait_for(&url, &s.token, retry["id"].as_str().unwrap(), |op| {
            !op["outcome"].is_null()
        })
        .await;
        assert_eq!(done["outcome"], "done", "{done}");
    } else {
        assert_eq!(ended["outcome"], "done", "killed in {phase}: {ended}");
    }
    assert_eq!(checksum(&s.west, "shop").await, sum);
    assert!(
        s.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err(),
        "the source goes only after verification"
    );
    sigkill(&mut console);
    s.sim.stop().await;
}

#[tokio::test]
async fn killed_while_provisioning() {
    kill_in_phase("provisioning", &[("west", "app provision", 1500)]).await;
}

#[tokio::test]
async fn killed_while_stopping_the_source() {
    kill_in_phase("stopping_source", &[("east", "app stop", 2000)]).await;
}

#[tokio::test]
async fn killed_while_starting_the_target() {
    kill_in_phase("starting_target", &[("west", "app start", 2000)]).await;
}

#[tokio::test]
async fn a_target_that_fails_to_start_leaves_the_source_running_and_nothing_half_done() {
    let s = setup().await;
    s.sim.grid("west").unwrap().controller.faults.update(|f| {
        *f = Default::default();
        f.fail.insert(
            "app start".into(),
            (grid::dialect::ErrorCode::BadState, "injected".into()),
        );
    });
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body.clone())).await;
    let id = op["id"].as_str().unwrap().to_owned();
    let failed = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_eq!(
        s.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .unwrap()
            .state
            .as_str(),
        "running"
    );
    assert_eq!(
        checksum(&s.east, "shop").await,
        sum,
        "the source was never destroyed"
    );
    assert!(
        s.west
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err()
    );
    assert!(!s.dir.path().join("mig.lock").exists());

    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (_, retry) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    let done = wait_for(&url, &s.token, retry["id"].as_str().unwrap(), |op| {
        !op["outcome"].is_null()
    })
    .await;
    assert_eq!(done["outcome"], "done", "{done}");
    sigkill(&mut console);
    s.sim.stop().await;
}

#[tokio::test]
async fn a_controller_connection_dropped_mid_copy_fails_the_operation_and_a_retry_succeeds() {
    let s = setup().await;
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    // Every read from the source is cut after 6 MiB.
    s.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.drop_after_bytes = Some(6 << 20));
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body.clone())).await;
    let failed = wait_for(&url, &s.token, op["id"].as_str().unwrap(), |op| {
        !op["outcome"].is_null()
    })
    .await;
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_eq!(
        s.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .unwrap()
            .state
            .as_str(),
        "running"
    );
    assert_eq!(checksum(&s.east, "shop").await, sum);

    s.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (_, retry) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    let done = wait_for(&url, &s.token, retry["id"].as_str().unwrap(), |op| {
        !op["outcome"].is_null()
    })
    .await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(checksum(&s.west, "shop").await, sum);
    sigkill(&mut console);
    s.sim.stop().await;
}

/// Lays out the grids as a finished (or failed) operation leaves them,
/// writes the lock a console would have left, starts a console that runs on
/// `current` and returns what it made of it.
async fn reconcile_for_real(
    action: &str,
    current: &str,
    target_state: &str,
    same_data: bool,
) -> (Setup, Value, Vec<String>) {
    let s = setup().await;
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (east, west) = (
        &s.sim.grid("east").unwrap().controller,
        &s.sim.grid("west").unwrap().controller,
    );
    let descriptor = br#"{"volumes":[{"name":"data","size":33554432}]}"#;
    west.execute("app create shop", &mut &descriptor[..], &mut Vec::new())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    east.execute("vol read shop:data", &mut tokio::io::empty(), &mut bytes)
        .await
        .unwrap();
    if !same_data {
        bytes.truncate(1 << 20);
    }
    west.execute("vol write shop:data", &mut &bytes[..], &mut Vec::new())
        .await
        .unwrap();
    if target_state == "running" {
        west.execute("app start shop", &mut tokio::io::empty(), &mut Vec::new())
            .await
            .unwrap();
    }
    if action == "migrate" && target_state == "running" {
        east.execute("app stop shop", &mut tokio::io::empty(), &mut Vec::new())
            .await
            .unwrap();
    }
    // The helper has finished: a stopped MigHelper_shop.
    west.execute(
        "app create MigHelper_shop",
        &mut &b"{}"[..],
        &mut Vec::new(),
    )
    .await
    .unwrap();
    let lock = json!({
        "version": 1, "op_id": "op-left", "action": action,
        "source_grid": "east", "source_app_name": "shop", "target_grid": "west", "target_app_name": "shop",
        "created_at": "2026-11-21T10:00:00Z", "created_by": "olga", "console": {"host": "h", "pid": 1}
    });
    std::fs::write(s.dir.path().join("mig.lock"), lock.to_string()).unwrap();
    let toml = std::fs::read_to_string(s.dir.path().join("migctl.toml")).unwrap();
    std::fs::write(
        s.dir.path().join("migctl.toml"),
        // The console lives inside `shop` (MIG's place): the rows keyed on
        // the current grid apply.
        format!("current_grid = \"{current}\"\ncurrent_app = \"shop\"\n{toml}"),
    )
    .unwrap();

    let (mut console, url) = serve(s.dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let op = loop {
        let (_, op) = api(&url, &s.token, "GET", "/operations/op-left", None).await;
        let (_, events) = api(&url, &s.token, "GET", "/operations/op-left/events", None).await;
        let settled = !op["outcome"].is_null()
            || events.as_array().into_iter().flatten().any(|e| {
                e["data"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("lock kept"))
            });
        if settled {
            break op;
        }
        assert!(Instant::now() < deadline, "never settled: {op}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut left = vec![];
    for (grid, app) in [
        ("east", "shop"),
        ("west", "shop"),
        ("west", "MigHelper_shop"),
    ] {
        let conn = if grid == "east" { &s.east } else { &s.west };
        if conn.app_info(&AppName::new(app).unwrap()).await.is_ok() {
            left.push(format!("{grid}/{app}"));
        }
    }
    sigkill(&mut console);
    (s, op, left)
}

#[tokio::test]
async fn reconciliation_rows_for_real() {
    // target_grid == current, migrate: helper and source destroyed, done.
    let (s, op, left) = reconcile_for_real("migrate", "west", "running", true).await;
    assert_eq!(op["outcome"], "done", "{op}");
    assert_eq!(left, ["west/shop"]);
    assert!(s.dir.path().join("locks/done-op-left.json").exists());
    s.sim.stop().await;

    // target_grid == current, migrate, but the data differs: held, nothing destroyed.
    let (s, op, left) = reconcile_for_real("migrate", "west", "running", false).await;
    assert!(op["outcome"].is_null(), "{op}");
    assert!(
        op["reason"]
            .as_str()
            .unwrap()
            .contains("checksum of volume data differs"),
        "{op}"
    );
    assert_eq!(
        left,
        ["east/shop", "west/shop", "west/MigHelper_shop"],
        "nothing is destroyed"
    );
    assert!(s.dir.path().join("mig.lock").exists(), "the lock is kept");
    s.sim.stop().await;

    // target_grid == current, snapshot: a manually started copy. Nothing is
    // destroyed; the copy's console records the operation as the source
    // console's (`elsewhere`) and archives its copy of the lock.
    let (s, op, left) = reconcile_for_real("snapshot", "west", "stopped", true).await;
    assert_eq!(op["outcome"], "elsewhere", "{op}");
    assert_eq!(left, ["east/shop", "west/shop", "west/MigHelper_shop"]);
    assert!(
        !s.dir.path().join("mig.lock").exists(),
        "this copy is free to work"
    );
    assert!(s.dir.path().join("locks/elsewhere-op-left.json").exists());
    s.sim.stop().await;

    // source_grid == current, snapshot finished: the helper goes, done.
    let (s, op, left) = reconcile_for_real("snapshot", "east", "stopped", true).await;
    assert_eq!(op["outcome"], "done", "{op}");
    assert_eq!(left, ["east/shop", "west/shop"]);
    s.sim.stop().await;

    // source_grid == current, migrate that failed: helper and partial target go, failed.
    let (s, op, left) = reconcile_for_real("migrate", "east", "stopped", false).await;
    assert_eq!(op["outcome"], "failed", "{op}");
    assert_eq!(left, ["east/shop"]);
    s.sim.stop().await;
}

#[tokio::test]
async fn a_checksum_mismatch_fails_the_operation_and_keeps_the_source() {
    let s = setup().await;
    s.sim.grid("west").unwrap().controller.faults.update(|f| {
        *f = Default::default();
        f.corrupt_writes = true;
    });
    let sum = checksum(&s.east, "shop").await;
    let (mut console, url) = serve(s.dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body.clone())).await;
    let id = op["id"].as_str().unwrap().to_owned();
    let failed = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let events = support::events(&url, &s.token, &id).await;
    assert!(
        events.iter().any(|e| e["data"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("failed: checksum mismatch on volume data"))),
        "the helper's log names the mismatch"
    );
    assert_eq!(
        s.east
            .app_info(&AppName::new("shop").unwrap())
            .await
            .unwrap()
            .state
            .as_str(),
        "running"
    );
    assert_eq!(
        checksum(&s.east, "shop").await,
        sum,
        "the source is untouched"
    );
    assert!(
        s.west
            .app_info(&AppName::new("shop").unwrap())
            .await
            .is_err(),
        "the corrupt copy is removed"
    );

    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (_, retry) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    let done = wait_for(&url, &s.token, retry["id"].as_str().unwrap(), |op| {
        !op["outcome"].is_null()
    })
    .await;
    assert_eq!(done["outcome"], "done", "{done}");
    assert_eq!(checksum(&s.west, "shop").await, sum);
    sigkill(&mut console);
    s.sim.stop().await;
}

#[tokio::test]
async fn json_logs_carry_the_operation_id_on_every_line_of_its_work() {
    let s = setup().await;
    s.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let log_path = s.dir.path().join("console.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut console, url) = support::serve_logging(
        s.dir.path(),
        log.into(),
        &[("MIGCTL_LOG_FORMAT", "json"), ("MIGCTL_LOG", "info")],
    );
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shopcopy", "action": "snapshot"});
    let (_, op) = api(&url, &s.token, "POST", "/operations", Some(body)).await;
    let id = op["id"].as_str().unwrap().to_owned();
    let done = wait_for(&url, &s.token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    sigkill(&mut console);

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let of_op: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["op"] == id.as_str())
        .collect();
    let said = |what: &str| {
        of_op.iter().any(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(what))
        })
    };
    assert!(said("MigHelper_shopcopy is running on west"), "{text}");
    assert!(
        of_op.iter().any(|l| l["fields"]["phase"] == "done"),
        "the outcome is logged with the operation: {text}"
    );
    for step in [
        "pre-flight passed",
        "provisioning the helper",
        "settling the operation",
    ] {
        assert!(said(step), "{step}: {text}");
    }
    // What the engine's own task logs runs in the operation's span: any
    // line logged there (a grid's warning too) names it.
    assert!(
        of_op
            .iter()
            .filter(|l| l["fields"]["message"] != "pre-flight passed; lock taken")
            .all(|l| l["span"]["op"] == id.as_str()),
        "{text}"
    );
    s.sim.stop().await;
}
