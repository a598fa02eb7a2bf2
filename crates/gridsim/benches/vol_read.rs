//! Reading a 1 GiB dense volume from gridsim: the grid client (russh) against
//! OpenSSH's `ssh … vol read`, in one run against the same grid. Prints MB/s
//! of each and the ratio (client ÷ OpenSSH). Run: `cargo bench -p gridsim --bench vol_read`.
//! `VOL_READ_MIB` sets the size (default 1024), `VOL_READ_ROUNDS` the rounds (default 3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use grid::dialect::{Descriptor, VolRef, VolumeSpec};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{AppName, ClientConfig, Connection, Endpoint, VolumeName, keys};
use gridsim::SimPaths;
use std::process::{Command, Stdio};
use std::time::Instant;

struct Discard(u64);

impl tokio::io::AsyncWrite for Discard {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0 += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::var("VOL_READ_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rounds: usize = std::env::var("VOL_READ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let size = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east"], 0, vec![]).unwrap();
    let sim = gridsim::start(dir.path()).await.unwrap();
    let console = SimPaths::new(dir.path()).console_dir();
    let key = keys::load(&console.join("id_ed25519")).unwrap();
    let known = KnownHosts::load(&console.join("known_hosts")).unwrap();
    let endpoint = Endpoint::from(&Inventory::load(&console.join("grids.toml")).unwrap().grids[0]);
    let conn = Connection::open(&endpoint, &ClientConfig::new(key, known))
        .await
        .unwrap();

    let app = AppName::new("bench").unwrap();
    let vol = VolRef::new(app.clone(), VolumeName::new("disk").unwrap());
    conn.app_create(
        &app,
        &Descriptor {
            volumes: vec![VolumeSpec {
                name: vol.vol.clone(),
                size,
            }],
            ..Descriptor::default()
        },
    )
    .await
    .unwrap();
    // Dense: every block holds data, written in 64 MiB pieces.
    let piece: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 | 1)
        .collect();
    for i in 0..mib.div_ceil(64) {
        let offset = i * (64 << 20);
        let len = usize::try_from((size - offset).min(64 << 20)).unwrap();
        conn.vol_write(&vol, offset, &mut &piece[..len])
            .await
            .unwrap();
    }

    let port = endpoint.port.to_string();
    let (mut client, mut openssh) = (vec![], vec![]);
    for round in 0..rounds {
        let t = Instant::now();
        let mut sink = Discard(0);
        let n = conn.vol_read(&vol, 0, None, &mut sink).await.unwrap();
        assert_eq!(n, size);
        let c = size as f64 / 1e6 / t.elapsed().as_secs_f64();
        client.push(c);

        let t = Instant::now();
        let status = Command::new("ssh")
            .arg("-i")
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
                "-F",
                "/dev/null",
            ])
            .args(["-p", &port, "migctl@127.0.0.1", "vol", "read", "bench:disk"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let o = size as f64 / 1e6 / t.elapsed().as_secs_f64();
        openssh.push(o);
        println!(
            "round {}: grid client {c:.0} MB/s, openssh {o:.0} MB/s",
            round + 1
        );
    }
    let (c, o) = (median(client), median(openssh));
    println!(
        "vol read of {mib} MiB, median of {rounds}: grid client {c:.0} MB/s, OpenSSH ssh {o:.0} MB/s, ratio {:.2}",
        c / o
    );
    drop(conn);
    sim.stop().await;
}
