//! The controller dialect, v1: commands as types, their argv form, and the
//! replies as types. One SSH exec request per command; argv is split like a
//! shell (no shell ever runs); exit status 0 on success, otherwise one line
//! `error: <code>: <message>` on stderr. `docs/controller-dialect.md` is the
//! operator's description of the same.

use crate::name::{AppName, GridName, NameError, TemplateName, VolumeName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// 2: `vol write --hash-blocks B` answers with the digests of what it stored.
/// 3: `vol hash --algorithm xxh3`, `--compress zstd` on `vol read`/`vol write`,
/// and `vol pull` (a controller reads another grid's volume itself).
/// 4: `vol read`, `vol hash` and `vol pull` read a running app's volumes
/// (as they are at that moment; warm migration's pre-copy passes), and
/// `vol hash` of a running app costs what changed since the last one
/// where the grid tracks the app's writes.
pub const DIALECT_VERSION: u32 = 4;

/// Longest command line a controller accepts.
pub const MAX_COMMAND_LINE: usize = 64 * 1024;
/// Property values travel in argv; keep them to one readable line.
pub const MAX_PROPERTY_VALUE: usize = 8 * 1024;

/// The stable error codes of the dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    Exists,
    BadState,
    BadRequest,
    Denied,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::BadState => "bad_state",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Denied => "denied",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        [
            ErrorCode::NotFound,
            ErrorCode::Exists,
            ErrorCode::BadState,
            ErrorCode::BadRequest,
            ErrorCode::Denied,
            ErrorCode::Internal,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reply: what a controller writes on stderr with a non-zero exit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::BadRequest, message)
    }

    /// The stderr line, newline included.
    pub fn to_line(&self) -> String {
        let one_line = self.message.replace(['\n', '\r'], " ");
        format!("error: {}: {}\n", self.code, one_line)
    }

    /// Reads the error line from a controller's stderr (the last such line
    /// wins). Its message is kept as [`printable`] text.
    pub fn from_stderr(stderr: &str) -> Option<Refusal> {
        stderr.lines().rev().find_map(|l| {
            let rest = l.strip_prefix("error: ")?;
            let (code, message) = rest.split_once(": ")?;
            Some(Refusal::new(ErrorCode::parse(code)?, printable(message)))
        })
    }

    /// What a command that exited with `status` (not 0) was refused for:
    /// its error line, else the status and what it wrote on stderr.
    pub fn from_reply(stderr: &[u8], status: u32) -> Refusal {
        let text = String::from_utf8_lossy(stderr);
        Refusal::from_stderr(&text).unwrap_or_else(|| {
            Refusal::new(
                ErrorCode::Internal,
                printable(&format!("exit status {status}: {}", text.trim())),
            )
        })
    }
}

/// The most of a controller's message the console keeps.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// A controller's words reach pages, logs and terminals: one line without
/// control characters (no terminal escapes, no forged log lines), at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn printable(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS + 1)
        .collect();
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        out.push('…');
    }
    out
}

impl From<NameError> for Refusal {
    fn from(e: NameError) -> Self {
        Refusal::bad_request(e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    Stopped,
    Starting,
    Running,
    Stopping,
    Failed,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Stopped => "stopped",
            AppState::Starting => "starting",
            AppState::Running => "running",
            AppState::Stopping => "stopping",
            AppState::Failed => "failed",
        }
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `app stop` ended: by itself within the timeout, or forced (a
/// process killed, a virtual machine powered off) when the timeout ran out.
/// A forced stop loses what the app had not written yet; the operator is
/// told so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HowStopped {
    /// It was not running (stopped already, or failed and now ended).
    NotRunning,
    /// It stopped by itself: the process exited, the guest shut down.
    ByItself,
    /// It did not stop within the timeout and was forced.
    Forced,
}

impl HowStopped {
    pub fn as_str(self) -> &'static str {
        match self {
            HowStopped::NotRunning => "not_running",
            HowStopped::ByItself => "by_itself",
            HowStopped::Forced => "forced",
        }
    }
}

/// `app stop`'s reply: the app as it is now, and how it stopped (absent
/// from controllers older than this field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopReply {
    #[serde(flatten)]
    pub info: AppInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<HowStopped>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridInfo {
    pub name: GridName,
    pub dialect: u32,
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub apps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    pub name: AppName,
    pub state: AppState,
    pub template: Option<TemplateName>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: VolumeName,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub name: AppName,
    pub state: AppState,
    pub template: Option<TemplateName>,
    pub properties: BTreeMap<String, String>,
    pub volumes: Vec<VolumeSpec>,
    /// The virtual machine an app of a libvirt host is; none on gridsim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

/// A virtual machine's shape, as a libvirt host describes it in `app info`
/// and defines it again from `app create`: what the target host needs to
/// make the same machine on its own storage, and nothing of the source
/// host's (no paths, no UUID, no domain name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub memory_mib: u64,
    pub vcpus: u32,
    /// e.g. `x86_64`.
    pub arch: String,
    /// e.g. `pc`, `q35`.
    pub machine_type: String,
    pub boot: Boot,
    /// The app's volumes as the machine's disks, in order.
    pub disks: Vec<MachineDisk>,
    /// A serial console (the app's log).
    pub serial_console: bool,
    /// Devices of the source's definition this shape does not carry (e.g.
    /// `interface`); a host refuses to create a machine that lists any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_carried: Vec<String>,
}

impl Machine {
    /// Why this machine cannot be made again on another host, if it cannot:
    /// what the source's definition holds that migctl does not carry. One
    /// rule for the console's pre-flight (before anything stops) and the
    /// target host's `app create`.
    pub fn not_movable(&self) -> Option<String> {
        (!self.not_carried.is_empty()).then(|| {
            format!(
                "the machine has what migctl does not carry between hosts yet: {}; it carries raw disk images, serial consoles and direct kernel boot",
                self.not_carried.join("; ")
            )
        })
    }
}

/// How a machine boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Boot {
    /// From its first disk.
    Disk,
    /// A kernel and an initrd given to the machine directly; they are the
    /// app's volumes [`Boot::KERNEL`] and [`Boot::INITRD`], copied like disks.
    Kernel { cmdline: String },
}

impl Boot {
    pub const KERNEL: &'static str = "boot-kernel";
    pub const INITRD: &'static str = "boot-initrd";
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDisk {
    pub volume: VolumeName,
    /// The guest's name for it, e.g. `vda`.
    pub dev: String,
    /// e.g. `virtio`, `sata`.
    pub bus: String,
}

/// What `app create` reads on stdin: an empty app's shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(default)]
    pub template: Option<TemplateName>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

impl From<&AppInfo> for Descriptor {
    fn from(app: &AppInfo) -> Self {
        Descriptor {
            template: app.template.clone(),
            properties: app.properties.clone(),
            volumes: app.volumes.clone(),
            machine: app.machine.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub at: String,
    pub text: String,
}

pub use operation_model::HashAlgorithm;

/// `--algorithm NAME` of `vol hash`.
fn hash_algorithm(s: &str) -> Result<HashAlgorithm, Refusal> {
    s.parse()
        .map_err(|_| Refusal::bad_request(format!("--algorithm {s:?} is not one of blake3, xxh3")))
}

/// How volume bytes travel on a channel (dialect 3): as they are, or as
/// one zstd stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }

    fn parse(s: &str) -> Result<Compression, Refusal> {
        match s {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            other => Err(Refusal::bad_request(format!(
                "--compress {other:?} is not one of none, zstd"
            ))),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `vol hash`: one entry per block; `None` (JSON `null`) for an all-zero block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHashes {
    pub size: u64,
    pub block_size: u64,
    pub offset: u64,
    /// Absent from a dialect 1–2 controller, which only knows BLAKE3.
    #[serde(default)]
    pub algorithm: HashAlgorithm,
    pub hashes: Vec<Option<String>>,
}

/// What `vol write --hash-blocks B` stored: one BLAKE3 hex digest per
/// block of B bytes from `offset` (`null` for an all-zero block; the last
/// may be shorter), computed from the bytes as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReceipt {
    pub written: u64,
    pub block_size: u64,
    pub offset: u64,
    pub hashes: Vec<Option<String>>,
}

/// What `vol pull` moved: the bytes written, the bytes that crossed the
/// wire (fewer when compressed), and with `--hash-blocks`, the BLAKE3
/// digest of each block as stored (as [`WriteReceipt`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReceipt {
    pub written: u64,
    pub wire_bytes: u64,
    pub offset: u64,
    #[serde(default)]
    pub block_size: Option<u64>,
    #[serde(default)]
    pub hashes: Vec<Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    pub name: TemplateName,
    pub description: String,
}

/// `APP:VOL`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VolRef {
    pub app: AppName,
    pub vol: VolumeName,
}

impl VolRef {
    pub fn new(app: AppName, vol: VolumeName) -> Self {
        VolRef { app, vol }
    }

    pub fn parse(s: &str) -> Result<VolRef, Refusal> {
        let (app, vol) = s
            .split_once(':')
            .ok_or_else(|| Refusal::bad_request(format!("{s:?} is not APP:VOL")))?;
        Ok(VolRef {
            app: AppName::new(app)?,
            vol: VolumeName::new(vol)?,
        })
    }
}

impl fmt::Display for VolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.app, self.vol)
    }
}

/// A property `key=value`. Keys are names; values one line of printable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
}

impl Property {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<Property, Refusal> {
        let (key, value) = (key.into(), value.into());
        let mut chars = key.chars();
        let key_ok = key.len() <= 64
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !key_ok {
            return Err(Refusal::bad_request(format!(
                "property key {key:?} must be a letter or `_`, then letters, digits, `_` or `.`"
            )));
        }
        if value.len() > MAX_PROPERTY_VALUE || value.chars().any(char::is_control) {
            return Err(Refusal::bad_request(format!(
                "property {key}: the value must be one line of at most {MAX_PROPERTY_VALUE} bytes"
            )));
        }
        Ok(Property { key, value })
    }

    fn parse(arg: &str) -> Result<Property, Refusal> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| Refusal::bad_request(format!("{arg:?} is not key=value")))?;
        Property::new(k, v)
    }
}

/// Every command of the dialect (see [`DIALECT_VERSION`] for what each version added).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    GridInfo,
    TemplateList,
    AppList,
    AppInfo {
        app: AppName,
    },
    AppProvision {
        template: TemplateName,
        app: AppName,
        properties: Vec<Property>,
    },
    /// Descriptor (JSON) on stdin.
    AppCreate {
        app: AppName,
    },
    AppStart {
        app: AppName,
    },
    AppStop {
        app: AppName,
        timeout_secs: Option<u64>,
    },
    AppDestroy {
        app: AppName,
    },
    AppLog {
        app: AppName,
        follow: bool,
        since: Option<u64>,
    },
    VolRead {
        vol: VolRef,
        offset: u64,
        length: Option<u64>,
        compress: Compression,
    },
    /// Bytes on stdin. With `hash_blocks` (dialect 2), the controller
    /// answers with the BLAKE3 digest of each block as it stored it.
    VolWrite {
        vol: VolRef,
        offset: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
    },
    VolHash {
        vol: VolRef,
        block_size: u64,
        offset: u64,
        length: Option<u64>,
        algorithm: HashAlgorithm,
    },
    /// Dialect 3: the controller reads `length` bytes at `offset` of `from`
    /// on grid `from_grid` (over its own trusted connection to that grid's
    /// controller) and writes them at the same offset of `vol`.
    VolPull {
        vol: VolRef,
        from_grid: GridName,
        from: VolRef,
        offset: u64,
        length: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
    },
    VolChecksum {
        vol: VolRef,
    },
}

/// Flags of the form `--name VALUE` or `--name`, after the positionals.
struct Args<'a> {
    positional: Vec<&'a str>,
    flags: BTreeMap<&'a str, Option<&'a str>>,
}

impl<'a> Args<'a> {
    fn split(argv: &'a [String], valued: &[&str]) -> Result<Args<'a>, Refusal> {
        let mut positional = vec![];
        let mut flags = BTreeMap::new();
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let value =
                    if valued.contains(&name) {
                        Some(it.next().map(String::as_str).ok_or_else(|| {
                            Refusal::bad_request(format!("--{name} needs a value"))
                        })?)
                    } else {
                        None
                    };
                if flags.insert(name, value).is_some() {
                    return Err(Refusal::bad_request(format!("--{name} given twice")));
                }
            } else {
                positional.push(a.as_str());
            }
        }
        Ok(Args { positional, flags })
    }

    fn only(&self, allowed: &[&str]) -> Result<(), Refusal> {
        match self.flags.keys().find(|f| !allowed.contains(f)) {
            Some(f) => Err(Refusal::bad_request(format!("unknown option --{f}"))),
            None => Ok(()),
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, Refusal> {
        match self.flags.get(name) {
            Some(Some(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| Refusal::bad_request(format!("--{name} {v:?} is not a whole number"))),
            _ => Ok(None),
        }
    }

    fn compression(&self) -> Result<Compression, Refusal> {
        match self.flags.get("compress").copied().flatten() {
            Some(v) => Compression::parse(v),
            None => Ok(Compression::None),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    fn exactly(&self, n: usize, usage: &str) -> Result<&[&'a str], Refusal> {
        if self.positional.len() == n {
            Ok(&self.positional)
        } else {
            Err(Refusal::bad_request(format!("usage: {usage}")))
        }
    }
}

/// A parsed request: the command and whether the caller asked for JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    pub json: bool,
}

impl Command {
    /// The argv a client sends (always asking for JSON replies).
    pub fn to_argv(&self) -> Vec<String> {
        let s = |x: &str| x.to_owned();
        let mut v: Vec<String> = match self {
            Command::GridInfo => vec![s("grid"), s("info")],
            Command::TemplateList => vec![s("template"), s("list")],
            Command::AppList => vec![s("app"), s("list")],
            Command::AppInfo { app } => vec![s("app"), s("info"), app.to_string()],
            Command::AppProvision {
                template,
                app,
                properties,
            } => {
                let mut v = vec![
                    s("app"),
                    s("provision"),
                    template.to_string(),
                    app.to_string(),
                ];
                v.extend(properties.iter().map(|p| format!("{}={}", p.key, p.value)));
                v
            }
            Command::AppCreate { app } => vec![s("app"), s("create"), app.to_string()],
            Command::AppStart { app } => vec![s("app"), s("start"), app.to_string()],
            Command::AppStop { app, timeout_secs } => {
                let mut v = vec![s("app"), s("stop"), app.to_string()];
                if let Some(t) = timeout_secs {
                    v.extend([s("--timeout"), t.to_string()]);
                }
                v
            }
            Command::AppDestroy { app } => vec![s("app"), s("destroy"), app.to_string()],
            Command::AppLog { app, follow, since } => {
                let mut v = vec![s("app"), s("log"), app.to_string()];
                if *follow {
                    v.push(s("--follow"));
                }
                if let Some(seq) = since {
                    v.extend([s("--since"), seq.to_string()]);
                }
                v
            }
            Command::VolRead {
                vol,
                offset,
                length,
                compress,
            } => {
                let mut v = vec![s("vol"), s("read"), vol.to_string()];
                if *offset != 0 {
                    v.extend([s("--offset"), offset.to_string()]);
                }
                if let Some(l) = length {
                    v.extend([s("--length"), l.to_string()]);
                }
                if *compress != Compression::None {
                    v.extend([s("--compress"), compress.to_string()]);
                }
                v
            }
            Command::VolWrite {
                vol,
                offset,
                hash_blocks,
                compress,
            } => {
                let mut v = vec![s("vol"), s("write"), vol.to_string()];
                if *offset != 0 {
                    v.extend([s("--offset"), offset.to_string()]);
                }
                if let Some(b) = hash_blocks {
                    v.extend([s("--hash-blocks"), b.to_string()]);
                }
                if *compress != Compression::None {
                    v.extend([s("--compress"), compress.to_string()]);
                }
                v
            }
            Command::VolPull {
                vol,
                from_grid,
                from,
                offset,
                length,
                hash_blocks,
                compress,
            } => {
                let mut v = vec![
                    s("vol"),
                    s("pull"),
                    vol.to_string(),
                    s("--from-grid"),
                    from_grid.to_string(),
                    s("--from"),
                    from.to_string(),
                    s("--offset"),
                    offset.to_string(),
                    s("--length"),
                    length.to_string(),
                ];
                if let Some(b) = hash_blocks {
                    v.extend([s("--hash-blocks"), b.to_string()]);
                }
                if *compress != Compression::None {
                    v.extend([s("--compress"), compress.to_string()]);
                }
                v
            }
            Command::VolHash {
                vol,
                block_size,
                offset,
                length,
                algorithm,
            } => {
                let mut v = vec![
                    s("vol"),
                    s("hash"),
                    vol.to_string(),
                    s("--block-size"),
                    block_size.to_string(),
                ];
                if *offset != 0 {
                    v.extend([s("--offset"), offset.to_string()]);
                }
                if let Some(l) = length {
                    v.extend([s("--length"), l.to_string()]);
                }
                if *algorithm != HashAlgorithm::Blake3 {
                    v.extend([s("--algorithm"), algorithm.to_string()]);
                }
                v
            }
            Command::VolChecksum { vol } => vec![s("vol"), s("checksum"), vol.to_string()],
        };
        if self.has_json_reply() {
            v.push(s("--json"));
        }
        v
    }

    /// The exec line: argv joined with shell quoting.
    pub fn to_line(&self) -> String {
        shell_words::join(self.to_argv())
    }

    fn has_json_reply(&self) -> bool {
        !matches!(
            self,
            Command::VolRead { .. }
                | Command::VolWrite {
                    hash_blocks: None,
                    ..
                }
        )
    }

    /// The first dialect version that has this command with these options.
    pub fn since_dialect(&self) -> u32 {
        match self {
            Command::VolPull { .. }
            | Command::VolHash {
                algorithm: HashAlgorithm::Xxh3,
                ..
            } => 3,
            Command::VolRead { compress, .. } | Command::VolWrite { compress, .. }
                if *compress != Compression::None =>
            {
                3
            }
            Command::VolWrite {
                hash_blocks: Some(_),
                ..
            } => 2,
            _ => 1,
        }
    }

    /// How long a client waits for this command's reply, `base` being its
    /// limit for a command that does not wait on purpose: `app stop` waits
    /// up to its timeout for the app before it forces it, and then answers.
    pub fn time_limit(&self, base: std::time::Duration) -> std::time::Duration {
        match self {
            Command::AppStop { timeout_secs, .. } => {
                base + std::time::Duration::from_secs(
                    timeout_secs.unwrap_or(crate::serve::DEFAULT_STOP_TIMEOUT),
                )
            }
            _ => base,
        }
    }

    /// A short name for logs and errors, e.g. `app stop`.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::GridInfo => "grid info",
            Command::TemplateList => "template list",
            Command::AppList => "app list",
            Command::AppInfo { .. } => "app info",
            Command::AppProvision { .. } => "app provision",
            Command::AppCreate { .. } => "app create",
            Command::AppStart { .. } => "app start",
            Command::AppStop { .. } => "app stop",
            Command::AppDestroy { .. } => "app destroy",
            Command::AppLog { .. } => "app log",
            Command::VolRead { .. } => "vol read",
            Command::VolWrite { .. } => "vol write",
            Command::VolHash { .. } => "vol hash",
            Command::VolPull { .. } => "vol pull",
            Command::VolChecksum { .. } => "vol checksum",
        }
    }
}

fn check_block_size(flag: &str, b: u64) -> Result<(), Refusal> {
    if b == 0 || !b.is_multiple_of(4096) || b > 64 << 20 {
        return Err(Refusal::bad_request(format!(
            "{flag} must be a multiple of 4096 up to 64 MiB"
        )));
    }
    Ok(())
}

/// `--hash-blocks B`: a valid block size, and blocks counted from the
/// volume's start.
fn check_hash_blocks(offset: u64, hash_blocks: Option<u64>) -> Result<(), Refusal> {
    if let Some(b) = hash_blocks {
        check_block_size("--hash-blocks", b)?;
        if !offset.is_multiple_of(b) {
            return Err(Refusal::bad_request(format!(
                "--offset {offset} is not a multiple of --hash-blocks {b}: blocks are counted from the volume's start"
            )));
        }
    }
    Ok(())
}

impl Request {
    /// Parses an exec line as a controller receives it.
    pub fn parse_line(line: &str) -> Result<Request, Refusal> {
        if line.len() > MAX_COMMAND_LINE {
            return Err(Refusal::bad_request(format!(
                "the command line is {} bytes; at most {MAX_COMMAND_LINE} are accepted",
                line.len()
            )));
        }
        let argv = shell_words::split(line)
            .map_err(|e| Refusal::bad_request(format!("cannot split the command line: {e}")))?;
        Request::parse(&argv)
    }

    pub fn parse(argv: &[String]) -> Result<Request, Refusal> {
        let (noun, verb) = match argv {
            [n, v, ..] => (n.as_str(), v.as_str()),
            _ => {
                return Err(Refusal::bad_request(
                    "usage: grid info | template list | app … | vol …",
                ));
            }
        };
        let rest = &argv[2..];
        let valued = [
            "timeout",
            "since",
            "offset",
            "length",
            "block-size",
            "hash-blocks",
            "algorithm",
            "compress",
            "from",
            "from-grid",
        ];
        let a = Args::split(rest, &valued)?;
        let json = a.has("json");
        let command = match (noun, verb) {
            ("grid", "info") => {
                a.only(&["json"])?;
                a.exactly(0, "grid info [--json]")?;
                Command::GridInfo
            }
            ("template", "list") => {
                a.only(&["json"])?;
                a.exactly(0, "template list [--json]")?;
                Command::TemplateList
            }
            ("app", "list") => {
                a.only(&["json"])?;
                a.exactly(0, "app list [--json]")?;
                Command::AppList
            }
            ("app", "info") => {
                a.only(&["json"])?;
                let p = a.exactly(1, "app info NAME [--json]")?;
                Command::AppInfo {
                    app: AppName::new(p[0])?,
                }
            }
            ("app", "provision") => {
                a.only(&["json"])?;
                if a.positional.len() < 2 {
                    return Err(Refusal::bad_request(
                        "usage: app provision TEMPLATE NAME [key=value]...",
                    ));
                }
                Command::AppProvision {
                    template: TemplateName::new(a.positional[0])?,
                    app: AppName::new(a.positional[1])?,
                    properties: a.positional[2..]
                        .iter()
                        .map(|p| Property::parse(p))
                        .collect::<Result<_, _>>()?,
                }
            }
            ("app", "create") => {
                a.only(&["json"])?;
                let p = a.exactly(1, "app create NAME < descriptor.json")?;
                Command::AppCreate {
                    app: AppName::new(p[0])?,
                }
            }
            ("app", "start") | ("app", "destroy") => {
                a.only(&["json"])?;
                let p = a.exactly(1, "app start|destroy NAME")?;
                let app = AppName::new(p[0])?;
                if verb == "start" {
                    Command::AppStart { app }
                } else {
                    Command::AppDestroy { app }
                }
            }
            ("app", "stop") => {
                a.only(&["json", "timeout"])?;
                let p = a.exactly(1, "app stop NAME [--timeout SECONDS]")?;
                Command::AppStop {
                    app: AppName::new(p[0])?,
                    timeout_secs: a.number("timeout")?,
                }
            }
            ("app", "log") => {
                a.only(&["json", "follow", "since"])?;
                let p = a.exactly(1, "app log NAME [--follow] [--since SEQ] [--json]")?;
                Command::AppLog {
                    app: AppName::new(p[0])?,
                    follow: a.has("follow"),
                    since: a.number("since")?,
                }
            }
            ("vol", "read") => {
                a.only(&["offset", "length", "compress"])?;
                let p = a.exactly(
                    1,
                    "vol read APP:VOL [--offset N] [--length M] [--compress zstd]",
                )?;
                Command::VolRead {
                    vol: VolRef::parse(p[0])?,
                    offset: a.number("offset")?.unwrap_or(0),
                    length: a.number("length")?,
                    compress: a.compression()?,
                }
            }
            ("vol", "write") => {
                a.only(&["offset", "hash-blocks", "json", "compress"])?;
                let p = a.exactly(
                    1,
                    "vol write APP:VOL [--offset N] [--hash-blocks B [--json]] [--compress zstd] < bytes",
                )?;
                let offset = a.number("offset")?.unwrap_or(0);
                let hash_blocks = a.number("hash-blocks")?;
                check_hash_blocks(offset, hash_blocks)?;
                Command::VolWrite {
                    vol: VolRef::parse(p[0])?,
                    offset,
                    hash_blocks,
                    compress: a.compression()?,
                }
            }
            ("vol", "pull") => {
                a.only(&[
                    "from-grid",
                    "from",
                    "offset",
                    "length",
                    "hash-blocks",
                    "compress",
                    "json",
                ])?;
                let usage = "vol pull APP:VOL --from-grid GRID --from APP:VOL --offset N --length M [--hash-blocks B] [--compress zstd] [--json]";
                let p = a.exactly(1, usage)?;
                let need = |name: &str| {
                    a.flags
                        .get(name)
                        .copied()
                        .flatten()
                        .ok_or_else(|| Refusal::bad_request(format!("usage: {usage}")))
                };
                let offset = a.number("offset")?.unwrap_or(0);
                let hash_blocks = a.number("hash-blocks")?;
                check_hash_blocks(offset, hash_blocks)?;
                Command::VolPull {
                    vol: VolRef::parse(p[0])?,
                    from_grid: GridName::new(need("from-grid")?)?,
                    from: VolRef::parse(need("from")?)?,
                    offset,
                    length: a
                        .number("length")?
                        .ok_or_else(|| Refusal::bad_request(format!("usage: {usage}")))?,
                    hash_blocks,
                    compress: a.compression()?,
                }
            }
            ("vol", "hash") => {
                a.only(&["json", "block-size", "offset", "length", "algorithm"])?;
                let p = a.exactly(
                    1,
                    "vol hash APP:VOL --block-size B [--offset N] [--length M] [--algorithm blake3|xxh3] [--json]",
                )?;
                let block_size = a
                    .number("block-size")?
                    .ok_or_else(|| Refusal::bad_request("vol hash needs --block-size B"))?;
                check_block_size("--block-size", block_size)?;
                Command::VolHash {
                    vol: VolRef::parse(p[0])?,
                    block_size,
                    offset: a.number("offset")?.unwrap_or(0),
                    length: a.number("length")?,
                    algorithm: match a.flags.get("algorithm").copied().flatten() {
                        Some(v) => hash_algorithm(v)?,
                        None => HashAlgorithm::Blake3,
                    },
                }
            }
            ("vol", "checksum") => {
                a.only(&["json"])?;
                let p = a.exactly(1, "vol checksum APP:VOL [--json]")?;
                Command::VolChecksum {
                    vol: VolRef::parse(p[0])?,
                }
            }
            (n, v) => {
                return Err(Refusal::bad_request(format!(
                    "unknown command `{n} {v}`; the dialect v{DIALECT_VERSION} commands are in docs/controller-dialect.md"
                )));
            }
        };
        Ok(Request { command, json })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(s: &str) -> AppName {
        AppName::new(s).unwrap()
    }

    fn vol(a: &str, v: &str) -> VolRef {
        VolRef::new(app(a), VolumeName::new(v).unwrap())
    }

    #[test]
    fn every_command_round_trips_through_its_line() {
        let commands = vec![
            Command::GridInfo,
            Command::TemplateList,
            Command::AppList,
            Command::AppInfo { app: app("shop") },
            Command::AppProvision {
                template: TemplateName::new("MigHelper").unwrap(),
                app: app("MigHelper_shop"),
                properties: vec![
                    Property::new("_env", "a=b c='d e' $(x)").unwrap(),
                    Property::new("mode", "migrate").unwrap(),
                ],
            },
            Command::AppCreate { app: app("shop") },
            Command::AppStart { app: app("shop") },
            Command::AppStop {
                app: app("shop"),
                timeout_secs: Some(30),
            },
            Command::AppStop {
                app: app("shop"),
                timeout_secs: None,
            },
            Command::AppDestroy { app: app("shop") },
            Command::AppLog {
                app: app("shop"),
                follow: true,
                since: Some(7),
            },
            Command::VolRead {
                vol: vol("shop", "data"),
                offset: 4096,
                length: Some(8192),
                compress: Compression::None,
            },
            Command::VolRead {
                vol: vol("shop", "data"),
                offset: 0,
                length: None,
                compress: Compression::Zstd,
            },
            Command::VolWrite {
                vol: vol("shop", "data"),
                offset: 0,
                hash_blocks: None,
                compress: Compression::None,
            },
            Command::VolWrite {
                vol: vol("shop", "data"),
                offset: 8 << 20,
                hash_blocks: Some(4 << 20),
                compress: Compression::Zstd,
            },
            Command::VolHash {
                vol: vol("shop", "data"),
                block_size: 1 << 20,
                offset: 0,
                length: None,
                algorithm: HashAlgorithm::Blake3,
            },
            Command::VolHash {
                vol: vol("shop", "data"),
                block_size: 1 << 20,
                offset: 4 << 20,
                length: Some(1 << 20),
                algorithm: HashAlgorithm::Xxh3,
            },
            Command::VolPull {
                vol: vol("shop2", "data"),
                from_grid: GridName::new("east").unwrap(),
                from: vol("shop", "data"),
                offset: 8 << 20,
                length: 3 << 20,
                hash_blocks: Some(4 << 20),
                compress: Compression::Zstd,
            },
            Command::VolPull {
                vol: vol("shop2", "data"),
                from_grid: GridName::new("east").unwrap(),
                from: vol("shop", "data"),
                offset: 0,
                length: 0,
                hash_blocks: None,
                compress: Compression::None,
            },
            Command::VolChecksum {
                vol: vol("shop", "boot"),
            },
        ];
        for c in commands {
            let parsed = Request::parse_line(&c.to_line()).unwrap();
            assert_eq!(parsed.command, c, "{}", c.to_line());
        }
    }

    #[test]
    fn hostile_and_malformed_lines_are_bad_requests() {
        for line in [
            "app info 'a;rm -rf /'",
            "app info '$(x)'",
            "app info 'my app'",
            "app info café",
            "vol read shop",
            "vol hash shop:data --block-size 1000",
            "vol hash shop:data --block-size 4096 --algorithm md5",
            "vol read shop:data --compress gzip",
            "vol pull shop:data --from shop:data --offset 0 --length 1",
            "vol pull shop:data --from-grid east --from shop:data --offset 0",
            "vol pull shop:data --from-grid 'e;x' --from shop:data --offset 0 --length 1",
            "app stop shop --timeout soon",
            "app info shop --force",
            "app teleport shop",
            "app info 'unterminated",
            "",
        ] {
            let err = Request::parse_line(line).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{line}: {err}");
        }
        let long = format!("app info {}", "a".repeat(10_000));
        assert!(
            Request::parse_line(&long)
                .unwrap_err()
                .message
                .contains("at most 64")
        );
    }

    #[test]
    fn refusals_survive_stderr() {
        let r = Refusal::new(ErrorCode::BadState, "app shop is running;\nstop it first");
        let line = r.to_line();
        assert_eq!(
            line,
            "error: bad_state: app shop is running; stop it first\n"
        );
        let back = Refusal::from_stderr(&format!("some noise\n{line}")).unwrap();
        assert_eq!(back.code, ErrorCode::BadState);
        assert_eq!(Refusal::from_stderr("error: nonsense: x"), None);
        // A hostile controller's escapes and floods reach no terminal or log.
        let r = Refusal::from_reply(b"error: internal: \x1b[2J\x1b[31mred\r", 1);
        assert_eq!(r.message, " [2J [31mred ");
        let r = Refusal::from_reply(&[b'x'; 70_000], 7);
        assert_eq!(r.code, ErrorCode::Internal);
        assert!(r.message.starts_with("exit status 7: xxx") && r.message.ends_with('…'));
        assert_eq!(r.message.chars().count(), MAX_MESSAGE_CHARS);
    }
}
