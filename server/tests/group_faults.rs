//! Group runs when things go wrong (issue 25), with real processes on
//! gridsim, real SSH and a real console: a check that cannot pass pauses
//! the run with its evidence and a resume after the fault is cleared
//! finishes it; a check that cannot be told (inconclusive) pauses it,
//! counted neither a pass nor a failure; an approval check waits for an
//! operator and keeps who approved; abort during a check and during a
//! step; a console killed mid-run finishes the run after its restart
//! without running a finished step again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};
use support::{Vol, api, grids_with_shop, operator_token, serve, sigkill, user_token};

/// A service a check asks: it answers every request with the status set.
struct Service {
    status: Arc<AtomicU16>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start(status: u16) -> Service {
        let status = Arc::new(AtomicU16::new(status));
        let answer = status.clone();
        let app = axum::Router::new().fallback(move || {
            let s = answer.load(Ordering::SeqCst);
            async move { axum::http::StatusCode::from_u16(s).unwrap() }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Service { status, url, task }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The group of one member, `shop`, east → west.
fn definition(before: Value, after: Value) -> Value {
    json!({
        "name": "shop-group", "source_grid": "east", "target_grid": "west",
        "members": [{"app": "shop"}],
        "steps": [{"member": "shop", "before": before, "after": after}],
    })
}

async fn start(url: &str, token: &str, def: Value) -> String {
    let (status, run) = api(url, token, "POST", "/groups/runs", Some(def)).await;
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

/// Polls a run until `what` holds (`bound` at most).
async fn run_until(
    url: &str,
    token: &str,
    id: &str,
    bound: Duration,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let (_, run) = api(url, token, "GET", &format!("/groups/runs/{id}"), None).await;
        if what(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "timed out: {run:#}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// An operator's verb on run `id` (pause, resume, abort, approve…).
async fn act(url: &str, token: &str, id: &str, verb: &str, body: Option<Value>) -> (u16, Value) {
    api(
        url,
        token,
        "POST",
        &format!("/groups/runs/{id}/{verb}"),
        body,
    )
    .await
}

fn operations(run: &Value) -> Vec<Value> {
    run["steps"][0]["operations"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_approval_waits_for_its_operator_and_a_check_that_cannot_pass_pauses_until_resumed() {
    let g = grids_with_shop(&[Vol("boot", 4 << 20, 0..4 << 20)]).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let viewer = user_token(dir.path(), "vic", "viewer");
    let (mut console, url) = serve(dir.path());
    let health = Service::start(503).await;

    let id = start(
        &url,
        &token,
        definition(
            json!([{ "approval": { "prompt": "move the shop?" } }]),
            json!([{ "name": "shop healthy", "http": { "url": health.url },
                     "interval_secs": 0.2, "deadline_secs": 2 }]),
        ),
    )
    .await;
    // It waits for an operator: nothing moves meanwhile.
    let run = run_until(&url, &token, &id, Duration::from_secs(30), |r| {
        r["awaiting_approval"] == "move the shop?"
    })
    .await;
    assert_eq!(run["state"], "running", "{run:#}");
    assert!(operations(&run).is_empty(), "{run:#}");
    let approve = |reason: &'static str| json!({ "approve": true, "reason": reason });
    let (status, body) = act(
        &url,
        &viewer,
        &id,
        "approve",
        Some(approve("a viewer tries")),
    )
    .await;
    assert_eq!(status, 403, "a viewer cannot approve: {body}");
    let (status, body) = act(
        &url,
        &token,
        &id,
        "approve",
        Some(json!({ "approve": true, "reason": " " })),
    )
    .await;
    assert_eq!(status, 422, "an approval says why: {body}");
    // Two operators at once: one word is kept, the other is told whose.
    let other = user_token(dir.path(), "otto", "operator");
    let path = format!("/groups/runs/{id}/approve");
    let (olga, otto) = tokio::join!(
        api(
            &url,
            &token,
            "POST",
            &path,
            Some(approve("change 42 approved"))
        ),
        api(&url, &other, "POST", &path, Some(approve("otto agrees"))),
    );
    let mut statuses = [olga.0, otto.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{olga:?} {otto:?}");
    let (kept, _) = if olga.0 == 200 {
        ("olga", otto)
    } else {
        ("otto", olga)
    };

    // The step runs, then its check meets a 503 until its deadline: the
    // run pauses, saying which check and what it was answered.
    let run = run_until(&url, &token, &id, Duration::from_secs(90), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(run["state"], "paused", "{run:#}");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("“shop healthy” failed"), "{reason}");
    let approval = &run["approvals"][0];
    assert_eq!(run["approvals"].as_array().unwrap().len(), 1, "{run:#}");
    assert_eq!(approval["decided_by"], kept, "{run:#}");
    assert_eq!(approval["approved"], true, "{run:#}");
    let before = run["steps"][0]["before"][0]["attempts"].as_array().unwrap();
    assert!(
        before.len() == 1 && before[0]["outcome"] == "pass",
        "the approval is the before-check's evidence: {before:?}"
    );
    let attempts = run["steps"][0]["after"][0]["attempts"].as_array().unwrap();
    assert!(
        attempts.len() >= 2
            && attempts
                .iter()
                .all(|a| a["outcome"] == "fail" && a["status"] == 503),
        "every attempt kept with what it was answered: {attempts:?}"
    );
    let ops = operations(&run);
    assert!(
        ops.len() == 1 && ops[0]["outcome"] == "done",
        "the step ended before its check: {ops:?}"
    );
    assert_eq!(run["members"][0]["place"], "target", "{run:#}");

    // The fault cleared, a resume finishes the run; the step that ended
    // is not run again.
    health.status.store(200, Ordering::SeqCst);
    let (status, body) = act(&url, &token, &id, "resume", None).await;
    assert_eq!(status, 200, "{body}");
    let run = run_until(&url, &token, &id, Duration::from_secs(30), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(run["state"], "done", "{run:#}");
    assert_eq!(operations(&run).len(), 1, "{run:#}");
    let attempts = run["steps"][0]["after"][0]["attempts"].as_array().unwrap();
    assert!(
        attempts
            .last()
            .is_some_and(|a| a["outcome"] == "pass" && a["status"] == 200 && a["round"] == 2),
        "the resumed round passed: {attempts:?}"
    );
    let (status, _) = act(&url, &token, &id, "approve", Some(approve("too late"))).await;
    assert_eq!(status, 409, "a done run waits for no approval");
    let east = g.east.app_list().await.unwrap();
    assert!(!east.iter().any(|a| a.name.as_str() == "shop"), "{east:?}");
    console.kill().unwrap();
    console.wait().unwrap();
}

#[tokio::test]
async fn abort_during_a_check_and_during_a_step_leaves_the_member_on_its_source() {
    let g = grids_with_shop(&[Vol("boot", 4 << 20, 0..4 << 20)]).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    // During a soak before the step: nothing was started, nothing moves.
    let id = start(
        &url,
        &token,
        definition(json!([{ "wait": { "secs": 600 } }]), json!([])),
    )
    .await;
    run_until(&url, &token, &id, Duration::from_secs(10), |r| {
        r["steps"][0]["before"][0]["state"] == "current"
    })
    .await;
    let (status, run) = act(
        &url,
        &token,
        &id,
        "abort",
        Some(json!({ "reason": "change window closed" })),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "aborted", "{run:#}");
    assert_eq!(
        run["reason"], "aborted by olga: change window closed",
        "{run:#}"
    );
    assert_eq!(run["members"][0]["place"], "source", "{run:#}");
    assert!(
        run["members"][0]["says"]
            .as_str()
            .unwrap()
            .contains("not moved yet"),
        "{run:#}"
    );
    let (status, _) = act(&url, &token, &id, "resume", None).await;
    assert_eq!(status, 409, "an aborted run does not resume");

    // During the step's copy (slow writes on the target keep it there):
    // the operation is cancelled and the shop runs on east again.
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("vol write".into(), 1500);
    });
    let id = start(&url, &token, definition(json!([]), json!([]))).await;
    let run = run_until(&url, &token, &id, Duration::from_secs(30), |r| {
        r["members"][0]["place"] == "moving"
    })
    .await;
    let op = operations(&run)[0]["id"].as_str().unwrap().to_owned();
    support::wait_for(&url, &token, &op, |o| o["phase"] == "copying").await;
    let (status, run) = act(&url, &token, &id, "abort", Some(json!({}))).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "aborted", "{run:#}");
    let op = support::wait_for(&url, &token, &op, |o| !o["outcome"].is_null()).await;
    assert_eq!(op["outcome"], "cancelled", "{op:#}");
    let run = run_until(&url, &token, &id, Duration::from_secs(10), |r| {
        r["members"][0]["place"] == "source"
    })
    .await;
    let says = run["members"][0]["says"].as_str().unwrap();
    assert!(says.contains("on east as shop, running"), "{says}");
    assert!(says.contains("did not finish"), "{says}");
    // As the grids themselves say: running on east, nothing on west.
    let shop = grid::AppName::new("shop").unwrap();
    assert_eq!(
        g.east.app_info(&shop).await.unwrap().state.as_str(),
        "running"
    );
    assert!(
        g.west.app_info(&shop).await.is_err(),
        "the cancelled copy is gone from west"
    );
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.clear();
    });
    console.kill().unwrap();
    console.wait().unwrap();
}

#[tokio::test]
async fn a_console_killed_mid_run_finishes_it_after_restart_without_moving_a_member_twice() {
    let g = grids_with_shop(&[Vol("boot", 4 << 20, 0..4 << 20)]).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());
    let id = start(
        &url,
        &token,
        definition(
            json!([]),
            json!([{ "name": "soak", "wait": { "secs": 4 } }]),
        ),
    )
    .await;
    // Killed during the check after the step.
    let run = run_until(&url, &token, &id, Duration::from_secs(60), |r| {
        r["steps"][0]["after"][0]["state"] == "current"
    })
    .await;
    assert_eq!(operations(&run).len(), 1, "{run:#}");
    sigkill(&mut console);

    let (mut console, url) = serve(dir.path());
    let run = run_until(&url, &token, &id, Duration::from_secs(60), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(run["state"], "done", "{run:#}");
    let ops = operations(&run);
    assert!(
        ops.len() == 1 && ops[0]["outcome"] == "done",
        "one operation for the step, the one before the kill: {ops:?}"
    );
    let soak = run["steps"][0]["after"][0]["attempts"].as_array().unwrap();
    assert!(
        soak.len() == 1 && soak[0]["round"] == 1,
        "the soak went on in its round: {soak:?}"
    );
    assert_eq!(run["members"][0]["place"], "target", "{run:#}");
    // Its stream (what the page follows) says it once, done, and ends.
    let stream = reqwest::Client::new()
        .get(format!("{url}/api/v1/groups/runs/{id}"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(stream.matches("event: run").count(), 1, "{stream}");
    assert!(stream.contains(r#""state":"done""#), "{stream}");
    console.kill().unwrap();
    console.wait().unwrap();
}

/// A second member on east, `cart`, running, with 1 MiB of data.
/// A check that cannot be told (every attempt refused a connection) is
/// neither a pass nor a failure: at its deadline the run pauses saying so
/// — whatever `on_failure` says (here abort) — with every attempt kept as
/// inconclusive, and the step it guards never starts.
#[tokio::test]
async fn a_check_that_cannot_be_told_pauses_the_run_and_counts_as_nothing() {
    let g = grids_with_shop(&[Vol("boot", 4 << 20, 0..4 << 20)]).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());
    // A port nobody listens on: each attempt's connection is refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let id = start(
        &url,
        &token,
        definition(
            json!([{ "name": "upstream reachable", "http": { "url": format!("http://{closed}/health") },
                     "interval_secs": 0.2, "deadline_secs": 2, "on_failure": "abort" }]),
            json!([]),
        ),
    )
    .await;
    let run = run_until(&url, &token, &id, Duration::from_secs(30), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(run["state"], "paused", "not aborted: {run:#}");
    assert!(
        run["reason"].as_str().unwrap().starts_with(
            "step 1 (shop): check “upstream reachable” could not be decided within its deadline of 2 s"
        ),
        "{run:#}"
    );
    let attempts = run["steps"][0]["before"][0]["attempts"].as_array().unwrap();
    assert!(
        attempts.len() >= 2 && attempts.iter().all(|a| a["outcome"] == "inconclusive"),
        "every attempt kept, none a pass or a failure: {attempts:?}"
    );
    assert_eq!(
        operations(&run),
        Vec::<Value>::new(),
        "the step never started"
    );
    assert_eq!(run["members"][0]["place"], "source", "{run:#}");
    let shop = grid::AppName::new("shop").unwrap();
    assert_eq!(
        g.east.app_info(&shop).await.unwrap().state.as_str(),
        "running"
    );
    assert!(g.west.app_info(&shop).await.is_err());
    console.kill().unwrap();
    console.wait().unwrap();
}

async fn add_cart(g: &support::Grids) {
    let east = &g.sim.grid("east").unwrap().controller;
    let descriptor = json!({"volumes": [{"name": "data", "size": 4 << 20}]}).to_string();
    let run = |line: &'static str, input: Vec<u8>| async move {
        east.execute(line, &mut &input[..], &mut Vec::new())
            .await
            .unwrap();
    };
    run("app create cart", descriptor.into_bytes()).await;
    run(
        "vol write cart:data --offset 0",
        support::filling(0..1 << 20),
    )
    .await;
    run("app start cart", vec![]).await;
}

/// shop then cart, east → west, the sources kept; cart's check after is
/// `after`.
fn two_members(after: Value) -> Value {
    json!({
        "name": "two", "source_grid": "east", "target_grid": "west",
        "keep_source": true,
        "members": [{"app": "shop"}, {"app": "cart"}],
        "steps": [{"member": "shop"}, {"member": "cart", "after": after}],
    })
}

/// The operations of step `n`: (action, outcome, id).
fn step_ops(run: &Value, n: usize) -> Vec<(String, String, String)> {
    run["steps"][n]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["action"].as_str().unwrap_or("").to_owned(),
                o["outcome"].as_str().unwrap_or("running").to_owned(),
                o["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Both members back on east, running; nothing of them left on west.
async fn both_back(g: &support::Grids, url: &str, token: &str, run: &Value) {
    for (n, app) in [(0, "shop"), (1, "cart")] {
        let ops = step_ops(run, n);
        let said: Vec<String> = ops.iter().map(|(a, o, _)| format!("{a} {o}")).collect();
        // Its migrate, then rollbacks (an aborted one cancelled, or failed
        // when its cancel met it stopping the target), the last done.
        assert!(
            said.len() >= 2
                && said[0] == "migrate done"
                && said[said.len() - 1] == "rollback done"
                && said[1..said.len() - 1]
                    .iter()
                    .all(|s| s == "rollback cancelled" || s == "rollback failed"),
            "step {n}: {said:?}"
        );
        // The rollback undoes that step's migrate, linked both ways.
        let (_, rb) = api(
            url,
            token,
            "GET",
            &format!("/operations/{}", ops[ops.len() - 1].2),
            None,
        )
        .await;
        assert_eq!(rb["rollback_of"], ops[0].2.as_str(), "{rb:#}");
        let name = grid::AppName::new(app).unwrap();
        assert_eq!(
            g.east.app_info(&name).await.unwrap().state.as_str(),
            "running",
            "{app} runs on east again"
        );
        assert!(
            g.west.app_info(&name).await.is_err(),
            "{app} is gone from west"
        );
        let m = &run["members"][n];
        assert_eq!(m["place"], "source", "{m}");
        assert!(
            m["says"].as_str().unwrap().contains("rolled back by"),
            "{m}"
        );
    }
    // The last moved came back first.
    let created = |id: &str| {
        let id = id.to_owned();
        async move {
            let (_, op) = api(url, token, "GET", &format!("/operations/{id}"), None).await;
            op["created_at"].as_str().unwrap().to_owned()
        }
    };
    assert!(
        created(&step_ops(run, 1).last().unwrap().2).await
            < created(&step_ops(run, 0).last().unwrap().2).await,
        "cart (moved last) is rolled back before shop: {run:#}"
    );
}

#[tokio::test]
async fn a_check_that_fails_with_roll_back_returns_the_moved_members_last_first_and_checks_again() {
    let g = grids_with_shop(&[Vol("boot", 4 << 20, 0..4 << 20)]).await;
    add_cart(&g).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());
    let health = Service::start(503).await;

    // Without the sources kept, roll_back is refused before anything starts.
    let mut unkept =
        two_members(json!([{ "http": { "url": health.url }, "on_failure": "roll_back" }]));
    unkept.as_object_mut().unwrap().remove("keep_source");
    let (status, body) = api(&url, &token, "POST", "/groups/runs", Some(unkept)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("steps[1].after[0].on_failure"),
        "{body}"
    );
    // An unknown key, and bad values: each named where it sits.
    let (status, body) = api(
        &url,
        &token,
        "POST",
        "/groups/runs",
        Some(two_members(
            json!([{ "http": { "url": health.url }, "retries": 3 }]),
        )),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let said = body["message"].as_str().unwrap().to_owned();
    assert!(
        said.contains("steps[1].after[0]") && said.contains("unknown field `retries`"),
        "{body}"
    );
    let mut bad = two_members(json!([{ "http": { "url": health.url }, "passes": 0 }]));
    bad["steps"][0]["member"] = json!("basket");
    let (status, body) = api(&url, &token, "POST", "/groups/runs", Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    let said = body["message"].as_str().unwrap().to_owned();
    assert!(
        said.contains("steps[1].after[0].passes") && said.contains("steps[0].member"),
        "both bad values named: {body}"
    );
    let (_, runs) = api(&url, &token, "GET", "/groups/runs", None).await;
    assert_eq!(runs, json!([]), "a refused definition started a run");

    let id = start(
        &url,
        &token,
        two_members(json!([{ "name": "cart healthy", "http": { "url": health.url },
                             "interval_secs": 0.2, "deadline_secs": 2, "on_failure": "roll_back" }])),
    )
    .await;
    // cart's check fails: the run turns back, cart first.
    let turning = run_until(&url, &token, &id, Duration::from_secs(90), |r| {
        r["position"]["stage"] == "undo"
    })
    .await;
    assert_eq!(turning["position"]["step"], 1, "{turning:#}");
    assert!(
        turning["reason"]
            .as_str()
            .unwrap()
            .starts_with("rolling back: step 2 (cart): check “cart healthy” failed"),
        "{turning:#}"
    );
    let failed = turning["steps"][1]["after"][0]["attempts"]
        .as_array()
        .unwrap();
    assert!(
        failed.len() >= 2
            && failed
                .iter()
                .all(|a| a["outcome"] == "fail" && a["status"] == 503),
        "every attempt's evidence is kept: {failed:?}"
    );
    // Healthy again once cart is back: its check, applied again, passes.
    health.status.store(200, Ordering::SeqCst);
    let run = run_until(&url, &token, &id, Duration::from_secs(90), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(run["state"], "rolled_back", "{run:#}");
    let again = &run["steps"][1]["rechecks"][0];
    assert_eq!(again["state"], "passed", "{again}");
    assert_eq!(
        again["attempts"].as_array().unwrap().last().unwrap()["status"],
        200,
        "{again}"
    );
    assert_eq!(run["steps"][1]["state"], "rolled_back", "{run:#}");
    assert_eq!(run["steps"][0]["state"], "rolled_back", "{run:#}");
    both_back(&g, &url, &token, &run).await;
    sigkill(&mut console);
}

#[tokio::test]
async fn an_operator_rolls_back_a_done_run_and_nothing_else_may_be_rolled_back() {
    let g = grids_with_shop(&[Vol("boot", 4 << 20, 0..4 << 20)]).await;
    add_cart(&g).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let viewer = user_token(dir.path(), "vic", "viewer");
    let (mut console, url) = serve(dir.path());
    let health = Service::start(200).await;

    let id = start(
        &url,
        &token,
        two_members(json!([{ "http": { "url": health.url }, "on_failure": "roll_back" }])),
    )
    .await;
    // Running: paused first.
    let (status, body) = act(
        &url,
        &token,
        &id,
        "rollback",
        Some(json!({"reason": "now"})),
    )
    .await;
    assert!(
        status == 409 && body["message"].as_str().unwrap().contains("pause it first"),
        "{status} {body}"
    );
    let done = run_until(&url, &token, &id, Duration::from_secs(90), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "done", "{done:#}");
    assert_eq!(done["keep_source"], true, "{done:#}");
    assert_eq!(done["can_roll_back"], true, "{done:#}");
    let (status, _) = act(&url, &viewer, &id, "rollback", Some(json!({"reason": "x"}))).await;
    assert_eq!(status, 403, "a viewer cannot roll back");
    let (status, body) = act(&url, &token, &id, "rollback", Some(json!({"reason": " "}))).await;
    assert_eq!(status, 422, "{body}");
    // cart's rollback stops it on west first: slowly, so that the abort
    // below lands while that rollback runs.
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.insert("app stop".into(), 1500);
    });
    let (status, body) = act(
        &url,
        &token,
        &id,
        "rollback",
        Some(json!({"reason": "the new grid's disks are slow"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "running", "{body:#}");
    assert_eq!(
        body["position"],
        json!({"step": 1, "stage": "undo", "item": 0})
    );
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("asked by olga: the new grid's disks are slow"),
        "{body:#}"
    );
    let (status, body) = act(
        &url,
        &token,
        &id,
        "rollback",
        Some(json!({"reason": "twice"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["can_roll_back"], Value::Null, "{body}");
    // Aborted while cart's rollback runs: the rollback goes on from where
    // it stopped when asked again (abort is not a dead end).
    run_until(&url, &token, &id, Duration::from_secs(30), |r| {
        step_ops(r, 1).iter().any(|(a, _, _)| a == "rollback")
    })
    .await;
    let (status, body) = act(&url, &token, &id, "abort", Some(json!({"reason": "wait"}))).await;
    assert_eq!(status, 200, "{body}");
    let aborted = run_until(&url, &token, &id, Duration::from_secs(60), |r| {
        r["can_roll_back"] == true
    })
    .await;
    assert_eq!(aborted["state"], "aborted", "{aborted:#}");
    assert_eq!(aborted["position"]["stage"], "undo", "{aborted:#}");
    g.sim.grid("west").unwrap().controller.faults.update(|f| {
        f.delay_ms.clear();
    });
    let (status, body) = act(
        &url,
        &token,
        &id,
        "rollback",
        Some(json!({"reason": "go on"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["can_roll_back"], false, "{body:#}");
    let run = run_until(&url, &token, &id, Duration::from_secs(90), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(run["state"], "rolled_back", "{run:#}");
    assert_eq!(run["can_roll_back"], false, "{run:#}");
    // Why it was rolled back stays with it.
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|r| r.contains("asked by olga: go on")),
        "{run:#}"
    );
    both_back(&g, &url, &token, &run).await;
    let (status, body) = act(
        &url,
        &token,
        &id,
        "rollback",
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(
        status, 409,
        "a rolled back run has nothing left to roll back: {body}"
    );
    sigkill(&mut console);
}
