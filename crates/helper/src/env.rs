//! The helper's job, read from its environment (the app's properties plus
//! the template's environment).

use grid::{AppName, GridName};
pub use operation_model::{Action, AtPassLimit, Cutover};
use std::path::PathBuf;

/// Everything the helper needs to know, with the variable it came from.
#[derive(Clone, Debug)]
pub struct Job {
    pub op_id: String,
    pub action: Action,
    pub source_grid: GridName,
    pub source_app: AppName,
    pub target_grid: GridName,
    pub target_app: AppName,
    pub grids_file: PathBuf,
    pub key_file: PathBuf,
    pub known_hosts: PathBuf,
    /// The finest block compared: see [`crate::plan::block_size`].
    pub block_size: u64,
    pub stop_timeout_secs: u64,
    /// Bytes per second the copy may use; 0 means no limit.
    pub rate_limit: u64,
    /// Ranges copied at once, each over its own channels.
    pub streams: u64,
    pub transfer: TransferChoice,
    pub compress: CompressChoice,
    /// Pre-copy while the source runs (`MIG_WARM=1`); `None`: cold.
    pub warm: Option<Warm>,
}

/// How a warm job passes and when it cuts over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warm {
    /// `MIG_CUTOVER`.
    pub cutover: Cutover,
    /// `MIG_CUTOVER_AT`: seconds since the Unix epoch (scheduled).
    pub cutover_at: Option<u64>,
    /// `MIG_PASS_LIMIT`: passes before [`Warm::at_limit`] applies.
    pub pass_limit: u32,
    /// `MIG_CONVERGED_BYTES`: a delta this small is cut over (auto).
    pub converged_bytes: u64,
    /// `MIG_AT_PASS_LIMIT`.
    pub at_limit: AtPassLimit,
    /// `MIG_CUTOVER_SIGNAL`: the app on the target grid whose existence
    /// asks for the cutover now (the console creates it).
    pub signal: AppName,
}

pub const DEFAULT_PASS_LIMIT: u32 = 8;
pub const DEFAULT_CONVERGED_BYTES: u64 = 16 << 20;

/// `MIG_TRANSFER`: how bytes travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransferChoice {
    /// The target's controller pulls from the source when it can (dialect 3
    /// and trust between the grids); else the helper relays.
    #[default]
    Auto,
    /// Always through the helper.
    Relay,
}

/// `MIG_COMPRESS`: zstd on the wire (dialect 3 on both grids).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompressChoice {
    /// Per volume, when a sample of what moves compresses below half.
    #[default]
    Auto,
    Zstd,
    Off,
}

impl TransferChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferChoice::Auto => "auto",
            TransferChoice::Relay => "relay",
        }
    }
}

impl std::str::FromStr for TransferChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TransferChoice::Auto),
            "relay" => Ok(TransferChoice::Relay),
            other => Err(format!("{other:?} is not auto or relay")),
        }
    }
}

impl CompressChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            CompressChoice::Auto => "auto",
            CompressChoice::Zstd => "zstd",
            CompressChoice::Off => "off",
        }
    }
}

impl std::str::FromStr for CompressChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(CompressChoice::Auto),
            "zstd" => Ok(CompressChoice::Zstd),
            "off" => Ok(CompressChoice::Off),
            other => Err(format!("{other:?} is not auto, zstd or off")),
        }
    }
}

/// The finest block a volume is compared in (`MIG_BLOCK_SIZE`); a large
/// volume's is coarser ([`crate::plan::block_size`] decides).
pub const DEFAULT_BLOCK_SIZE: u64 = 64 << 10;
pub const DEFAULT_STOP_TIMEOUT: u64 = operation_model::DEFAULT_STOP_TIMEOUT_SECS;
/// Ranges in flight at once: enough to overlap one range's reading,
/// sending and syncing with the next ones' (measured: `scripts/bench-copy`).
pub const DEFAULT_STREAMS: u64 = 4;

impl Job {
    /// Reads the job through `get` (the process environment in production).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Job> {
        let need = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow::anyhow!("{k} is not set"))
        };
        let number = |k: &str, default: u64| -> anyhow::Result<u64> {
            match get(k) {
                Some(v) => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{k}={v:?} is not a whole number")),
                None => Ok(default),
            }
        };
        fn parsed<T: std::str::FromStr<Err = String> + Default>(
            k: &str,
            v: Option<String>,
        ) -> anyhow::Result<T> {
            match v.filter(|v| !v.is_empty()) {
                Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{k}: {e}")),
                None => Ok(T::default()),
            }
        }
        let action: Action = need("MIG_ACTION")?
            .parse()
            .map_err(|e| anyhow::anyhow!("MIG_ACTION: {e}"))?;
        let block_size = number("MIG_BLOCK_SIZE", DEFAULT_BLOCK_SIZE)?;
        if block_size == 0 || block_size % 4096 != 0 {
            anyhow::bail!("MIG_BLOCK_SIZE must be a positive multiple of 4096");
        }
        Ok(Job {
            op_id: need("MIG_OP_ID")?,
            action,
            source_grid: GridName::new(need("MIG_SOURCE_GRID")?)?,
            source_app: AppName::new(need("MIG_SOURCE_APP")?)?,
            target_grid: GridName::new(need("MIG_TARGET_GRID")?)?,
            target_app: AppName::new(need("MIG_TARGET_APP")?)?,
            grids_file: need("MIG_GRIDS_FILE")?.into(),
            key_file: need("MIG_KEY_FILE")?.into(),
            known_hosts: need("MIG_KNOWN_HOSTS")?.into(),
            block_size,
            stop_timeout_secs: number("MIG_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT)?,
            rate_limit: number("MIG_RATE_LIMIT", 0)?,
            streams: match number("MIG_STREAMS", DEFAULT_STREAMS)? {
                n @ 1..=16 => n,
                n => anyhow::bail!("MIG_STREAMS={n} is not between 1 and 16"),
            },
            transfer: parsed("MIG_TRANSFER", get("MIG_TRANSFER"))?,
            compress: parsed("MIG_COMPRESS", get("MIG_COMPRESS"))?,
            warm: match get("MIG_WARM").as_deref() {
                None | Some("" | "0") => None,
                Some("1") => {
                    let wire = |k: &str| get(k).filter(|v| !v.is_empty());
                    let cutover: Cutover = match wire("MIG_CUTOVER") {
                        Some(v) => v.parse().map_err(|e| anyhow::anyhow!("MIG_CUTOVER: {e}"))?,
                        None => Cutover::Auto,
                    };
                    let cutover_at = match wire("MIG_CUTOVER_AT") {
                        Some(v) => Some(v.parse().map_err(|_| {
                            anyhow::anyhow!("MIG_CUTOVER_AT={v:?} is not seconds since the epoch")
                        })?),
                        None => None,
                    };
                    if cutover == Cutover::Scheduled && cutover_at.is_none() {
                        anyhow::bail!("MIG_CUTOVER=scheduled needs MIG_CUTOVER_AT");
                    }
                    Some(Warm {
                        cutover,
                        cutover_at,
                        pass_limit: match number("MIG_PASS_LIMIT", u64::from(DEFAULT_PASS_LIMIT))? {
                            n @ 1..=1000 => u32::try_from(n).unwrap_or(DEFAULT_PASS_LIMIT),
                            n => anyhow::bail!("MIG_PASS_LIMIT={n} is not between 1 and 1000"),
                        },
                        converged_bytes: number("MIG_CONVERGED_BYTES", DEFAULT_CONVERGED_BYTES)?,
                        at_limit: match wire("MIG_AT_PASS_LIMIT") {
                            Some(v) => v
                                .parse()
                                .map_err(|e| anyhow::anyhow!("MIG_AT_PASS_LIMIT: {e}"))?,
                            None => AtPassLimit::CutOver,
                        },
                        signal: AppName::new(need("MIG_CUTOVER_SIGNAL")?)?,
                    })
                }
                Some(other) => anyhow::bail!("MIG_WARM={other:?} is not 0 or 1"),
            },
        })
    }

    /// The properties the console provisions the helper with (what
    /// [`Job::from_env`] reads back, minus the grid's own trust material).
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut props = vec![
            ("MIG_OP_ID".into(), self.op_id.clone()),
            ("MIG_ACTION".into(), self.action.to_string()),
            ("MIG_SOURCE_GRID".into(), self.source_grid.to_string()),
            ("MIG_SOURCE_APP".into(), self.source_app.to_string()),
            ("MIG_TARGET_GRID".into(), self.target_grid.to_string()),
            ("MIG_TARGET_APP".into(), self.target_app.to_string()),
            ("MIG_BLOCK_SIZE".into(), self.block_size.to_string()),
            (
                "MIG_STOP_TIMEOUT".into(),
                self.stop_timeout_secs.to_string(),
            ),
            ("MIG_RATE_LIMIT".into(), self.rate_limit.to_string()),
            ("MIG_STREAMS".into(), self.streams.to_string()),
            ("MIG_TRANSFER".into(), self.transfer.as_str().into()),
            ("MIG_COMPRESS".into(), self.compress.as_str().into()),
        ];
        if let Some(w) = &self.warm {
            props.extend([
                ("MIG_WARM".into(), "1".into()),
                ("MIG_CUTOVER".into(), w.cutover.to_string()),
                ("MIG_PASS_LIMIT".into(), w.pass_limit.to_string()),
                ("MIG_CONVERGED_BYTES".into(), w.converged_bytes.to_string()),
                ("MIG_AT_PASS_LIMIT".into(), w.at_limit.to_string()),
                ("MIG_CUTOVER_SIGNAL".into(), w.signal.to_string()),
            ]);
            if let Some(at) = w.cutover_at {
                props.push(("MIG_CUTOVER_AT".into(), at.to_string()));
            }
        }
        props
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_job_reads_back_what_the_properties_say_and_bad_values_are_named() {
        let mut env: HashMap<String, String> = [
            ("MIG_OP_ID", "op-1"),
            ("MIG_ACTION", "snapshot"),
            ("MIG_SOURCE_GRID", "east"),
            ("MIG_SOURCE_APP", "shop"),
            ("MIG_TARGET_GRID", "west"),
            ("MIG_TARGET_APP", "shop2"),
            ("MIG_GRIDS_FILE", "/g"),
            ("MIG_KEY_FILE", "/k"),
            ("MIG_KNOWN_HOSTS", "/h"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let job = Job::from_env(|k| env.get(k).cloned()).unwrap();
        assert_eq!(job.action, Action::Snapshot);
        assert_eq!(job.block_size, DEFAULT_BLOCK_SIZE);
        let props: HashMap<_, _> = job.properties().into_iter().collect();
        assert_eq!(props["MIG_TARGET_APP"], "shop2");
        assert_eq!(job.warm, None);

        for (k, v) in [
            ("MIG_WARM", "1"),
            ("MIG_CUTOVER", "scheduled"),
            ("MIG_CUTOVER_AT", "1800000000"),
            ("MIG_AT_PASS_LIMIT", "wait"),
            ("MIG_CUTOVER_SIGNAL", "MigCutover_shop2"),
        ] {
            env.insert(k.into(), v.into());
        }
        let warm = Job::from_env(|k| env.get(k).cloned()).unwrap();
        let mut again: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| !k.contains("WARM") && !k.contains("CUTOVER") && !k.contains("PASS"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        again.extend(warm.properties());
        assert_eq!(
            Job::from_env(|k| again.get(k).cloned()).unwrap().warm,
            warm.warm
        );
        let w = warm.warm.unwrap();
        assert_eq!(
            (w.cutover, w.cutover_at, w.at_limit),
            (Cutover::Scheduled, Some(1_800_000_000), AtPassLimit::Wait)
        );
        env.remove("MIG_CUTOVER_AT");
        let err = Job::from_env(|k| env.get(k).cloned())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "MIG_CUTOVER=scheduled needs MIG_CUTOVER_AT");
        env.remove("MIG_WARM");

        env.insert("MIG_TARGET_APP".into(), "a;b".into());
        let err = Job::from_env(|k| env.get(k).cloned())
            .unwrap_err()
            .to_string();
        assert!(err.contains("contains ';'"), "{err}");
        env.remove("MIG_OP_ID");
        let err = Job::from_env(|k| env.get(k).cloned())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "MIG_OP_ID is not set");
    }
}
