//! `migctl demo --group`: the demo's HA group on east — `mq3` (the
//! monitor), `mq1` (primary at start) and `mq2` (backup) — each the
//! process `migctl mq-node` ([`crate::mq::node`]), serving HTTP on its
//! property `LISTEN`, its writes on its volume `state`; and the shipped
//! definition that moves it Solace's way.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The template of the group's nodes.
pub const MQ_TEMPLATE: &str = "MqNode";
/// The nodes' volume holding their writes (a directory to the process).
const STATE_VOLUME: u64 = 16 << 20;
/// Where the demo writes the group's definition, in its directory.
pub const DEFINITION_FILE: &str = "group-mq.toml";

/// The shipped definition: the monitor, then the backup, then — once the
/// primary has released its activity to the backup — the primary; after
/// each step, redundancy up on all three nodes, twice in a row.
pub const DEFINITION: &str = r#"# The demo's HA group (migctl demo --group), moved east -> west Solace's way:
# the monitor first, then the backup, then the primary once it has handed its
# role to the backup. After each step, every node must say that redundancy
# is up (a backup that has every acknowledged write, all three in one view),
# twice in a row.
name = "mq"
source_grid = "east"
target_grid = "west"
warm = true

[[members]]
app = "mq3"
[[members]]
app = "mq2"
[[members]]
app = "mq1"

[[after_each_step]]
name = "redundancy up, as mq1 says"
http = { url = "http://{mq1.LISTEN}/redundancy", json = { pointer = "/up", value = true } }
passes = 2
deadline_secs = 120

[[after_each_step]]
name = "redundancy up, as mq2 says"
http = { url = "http://{mq2.LISTEN}/redundancy", json = { pointer = "/up", value = true } }
passes = 2
deadline_secs = 120

[[after_each_step]]
name = "redundancy up, as mq3 (the monitor) says"
http = { url = "http://{mq3.LISTEN}/redundancy", json = { pointer = "/up", value = true } }
passes = 2
deadline_secs = 120

[[steps]]
member = "mq3"

[[steps]]
member = "mq2"

[[steps]]
member = "mq1"
[[steps.actions]]
name = "mq1 releases its activity to the backup"
http = { method = "POST", url = "http://{mq1.LISTEN}/release-activity" }
"#;

/// The template, its process this very binary (`me`).
pub fn template(me: &str) -> anyhow::Result<gridsim::TemplateConfig> {
    Ok(gridsim::TemplateConfig {
        name: grid::TemplateName::new(MQ_TEMPLATE)?,
        description: "a node of the demo's HA group: monitor, primary or backup (MQ_KIND)".into(),
        command: vec![me.to_owned(), "mq-node".into()],
        env: [("NO_COLOR".to_owned(), "1".to_owned())].into(),
        mounts: vec![grid::VolumeName::new("state")?],
        disks: vec![],
        restart_on_crash: 0,
    })
}

/// The nodes' addresses.
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    pub mq1: SocketAddr,
    pub mq2: SocketAddr,
    pub mq3: SocketAddr,
}

/// Creates the group on east (unless it is there) and starts it: the
/// monitor, then mq1 — the first node to ping is the primary — then mq2;
/// waits until redundancy is up on all three.
pub async fn create(sim: &gridsim::RunningSim) -> anyhow::Result<Addresses> {
    let east = &sim
        .grid("east")
        .context("the demo's grid east is not running")?
        .controller;
    let mut out = Vec::new();
    let listen_of = |info: &[u8]| -> Option<SocketAddr> {
        let v: serde_json::Value = serde_json::from_slice(info).ok()?;
        v["properties"]["LISTEN"].as_str()?.parse().ok()
    };
    let mut known = vec![];
    for app in ["mq1", "mq2", "mq3"] {
        out.clear();
        let line = format!("app info {app} --json");
        known.push(
            east.execute(&line, &mut tokio::io::empty(), &mut out)
                .await
                .ok()
                .and_then(|()| listen_of(&out)),
        );
    }
    let addresses = if let [Some(mq1), Some(mq2), Some(mq3)] = known[..] {
        Addresses { mq1, mq2, mq3 }
    } else {
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;
        let mut picked: Vec<SocketAddr> = vec![];
        while picked.len() < 3 {
            let a = crate::demo::free_port_below_ephemeral(loopback)?;
            if !picked.contains(&a) {
                picked.push(a);
            }
        }
        let a = Addresses {
            mq1: picked[0],
            mq2: picked[1],
            mq3: picked[2],
        };
        for (app, listen, kind) in [
            ("mq3", a.mq3, "monitor"),
            ("mq1", a.mq1, "node"),
            ("mq2", a.mq2, "node"),
        ] {
            let descriptor = serde_json::json!({
                "template": MQ_TEMPLATE,
                "properties": {"tier": "mq", "LISTEN": listen.to_string(), "MQ_KIND": kind, "MQ_MONITOR": a.mq3.to_string()},
                "volumes": [{"name": "state", "size": STATE_VOLUME}],
            })
            .to_string();
            east.execute(
                &format!("app create {app}"),
                &mut descriptor.as_bytes(),
                &mut out,
            )
            .await
            .map_err(|r| anyhow::anyhow!("cannot create {app}: {r}"))?;
        }
        a
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    for (app, wait_for) in [
        ("mq3", None),
        ("mq1", Some((addresses.mq1, "primary"))),
        ("mq2", None),
    ] {
        out.clear();
        // Already running (a demo started again): nothing to do.
        let _ = east
            .execute(
                &format!("app start {app}"),
                &mut tokio::io::empty(),
                &mut out,
            )
            .await;
        if let Some((at, role)) = wait_for {
            wait(&http, at, Duration::from_secs(30), |v| v["role"] == role)
                .await
                .with_context(|| {
                    format!("{app} did not become the {role} (see `app log {app}` on east)")
                })?;
        }
    }
    for at in [addresses.mq1, addresses.mq2, addresses.mq3] {
        wait(&http, at, Duration::from_secs(30), |v| v["up"] == true)
            .await
            .with_context(|| format!("redundancy did not come up at {at}"))?;
    }
    Ok(addresses)
}

/// Waits until `GET http://{at}/redundancy` answers what `holds`.
async fn wait(
    http: &reqwest::Client,
    at: SocketAddr,
    within: Duration,
    holds: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = http.get(format!("http://{at}/redundancy")).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && holds(&v)
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no answer as expected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes the shipped definition into the demo's directory (checked: it
/// is what `migctl group run` reads).
pub fn write_definition(dir: &Path) -> anyhow::Result<PathBuf> {
    group::Definition::from_toml(DEFINITION).map_err(|e| {
        anyhow::anyhow!(
            "the shipped group definition is refused: {}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let file = dir.join(DEFINITION_FILE);
    std::fs::write(&file, DEFINITION)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_definition_reads() {
        let d = group::Definition::from_toml(super::DEFINITION).unwrap();
        assert_eq!(d.steps.len(), 3);
        assert_eq!(d.steps[2].actions.len(), 1);
        assert!(d.steps.iter().all(|s| s.after.len() == 3 && s.warm));
    }
}
