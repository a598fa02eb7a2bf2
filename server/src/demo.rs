//! The embedded default: gridsim with three grids on loopback (east, west,
//! north), an app `shop` on east, and the console — either outside every
//! app (`migctl demo`), or, MIG's way, as the process of `shop` itself
//! (`migctl demo --self`), with its config directory on shop's `config`
//! volume so that it stops, moves and wakes up with the app.

use crate::auth::{accounts, password};
use crate::cli::{CliError, shutdown_signal};
use crate::config::{self, Overrides};
use crate::{Console, db};
use anyhow::Context;
use app::model::Role;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The template of an app whose process is this console: its config
/// directory is the app's `config` volume, where it runs comes from the grid.
pub const CONSOLE_TEMPLATE: &str = "Migctl";
/// Size of the console's config volume (database, logs, keys, lock).
const CONFIG_VOLUME: u64 = 64 << 20;
/// The template of the demo's `shop` (outside the console): its process is
/// `migctl shop`, writing to its disk `data`.
pub const SHOP_TEMPLATE: &str = "Shop";
/// The property that sets how fast shop writes, KiB per second.
const WRITE_KIB: &str = "SHOP_WRITE_KIB";
/// Where `--self` keeps the first run's admin password (the database that
/// knows it travels with the app).
const PASSWORD_FILE: &str = "admin-password";

/// Sets up and starts the demo grids; the helper (and, for `--self`, the
/// console inside `shop`) is this very binary, wherever it now lives.
async fn start_grids(dir: &Path) -> anyhow::Result<gridsim::RunningSim> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let sim_dir = dir.join("gridsim");
    let me = std::env::current_exe().context("cannot find the migctl binary")?;
    let me = me.display().to_string();
    gridsim::init(&sim_dir, &["east", "west", "north"], 0, vec![])?;
    let sim_config_file = gridsim::SimPaths::new(&sim_dir).config();
    let mut sim_config = gridsim::SimConfig::load(&sim_config_file)?;
    for t in sim_config
        .templates
        .iter_mut()
        .filter(|t| t.name.as_str() == "MigHelper")
    {
        t.command = vec![me.clone(), "helper".into()];
    }
    sim_config
        .templates
        .retain(|t| t.name.as_str() != CONSOLE_TEMPLATE && t.name.as_str() != SHOP_TEMPLATE);
    let data = grid::VolumeName::new("data")?;
    // The grid tells its process where it runs (AppLogic's /etc/applogic.sh):
    // the console takes its grid, app and config directory from that.
    let me_shop = me.clone();
    let script = r#"MIGCTL_CURRENT_GRID="$GRIDSIM_GRID" MIGCTL_CURRENT_APP="$GRIDSIM_APP" exec "$0" --config-dir "$GRIDSIM_VOL_config" serve"#;
    sim_config.templates.push(gridsim::config::TemplateConfig {
        name: grid::TemplateName::new(CONSOLE_TEMPLATE)?,
        description: "migctl running inside the app it moves".into(),
        command: vec!["sh".into(), "-c".into(), script.into(), me],
        env: [("NO_COLOR".to_owned(), "1".to_owned())].into(),
        mounts: vec![grid::VolumeName::new("config")?],
        // shop's data: the console writes to it as shop's process would.
        disks: vec![data.clone()],
        restart_on_crash: 0,
    });
    sim_config
        .templates
        .retain(|t| t.name.as_str() != crate::demo_group::MQ_TEMPLATE);
    sim_config
        .templates
        .push(crate::demo_group::template(&me_shop)?);
    sim_config.templates.push(gridsim::config::TemplateConfig {
        name: grid::TemplateName::new(SHOP_TEMPLATE)?,
        description: "the demo app: writes SHOP_WRITE_KIB KiB/s at random offsets of its disk data"
            .into(),
        command: vec![me_shop, "shop".into()],
        env: [("NO_COLOR".to_owned(), "1".to_owned())].into(),
        mounts: vec![],
        disks: vec![data],
        restart_on_crash: 0,
    });
    sim_config.save(&sim_config_file)?;
    gridsim::start(&sim_dir).await
}

/// `migctl demo`: the console outside every app, on grid east.
pub async fn outside(
    dir: &Path,
    listen: SocketAddr,
    copy_rate_limit_mib: Option<u64>,
    shop: ShopShape,
    group: bool,
) -> Result<(), CliError> {
    let sim = start_grids(dir).await?;
    demo_shop(&sim, None, shop).await?;
    if group {
        let a = crate::demo_group::create(&sim).await?;
        let file = crate::demo_group::write_definition(dir)?;
        println!("group: {}", file.display());
        // Where the writer finds them: migctl mq-writer --nodes MQ1,MQ2
        println!("member: mq1 at {}", a.mq1);
        println!("member: mq2 at {}", a.mq2);
        println!("member: mq3 at {}", a.mq3);
    }
    let file = dir.join(config::CONFIG_FILE);
    if !file.exists() {
        std::fs::write(
            &file,
            "# Written by `migctl demo`: the console runs on grid east of the simulated grids.\n\
             current_grid = \"east\"\n\
             mode = \"both\"\n\
             grids_file = \"gridsim/console/grids.toml\"\n\
             private_key_file = \"gridsim/console/id_ed25519\"\n\
             known_hosts_file = \"gridsim/console/known_hosts\"\n",
        )
        .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let grids: Vec<(String, String)> = sim
        .grids
        .iter()
        .map(|g| (g.name.to_string(), g.address.to_string()))
        .collect();
    let served = serve_console(dir, listen, copy_rate_limit_mib, &grids).await;
    sim.stop().await;
    served
}

/// A demo's console: opened on `dir`, the admin's password made anew, then
/// `grid: NAME at ADDR` for each grid, `url:`, `user:` and `password:`
/// printed, and served until a shutdown signal.
pub(crate) async fn serve_console(
    dir: &Path,
    listen: SocketAddr,
    copy_rate_limit_mib: Option<u64>,
    grids: &[(String, String)],
) -> Result<(), CliError> {
    let overrides = Overrides {
        listen: Some(listen),
        copy_rate_limit_mib,
        ..Overrides::default()
    };
    let (settings, _) = config::load(dir, &overrides)?;
    let console = Console::open(settings).await?;
    let secret = password::random();
    set_admin(&console.pool, &secret).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; pick another with --listen"))?;
    let local = listener.local_addr().map_err(anyhow::Error::from)?;
    for (name, address) in grids {
        println!("grid: {name} at {address}");
    }
    println!("url: http://{local}/");
    println!("user: admin");
    println!("password: {secret}");
    console.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn set_admin(pool: &sqlx::SqlitePool, secret: &str) -> anyhow::Result<()> {
    let hash = password::hash(secret.to_owned()).await?;
    match accounts::create(pool, "admin", Role::Admin, &hash).await {
        Err(accounts::AccountError::Exists(_)) => {
            accounts::set_password(pool, "admin", &hash).await?;
        }
        other => {
            other?;
        }
    }
    Ok(())
}

/// `migctl demo --self`: the console is the process of `shop` on east. Its
/// config directory (settings, inventory, key, known_hosts, database) is
/// made once and packed into shop's `config` volume; the listen address is
/// shop's property `MIGCTL_LISTEN`, so the URL stays when shop moves.
pub async fn inside_shop(
    dir: &Path,
    listen: SocketAddr,
    copy_rate_limit_mib: Option<u64>,
    shop: ShopShape,
) -> Result<(), CliError> {
    let sim = start_grids(dir).await?;
    let first_run = find_shop(&sim).await.is_none();
    if first_run {
        // The address travels with the app: a port picked now stays.
        let listen = if listen.port() == 0 {
            free_port_below_ephemeral(listen)?
        } else {
            listen
        };
        let secret = password::random();
        let image = console_image(dir, &sim, &secret).await?;
        let mut properties = vec![("MIGCTL_LISTEN".to_owned(), listen.to_string())];
        if let Some(mib) = copy_rate_limit_mib {
            properties.push(("MIGCTL_COPY_RATE_LIMIT_MIB".into(), mib.to_string()));
        }
        demo_shop(&sim, Some(ConsoleApp { properties, image }), shop).await?;
        std::fs::write(dir.join(PASSWORD_FILE), &secret)
            .with_context(|| format!("cannot write {}", dir.join(PASSWORD_FILE).display()))?;
    }
    let (grid, info) = find_shop(&sim)
        .await
        .context("the demo app shop is on no grid")?;
    let listen = info
        .properties
        .get("MIGCTL_LISTEN")
        .cloned()
        .context("shop has no MIGCTL_LISTEN property")?;
    let secret = std::fs::read_to_string(dir.join(PASSWORD_FILE)).unwrap_or_default();
    wait_for_console(&listen).await;
    for g in &sim.grids {
        println!("grid: {} at {}", g.name, g.address);
    }
    println!("console: inside shop on {grid}");
    println!("url: http://{listen}/");
    println!("user: admin");
    println!("password: {}", secret.trim());
    shutdown_signal().await;
    sim.stop().await;
    Ok(())
}

/// A free port for the console inside shop, picked once and kept. Below
/// the kernel's ephemeral range (32768 and up on Linux): a port from that
/// range may be taken, before the console binds it, as the local end of
/// one of the many SSH connections the demo's grids and helper open.
pub(crate) fn free_port_below_ephemeral(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..100 {
        let candidate = SocketAddr::new(listen.ip(), rng.random_range(20_000..32_000));
        if std::net::TcpListener::bind(candidate).is_ok() {
            return Ok(candidate);
        }
    }
    let probe = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    Ok(probe.local_addr()?)
}

/// The grid `shop` is on, with its description.
async fn find_shop(sim: &gridsim::RunningSim) -> Option<(String, grid::dialect::AppInfo)> {
    for g in &sim.grids {
        let mut out = Vec::new();
        if g.controller
            .execute("app info shop --json", &mut tokio::io::empty(), &mut out)
            .await
            .is_ok()
            && let Ok(info) = serde_json::from_slice(&out)
        {
            return Some((g.name.to_string(), info));
        }
    }
    None
}

/// The console's config directory for `--self`, as the image of shop's
/// `config` volume: settings, the inventory, key and known_hosts of the
/// demo grids, and a database with the admin.
async fn console_image(
    dir: &Path,
    sim: &gridsim::RunningSim,
    secret: &str,
) -> anyhow::Result<Vec<u8>> {
    let stage = dir.join("console-stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    std::fs::create_dir_all(&stage)?;
    let trust = gridsim::SimPaths::new(&sim.dir).console_dir();
    for f in ["grids.toml", "id_ed25519", "known_hosts"] {
        std::fs::copy(trust.join(f), stage.join(f))
            .with_context(|| format!("cannot copy {f} into the console's config volume"))?;
    }
    std::fs::write(
        stage.join(config::CONFIG_FILE),
        "# Written by `migctl demo --self`: this console runs inside the app shop.\n\
         # Where it runs comes from the grid; this file travels with the app.\n\
         mode = \"both\"\n",
    )?;
    let pool = db::open(&stage.join(config::DATABASE_FILE)).await?;
    set_admin(&pool, secret).await?;
    pool.close().await;
    let image_file = dir.join("config.img");
    std::fs::File::create(&image_file)?.set_len(CONFIG_VOLUME)?;
    gridsim::mount::pack("config", &stage, &image_file, CONFIG_VOLUME)?;
    let image = std::fs::read(&image_file)?;
    std::fs::remove_file(&image_file)?;
    std::fs::remove_dir_all(&stage)?;
    Ok(image)
}

async fn wait_for_console(listen: &str) {
    let url = format!("http://{listen}/healthz");
    for _ in 0..150 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(%url, "the console inside shop does not answer yet; see `app log shop`");
}

/// What makes `shop` the console's app: its properties and the image of
/// its `config` volume.
struct ConsoleApp {
    properties: Vec<(String, String)>,
    image: Vec<u8>,
}

/// How big and how busy the demo's `shop` is (`--shop-data-mib`,
/// `--shop-write-kib`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ShopShape {
    /// `data`'s size, filled with incompressible bytes; `None`: 384 MiB,
    /// mostly sparse.
    pub data_mib: Option<u64>,
    pub write_kib: u64,
}

/// The demo's app `shop` on east: a dense boot volume and sparse data and
/// log volumes of a few hundred MiB, running; its process writes to `data`
/// at `shop.write_kib` KiB/s. Made once; kept across runs. With a console
/// (`--self`): the console template, its properties, and a `config`
/// volume holding `image`.
async fn demo_shop(
    sim: &gridsim::RunningSim,
    console: Option<ConsoleApp>,
    shop: ShopShape,
) -> anyhow::Result<()> {
    let Some(east) = sim.grid("east") else {
        return Ok(());
    };
    let c = &east.controller;
    let mut out = Vec::new();
    if c.execute("app info shop", &mut tokio::io::empty(), &mut out)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let data_size = shop.data_mib.map_or(402653184u64, |mib| mib.max(1) << 20);
    let mut descriptor = serde_json::json!({
        "template": SHOP_TEMPLATE,
        "properties": {"tier": "web", WRITE_KIB: shop.write_kib.to_string()},
        "volumes": [
            {"name": "boot", "size": 134217728u64},
            {"name": "data", "size": data_size},
            {"name": "logs", "size": 67108864u64}
        ]
    });
    if let Some(ConsoleApp { properties, .. }) = &console {
        descriptor["template"] = CONSOLE_TEMPLATE.into();
        for (k, v) in properties {
            descriptor["properties"][k] = v.clone().into();
        }
        if let Some(volumes) = descriptor["volumes"].as_array_mut() {
            volumes.push(serde_json::json!({"name": "config", "size": CONFIG_VOLUME}));
        }
    }
    let descriptor = descriptor.to_string();
    c.execute("app create shop", &mut descriptor.as_bytes(), &mut out)
        .await
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    if let Some(mib) = shop.data_mib {
        // Incompressible: random bytes, written 64 MiB at a time.
        let mut offset = 0u64;
        while offset < mib << 20 {
            let n = (64u64 << 20).min((mib << 20) - offset);
            let mut bytes = vec![0u8; usize::try_from(n).unwrap_or(0)];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            let line = format!("vol write shop:data --offset {offset}");
            c.execute(&line, &mut &bytes[..], &mut out)
                .await
                .map_err(|r| anyhow::anyhow!("{r}"))?;
            offset += n;
        }
    }
    let mut block = vec![0u8; 1 << 20];
    let data = if shop.data_mib.is_some() {
        vec![]
    } else {
        vec![("data", 64u64 << 20, 96u64)]
    };
    for (volume, offset, mib) in [("boot", 0u64, 128u64), ("logs", 0, 8)]
        .into_iter()
        .chain(data)
    {
        let mut bytes = Vec::with_capacity(usize::try_from(mib << 20).unwrap_or(0));
        for i in 0..mib {
            for (j, b) in block.iter_mut().enumerate() {
                *b = ((i as usize * 31 + j * 7) % 251) as u8 | 1;
            }
            bytes.extend_from_slice(&block);
        }
        let line = format!("vol write shop:{volume} --offset {offset}");
        c.execute(&line, &mut &bytes[..], &mut out)
            .await
            .map_err(|r| anyhow::anyhow!("{r}"))?;
    }
    if let Some(ConsoleApp { image, .. }) = &console {
        c.execute("vol write shop:config", &mut &image[..], &mut out)
            .await
            .map_err(|r| anyhow::anyhow!("{r}"))?;
    }
    c.execute("app start shop", &mut tokio::io::empty(), &mut out)
        .await
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    Ok(())
}

/// `migctl shop`: the demo app's process. It writes `SHOP_WRITE_KIB` KiB
/// a second at random offsets of its disk `data` (through the grid, which
/// tracks the blocks it writes) until it is told to stop, then says how
/// many writes the disk confirmed. `SHOP_WRITE_SEED` makes the writes
/// repeatable (tests replay them).
pub async fn shop_process(stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let kib = var(WRITE_KIB).unwrap_or(0);
    let seed = var("SHOP_WRITE_SEED").unwrap_or_else(rand::random);
    println!("shop is running; it writes {kib} KiB/s to its data volume");
    let acked = std::sync::atomic::AtomicU64::new(0);
    let stopping = tokio_util::sync::CancellationToken::new();
    let writes = write_to_data((kib, seed), &acked, &stopping);
    tokio::pin!(writes);
    tokio::select! {
        () = stop => {
            // The write under way finishes: every write counted is in `data`.
            stopping.cancel();
            writes.await?;
        }
        r = &mut writes => r?,
    }
    println!(
        "shop stops after {} writes (seed {seed})",
        acked.load(std::sync::atomic::Ordering::SeqCst)
    );
    Ok(())
}

/// Writes `kib` KiB/s to the disk `data` until `stop` (nothing when 0).
async fn write_to_data(
    (kib, seed): (u64, u64),
    acked: &std::sync::atomic::AtomicU64,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    if kib == 0 {
        stop.cancelled().await;
        return Ok(());
    }
    let mut disk = gridsim::disk::Disk::of("data").await?;
    gridsim::disk::write_steadily(&mut disk, (kib, seed), acked, stop, |n| {
        println!("shop has written {} KiB to data", n >> 10);
    })
    .await?;
    Ok(())
}

/// A console inside the demo's shop (`--self`) writes to shop's `data` as
/// shop's own process does, when the app says how fast: the writes, to
/// run until `stop` (the console's other background tasks' token).
pub fn shop_writes(
    stop: tokio_util::sync::CancellationToken,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let kib: u64 = std::env::var(WRITE_KIB)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let writes = async move {
        let acked = std::sync::atomic::AtomicU64::new(0);
        if let Err(e) = write_to_data((kib, rand::random()), &acked, &stop).await {
            tracing::warn!("shop's writes to data stopped: {e:#}");
        }
    };
    (kib > 0 && std::env::var_os("GRIDSIM_DISK_data").is_some()).then_some(writes)
}
