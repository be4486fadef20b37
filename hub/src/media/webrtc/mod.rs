//! Browser callers of hub numbers: the hub answers as a WebRTC peer (ICE, DTLS-SRTP, Opus)
//! and the call's audio runs through the same engine as a SIP caller's, so an app or an IVR
//! script cannot tell the two apart.
//!
//! ```text
//!  tab ──SDP/ICE (signaling)──► WebRtcCall ──► peer task (rtc: ICE, DTLS, SRTP) ◄──UDP──► tab
//!                                                 │ plain RTP ▲
//!                              receive task ◄─────┘           └── pacer (QueueSink)
//!                                 └──── Channel (the app or script) ────┘
//! ```
//!
//! The peer connection encrypts what the pacer sends and decrypts what the tab sends; the
//! engine's leg sees plain RTP on queues instead of sockets. The peer keeps its own RTCP.
//! The echo app needs no engine: the tab's packets go straight back.

mod peer;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use peer::{Negotiated, PeerEvent, PeerInput, PeerSettings};

use super::engine::Engine;
use super::socket::RtpSink;
use crate::sip::media_port::{CallInfo, LegEvent, MediaLeg};
use crate::sip::sdp::{AudioCodec, Direction, MediaParams};

/// Packets queued between the engine and the peer, each way (a second of audio).
const QUEUE: usize = 64;

/// What the hub's side of the call has for the tab (through the signaling).
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The SDP answer.
    Answer(String),
    /// A local ICE candidate (`null`: no more).
    Candidate(serde_json::Value),
    /// The app is done and hangs up.
    Hangup(String),
    /// The app transfers the caller to an extension (a script's `transfer`): the tab's call
    /// goes on as a call to that colleague.
    Transfer(String),
    /// The media connection failed or the offer could not be answered.
    Failed(String),
}

/// Where a session sends its [`SessionEvent`]s (from any task).
pub type SessionEvents = Box<dyn Fn(SessionEvent) + Send + Sync>;

/// What answers the call.
pub enum Answerer {
    /// The tab hears itself.
    Echo,
    /// An app or script driving the engine's channel; given the channel once the leg exists.
    Engine(Box<dyn FnOnce(super::channel::Channel) + Send>),
}

/// One browser call to a hub number. Dropping it hangs up (the peer closes, the app's
/// channel sees the hang-up).
pub struct WebRtcCall {
    inputs: mpsc::UnboundedSender<PeerInput>,
}

impl WebRtcCall {
    /// The tab's SDP offer.
    pub fn offer(&self, sdp: String) {
        let _ = self.inputs.send(PeerInput::Offer(sdp));
    }

    /// One of the tab's ICE candidates.
    pub fn candidate(&self, candidate: serde_json::Value) {
        let _ = self.inputs.send(PeerInput::Candidate(candidate));
    }
}

/// The pacer's packets for a peer: queued, never waited for (a full queue drops the frame).
struct QueueSink(mpsc::Sender<Bytes>);

impl RtpSink for QueueSink {
    fn try_send_to(&self, packet: &[u8], _to: SocketAddr) -> std::io::Result<usize> {
        self.0
            .try_send(Bytes::copy_from_slice(packet))
            .map(|()| packet.len())
            .map_err(|_| std::io::ErrorKind::WouldBlock.into())
    }
}

/// The address put in the hub's ICE candidate: the media address, or the host's own address
/// toward the rest of the network when the media address is unspecified (0.0.0.0).
pub fn announce_ip(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    // A connected UDP socket tells which local address routes outward; nothing is sent.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// Starts answering `call`: binds the peer's port from the engine's range and spawns the
/// peer and the session that ties it to the engine.
pub fn start(
    engine: &Arc<Engine>,
    call: CallInfo,
    answerer: Answerer,
    events: SessionEvents,
) -> std::io::Result<WebRtcCall> {
    let socket = engine.bind_one()?;
    let local = socket.local_addr()?;
    let settings = PeerSettings { announce: announce_ip(local.ip()) };
    let (inputs, inputs_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let (in_tx, in_rx) = mpsc::channel(QUEUE);
    let (peer_tx, peer_rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("webrtc", call = %call.id, to = %call.to, %local);
    let on_peer: Box<dyn Fn(PeerEvent) + Send + Sync> = Box::new(move |e| {
        let _ = peer_tx.send(e);
    });
    tokio::spawn(tracing::Instrument::instrument(
        peer::run(settings, socket, inputs_rx, out_rx, in_tx, on_peer),
        span.clone(),
    ));
    let session = Session { events, peer: peer_rx, out: out_tx, tag: local };
    let engine = engine.clone();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            match answerer {
                Answerer::Echo => session.echo(in_rx).await,
                Answerer::Engine(run) => session.engine(&engine, call, in_rx, run).await,
            }
        },
        span,
    ));
    Ok(WebRtcCall { inputs })
}

/// Ties one peer to what answers the call.
struct Session {
    events: SessionEvents,
    peer: mpsc::UnboundedReceiver<PeerEvent>,
    out: mpsc::Sender<Bytes>,
    tag: SocketAddr,
}

impl Session {
    /// Passes signaling on; returns the negotiated parameters when there are new ones, and
    /// `Err` once the peer is finished.
    fn peer_event(&self, event: Option<PeerEvent>) -> Result<Option<Negotiated>, ()> {
        match event {
            Some(PeerEvent::Answer(sdp)) => (self.events)(SessionEvent::Answer(sdp)),
            Some(PeerEvent::Candidate(c)) => (self.events)(SessionEvent::Candidate(c)),
            Some(PeerEvent::Negotiated(n)) => return Ok(Some(n)),
            Some(PeerEvent::Connected) => tracing::info!("browser media connected"),
            Some(PeerEvent::Ended(reason)) => {
                (self.events)(SessionEvent::Failed(reason));
                return Err(());
            }
            // The peer stopped because the call was hung up (its inputs closed).
            None => return Err(()),
        }
        Ok(None)
    }

    /// The echo test: the tab's audio goes straight back (the peer restamps the SSRC).
    async fn echo(mut self, mut inbound: mpsc::Receiver<Bytes>) {
        let mut opus = None;
        let (mut packets_in, mut packets_out) = (0u64, 0u64);
        loop {
            tokio::select! {
                event = self.peer.recv() => match self.peer_event(event) {
                    Ok(Some(n)) => opus = Some(n.opus_payload_type),
                    Ok(None) => {}
                    Err(()) => break,
                },
                Some(packet) = inbound.recv() => {
                    packets_in += 1;
                    // Audio only: the tab's own digits are not played back to it.
                    if packet.len() > 12 && Some(packet[1] & 0x7f) == opus && self.out.try_send(packet).is_ok() {
                        packets_out += 1;
                    }
                }
            }
        }
        tracing::info!(codec = "opus", packets_in, packets_out, app = "echo", "browser call ended");
    }

    /// An app or script on the engine's channel.
    async fn engine(
        mut self,
        engine: &Arc<Engine>,
        call: CallInfo,
        inbound: mpsc::Receiver<Bytes>,
        run: Box<dyn FnOnce(super::channel::Channel) + Send>,
    ) {
        let (leg_tx, mut leg_rx) = mpsc::unbounded_channel();
        let sink = Arc::new(QueueSink(self.out.clone()));
        let (mut leg, channel) = engine.open_packets(&call, leg_tx, sink, inbound, self.tag);
        run(channel);
        let mut started = false;
        loop {
            tokio::select! {
                event = self.peer.recv() => match self.peer_event(event) {
                    Ok(Some(n)) => {
                        let params = params(&n, self.tag);
                        if started { leg.update(&params) } else { leg.start(&params) }
                        started = true;
                    }
                    Ok(None) => {}
                    Err(()) => break,
                },
                Some(event) = leg_rx.recv() => match event {
                    LegEvent::Hangup { reason } => {
                        (self.events)(SessionEvent::Hangup(reason));
                        break;
                    }
                    LegEvent::Transfer { target } => {
                        tracing::info!(%target, "transferring the browser caller");
                        (self.events)(SessionEvent::Transfer(target));
                        break;
                    }
                },
            }
        }
        let s = leg.stats();
        tracing::info!(
            codec = "opus",
            packets_in = s.packets_in,
            packets_out = s.packets_out,
            lost = s.lost,
            jitter_ms = s.jitter_ms,
            late = s.late,
            dropped = s.dropped,
            digits = %s.digits,
            "browser call ended"
        );
        // Dropping the leg ends the app's channel (it sees the hang-up) and the stream.
        drop(leg);
    }
}

/// The leg's parameters for what the peer negotiated: Opus at 20 ms; `tag` stands for the
/// tab's address (the peer connection knows the real one).
fn params(n: &Negotiated, tag: SocketAddr) -> MediaParams {
    let direction = match (n.sends, n.receives) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    };
    MediaParams {
        remote: Some(tag),
        codec: AudioCodec::Opus,
        payload_type: n.opus_payload_type,
        ptime_ms: 20,
        dtmf_payload_type: n.dtmf_payload_type,
        direction,
    }
}
