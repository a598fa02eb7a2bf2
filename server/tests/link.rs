//! A link cut mid-copy and restored: the helper runs in a network namespace
//! of its own (`ip netns exec`), joined to the grids by a veth pair; the
//! grids listen on the host's end. The target speaks dialect 2, so the
//! helper relays every byte between the grids: cutting its end of the link
//! (`ip link set … down`) cuts the path between the two grids, with nothing
//! answering and no connection reset (the kernel has no traffic shaping to
//! delay or drop, but a link can go down). After it comes back, the
//! operation ends with an outcome, and a `done` copy is byte-exact.
//!
//! Needs root and `ip netns`; without them the test says so and passes,
//! unless MIGCTL_REQUIRE_NETNS=1 (scripts/test sets it), when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use grid::AppName;
use grid::dialect::VolRef;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Vol, api, operator_token, serve, wait_for};

/// A namespace of this test's own, with the two ends of its link.
struct Link {
    ns: String,
    inside: String,
    host_ip: std::net::IpAddr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Link {
    fn make() -> Result<Link, String> {
        let id = std::process::id() % 10000;
        let ns = format!("migctl-link-{id}");
        let (outside, inside) = (format!("mlh{id}"), format!("mln{id}"));
        // 10.213.N.0/30: host .1, namespace .2.
        let net = id % 250;
        let (host, guest) = (format!("10.213.{net}.1"), format!("10.213.{net}.2"));
        let link = Link {
            ns: ns.clone(),
            inside: inside.clone(),
            host_ip: host.parse().unwrap(),
        };
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &ns])?;
        ip(&["addr", "add", &format!("{host}/30"), "dev", &outside])?;
        ip(&["link", "set", &outside, "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{guest}/30"),
            "dev",
            &inside,
        ])?;
        ip(&["-n", &ns, "link", "set", &inside, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(link)
    }

    fn set(&self, up: bool) {
        ip(&[
            "-n",
            &self.ns,
            "link",
            "set",
            &self.inside,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }
}

/// Deleting the namespace deletes its veth end, and with it the pair.
impl Drop for Link {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// shop's volumes' checksums on a grid (empty for a volume it lacks).
async fn sums_on(c: &grid::Connection) -> Vec<String> {
    let mut sums = vec![];
    for vol in ["boot", "data"] {
        let r = VolRef::new(
            AppName::new("shop").unwrap(),
            grid::VolumeName::new(vol).unwrap(),
        );
        sums.push(
            c.vol_checksum(&r)
                .await
                .map(|s| s.digest)
                .unwrap_or_default(),
        );
    }
    sums
}

#[tokio::test]
async fn a_link_cut_mid_copy_and_restored_ends_with_an_outcome_and_a_byte_exact_copy() {
    let link = match Link::make() {
        Ok(l) => l,
        Err(why) if std::env::var("MIGCTL_REQUIRE_NETNS").as_deref() != Ok("1") => {
            eprintln!("skipped: no network namespace here ({why}); needs root and ip netns");
            return;
        }
        Err(why) => panic!("MIGCTL_REQUIRE_NETNS=1 but no network namespace: {why}"),
    };
    let host_ip = link.host_ip;
    let ns = link.ns.clone();
    let g = support::grids_with_shop_configured(
        &[
            Vol("boot", 4 << 20, 0..4 << 20),
            Vol("data", 24 << 20, 0..20 << 20),
        ],
        |config| {
            for grid in &mut config.grids {
                grid.listen = Some(host_ip);
            }
            for t in &mut config.templates {
                if t.name.as_str() == "MigHelper" {
                    let mut command = vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()];
                    command.append(&mut t.command);
                    t.command = command;
                }
            }
        },
    )
    .await;
    // A dialect 2 target: the helper relays every byte (no pull between
    // the grids, which share gridsim's process and namespace).
    g.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| f.dialect = Some(2));
    let source_sums = sums_on(&g.east).await;
    let dir = support::console_dir(&g, "copy_rate_limit_mib = 4");
    let token = operator_token(dir.path());
    let (mut console, url) = serve(dir.path());
    let body = json!({"source_grid": "east", "source_app": "shop", "target_grid": "west",
        "target_app": "shop", "action": "migrate"});
    let (status, op) = api(&url, &token, "POST", "/operations", Some(body)).await;
    assert_eq!(status, 201, "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    wait_for(&url, &token, &id, |op| {
        op["bytes_done"].as_u64() > Some(4 << 20) || !op["outcome"].is_null()
    })
    .await;
    let cut_at = Instant::now();
    link.set(false);
    // The console's own link is whole: it answers, and the operation has
    // not ended while its helper cannot reach either grid.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (status, during) = api(&url, &token, "GET", &format!("/operations/{id}"), None).await;
    assert_eq!(status, 200, "{during}");
    assert!(
        during["outcome"].is_null()
            && during["bytes_done"].as_u64() < during["bytes_total"].as_u64(),
        "the link went down mid-copy: {during}"
    );
    link.set(true);
    let cut_for = cut_at.elapsed();
    let op: Value = wait_for(&url, &token, &id, |op| !op["outcome"].is_null()).await;
    let outcome = op["outcome"].as_str().unwrap();
    let helper = support::helper_lines(&url, &token, &id).await;
    eprintln!(
        "the link was down {cut_for:?}; the operation ended {outcome} ({}); the helper said:\n{}",
        op["reason"],
        helper.join("\n")
    );
    assert!(
        helper
            .iter()
            .any(|l| l.starts_with("copy method: relayed through the helper")),
        "the bytes went through the cut link: {helper:#?}"
    );
    // At 4 MiB/s the copy takes ~6 s; the cut held it up for its 20 s.
    let copy_secs: f64 = helper
        .iter()
        .find_map(|l| {
            let rest = l.strip_prefix("copied ")?;
            let (_, after) = rest.split_once(" bytes in ")?;
            after.split(' ').next()?.parse().ok()
        })
        .unwrap_or(0.0);
    assert!(
        outcome != "done" || copy_secs >= 20.0,
        "the cut did not hold the copy up (copied in {copy_secs} s): {helper:#?}"
    );
    // West speaks its own dialect again: reading a running app's volumes
    // needs dialect 4.
    g.sim
        .grid("west")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let app = AppName::new("shop").unwrap();
    match outcome {
        "done" => {
            assert!(
                g.east.app_info(&app).await.is_err(),
                "done: the source is gone"
            );
            assert_eq!(sums_on(&g.west).await, source_sums, "done: byte-exact");
        }
        "failed" => {
            let source = g.east.app_info(&app).await.unwrap();
            assert_eq!(source.state.as_str(), "running", "failed: the source runs");
            assert_eq!(sums_on(&g.east).await, source_sums, "failed: with its data");
            assert!(g.west.app_info(&app).await.is_err(), "no partial target");
        }
        other => panic!("the operation ended {other}: {op}"),
    }
    console.kill().unwrap();
    console.wait().unwrap();
    g.sim.stop().await;
}
