//! The helper as gridsim runs it: a real `mighelper` process started by
//! provisioning `MigHelper_<target>` on the target grid, copying through
//! real SSH connections to both grids.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use grid::dialect::{AppState, Descriptor, Property, VolRef, VolumeSpec};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{AppName, ClientConfig, Connection, Endpoint, GridName, TemplateName, VolumeName, keys};
use gridsim::{RunningSim, SimConfig, SimPaths};
use helper::env::Action;
use std::time::Duration;

struct Setup {
    _dir: tempfile::TempDir,
    sim: RunningSim,
    east: Connection,
    west: Connection,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(
        dir.path(),
        &["east", "west"],
        0,
        vec![env!("CARGO_BIN_EXE_mighelper").to_owned()],
    )
    .unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 100;
    config.stop_delay_ms = 100;
    config.save(&path).unwrap();
    let sim = gridsim::start(dir.path()).await.unwrap();
    let console = SimPaths::new(dir.path()).console_dir();
    let client = ClientConfig::new(
        keys::load(&console.join("id_ed25519")).unwrap(),
        KnownHosts::load(&console.join("known_hosts")).unwrap(),
    );
    let inventory = Inventory::load(&console.join("grids.toml")).unwrap();
    let conn = |name: &str| {
        let e = Endpoint::from(inventory.get(&GridName::new(name).unwrap()).unwrap());
        let c = client.clone();
        async move { Connection::open(&e, &c).await.unwrap() }
    };
    let (east, west) = (conn("east").await, conn("west").await);

    // shop: a dense boot volume (incompressible) and a mostly sparse data
    // volume (a repeating pattern: compressible), running.
    let shop = app("shop");
    east.app_create(
        &shop,
        &Descriptor {
            properties: [("tier".to_owned(), "web".to_owned())].into(),
            volumes: vec![spec("boot", 4 << 20), spec("data", 64 << 20)],
            ..Descriptor::default()
        },
    )
    .await
    .unwrap();
    let boot = noise(4 << 20, 7);
    east.vol_write(&vref("shop", "boot"), 0, &mut &boot[..])
        .await
        .unwrap();
    let chunk: Vec<u8> = (0..12u32 << 20).map(|i| (i * 13 % 241) as u8).collect();
    east.vol_write(&vref("shop", "data"), 20 << 20, &mut &chunk[..])
        .await
        .unwrap();
    east.app_start(&shop).await.unwrap();
    Setup {
        _dir: dir,
        sim,
        east,
        west,
    }
}

/// Incompressible bytes (xorshift), never an all-zero block.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&(x | 1).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn app(s: &str) -> AppName {
    AppName::new(s).unwrap()
}

fn spec(name: &str, size: u64) -> VolumeSpec {
    VolumeSpec {
        name: VolumeName::new(name).unwrap(),
        size,
    }
}

fn vref(a: &str, v: &str) -> VolRef {
    VolRef::new(app(a), VolumeName::new(v).unwrap())
}

fn job(action: Action, target: &str) -> helper::Job {
    helper::Job {
        op_id: format!("op-{target}"),
        action,
        source_grid: GridName::new("east").unwrap(),
        source_app: app("shop"),
        target_grid: GridName::new("west").unwrap(),
        target_app: app(target),
        grids_file: "unused".into(),
        key_file: "unused".into(),
        known_hosts: "unused".into(),
        block_size: 1 << 20,
        stop_timeout_secs: 10,
        rate_limit: 0,
        streams: 4,
        transfer: Default::default(),
        compress: Default::default(),
        warm: None,
    }
}

/// Provisions the helper, waits for its process to end, returns its final state and log.
async fn run_helper(s: &Setup, job: &helper::Job) -> (AppState, Vec<String>) {
    let name = app(&format!("MigHelper_{}", job.target_app));
    let props = job
        .properties()
        .into_iter()
        .map(|(k, v)| Property::new(k, v).unwrap())
        .collect();
    s.west
        .app_provision(&TemplateName::new("MigHelper").unwrap(), &name, props)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let state = loop {
        let info = s.west.app_info(&name).await.unwrap();
        if matches!(info.state, AppState::Stopped | AppState::Failed) {
            break info.state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the helper never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = s
        .west
        .app_log(&name, None)
        .await
        .unwrap()
        .into_iter()
        .map(|l| match operation_model::Report::decode(&l.text) {
            // The tests read progress as it was once written: `progress {json}`.
            operation_model::Report::Progress(p) => {
                format!("progress {}", serde_json::to_string(&p).unwrap())
            }
            report => report.text(),
        })
        .collect();
    s.west.app_destroy(&name).await.unwrap();
    (state, log)
}

async fn checksums(c: &Connection, a: &str) -> Vec<String> {
    let mut out = vec![];
    for v in ["boot", "data"] {
        out.push(c.vol_checksum(&vref(a, v)).await.unwrap().digest);
    }
    out
}

/// From "copied N bytes in T s (W bytes on the wire); …".
fn wire_bytes(log: &[String]) -> u64 {
    let line = log
        .iter()
        .find(|l| l.starts_with("copied ") && l.contains(" on the wire"))
        .expect("the copy's summary line");
    let (_, rest) = line.split_once(" s (").unwrap();
    rest.split(' ').next().unwrap().parse().unwrap()
}

fn last_progress(log: &[String]) -> serde_json::Value {
    let line = log
        .iter()
        .rev()
        .find(|l| l.starts_with("progress "))
        .expect("progress lines");
    serde_json::from_str(&line["progress ".len()..]).unwrap()
}

#[tokio::test]
async fn migrate_copies_verifies_and_starts_the_target_and_snapshot_restarts_the_source() {
    let s = setup().await;
    let source_sums = checksums(&s.east, "shop").await;
    let sent_before = |grid: &str| s.sim.grid(grid).unwrap().controller.recent_commands().len();
    let before = [sent_before("east"), sent_before("west")];

    let (state, log) = run_helper(&s, &job(Action::Migrate, "shop2")).await;
    assert_eq!(state, AppState::Stopped, "the helper exits 0: {log:#?}");
    // Verified from the digests west gave for what it stored: neither
    // volume is read again for a whole-volume checksum.
    for (grid, before) in ["east", "west"].into_iter().zip(before) {
        let sent = s.sim.grid(grid).unwrap().controller.recent_commands();
        assert!(
            !sent[before..].iter().any(|c| c.starts_with("vol checksum")),
            "{grid}: {sent:#?}"
        );
    }
    assert!(
        log.iter()
            .any(|l| l.starts_with("verified volume data: all 64 block digests")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("target app is running (started in ")
                && l.ends_with("migration copy complete")),
        "{log:#?}"
    );
    let target = s.west.app_info(&app("shop2")).await.unwrap();
    assert_eq!(target.state, AppState::Running);
    assert_eq!(target.properties["tier"], "web", "the descriptor travels");
    assert_eq!(checksums(&s.west, "shop2").await, source_sums);
    assert_eq!(
        s.east.app_info(&app("shop")).await.unwrap().state,
        AppState::Stopped,
        "the source stays stopped; only the console destroys it"
    );
    let p = last_progress(&log);
    assert_eq!(p["done"], p["total"]);
    assert_eq!(p["total"], (68u64 << 20));
    // Zero blocks are never sent: 4 MiB boot + 12 MiB of data.
    assert_eq!(p["copied"], (16u64 << 20), "{p}");
    // west pulled from east itself; data's pattern went as zstd, boot's
    // noise as it is.
    assert!(
        log.iter()
            .any(|l| l.starts_with("copy method: west pulls from east")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(
            |l| l.starts_with("volume data: a 256 KiB sample compresses to")
                && l.ends_with("zstd on the wire")
        ),
        "{log:#?}"
    );
    assert!(
        log.iter().any(
            |l| l.starts_with("volume boot: a 256 KiB sample compresses to")
                && l.ends_with("sent as it is")
        ),
        "{log:#?}"
    );
    let wire = wire_bytes(&log);
    assert!(
        (4 << 20..5 << 20).contains(&wire),
        "4 MiB of noise plus 12 MiB of pattern crossed as {wire} bytes"
    );

    s.east.app_start(&app("shop")).await.unwrap();
    let (state, log) = run_helper(&s, &job(Action::Snapshot, "shop3")).await;
    assert_eq!(state, AppState::Stopped, "{log:#?}");
    assert_eq!(
        s.east.app_info(&app("shop")).await.unwrap().state,
        AppState::Running,
        "snapshot restarts the source"
    );
    let copy = s.west.app_info(&app("shop3")).await.unwrap();
    assert_eq!(
        copy.state,
        AppState::Stopped,
        "the snapshot copy stays stopped"
    );
    assert_eq!(checksums(&s.west, "shop3").await, source_sums);
    s.sim.stop().await;
}

#[tokio::test]
async fn a_copy_cut_off_mid_volume_fails_restarts_the_source_and_a_rerun_resumes() {
    let s = setup().await;
    let source_sums = checksums(&s.east, "shop").await;
    // The source's connection drops after 2 MiB of a volume read.
    s.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.drop_after_bytes = Some(2 << 20));
    let (state, log) = run_helper(&s, &job(Action::Migrate, "shop2")).await;
    assert_eq!(state, AppState::Failed, "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("failed: ")), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("restarted the source app east/shop")),
        "{log:#?}"
    );
    assert_eq!(
        s.east.app_info(&app("shop")).await.unwrap().state,
        AppState::Running
    );

    s.sim
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    let (state, log) = run_helper(&s, &job(Action::Migrate, "shop2")).await;
    assert_eq!(state, AppState::Stopped, "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l == "resuming into the existing target shop2"),
        "{log:#?}"
    );
    let p = last_progress(&log);
    assert!(
        p["copied"].as_u64().unwrap() < (16u64 << 20),
        "blocks already copied are not copied again: {p}"
    );
    assert_eq!(checksums(&s.west, "shop2").await, source_sums);
    s.sim.stop().await;
}

#[tokio::test]
async fn a_rate_limited_copy_never_reports_more_than_the_limit() {
    let s = setup().await;
    let limit = 8u64 << 20;
    let mut j = job(Action::Snapshot, "slow");
    j.rate_limit = limit;
    let started = std::time::Instant::now();
    let (state, log) = run_helper(&s, &j).await;
    let took = started.elapsed();
    assert_eq!(state, AppState::Stopped, "{log:#?}");
    // What the limit is for, measured from outside the helper: 16 MiB at
    // 8 MiB/s take 2 s, less the last range the pace has not yet waited
    // for (a quarter second's worth).
    assert!(
        took >= Duration::from_millis(1750),
        "16 MiB copied in {took:?} under a limit of 8 MiB/s"
    );
    let rates: Vec<u64> = log
        .iter()
        .filter_map(|l| l.strip_prefix("progress "))
        .map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap())
        .filter(|p| p["copied"].as_u64().unwrap() > 0)
        .map(|p| p["rate_bytes_per_sec"].as_u64().unwrap())
        .collect();
    assert!(rates.len() >= 3, "progress keeps coming: {log:#?}");
    assert!(
        rates.iter().all(|&r| r <= limit + limit / 50),
        "rates {rates:?} exceed {limit}"
    );
    let p = last_progress(&log);
    assert_eq!(p["copied"], (16u64 << 20), "{p}");
    s.sim.stop().await;
}

/// The checksum of `target`'s volume on west.
async fn stored(s: &Setup, target: &str) -> String {
    s.west
        .vol_checksum(&vref(target, "volume"))
        .await
        .unwrap()
        .digest
}

/// `volume`'s size: odd, so the last block is short.
const ODD: u64 = (24 << 20) + 4097;

/// An app `odd` on east: runs of 3 non-zero blocks with a zero block
/// between (7 ranges, the last the short block at the end), stopped.
async fn odd_app(s: &Setup) -> Vec<u8> {
    let odd = app("odd");
    s.east
        .app_create(
            &odd,
            &Descriptor {
                volumes: vec![spec("volume", ODD)],
                ..Descriptor::default()
            },
        )
        .await
        .unwrap();
    let mut bytes = noise(usize::try_from(ODD).unwrap(), 11);
    for b in (3..24).step_by(4) {
        bytes[b << 20..(b + 1) << 20].fill(0);
    }
    s.east
        .vol_write(&vref("odd", "volume"), 0, &mut &bytes[..])
        .await
        .unwrap();
    bytes
}

fn odd_job(target: &str, transfer: helper::env::TransferChoice) -> helper::Job {
    let mut j = job(Action::Snapshot, target);
    j.source_app = app("odd");
    j.transfer = transfer;
    j
}

#[tokio::test]
async fn ranges_in_flight_at_once_cut_off_by_a_dropped_connection_resume_and_end_byte_exact() {
    use helper::env::TransferChoice;
    let s = setup().await;
    let bytes = odd_app(&s).await;
    let want = blake3::hash(&bytes).to_hex().to_string();
    let east = &s.sim.grid("east").unwrap().controller;
    // Pulled by west, then relayed by the helper: both paths.
    for (target, transfer, method) in [
        (
            "pulled",
            TransferChoice::Auto,
            "copy method: west pulls from east",
        ),
        (
            "relayed",
            TransferChoice::Relay,
            "copy method: relayed through the helper",
        ),
    ] {
        // Every 3 MiB range is cut after 2 MiB, with 4 of them in flight.
        east.faults.update(|f| f.drop_after_bytes = Some(2 << 20));
        let (state, log) = run_helper(&s, &odd_job(target, transfer)).await;
        assert_eq!(state, AppState::Failed, "{log:#?}");
        assert!(log.iter().any(|l| l.starts_with(method)), "{log:#?}");
        assert!(
            log.iter()
                .any(|l| l
                    .starts_with("volume volume: 25169921 bytes, 18878465 to copy in 7 range(s)")),
            "{log:#?}"
        );
        east.faults.update(|f| *f = Default::default());
        let (state, log) = run_helper(&s, &odd_job(target, transfer)).await;
        assert_eq!(state, AppState::Stopped, "{log:#?}");
        assert!(
            log.iter()
                .any(|l| l == &format!("resuming into the existing target {target}")),
            "{log:#?}"
        );
        let p = last_progress(&log);
        assert_eq!(p["done"], ODD, "{p}");
        assert!(
            p["copied"].as_u64().unwrap() < 18878465,
            "what the cut ranges stored is not copied again: {p}"
        );
        let got = stored(&s, target).await;
        assert_eq!(got, want, "{target}: byte-exact");
    }
    s.sim.stop().await;
}

#[tokio::test]
async fn a_repeated_snapshot_into_the_same_target_moves_only_the_changed_blocks() {
    let s = setup().await;
    let mut bytes = odd_app(&s).await;
    let (state, log) = run_helper(&s, &odd_job("again", Default::default())).await;
    assert_eq!(state, AppState::Stopped, "{log:#?}");
    assert_eq!(last_progress(&log)["copied"], 18878465u64);

    // Two blocks change (one of them was zero), the short last block too.
    s.east.app_stop(&app("odd"), Some(10)).await.unwrap();
    for (offset, len) in [
        (1u64 << 20, 1usize << 20),
        (3 << 20, 1 << 20),
        (24 << 20, 4097),
    ] {
        let fresh = noise(len, offset + 5);
        bytes[usize::try_from(offset).unwrap()..][..len].copy_from_slice(&fresh);
        s.east
            .vol_write(&vref("odd", "volume"), offset, &mut &fresh[..])
            .await
            .unwrap();
    }
    let (state, log) = run_helper(&s, &odd_job("again", Default::default())).await;
    assert_eq!(state, AppState::Stopped, "{log:#?}");
    let p = last_progress(&log);
    assert_eq!(
        p["copied"],
        (2u64 << 20) + 4097,
        "only the changed blocks move: {p}"
    );
    assert!(
        log.iter().any(|l| l.contains("found by xxh3")),
        "an existing target is compared by XXH3: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "volume volume: 3 of 25 blocks changed (12.0 %); 2.0 MiB copied"),
        "{log:#?}"
    );
    assert!(
        log.iter().any(
            |l| l.starts_with("verified volume volume: all 25 block digests")
                && l.contains("(3 moved, checked by BLAKE3)")
        ),
        "{log:#?}"
    );
    let got = stored(&s, "again").await;
    assert_eq!(got, blake3::hash(&bytes).to_hex().to_string());
    s.sim.stop().await;
}

#[tokio::test]
async fn older_controllers_get_the_same_byte_exact_copy_by_older_means() {
    let s = setup().await;
    let bytes = odd_app(&s).await;
    let want = blake3::hash(&bytes).to_hex().to_string();
    let west = &s.sim.grid("west").unwrap().controller;
    for (dialect, target, means) in [
        (
            2,
            "two",
            "verified by BLAKE3 of every copied block as the target stored it",
        ),
        (1, "one", "verified by whole-volume BLAKE3 checksums"),
    ] {
        west.faults.update(|f| f.dialect = Some(dialect));
        let (state, log) = run_helper(&s, &odd_job(target, Default::default())).await;
        assert_eq!(state, AppState::Stopped, "{log:#?}");
        let method = log
            .iter()
            .find(|l| l.starts_with("copy method: "))
            .expect("the method is logged");
        assert!(
            method.starts_with("copy method: relayed through the helper")
                && method.contains(means)
                && method.ends_with("compression unavailable (dialect < 3)"),
            "dialect {dialect}: {method}"
        );
        west.faults.update(|f| *f = Default::default());
        let got = stored(&s, target).await;
        assert_eq!(got, want, "dialect {dialect}: byte-exact");
    }
    s.sim.stop().await;
}
