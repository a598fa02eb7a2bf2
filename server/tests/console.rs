//! The console started for real on port 0 with a temporary config directory,
//! driven over HTTP the way a browser or a script would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use app::model::Role;
use migctl::Console;
use migctl::auth::throttle::Policy;
use migctl::auth::{accounts, password, tokens};
use migctl::config::{self, Overrides};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, ORIGIN, SET_COOKIE};
use std::time::Duration;
use tempfile::TempDir;

mod support;
use support::within;

const PASSWORD: &str = "correct horse battery";

/// The longest any one request (or the console's stop) may take: a hang
/// fails the test naming the URL instead of holding up the suite.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

struct TestConsole {
    url: String,
    _dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pool: sqlx::SqlitePool,
}

/// A console whose config directory is `dir` (its site there too unless
/// `overrides` names one), opened but not serving.
async fn open_in(dir: &TempDir, mut overrides: Overrides) -> Console {
    overrides.site_root.get_or_insert(dir.path().join("site"));
    let (settings, _) = config::load(dir.path(), &overrides).unwrap();
    Console::open(settings).await.unwrap()
}

impl TestConsole {
    async fn start() -> TestConsole {
        Self::start_with(Overrides::default()).await
    }

    async fn start_with(overrides: Overrides) -> TestConsole {
        let dir = tempfile::tempdir().unwrap();
        let console = open_in(&dir, overrides).await.with_throttle(Policy {
            window: Duration::from_secs(60),
            per_user: 3,
            per_address: 50,
        });
        for (name, role) in [
            ("ana", Role::Admin),
            ("olga", Role::Operator),
            ("vic", Role::Viewer),
        ] {
            let hash = password::hash(PASSWORD.into()).await.unwrap();
            accounts::create(&console.pool, name, role, &hash)
                .await
                .unwrap();
        }
        let pool = console.pool.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(console.serve(listener, async move {
            let _ = stopped.await;
        }));
        TestConsole {
            url,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
            pool,
        }
    }

    /// A browser-like client: keeps cookies, does not follow redirects, and
    /// sends this console's Origin on every request.
    fn browser(&self) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, self.url.parse().unwrap());
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .timeout(REQUEST_LIMIT)
            .build()
            .unwrap()
    }

    fn plain(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_LIMIT)
            .build()
            .unwrap()
    }

    async fn login(&self, client: &reqwest::Client, user: &str, pw: &str) -> reqwest::Response {
        client
            .post(format!("{}/login", self.url))
            .form(&[("username", user), ("password", pw)])
            .send()
            .await
            .unwrap()
    }

    /// A new API token of `user`.
    async fn token_of(&self, user: &str) -> String {
        let account = accounts::find_by_name(&self.pool, user)
            .await
            .unwrap()
            .unwrap();
        tokens::create(&self.pool, account.id).await.unwrap()
    }

    /// The body of `path` (a path of this console) as `client` reads it.
    async fn page(&self, client: &reqwest::Client, path: &str) -> String {
        client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn signed_in_as(&self, user: &str) -> reqwest::Client {
        let c = self.browser();
        let r = self.login(&c, user, PASSWORD).await;
        assert_eq!(location(&r), "/", "sign-in of {user} should succeed");
        c
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("the console's graceful stop", REQUEST_LIMIT, task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("migctl_session="))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The body of a GET that must succeed.
async fn text_of(client: &reqwest::Client, url: String) -> String {
    let r = client.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.text().await.unwrap()
}

async fn me_status(t: &TestConsole, client: &reqwest::Client) -> StatusCode {
    client
        .get(format!("{}/api/v1/me", t.url))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_right_one_accepted() {
    let t = TestConsole::start().await;
    let c = t.browser();

    let r = t.login(&c, "ana", "not the password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?error=invalid");
    assert!(
        session_cookie(&r).is_none(),
        "no session for a failed sign-in"
    );
    assert_eq!(me_status(&t, &c).await, StatusCode::UNAUTHORIZED);

    let r = t.login(&c, "nobody", PASSWORD).await;
    assert_eq!(
        location(&r),
        "/login?error=invalid",
        "unknown users look like wrong passwords"
    );

    let r = t.login(&c, "ana", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/");
    let me: serde_json::Value = c
        .get(format!("{}/api/v1/me", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "ana");
    assert_eq!(me["role"], "admin");

    // The refused page tells the operator what went wrong.
    let page = c
        .get(format!("{}/login?error=invalid", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::SEE_OTHER,
        "signed-in users skip the sign-in page"
    );
    let page = t
        .plain()
        .get(format!("{}/login?error=invalid", t.url))
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Wrong user name or password.")
    );
    t.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_samesite_strict_and_secure_only_behind_tls_as_is_hsts()
{
    let t = TestConsole::start().await;
    let r = t.login(&t.browser(), "olga", PASSWORD).await;
    let cookie = session_cookie(&r).expect("a session cookie at sign-in");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http must not mark the cookie Secure: {cookie}"
    );
    assert!(
        r.headers().get("strict-transport-security").is_none(),
        "no HSTS over plain http"
    );
    t.stop().await;

    let t = TestConsole::start_with(Overrides {
        public_url: Some("https://migctl.example.com".into()),
        ..Overrides::default()
    })
    .await;
    let c = t.plain();
    let r = c
        .post(format!("{}/login", t.url))
        .header(ORIGIN, "https://migctl.example.com")
        .form(&[("username", "olga"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&r).expect("a session cookie at sign-in");
    assert!(cookie.contains("Secure"), "{cookie}");
    // Behind TLS, browsers are told to keep to HTTPS (wapiti's finding).
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    t.stop().await;
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in_and_the_old_one_is_dead() {
    let t = TestConsole::start().await;
    let c = t.browser();
    let first = session_cookie(&t.login(&c, "olga", PASSWORD).await).unwrap();
    let second = session_cookie(&t.login(&c, "olga", PASSWORD).await).unwrap();
    assert_ne!(cookie_value(&first), cookie_value(&second));

    let replay = |cookie: String| {
        let c = t.plain();
        let url = format!("{}/api/v1/me", t.url);
        async move {
            c.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(replay(cookie_value(&first)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(replay(cookie_value(&second)).await, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let t = TestConsole::start().await;
    let c = t.browser();
    let cookie = cookie_value(&session_cookie(&t.login(&c, "vic", PASSWORD).await).unwrap());
    let r = c.post(format!("{}/logout", t.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?signed_out=1");
    assert_eq!(me_status(&t, &c).await, StatusCode::UNAUTHORIZED);
    // Even a client that kept the cookie gets nothing: the session is gone.
    let r = t
        .plain()
        .get(format!("{}/api/v1/me", t.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn without_a_session_pages_redirect_to_sign_in_and_the_api_answers_401() {
    let t = TestConsole::start().await;
    let c = t.plain();
    let r = c.get(format!("{}/", t.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    let r = c.get(format!("{}/users?x=1", t.url)).send().await.unwrap();
    assert_eq!(location(&r), "/login?next=/users%3Fx%3D1");

    let r = c
        .get(format!("{}/api/v1/console", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("migctl user token")
    );

    let r = c
        .post(format!("{}/sfn/whoami", t.url))
        .header(ORIGIN, &t.url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "server functions are gated too"
    );

    // What stays open: the sign-in page, the health check, static assets.
    assert_eq!(
        c.get(format!("{}/login", t.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let health = c.get(format!("{}/healthz", t.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_ne!(
        c.get(format!("{}/pkg/migctl.css", t.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER,
        "assets are served without signing in"
    );
    t.stop().await;
}

#[tokio::test]
async fn assets_go_compressed_as_the_browser_asks_and_are_revalidated() {
    let t = TestConsole::start().await;
    let pkg = t._dir.path().join("site").join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let css = ".card { margin: 1rem; }\n".repeat(2000);
    std::fs::write(pkg.join("migctl.css"), &css).unwrap();
    let c = reqwest::Client::new();
    let get = |encoding: &'static str| {
        c.get(format!("{}/pkg/migctl.css", t.url))
            .header("accept-encoding", encoding)
            .send()
    };
    for (asked, sent) in [("br", "br"), ("gzip", "gzip"), ("gzip, br", "br")] {
        let r = get(asked).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-encoding"], sent, "asked for {asked}");
        // No hash in the file names of a debug build: the browser asks again.
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let body = r.bytes().await.unwrap();
        assert!(body.len() < css.len() / 10, "{} bytes", body.len());
    }
    let plain = get("identity").await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let modified = plain.headers()["last-modified"].clone();
    assert_eq!(
        plain.bytes().await.unwrap(),
        css.as_bytes(),
        "the file as it is"
    );
    // Revalidated: the browser's "has it changed?" costs no body.
    let again = c
        .get(format!("{}/pkg/migctl.css", t.url))
        .header("if-modified-since", modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn a_bearer_token_works_and_a_wrong_one_does_not() {
    let t = TestConsole::start().await;
    let token = t.token_of("olga").await;
    let c = t.plain();
    let r = c
        .get(format!("{}/api/v1/me", t.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(me["name"], "olga");

    let wrong = format!("{token}x");
    let r = c
        .get(format!("{}/api/v1/me", t.url))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Deleting the user revokes their tokens.
    accounts::delete(&t.pool, "olga").await.unwrap();
    let r = c
        .get(format!("{}/api/v1/me", t.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn each_role_sees_what_it_is_allowed_to() {
    let t = TestConsole::start().await;
    let admin = t.signed_in_as("ana").await;
    let operator = t.signed_in_as("olga").await;
    let viewer = t.signed_in_as("vic").await;

    let users = admin
        .get(format!("{}/api/v1/users", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::OK);
    let users: serde_json::Value = users.json().await.unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ana", "olga", "vic"]);
    for c in [&operator, &viewer] {
        let r = c
            .get(format!("{}/api/v1/users", t.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("needs the admin role")
        );
    }

    let page = admin.get(format!("{}/users", t.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("data-testid=\"users\""),
        "admin sees the user table"
    );
    assert!(html.contains(">vic<"));
    let page = viewer.get(format!("{}/users", t.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(html.contains("this needs the admin role"), "{html}");
    assert!(!html.contains(">olga<"), "no user names leak to a viewer");

    // Every route above a role is refused to it, whatever it sends.
    let body = serde_json::json!({"source_grid": "east", "source_app": "shop", "target_grid": "west",
        "target_app": "x", "action": "migrate", "op_id": "op-x", "reason": "r"});
    for (who, c, routes) in [
        (
            "viewer",
            &viewer,
            &[
                ("POST", "/api/v1/operations"),
                ("POST", "/api/v1/operations/plan"),
                ("POST", "/api/v1/operations/op-x/cancel"),
                ("POST", "/api/v1/operations/op-x/cutover"),
                ("POST", "/api/v1/lock/override"),
                ("GET", "/api/v1/users"),
                ("GET", "/api/v1/audit"),
            ][..],
        ),
        (
            "operator",
            &operator,
            &[
                ("POST", "/api/v1/lock/override"),
                ("GET", "/api/v1/users"),
                ("GET", "/api/v1/audit"),
            ][..],
        ),
    ] {
        for (method, path) in routes {
            let url = format!("{}{path}", t.url);
            let r = match *method {
                "POST" => c.post(url).header("origin", &t.url).json(&body),
                _ => c.get(url),
            }
            .send()
            .await
            .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{who}: {method} {path}");
        }
    }
    let page = viewer.get(format!("{}/audit", t.url)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("this needs the admin role"), "{html}");
    assert!(
        !html.contains("data-testid=\"audit\""),
        "no audit rows for a viewer"
    );

    let dash = |c: reqwest::Client| {
        let url = format!("{}/", t.url);
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let admin_dash = dash(admin).await;
    assert!(
        admin_dash.contains("href=\"/users\""),
        "admins get the Users link"
    );
    let operator_dash = dash(operator).await;
    assert!(!operator_dash.contains("href=\"/users\""));
    assert!(operator_dash.contains("can start and cancel migrations and snapshots"));
    let viewer_dash = dash(viewer).await;
    assert!(!viewer_dash.contains("href=\"/users\""));
    assert!(viewer_dash.contains("can watch operations and their logs"));
    assert!(
        viewer_dash.contains("migrate and snapshot"),
        "the mode is shown"
    );
    t.stop().await;
}

#[tokio::test]
async fn repeated_failures_hold_the_user_off_even_with_the_right_password() {
    let t = TestConsole::start().await;
    let c = t.browser();
    for _ in 0..3 {
        assert_eq!(
            location(&t.login(&c, "olga", "guess").await),
            "/login?error=invalid"
        );
    }
    let r = t.login(&c, "olga", PASSWORD).await;
    let to = location(&r);
    assert!(to.starts_with("/login?error=throttled&retry="), "{to}");
    let wait: u64 = to.rsplit('=').next().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(me_status(&t, &c).await, StatusCode::UNAUTHORIZED);
    let page = t
        .plain()
        .get(format!("{}{to}", t.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Too many failed sign-ins. Try again in"),
        "{page}"
    );

    // Another user from the same address is not held off.
    assert_eq!(location(&t.login(&t.browser(), "vic", PASSWORD).await), "/");

    // `migctl user unlock olga` lets her in at once.
    accounts::unlock(&t.pool, "olga").await.unwrap();
    assert_eq!(location(&t.login(&c, "olga", PASSWORD).await), "/");
    t.stop().await;
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let t = TestConsole::start().await;
    let c = t.plain();
    let r = c
        .post(format!("{}/login", t.url))
        .header(ORIGIN, "http://evil.example")
        .form(&[("username", "ana"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Origin http://evil.example is not this console")
    );

    let r = c
        .post(format!("{}/login", t.url))
        .form(&[("username", "ana"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "no Origin at all is refused too"
    );

    // A signed-in operator cannot be signed out (or anything else) by another site.
    let operator = t.signed_in_as("olga").await;
    let cookie = {
        let r = t.login(&t.browser(), "olga", PASSWORD).await;
        cookie_value(&session_cookie(&r).unwrap())
    };
    // The pages' forms too: another site cannot start or steer a group run
    // in the operator's name (wapiti's "no anti-CSRF token": the Origin is
    // the check, with SameSite=Strict session cookies).
    for (path, form) in [
        ("/groups/runs", vec![("definition_file", "group-mq.toml")]),
        ("/groups/runs/run-x/abort", vec![("reason", "csrf")]),
        ("/operations/new", vec![("source_grid", "east")]),
    ] {
        let r = c
            .post(format!("{}{path}", t.url))
            .header("cookie", &cookie)
            .header(ORIGIN, "http://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let r = c
        .post(format!("{}/logout", t.url))
        .header("cookie", &cookie)
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(format!("{}/api/v1/me", t.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the session survived the forged request"
    );
    assert_eq!(me_status(&t, &operator).await, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_existing_sessions() {
    let t = TestConsole::start().await;
    let c = t.signed_in_as("vic").await;
    let hash = password::hash("another long password".into())
        .await
        .unwrap();
    accounts::set_password(&t.pool, "vic", &hash).await.unwrap();
    assert_eq!(me_status(&t, &c).await, StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn the_dashboard_lists_grids_with_reachability_and_a_grid_page_lists_its_apps() {
    let sim_dir = tempfile::tempdir().unwrap();
    gridsim::init(sim_dir.path(), &["east", "west"], 0, vec![]).unwrap();
    let sim = gridsim::start(sim_dir.path()).await.unwrap();
    let limit = Duration::from_secs(60);
    let east = &sim.grid("east").unwrap().controller;
    let descriptor =
        br#"{"volumes":[{"name":"data","size":8388608},{"name":"boot","size":1048576}]}"#;
    east.execute("app create shop", &mut &descriptor[..], &mut Vec::new())
        .await
        .unwrap();
    sim.grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| f.refuse_connections = true);

    let console = gridsim::SimPaths::new(sim_dir.path()).console_dir();
    let t = within(
        "starting the console",
        limit,
        TestConsole::start_with(Overrides {
            grids_file: Some(console.join("grids.toml")),
            private_key_file: Some(console.join("id_ed25519")),
            known_hosts_file: Some(console.join("known_hosts")),
            current_grid: Some("east".parse().unwrap()),
            ..Overrides::default()
        }),
    )
    .await;
    let viewer = within("signing in", limit, t.signed_in_as("vic")).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let grids = loop {
        let grids: serde_json::Value = within("GET /api/v1/grids", limit, async {
            viewer
                .get(format!("{}/api/v1/grids", t.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
        .await;
        if grids
            .as_array()
            .unwrap()
            .iter()
            .all(|g| !g["checked_at"].is_null())
        {
            break grids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the grids were never checked: {grids}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (e, w) = (&grids[0], &grids[1]);
    assert_eq!(e["name"], "east");
    assert_eq!(e["reachable"], true);
    assert_eq!(e["dialect"], 4);
    assert!(e["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        e["free_bytes"].as_u64().unwrap(),
        (100u64 << 30) - (9 << 20)
    );
    assert_eq!(w["name"], "west");
    assert_eq!(w["reachable"], false);
    assert!(
        w["error"]
            .as_str()
            .unwrap()
            .contains("grid west: cannot connect"),
        "{w}"
    );

    let dash = within("GET /", limit, async {
        viewer
            .get(format!("{}/", t.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    assert!(dash.contains("href=\"/grids/east\""), "{dash}");
    assert!(dash.contains(">reachable<") && dash.contains(">unreachable<"));
    assert!(dash.contains("100 GiB of 100 GiB") || dash.contains("of 100 GiB"));

    let html = within("GET /grids/east", limit, async {
        let page = viewer
            .get(format!("{}/grids/east", t.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        page.text().await.unwrap()
    })
    .await;
    assert!(html.contains("data-app=\"shop\""), "{html}");
    assert!(html.contains("data (8 MiB), boot (1 MiB)"), "{html}");
    assert!(html.contains(">stopped<"));
    let page = within(
        "GET /grids/mars",
        limit,
        viewer.get(format!("{}/grids/mars", t.url)).send(),
    )
    .await
    .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    let apps: serde_json::Value = within("GET /api/v1/grids/east/apps", limit, async {
        viewer
            .get(format!("{}/api/v1/grids/east/apps", t.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(apps[0]["name"], "shop");
    let r = within(
        "GET /api/v1/grids/mars/apps",
        limit,
        viewer
            .get(format!("{}/api/v1/grids/mars/apps", t.url))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    within("stopping the console", limit, t.stop()).await;
    within("stopping gridsim", limit, sim.stop()).await;
}

// ---- What a hostile probe of a running console found (issue: security defects).

/// 49 wrong passwords at once for one user: at most the limit are checked,
/// the rest are throttled, and the right password right after is refused too.
#[tokio::test]
async fn concurrent_wrong_sign_ins_cannot_beat_the_throttle() {
    let t = TestConsole::start().await;
    let attempts = (0..49).map(|i| {
        let c = t.browser();
        let url = format!("{}/login", t.url);
        async move {
            let r = c
                .post(url)
                .form(&[("username", "ana"), ("password", &format!("wrong {i}"))])
                .send()
                .await
                .unwrap();
            location(&r)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let checked = answers
        .iter()
        .filter(|l| l.contains("error=invalid"))
        .count();
    let throttled = answers
        .iter()
        .filter(|l| l.contains("error=throttled"))
        .count();
    assert_eq!(
        checked, 3,
        "only the per-user limit is checked: {answers:?}"
    );
    assert_eq!(checked + throttled, 49, "{answers:?}");
    let r = t.login(&t.browser(), "ana", PASSWORD).await;
    assert!(location(&r).contains("error=throttled"), "{}", location(&r));
    t.stop().await;
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// 200 concurrent wrong sign-ins against a fresh `migctl serve`: hashing is
/// bounded (one argon2id at a time a core, each 19 MiB), so the console's
/// peak RSS stays within 128 MiB of its idle RSS. Unbounded, 200 took 7 GiB.
/// They come from ten loopback addresses, 20 each (the most one address may
/// fail in a window), so that every one is checked, none throttled.
#[tokio::test]
async fn two_hundred_concurrent_sign_ins_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = support::serve(dir.path());
    let pid = child.id();
    let idle = vm_kib(pid, "VmRSS:");
    let clients: Vec<reqwest::Client> = (2..12u8)
        .map(|host| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(std::net::IpAddr::from([127, 0, 0, host]))
                .build()
                .unwrap()
        })
        .collect();
    let attempts = (0..200).map(|i| {
        let client = clients[i % clients.len()].clone();
        let url = url.clone();
        async move {
            let r = client
                .post(format!("{url}/login"))
                .header(ORIGIN, &url)
                .form(&[
                    ("username", format!("user{i}")),
                    ("password", "wrong password".into()),
                ])
                .send()
                .await
                .unwrap();
            let to = r
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (r.status(), to)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    // Checked and refused (a redirect back to the form), or turned away as
    // busy: each answered, none throttled.
    let hashed = answers
        .iter()
        .filter(|(s, to)| *s == StatusCode::SEE_OTHER && to.starts_with("/login?error=invalid"))
        .count();
    let busy = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(
        hashed + busy,
        200,
        "every attempt is checked or busy: {answers:?}"
    );
    // The memory was measured under real hashing: at least one attempt a
    // core was hashed, not every one turned away before it was.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        hashed >= cores,
        "only {hashed} of 200 attempts were hashed ({busy} busy)"
    );
    let peak = vm_kib(pid, "VmHWM:");
    let grew_mib = peak.saturating_sub(idle) / 1024;
    eprintln!(
        "idle RSS {} MiB, peak {} MiB under 200 concurrent sign-ins ({hashed} hashed, {busy} busy)",
        idle / 1024,
        peak / 1024
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(grew_mib < 128, "peak RSS grew by {grew_mib} MiB");
}

#[tokio::test]
async fn oversized_sign_in_fields_are_refused_before_anything_is_hashed_or_kept() {
    let t = TestConsole::start().await;
    let c = t.browser();
    let huge = "a".repeat(1 << 20);
    let r = c
        .post(format!("{}/login", t.url))
        .form(&[("username", huge.as_str()), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "a 1 MiB form is refused"
    );
    let long = "b".repeat(4000);
    let r = c
        .post(format!("{}/login", t.url))
        .form(&[("username", long.as_str()), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert!(location(&r).contains("error=invalid"), "{}", location(&r));
    let (actor, detail): (String, String) = sqlx::query_as(
        "SELECT actor, detail FROM audit_log WHERE action = 'login.refused' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(actor.len() < 100, "the audit keeps a short name: {actor}");
    assert!(actor.ends_with("(4000 bytes)"), "{actor}");
    assert!(detail.contains("user name of 4000 bytes"), "{detail}");
    let longest: i64 =
        sqlx::query_scalar("SELECT MAX(LENGTH(actor) + LENGTH(detail)) FROM audit_log")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert!(longest < 300, "no audit row holds the input: {longest}");
    t.stop().await;
}

/// A link cannot put words in the console's mouth: the sentences a page
/// shows after a form come from the console's own notices, by an id that
/// is the user's; a sentence, a made-up id or another user's id in the
/// address shows nothing.
#[tokio::test]
async fn a_link_cannot_make_a_page_say_anything() {
    let t = TestConsole::start().await;
    let ana = t.signed_in_as("ana").await;
    let olga = t.signed_in_as("olga").await;
    let bait = "Your session expired: sign in at evil.example";
    for page in ["/users", "/lock", "/operations/new"] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{page}", t.url),
            [
                ("ok", bait),
                ("error", bait),
                ("field", "name"),
                ("notice", "00000000000000000000000000000000"),
            ],
        )
        .unwrap();
        let html = ana.get(url).send().await.unwrap().text().await.unwrap();
        assert!(!html.contains("evil.example"), "{page} said the bait");
    }
    // A real notice is its user's only.
    let r = ana
        .post(format!("{}/users", t.url))
        .form(&[("name", "zed"), ("role", "viewer"), ("password", "short")])
        .send()
        .await
        .unwrap();
    let to = location(&r);
    let theirs = t.page(&olga, &to).await;
    assert!(
        !theirs.contains("too short"),
        "another user read ana's notice"
    );
    let hers = t.page(&ana, &to).await;
    assert!(
        support::testid_text(&hers, "error-password").is_some_and(|e| e.contains("too short")),
        "ana reads her own: {hers}"
    );
    t.stop().await;
}

/// `next` after sign-in: only a path of this console, whatever a browser
/// would strip from it; control characters never reach a header (no 500).
#[tokio::test]
async fn sign_in_never_redirects_off_the_console() {
    let t = TestConsole::start().await;
    for next in [
        "/\t/evil.example/phish",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\u{b}/evil.example",
        "//evil.example",
        "https://evil.example",
    ] {
        let c = t.browser();
        let r = c
            .post(format!("{}/login", t.url))
            .form(&[("username", "vic"), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(&r), "/", "{next:?}");
    }
    let r = t
        .browser()
        .post(format!("{}/login", t.url))
        .form(&[
            ("username", "vic"),
            ("password", PASSWORD),
            ("next", "/operations?state=done"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/operations?state=done");
    t.stop().await;
}

/// The database (with session ids and hashes), its WAL and SHM, and the
/// config directory are the console user's only.
#[tokio::test]
async fn the_config_directory_secrets_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestConsole::start().await;
    let vic = t.browser();
    let r = t.login(&vic, "vic", PASSWORD).await;
    let cookie = cookie_value(&session_cookie(&r).unwrap());
    let id = cookie.trim_start_matches("migctl_session=").to_owned();
    // The store keeps a hash of the id: the database hands out no session.
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored.contains(&id), "{id} is stored as it is");
    assert_eq!(
        me_status(&t, &vic).await,
        StatusCode::OK,
        "and the cookie still works"
    );
    let dir = t._dir.path();
    for f in ["migctl.db", "migctl.db-wal", "migctl.db-shm"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{f} is {mode:o}");
    }
    t.stop().await;

    // A config directory made open to others (by hand, or by `mkdir`) is
    // made owner-only at start, and so are the archived locks.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let overrides = Overrides {
        site_root: Some(dir.path().join("site")),
        ..Overrides::default()
    };
    let (settings, _) = config::load(dir.path(), &overrides).unwrap();
    let console = Console::open(settings).await.unwrap();
    drop(console);
    assert_eq!(
        std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // A database an older console left 0644 is tightened at start.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("migctl.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pool = migctl::db::open(&db).await.unwrap();
    pool.close().await;
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A huge lock is read no further than a lock can be; a symlink is never
/// followed; a lock the OS cannot read is reported, not a 500.
#[tokio::test]
async fn odd_lock_files_are_reported_not_followed_nor_swallowed() {
    let t = TestConsole::start().await;
    let c = t.signed_in_as("ana").await;
    let lock = t._dir.path().join("mig.lock");
    let get = |path: &'static str| {
        let c = c.clone();
        let url = format!("{}{path}", t.url);
        async move {
            let r = c.get(url).send().await.unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };

    std::fs::write(&lock, vec![b'{'; 20 << 20]).unwrap();
    let (status, body) = get("/api/v1/lock").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.len() < 16 << 10, "{} bytes", body.len());
    assert!(
        body.contains("only its first 4096 bytes are shown"),
        "{body}"
    );
    let (_, page) = get("/lock").await;
    assert!(
        page.len() < 256 << 10,
        "the lock page is {} bytes",
        page.len()
    );

    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &lock).unwrap();
    let (_, body) = get("/api/v1/lock").await;
    assert!(!body.contains("root:"), "the symlink was followed: {body}");
    assert!(body.contains("symbolic link"), "{body}");

    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    for path in ["/api/v1/lock", "/api/v1/lock/evidence"] {
        let (status, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            body.contains("not a regular file") && body.contains("mig.lock"),
            "{body}"
        );
    }
    let r = c
        .post(format!("{}/api/v1/operations", t.url))
        .json(&serde_json::json!({"source_grid": "east", "source_app": "shop", "target_grid": "west", "target_app": "shop", "action": "migrate"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("not a regular file") && body.contains("override"),
        "{body}"
    );
    let r = c
        .post(format!("{}/api/v1/lock/override", t.url))
        .json(&serde_json::json!({"op_id": "unreadable", "reason": "a directory in the lock's place"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert!(!lock.exists(), "the override moved it aside");
    t.stop().await;
}

/// Client mistakes are 4xx with a message, never 500.
#[tokio::test]
async fn client_mistakes_are_answered_4xx_with_a_message() {
    let t = TestConsole::start().await;
    let c = t.signed_in_as("olga").await;
    let post = |path: &str, body: Vec<u8>, content_type: &str| {
        c.post(format!("{}{path}", t.url))
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
    };
    let form = "application/x-www-form-urlencoded";
    for (path, body) in [
        (
            "/sfn/preview",
            "source_grid=east&source_app=shop&target_grid=west&target_app=s&action=teleport",
        ),
        ("/sfn/preview", ""),
        ("/sfn/operation", ""),
    ] {
        let r = post(path, body.as_bytes().to_vec(), form).await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body:?}: {text}"
        );
        assert!(text.contains("message"), "{text}");
    }
    let r = post("/sfn/preview", vec![b'a'; 10 << 20], form)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = post(
        "/api/v1/operations",
        vec![b' '; 10 << 20],
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .get(format!(
            "{}/api/v1/operations/op-x/events?after=junk",
            t.url
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["message"].is_string(), "JSON like the rest: {body}");

    // A 10,000-character name is refused before it is echoed in a redirect.
    let long = "x".repeat(10_000);
    let r = c
        .post(format!("{}/operations/new", t.url))
        .form(&[
            ("source_grid", "east"),
            ("source_app", "shop"),
            ("target_grid", "west"),
            ("target_app", long.as_str()),
            ("action", "migrate"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    assert!(to.len() < 1024, "a {} byte Location", to.len());
    let r = c.get(format!("{}{to}", t.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let said = support::testid_text(&page, "error-target_app").unwrap_or_default();
    assert!(said.contains("too long"), "at the field: {said}");
    t.stop().await;
}

/// A DNS-rebinding page talks to the console under its own name: refused,
/// even with an Origin that matches that name.
#[tokio::test]
async fn requests_for_another_host_name_are_refused() {
    let t = TestConsole::start().await;
    let port = t.url.rsplit(':').next().unwrap().to_owned();
    let evil = format!("evil.example:{port}");
    let c = t.plain();
    let r = c
        .post(format!("{}/login", t.url))
        .header("host", &evil)
        .header(ORIGIN, format!("http://{evil}"))
        .form(&[("username", "ana"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(session_cookie(&r).is_none());
    let r = c
        .get(format!("{}/login", t.url))
        .header("host", &evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(r.text().await.unwrap().contains("public_url"));
    // Its own names still work.
    let r = c
        .get(format!("{}/login", t.url))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    t.stop().await;
}

/// Pages carry a CSP whose nonce is the one on their inline scripts, and
/// the headers that keep them from being sniffed, framed or referred.
#[tokio::test]
async fn pages_carry_security_headers_and_a_csp_with_their_script_nonce() {
    let t = TestConsole::start().await;
    let r = t
        .plain()
        .get(format!("{}/login", t.url))
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let header = |k: &str| {
        h.get(k)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert_eq!(header("x-xss-protection"), "0");
    let csp = header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("'wasm-unsafe-eval'") && !csp.contains("'unsafe-inline' 'wasm"),
        "{csp}"
    );
    let nonce = nonce_of(&csp);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the scripts carry the nonce"
    );
    let again = t
        .plain()
        .get(format!("{}/login", t.url))
        .send()
        .await
        .unwrap();
    assert!(
        !header_of(&again, "content-security-policy").contains(&nonce),
        "a nonce per page"
    );
    let api = t
        .plain()
        .get(format!("{}/api/v1/me", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(header_of(&api, "x-content-type-options"), "nosniff");
    t.stop().await;
}

/// A mistyped address gets a 404 page inside the console's layout: the
/// navigation is there, and its scripts carry the page's nonce, so it
/// hydrates under the CSP. The icon browsers ask for is served to anyone.
#[tokio::test]
async fn a_mistyped_address_gets_a_404_page_with_the_navigation_and_working_scripts() {
    let t = TestConsole::start().await;
    let operator = t.signed_in_as("olga").await;
    for path in ["/operatoins", "/grids/east/nothing/here"] {
        let r = operator
            .get(format!("{}{path}", t.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let csp = header_of(&r, "content-security-policy");
        let nonce = nonce_of(&csp);
        let html = r.text().await.unwrap();
        assert!(html.contains(r#"data-testid="not-found""#), "{html}");
        assert!(
            html.contains(r#"<nav aria-label="Main""#) && html.contains(">Operations</a>"),
            "the navigation is on the 404 page: {html}"
        );
        assert!(
            html.contains(&format!("nonce=\"{nonce}\"")),
            "its scripts carry the CSP's nonce: {html}"
        );
    }
    // An unknown API address keeps the API's JSON 404.
    let r = operator
        .get(format!("{}/api/v1/operatoins", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        header_of(&r, "content-type").starts_with("application/json"),
        "{:?}",
        r.headers()
    );
    for path in ["/favicon.ico", "/favicon.svg"] {
        let r = t
            .plain()
            .get(format!("{}{path}", t.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header_of(&r, "content-type"), "image/svg+xml", "{path}");
        assert!(r.text().await.unwrap().starts_with("<svg"), "{path}");
    }
    t.stop().await;
}

/// The script nonce a page's CSP allows.
fn nonce_of(csp: &str) -> String {
    csp.split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {csp}"))
        .to_owned()
}

fn header_of(r: &reqwest::Response, k: &str) -> String {
    r.headers()
        .get(k)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Disabling a user revokes their API tokens: enabling them again brings
/// none back.
#[tokio::test]
async fn disabling_a_user_revokes_their_tokens_for_good() {
    let t = TestConsole::start().await;
    let vic = accounts::find_by_name(&t.pool, "vic")
        .await
        .unwrap()
        .unwrap();
    let token = tokens::create(&t.pool, vic.id).await.unwrap();
    let me = |token: String| {
        let url = format!("{}/api/v1/me", t.url);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    accounts::set_disabled(&t.pool, "vic", true).await.unwrap();
    assert_eq!(me(token.clone()).await, StatusCode::UNAUTHORIZED);
    accounts::set_disabled(&t.pool, "vic", false).await.unwrap();
    assert_eq!(
        me(token).await,
        StatusCode::UNAUTHORIZED,
        "the old token stays dead"
    );
    t.stop().await;
}

/// An admin cannot disable their own account (they would be signed out
/// with no way back in): refused with why, their row offers no button,
/// and another admin's row does.
#[tokio::test]
async fn an_admin_cannot_disable_themselves() {
    let t = TestConsole::start().await;
    let hash = password::hash(PASSWORD.into()).await.unwrap();
    accounts::create(&t.pool, "bea", Role::Admin, &hash)
        .await
        .unwrap();
    let ana = t.signed_in_as("ana").await;
    let r = ana
        .post(format!("{}/users/ana", t.url))
        .form(&[("change", "disable")])
        .send()
        .await
        .unwrap();
    let said = what_the_page_said(&t, &ana, &location(&r), "users").await;
    assert!(
        said.starts_with("refused: you cannot disable your own account"),
        "{said}"
    );
    let ana_row = accounts::find_by_name(&t.pool, "ana")
        .await
        .unwrap()
        .unwrap();
    assert!(!ana_row.disabled);
    let page = ana
        .get(format!("{}/users", t.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = |name: &str| {
        let start = page.find(&format!("data-user=\"{name}\"")).unwrap();
        let end = page[start..].find("</tr>").unwrap() + start;
        page[start..end].to_owned()
    };
    assert!(!row("ana").contains("value=\"disable\""), "{}", row("ana"));
    assert!(row("bea").contains("value=\"disable\""), "{}", row("bea"));
    t.stop().await;
}

/// Two admins who demote (or disable) each other at the same moment: one
/// wins, the other is told the console would be left without an admin, and
/// an active admin remains every time.
#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let t = TestConsole::start().await;
    let hash = password::hash(PASSWORD.into()).await.unwrap();
    accounts::create(&t.pool, "bea", Role::Admin, &hash)
        .await
        .unwrap();
    let change =
        |client: &reqwest::Client, whom: &str, form: &'static [(&'static str, &'static str)]| {
            client
                .post(format!("{}/users/{whom}", t.url))
                .form(form)
                .send()
        };
    for round in 0..10 {
        for name in ["ana", "bea"] {
            accounts::set_role(&t.pool, name, Role::Admin)
                .await
                .unwrap();
            accounts::set_disabled(&t.pool, name, false).await.unwrap();
        }
        // A disable ends the loser's sessions: sign in afresh each round.
        let ana = t.signed_in_as("ana").await;
        let bea = t.signed_in_as("bea").await;
        let form: &'static [(&str, &str)] = if round % 2 == 0 {
            &[("change", "role"), ("role", "viewer")]
        } else {
            &[("change", "disable")]
        };
        let (a, b) = tokio::join!(change(&ana, "bea", form), change(&bea, "ana", form));
        let mut said = vec![];
        for (client, r) in [(&ana, a.unwrap()), (&bea, b.unwrap())] {
            said.push(what_the_page_said(&t, client, &location(&r), "users").await);
        }
        let admins: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0")
                .fetch_one(&t.pool)
                .await
                .unwrap();
        assert_eq!(
            admins, 1,
            "round {round}: one active admin must remain; said {said:?}"
        );
        assert_eq!(
            said.iter().filter(|s| s.starts_with("ok: ")).count(),
            1,
            "round {round}: one change is made: {said:?}"
        );
        // The other is refused: as the only active admin, as no longer an
        // admin, or (disabled first) sent to sign in again.
        assert!(
            said.iter()
                .any(|s| s.starts_with("refused: ") || s.starts_with("signed out")),
            "round {round}: {said:?}"
        );
    }
    t.stop().await;
}

/// What the page a form redirected to (`to`) showed `client` in its
/// banner (`{testid}-ok` or `{testid}-error`): "ok: …", "refused: …",
/// "signed out" when it sent them to sign in, else "nothing said".
async fn what_the_page_said(
    t: &TestConsole,
    client: &reqwest::Client,
    to: &str,
    testid: &str,
) -> String {
    assert!(
        !to.contains("error=") && !to.contains("ok="),
        "no sentence in the address: {to}"
    );
    if to.starts_with("/login") {
        return "signed out".into();
    }
    let r = client.get(format!("{}{to}", t.url)).send().await.unwrap();
    if location(&r).starts_with("/login") {
        return "signed out".into();
    }
    let page = r.text().await.unwrap();
    if let Some(ok) = support::testid_text(&page, &format!("{testid}-ok")) {
        format!("ok: {ok}")
    } else if let Some(e) = support::testid_text(&page, &format!("{testid}-error")) {
        format!("refused: {e}")
    } else {
        format!("nothing said at {to}")
    }
}

/// A client that keeps a connection open (a browser's idle keep-alive, or
/// a request that never finishes its headers) cannot keep the console from
/// stopping: it stops within `DRAIN` of being told to. A console inside
/// its app must stop with the app.
#[tokio::test]
async fn open_connections_do_not_keep_the_console_from_stopping() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestConsole::start().await;
    let address = t.url.trim_start_matches("http://").to_owned();
    // One connection idle after a whole request and its answer…
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    // …and one that never finishes its request.
    let mut partial = tokio::net::TcpStream::connect(&address).await.unwrap();
    partial
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Slow: ").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    tokio::time::timeout(migctl::console::DRAIN + Duration::from_secs(5), t.stop())
        .await
        .expect("the console did not stop while clients held connections open");
    drop((idle, partial));
}

/// The published contract is readable without signing in, and the API
/// refuses, with a 422 that names the field, what the contract does not
/// allow: an unknown field (a typo such as `warn` is not silently a cold
/// copy), a negative `after`, an audit `limit` out of range.
#[tokio::test]
async fn the_api_publishes_its_contract_and_refuses_what_it_does_not_allow() {
    let t = TestConsole::start().await;
    let c = t.plain();
    let doc: serde_json::Value = c
        .get(format!("{}/api/v1/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["paths"]["/api/v1/operations/{id}/cutover"]["post"]["responses"]["409"].is_object()
    );

    let token = t.token_of("ana").await;
    let refusal = |r: reqwest::Response| async move {
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_request");
        body["message"].as_str().unwrap().to_owned()
    };
    let r = c
        .post(format!("{}/api/v1/operations", t.url))
        .bearer_auth(&token)
        .json(
            &serde_json::json!({"source_grid": "east", "source_app": "shop",
            "target_grid": "west", "target_app": "shop", "action": "migrate", "warn": true}),
        )
        .send()
        .await
        .unwrap();
    let message = refusal(r).await;
    assert!(message.contains("unknown field `warn`"), "{message}");
    for (path, field) in [
        ("/api/v1/operations/any/events?after=-1", "after"),
        ("/api/v1/audit?limit=0", "limit"),
        ("/api/v1/audit?limit=1001", "limit"),
        ("/api/v1/audit?limit=many", "limit"),
    ] {
        let r = c
            .get(format!("{}{path}", t.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let message = refusal(r).await;
        assert!(message.contains(field), "{path}: {message}");
    }
    t.stop().await;
}

/// Inserts an operation row (`ended`: done, else running) for the page and
/// stream tests, with `lines` log events (and the outcome's event if ended).
async fn insert_operation(pool: &sqlx::SqlitePool, id: &str, ended: bool, lines: i64) {
    let (phase, outcome, finished) = if ended {
        ("done", Some("done"), Some("2026-11-24T08:10:00Z"))
    } else {
        ("copying", None, None)
    };
    sqlx::query(
        "INSERT INTO operations (id, action, source_grid, source_app, target_grid, target_app,
           phase, outcome, created_by, created_at, updated_at, finished_at)
         VALUES (?, 'snapshot', 'east', 'shop', 'west', 'shop-copy', ?, ?, 'olga',
           '2026-11-24T08:00:00Z', '2026-11-24T08:00:00Z', ?)",
    )
    .bind(id)
    .bind(phase)
    .bind(outcome)
    .bind(finished)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO operation_events (op_id, seq, at, kind, source, data, app_seq, final)
         SELECT ?, i, '2026-11-24T08:05:00Z', 'log', 'helper',
           json_object('text', 'line ' || i), i, 0 FROM n",
    )
    .bind(lines)
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    if ended {
        sqlx::query(
            "INSERT INTO operation_events (op_id, seq, at, kind, source, data, final)
             VALUES (?, ? + 1, '2026-11-24T08:10:00Z', 'phase', 'console',
               '{\"phase\":\"done\",\"text\":\"done\"}', 1)",
        )
        .bind(id)
        .bind(lines)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// An operation with 100,000 log lines: its monitor shows the last lines and
/// says how many came before, with the whole log a download away; the page
/// stays small; the downloads and the event stream carry every line.
#[tokio::test]
async fn a_log_of_100_000_lines_keeps_the_monitor_small_and_the_downloads_whole() {
    let t = TestConsole::start().await;
    insert_operation(&t.pool, "op-long", true, 100_000).await;
    let viewer = t.signed_in_as("vic").await;

    let page = viewer
        .get(format!("{}/operations/op-long", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("data-seq=\"100001\""),
        "the last line is shown"
    );
    assert!(
        !html.contains("data-seq=\"5000\""),
        "old lines are not on the page"
    );
    let earlier = html
        .split("data-testid=\"earlier-lines\"")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the page says how many earlier lines it leaves out");
    let shown = html.matches("<li data-source=").count() as u64;
    assert_eq!(
        earlier + shown,
        100_001,
        "{earlier} earlier + {shown} shown"
    );
    assert!(shown >= 1000, "{shown}");
    assert!(html.len() < 2 << 20, "the page is {} bytes", html.len());

    let text = text_of(
        &viewer,
        format!("{}/api/v1/operations/op-long/log.txt", t.url),
    )
    .await;
    assert_eq!(text.lines().count(), 100_001);
    assert!(text.lines().nth(99_999).unwrap().ends_with("line 100000"));
    let ndjson = text_of(
        &viewer,
        format!("{}/api/v1/operations/op-long/log.ndjson", t.url),
    )
    .await;
    assert_eq!(ndjson.lines().count(), 100_001);

    let stream = text_of(
        &viewer,
        format!("{}/api/v1/operations/op-long/events?after=90000", t.url),
    )
    .await;
    let ids: Vec<i64> = stream
        .lines()
        .filter_map(|l| l.strip_prefix("id: ")?.parse().ok())
        .collect();
    assert_eq!(
        ids,
        (90_001..=100_001).collect::<Vec<_>>(),
        "every event once, in order, then the end"
    );
    t.stop().await;
}

/// Event streams are limited (`max_event_streams`): one more is refused
/// with 429, Retry-After and the setting's name, and a closed stream frees
/// its place.
#[tokio::test]
async fn event_streams_past_the_limit_are_refused_with_429() {
    let t = TestConsole::start_with(Overrides {
        max_event_streams: Some(2),
        ..Overrides::default()
    })
    .await;
    insert_operation(&t.pool, "op-live", false, 3).await;
    let viewer = t.signed_in_as("vic").await;
    let url = format!("{}/api/v1/operations/op-live/events", t.url);
    let first = viewer.get(&url).send().await.unwrap();
    let second = viewer.get(&url).send().await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = viewer.get(&url).send().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "5");
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"], "too_many_streams");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_event_streams"),
        "{body}"
    );
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = viewer.get(&url).send().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream never freed its place"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
    t.stop().await;
}

/// A stream whose database read fails ends with a `stream-error` event
/// saying why and where to resume, not silently.
#[tokio::test]
async fn an_event_stream_that_cannot_read_the_database_says_so_and_ends() {
    let t = TestConsole::start().await;
    insert_operation(&t.pool, "op-live", false, 3).await;
    let viewer = t.signed_in_as("vic").await;
    let mut r = viewer
        .get(format!("{}/api/v1/operations/op-live/events", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut got = String::new();
    let mut broke = false;
    let ended = within("the stream's end", Duration::from_secs(30), async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            got.push_str(&String::from_utf8_lossy(&chunk));
            if !broke && got.contains("id: 3\n") {
                sqlx::query("ALTER TABLE operation_events RENAME TO events_gone")
                    .execute(&t.pool)
                    .await
                    .unwrap();
                broke = true;
            }
        }
    });
    ended.await;
    assert!(broke, "the stored events came first: {got}");
    let tail = &got[got.find("id: 3\n").unwrap()..];
    assert!(
        tail.contains(
            "event: stream-error\ndata: the console cannot read this operation's events now"
        ),
        "{tail}"
    );
    assert!(tail.contains("resume after event 3"), "{tail}");
    sqlx::query("ALTER TABLE events_gone RENAME TO operation_events")
        .execute(&t.pool)
        .await
        .unwrap();
    t.stop().await;
}

/// Every state-changing route, forms and API alike, refuses a request that
/// carries an admin's session cookie but comes from another site (CSRF),
/// and nothing changes; oversized bodies get 413 and oversized headers 431.
#[tokio::test]
async fn every_state_change_refuses_other_sites_and_oversized_requests() {
    let t = TestConsole::start().await;
    insert_operation(&t.pool, "op-live", false, 3).await;
    let cookie = {
        let r = t.login(&t.browser(), "ana", PASSWORD).await;
        cookie_value(&session_cookie(&r).unwrap())
    };
    let c = t.plain();
    let routes = [
        "/logout",
        "/operations/new",
        "/operations/op-live/cancel",
        "/operations/op-live/cutover",
        "/users",
        "/users/olga",
        "/lock/override",
        "/sfn/anything",
        "/api/v1/operations",
        "/api/v1/operations/plan",
        "/api/v1/operations/op-live/cancel",
        "/api/v1/operations/op-live/cutover",
        "/api/v1/lock/override",
    ];
    for route in routes {
        for origin in [Some("http://evil.example"), None] {
            let mut r = c
                .post(format!("{}{route}", t.url))
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=mallory&role=admin&op_id=op-live&reason=x");
            if let Some(o) = origin {
                r = r.header(ORIGIN, o);
            }
            let r = r.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "POST {route} from {origin:?}"
            );
        }
    }
    assert!(
        accounts::find_by_name(&t.pool, "mallory")
            .await
            .unwrap()
            .is_none()
    );
    let op: (String, Option<String>) =
        sqlx::query_as("SELECT phase, outcome FROM operations WHERE id = 'op-live'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(
        op,
        ("copying".to_owned(), None),
        "the operation was not touched"
    );
    let admin = t.signed_in_as("ana").await;
    assert_eq!(
        me_status(&t, &admin).await,
        StatusCode::OK,
        "the session survived"
    );

    // Oversized: a 3 MiB body to every JSON route, a 1 MiB header anywhere.
    let big = vec![b'x'; 3 << 20];
    for (route, kind) in [
        ("/api/v1/operations", "application/json"),
        ("/api/v1/operations/plan", "application/json"),
        ("/api/v1/lock/override", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
        ("/operations/new", "application/x-www-form-urlencoded"),
    ] {
        let r = admin
            .post(format!("{}{route}", t.url))
            .header("content-type", kind)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "POST {route}");
    }
    let r = admin
        .get(format!("{}/api/v1/me", t.url))
        .header("x-padding", "y".repeat(1 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        me_status(&t, &admin).await,
        StatusCode::OK,
        "and the console goes on"
    );
    t.stop().await;
}

/// Consoles started in the same process while another serves never stall
/// its pages: starting one used to run the app with resource loading
/// suspended process-wide (leptos-rs/leptos#4773), and a page rendered
/// meanwhile never finished (a dashboard hung 60 s in a full run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consoles_starting_beside_a_serving_one_never_stall_its_pages() {
    let t = TestConsole::start().await;
    let ana = t.signed_in_as("ana").await;
    let starting = tokio::spawn(async {
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let console = open_in(&dir, Overrides::default()).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            console.serve(listener, async {}).await.unwrap();
        }
    });
    let mut pages = 0;
    while !starting.is_finished() {
        let page = tokio::time::timeout(Duration::from_secs(10), t.page(&ana, "/"))
            .await
            .unwrap_or_else(|_| {
                panic!("the dashboard stalled after {pages} pages while consoles started beside it")
            });
        assert!(page.contains("override locks and manage users"), "{page}");
        pages += 1;
    }
    starting.await.unwrap();
    t.stop().await;
}
