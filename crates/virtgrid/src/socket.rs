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
/// The relay's reads of its stdin (what a `vol write` sends).
const STDIN_CHUNK: usize = 1 << 20;
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds the socket: its directory must not be open to others (the socket
/// itself is, within it, to whoever may enter the directory).
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode();
    // Writable by no one but its owner, root (or the daemon's user): nobody
    // else can put something in the socket's place.
    let owner_ok = {
        use std::os::unix::fs::MetadataExt;
        meta.uid() == 0 || meta.uid() == rustix::process::geteuid().as_raw()
    };
    if mode & 0o007 != 0 || mode & 0o020 != 0 || !owner_ok {
        anyhow::bail!(
            "{} (mode {:o}) must belong to root (or the daemon's user), be writable by its owner only and closed to others: the dialect's socket must be reachable only by root and the controller's user (e.g. chown root:migctl, chmod 0750)",
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
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // E.g. out of file descriptors: say so, and do not spin.
                tracing::error!(error = %e, "cannot accept a relay's connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
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
    let mut raw = Vec::new();
    (&mut stdin)
        .take(MAX_COMMAND_LINE as u64 + 1)
        .read_until(b'\n', &mut raw)
        .await?;
    if raw.last() == Some(&b'\n') {
        raw.pop();
    }
    let line = String::from_utf8(raw);
    // What the platform writes goes through a pipe and out as frames.
    let (out_w, mut out_r) = tokio::io::duplex(CHUNK);
    let run = async {
        let mut out_w = out_w;
        let parsed = line
            .map_err(|_| Refusal::bad_request("the command line is not UTF-8"))
            .and_then(|l| Request::parse_line(&l));
        let outcome = match parsed {
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
            // An empty frame now and then: a write that fails says the relay
            // is gone (a followed log with nothing new would never know).
            let n = match tokio::time::timeout(HEARTBEAT, out_r.read(&mut buf)).await {
                Ok(n) => n?,
                Err(_) => {
                    frame(&mut write, STDOUT, &[]).await?;
                    continue;
                }
            };
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            frame(&mut write, STDOUT, &buf[..n]).await?;
        }
    };
    let outcome = {
        tokio::pin!(run, relay);
        tokio::select! {
        outcome = &mut run => {
            // The rest of what it wrote goes out before the end.
            relay.await?;
            outcome
        }
        relayed = &mut relay => {
            // The relay is gone: the command stops where it is.
            relayed?;
            run.await
        }
        }
    };
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
    if line.contains('\n') {
        let r = Refusal::bad_request("the command is more than one line");
        eprint!("{}", r.to_line());
        return 1;
    }
    let (mut read, mut write) = stream.into_split();
    let line = line.to_owned();
    // Stdin goes on in its own task: the reply may end before stdin does
    // (a command that reads none), and the process leaves then.
    tokio::spawn(async move {
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
        // Read in big pieces: tokio reads stdin on a blocking thread, one
        // hop per read, and `copy`'s own 8 KiB buffer made a 1 GiB volume
        // write 131,072 hops (6.9 s here; 1.6 s like this).
        let mut stdin = BufReader::with_capacity(STDIN_CHUNK, tokio::io::stdin());
        tokio::io::copy_buf(&mut stdin, &mut write).await?;
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
