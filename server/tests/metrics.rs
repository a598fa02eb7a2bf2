//! `GET /metrics` of a console (`migctl serve`) that has run an operation:
//! Prometheus's own checker accepts it, and the counters moved by what the
//! operation did. Open to loopback, or to whoever holds `metrics_token`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use std::process::{Command, Stdio};
use support::{Vol, api, grids_with_shop, operator_token, serve, wait_for};

/// The value of the sample `name{labels}` (labels as Prometheus writes
/// them, in order), if the scrape has it.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_what_an_operation_did_and_pass_promtool() {
    let g = grids_with_shop(&[Vol("data", 16 << 20, 0..4 << 20)]).await;
    let dir = support::console_dir(&g, "");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());

    // A wrong sign-in and an open event stream, to count.
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    c.post(format!("{url}/login"))
        .header("origin", &url)
        .form(&[("username", "olga"), ("password", "not it at all")])
        .send()
        .await
        .unwrap();
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"});
    let (status, op) = api(&url, &token, "POST", "/operations", Some(body)).await;
    assert_eq!(status, 201, "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    let stream = reqwest::Client::new()
        .get(format!("{url}/api/v1/operations/{id}/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (_, during) = scrape(&url, None).await;
    assert_eq!(
        sample(&during, "migctl_sse_subscribers"),
        Some(1.0),
        "{during}"
    );
    assert_eq!(sample(&during, "migctl_lock_held"), Some(1.0), "{during}");
    let done = wait_for(&url, &token, &id, |op| !op["outcome"].is_null()).await;
    assert_eq!(done["outcome"], "done", "{done}");
    drop(stream);

    let (status, text) = scrape(&url, None).await;
    assert_eq!(status, 200, "{text}");
    for (name, want) in [
        (
            r#"migctl_operations_started_total{action="migrate",copy="cold"}"#,
            1.0,
        ),
        (
            r#"migctl_operations_ended_total{action="migrate",outcome="done"}"#,
            1.0,
        ),
        ("migctl_bytes_copied_total", f64::from(4u32 << 20)),
        ("migctl_bytes_skipped_total", f64::from(12u32 << 20)),
        ("migctl_lock_held", 0.0),
        (r#"migctl_signins_refused_total{reason="password"}"#, 1.0),
        (r#"migctl_grid_reachable{grid="east"}"#, 1.0),
        ("migctl_downtime_seconds_count", 1.0),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in:\n{text}");
    }
    assert!(
        sample(
            &text,
            r#"migctl_phase_duration_seconds_count{phase="copying"}"#
        ) >= Some(1.0),
        "{text}"
    );

    // Prometheus's own checker (Debian's `prometheus`; scripts/setup installs it).
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs; scripts/setup installs it");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    console.kill().unwrap();
    console.wait().unwrap();

    // With a token: only with it, from anywhere.
    let secret = "a-metrics-token-of-some-length";
    let (mut console, url) = support::serve_logging(
        dir.path(),
        Stdio::null(),
        &[("MIGCTL_METRICS_TOKEN", secret)],
    );
    let (status, why) = scrape(&url, None).await;
    assert_eq!(status, 401, "{why}");
    assert!(why.contains("metrics_token"), "{why}");
    assert_eq!(
        scrape(&url, Some("a-wrong-token-of-some-length")).await.0,
        401
    );
    assert_eq!(scrape(&url, Some(secret)).await.0, 200);
    console.kill().unwrap();
    console.wait().unwrap();

    // Behind a proxy (public_url set) a loopback peer proves nothing: no
    // token, no metrics, and the refusal says what to set.
    let (mut console, url) = support::serve_logging(
        dir.path(),
        Stdio::null(),
        &[("MIGCTL_PUBLIC_URL", "https://migctl.example.com")],
    );
    let (status, why) = scrape(&url, None).await;
    assert_eq!(status, 401, "{why}");
    assert!(
        why.contains("needs metrics_token when public_url is set"),
        "{why}"
    );
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}
