//! Settings: `migctl.toml` in the config directory, then `MIGCTL_*`
//! environment variables, then flags. A bad file stops start-up with the file,
//! the line and the fix; unknown keys are warned about, not fatal.

use app::model::Mode;
use grid::{AppName, GridName};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "migctl.toml";
pub const DATABASE_FILE: &str = "migctl.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Everything the console runs with, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config_dir: PathBuf,
    pub listen: SocketAddr,
    pub current_grid: Option<GridName>,
    pub current_app: Option<AppName>,
    pub mode: Mode,
    pub grids_file: PathBuf,
    pub private_key_file: PathBuf,
    pub known_hosts_file: PathBuf,
    /// The address operators open (e.g. behind a TLS proxy). When it is
    /// `https://…`, cookies are marked Secure and it is an accepted Origin.
    pub public_url: Option<String>,
    /// Where the built site (`pkg/migctl.{js,wasm,css}`) lives.
    pub site_root: PathBuf,
    /// The helper copies at most this many MiB per second (`None`: as fast as it can).
    pub copy_rate_limit_mib: Option<u64>,
    /// Ranges the helper copies at once.
    pub copy_streams: u64,
    /// zstd on the wire: auto (when a sample compresses), zstd, off.
    pub copy_compression: helper::env::CompressChoice,
    /// Warm: passes before `warm_at_pass_limit` applies.
    pub warm_pass_limit: u32,
    /// Warm: a pass that finds at most this many MiB changed is followed
    /// by the cutover (automatic cutover).
    pub warm_converged_mib: u64,
    /// Warm: at the pass limit with a delta still large, cut over anyway
    /// or wait for an operator's "cut over now".
    pub warm_at_pass_limit: app::model::AtPassLimit,
    /// Who may read `/metrics`: with a token, whoever sends it as a bearer
    /// token; without one, clients on loopback only (and nobody behind a
    /// proxy, `public_url` set).
    pub metrics_token: Option<Secret>,
    /// Events and archived locks of operations that ended this many days
    /// ago are pruned; the operations' rows stay.
    pub retention_days: u64,
    /// Event streams (SSE) open at once; one more is refused with 429.
    pub max_event_streams: usize,
    /// How long the console waits for a grid's reply to one command before
    /// calling the grid unanswering (an operation's lock then says so).
    pub grid_timeout_secs: u64,
    /// A migrate keeps its source (stopped, until its deadline) unless the
    /// request says otherwise.
    pub keep_source: bool,
    /// Hours a kept source stays before its deadline releases it, unless
    /// the request says otherwise.
    pub keep_source_hours: u64,
}

impl Settings {
    pub fn database_file(&self) -> PathBuf {
        self.config_dir.join(DATABASE_FILE)
    }

    /// Cookies carry `Secure` when the console is reached over TLS.
    pub fn served_over_tls(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// Values given as flags or `MIGCTL_*` variables; they win over the file.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Overrides {
    /// Address and port to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "MIGCTL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The grid this console runs on
    #[arg(long, env = "MIGCTL_CURRENT_GRID")]
    pub current_grid: Option<GridName>,
    /// The app this console runs inside, if any
    #[arg(long, env = "MIGCTL_CURRENT_APP")]
    pub current_app: Option<AppName>,
    /// Which actions the console offers: migrate, snapshot or both
    #[arg(long, env = "MIGCTL_MODE")]
    pub mode: Option<Mode>,
    /// Grid inventory file [default: CONFIG_DIR/grids.toml]
    #[arg(long, env = "MIGCTL_GRIDS_FILE")]
    pub grids_file: Option<PathBuf>,
    /// SSH private key for the controllers [default: CONFIG_DIR/id_ed25519]
    #[arg(long, env = "MIGCTL_PRIVATE_KEY_FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Pinned controller host keys [default: CONFIG_DIR/known_hosts]
    #[arg(long, env = "MIGCTL_KNOWN_HOSTS_FILE")]
    pub known_hosts_file: Option<PathBuf>,
    /// The URL operators open, e.g. https://migctl.example.com behind a TLS proxy
    #[arg(long, env = "MIGCTL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Directory holding the built site (pkg/…) [default: next to the binary]
    #[arg(long, env = "MIGCTL_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Copy at most this many MiB per second, to spare the grids' network
    #[arg(long, env = "MIGCTL_COPY_RATE_LIMIT_MIB")]
    pub copy_rate_limit_mib: Option<u64>,
    /// Ranges the helper copies at once (1–16) [default: 4]
    #[arg(long, env = "MIGCTL_COPY_STREAMS")]
    pub copy_streams: Option<u64>,
    /// zstd on the wire: auto (when a sample of a volume compresses), zstd or off [default: auto]
    #[arg(long, env = "MIGCTL_COPY_COMPRESSION")]
    pub copy_compression: Option<String>,
    /// Warm operations: pre-copy passes before the pass-limit rule applies (1–1000) [default: 8]
    #[arg(long, env = "MIGCTL_WARM_PASS_LIMIT")]
    pub warm_pass_limit: Option<u32>,
    /// Warm operations: cut over once a pass finds at most this many MiB changed [default: 16]
    #[arg(long, env = "MIGCTL_WARM_CONVERGED_MIB")]
    pub warm_converged_mib: Option<u64>,
    /// Warm operations at the pass limit with a large delta: cut_over or wait (for "cut over now") [default: cut_over]
    #[arg(long, env = "MIGCTL_WARM_AT_PASS_LIMIT")]
    pub warm_at_pass_limit: Option<String>,
    /// A file holding the bearer token that reads /metrics from anywhere (at least 16 characters) [default: loopback only]
    #[arg(long, env = "MIGCTL_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// The token itself, from `MIGCTL_METRICS_TOKEN` only: a command-line
    /// value would be visible to every local user in `ps`.
    #[arg(skip = Secret::from_env("MIGCTL_METRICS_TOKEN"))]
    pub metrics_token: Option<Secret>,
    /// Days an ended operation keeps its events and archived lock (1 or more) [default: 90]
    #[arg(long, env = "MIGCTL_RETENTION_DAYS")]
    pub retention_days: Option<u64>,
    /// Event streams (the monitors' live logs) open at once; more get 429 (1 or more) [default: 2000]
    #[arg(long, env = "MIGCTL_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<u64>,
    /// Seconds the console waits for a grid's reply to one command (5–3600) [default: 60]
    #[arg(long, env = "MIGCTL_GRID_TIMEOUT_SECS")]
    pub grid_timeout_secs: Option<u64>,
    /// A migrate keeps its source, stopped, until its deadline, unless its request says otherwise (true or false) [default: false]
    #[arg(long, env = "MIGCTL_KEEP_SOURCE")]
    pub keep_source: Option<bool>,
    /// Hours a kept source stays before its deadline releases it (1–8760) [default: 72]
    #[arg(long, env = "MIGCTL_KEEP_SOURCE_HOURS")]
    pub keep_source_hours: Option<u64>,
}

/// A secret setting: its `Debug` says only that there is one, so settings
/// can be logged whole.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    fn from_env(var: &str) -> Option<Secret> {
        std::env::var(var).ok().map(Secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// The most a MiB setting may say (1 TiB): its bytes fit in a u64 with room.
pub const MAX_MIB: u64 = 1 << 20;

/// The file's keys. Kept apart from [`Settings`] so the file's spans give line numbers.
#[derive(Deserialize, Default, Debug)]
struct FileSettings {
    listen: Option<SocketAddr>,
    current_grid: Option<GridName>,
    current_app: Option<AppName>,
    mode: Option<Mode>,
    grids_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    known_hosts_file: Option<PathBuf>,
    public_url: Option<String>,
    copy_rate_limit_mib: Option<u64>,
    copy_streams: Option<u64>,
    copy_compression: Option<String>,
    warm_pass_limit: Option<u32>,
    warm_converged_mib: Option<u64>,
    warm_at_pass_limit: Option<String>,
    metrics_token: Option<Secret>,
    retention_days: Option<u64>,
    max_event_streams: Option<u64>,
    grid_timeout_secs: Option<u64>,
    keep_source: Option<bool>,
    keep_source_hours: Option<u64>,
}

const KNOWN_KEYS: [&str; 20] = [
    "listen",
    "current_grid",
    "current_app",
    "mode",
    "grids_file",
    "private_key_file",
    "known_hosts_file",
    "public_url",
    "copy_rate_limit_mib",
    "copy_streams",
    "copy_compression",
    "warm_pass_limit",
    "warm_converged_mib",
    "warm_at_pass_limit",
    "metrics_token",
    "retention_days",
    "max_event_streams",
    "grid_timeout_secs",
    "keep_source",
    "keep_source_hours",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}:{line}: {message}\n  fix: {fix}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
        fix: String,
    },
    #[error("cannot read {}: {source}\n  fix: {fix}", file.display())]
    Unreadable {
        file: PathBuf,
        source: std::io::Error,
        fix: String,
    },
    #[error("{setting}: {message}\n  fix: {fix}")]
    Value {
        setting: String,
        message: String,
        fix: String,
    },
}

/// What to do about a bad value of `key`.
fn fix_for(key: &str) -> String {
    match key {
        "listen" => r#"write an address and port, e.g. listen = "127.0.0.1:8080""#.into(),
        "mode" => r#"write mode = "migrate", "snapshot" or "both""#.into(),
        "current_grid" | "current_app" => {
            format!(r#"write {key} = "name": a letter, then up to 63 letters, digits, `_` or `-`"#)
        }
        "grids_file" | "private_key_file" | "known_hosts_file" => {
            format!(r#"write {key} = "path", absolute or relative to the config directory"#)
        }
        "public_url" => {
            r#"write public_url = "https://migctl.example.com" (http:// or https://, no path)"#
                .into()
        }
        "copy_rate_limit_mib" => {
            "write copy_rate_limit_mib = 50 (a whole number of MiB per second; leave it out for no limit)"
                .into()
        }
        "copy_streams" => "write copy_streams = 4 (how many ranges the helper copies at once, 1 to 16)".into(),
        "copy_compression" => "write copy_compression = \"auto\" (or \"zstd\", or \"off\")".into(),
        "warm_pass_limit" => "write warm_pass_limit = 8 (pre-copy passes, 1 to 1000)".into(),
        "warm_converged_mib" => "write warm_converged_mib = 16 (a whole number of MiB)".into(),
        "warm_at_pass_limit" => "write warm_at_pass_limit = \"cut_over\" (or \"wait\")".into(),
        "retention_days" => "write retention_days = 90 (whole days, 1 or more)".into(),
        "max_event_streams" => "write max_event_streams = 2000 (1 or more)".into(),
        "keep_source" => "write keep_source = true (or false)".into(),
        "keep_source_hours" => {
            "write keep_source_hours = 72 (whole hours a kept source stays, 1 to 8760)".into()
        }
        "grid_timeout_secs" => {
            "write grid_timeout_secs = 60 (whole seconds a grid may take to answer one command, 5 to 3600)".into()
        }
        "metrics_token" => "write metrics_token = \"…\": 16 or more characters, e.g. from `openssl rand -hex 24`".into(),
        _ => r#"write each setting as key = "value"; see README.md for the keys"#.into(),
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// The key written on a given line, if the line is `key = …`.
fn key_on_line(text: &str, line: usize) -> Option<&str> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let key = l.split('=').next()?.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}

fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.split('=').next().map(str::trim) == Some(key))
        .map_or(1, |i| i + 1)
}

/// The file's text, or `None` when there is none (all defaults).
fn read_file(file: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Unreadable {
            file: file.to_owned(),
            source,
            fix: "make the file readable by the user running migctl".into(),
        }),
    }
}

/// The file's text as settings, and warnings about keys it does not know.
fn parse_file(file: &Path, text: &str) -> Result<(FileSettings, Vec<String>), ConfigError> {
    let parsed: FileSettings = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of_offset(text, s.start));
        let key = key_on_line(text, line).unwrap_or_default();
        ConfigError::Invalid {
            file: file.to_owned(),
            line,
            message: e.message().trim().to_owned(),
            fix: fix_for(key),
        }
    })?;
    if let Some(url) = &parsed.public_url {
        check_public_url(url).map_err(|message| ConfigError::Invalid {
            file: file.to_owned(),
            line: line_of_key(text, "public_url"),
            message,
            fix: fix_for("public_url"),
        })?;
    }
    let mut warnings = vec![];
    if let Ok(table) = text.parse::<toml::Table>() {
        for key in table.keys().filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            warnings.push(format!(
                "{}:{}: unknown setting `{key}` ignored (known: {})",
                file.display(),
                line_of_key(text, key),
                KNOWN_KEYS.join(", ")
            ));
        }
    }
    Ok((parsed, warnings))
}

/// A whole-number setting (`default` when unset), refused outside `range`.
fn within<T>(
    setting: &str,
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    match value {
        None => Ok(default),
        Some(n) if range.contains(&n) => Ok(n),
        Some(n) => Err(ConfigError::Value {
            setting: setting.into(),
            message: format!("{n} is not between {} and {}", range.start(), range.end()),
            fix: fix_for(setting),
        }),
    }
}

/// A MiB setting, refused past [`MAX_MIB`]: its bytes (`<< 20`) must fit.
fn at_most_a_tib(setting: &str, mib: u64) -> Result<u64, ConfigError> {
    if mib > MAX_MIB {
        return Err(ConfigError::Value {
            setting: setting.into(),
            message: format!("{mib} MiB is more than {MAX_MIB} (1 TiB)"),
            fix: fix_for(setting),
        });
    }
    Ok(mib)
}

fn check_public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("public_url {url:?} must start with http:// or https://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains('/') {
        return Err(format!(
            "public_url {url:?} must be scheme://host[:port] without a path"
        ));
    }
    Ok(())
}

/// The built site: flag/env, else `site/` beside the binary's directory
/// (cargo-leptos puts it at `target/site`, the binary at `target/<profile>/migctl`),
/// else `target/site` under the working directory.
fn default_site_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("site")))
        .filter(|p| p.join("pkg").is_dir())
        .unwrap_or_else(|| PathBuf::from("target/site"))
}

/// Resolves the settings for `config_dir`. Returns them with warnings to log.
pub fn load(
    config_dir: &Path,
    overrides: &Overrides,
) -> Result<(Settings, Vec<String>), ConfigError> {
    let text = read_file(&config_dir.join(CONFIG_FILE))?;
    resolve(config_dir, text.as_deref(), overrides)
}

/// Resolves the settings for `config_dir` from the text of its `migctl.toml`
/// (`None`: there is none). Pure but for where the built site is (and a
/// `--metrics-token-file`, when one is named), so it is
/// fuzzed (`fuzz/fuzz_targets/console_config.rs`).
pub fn resolve(
    config_dir: &Path,
    text: Option<&str>,
    overrides: &Overrides,
) -> Result<(Settings, Vec<String>), ConfigError> {
    let (file, warnings) = match text {
        Some(text) => parse_file(&config_dir.join(CONFIG_FILE), text)?,
        None => (FileSettings::default(), vec![]),
    };
    if let Some(url) = &overrides.public_url {
        check_public_url(url).map_err(|message| ConfigError::Value {
            setting: "--public-url / MIGCTL_PUBLIC_URL".into(),
            message,
            fix: fix_for("public_url"),
        })?;
    }
    let in_dir = |p: PathBuf| {
        if p.is_absolute() {
            p
        } else {
            config_dir.join(p)
        }
    };
    let default_listen: SocketAddr = DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Value {
        setting: "listen".into(),
        message: "built-in default does not parse".into(),
        fix: fix_for("listen"),
    })?;
    let settings = Settings {
        config_dir: config_dir.to_owned(),
        listen: overrides.listen.or(file.listen).unwrap_or(default_listen),
        current_grid: overrides.current_grid.clone().or(file.current_grid),
        current_app: overrides.current_app.clone().or(file.current_app),
        mode: overrides.mode.or(file.mode).unwrap_or_default(),
        grids_file: overrides
            .grids_file
            .clone()
            .unwrap_or_else(|| in_dir(file.grids_file.unwrap_or_else(|| "grids.toml".into()))),
        private_key_file: overrides.private_key_file.clone().unwrap_or_else(|| {
            in_dir(file.private_key_file.unwrap_or_else(|| "id_ed25519".into()))
        }),
        known_hosts_file: overrides.known_hosts_file.clone().unwrap_or_else(|| {
            in_dir(
                file.known_hosts_file
                    .unwrap_or_else(|| "known_hosts".into()),
            )
        }),
        public_url: overrides
            .public_url
            .clone()
            .or(file.public_url)
            .map(|u| u.trim_end_matches('/').to_owned()),
        site_root: overrides
            .site_root
            .clone()
            .unwrap_or_else(default_site_root),
        copy_rate_limit_mib: overrides
            .copy_rate_limit_mib
            .or(file.copy_rate_limit_mib)
            .map(|n| at_most_a_tib("copy_rate_limit_mib", n))
            .transpose()?
            .filter(|&n| n > 0),
        copy_streams: within(
            "copy_streams",
            overrides.copy_streams.or(file.copy_streams),
            helper::env::DEFAULT_STREAMS,
            1..=16,
        )?,
        copy_compression: match overrides.copy_compression.clone().or(file.copy_compression) {
            None => Default::default(),
            Some(v) => v.parse().map_err(|message| ConfigError::Value {
                setting: "copy_compression".into(),
                message,
                fix: fix_for("copy_compression"),
            })?,
        },
        warm_pass_limit: within(
            "warm_pass_limit",
            overrides.warm_pass_limit.or(file.warm_pass_limit),
            helper::env::DEFAULT_PASS_LIMIT,
            1..=1000,
        )?,
        warm_converged_mib: match overrides.warm_converged_mib.or(file.warm_converged_mib) {
            None => helper::env::DEFAULT_CONVERGED_BYTES >> 20,
            Some(n) => at_most_a_tib("warm_converged_mib", n)?,
        },
        warm_at_pass_limit: match overrides
            .warm_at_pass_limit
            .clone()
            .or(file.warm_at_pass_limit)
        {
            None => Default::default(),
            Some(v) => {
                v.parse()
                    .map_err(|e: operation_model::UnknownValue| ConfigError::Value {
                        setting: "warm_at_pass_limit".into(),
                        message: e.to_string(),
                        fix: fix_for("warm_at_pass_limit"),
                    })?
            }
        },
        metrics_token: match metrics_token(overrides, file.metrics_token)? {
            Some(t) if t.expose().trim().chars().count() < 16 => {
                return Err(ConfigError::Value {
                    setting: "metrics_token".into(),
                    message: "is shorter than 16 characters".into(),
                    fix: fix_for("metrics_token"),
                });
            }
            t => t.map(|t| Secret::new(t.expose().trim())),
        },
        retention_days: match overrides.retention_days.or(file.retention_days) {
            None => 90,
            Some(0) => {
                return Err(ConfigError::Value {
                    setting: "retention_days".into(),
                    message: "0 would prune an operation's log the moment it ends".into(),
                    fix: fix_for("retention_days"),
                });
            }
            Some(n) => n.min(36_500),
        },
        max_event_streams: match overrides.max_event_streams.or(file.max_event_streams) {
            None => 2000,
            Some(0) => {
                return Err(ConfigError::Value {
                    setting: "max_event_streams".into(),
                    message: "0 would refuse every monitor its live log".into(),
                    fix: fix_for("max_event_streams"),
                });
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        },
        grid_timeout_secs: within(
            "grid_timeout_secs",
            overrides.grid_timeout_secs.or(file.grid_timeout_secs),
            60,
            5..=3600,
        )?,
        keep_source: overrides.keep_source.or(file.keep_source).unwrap_or(false),
        keep_source_hours: within(
            "keep_source_hours",
            overrides.keep_source_hours.or(file.keep_source_hours),
            operation_model::DEFAULT_KEEP_SOURCE_HOURS,
            1..=operation_model::MAX_KEEP_SOURCE_HOURS,
        )?,
    };
    let mut warnings = warnings;
    if settings.public_url.is_some() && settings.metrics_token.is_none() {
        // Where public_url was set, as the other warnings say where they are.
        let place = match (&overrides.public_url, text) {
            (None, Some(text)) => format!(
                "{}:{}",
                config_dir.join(CONFIG_FILE).display(),
                line_of_key(text, "public_url")
            ),
            _ => "--public-url / MIGCTL_PUBLIC_URL".to_owned(),
        };
        warnings.push(format!(
            "{place}: public_url is set and metrics_token is not: /metrics refuses every request \
             (behind a proxy every client looks like loopback); set metrics_token to scrape it"
        ));
    }
    Ok((settings, warnings))
}

/// The token from `MIGCTL_METRICS_TOKEN`, else the file `--metrics-token-file`
/// names, else `migctl.toml`'s.
fn metrics_token(
    overrides: &Overrides,
    from_file: Option<Secret>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(t) = &overrides.metrics_token {
        return Ok(Some(t.clone()));
    }
    if let Some(path) = &overrides.metrics_token_file {
        return match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(Secret::new(t))),
            Err(e) => Err(ConfigError::Value {
                setting: "metrics_token_file".into(),
                message: format!("cannot read {}: {e}", path.display()),
                fix: "name a file readable by the user running migctl that holds the token".into(),
            }),
        };
    }
    Ok(from_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        load(dir.path(), &Overrides::default())
    }

    fn error_of(text: &str) -> String {
        load_text(text)
            .expect_err("the file should be refused")
            .to_string()
    }

    #[test]
    fn a_missing_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let (s, warnings) = load(dir.path(), &Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.mode, Mode::Both);
        assert_eq!(s.grids_file, dir.path().join("grids.toml"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_bad_mode_names_file_line_and_fix() {
        let err = error_of("listen = \"127.0.0.1:9000\"\nmode = \"fly\"\n");
        assert!(err.contains("migctl.toml:2:"), "{err}");
        assert!(err.contains("unknown variant `fly`"), "{err}");
        assert!(
            err.contains(r#"fix: write mode = "migrate", "snapshot" or "both""#),
            "{err}"
        );
    }

    #[test]
    fn mib_settings_past_a_tib_are_refused_not_wrapped() {
        // `<< 20` to bytes wrapped silently: 2^44 MiB/s became no limit.
        for (key, n) in [
            ("copy_rate_limit_mib", 1u64 << 44),
            ("warm_converged_mib", (1u64 << 20) + 1),
        ] {
            let err = error_of(&format!("{key} = {n}\n"));
            assert!(err.starts_with(key) && err.contains("1 TiB"), "{err}");
        }
        let (s, _) =
            load_text("copy_rate_limit_mib = 1048576\nwarm_converged_mib = 1048576\n").unwrap();
        assert_eq!(s.copy_rate_limit_mib, Some(MAX_MIB));
        assert_eq!(s.warm_converged_mib, MAX_MIB);
    }

    #[test]
    fn a_grid_timeout_outside_its_range_is_refused_and_one_inside_is_kept() {
        for n in [0, 4, 3601] {
            let err = error_of(&format!("grid_timeout_secs = {n}\n"));
            assert!(
                err.starts_with("grid_timeout_secs")
                    && err.contains("fix: write grid_timeout_secs = 60"),
                "{err}"
            );
        }
        let (s, warnings) = load_text("grid_timeout_secs = 10\n").unwrap();
        assert_eq!((s.grid_timeout_secs, warnings.len()), (10, 0));
        assert_eq!(load_text("").unwrap().0.grid_timeout_secs, 60);
    }

    #[test]
    fn a_hostile_grid_name_is_refused_with_the_rule() {
        let err = error_of("\n\ncurrent_grid = \"a;rm -rf /\"\n");
        assert!(err.contains("migctl.toml:3:"), "{err}");
        assert!(err.contains("contains ';'"), "{err}");
        assert!(err.contains("fix: write current_grid"), "{err}");
    }

    #[test]
    fn broken_toml_and_bad_addresses_point_at_the_line() {
        let err = error_of("mode = \"both\"\nlisten = 8080\n");
        assert!(err.contains("migctl.toml:2:"), "{err}");
        assert!(err.contains("fix: write an address and port"), "{err}");
        let err = error_of("mode = \"both\"\nthis is not toml\n");
        assert!(err.contains("migctl.toml:2:"), "{err}");
        let err = error_of("public_url = \"migctl.example.com\"\n");
        assert!(err.contains("must start with http:// or https://"), "{err}");
    }

    #[test]
    fn unknown_keys_are_warnings_with_their_line() {
        let (s, warnings) = load_text("mode = \"snapshot\"\nlisen = \"x\"\n").unwrap();
        assert_eq!(s.mode, Mode::Snapshot);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("migctl.toml:2: unknown setting `lisen`"),
            "{warnings:?}"
        );
    }

    /// Behind a proxy `/metrics` needs its token; the warning names the line
    /// of `public_url`, as every warning about the file does.
    #[test]
    fn a_public_url_without_a_metrics_token_is_warned_with_its_line() {
        let (_, warnings) =
            load_text("mode = \"both\"\npublic_url = \"https://mig.example.com\"\n").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("migctl.toml:2: public_url is set and metrics_token is not"),
            "{warnings:?}"
        );
        let (s, warnings) = load_text(
            "public_url = \"https://mig.example.com\"\nmetrics_token = \"a-token-of-some-length\"\n",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(format!("{:?}", s.metrics_token), "Some(Secret(redacted))");
        assert!(
            !format!("{s:?}").contains("a-token-of-some-length"),
            "Debug hides the secret"
        );
    }

    #[test]
    fn flags_and_env_win_over_the_file_and_paths_resolve_in_the_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "mode = \"snapshot\"\ncurrent_grid = \"east\"\ngrids_file = \"inv/grids.toml\"\n\
             public_url = \"https://mig.example.com/\"\n",
        )
        .unwrap();
        let over = Overrides {
            mode: Some(Mode::Migrate),
            ..Overrides::default()
        };
        let (s, _) = load(dir.path(), &over).unwrap();
        assert_eq!(s.mode, Mode::Migrate);
        assert_eq!(s.current_grid.as_ref().map(|g| g.as_str()), Some("east"));
        assert_eq!(s.grids_file, dir.path().join("inv/grids.toml"));
        assert_eq!(s.public_url.as_deref(), Some("https://mig.example.com"));
        assert!(s.served_over_tls());
    }
}
