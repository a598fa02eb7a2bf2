//! The dialect served: the seam between the controller dialect and a
//! platform. A [`Platform`] answers each command with typed values (gridsim's
//! simulated apps, a libvirt host's domains); [`serve`] dispatches a parsed
//! [`Request`] to it and writes the reply, its text and JSON forms, the
//! compression of volume data and the following of a log, in one place for
//! every controller.

use crate::dialect::{
    AppInfo, AppSummary, BlockHashes, Checksum, Command, Compression, Descriptor, ErrorCode,
    GridInfo, HashAlgorithm, HowStopped, LogLine, PullReceipt, Refusal, Request, StopReply,
    TemplateInfo, VolRef, WriteReceipt,
};
use crate::{AppName, GridName, TemplateName};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub type Stdin<'a> = &'a mut (dyn AsyncRead + Unpin + Send);
pub type Stdout<'a> = &'a mut (dyn AsyncWrite + Unpin + Send);

/// How long `app stop` waits when the command gives no `--timeout`.
pub const DEFAULT_STOP_TIMEOUT: u64 = 60;
/// The largest descriptor `app create` reads from stdin.
pub const MAX_DESCRIPTOR: u64 = 1 << 20;
/// How often a followed log is read again.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// What a grid's controller does, command by command. Each method does its
/// command's work and returns what it found; [`serve`] writes the replies.
#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    async fn grid_info(&self) -> Result<GridInfo, Refusal>;
    async fn template_list(&self) -> Result<Vec<TemplateInfo>, Refusal>;
    async fn app_list(&self) -> Result<Vec<AppSummary>, Refusal>;
    async fn app_info(&self, app: &AppName) -> Result<AppInfo, Refusal>;
    /// Makes `app` of `template` (stopped); [`serve`] starts it then.
    async fn app_provision(
        &self,
        template: &TemplateName,
        app: &AppName,
        properties: BTreeMap<String, String>,
    ) -> Result<(), Refusal>;
    async fn app_create(&self, app: &AppName, descriptor: Descriptor) -> Result<(), Refusal>;
    async fn app_start(&self, app: &AppName) -> Result<(), Refusal>;
    /// Stops the app, forcing it at the timeout; says which it was.
    async fn app_stop(&self, app: &AppName, timeout_secs: u64) -> Result<HowStopped, Refusal>;
    async fn app_destroy(&self, app: &AppName) -> Result<(), Refusal>;
    /// The app's log lines after sequence number `after`; `None`: there is
    /// no such app (any more).
    async fn log_lines(&self, app: &AppName, after: u64) -> Result<Option<Vec<LogLine>>, Refusal>;
    /// Writes the range's bytes, uncompressed, to `out`.
    async fn vol_read(
        &self,
        vol: &VolRef,
        offset: u64,
        length: Option<u64>,
        out: Stdout<'_>,
    ) -> Result<(), Refusal>;
    /// Writes `stdin` (compressed as said) at `offset`: the bytes written and,
    /// with `hash_blocks`, the BLAKE3 digest of each block as written.
    async fn vol_write(
        &self,
        vol: &VolRef,
        offset: u64,
        hash_blocks: Option<u64>,
        compress: Compression,
        stdin: Stdin<'_>,
    ) -> Result<(u64, Option<Vec<Option<String>>>), Refusal>;
    async fn vol_pull(&self, pull: Pull<'_>) -> Result<PullReceipt, Refusal>;
    async fn vol_hash(
        &self,
        vol: &VolRef,
        block_size: u64,
        range: (u64, Option<u64>),
        algorithm: HashAlgorithm,
    ) -> Result<BlockHashes, Refusal>;
    async fn vol_checksum(&self, vol: &VolRef) -> Result<Checksum, Refusal>;
}

/// A `vol pull`: read `from` on `from_grid` and write it into `vol`.
pub struct Pull<'a> {
    pub vol: &'a VolRef,
    pub from_grid: &'a GridName,
    pub from: &'a VolRef,
    pub offset: u64,
    pub length: u64,
    pub hash_blocks: Option<u64>,
    pub compress: Compression,
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(ErrorCode::Internal, e.to_string())
}

/// Runs one request against `platform`. Output goes to `stdout`; a refusal
/// is the caller's to write to stderr with a non-zero exit.
pub async fn serve(
    platform: &dyn Platform,
    request: Request,
    stdin: Stdin<'_>,
    stdout: Stdout<'_>,
) -> Result<(), Refusal> {
    let json = request.json;
    match request.command {
        Command::GridInfo => {
            let info = platform.grid_info().await?;
            let text = format!(
                "grid {}\ndialect {}\nfree {} bytes of {}\napps {}\n",
                info.name, info.dialect, info.free_bytes, info.total_bytes, info.apps
            );
            reply(stdout, json, &info, text).await
        }
        Command::TemplateList => {
            let list = platform.template_list().await?;
            let text: String = list
                .iter()
                .map(|t| format!("{}\t{}\n", t.name, t.description))
                .collect();
            reply(stdout, json, &list, text).await
        }
        Command::AppList => {
            let list = platform.app_list().await?;
            let text: String = list
                .iter()
                .map(|a| format!("{}\t{}\n", a.name, a.state))
                .collect();
            reply(stdout, json, &list, text).await
        }
        Command::AppInfo { app } => reply_info(platform, &app, json, stdout).await,
        Command::AppProvision {
            template,
            app,
            properties,
        } => {
            let props = properties.into_iter().map(|p| (p.key, p.value)).collect();
            platform.app_provision(&template, &app, props).await?;
            platform.app_start(&app).await?;
            reply_info(platform, &app, json, stdout).await
        }
        Command::AppCreate { app } => {
            let mut body = Vec::new();
            stdin
                .take(MAX_DESCRIPTOR)
                .read_to_end(&mut body)
                .await
                .map_err(internal)?;
            let descriptor: Descriptor = serde_json::from_slice(&body).map_err(|e| {
                Refusal::bad_request(format!("the descriptor on stdin is not valid JSON: {e}"))
            })?;
            platform.app_create(&app, descriptor).await?;
            reply_info(platform, &app, json, stdout).await
        }
        Command::AppStart { app } => {
            platform.app_start(&app).await?;
            reply_info(platform, &app, json, stdout).await
        }
        Command::AppStop { app, timeout_secs } => {
            let how = platform
                .app_stop(&app, timeout_secs.unwrap_or(DEFAULT_STOP_TIMEOUT))
                .await?;
            let info = platform.app_info(&app).await?;
            let text = format!("{}stopped {}\n", info_text(&info), how.as_str());
            let stopped = StopReply {
                info,
                stopped: Some(how),
            };
            reply(stdout, json, &stopped, text).await
        }
        Command::AppDestroy { app } => {
            platform.app_destroy(&app).await?;
            write(stdout, format!("destroyed {app}\n").as_bytes()).await
        }
        Command::AppLog { app, follow, since } => {
            app_log(platform, &app, follow, since.unwrap_or(0), json, stdout).await
        }
        Command::VolRead {
            vol,
            offset,
            length,
            compress,
        } => match compress {
            Compression::None => platform.vol_read(&vol, offset, length, stdout).await,
            Compression::Zstd => {
                let mut z = async_compression::tokio::write::ZstdEncoder::with_quality(
                    stdout,
                    async_compression::Level::Fastest,
                );
                platform.vol_read(&vol, offset, length, &mut z).await?;
                z.shutdown().await.map_err(internal)
            }
        },
        Command::VolWrite {
            vol,
            offset,
            hash_blocks,
            compress,
        } => {
            let (n, hashes) = platform
                .vol_write(&vol, offset, hash_blocks, compress, stdin)
                .await?;
            let text = format!("wrote {n} bytes to {vol}\n");
            match (hash_blocks, hashes) {
                (Some(block_size), Some(hashes)) => {
                    let receipt = WriteReceipt {
                        written: n,
                        block_size,
                        offset,
                        hashes,
                    };
                    reply(stdout, json, &receipt, text).await
                }
                _ => write(stdout, text.as_bytes()).await,
            }
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
            let receipt = platform
                .vol_pull(Pull {
                    vol: &vol,
                    from_grid: &from_grid,
                    from: &from,
                    offset,
                    length,
                    hash_blocks,
                    compress,
                })
                .await?;
            let text = format!(
                "pulled {} bytes from {from_grid}/{from} into {vol} ({} on the wire)\n",
                receipt.written, receipt.wire_bytes
            );
            reply(stdout, json, &receipt, text).await
        }
        Command::VolHash {
            vol,
            block_size,
            offset,
            length,
            algorithm,
        } => {
            let hashes = platform
                .vol_hash(&vol, block_size, (offset, length), algorithm)
                .await?;
            let text: String = hashes
                .hashes
                .iter()
                .map(|h| format!("{}\n", h.as_deref().unwrap_or("zero")))
                .collect();
            reply(stdout, json, &hashes, text).await
        }
        Command::VolChecksum { vol } => {
            let sum = platform.vol_checksum(&vol).await?;
            let text = format!("{}:{}\n", sum.algorithm, sum.digest);
            reply(stdout, json, &sum, text).await
        }
    }
}

async fn reply_info(
    platform: &dyn Platform,
    app: &AppName,
    json: bool,
    stdout: Stdout<'_>,
) -> Result<(), Refusal> {
    let info = platform.app_info(app).await?;
    let text = info_text(&info);
    reply(stdout, json, &info, text).await
}

/// `app info`'s text form.
fn info_text(info: &AppInfo) -> String {
    let mut text = format!("app {}\nstate {}\n", info.name, info.state);
    for v in &info.volumes {
        text.push_str(&format!("volume {} {} bytes\n", v.name, v.size));
    }
    for (k, v) in &info.properties {
        text.push_str(&format!("property {k}={v}\n"));
    }
    text
}

/// The log from `since`; with `follow`, new lines as they come until the
/// app is gone (or the client stops listening).
async fn app_log(
    platform: &dyn Platform,
    app: &AppName,
    follow: bool,
    since: u64,
    json: bool,
    stdout: Stdout<'_>,
) -> Result<(), Refusal> {
    let not_found = || Refusal::new(ErrorCode::NotFound, format!("there is no app {app}"));
    let mut after = since;
    let mut first = true;
    loop {
        let Some(lines) = platform.log_lines(app, after).await? else {
            return if first { Err(not_found()) } else { Ok(()) };
        };
        first = false;
        let mut out = Vec::new();
        for l in &lines {
            if json {
                out.extend(serde_json::to_vec(l).map_err(internal)?);
                out.push(b'\n');
            } else {
                out.extend(format!("{} {} {}\n", l.seq, l.at, l.text).as_bytes());
            }
            after = l.seq;
        }
        if !out.is_empty() {
            write(stdout, &out).await?;
            stdout.flush().await.map_err(internal)?;
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Checks that `offset`..`offset + length` (to the end without `length`)
/// lies within a volume of `size` bytes; the range's length.
pub fn range(size: u64, offset: u64, length: Option<u64>) -> Result<u64, Refusal> {
    if offset > size {
        return Err(Refusal::bad_request(format!(
            "offset {offset} is past the end of the volume ({size} bytes)"
        )));
    }
    let length = length.unwrap_or(size - offset);
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(Refusal::bad_request(format!(
            "range {offset}+{length} is past the end of the volume ({size} bytes)"
        )));
    }
    Ok(length)
}

pub async fn write(stdout: Stdout<'_>, bytes: &[u8]) -> Result<(), Refusal> {
    stdout
        .write_all(bytes)
        .await
        .map_err(|e| internal(format!("cannot write the reply: {e}")))
}

async fn reply<T: serde::Serialize>(
    stdout: Stdout<'_>,
    json: bool,
    value: &T,
    text: String,
) -> Result<(), Refusal> {
    if json {
        let mut bytes = serde_json::to_vec(value).map_err(internal)?;
        bytes.push(b'\n');
        write(stdout, &bytes).await
    } else {
        write(stdout, text.as_bytes()).await
    }
}
