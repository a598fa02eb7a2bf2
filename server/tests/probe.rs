//! A check's HTTP attempt against a real server on loopback: what passes,
//! what fails and what is inconclusive, and the evidence kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use group::{AttemptOutcome, Definition, Probe};
use migctl::groups::probe;
use std::net::SocketAddr;
use std::time::Duration;

async fn server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/up",
            get(|| async { axum::Json(serde_json::json!({"up": true, "view": 3})) }),
        )
        .route(
            "/down",
            get(|| async { axum::Json(serde_json::json!({"up": false})) }),
        )
        .route(
            "/busy",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy\u{1b}[31m") }),
        )
        .route("/text", get(|| async { "hello" }))
        .route("/big", get(|| async { "x".repeat(1 << 20) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    at
}

/// The first check of a definition asking `GET http://{n.LISTEN}{path}`.
fn check(path: &str, json: bool) -> group::HttpProbe {
    let expect = if json {
        ", json = { pointer = \"/up\", value = true }"
    } else {
        ""
    };
    let text = format!(
        "name = \"g\"\nsource_grid = \"east\"\ntarget_grid = \"west\"\n[[members]]\napp = \"n\"\n\
         [[after_each_step]]\nhttp = {{ url = \"http://{{n.LISTEN}}{path}\"{expect} }}\n"
    );
    let d = Definition::from_toml(&text).unwrap();
    match &d.steps[0].after[0].probe {
        Probe::Http(h) => h.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_attempt_passes_fails_or_cannot_tell_and_keeps_its_evidence() {
    let at = server().await;
    let client = reqwest::Client::new();
    let listen = |at: SocketAddr| {
        move |m: &str, p: &str| (m == "n" && p == "LISTEN").then(|| at.to_string())
    };
    let t = Duration::from_secs(1);

    let e = probe::http(&client, &check("/up", true), None, listen(at), t).await;
    assert_eq!(
        (e.outcome, e.status),
        (AttemptOutcome::Pass, Some(200)),
        "{e:?}"
    );
    assert_eq!(e.note, "answered 200 with /up == true");
    assert!(e.excerpt.contains("\"up\":true"), "{e:?}");

    let e = probe::http(&client, &check("/down", true), None, listen(at), t).await;
    assert_eq!(e.outcome, AttemptOutcome::Fail, "{e:?}");
    assert_eq!(e.note, "answered 200, but /up is false, wanted == true");

    let e = probe::http(&client, &check("/busy", false), None, listen(at), t).await;
    assert_eq!(
        (e.outcome, e.status),
        (AttemptOutcome::Fail, Some(503)),
        "{e:?}"
    );
    assert_eq!(e.note, "answered 503, wanted 200");
    assert_eq!(e.excerpt, "busy^[[31m", "control characters made visible");

    let e = probe::http(&client, &check("/text", true), None, listen(at), t).await;
    assert_eq!(e.outcome, AttemptOutcome::Fail, "{e:?}");
    assert!(e.note.starts_with("answered 200, not JSON"), "{e:?}");

    let e = probe::http(&client, &check("/big", false), None, listen(at), t).await;
    assert_eq!(e.outcome, AttemptOutcome::Pass, "{e:?}");
    assert_eq!(
        e.excerpt.len(),
        group::definition::EXCERPT_BYTES,
        "a bounded excerpt"
    );

    // What cannot be told: no answer in time, nobody listening, no address.
    let e = probe::http(
        &client,
        &check("/slow", false),
        None,
        listen(at),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(e.outcome, AttemptOutcome::Inconclusive, "{e:?}");
    assert!(e.note.starts_with("no answer from http://"), "{e:?}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = probe::http(&client, &check("/up", true), None, listen(closed), t).await;
    assert_eq!(e.outcome, AttemptOutcome::Inconclusive, "{e:?}");
    assert!(e.note.starts_with("cannot connect to http://"), "{e:?}");
    let e = probe::http(
        &client,
        &check("/up", true),
        None,
        |_: &str, _: &str| None,
        t,
    )
    .await;
    assert_eq!(e.outcome, AttemptOutcome::Inconclusive, "{e:?}");
    assert_eq!(
        e.note,
        "the member n has no property LISTEN: cannot tell where to ask"
    );
}
