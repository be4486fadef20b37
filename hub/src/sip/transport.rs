//! The user agent's transports: UDP and TCP on one address, TLS on another when a certificate
//! is configured (RFC 3261 §18, §26.2). Every received
//! message goes through [`classify`] and then the [`Agent`]; the
//! answer goes back where the message came from (symmetric, as RFC 3581 `rport` asks).
//!
//! - UDP: one datagram, one message; answers are sent from the same socket.
//! - TCP: a buffer per connection, framed by Content-Length; a connection whose framing is lost
//!   (negative or duplicate Content-Length, a message over the size limit) is answered if it
//!   can be and closed; one that sends nothing for [`IDLE_TIMEOUT`] is closed. A bad neighbour
//!   never affects another connection.
//! - TLS: TCP's framing inside a TLS session; a handshake that fails or takes longer than
//!   [`HANDSHAKE_TIMEOUT`] closes only that connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use rsipstack::transport::TransportLayer;

use super::agent::Agent;
use super::bridge::Bridge;
use super::message::{Inbound, MAX_MESSAGE_SIZE, TransportKind, classify};

/// A TCP connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A TLS client that has not finished its handshake after this long is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the transports could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The stack bridge could not be set up.
    #[error(transparent)]
    Bridge(#[from] super::bridge::BridgeError),
    /// The TLS certificate or key cannot be used (`[sip] tls_cert`, `tls_key`).
    #[error(transparent)]
    Tls(#[from] crate::pem::PemError),
    /// The UDP or TCP port could not be bound.
    #[error("cannot listen for SIP on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Where the user agent listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    /// The UDP socket's address.
    pub udp: SocketAddr,
    /// The TCP listener's address (the same port as UDP).
    pub tcp: SocketAddr,
    /// The TLS listener's address, when TLS is configured.
    pub tls: Option<SocketAddr>,
}

/// SIP over TLS: where to listen, with which certificate.
pub struct TlsListen {
    /// The address.
    pub addr: SocketAddr,
    /// The server's certificate and key.
    pub config: Arc<rustls::ServerConfig>,
}

/// The running transports.
pub struct Started {
    /// Where they listen.
    pub listening: Listening,
    /// Hands accepted messages to rsipstack.
    pub bridge: Bridge,
    /// rsipstack's view of the transports, for its endpoint.
    pub layer: TransportLayer,
    /// Ends after `shutdown`.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds UDP and TCP on `addr` (port 0: one free port for both), and TLS when asked, and
/// serves until `shutdown`.
pub async fn start(
    addr: SocketAddr,
    tls: Option<TlsListen>,
    agent: Arc<Agent>,
    shutdown: CancellationToken,
) -> Result<Started, TransportError> {
    let (udp, tcp) = bind_pair(addr).await?;
    let tls = match tls {
        Some(t) => {
            let listener =
                TcpListener::bind(t.addr).await.map_err(|source| TransportError::Bind { addr: t.addr, source })?;
            Some((listener, tokio_rustls::TlsAcceptor::from(t.config)))
        }
        None => None,
    };
    let listening = Listening {
        udp: udp.local_addr().map_err(|source| TransportError::Bind { addr, source })?,
        tcp: tcp.local_addr().map_err(|source| TransportError::Bind { addr, source })?,
        tls: match &tls {
            Some((l, _)) => Some(l.local_addr().map_err(|source| TransportError::Bind { addr, source })?),
            None => None,
        },
    };
    let udp = Arc::new(udp);
    let (large, large_rx) = tokio::sync::mpsc::unbounded_channel();
    let (bridge, layer) = Bridge::start(udp.clone(), large, shutdown.clone()).await?;
    let b = bridge.clone();
    let task = tokio::spawn(async move {
        let udp_task = tokio::spawn(serve_udp(udp, agent.clone(), b.clone(), shutdown.clone()));
        tokio::spawn(send_large(large_rx, agent.clone(), b.clone(), shutdown.clone()));
        let tls_task = tls.map(|(listener, acceptor)| {
            tokio::spawn(serve_streams(listener, Some(acceptor), agent.clone(), b.clone(), shutdown.clone()))
        });
        serve_streams(tcp, None, agent, b, shutdown).await;
        let _ = udp_task.await;
        if let Some(t) = tls_task {
            let _ = t.await;
        }
    });
    Ok(Started { listening, bridge, layer, task })
}

/// UDP and TCP on the same port; with port 0, retries a few ports in case TCP's is taken.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), TransportError> {
    let mut last = None;
    for _ in 0..if addr.port() == 0 { 8 } else { 1 } {
        let udp = UdpSocket::bind(addr).await.map_err(|source| TransportError::Bind { addr, source })?;
        let port = udp.local_addr().map_err(|source| TransportError::Bind { addr, source })?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(TransportError::Bind { addr, source: last.unwrap_or_else(|| io::Error::other("no free port")) })
}

async fn serve_udp(socket: Arc<UdpSocket>, agent: Arc<Agent>, bridge: Bridge, shutdown: CancellationToken) {
    // A datagram is at most 64 KiB; anything larger is cut by the kernel and then rejected.
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        let (n, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems: not fatal.
                    tracing::debug!(error = %e, "SIP UDP receive error");
                    continue;
                }
            },
        };
        let inbound = {
            let _span = tracing::debug_span!("sip_udp", %peer, len = n).entered();
            classify(&buf[..n], TransportKind::Udp).inbound
        };
        // Responses belong to rsipstack's client transactions (REGISTER…).
        if let Inbound::Response(response) = inbound {
            bridge.deliver(rsipstack::sip::SipMessage::Response(*response), peer).await;
            continue;
        }
        let reply = agent.handle(inbound, peer.ip());
        if let Some(request) = reply.forward {
            bridge.deliver(rsipstack::sip::SipMessage::Request(*request), peer).await;
            continue;
        }
        if let Some(bytes) = reply.bytes
            && let Err(e) = socket.send_to(&bytes, peer).await
        {
            tracing::debug!(error = %e, %peer, "SIP UDP send failed");
        }
    }
}

/// Accepts TCP connections (TLS ones when `tls` is given) and serves each on its own task.
async fn serve_streams(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    agent: Arc<Agent>,
    bridge: Bridge,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    continue;
                }
            },
        };
        let (agent, shutdown, bridge, tls) = (agent.clone(), shutdown.clone(), bridge.clone(), tls.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (out, outgoing) = tokio::sync::mpsc::unbounded_channel();
            let served = async {
                match tls {
                    None => serve_connection(stream, peer, TransportKind::Tcp, agent, &bridge, out, outgoing).await,
                    Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, TransportKind::Tls, agent, &bridge, out, outgoing).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "SIP TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "SIP TLS handshake timed out"),
                    },
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = served => {}
            }
            bridge.stream_closed(peer);
        });
    }
}

/// Serves one TCP or TLS connection: what arrives is read here, what goes out is written by
/// one writer task fed through `out` (answers from here and messages from the stack never
/// interleave).
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    kind: TransportKind,
    agent: Arc<Agent>,
    bridge: &Bridge,
    out: super::bridge::StreamWriter,
    mut outgoing: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if bytes.is_empty() {
                let _ = writer.shutdown().await;
                return;
            }
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    read_connection(&mut reader, peer, kind, &agent, bridge, &out).await;
    let _ = out.send(Vec::new());
    drop(out);
    let _ = write_task.await;
}

/// Sends requests too large for UDP over TCP connections the hub opens to their destinations
/// (one per destination, reused while open; answers and requests arriving on them are served
/// like those on accepted connections).
async fn send_large(
    mut requests: tokio::sync::mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>,
    agent: Arc<Agent>,
    bridge: Bridge,
    shutdown: CancellationToken,
) {
    let open: Arc<std::sync::Mutex<Open>> = Arc::default();
    loop {
        let (to, bytes) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = requests.recv() => match r { Some(r) => r, None => return },
        };
        let existing = lock_open(&open).get(&to).cloned();
        if let Some(writer) = existing
            && writer.send(bytes.clone()).is_ok()
        {
            continue;
        }
        let stream = match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(to)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %to, "cannot open TCP for a SIP request too large for UDP");
                continue;
            }
            Err(_) => {
                tracing::warn!(%to, "TCP connect timed out for a SIP request too large for UDP");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (out, outgoing) = tokio::sync::mpsc::unbounded_channel();
        let _ = out.send(bytes);
        lock_open(&open).insert(to, out.clone());
        let (agent, bridge, shutdown, open) = (agent.clone(), bridge.clone(), shutdown.clone(), open.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = serve_connection(stream, to, TransportKind::Tcp, agent, &bridge, out, outgoing) => {}
            }
            bridge.stream_closed(to);
            lock_open(&open).remove(&to);
        });
    }
}

type Open = std::collections::HashMap<SocketAddr, super::bridge::StreamWriter>;

fn lock_open(m: &std::sync::Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn read_connection(
    stream: &mut (impl AsyncRead + Unpin),
    peer: SocketAddr,
    kind: TransportKind,
    agent: &Agent,
    bridge: &Bridge,
    out: &super::bridge::StreamWriter,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        // Take every complete message out of the buffer.
        loop {
            if buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                buf.clear(); // keep-alive CRLFs (RFC 5626 §3.5.1) between messages
                break;
            }
            let classified = classify(&buf, kind);
            if matches!(classified.inbound, Inbound::Incomplete) {
                break;
            }
            let consumed = classified.consumed.clamp(1, buf.len());
            if let Inbound::Response(response) = classified.inbound {
                bridge.deliver_stream(rsipstack::sip::SipMessage::Response(*response), peer, kind, out).await;
                buf.drain(..consumed);
                continue;
            }
            let reply = agent.handle(classified.inbound, peer.ip());
            if let Some(request) = reply.forward {
                bridge.deliver_stream(rsipstack::sip::SipMessage::Request(*request), peer, kind, out).await;
            }
            if let Some(bytes) = reply.bytes
                && out.send(bytes).is_err()
            {
                return;
            }
            if reply.close {
                tracing::debug!(%peer, "closing a SIP TCP connection whose framing is lost");
                return;
            }
            buf.drain(..consumed);
        }
        let n = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}
