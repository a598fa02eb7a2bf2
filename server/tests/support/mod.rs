//! Shared by the console's integration tests: gridsim with grids east and
//! west whose MigHelper is this build's `migctl helper`, an app `shop` on
//! east, and client connections to both grids.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{ClientConfig, Connection, Endpoint, GridName, keys};
use gridsim::{RunningSim, SimConfig, SimPaths};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Grids {
    pub dir: tempfile::TempDir,
    pub sim: RunningSim,
    /// Where the console's key, known_hosts and grids.toml are.
    pub console: PathBuf,
    pub east: Connection,
    pub west: Connection,
}

/// A volume of `shop`: name, size, and the range filled with data.
pub struct Vol(pub &'static str, pub u64, pub std::ops::Range<u64>);

/// gridsim (fast state changes) with `shop` running on east.
pub async fn grids_with_shop(volumes: &[Vol]) -> Grids {
    let dir = tempfile::tempdir().unwrap();
    let helper = vec![env!("CARGO_BIN_EXE_migctl").to_owned(), "helper".to_owned()];
    gridsim::init(dir.path(), &["east", "west"], 0, helper).unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 100;
    config.stop_delay_ms = 100;
    config.save(&path).unwrap();
    let sim = gridsim::start(dir.path()).await.unwrap();

    let east = &sim.grid("east").unwrap().controller;
    let specs: Vec<String> = volumes
        .iter()
        .map(|Vol(name, size, _)| format!(r#"{{"name":"{name}","size":{size}}}"#))
        .collect();
    let descriptor = format!(r#"{{"volumes":[{}]}}"#, specs.join(","));
    east.execute(
        "app create shop",
        &mut descriptor.as_bytes(),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    for Vol(name, _, range) in volumes {
        // Incompressible (as most app data): zstd on the wire must not
        // shrink a copy below the byte counts the fault tests cut it at.
        let mut x = range.start | 1;
        let bytes: Vec<u8> = range
            .clone()
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8 | 1
            })
            .collect();
        let line = format!("vol write shop:{name} --offset {}", range.start);
        east.execute(&line, &mut &bytes[..], &mut Vec::new())
            .await
            .unwrap();
    }
    east.execute("app start shop", &mut tokio::io::empty(), &mut Vec::new())
        .await
        .unwrap();

    let console = SimPaths::new(dir.path()).console_dir();
    let client = ClientConfig::new(
        keys::load(&console.join("id_ed25519")).unwrap(),
        KnownHosts::load(&console.join("known_hosts")).unwrap(),
    );
    let inventory = Inventory::load(&console.join("grids.toml")).unwrap();
    let open = |name: &str| {
        let endpoint = Endpoint::from(inventory.get(&GridName::new(name).unwrap()).unwrap());
        let client = client.clone();
        async move { Connection::open(&endpoint, &client).await.unwrap() }
    };
    let (east, west) = (open("east").await, open("west").await);
    Grids {
        dir,
        sim,
        console,
        east,
        west,
    }
}

pub fn migctl(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migctl"));
    c.env("MIGCTL_LOG", "warn").arg("--config-dir").arg(dir);
    c
}

/// Starts `migctl serve` and returns it with its URL.
pub fn serve(dir: &Path) -> (Child, String) {
    serve_logging(dir, Stdio::null(), &[])
}

/// [`serve`] with its log (stderr) going to `log` and more environment.
pub fn serve_logging(dir: &Path, log: Stdio, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = migctl(dir)
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("url: ")
                .map(|u| u.trim_end_matches('/').to_owned())
        })
        .unwrap();
    (child, url)
}
