//! The SSH face of one grid controller (russh server). Public-key login
//! against the grid's authorized_keys; each exec request runs one dialect
//! command on its own task with the channel as stdin/stdout/stderr. The
//! handler only accepts channels and hands exec requests over.

use crate::controller::Controller;
use grid::dialect::Refusal;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

pub fn server_config(host_key: PrivateKey) -> Arc<russh::server::Config> {
    Arc::new(russh::server::Config {
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        // Without nodelay, small-window clients crawl.
        nodelay: true,
        window_size: grid::client::WINDOW,
        preferred: russh::Preferred {
            // Encrypt-then-MAC only: ssh-audit flags the encrypt-and-MAC
            // hmac-sha2-256/512 that russh also offers by default (AEAD
            // ciphers, preferred first, need no MAC at all).
            mac: std::borrow::Cow::Borrowed(&[
                russh::mac::HMAC_SHA512_ETM,
                russh::mac::HMAC_SHA256_ETM,
            ]),
            ..Default::default()
        },
        ..Default::default()
    })
}

pub fn read_authorized_keys(path: &std::path::Path) -> anyhow::Result<Vec<PublicKey>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            PublicKey::from_openssh(l)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    config: Arc<russh::server::Config>,
    authorized: Arc<Vec<PublicKey>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((socket, peer)) = accepted else {
            continue;
        };
        if controller.faults.get().refuse_connections {
            drop(socket);
            continue;
        }
        // `run_stream` does not apply `config.nodelay`: without this, each
        // short reply waits ~40 ms for the client's delayed ACK.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let handler = Connection {
            controller: controller.clone(),
            authorized: authorized.clone(),
            channels: HashMap::new(),
            execs: HashMap::new(),
            peer,
        };
        let config = config.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            match russh::server::run_stream(config, socket, handler).await {
                Ok(session) => {
                    let handle = session.handle();
                    tokio::select! {
                        r = session => { if let Err(e) = r { tracing::debug!(%peer, error = %e, "ssh session ended"); } }
                        _ = stop.changed() => {
                            let _ = handle.disconnect(russh::Disconnect::ByApplication, "gridsim is stopping".into(), "en".into()).await;
                        }
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "ssh handshake failed"),
            }
        });
    }
}

struct Connection {
    controller: Arc<Controller>,
    authorized: Arc<Vec<PublicKey>>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Commands under way, by channel: a client that closes the channel,
    /// signals it or goes away ends its command, as sshd ends a process
    /// whose session is gone.
    execs: HashMap<ChannelId, tokio::task::AbortHandle>,
    peer: SocketAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for exec in self.execs.values() {
            exec.abort();
        }
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.verdict(offer.public_key))
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.verdict(key.public_key))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(channel) = self.channels.remove(&id) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        let line = String::from_utf8_lossy(data).into_owned();
        let controller = self.controller.clone();
        let handle = session.handle();
        let peer = self.peer;
        let exec = tokio::spawn(async move {
            tracing::debug!(grid = %controller.name, %peer, %line, "exec");
            run_exec(controller, channel, handle, line).await;
        });
        self.execs.retain(|_, e| !e.is_finished());
        self.execs.insert(id, exec.abort_handle());
        Ok(())
    }

    async fn channel_close(
        &mut self,
        id: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&id);
        if let Some(exec) = self.execs.remove(&id) {
            exec.abort();
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        id: ChannelId,
        signal: russh::Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if matches!(
            signal,
            russh::Sig::KILL | russh::Sig::TERM | russh::Sig::INT | russh::Sig::HUP
        ) && let Some(exec) = self.execs.remove(&id)
        {
            exec.abort();
        }
        Ok(())
    }
}

impl Connection {
    fn verdict(&self, key: &PublicKey) -> Auth {
        if self
            .authorized
            .iter()
            .any(|k| k.key_data() == key.key_data())
        {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }
}

async fn run_exec(
    controller: Arc<Controller>,
    channel: Channel<Msg>,
    handle: russh::server::Handle,
    line: String,
) {
    let (mut read_half, write_half) = channel.split();
    let mut stdin = read_half.make_reader();
    let drop_after = controller.faults.get().drop_after_bytes;
    let mut stdout = DropAfter {
        inner: write_half.make_writer(),
        left: drop_after,
        fired: false,
    };
    let outcome = controller.execute(&line, &mut stdin, &mut stdout).await;
    if stdout.fired {
        // The injected fault: the connection goes away mid-stream, no exit status.
        let _ = handle
            .disconnect(
                russh::Disconnect::ByApplication,
                "injected fault: connection dropped".into(),
                "en".into(),
            )
            .await;
        return;
    }
    let _ = stdout.flush().await;
    let status = match outcome {
        Ok(()) => 0,
        Err(refusal) => {
            write_refusal(&write_half, &refusal).await;
            1
        }
    };
    let _ = write_half.exit_status(status).await;
    let _ = write_half.eof().await;
    let _ = write_half.close().await;
}

async fn write_refusal(write_half: &russh::ChannelWriteHalf<Msg>, refusal: &Refusal) {
    let mut stderr = write_half.make_writer_ext(Some(1));
    let _ = stderr.write_all(refusal.to_line().as_bytes()).await;
    let _ = stderr.flush().await;
}

/// Stdout that cuts the whole connection once `left` bytes have gone out
/// (the injected "connection dropped mid-stream" fault).
struct DropAfter<W> {
    inner: W,
    left: Option<u64>,
    fired: bool,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for DropAfter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let buf = match this.left {
            Some(0) => {
                this.fired = true;
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "injected fault",
                )));
            }
            Some(left) => &buf[..buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))],
            None => buf,
        };
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(left)) = (&polled, this.left.as_mut()) {
            *left -= *n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
