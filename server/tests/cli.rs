//! The `migctl` binary itself: bad configuration, first start, user
//! commands, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn migctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migctl"));
    c.env_remove("MIGCTL_CONFIG_DIR").env("MIGCTL_LOG", "warn");
    c
}

#[test]
fn bad_configuration_stops_start_up_with_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("migctl.toml"),
        "listen = \"127.0.0.1:0\"\nmode = \"teleport\"\n",
    )
    .unwrap();
    let out = migctl()
        .arg("--config-dir")
        .arg(dir.path())
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("migctl.toml:2:"), "{err}");
    assert!(err.contains("teleport"), "{err}");
    assert!(
        err.contains(r#"fix: write mode = "migrate", "snapshot" or "both""#),
        "{err}"
    );
    assert!(
        !dir.path().join("migctl.db").exists(),
        "nothing was started"
    );

    let out = migctl().arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("pass --config-dir DIR or set MIGCTL_CONFIG_DIR")
    );

    let out = migctl()
        .arg("--config-dir")
        .arg(dir.path())
        .args(["serve", "--current-grid", "$(x)"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must start with a letter"));
}

#[test]
fn user_commands_manage_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = migctl()
            .arg("--config-dir")
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, _) = run(
        &["user", "add", "ana", "--role", "admin", "--password-stdin"],
        Some("a long enough password\n"),
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("added ana (admin)"));
    let (code, out, _) = run(&["user", "add", "vic", "--role", "viewer"], None);
    assert_eq!(code, Some(0));
    assert!(
        out.lines()
            .any(|l| l.starts_with("password: ") && l.len() == "password: ".len() + 20),
        "{out}"
    );

    let (code, _, err) = run(&["user", "add", "ana", "--role", "viewer"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("user `ana` already exists"), "{err}");
    let (code, _, err) = run(&["user", "add", "eve", "--role", "root"], None);
    assert_eq!(code, Some(2), "clap refuses the role");
    assert!(err.contains("`root` is not a role"), "{err}");
    let (code, _, err) = run(
        &["user", "add", "eve", "--role", "viewer", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("at least 10 characters"), "{err}");

    let (code, out, _) = run(&["user", "token", "vic"], None);
    assert_eq!(code, Some(0));
    assert!(out.trim().starts_with("migctl_"), "{out}");

    let (code, out, _) = run(&["user", "unlock", "vic"], None);
    assert_eq!(code, Some(0));
    assert!(out.contains("unlocked vic"), "{out}");
    let (code, _, err) = run(&["user", "unlock", "nobody"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("there is no user `nobody`"), "{err}");

    let (_, out, _) = run(&["user", "list", "--json"], None);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users[0]["name"], "ana");
    assert_eq!(users[1]["name"], "vic");
    assert_eq!(users[1]["api_tokens"], 1);

    let (code, _, err) = run(&["user", "del", "ana"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("ana is the last admin"), "{err}");
    let (code, _, _) = run(&["user", "del", "vic"], None);
    assert_eq!(code, Some(0));
    let (code, _, err) = run(&["user", "passwd", "vic"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("there is no user `vic`"), "{err}");
}

#[tokio::test]
async fn first_start_creates_an_admin_and_sigterm_stops_the_console_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = migctl()
        .arg("--config-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut password) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("password: ") {
            password = Some(p.to_owned());
        }
        if let Some(u) = line.strip_prefix("url: ") {
            url = Some(u.trim_end_matches('/').to_owned());
            break;
        }
    }
    let (url, password) = (
        url.expect("a url: line"),
        password.expect("a password: line"),
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{url}/login"))
        .header("origin", &url)
        .form(&[("username", "admin"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        "/",
        "the printed password signs in"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the console did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    // A second start does not print a password again.
    let mut child = migctl()
        .arg("--config-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = vec![];
    let mut serving = false;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.starts_with("url: ") {
            serving = true;
            break;
        }
        printed.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // It got as far as serving: a console that died at start prints no password either.
    assert!(serving, "the second start never served: {printed:?}");
    assert!(
        printed.iter().all(|l| !l.starts_with("password:")),
        "{printed:?}"
    );
}

#[test]
fn a_broken_grid_inventory_stops_start_up_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grids.toml"),
        "[[grid]]\nname = \"east\"\nadress = \"127.0.0.1:22\"\n",
    )
    .unwrap();
    let out = migctl()
        .arg("--config-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("grids.toml:3:"), "{err}");
    assert!(err.contains("unknown field `adress`"), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

/// Where `migctl serve` listens, from its `url:` line, with `env` set and
/// `args` after `serve`.
fn listens_on(dir: &std::path::Path, env: Option<&str>, args: &[&str]) -> String {
    let mut cmd = migctl();
    cmd.env_remove("MIGCTL_LISTEN");
    if let Some(listen) = env {
        cmd.env("MIGCTL_LISTEN", listen);
    }
    let mut child = cmd
        .arg("--config-dir")
        .arg(dir)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("url: ").map(str::to_owned));
    child.kill().unwrap();
    child.wait().unwrap();
    url.expect("the console printed its url")
}

#[test]
fn flags_win_over_the_environment_and_the_environment_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Three loopback addresses tell the three layers apart (port 0: any free one).
    std::fs::write(dir.path().join("migctl.toml"), "listen = \"127.0.0.2:0\"\n").unwrap();
    let file = listens_on(dir.path(), None, &[]);
    assert!(file.starts_with("http://127.0.0.2:"), "{file}");
    let env = listens_on(dir.path(), Some("127.0.0.3:0"), &[]);
    assert!(env.starts_with("http://127.0.0.3:"), "{env}");
    let flag = listens_on(
        dir.path(),
        Some("127.0.0.3:0"),
        &["--listen", "127.0.0.4:0"],
    );
    assert!(flag.starts_with("http://127.0.0.4:"), "{flag}");
}

#[test]
fn an_unknown_log_format_is_refused_with_the_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let out = migctl()
        .env("MIGCTL_LOG_FORMAT", "yaml")
        .arg("--config-dir")
        .arg(dir.path())
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"MIGCTL_LOG_FORMAT="yaml" is not a log format"#)
            && err.contains(r#"set it to "text" (the default) or "json""#),
        "{err}"
    );
}

/// A helper given a job it cannot run still answers in reports: one typed
/// `failed` line on stdout (what the grid's log takes to the console),
/// naming what is missing, and a non-zero exit; nothing on stderr alone.
#[test]
fn a_helper_without_its_job_reports_a_typed_failure() {
    let out = Command::new(env!("CARGO_BIN_EXE_migctl"))
        .arg("helper")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    match operation_model::Report::decode(lines[0]) {
        operation_model::Report::Failed { reason } => assert!(
            reason.contains("the helper's environment is incomplete") && reason.contains("MIG_"),
            "{reason}"
        ),
        other => panic!("not a failed report: {other:?}"),
    }
}
