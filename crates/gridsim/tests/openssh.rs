//! Interop with OpenSSH, both ways: the grid client (russh) against Debian's
//! `sshd` running gridsim's controller as its `ForceCommand`, and the
//! OpenSSH `ssh` client running dialect commands against gridsim.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use grid::dialect::{AppState, Descriptor, ErrorCode, VolRef, VolumeSpec};
use grid::known_hosts::{KnownHosts, pin_line};
use grid::{AppName, ClientConfig, Connection, Endpoint, GridName, VolumeName, keys};
use gridsim::SimPaths;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A port that is free now, below the kernel's ephemeral range (where
/// outgoing connections take theirs). sshd binds it later, so another
/// process may still take it first: [`start_sshd`] then tries another.
fn free_port(attempt: u16) -> u16 {
    let pid = u16::try_from(std::process::id() % 4000).unwrap();
    (0..200)
        .map(|i| 20_000 + (pid * 3 + attempt * 401 + i * 17) % 12_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

/// Debian's sshd on a loopback port with its own config and host key,
/// running gridsim's controller for every login. Stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
    host_key: russh::keys::PublicKey,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(dir: &Path, sim: &Path, grid: &str, authorized: &russh::keys::PublicKey) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install Debian's openssh-server (scripts/setup does)"
    );
    std::fs::create_dir_all("/run/sshd").ok();
    let host_key_path = dir.join("sshd_host_key");
    let host_key = keys::generate();
    keys::save(&host_key_path, &host_key).unwrap();
    let auth_path = dir.join("authorized_keys");
    std::fs::write(&auth_path, authorized.to_openssh().unwrap() + "\n").unwrap();
    for attempt in 0..5 {
        let port = free_port(attempt);
        if let Some(sshd) = try_sshd(dir, sim, grid, port, &host_key) {
            return sshd;
        }
    }
    panic!("sshd did not start on any of 5 ports");
}

/// sshd on `port`, once it accepts connections; `None` when it exits
/// first (the port was taken meanwhile).
fn try_sshd(
    dir: &Path,
    sim: &Path,
    grid: &str,
    port: u16,
    host_key: &russh::keys::PrivateKey,
) -> Option<Sshd> {
    let host_key_path = dir.join("sshd_host_key");
    let auth_path = dir.join("authorized_keys");
    let force = format!(
        "{} controller --data {} --grid {grid}",
        env!("CARGO_BIN_EXE_gridsim"),
        sim.display()
    );
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
         StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nAllowUsers {}\nForceCommand {force}\nSetEnv GRIDSIM_LOG=warn\n",
        host_key_path.display(),
        auth_path.display(),
        dir.join("sshd.pid").display(),
        whoami(),
    );
    let config_path = dir.join("sshd_config");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Ours, if it still runs once something answers on the port.
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sshd did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Sshd {
        child,
        port,
        host_key: host_key.public_key().clone(),
    })
}

fn app(s: &str) -> AppName {
    AppName::new(s).unwrap()
}

#[tokio::test]
async fn the_grid_client_talks_to_openssh_sshd_running_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    gridsim::init(&sim, &["east"], 0, vec![]).unwrap();
    let paths = SimPaths::new(&sim);
    let key = keys::load(&paths.console_dir().join("id_ed25519")).unwrap();
    let sshd = start_sshd(dir.path(), &sim, "east", key.public_key());

    let known = KnownHosts::parse(
        Path::new("known_hosts"),
        &pin_line("127.0.0.1", sshd.port, &sshd.host_key),
    )
    .unwrap();
    let endpoint = Endpoint {
        grid: GridName::new("east").unwrap(),
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: whoami(),
    };
    let conn = Connection::open(&endpoint, &ClientConfig::new(key, known))
        .await
        .unwrap();

    let info = conn.grid_info().await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.dialect),
        ("east", grid::dialect::DIALECT_VERSION)
    );
    let descriptor = Descriptor {
        volumes: vec![VolumeSpec {
            name: VolumeName::new("data").unwrap(),
            size: 16 << 20,
        }],
        ..Descriptor::default()
    };
    conn.app_create(&app("shop"), &descriptor).await.unwrap();
    let vol = VolRef::new(app("shop"), VolumeName::new("data").unwrap());
    let data: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(
        conn.vol_write(&vol, 0, &mut &data[..]).await.unwrap(),
        16 << 20
    );
    let mut back = Vec::new();
    conn.vol_read(&vol, 0, None, &mut back).await.unwrap();
    assert!(
        back == data,
        "the volume reads back unchanged through OpenSSH"
    );
    assert_eq!(
        conn.vol_checksum(&vol).await.unwrap().digest,
        blake3::hash(&data).to_hex().to_string()
    );
    assert_eq!(
        conn.app_start(&app("shop")).await.unwrap().state,
        AppState::Running
    );
    assert_eq!(
        conn.app_stop(&app("shop"), Some(5))
            .await
            .unwrap()
            .info
            .state,
        AppState::Stopped
    );

    let missing = conn.app_info(&app("nothing")).await.unwrap_err();
    assert_eq!(
        missing.refusal().map(|r| r.code),
        Some(ErrorCode::NotFound),
        "{missing}"
    );
    let hostile = conn
        .call_line("app info", "app info 'a;rm -rf /' --json", None)
        .await
        .unwrap_err();
    assert_eq!(
        hostile.refusal().map(|r| r.code),
        Some(ErrorCode::BadRequest),
        "{hostile}"
    );
}

fn ssh(console: &Path, port: u16, args: &[&str]) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-i")
        .arg(console.join("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            console.join("known_hosts").display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .args([
            "-F",
            "/dev/null",
            "-p",
            &port.to_string(),
            "migctl@127.0.0.1",
        ])
        .args(args);
    c
}

#[tokio::test]
async fn the_openssh_client_runs_dialect_commands_against_gridsim() {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east"], 0, vec![]).unwrap();
    let sim = gridsim::start(dir.path()).await.unwrap();
    let port = sim.grid("east").unwrap().address.port();
    let console: PathBuf = SimPaths::new(dir.path()).console_dir();

    let run = |args: Vec<String>, stdin: Vec<u8>| {
        let console = console.clone();
        tokio::task::spawn_blocking(move || {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut child = ssh(&console, port, &argv)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&stdin).unwrap();
            child.wait_with_output().unwrap()
        })
    };
    let a = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();

    let out = run(a("grid info --json"), vec![]).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["name"], "east");

    let out = run(
        a("app create shop"),
        br#"{"volumes":[{"name":"data","size":1048576}]}"#.to_vec(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = vec![0xA5u8; 1 << 20];
    let out = run(a("vol write shop:data"), data.clone()).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(a("vol read shop:data"), vec![]).await.unwrap();
    assert!(out.stdout == data);

    let out = run(
        vec!["app".into(), "info".into(), "'a;rm -rf /'".into()],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: bad_request: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // OpenSSH, too, refuses a grid whose key is not pinned.
    std::fs::write(console.join("known_hosts"), "").unwrap();
    let out = run(a("grid info"), vec![]).await.unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Host key verification failed"));
    sim.stop().await;
}
