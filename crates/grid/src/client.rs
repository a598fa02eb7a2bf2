//! The SSH client of the controller dialect, on russh. One connection per
//! grid, many channels on it (one per command). Host keys are checked
//! against known_hosts; every command has a deadline, streams an idle
//! deadline, and a dropped connection surfaces as [`GridError::Disconnected`].

use crate::dialect::{
    AppInfo, AppSummary, BlockHashes, Checksum, Command, Compression, Descriptor, GridInfo,
    HashAlgorithm, LogLine, Property, PullReceipt, Refusal, StopReply, TemplateInfo, VolRef,
    WriteReceipt,
};
use crate::known_hosts::{self, KnownHosts, Verdict};
use crate::name::{AppName, GridName, TemplateName};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The most of a command's stderr kept: enough for its error line.
const STDERR_KEPT: usize = 64 << 10;
/// The largest reply held in memory (volume data goes to a sink instead).
pub const MAX_REPLY_BYTES: usize = 64 << 20;
/// The longest line of a followed log held in memory; the rest of a longer
/// one is read past and said so.
pub const MAX_LOG_LINE_BYTES: usize = 1 << 20;

/// Keeps what fits of a command's stderr: a controller that writes on for
/// ever does not grow the console.
fn keep_stderr(stderr: &mut Vec<u8>, data: &[u8]) {
    let room = STDERR_KEPT.saturating_sub(stderr.len());
    stderr.extend_from_slice(&data[..data.len().min(room)]);
}

/// What went wrong talking to a grid, typed so callers can act on it.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("grid {grid}: {command} refused: {refusal}")]
    Refused {
        grid: GridName,
        command: &'static str,
        refusal: Refusal,
    },
    #[error(
        "grid {grid}: the controller at {address} presents an unknown host key {fingerprint}; \
         if that is the controller's key, pin it by adding this line to {known_hosts}:\n  {pin}"
    )]
    UnknownHostKey {
        grid: GridName,
        address: String,
        fingerprint: String,
        pin: String,
        known_hosts: String,
    },
    #[error(
        "grid {grid}: HOST KEY MISMATCH at {address}: known_hosts pins {expected} but the controller \
         presents {presented}. Someone may be intercepting the connection, or the controller was \
         re-keyed; verify the new key out of band before replacing the pinned line"
    )]
    HostKeyMismatch {
        grid: GridName,
        address: String,
        expected: String,
        presented: String,
    },
    #[error("grid {grid}: cannot connect to {address}: {detail}")]
    Connect {
        grid: GridName,
        address: String,
        detail: String,
    },
    #[error("grid {grid}: the controller refused the key for user {user}")]
    AuthRejected { grid: GridName, user: String },
    #[error("grid {grid}: {what} timed out after {after:?}")]
    Timeout {
        grid: GridName,
        what: String,
        after: Duration,
    },
    #[error("grid {grid}: the connection dropped during {what}")]
    Disconnected { grid: GridName, what: String },
    #[error("grid {grid}: {command} answered something unreadable: {detail}")]
    Protocol {
        grid: GridName,
        command: &'static str,
        detail: String,
    },
    #[error("grid {grid}: local I/O failed during {what}: {detail}")]
    Io {
        grid: GridName,
        what: String,
        detail: String,
    },
}

impl GridError {
    /// The controller's error code, when the controller refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            GridError::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }

    /// The controller said there is no such app (or volume).
    pub fn is_not_found(&self) -> bool {
        self.refusal()
            .is_some_and(|r| r.code == crate::dialect::ErrorCode::NotFound)
    }
}

/// Where a grid's controller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub grid: GridName,
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl Endpoint {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl From<&crate::inventory::GridEntry> for Endpoint {
    fn from(g: &crate::inventory::GridEntry) -> Self {
        let (host, port) = g.host_port();
        Endpoint {
            grid: g.name.clone(),
            host,
            port,
            user: g.user.clone(),
        }
    }
}

/// How the client authenticates, what it trusts, and its deadlines.
#[derive(Clone)]
pub struct ClientConfig {
    pub key: Arc<PrivateKey>,
    pub known_hosts: Arc<KnownHosts>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Longest silence inside a stream (volume data, followed logs) before giving up.
    pub idle_timeout: Duration,
    pub keepalive: Duration,
}

impl ClientConfig {
    pub fn new(key: PrivateKey, known_hosts: KnownHosts) -> Self {
        ClientConfig {
            key: Arc::new(key),
            known_hosts: Arc::new(known_hosts),
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Why a host key was refused, kept by the handler for `connect` to report.
#[derive(Clone, Debug)]
enum HostKeyProblem {
    Unknown {
        presented: PublicKey,
    },
    Mismatch {
        expected: Vec<String>,
        presented: PublicKey,
    },
}

struct Handler {
    host: String,
    port: u16,
    known_hosts: Arc<KnownHosts>,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let problem = match self.known_hosts.verdict(&self.host, self.port, key) {
            Verdict::Trusted => return Ok(true),
            Verdict::Unknown => HostKeyProblem::Unknown {
                presented: key.clone(),
            },
            Verdict::Mismatch { expected } => HostKeyProblem::Mismatch {
                expected,
                presented: key.clone(),
            },
        };
        if let Ok(mut slot) = self.problem.lock() {
            *slot = Some(problem);
        }
        Ok(false)
    }
}

/// One authenticated SSH connection to one grid's controller.
pub struct Connection {
    endpoint: Endpoint,
    config: ClientConfig,
    handle: Handle<Handler>,
}

/// What a finished command produced.
struct Finished {
    stdout: Vec<u8>,
}

/// Channel window: room for a volume range's bytes in flight on a
/// loopback or LAN link without waiting for window adjustments.
pub const WINDOW: u32 = 16 << 20;

/// russh's algorithms with AES-256-GCM first: with AES-NI it is several times
/// faster than ChaCha20-Poly1305, and volumes are what these connections carry.
/// The client's order decides; a server without it falls back to the next.
pub fn preferred() -> russh::Preferred {
    russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(&[
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
            russh::cipher::AES_192_CTR,
            russh::cipher::AES_128_CTR,
        ]),
        ..russh::Preferred::default()
    }
}

impl Connection {
    pub async fn open(endpoint: &Endpoint, config: &ClientConfig) -> Result<Connection, GridError> {
        let grid = endpoint.grid.clone();
        let problem = Arc::new(Mutex::new(None));
        let handler = Handler {
            host: endpoint.host.clone(),
            port: endpoint.port,
            known_hosts: config.known_hosts.clone(),
            problem: problem.clone(),
        };
        let ssh_config = Arc::new(client::Config {
            keepalive_interval: Some(config.keepalive),
            keepalive_max: 3,
            nodelay: true,
            inactivity_timeout: None,
            preferred: preferred(),
            window_size: WINDOW,
            ..Default::default()
        });
        let connect_err = |detail: String| GridError::Connect {
            grid: grid.clone(),
            address: endpoint.address(),
            detail,
        };
        let connecting = async {
            let mut handle =
                client::connect(ssh_config, (endpoint.host.as_str(), endpoint.port), handler)
                    .await?;
            let hash = handle.best_supported_rsa_hash().await?.flatten();
            let auth = handle
                .authenticate_publickey(
                    endpoint.user.clone(),
                    PrivateKeyWithHashAlg::new(config.key.clone(), hash),
                )
                .await?;
            Ok::<_, russh::Error>((handle, auth))
        };
        let outcome = tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .map_err(|_| GridError::Timeout {
                grid: grid.clone(),
                what: format!("connecting to {}", endpoint.address()),
                after: config.connect_timeout,
            })?;
        let (handle, auth) = match outcome {
            Ok(ok) => ok,
            Err(e) => {
                let problem = problem.lock().ok().and_then(|mut p| p.take());
                return Err(match problem {
                    Some(HostKeyProblem::Unknown { presented }) => GridError::UnknownHostKey {
                        grid,
                        address: endpoint.address(),
                        fingerprint: known_hosts::fingerprint(&presented),
                        pin: known_hosts::pin_line(&endpoint.host, endpoint.port, &presented),
                        known_hosts: config.known_hosts.path().display().to_string(),
                    },
                    Some(HostKeyProblem::Mismatch {
                        expected,
                        presented,
                    }) => GridError::HostKeyMismatch {
                        grid,
                        address: endpoint.address(),
                        expected: expected.join(", "),
                        presented: known_hosts::fingerprint(&presented),
                    },
                    None => connect_err(e.to_string()),
                });
            }
        };
        if !auth.success() {
            return Err(GridError::AuthRejected {
                grid,
                user: endpoint.user.clone(),
            });
        }
        Ok(Connection {
            endpoint: endpoint.clone(),
            config: config.clone(),
            handle,
        })
    }

    pub fn grid(&self) -> &GridName {
        &self.endpoint.grid
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    fn dropped(&self, what: &str) -> GridError {
        GridError::Disconnected {
            grid: self.endpoint.grid.clone(),
            what: what.to_owned(),
        }
    }

    async fn open_exec(&self, command: &Command) -> Result<Exec, GridError> {
        self.open_line(command.verb(), &command.to_line()).await
    }

    /// Opens a channel and starts `line` on it. A controller that takes
    /// neither (a wedged host) is given up on after the idle timeout, so
    /// that a streaming command (a log followed, a volume read) cannot
    /// wait on it for ever.
    async fn open_line(&self, what: &str, line: &str) -> Result<Exec, GridError> {
        let bound = self.config.idle_timeout;
        let timed_out = || GridError::Timeout {
            grid: self.endpoint.grid.clone(),
            what: format!("starting {what}"),
            after: bound,
        };
        let channel = tokio::time::timeout(bound, self.handle.channel_open_session())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| self.dropped(what))?;
        // From here on, however the caller stops waiting, the command ends.
        let exec = Exec {
            channel: Some(channel),
            closed_by_controller: false,
        };
        tokio::time::timeout(bound, exec.exec(true, line))
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| self.dropped(what))?;
        Ok(exec)
    }

    /// Waits for the rest of a command: stdout (into `sink` or memory), stderr, exit status.
    async fn finish(
        &self,
        what: &'static str,
        channel: &mut Exec,
        sink: Option<&mut (dyn AsyncWrite + Unpin + Send)>,
    ) -> Result<Finished, GridError> {
        self.finish_within(what, channel, sink, self.config.idle_timeout)
            .await
    }

    /// [`Self::finish`], waiting up to `idle` for each message (a command
    /// that is silent on purpose while it waits, such as `app stop`).
    async fn finish_within(
        &self,
        what: &'static str,
        channel: &mut Exec,
        mut sink: Option<&mut (dyn AsyncWrite + Unpin + Send)>,
        idle: Duration,
    ) -> Result<Finished, GridError> {
        let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
        loop {
            let msg = tokio::time::timeout(idle, channel.wait())
                .await
                .map_err(|_| GridError::Timeout {
                    grid: self.endpoint.grid.clone(),
                    what: format!("{what} (no data)"),
                    after: idle,
                })?;
            match msg {
                Some(ChannelMsg::Data { data }) => match sink.as_mut() {
                    Some(w) => w.write_all(&data).await.map_err(|e| GridError::Io {
                        grid: self.endpoint.grid.clone(),
                        what: what.to_owned(),
                        detail: e.to_string(),
                    })?,
                    None if stdout.len() + data.len() > MAX_REPLY_BYTES => {
                        return Err(GridError::Protocol {
                            grid: self.endpoint.grid.clone(),
                            command: what,
                            detail: format!(
                                "the reply is larger than {} MiB; no command of the dialect answers so much",
                                MAX_REPLY_BYTES >> 20
                            ),
                        });
                    }
                    None => stdout.extend_from_slice(&data),
                },
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => keep_stderr(&mut stderr, &data),
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                Some(ChannelMsg::Failure) => {
                    return Err(GridError::Protocol {
                        grid: self.endpoint.grid.clone(),
                        command: what,
                        detail: "the controller refused the exec request".into(),
                    });
                }
                Some(_) => {}
                None => {
                    channel.closed_by_controller = true;
                    break;
                }
            }
        }
        match status {
            Some(0) => Ok(Finished { stdout }),
            Some(code) => Err(GridError::Refused {
                grid: self.endpoint.grid.clone(),
                command: what,
                refusal: Refusal::from_reply(&stderr, code),
            }),
            None => Err(self.dropped(what)),
        }
    }

    /// Runs a command to completion and returns its stdout.
    pub async fn call(
        &self,
        command: &Command,
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, GridError> {
        let limit = command.time_limit(self.config.command_timeout);
        self.call_line_within(command.verb(), &command.to_line(), stdin, limit)
            .await
    }

    /// Runs a raw exec line (for commands outside the typed dialect, such as
    /// gridsim's `sim fault`, and for tests of what a controller refuses).
    pub async fn call_line(
        &self,
        what: &'static str,
        line: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, GridError> {
        self.call_line_within(what, line, stdin, self.config.command_timeout)
            .await
    }

    async fn call_line_within(
        &self,
        what: &'static str,
        line: &str,
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<Vec<u8>, GridError> {
        let run = async {
            let mut channel = self.open_line(what, line).await?;
            if let Some(input) = stdin {
                channel.data(input).await.map_err(|_| self.dropped(what))?;
            }
            channel.eof().await.map_err(|_| self.dropped(what))?;
            // Silent for as long as the whole command may take.
            let idle = self.config.idle_timeout.max(limit);
            self.finish_within(what, &mut channel, None, idle).await
        };
        let finished =
            tokio::time::timeout(limit, run)
                .await
                .map_err(|_| GridError::Timeout {
                    grid: self.endpoint.grid.clone(),
                    what: what.to_owned(),
                    after: limit,
                })??;
        Ok(finished.stdout)
    }

    pub async fn call_json<T: DeserializeOwned>(
        &self,
        command: &Command,
        stdin: Option<&[u8]>,
    ) -> Result<T, GridError> {
        let out = self.call(command, stdin).await?;
        self.decode(command, &out)
    }

    pub async fn grid_info(&self) -> Result<GridInfo, GridError> {
        self.call_json(&Command::GridInfo, None).await
    }

    pub async fn template_list(&self) -> Result<Vec<TemplateInfo>, GridError> {
        self.call_json(&Command::TemplateList, None).await
    }

    pub async fn app_list(&self) -> Result<Vec<AppSummary>, GridError> {
        self.call_json(&Command::AppList, None).await
    }

    pub async fn app_info(&self, app: &AppName) -> Result<AppInfo, GridError> {
        self.call_json(&Command::AppInfo { app: app.clone() }, None)
            .await
    }

    pub async fn app_provision(
        &self,
        template: &TemplateName,
        app: &AppName,
        properties: Vec<Property>,
    ) -> Result<AppInfo, GridError> {
        let c = Command::AppProvision {
            template: template.clone(),
            app: app.clone(),
            properties,
        };
        self.call_json(&c, None).await
    }

    pub async fn app_create(
        &self,
        app: &AppName,
        descriptor: &Descriptor,
    ) -> Result<AppInfo, GridError> {
        let body = serde_json::to_vec(descriptor).map_err(|e| GridError::Protocol {
            grid: self.endpoint.grid.clone(),
            command: "app create",
            detail: e.to_string(),
        })?;
        self.call_json(&Command::AppCreate { app: app.clone() }, Some(&body))
            .await
    }

    pub async fn app_start(&self, app: &AppName) -> Result<AppInfo, GridError> {
        self.call_json(&Command::AppStart { app: app.clone() }, None)
            .await
    }

    pub async fn app_stop(
        &self,
        app: &AppName,
        timeout_secs: Option<u64>,
    ) -> Result<StopReply, GridError> {
        let c = Command::AppStop {
            app: app.clone(),
            timeout_secs,
        };
        self.call_json(&c, None).await
    }

    pub async fn app_destroy(&self, app: &AppName) -> Result<(), GridError> {
        self.call(&Command::AppDestroy { app: app.clone() }, None)
            .await
            .map(drop)
    }

    /// The app's log lines after `since` (all when `None`).
    pub async fn app_log(
        &self,
        app: &AppName,
        since: Option<u64>,
    ) -> Result<Vec<LogLine>, GridError> {
        let c = Command::AppLog {
            app: app.clone(),
            follow: false,
            since,
        };
        let out = self.call(&c, None).await?;
        parse_log_lines(&self.endpoint.grid, &out)
    }

    pub async fn vol_hash(
        &self,
        vol: &VolRef,
        block_size: u64,
        offset: u64,
        length: Option<u64>,
    ) -> Result<BlockHashes, GridError> {
        self.vol_hash_with(vol, block_size, offset, length, HashAlgorithm::Blake3)
            .await
    }

    /// `vol hash` with a chosen algorithm (XXH3 needs dialect 3).
    pub async fn vol_hash_with(
        &self,
        vol: &VolRef,
        block_size: u64,
        offset: u64,
        length: Option<u64>,
        algorithm: HashAlgorithm,
    ) -> Result<BlockHashes, GridError> {
        let c = Command::VolHash {
            vol: vol.clone(),
            block_size,
            offset,
            length,
            algorithm,
        };
        self.call_json(&c, None).await
    }

    pub async fn vol_checksum(&self, vol: &VolRef) -> Result<Checksum, GridError> {
        self.call_json(&Command::VolChecksum { vol: vol.clone() }, None)
            .await
    }

    /// Streams a volume's bytes (or a range) into `out`; returns the count.
    pub async fn vol_read(
        &self,
        vol: &VolRef,
        offset: u64,
        length: Option<u64>,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64, GridError> {
        self.vol_read_as(vol, offset, length, Compression::None, out)
            .await
    }

    /// Like [`Connection::vol_read`]; with [`Compression::Zstd`] (dialect 3)
    /// `out` gets the zstd stream and the count is of its bytes.
    pub async fn vol_read_as(
        &self,
        vol: &VolRef,
        offset: u64,
        length: Option<u64>,
        compress: Compression,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64, GridError> {
        let c = Command::VolRead {
            vol: vol.clone(),
            offset,
            length,
            compress,
        };
        let mut counted = Counting {
            inner: out,
            count: 0,
        };
        let mut channel = self.open_exec(&c).await?;
        channel.eof().await.map_err(|_| self.dropped(c.verb()))?;
        self.finish(c.verb(), &mut channel, Some(&mut counted))
            .await?;
        counted.inner.flush().await.map_err(|e| GridError::Io {
            grid: self.endpoint.grid.clone(),
            what: c.verb().into(),
            detail: e.to_string(),
        })?;
        Ok(counted.count)
    }

    /// Streams `input` into a volume at `offset`; returns the count written.
    pub async fn vol_write(
        &self,
        vol: &VolRef,
        offset: u64,
        input: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<u64, GridError> {
        let c = Command::VolWrite {
            vol: vol.clone(),
            offset,
            hash_blocks: None,
            compress: Compression::None,
        };
        self.send_volume(&c, input).await.map(|(sent, _)| sent)
    }

    /// Like [`Connection::vol_write`], and the controller (dialect 2) answers
    /// with the digest of each `block_size` block as it stored it. With
    /// [`Compression::Zstd`] (dialect 3) `input` is a zstd stream; the
    /// receipt counts the bytes stored.
    pub async fn vol_write_hashed(
        &self,
        vol: &VolRef,
        offset: u64,
        block_size: u64,
        compress: Compression,
        input: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<WriteReceipt, GridError> {
        let c = Command::VolWrite {
            vol: vol.clone(),
            offset,
            hash_blocks: Some(block_size),
            compress,
        };
        let (_, out) = self.send_volume(&c, input).await?;
        self.decode(&c, &out)
    }

    /// Dialect 3: this grid's controller reads `length` bytes at `offset`
    /// of `from` on `from_grid` and writes them at the same offset of `vol`.
    #[allow(clippy::too_many_arguments)]
    pub async fn vol_pull(
        &self,
        vol: &VolRef,
        from_grid: &GridName,
        from: &VolRef,
        offset: u64,
        length: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
    ) -> Result<PullReceipt, GridError> {
        let c = Command::VolPull {
            vol: vol.clone(),
            from_grid: from_grid.clone(),
            from: from.clone(),
            offset,
            length,
            hash_blocks,
            compress,
        };
        self.call_json(&c, None).await
    }

    fn decode<T: DeserializeOwned>(&self, c: &Command, out: &[u8]) -> Result<T, GridError> {
        serde_json::from_slice(out).map_err(|e| GridError::Protocol {
            grid: self.endpoint.grid.clone(),
            command: c.verb(),
            detail: e.to_string(),
        })
    }

    /// Runs a command that reads `input` to its end; returns the bytes sent
    /// and the command's output.
    async fn send_volume(
        &self,
        c: &Command,
        input: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<(u64, Vec<u8>), GridError> {
        let mut channel = self.open_exec(c).await?;
        let mut writer = channel.make_writer();
        let sent = tokio::io::copy(input, &mut writer)
            .await
            .map_err(|_| self.dropped(c.verb()))?;
        writer.flush().await.map_err(|_| self.dropped(c.verb()))?;
        drop(writer);
        channel.eof().await.map_err(|_| self.dropped(c.verb()))?;
        let finished = self.finish(c.verb(), &mut channel, None).await?;
        Ok((sent, finished.stdout))
    }

    /// Follows an app's log: lines after `since`, then new ones as they come.
    pub async fn app_log_follow(
        &self,
        app: &AppName,
        since: Option<u64>,
    ) -> Result<LogFollower, GridError> {
        let c = Command::AppLog {
            app: app.clone(),
            follow: true,
            since,
        };
        let channel = self.open_exec(&c).await?;
        channel.eof().await.map_err(|_| self.dropped(c.verb()))?;
        Ok(LogFollower {
            grid: self.endpoint.grid.clone(),
            channel,
            pending: Vec::new(),
            stderr: Vec::new(),
            done: false,
            last_seq: since.unwrap_or(0),
            skipped: None,
        })
    }
}

fn parse_log_lines(grid: &GridName, out: &[u8]) -> Result<Vec<LogLine>, GridError> {
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| GridError::Protocol {
                grid: grid.clone(),
                command: "app log",
                detail: e.to_string(),
            })
        })
        .collect()
}

/// An exec channel whose command ends however its caller stops waiting:
/// an error, a reply too large, a deadline, a dropped future. Unless the
/// controller closed it, dropping it asks the remote process to die (the
/// `signal` request, `KILL`, which OpenSSH's sshd passes on) and closes the
/// channel — no reply keeps streaming into the console and no remote
/// process outlives its command.
struct Exec {
    channel: Option<russh::Channel<client::Msg>>,
    closed_by_controller: bool,
}

impl std::ops::Deref for Exec {
    type Target = russh::Channel<client::Msg>;
    fn deref(&self) -> &Self::Target {
        // Only `drop` takes the channel out.
        #[allow(clippy::expect_used)]
        self.channel
            .as_ref()
            .expect("an Exec holds its channel until dropped")
    }
}

impl std::ops::DerefMut for Exec {
    fn deref_mut(&mut self) -> &mut Self::Target {
        #[allow(clippy::expect_used)]
        self.channel
            .as_mut()
            .expect("an Exec holds its channel until dropped")
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if self.closed_by_controller {
            return;
        }
        let (Some(channel), Ok(runtime)) =
            (self.channel.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let _ = channel.signal(russh::Sig::KILL).await;
            let _ = channel.close().await;
        });
    }
}

/// Log lines as a followed `app log` delivers them.
pub struct LogFollower {
    grid: GridName,
    channel: Exec,
    pending: Vec<u8>,
    stderr: Vec<u8>,
    done: bool,
    /// The last line's number, for a line too long to read.
    last_seq: u64,
    /// Bytes of an over-long line read past so far (until its newline).
    skipped: Option<usize>,
}

impl LogFollower {
    /// The next line; `None` when the controller ended the log (app destroyed).
    /// A line longer than [`MAX_LOG_LINE_BYTES`] is never held: it comes as
    /// a line of its own that says how long it was (numbered after the one
    /// before it).
    pub async fn next(&mut self) -> Option<Result<LogLine, GridError>> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                if let Some(before) = self.skipped.take() {
                    self.last_seq += 1;
                    return Some(Ok(LogLine {
                        seq: self.last_seq,
                        at: String::new(),
                        text: format!(
                            "[a line of {} bytes, not kept: the console keeps log lines to {} MiB]",
                            before + line.len(),
                            MAX_LOG_LINE_BYTES >> 20
                        ),
                    }));
                }
                if line.len() <= 1 {
                    continue;
                }
                let parsed: Result<LogLine, GridError> =
                    serde_json::from_slice(&line).map_err(|e| GridError::Protocol {
                        grid: self.grid.clone(),
                        command: "app log",
                        detail: e.to_string(),
                    });
                if let Ok(l) = &parsed {
                    self.last_seq = l.seq;
                }
                return Some(parsed);
            }
            if self.pending.len() > MAX_LOG_LINE_BYTES {
                *self.skipped.get_or_insert(0) += self.pending.len();
                self.pending.clear();
            }
            if self.done {
                return None;
            }
            match self.channel.wait().await {
                Some(ChannelMsg::Data { data }) => self.pending.extend_from_slice(&data),
                Some(ChannelMsg::ExtendedData { data, .. }) => keep_stderr(&mut self.stderr, &data),
                Some(ChannelMsg::ExitStatus { exit_status }) if exit_status != 0 => {
                    self.done = true;
                    return Some(Err(GridError::Refused {
                        grid: self.grid.clone(),
                        command: "app log",
                        refusal: Refusal::from_reply(&self.stderr, exit_status),
                    }));
                }
                Some(ChannelMsg::ExitStatus { .. }) => self.done = true,
                Some(_) => {}
                None => {
                    self.channel.closed_by_controller = true;
                    if !self.done {
                        self.done = true;
                        return Some(Err(GridError::Disconnected {
                            grid: self.grid.clone(),
                            what: "app log --follow".into(),
                        }));
                    }
                }
            }
        }
    }

    /// Stops following: the controller's `app log` ends with the channel.
    pub async fn close(self) {
        drop(self);
    }
}

struct Counting<'a> {
    inner: &'a mut (dyn AsyncWrite + Unpin + Send),
    count: u64,
}

impl AsyncWrite for Counting<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.count += *n as u64;
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// One connection per grid, opened on first use and re-opened when it drops.
pub struct Grids {
    config: ClientConfig,
    endpoints: HashMap<GridName, Endpoint>,
    /// One slot per grid, each with its own lock: a grid slow to answer a
    /// connect holds only its own slot, never another grid's commands.
    connections: HashMap<GridName, tokio::sync::Mutex<Option<Arc<Connection>>>>,
}

impl Grids {
    pub fn new(config: ClientConfig, endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        let endpoints: HashMap<GridName, Endpoint> =
            endpoints.into_iter().map(|e| (e.grid.clone(), e)).collect();
        let connections = endpoints
            .keys()
            .map(|g| (g.clone(), tokio::sync::Mutex::default()))
            .collect();
        Grids {
            config,
            endpoints,
            connections,
        }
    }

    pub fn endpoint(&self, grid: &GridName) -> Option<&Endpoint> {
        self.endpoints.get(grid)
    }

    /// The grid's connection; `None` when the grid is not in the inventory.
    pub async fn connection(&self, grid: &GridName) -> Option<Result<Arc<Connection>, GridError>> {
        let endpoint = self.endpoints.get(grid)?;
        let mut slot = self.connections.get(grid)?.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Some(Ok(c.clone()));
        }
        *slot = None;
        Some(match Connection::open(endpoint, &self.config).await {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => Err(e),
        })
    }
}
