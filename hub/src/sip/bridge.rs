//! Hands messages between the hub's own sockets and rsipstack's transaction layer.
//!
//! rsipstack's built-in UDP transport parses with plain rsip, which RFC 4475 shows is too
//! liberal (see `message.rs`), so the hub keeps its own sockets and [`classify`] and gives
//! rsipstack only what passed, through one in-memory `ChannelConnection` per UDP peer address
//! and per TCP or TLS connection. What rsipstack sends comes back through the same channels and
//! leaves from the hub's socket (UDP) or connection (TCP): to the channel's peer, or, for a
//! message sent through the listener, where RFC 3261 §18 says (a request to its Request-URI).
//!
//! [`classify`]: super::message::classify

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rsipstack::sip::{SipMessage, Transport};
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent, TransportLayer};
use tokio::net::UdpSocket;

use super::message::TransportKind;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// Where the bytes of a TCP connection's outgoing messages go (its writer task).
pub type StreamWriter = UnboundedSender<Vec<u8>>;

/// Requests larger than this do not go over UDP (RFC 3261 §18.1.1: within 200 bytes of a path
/// MTU of 1500, or over 1300 bytes when the MTU is unknown): they go over TCP to the same
/// address, with the top Via saying so.
pub const UDP_REQUEST_LIMIT: usize = 1300;

/// Where requests too large for UDP go: the transport opens (or reuses) a TCP connection to the
/// address and writes the bytes there.
pub type LargeRequests = UnboundedSender<(SocketAddr, Vec<u8>)>;
use tokio_util::sync::CancellationToken;

/// Why the bridge could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// rsipstack refused a channel.
    #[error("SIP stack: {0}")]
    Stack(String),
}

fn udp(addr: SocketAddr) -> SipAddr {
    SipAddr::new(Transport::Udp, addr.into())
}

fn stream(addr: SocketAddr, kind: TransportKind) -> SipAddr {
    let transport = if kind == TransportKind::Tls { Transport::Tls } else { Transport::Tcp };
    SipAddr::new(transport, addr.into())
}

type Channel = (ChannelConnection, UnboundedSender<TransportEvent>);

/// The bridge: create with [`Bridge::start`], feed with [`Bridge::deliver`].
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    layer: TransportLayer,
    out: UnboundedSender<TransportEvent>,
    peers: Mutex<HashMap<SocketAddr, Channel>>,
    streams: Arc<Mutex<HashMap<SocketAddr, (Channel, StreamWriter)>>>,
    cancel: CancellationToken,
}

impl Bridge {
    /// A transport layer for rsipstack whose messages leave through `socket`.
    pub async fn start(
        socket: Arc<UdpSocket>,
        large: LargeRequests,
        cancel: CancellationToken,
    ) -> Result<(Self, TransportLayer), BridgeError> {
        let local = socket.local_addr().map_err(|e| BridgeError::Stack(e.to_string()))?;
        let layer = TransportLayer::new(cancel.clone());
        let (out, mut outgoing) = unbounded_channel::<TransportEvent>();
        // The listener gives rsipstack the address it puts in Via and Contact.
        let (_keep, listener_rx) = unbounded_channel();
        let listener = ChannelConnection::create_connection(listener_rx, out.clone(), udp(local), Some(cancel.clone()))
            .await
            .map_err(|e| BridgeError::Stack(e.to_string()))?;
        layer.add_transport(SipConnection::Channel(listener));
        let writer_cancel = cancel.clone();
        let streams: Arc<Mutex<HashMap<SocketAddr, (Channel, StreamWriter)>>> = Arc::default();
        let writer_streams = streams.clone();
        tokio::spawn(async move {
            let _keep = _keep;
            loop {
                let event = tokio::select! {
                    () = writer_cancel.cancelled() => return,
                    e = outgoing.recv() => match e { Some(e) => e, None => return },
                };
                let TransportEvent::Incoming(msg, conn, _) = event else { continue };
                if matches!(conn.get_addr().r#type, Some(Transport::Tcp | Transport::Tls)) {
                    let peer = conn.get_addr().get_socketaddr().ok();
                    let writer = peer.and_then(|p| lock(&writer_streams).get(&p).map(|(_, w)| w.clone()));
                    match writer {
                        Some(w) => {
                            let _ = w.send(msg.to_string().into_bytes());
                        }
                        None => tracing::debug!(?peer, "SIP message for a closed TCP connection dropped"),
                    }
                    continue;
                }
                let Some(to) = destination(&msg, &conn, local) else {
                    tracing::warn!("SIP message from the stack with no destination dropped");
                    continue;
                };
                let bytes = msg.to_string().into_bytes();
                if matches!(msg, SipMessage::Request(_)) && bytes.len() > UDP_REQUEST_LIMIT {
                    tracing::debug!(%to, len = bytes.len(), "SIP request too large for UDP: sent over TCP");
                    let _ = large.send((to, via_over_tcp(bytes)));
                    continue;
                }
                if let Err(e) = socket.send_to(&bytes, to).await {
                    tracing::debug!(error = %e, %to, "SIP send failed");
                }
            }
        });
        // A second handle on the same layer (it is an `Arc` inside, but not `Clone`).
        let handle = TransportLayer { outbound: layer.outbound.clone(), inner: layer.inner.clone() };
        let inner = Inner { layer: handle, out, peers: Mutex::new(HashMap::new()), streams, cancel };
        Ok((Self { inner: Arc::new(inner) }, layer))
    }

    /// Makes sure rsipstack has a channel to `peer` (before sending it a request).
    pub async fn connect(&self, peer: SocketAddr) -> Result<(), BridgeError> {
        self.channel(peer).await.map(|_| ())
    }

    async fn channel(&self, peer: SocketAddr) -> Result<Channel, BridgeError> {
        if let Some(c) = lock(&self.inner.peers).get(&peer) {
            return Ok(c.clone());
        }
        let entry = self.new_channel(udp(peer)).await?;
        lock(&self.inner.peers).insert(peer, entry.clone());
        Ok(entry)
    }

    async fn new_channel(&self, addr: SipAddr) -> Result<Channel, BridgeError> {
        let (tx, rx) = unbounded_channel();
        let conn =
            ChannelConnection::create_connection(rx, self.inner.out.clone(), addr, Some(self.inner.cancel.clone()))
                .await
                .map_err(|e| BridgeError::Stack(e.to_string()))?;
        self.inner.layer.add_connection(SipConnection::Channel(conn.clone()));
        Ok((conn, tx))
    }

    /// Gives rsipstack a message received on the TCP or TLS connection from `from`, whose
    /// outgoing bytes go to `writer`.
    pub async fn deliver_stream(&self, msg: SipMessage, from: SocketAddr, kind: TransportKind, writer: &StreamWriter) {
        let existing = lock(&self.inner.streams).get(&from).map(|(c, _)| c.clone());
        let channel = match existing {
            Some(c) => c,
            None => match self.new_channel(stream(from, kind)).await {
                Ok(c) => {
                    lock(&self.inner.streams).insert(from, (c.clone(), writer.clone()));
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, %from, "SIP message not handed to the stack");
                    return;
                }
            },
        };
        let (conn, tx) = channel;
        let _ = tx.send(TransportEvent::Incoming(msg, SipConnection::Channel(conn), stream(from, kind)));
    }

    /// Forgets a TCP connection that closed.
    pub fn stream_closed(&self, from: SocketAddr) {
        if let Some(((conn, _), _)) = lock(&self.inner.streams).remove(&from) {
            self.inner.layer.remove_connection(&SipConnection::Channel(conn));
        }
    }

    /// Gives rsipstack a message that passed `classify`, received from `from`.
    pub async fn deliver(&self, msg: SipMessage, from: SocketAddr) {
        match self.channel(from).await {
            Ok((conn, tx)) => {
                let _ = tx.send(TransportEvent::Incoming(msg, SipConnection::Channel(conn), udp(from)));
            }
            Err(e) => tracing::warn!(error = %e, %from, "SIP message not handed to the stack"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request with its top Via's transport changed from UDP to TCP (the transport it will
/// travel on, where the answer must come back).
pub fn via_over_tcp(mut bytes: Vec<u8>) -> Vec<u8> {
    let mut start = 0;
    while let Some(len) = bytes[start..].windows(2).position(|w| w == b"\r\n") {
        let line = &bytes[start..start + len];
        if line.is_empty() {
            break;
        }
        let name_end = line.iter().position(|b| *b == b':').unwrap_or(0);
        let name = std::str::from_utf8(&line[..name_end]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v") {
            if let Some(at) = line.windows(11).position(|w| w.eq_ignore_ascii_case(b"SIP/2.0/UDP")) {
                bytes[start + at + 8..start + at + 11].copy_from_slice(b"TCP");
            }
            break;
        }
        start += len + 2;
    }
    bytes
}

/// Where a message rsipstack sent through `conn` goes.
fn destination(msg: &SipMessage, conn: &SipConnection, local: SocketAddr) -> Option<SocketAddr> {
    let peer = conn.get_addr().get_socketaddr().ok();
    if peer.is_some_and(|p| p != local) {
        return peer;
    }
    match msg {
        SipMessage::Request(r) => SipAddr::new(Transport::Udp, r.uri.host_with_port.clone()).get_socketaddr().ok(),
        // Responses to requests received over a peer channel go back through that channel.
        SipMessage::Response(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_top_via_changes_to_tcp() {
        let req = b"INVITE sip:a@b SIP/2.0\r\nTo: <sip:udp@x>\r\nv: SIP/2.0/udp 1.2.3.4:5;branch=z9hG4bK1\r\n\
                    Via: SIP/2.0/UDP 5.6.7.8;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n"
            .to_vec();
        let out = String::from_utf8(via_over_tcp(req)).unwrap();
        assert!(out.contains("v: SIP/2.0/TCP 1.2.3.4:5"), "{out}");
        assert!(out.contains("Via: SIP/2.0/UDP 5.6.7.8"), "{out}");
        assert!(out.contains("To: <sip:udp@x>"), "{out}");
        let no_via = b"INVITE sip:a@b SIP/2.0\r\n\r\nVia: SIP/2.0/UDP body\r\n".to_vec();
        assert_eq!(via_over_tcp(no_via.clone()), no_via, "a body is never touched");
    }
}
