//! The daemon's Unix socket and the relay OpenSSH runs as `ForceCommand`.
//! The relay sends the command line (`SSH_ORIGINAL_COMMAND`) and a newline,
//! then its stdin until EOF; the daemon answers with frames — `[kind][u32
//! length][bytes]` — of stdout ([`STDOUT`]) and a last one ([`END`]) with
//! the exit status and what goes to stderr (a refusal's line). The daemon
//! outlives every SSH command: what must stay (the app logs' console
//! readings, supervised processes) lives in it.

use crate::host::Host;
use grid::dialect::{MAX_COMMAND_LINE, Refusal, Request};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub const STDOUT: u8 = 1;
pub const END: u8 = 2;
const CHUNK: usize = 256 << 10;

/// Binds the socket: its directory must not be open to others (the socket
/// itself is, within it, to whoever may enter the directory).
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o007 != 0 {
        anyhow::bail!(
            "{} is open to every user (mode {:o}); the dialect's socket must be reachable only by root and the controller's user: chmod o-rwx it",
            dir.display(),
            mode & 0o777
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, host: Arc<Host>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let host = host.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &host).await {
                tracing::warn!(error = %e, "a relay's connection ended badly");
            }
        });
    }
}

async fn connection(stream: UnixStream, host: &Host) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut stdin = BufReader::new(read);
    let mut line = String::new();
    (&mut stdin)
        .take(MAX_COMMAND_LINE as u64 + 1)
        .read_line(&mut line)
        .await?;
    let line = line.trim_end_matches('\n').to_owned();
    // What the platform writes goes through a pipe and out as frames.
    let (mut out_w, mut out_r) = tokio::io::duplex(CHUNK);
    let run = async {
        let outcome = match Request::parse_line(&line) {
            Ok(request) => {
                tracing::info!(grid = %host.config().grid, command = %request.command.verb(), "serving");
                grid::serve::serve(host, request, &mut stdin, &mut out_w).await
            }
            Err(r) => Err(r),
        };
        let _ = out_w.shutdown().await;
        drop(out_w);
        outcome
    };
    let relay = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = out_r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            frame(&mut write, STDOUT, &buf[..n]).await?;
        }
    };
    let (outcome, relayed) = tokio::join!(run, relay);
    relayed?;
    let mut end = vec![];
    match outcome {
        Ok(()) => end.push(0),
        Err(refusal) => {
            end.push(1);
            end.extend(refusal.to_line().as_bytes());
        }
    }
    frame(&mut write, END, &end).await?;
    write.shutdown().await
}

async fn frame(
    w: &mut (impl AsyncWriteExt + Unpin),
    kind: u8,
    bytes: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(bytes).await
}

/// The relay: runs `line` on the daemon at `socket` with this process's
/// stdin and stdout; the exit status to leave with.
pub async fn relay(socket: &Path, line: &str) -> i32 {
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) => {
            let r = Refusal::new(
                grid::dialect::ErrorCode::Internal,
                format!(
                    "this host's virtgrid daemon does not answer on {} ({e}); start it: virtgrid daemon --config FILE",
                    socket.display()
                ),
            );
            eprint!("{}", r.to_line());
            return 1;
        }
    };
    let (mut read, mut write) = stream.into_split();
    let line = line.to_owned();
    // Stdin goes on in its own task: the reply may end before stdin does
    // (a command that reads none), and the process leaves then.
    tokio::spawn(async move {
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
        let mut stdin = tokio::io::stdin();
        tokio::io::copy(&mut stdin, &mut write).await?;
        write.shutdown().await
    });
    let receive = async {
        let mut stdout = tokio::io::stdout();
        loop {
            let mut head = [0u8; 5];
            read.read_exact(&mut head).await?;
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len];
            read.read_exact(&mut body).await?;
            match head[0] {
                STDOUT => stdout.write_all(&body).await?,
                END => {
                    stdout.flush().await?;
                    let code = i32::from(body.first().copied().unwrap_or(1));
                    if body.len() > 1 {
                        let mut stderr = tokio::io::stderr();
                        stderr.write_all(&body[1..]).await?;
                        stderr.flush().await?;
                    }
                    return Ok::<i32, std::io::Error>(code);
                }
                k => {
                    return Err(std::io::Error::other(format!(
                        "the daemon sent a frame of kind {k}"
                    )));
                }
            }
        }
    };
    match receive.await {
        Ok(code) => code,
        Err(e) => {
            let r = Refusal::new(
                grid::dialect::ErrorCode::Internal,
                format!("the connection to this host's virtgrid daemon broke: {e}"),
            );
            eprint!("{}", r.to_line());
            1
        }
    }
}
