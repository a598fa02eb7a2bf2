//! The controller dialect end to end: the grid client (russh) against
//! gridsim's SSH servers on loopback, through real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use grid::dialect::{
    AppState, Compression, Descriptor, ErrorCode, HashAlgorithm, HowStopped, VolRef, VolumeSpec,
};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{
    AppName, ClientConfig, Connection, Endpoint, GridError, GridName, TemplateName, VolumeName,
    keys,
};
use gridsim::{RunningSim, SimConfig, SimPaths};
use std::path::Path;
use std::time::Duration;

struct Harness {
    _dir: tempfile::TempDir,
    sim: Option<RunningSim>,
    config: ClientConfig,
    endpoints: Vec<Endpoint>,
}

async fn start_sim(dir: &Path) -> (RunningSim, ClientConfig, Vec<Endpoint>) {
    let sim = gridsim::start(dir).await.unwrap();
    let console = SimPaths::new(dir).console_dir();
    let key = keys::load(&console.join("id_ed25519")).unwrap();
    let known = KnownHosts::load(&console.join("known_hosts")).unwrap();
    let inventory = Inventory::load(&console.join("grids.toml")).unwrap();
    let endpoints = inventory.grids.iter().map(Endpoint::from).collect();
    let mut config = ClientConfig::new(key, known);
    config.command_timeout = Duration::from_secs(30);
    config.idle_timeout = Duration::from_secs(10);
    (sim, config, endpoints)
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let helper = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "echo \"helper for $SOURCE on $GRIDSIM_GRID\"; echo oops >&2; sleep 0.3".to_owned(),
        ];
        gridsim::init(dir.path(), &["east", "west"], 0, helper).unwrap();
        let path = SimPaths::new(dir.path()).config();
        let mut config = SimConfig::load(&path).unwrap();
        config.start_delay_ms = 200;
        config.stop_delay_ms = 100;
        config.capacity_bytes = 4 << 30;
        config.save(&path).unwrap();
        let (sim, config, endpoints) = start_sim(dir.path()).await;
        Harness {
            _dir: dir,
            sim: Some(sim),
            config,
            endpoints,
        }
    }

    fn sim(&self) -> &RunningSim {
        self.sim.as_ref().unwrap()
    }

    fn endpoint(&self, grid: &str) -> Endpoint {
        self.endpoints
            .iter()
            .find(|e| e.grid.as_str() == grid)
            .unwrap()
            .clone()
    }

    async fn connect(&self, grid: &str) -> Connection {
        Connection::open(&self.endpoint(grid), &self.config)
            .await
            .unwrap()
    }

    async fn restart(&mut self) {
        self.sim.take().unwrap().stop().await;
        let (sim, config, endpoints) = start_sim(self._dir.path()).await;
        self.sim = Some(sim);
        self.config = config;
        self.endpoints = endpoints;
    }
}

fn app(s: &str) -> AppName {
    AppName::new(s).unwrap()
}

fn vol(a: &str, v: &str) -> VolRef {
    VolRef::new(app(a), VolumeName::new(v).unwrap())
}

fn descriptor(volumes: &[(&str, u64)]) -> Descriptor {
    Descriptor {
        template: None,
        properties: [("role".to_owned(), "web shop".to_owned())].into(),
        volumes: volumes
            .iter()
            .map(|(n, s)| VolumeSpec {
                name: VolumeName::new(*n).unwrap(),
                size: *s,
            })
            .collect(),
        machine: None,
    }
}

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn code(e: &GridError) -> Option<ErrorCode> {
    e.refusal().map(|r| r.code)
}

#[tokio::test]
async fn every_dialect_command_round_trips() {
    let h = Harness::new().await;
    let east = h.connect("east").await;

    let info = east.grid_info().await.unwrap();
    assert_eq!(info.name.as_str(), "east");
    assert_eq!(info.dialect, 4);
    assert_eq!(info.free_bytes, 4 << 30);

    let templates = east.template_list().await.unwrap();
    assert!(templates.iter().any(|t| t.name.as_str() == "MigHelper"));

    let created = east
        .app_create(
            &app("shop"),
            &descriptor(&[("boot", 1 << 20), ("data", 8 << 20)]),
        )
        .await
        .unwrap();
    assert_eq!(created.state, AppState::Stopped);
    assert_eq!(created.properties["role"], "web shop");
    assert_eq!(
        east.grid_info().await.unwrap().free_bytes,
        (4 << 30) - (9 << 20)
    );
    let again = east
        .app_create(&app("shop"), &descriptor(&[]))
        .await
        .unwrap_err();
    assert_eq!(code(&again), Some(ErrorCode::Exists));

    let list = east.app_list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name.as_str(), "shop");

    // Start and stop take time, and the commands wait for them.
    let started = std::time::Instant::now();
    assert_eq!(
        east.app_start(&app("shop")).await.unwrap().state,
        AppState::Running
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "start is not instant"
    );
    let refused = east.app_destroy(&app("shop")).await.unwrap_err();
    assert_eq!(code(&refused), Some(ErrorCode::BadState));
    assert!(
        refused.to_string().contains("stop it before destroying it"),
        "{refused}"
    );
    let refused = east
        .vol_write(&vol("shop", "boot"), 0, &mut &b"x"[..])
        .await
        .unwrap_err();
    assert_eq!(
        code(&refused),
        Some(ErrorCode::BadState),
        "no writes to a running app"
    );
    let stopped = east.app_stop(&app("shop"), Some(5)).await.unwrap();
    assert_eq!(stopped.info.state, AppState::Stopped);
    assert_eq!(stopped.stopped, Some(HowStopped::ByItself));
    assert_eq!(
        east.app_stop(&app("shop"), Some(5)).await.unwrap().stopped,
        Some(HowStopped::NotRunning),
        "a second stop finds it stopped"
    );

    let log = east.app_log(&app("shop"), None).await.unwrap();
    let texts: Vec<&str> = log.iter().map(|l| l.text.as_str()).collect();
    assert!(texts.contains(&"app shop is starting"), "{texts:?}");
    assert!(texts.contains(&"app shop is running"), "{texts:?}");
    assert!(texts.contains(&"app shop is stopped"), "{texts:?}");
    assert!(
        log.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "sequence numbers are consecutive"
    );
    let since = east.app_log(&app("shop"), Some(log[2].seq)).await.unwrap();
    assert_eq!(since.first().map(|l| l.seq), Some(log[2].seq + 1));

    // Ranged reads and writes, hashes and checksums.
    let data = pattern(1 << 20, 7);
    assert_eq!(
        east.vol_write(&vol("shop", "data"), 4 << 20, &mut &data[..])
            .await
            .unwrap(),
        1 << 20
    );
    let mut back = Vec::new();
    let n = east
        .vol_read(&vol("shop", "data"), 4 << 20, Some(1 << 20), &mut back)
        .await
        .unwrap();
    assert_eq!(n, 1 << 20);
    assert!(back == data);
    let hashes = east
        .vol_hash(&vol("shop", "data"), 1 << 20, 0, None)
        .await
        .unwrap();
    assert_eq!(hashes.hashes.len(), 8);
    assert_eq!(
        hashes.hashes.iter().filter(|h| h.is_none()).count(),
        7,
        "untouched blocks are all-zero"
    );
    assert_eq!(
        hashes.hashes[4].as_deref(),
        Some(blake3::hash(&data).to_hex().as_str())
    );
    // Dialect 2: a write answers with the digests of the blocks it stored,
    // the same as `vol hash` gives for them afterwards (zero blocks: null).
    let mut two = pattern(1 << 20, 9);
    two.extend(vec![0u8; 1 << 20]);
    let receipt = east
        .vol_write_hashed(
            &vol("shop", "data"),
            6 << 20,
            1 << 20,
            Compression::None,
            &mut &two[..],
        )
        .await
        .unwrap();
    assert_eq!(receipt.written, 2 << 20);
    let after = east
        .vol_hash(&vol("shop", "data"), 1 << 20, 6 << 20, Some(2 << 20))
        .await
        .unwrap();
    assert_eq!(receipt.hashes, after.hashes);
    assert_eq!(receipt.hashes[1], None);
    let misaligned = east
        .vol_write_hashed(
            &vol("shop", "data"),
            4096,
            1 << 20,
            Compression::None,
            &mut &two[..4096],
        )
        .await
        .unwrap_err();
    assert!(
        misaligned
            .to_string()
            .contains("not a multiple of --hash-blocks"),
        "{misaligned}"
    );
    east.vol_write(&vol("shop", "data"), 6 << 20, &mut &vec![0u8; 2 << 20][..])
        .await
        .unwrap();
    let sum = east.vol_checksum(&vol("shop", "data")).await.unwrap();
    let mut whole = vec![0u8; 8 << 20];
    whole[4 << 20..5 << 20].copy_from_slice(&data);
    assert_eq!(sum.digest, blake3::hash(&whole).to_hex().to_string());
    let past = east
        .vol_write(&vol("shop", "boot"), 1 << 20, &mut &b"x"[..])
        .await
        .unwrap_err();
    assert_eq!(code(&past), Some(ErrorCode::BadRequest));
    let missing = east.vol_checksum(&vol("shop", "nope")).await.unwrap_err();
    assert_eq!(code(&missing), Some(ErrorCode::NotFound));

    east.app_destroy(&app("shop")).await.unwrap();
    assert!(east.app_list().await.unwrap().is_empty());
    let gone = east.app_info(&app("shop")).await.unwrap_err();
    assert_eq!(code(&gone), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn dialect_3_hashes_cheaply_compresses_on_the_wire_and_pulls_between_grids() {
    let mut h = Harness::new().await;
    let (east, west) = (h.connect("east").await, h.connect("west").await);
    assert_eq!(east.grid_info().await.unwrap().dialect, 4);
    // An odd size: the last block is short, and ranges straddle the end.
    let size = (5 << 20) + 12345;
    east.app_create(&app("shop"), &descriptor(&[("data", size)]))
        .await
        .unwrap();
    west.app_create(&app("copy"), &descriptor(&[("data", size)]))
        .await
        .unwrap();
    let mut data = pattern(usize::try_from(size).unwrap(), 3);
    // A compressible stretch and a zero block among random bytes.
    data[1 << 20..2 << 20].fill(b'a');
    data[3 << 20..4 << 20].fill(0);
    east.vol_write(&vol("shop", "data"), 0, &mut &data[..])
        .await
        .unwrap();

    // XXH3-128: one 32-hex digest per block, null for zeros, equal on equal bytes.
    let cheap = east
        .vol_hash_with(&vol("shop", "data"), 1 << 20, 0, None, HashAlgorithm::Xxh3)
        .await
        .unwrap();
    assert_eq!(cheap.algorithm, HashAlgorithm::Xxh3);
    assert_eq!(cheap.hashes.len(), 6);
    assert_eq!(cheap.hashes[3], None);
    assert_eq!(
        cheap.hashes[0].as_deref(),
        Some(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&data[..1 << 20])).as_str())
    );

    // zstd on the wire: a compressed read is smaller and decodes to the bytes.
    let mut packed = Vec::new();
    let wire = east
        .vol_read_as(
            &vol("shop", "data"),
            1 << 20,
            Some(1 << 20),
            Compression::Zstd,
            &mut packed,
        )
        .await
        .unwrap();
    assert!(wire < 64 << 10, "1 MiB of 'a' crossed as {wire} bytes");
    assert!(zstd::decode_all(&packed[..]).unwrap() == data[1 << 20..2 << 20]);
    // ... and a compressed write stores the bytes it decodes to.
    let receipt = west
        .vol_write_hashed(
            &vol("copy", "data"),
            1 << 20,
            1 << 20,
            Compression::Zstd,
            &mut &packed[..],
        )
        .await
        .unwrap();
    assert_eq!(receipt.written, 1 << 20);
    assert_eq!(
        receipt.hashes,
        vec![Some(
            blake3::hash(&data[1 << 20..2 << 20]).to_hex().to_string()
        )]
    );

    // vol pull: west reads east itself, in ranges that end at the odd end.
    for (offset, length, compress) in [
        (0, 1 << 20, Compression::None),
        (2 << 20, 3 << 20, Compression::Zstd),
        (5 << 20, 12345, Compression::None),
    ] {
        let r = west
            .vol_pull(
                &vol("copy", "data"),
                &GridName::new("east").unwrap(),
                &vol("shop", "data"),
                offset,
                length,
                Some(1 << 20),
                compress,
            )
            .await
            .unwrap();
        assert_eq!(r.written, length);
        let want = east
            .vol_hash(&vol("shop", "data"), 1 << 20, offset, Some(length))
            .await
            .unwrap();
        assert_eq!(r.hashes, want.hashes, "digests of what west stored");
        if compress == Compression::Zstd {
            assert!(r.wire_bytes < length * 9 / 10, "{r:?}");
        } else {
            assert!(r.wire_bytes == length, "{r:?}");
        }
    }
    assert_eq!(
        west.vol_checksum(&vol("copy", "data"))
            .await
            .unwrap()
            .digest,
        blake3::hash(&data).to_hex().to_string(),
        "byte-exact"
    );
    let past = west
        .vol_pull(
            &vol("copy", "data"),
            &GridName::new("east").unwrap(),
            &vol("shop", "data"),
            5 << 20,
            12346,
            None,
            Compression::None,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&past), Some(ErrorCode::BadRequest), "{past}");
    let stranger = west
        .vol_pull(
            &vol("copy", "data"),
            &GridName::new("south").unwrap(),
            &vol("shop", "data"),
            0,
            1,
            None,
            Compression::None,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&stranger), Some(ErrorCode::NotFound), "{stranger}");
    assert!(stranger.to_string().contains("not among the grids"));

    // A grid that speaks dialect 2 says so and refuses what came later.
    west.call_line("sim", "sim fault dialect 2", None)
        .await
        .unwrap();
    assert_eq!(west.grid_info().await.unwrap().dialect, 2);
    let old = west
        .vol_hash_with(&vol("copy", "data"), 1 << 20, 0, None, HashAlgorithm::Xxh3)
        .await
        .unwrap_err();
    assert_eq!(code(&old), Some(ErrorCode::BadRequest), "{old}");
    assert!(old.to_string().contains("not in dialect v2"), "{old}");
    h.sim.take().unwrap().stop().await;
}

/// Per 1 MiB block: the digest of its bytes, `None` for zeros.
fn block_digests(data: &[u8], algorithm: HashAlgorithm) -> Vec<Option<String>> {
    data.chunks(1 << 20)
        .map(|b| {
            (!b.iter().all(|x| *x == 0)).then(|| match algorithm {
                HashAlgorithm::Blake3 => blake3::hash(b).to_hex().to_string(),
                HashAlgorithm::Xxh3 => format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b)),
            })
        })
        .collect()
}

#[tokio::test]
async fn remembered_block_digests_follow_every_write() {
    let mut h = Harness::new().await;
    let east = h.connect("east").await;
    let size = (8 << 20) + 100;
    east.app_create(&app("vm"), &descriptor(&[("disk", size)]))
        .await
        .unwrap();
    let disk = vol("vm", "disk");
    let mut data = pattern(usize::try_from(size).unwrap(), 5);
    data[2 << 20..3 << 20].fill(0);
    east.vol_write(&disk, 0, &mut &data[..]).await.unwrap();
    let hashes = |algorithm, offset, length| {
        let (east, disk) = (&east, &disk);
        async move {
            east.vol_hash_with(disk, 1 << 20, offset, length, algorithm)
                .await
                .unwrap()
                .hashes
        }
    };
    for round in 0..2 {
        for alg in [HashAlgorithm::Blake3, HashAlgorithm::Xxh3] {
            assert_eq!(
                hashes(alg, 0, None).await,
                block_digests(&data, alg),
                "{alg}, round {round}"
            );
        }
    }
    // A plain write of one block: the next hash sees it, and only it changed.
    let fresh = pattern(1 << 20, 9);
    data[4 << 20..5 << 20].copy_from_slice(&fresh);
    east.vol_write(&disk, 4 << 20, &mut &fresh[..])
        .await
        .unwrap();
    for alg in [HashAlgorithm::Xxh3, HashAlgorithm::Blake3] {
        assert_eq!(
            hashes(alg, 0, None).await,
            block_digests(&data, alg),
            "{alg}"
        );
    }
    // A hashed write to the end (the short last block) and a zeroed block.
    let mut tail = pattern((3 << 20) + 100, 11);
    tail[..1 << 20].fill(0);
    data[5 << 20..].copy_from_slice(&tail);
    east.vol_write_hashed(&disk, 5 << 20, 1 << 20, Compression::None, &mut &tail[..])
        .await
        .unwrap();
    for alg in [HashAlgorithm::Xxh3, HashAlgorithm::Blake3] {
        assert_eq!(
            hashes(alg, 0, None).await,
            block_digests(&data, alg),
            "{alg}"
        );
        assert_eq!(
            hashes(alg, 3 << 20, Some((5 << 20) + 100)).await,
            block_digests(&data[3 << 20..], alg),
            "{alg} from block 3"
        );
        // Not block-aligned at its end: hashed from the file, as it is.
        assert_eq!(
            hashes(alg, 1 << 20, Some(1 << 19)).await,
            block_digests(&data[1 << 20..(1 << 20) + (1 << 19)], alg)
        );
    }
    h.sim.take().unwrap().stop().await;
}

#[tokio::test]
async fn a_256_mib_volume_reads_back_with_the_same_checksum_and_survives_a_restart() {
    let mut h = Harness::new().await;
    let east = h.connect("east").await;
    let size = 256u64 << 20;
    east.app_create(&app("big"), &descriptor(&[("disk", size)]))
        .await
        .unwrap();
    let data = pattern(usize::try_from(size).unwrap(), 42);
    let written = east
        .vol_write(&vol("big", "disk"), 0, &mut &data[..])
        .await
        .unwrap();
    assert_eq!(written, size);
    let expected = blake3::hash(&data).to_hex().to_string();
    drop(data);

    let mut hasher = HashingSink(blake3::Hasher::new(), 0);
    let read = east
        .vol_read(&vol("big", "disk"), 0, None, &mut hasher)
        .await
        .unwrap();
    assert_eq!(read, size);
    assert_eq!(hasher.0.finalize().to_hex().to_string(), expected);
    assert_eq!(
        east.vol_checksum(&vol("big", "disk")).await.unwrap().digest,
        expected
    );

    drop(east);
    h.restart().await;
    let east = h.connect("east").await;
    assert_eq!(
        east.vol_checksum(&vol("big", "disk")).await.unwrap().digest,
        expected,
        "state persists"
    );
}

struct HashingSink(blake3::Hasher, u64);

impl tokio::io::AsyncWrite for HashingSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
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

#[tokio::test]
async fn a_mighelper_app_runs_its_process_with_the_properties_and_logs_its_output() {
    let h = Harness::new().await;
    let west = h.connect("west").await;
    let mut follower = west.app_log_follow(&app("nothing"), None).await.unwrap();
    let missing = follower.next().await.unwrap().unwrap_err();
    assert_eq!(code(&missing), Some(ErrorCode::NotFound));

    let helper = west
        .app_provision(
            &TemplateName::new("MigHelper").unwrap(),
            &app("MigHelper_shop"),
            vec![grid::dialect::Property::new("SOURCE", "east/shop").unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(helper.state, AppState::Running);
    let mut follower = west
        .app_log_follow(&app("MigHelper_shop"), None)
        .await
        .unwrap();
    let mut seen = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|t: &String| t.contains("is stopped")) {
        let line = tokio::time::timeout_at(deadline, follower.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(line.text);
    }
    assert!(
        seen.contains(&"helper for east/shop on west".to_owned()),
        "{seen:?}"
    );
    assert!(seen.contains(&"stderr: oops".to_owned()), "{seen:?}");
    assert!(
        seen.iter().any(|t| t.contains("exited with status 0")),
        "{seen:?}"
    );
    follower.close().await;
    west.app_destroy(&app("MigHelper_shop")).await.unwrap();
}

#[tokio::test]
async fn hostile_names_are_refused_by_the_client_and_by_gridsim() {
    let h = Harness::new().await;
    let east = h.connect("east").await;
    let long = "a".repeat(10_000);
    for bad in ["a;rm -rf /", "$(x)", "my app", long.as_str(), "café"] {
        assert!(
            AppName::new(bad).is_err(),
            "the client cannot even name {bad:?}"
        );
        let line = shell_words::join(["app", "info", bad, "--json"]);
        let err = east.call_line("app info", &line, None).await.unwrap_err();
        assert_eq!(code(&err), Some(ErrorCode::BadRequest), "{bad:?}: {err}");
    }
    let err = east
        .call_line("app create", "app create 'x y'", Some(b"{}"))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::BadRequest));
    assert!(
        east.app_list().await.unwrap().is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn unknown_and_changed_host_keys_are_refused() {
    let h = Harness::new().await;
    let endpoint = h.endpoint("east");
    let presented = grid::known_hosts::fingerprint(&h.sim().grid("east").unwrap().host_key);

    let mut unknown = h.config.clone();
    unknown.known_hosts = std::sync::Arc::new(KnownHosts::default());
    match Connection::open(&endpoint, &unknown).await {
        Err(GridError::UnknownHostKey {
            fingerprint, pin, ..
        }) => {
            assert_eq!(fingerprint, presented);
            assert!(
                pin.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", endpoint.port)),
                "{pin}"
            );
        }
        other => panic!("expected UnknownHostKey, got {:?}", other.err()),
    }

    let impostor = keys::generate();
    let pinned = grid::known_hosts::pin_line("127.0.0.1", endpoint.port, impostor.public_key());
    let mut changed = h.config.clone();
    changed.known_hosts =
        std::sync::Arc::new(KnownHosts::parse(Path::new("known_hosts"), &pinned).unwrap());
    match Connection::open(&endpoint, &changed).await {
        Err(e @ GridError::HostKeyMismatch { .. }) => {
            let GridError::HostKeyMismatch {
                expected,
                presented: got,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(
                expected,
                &grid::known_hosts::fingerprint(impostor.public_key())
            );
            assert_eq!(got, &presented);
            assert!(e.to_string().contains("HOST KEY MISMATCH"));
        }
        other => panic!("expected HostKeyMismatch, got {:?}", other.err()),
    }

    let mut stranger = h.config.clone();
    stranger.key = std::sync::Arc::new(keys::generate());
    assert!(matches!(
        Connection::open(&endpoint, &stranger).await,
        Err(GridError::AuthRejected { .. })
    ));
}

#[tokio::test]
async fn injected_faults_surface_as_typed_errors_not_hangs() {
    let h = Harness::new().await;
    let east = h.connect("east").await;
    east.app_create(&app("shop"), &descriptor(&[("data", 8 << 20)]))
        .await
        .unwrap();
    east.vol_write(&vol("shop", "data"), 0, &mut &pattern(8 << 20, 3)[..])
        .await
        .unwrap();

    east.call_line("sim", "sim fault fail app start --code bad_state", None)
        .await
        .unwrap();
    let err = east.app_start(&app("shop")).await.unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::BadState));
    assert!(
        err.to_string().contains("injected failure of `app start`"),
        "{err}"
    );

    east.call_line("sim", "sim fault delay 300 app info", None)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    east.app_info(&app("shop")).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));

    east.call_line("sim", "sim fault drop-after 1048576", None)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let mut sink = Vec::new();
    let err = east
        .vol_read(&vol("shop", "data"), 0, None, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(err, GridError::Disconnected { .. }), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a dropped connection is noticed promptly"
    );
    assert!(sink.len() <= 1 << 20);
    assert!(east.is_closed());

    h.sim()
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| *f = Default::default());
    h.sim()
        .grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.refuse_connections = true);
    let refused = Connection::open(&h.endpoint("east"), &h.config)
        .await
        .err()
        .unwrap();
    assert!(matches!(refused, GridError::Connect { .. }), "{refused:?}");

    // The other grid is untouched by east's faults.
    let west = h.connect("west").await;
    assert_eq!(
        west.grid_info().await.unwrap().name,
        GridName::new("west").unwrap()
    );
}

#[tokio::test]
async fn one_connection_carries_many_concurrent_commands() {
    let h = Harness::new().await;
    let grids = grid::Grids::new(h.config.clone(), h.endpoints.clone());
    let east = GridName::new("east").unwrap();
    let a = grids.connection(&east).await.unwrap().unwrap();
    let b = grids.connection(&east).await.unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b), "the connection is reused");
    let calls = (0..16).map(|_| {
        let c = a.clone();
        async move { c.grid_info().await }
    });
    for r in futures_join(calls).await {
        assert_eq!(r.unwrap().name, east);
    }
    assert!(
        grids
            .connection(&GridName::new("mars").unwrap())
            .await
            .is_none()
    );
}

async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = vec![];
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn init_writes_what_a_console_needs_and_keeps_its_keys_when_run_again() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east", "west"], 2301, vec![]).unwrap();
    let console = SimPaths::new(dir.path()).console_dir();
    let key_file = console.join("id_ed25519");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let inventory = Inventory::load(&console.join("grids.toml")).unwrap();
    let ports: Vec<u16> = inventory.grids.iter().map(|g| g.host_port().1).collect();
    assert_eq!(ports, [2301, 2302]);
    let known = std::fs::read_to_string(console.join("known_hosts")).unwrap();
    assert!(
        known.contains("[127.0.0.1]:2301 ssh-ed25519 ")
            && known.contains("[127.0.0.1]:2302 ssh-ed25519 ")
    );
    let before = keys::load(&key_file).unwrap().public_key().clone();
    gridsim::init(dir.path(), &["east", "west"], 2301, vec![]).unwrap();
    assert_eq!(keys::load(&key_file).unwrap().public_key(), &before);
}

/// A controller that accepts connections and never answers holds only its
/// own grid: while a connect to it waits, commands to another grid go on
/// at their usual pace.
#[tokio::test]
async fn a_grid_that_never_answers_does_not_delay_another_grid() {
    let h = Harness::new().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accept and hold the sockets without a word (no SSH banner).
    let holder = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let east = h
        .endpoints
        .iter()
        .find(|e| e.grid.as_str() == "east")
        .unwrap()
        .clone();
    let mute = Endpoint {
        grid: GridName::new("mute").unwrap(),
        host: "127.0.0.1".into(),
        port,
        user: east.user.clone(),
    };
    let mut config = h.config.clone();
    config.connect_timeout = Duration::from_secs(20);
    let grids = std::sync::Arc::new(grid::Grids::new(config, [east.clone(), mute.clone()]));

    // Connecting to the mute grid hangs (until its 20 s timeout) …
    let waiting = {
        let grids = grids.clone();
        tokio::spawn(async move { grids.connection(&mute.grid).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    // … while east connects and answers several commands meanwhile.
    let started = std::time::Instant::now();
    let conn = tokio::time::timeout(Duration::from_secs(5), grids.connection(&east.grid))
        .await
        .expect("east is not held up by the mute grid")
        .unwrap()
        .unwrap();
    for _ in 0..5 {
        conn.grid_info().await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "east answered in {:?}",
        started.elapsed()
    );
    assert!(
        !waiting.is_finished(),
        "the mute grid still has not answered"
    );
    waiting.abort();
    holder.abort();
}

async fn log_texts(c: &Connection, a: &str) -> Vec<String> {
    let lines = c.app_log(&app(a), None).await.unwrap();
    lines.into_iter().map(|l| l.text).collect()
}

/// An app's process sees its `config` volume as a directory; what it writes
/// is in the volume's bytes once the app has stopped, a copy of those bytes
/// on another grid brings the files (and their modes) back, and a volume
/// too small for the files is a clear failure at stop that loses nothing.
#[tokio::test]
async fn a_mounted_volume_carries_its_files_to_another_grid() {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east", "west"], 0, vec!["true".into()]).unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 50;
    config.stop_delay_ms = 50;
    let script = r#"cd "$GRIDSIM_VOL_config" || exit 3
        if [ -f state ]; then echo "found $(cat state) mode $(stat -c %a state) on $GRIDSIM_GRID"; fi
        if [ -n "$WRITE" ]; then head -c "$WRITE" /dev/zero | tr '\0' x > state; chmod 600 state; fi
        trap 'exit 0' TERM; while :; do sleep 0.05; done"#;
    config.templates.push(gridsim::config::TemplateConfig {
        name: TemplateName::new("Mounted").unwrap(),
        description: String::new(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        mounts: vec![VolumeName::new("config").unwrap()],
        disks: vec![],
        restart_on_crash: 0,
    });
    config.save(&path).unwrap();
    let (sim, client, endpoints) = start_sim(dir.path()).await;
    let open = |g: &str| {
        let e = endpoints
            .iter()
            .find(|e| e.grid.as_str() == g)
            .unwrap()
            .clone();
        let client = client.clone();
        async move { Connection::open(&e, &client).await.unwrap() }
    };
    let (east, west) = (open("east").await, open("west").await);
    let mut d = descriptor(&[("config", 1 << 20)]);
    d.template = Some(TemplateName::new("Mounted").unwrap());
    d.properties.insert("WRITE".into(), "5".into());
    east.app_create(&app("shop"), &d).await.unwrap();
    east.app_start(&app("shop")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    east.app_stop(&app("shop"), Some(5)).await.unwrap();
    assert_eq!(
        east.app_info(&app("shop")).await.unwrap().state,
        AppState::Stopped
    );

    // The volume's bytes are the truth: copy them to west and start there.
    let mut image = Vec::new();
    east.vol_read(&vol("shop", "config"), 0, None, &mut image)
        .await
        .unwrap();
    assert_eq!(image.len(), 1 << 20);
    d.properties.remove("WRITE");
    west.app_create(&app("shop"), &d).await.unwrap();
    west.vol_write(&vol("shop", "config"), 0, &mut &image[..])
        .await
        .unwrap();
    west.app_start(&app("shop")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = log_texts(&west, "shop").await;
    assert!(
        log.iter().any(|l| l == "found xxxxx mode 600 on west"),
        "{log:#?}"
    );
    west.app_stop(&app("shop"), Some(5)).await.unwrap();
    assert_eq!(
        west.app_info(&app("shop")).await.unwrap().state,
        AppState::Stopped
    );

    // Too many files for the volume: failed at stop, with the reason.
    let mut small = descriptor(&[("config", 16 << 10)]);
    small.template = Some(TemplateName::new("Mounted").unwrap());
    small.properties.insert("WRITE".into(), "65536".into());
    east.app_create(&app("tiny"), &small).await.unwrap();
    east.app_start(&app("tiny")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    east.app_stop(&app("tiny"), Some(5)).await.unwrap();
    assert_eq!(
        east.app_info(&app("tiny")).await.unwrap().state,
        AppState::Failed
    );
    let log = log_texts(&east, "tiny").await;
    assert!(
        log.iter().any(|l| l.contains("volume config is full")),
        "{log:#?}"
    );
    sim.stop().await;
}

/// A process that ignores SIGTERM is killed at the stop timeout, and the
/// reply says it was forced (the helper tells the operator).
#[tokio::test]
async fn a_process_that_ignores_its_stop_is_killed_and_the_reply_says_forced() {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east"], 0, vec!["true".into()]).unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 50;
    config.stop_delay_ms = 50;
    config.templates.push(gridsim::config::TemplateConfig {
        name: TemplateName::new("Stubborn").unwrap(),
        description: String::new(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "trap '' TERM; while :; do sleep 0.05; done".into(),
        ],
        env: Default::default(),
        mounts: vec![],
        disks: vec![],
        restart_on_crash: 0,
    });
    config.save(&path).unwrap();
    let (_sim, client, endpoints) = start_sim(dir.path()).await;
    let east = Connection::open(&endpoints[0], &client).await.unwrap();
    let mut d = descriptor(&[]);
    d.template = Some(TemplateName::new("Stubborn").unwrap());
    east.app_create(&app("svc"), &d).await.unwrap();
    east.app_start(&app("svc")).await.unwrap();
    // A client whose commands time out after 1 s still waits for a stop
    // given 3 s: the reply comes once the app is forced off.
    let mut quick = client.clone();
    quick.command_timeout = Duration::from_secs(1);
    quick.idle_timeout = Duration::from_secs(1);
    let east = Connection::open(&endpoints[0], &quick).await.unwrap();
    let stopped = east.app_stop(&app("svc"), Some(3)).await.unwrap();
    assert_eq!(stopped.stopped, Some(HowStopped::Forced));
    assert_ne!(stopped.info.state, AppState::Running);
    let log = log_texts(&east, "svc").await;
    assert!(
        log.iter()
            .any(|l| l.contains("did not stop within 3 s; killing it")),
        "{log:#?}"
    );
}

/// The grid restarts a process that dies of a signal nobody sent it through
/// a stop, as often as its template allows; a process that exits with a
/// status decided to end and is `failed`; a stop is never undone.
#[tokio::test]
async fn a_crashed_process_is_restarted_within_its_template_limit() {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east"], 0, vec!["true".into()]).unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 50;
    config.stop_delay_ms = 50;
    let script = r#"echo "pid $$"; [ -n "$EXIT" ] && exit "$EXIT"; trap 'exit 0' TERM; while :; do sleep 0.05; done"#;
    config.templates.push(gridsim::config::TemplateConfig {
        name: TemplateName::new("Crashy").unwrap(),
        description: String::new(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        mounts: vec![],
        disks: vec![],
        restart_on_crash: 2,
    });
    config.save(&path).unwrap();
    let (sim, client, endpoints) = start_sim(dir.path()).await;
    let east = Connection::open(&endpoints[0], &client).await.unwrap();
    let mut d = descriptor(&[]);
    d.template = Some(TemplateName::new("Crashy").unwrap());
    east.app_create(&app("svc"), &d).await.unwrap();
    east.app_start(&app("svc")).await.unwrap();

    settle(&east, 1).await;
    for restart in 1..=2 {
        let pid = pids(&east).await.last().unwrap().clone();
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        settle(&east, restart + 1).await;
        let log = log_texts(&east, "svc").await;
        assert!(
            log.iter().any(|l| l.contains(&format!(
                "killed by signal 9; the grid restarts it (restart {restart} of 2)"
            ))),
            "{log:#?}"
        );
    }
    // The limit is reached: the next crash leaves the app failed.
    let pid = pids(&east).await.last().unwrap().clone();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    for _ in 0..100 {
        if state(&east).await == AppState::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state(&east).await, AppState::Failed);
    assert_eq!(pids(&east).await.len(), 3);

    // A start counts afresh; a stop is a stop, not a crash.
    east.app_start(&app("svc")).await.unwrap();
    settle(&east, 4).await;
    assert_eq!(
        east.app_stop(&app("svc"), Some(5)).await.unwrap().stopped,
        Some(HowStopped::ByItself),
        "it exits on SIGTERM"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&east).await, AppState::Stopped);
    assert_eq!(pids(&east).await.len(), 4);

    // An exit with a status is the process's decision: failed, no restart.
    let mut d = descriptor(&[]);
    d.template = Some(TemplateName::new("Crashy").unwrap());
    d.properties.insert("EXIT".into(), "1".into());
    east.app_create(&app("quits"), &d).await.unwrap();
    let _ = east.app_start(&app("quits")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        east.app_info(&app("quits")).await.unwrap().state,
        AppState::Failed
    );
    let starts = log_texts(&east, "quits")
        .await
        .iter()
        .filter(|l| l.starts_with("pid "))
        .count();
    assert_eq!(starts, 1, "never restarted");
    sim.stop().await;
}

/// The pids the test app `svc` reported, one per process it ran.
async fn pids(c: &Connection) -> Vec<String> {
    log_texts(c, "svc")
        .await
        .iter()
        .filter_map(|l| l.strip_prefix("pid ").map(str::to_owned))
        .collect()
}

async fn state(c: &Connection) -> AppState {
    c.app_info(&app("svc")).await.unwrap().state
}

/// Waits until `svc` runs its `n`th process.
async fn settle(c: &Connection, n: usize) {
    for _ in 0..100 {
        if pids(c).await.len() >= n && state(c).await == AppState::Running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no process {n}: {:#?}", log_texts(c, "svc").await);
}

/// Dialect 4: a running app's volumes are read and hashed while its
/// process writes them as disks through the grid, and every block it
/// writes shows in the next hash; its writes are in the volume once the
/// app is stopped. A dialect 3 grid reads only a stopped app's volumes.
#[tokio::test]
async fn dialect_4_reads_a_running_app_whose_disk_writes_the_grid_tracks() {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east"], 0, vec!["true".into()]).unwrap();
    let path = SimPaths::new(dir.path()).config();
    let mut config = SimConfig::load(&path).unwrap();
    config.start_delay_ms = 50;
    config.templates.push(gridsim::config::TemplateConfig {
        name: TemplateName::new("Disky").unwrap(),
        description: String::new(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "trap 'exit 0' TERM; while :; do sleep 0.05; done".into(),
        ],
        env: Default::default(),
        mounts: vec![],
        disks: vec![VolumeName::new("data").unwrap()],
        restart_on_crash: 0,
    });
    config.save(&path).unwrap();
    let (sim, client, endpoints) = start_sim(dir.path()).await;
    let east = Connection::open(&endpoints[0], &client).await.unwrap();
    let mut d = descriptor(&[("data", 8 << 20)]);
    d.template = Some(TemplateName::new("Disky").unwrap());
    east.app_create(&app("svc"), &d).await.unwrap();
    east.app_start(&app("svc")).await.unwrap();
    let data = vol("svc", "data");
    let hash = || async {
        east.vol_hash_with(&data, 1 << 20, 0, None, HashAlgorithm::Blake3)
            .await
            .unwrap()
            .hashes
    };
    assert_eq!(hash().await, vec![None; 8], "a new volume is zeros");

    // The process's writes reach the volume through the grid.
    let socket = dir.path().join("grids/east/disks/svc/data.sock");
    let mut disk = gridsim::disk::Disk::connect(&socket).await.unwrap();
    assert_eq!(disk.size(), 8 << 20);
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 | 1).collect();
    let at = (3 << 20) - 50_000;
    disk.write_at(at, &bytes).await.unwrap();
    let mut block2 = vec![0u8; 1 << 20];
    block2[(1 << 20) - 50_000..].copy_from_slice(&bytes[..50_000]);
    let mut block3 = vec![0u8; 1 << 20];
    block3[..50_000].copy_from_slice(&bytes[50_000..]);
    let h = hash().await;
    assert_eq!(
        h[2].as_deref(),
        Some(blake3::hash(&block2).to_hex().as_str()),
        "a write shows in the next hash of the running app"
    );
    assert_eq!(
        h[3].as_deref(),
        Some(blake3::hash(&block3).to_hex().as_str())
    );
    assert_eq!(h.iter().filter(|h| h.is_some()).count(), 2);
    // Written again: the remembered digests follow.
    disk.write_at(at, &vec![0u8; 100_000]).await.unwrap();
    assert_eq!(hash().await, vec![None; 8]);
    disk.write_at(7 << 20, &bytes).await.unwrap();
    let err = disk.write_at((8 << 20) - 10, &bytes).await.unwrap_err();
    assert!(
        err.to_string().contains("past the end of the disk"),
        "{err}"
    );

    // A dialect 3 grid refuses to read the running app.
    sim.grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.dialect = Some(3));
    let refused = east
        .vol_hash_with(&data, 1 << 20, 0, None, HashAlgorithm::Blake3)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("a dialect v3 controller reads only a stopped app's volumes"),
        "{refused}"
    );
    sim.grid("east")
        .unwrap()
        .controller
        .faults
        .update(|f| f.dialect = None);

    east.app_stop(&app("svc"), Some(5)).await.unwrap();
    let mut out = vec![];
    east.vol_read(&data, 7 << 20, Some(100_000), &mut out)
        .await
        .unwrap();
    assert_eq!(
        out, bytes,
        "the stopped app's volume holds what its process wrote"
    );
    sim.stop().await;
}
