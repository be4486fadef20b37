//! Hands messages between the hub's own sockets and rsipstack's transaction layer.
//!
//! rsipstack's built-in UDP transport parses with plain rsip, which RFC 4475 shows is too
//! liberal (see `message.rs`), so the hub keeps its own sockets and [`classify`] and gives
//! rsipstack only what passed, through one in-memory `ChannelConnection` per peer address.
//! What rsipstack sends comes back through the same channels and leaves from the hub's socket:
//! to the channel's peer, or, for a message sent through the listener, where RFC 3261 §18
//! says (a request to its Request-URI, a response to its top Via).
//!
//! [`classify`]: super::message::classify

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rsipstack::sip::{SipMessage, Transport};
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent, TransportLayer};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
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

/// The bridge: create with [`Bridge::start`], feed with [`Bridge::deliver`].
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    layer: TransportLayer,
    out: UnboundedSender<TransportEvent>,
    peers: Mutex<HashMap<SocketAddr, (ChannelConnection, UnboundedSender<TransportEvent>)>>,
    cancel: CancellationToken,
}

impl Bridge {
    /// A transport layer for rsipstack whose messages leave through `socket`.
    pub async fn start(
        socket: Arc<UdpSocket>,
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
        tokio::spawn(async move {
            let _keep = _keep;
            loop {
                let event = tokio::select! {
                    () = writer_cancel.cancelled() => return,
                    e = outgoing.recv() => match e { Some(e) => e, None => return },
                };
                let TransportEvent::Incoming(msg, conn, _) = event else { continue };
                let Some(to) = destination(&msg, &conn, local) else {
                    tracing::warn!("SIP message from the stack with no destination dropped");
                    continue;
                };
                if let Err(e) = socket.send_to(msg.to_string().as_bytes(), to).await {
                    tracing::debug!(error = %e, %to, "SIP send failed");
                }
            }
        });
        // A second handle on the same layer (it is an `Arc` inside, but not `Clone`).
        let handle = TransportLayer { outbound: layer.outbound.clone(), inner: layer.inner.clone() };
        let inner = Inner { layer: handle, out, peers: Mutex::new(HashMap::new()), cancel };
        Ok((Self { inner: Arc::new(inner) }, layer))
    }

    /// Makes sure rsipstack has a channel to `peer` (before sending it a request).
    pub async fn connect(&self, peer: SocketAddr) -> Result<(), BridgeError> {
        self.channel(peer).await.map(|_| ())
    }

    async fn channel(
        &self,
        peer: SocketAddr,
    ) -> Result<(ChannelConnection, UnboundedSender<TransportEvent>), BridgeError> {
        if let Some(c) = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner()).get(&peer) {
            return Ok(c.clone());
        }
        let (tx, rx) = unbounded_channel();
        let conn = ChannelConnection::create_connection(
            rx,
            self.inner.out.clone(),
            udp(peer),
            Some(self.inner.cancel.clone()),
        )
        .await
        .map_err(|e| BridgeError::Stack(e.to_string()))?;
        self.inner.layer.add_connection(SipConnection::Channel(conn.clone()));
        let entry = (conn, tx);
        self.inner.peers.lock().unwrap_or_else(|e| e.into_inner()).insert(peer, entry.clone());
        Ok(entry)
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
