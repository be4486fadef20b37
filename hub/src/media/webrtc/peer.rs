//! A WebRTC *answering* peer for browser calls to the IVR, built on the sans-I/O `rtc` crate.
//!
//! The browser offers; this peer answers with audio only (Opus 48 kHz/2 plus RFC 4733
//! `telephone-event`), rejects every other m-line (port 0), runs ICE (one host candidate on
//! [`PeerSettings::announce`]) and DTLS-SRTP, and shuttles *plain* RTP between the browser and
//! the media engine: rtc only encrypts/decrypts, it never (de)codes.
//!
//! The host candidate is put into the answer SDP **and** trickled once as
//! [`PeerEvent::Candidate`] followed by `null`, so both trickling and non-trickling signaling
//! work. No rustls `CryptoProvider` has to be installed: rtc builds its own crypto provider
//! (ring, with default features) when the peer connection is built.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT, MediaEngine};
use rtc::peer_connection::event::RTCPeerConnectionEvent as Ev;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState as Ice, RTCPeerConnectionState as Pc};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig};
use rtc::peer_connection::transport::{RTCIceCandidate, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection as Dir};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::mpsc;
use tracing::{debug, info};

/// What the engine needs to know from the negotiation, re-sent after every answer because a
/// renegotiation (hold, resume) can change it.
///
/// `sends`/`receives` are from the **server's** view, i.e. the direction of our answer: a
/// browser holding with `a=sendonly` gets `a=recvonly` back (`sends: false, receives: true`);
/// `a=inactive` gives both false. While `sends` is false, outbound packets are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Payload type the browser expects Opus on (the engine should use it; we rewrite anyway).
    pub opus_payload_type: u8,
    /// Payload type of `telephone-event` (48 kHz preferred, else 8 kHz), if negotiated.
    pub dtmf_payload_type: Option<u8>,
    /// Clock rate of that `telephone-event` (0 when there is none).
    pub dtmf_clock_rate: u32,
    /// We may send audio to the browser (false while the browser holds us).
    pub sends: bool,
    /// The browser sends audio to us.
    pub receives: bool,
}

/// Signaling from the browser, as relayed by the hub.
pub enum PeerInput {
    /// An SDP offer: the first one, or a renegotiation of the same call.
    Offer(String),
    /// A trickled `RTCIceCandidateInit`, or `null` for end-of-candidates.
    Candidate(serde_json::Value),
}

/// What the peer reports to the hub, in order.
#[derive(Debug)]
pub enum PeerEvent {
    /// Send this SDP answer to the browser.
    Answer(String),
    /// The local host candidate (`RTCIceCandidateInit` JSON, also inside the first answer's
    /// SDP), then `null` for end-of-candidates.
    Candidate(serde_json::Value),
    /// The negotiated parameters, after each answer.
    Negotiated(Negotiated),
    /// ICE+DTLS connected: media can flow.
    Connected,
    /// The peer is finished; the string says why, for a log line. Always the last event.
    Ended(String),
}

/// Per-peer configuration.
pub struct PeerSettings {
    /// Address put in the host candidate (the server's fixed address), with the socket's port.
    /// rtc matches received packets to the candidate by it, so it is also their local address.
    pub announce: IpAddr,
}

type Events<'a> = &'a (dyn Fn(PeerEvent) + Send + Sync);

/// Runs one peer until `inputs` closes (hang-up: the peer connection is closed, which sends a
/// DTLS close_notify) or the peer fails. Ends with exactly one [`PeerEvent::Ended`], never panics.
pub async fn run(
    settings: PeerSettings,
    socket: UdpSocket,
    inputs: mpsc::UnboundedReceiver<PeerInput>,
    outbound: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<Bytes>,
    events: Box<dyn Fn(PeerEvent) + Send + Sync>,
) {
    let reason = match Peer::new(settings, socket) {
        Ok(peer) => peer.drive(inputs, outbound, inbound, &*events).await,
        Err(e) => e,
    };
    info!(%reason, "peer ended");
    events(PeerEvent::Ended(reason));
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str, pt: u8) -> RTCRtpCodecParameters {
    let (mime_type, sdp_fmtp_line) = (mime.to_owned(), fmtp.to_owned());
    let rtcp_feedback = vec![];
    let rtp_codec = RTCRtpCodec { mime_type, clock_rate, channels, sdp_fmtp_line, rtcp_feedback };
    RTCRtpCodecParameters { rtp_codec, payload_type: pt }
}

/// Opus/48000/2 (PT 111) and telephone-event/48000 (110) and /8000 (126), the PTs Chrome uses.
fn audio_engine() -> Result<MediaEngine, Error> {
    let mut media = MediaEngine::default();
    for (mime, rate, channels, fmtp, pt) in [
        (MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", 111),
        (MIME_TYPE_TELEPHONE_EVENT, 48000, 0, "0-15", 110),
        (MIME_TYPE_TELEPHONE_EVENT, 8000, 0, "0-15", 126),
    ] {
        media.register_codec(codec(mime, rate, channels, fmtp, pt), RtpCodecKind::Audio)?;
    }
    Ok(media)
}

/// A peer connection whose only interceptors generate RTCP SR/RR (no NACK/TWCC for audio).
fn build_pc(media: MediaEngine) -> Result<RTCPeerConnection, Error> {
    let registry = configure_rtcp_reports(Registry::new());
    let builder = RTCPeerConnectionBuilder::new().with_media_engine(media);
    builder.with_interceptor_registry(registry).build(Instant::now())
}

/// An audio track with a fixed SSRC and *no* codec: rtc turns a codec in the encoding into the
/// transceiver's only codec preference, which would drop telephone-event from the SDP.
fn audio_track(name: &str, ssrc: u32) -> MediaStreamTrack {
    let rtp_coding_parameters = RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() };
    let enc = RTCRtpEncodingParameters { rtp_coding_parameters, active: true, ..Default::default() };
    let id = format!("{name}-audio");
    MediaStreamTrack::new(name.to_owned(), id.clone(), id, RtpCodecKind::Audio, vec![enc])
}

fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, Error> {
    let (network, address, port) = ("udp".to_owned(), addr.ip().to_string(), addr.port());
    let base_config = CandidateConfig { network, address, port, component: 1, ..Default::default() };
    let candidate = CandidateHostConfig { base_config, ..Default::default() }.new_candidate_host()?;
    RTCIceCandidate::from(&candidate).to_json()
}

fn datagram(local_addr: SocketAddr, peer_addr: SocketAddr, data: &[u8]) -> TaggedBytesMut {
    let transport_protocol = TransportProtocol::UDP;
    let transport = TransportContext { local_addr, peer_addr, ecn: None, transport_protocol };
    TaggedBytesMut { now: Instant::now(), transport, message: BytesMut::from(data) }
}

struct Peer {
    pc: RTCPeerConnection,
    socket: tokio::net::UdpSocket,
    local: SocketAddr,
    sender: RTCRtpSenderId,
    ssrc: u32,
    negotiated: Option<Negotiated>,
    connected: bool,
    early_candidates: Vec<RTCIceCandidateInit>,
}

impl Peer {
    fn new(settings: PeerSettings, socket: UdpSocket) -> Result<Self, String> {
        let port = socket.local_addr().map_err(|e| format!("socket: {e}"))?.port();
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(|e| format!("socket: {e}"))?;
        let mut pc = audio_engine().and_then(build_pc).map_err(|e| format!("rtc: {e}"))?;
        let ssrc = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), port) as u32;
        let sender = pc.add_track(audio_track("hub", ssrc)).map_err(|e| format!("rtc: {e}"))?;
        let local = SocketAddr::new(settings.announce, port);
        let (negotiated, connected, early_candidates) = (None, false, vec![]);
        Ok(Self { pc, socket, local, sender, ssrc, negotiated, connected, early_candidates })
    }

    async fn drive(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<PeerInput>,
        mut outbound: mpsc::Receiver<Bytes>,
        inbound: mpsc::Sender<Bytes>,
        events: Events<'_>,
    ) -> String {
        let (mut buf, mut outbound_open) = (vec![0u8; 2048], true);
        loop {
            if let Err(reason) = self.pump(&inbound, events).await {
                return reason;
            }
            let later = Instant::now() + Duration::from_secs(3600);
            let deadline = self.pc.poll_timeout().unwrap_or(later);
            tokio::select! {
                res = self.socket.recv_from(&mut buf) => match res {
                    // Never fails: e.g. media before DTLS is up is dropped (and logged) by rtc.
                    Ok((n, from)) => drop(self.pc.handle_read(datagram(self.local, from, &buf[..n]))),
                    Err(e) => return format!("socket receive failed: {e}"),
                },
                input = inputs.recv() => match input {
                    Some(PeerInput::Offer(sdp)) => if let Err(reason) = self.answer(sdp, events) {
                        return reason;
                    },
                    Some(PeerInput::Candidate(json)) => self.remote_candidate(json),
                    None => {
                        drop(self.pc.close()); // queues DTLS close_notify, sent by pump
                        drop(self.pump(&inbound, events).await);
                        return "hung up".to_owned();
                    }
                },
                pkt = outbound.recv(), if outbound_open => match pkt {
                    Some(pkt) => self.send_rtp(pkt),
                    None => outbound_open = false,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if let Err(e) = self.pc.handle_timeout(Instant::now()) {
                        return format!("rtc timeout handling failed: {e}");
                    }
                }
            }
        }
    }

    /// Drains rtc's outputs: datagrams to the socket, state events, decrypted media.
    async fn pump(&mut self, inbound: &mpsc::Sender<Bytes>, events: Events<'_>) -> Result<(), String> {
        while let Some(msg) = self.pc.poll_write() {
            let to = msg.transport.peer_addr;
            if let Err(error) = self.socket.send_to(&msg.message, to).await {
                debug!(%to, %error, "udp send failed");
            }
        }
        while let Some(event) = self.pc.poll_event() {
            match event {
                Ev::OnIceConnectionStateChangeEvent(state) => {
                    debug!(%state, "ice state");
                    if state == Ice::Failed {
                        return Err("ICE failed".to_owned());
                    }
                }
                Ev::OnConnectionStateChangeEvent(state) => {
                    info!(%state, "peer connection state");
                    match state {
                        Pc::Connected if !self.connected => {
                            self.connected = true;
                            events(PeerEvent::Connected);
                        }
                        Pc::Failed => return Err("connection failed (ICE/DTLS)".to_owned()),
                        Pc::Closed => return Err("closed by the browser".to_owned()),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        while let Some(msg) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, pkt) = msg.message {
                let seq = pkt.header.sequence_number;
                match pkt.marshal().map(|raw| inbound.try_send(raw.freeze())) {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => debug!(seq, "inbound full, dropped"),
                    Err(error) => debug!(%error, "cannot marshal inbound rtp"),
                }
            }
        }
        Ok(())
    }

    fn answer(&mut self, sdp: String, events: Events<'_>) -> Result<(), String> {
        let unparsable = |e: Error| format!("unparsable SDP offer: {e}");
        let mut sdp = RTCSessionDescription::offer(sdp).map_err(unparsable)?.sdp;
        let audio = sdp::audio(&sdp).ok_or("offer has no audio m-line")?;
        let find = |name: &str, rate| audio.codecs.iter().find(|c| c.1 == name && c.2 == rate);
        find("opus", 48000).ok_or("offer's audio has no Opus/48000")?;
        // rtc matches codecs ignoring the clock rate: with both telephone-events offered it
        // answers the 48 kHz one twice (same PT). So it does not get to see the 8 kHz one.
        if let (Some(_), Some(te8)) = (find("telephone-event", 48000), find("telephone-event", 8000)) {
            sdp = sdp::drop_audio_payload_type(&sdp, te8.0);
        }
        // rtc answers with the transceiver's own direction instead of intersecting it with the
        // offer's, and it permanently *stops* the transceiver on an `a=inactive` re-offer (so a
        // resume would be dead). So rtc is shown inactive as sendonly, and we set our direction.
        let ours = match audio.direction.as_str() {
            "sendonly" => Dir::Recvonly,
            "recvonly" => Dir::Sendonly,
            "inactive" => Dir::Inactive,
            _ => Dir::Sendrecv,
        };
        let offer = RTCSessionDescription::offer(sdp.replace("\na=inactive", "\na=sendonly"));
        let offer = offer.map_err(unparsable)?;
        let (now, rtc_err) = (Instant::now(), |e: Error| format!("negotiation failed: {e}"));
        self.pc.set_remote_description(now, offer).map_err(rtc_err)?;
        let host = match self.negotiated {
            Some(_) => None,
            None => {
                let host = host_candidate(self.local).map_err(rtc_err)?;
                self.pc.add_local_candidate(host.clone()).map_err(rtc_err)?;
                // End of gathering, so the answer carries a=end-of-candidates.
                self.pc.add_local_candidate(RTCIceCandidateInit::default()).map_err(rtc_err)?;
                for c in std::mem::take(&mut self.early_candidates) {
                    drop(self.pc.add_remote_candidate(c));
                }
                Some(host)
            }
        };
        for id in self.pc.get_transceivers().collect::<Vec<_>>() {
            if let Some(mut t) = self.pc.rtp_transceiver(id).filter(|t| t.sender() == Some(self.sender)) {
                t.set_direction(ours);
            }
        }
        let answer = self.pc.create_answer(None).map_err(rtc_err)?;
        self.pc.set_local_description(now, answer.clone()).map_err(rtc_err)?;
        let negotiated = sdp::negotiated(&answer.sdp).ok_or("no Opus negotiated in the answer")?;
        info!(?negotiated, "answered");
        events(PeerEvent::Answer(answer.sdp.clone()));
        if let Some(mut host) = host {
            host.sdp_mid = sdp::first_mid(&answer.sdp);
            events(PeerEvent::Candidate(serde_json::to_value(&host).unwrap_or_default()));
            events(PeerEvent::Candidate(serde_json::Value::Null));
        }
        events(PeerEvent::Negotiated(negotiated.clone()));
        self.negotiated = Some(negotiated);
        Ok(())
    }

    fn remote_candidate(&mut self, json: serde_json::Value) {
        if json.is_null() {
            return debug!("remote end-of-candidates");
        }
        match serde_json::from_value::<RTCIceCandidateInit>(json) {
            Ok(c) if self.negotiated.is_none() => self.early_candidates.push(c),
            Ok(c) => {
                if let Err(error) = self.pc.add_remote_candidate(c) {
                    debug!(%error, "remote candidate ignored");
                }
            }
            Err(error) => debug!(%error, "malformed remote candidate ignored"),
        }
    }

    /// Sends one engine packet: same seq/timestamp/payload, our SSRC, the negotiated PT (rtc's
    /// `write_rtp` rejects any other SSRC, PT or header extension instead of rewriting them).
    fn send_rtp(&mut self, raw: Bytes) {
        let Some(neg) = self.negotiated.as_ref().filter(|n| self.connected && n.sends) else {
            return; // not connected yet, or on hold: dropped
        };
        let mut pkt = match rtc::rtp::Packet::unmarshal(&mut raw.clone()) {
            Ok(pkt) => pkt,
            Err(error) => return debug!(%error, "engine sent invalid rtp"),
        };
        pkt.header.ssrc = self.ssrc;
        if Some(pkt.header.payload_type) != neg.dtmf_payload_type {
            pkt.header.payload_type = neg.opus_payload_type;
        }
        pkt.header.extension = false;
        pkt.header.extensions.clear();
        if let Some(mut sender) = self.pc.rtp_sender(self.sender)
            && let Err(error) = sender.write_rtp(Instant::now(), pkt)
        {
            debug!(%error, "write_rtp failed");
        }
    }
}

/// Just enough SDP reading to validate offers and fill [`Negotiated`] from our answer.
mod sdp {
    use super::Negotiated;

    /// The first audio m-section: port, direction and `(pt, name, clock rate)` per a=rtpmap.
    pub struct Audio {
        pub port: u16,
        pub direction: String,
        pub codecs: Vec<(u8, String, u32)>,
    }

    pub fn audio(sdp: &str) -> Option<Audio> {
        let (mut section, mut session_dir) = (None::<Audio>, "sendrecv".to_owned());
        for line in sdp.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("m=") {
                if section.is_some() {
                    break;
                }
                let mut f = m.split_whitespace();
                if f.next() == Some("audio") {
                    let (port, direction) = (f.next()?.parse().ok()?, session_dir.clone());
                    section = Some(Audio { port, direction, codecs: vec![] });
                }
                continue;
            }
            let a = line.strip_prefix("a=").unwrap_or_default();
            let dir = matches!(a, "sendrecv" | "sendonly" | "recvonly" | "inactive");
            match section.as_mut() {
                None if dir => session_dir = a.to_owned(),
                Some(s) if dir => s.direction = a.to_owned(),
                Some(s) => {
                    let (pt, enc) = a.strip_prefix("rtpmap:").and_then(|r| r.split_once(' ')).unwrap_or_default();
                    let mut enc = enc.split('/');
                    if let (Ok(pt), Some(name), Some(Ok(rate))) = (pt.parse(), enc.next(), enc.next().map(str::parse)) {
                        s.codecs.push((pt, name.to_owned(), rate));
                    }
                }
                None => {}
            }
        }
        section
    }

    /// Reads our answer: `None` if it does not accept audio with Opus.
    pub fn negotiated(answer: &str) -> Option<Negotiated> {
        let a = audio(answer).filter(|a| a.port != 0)?;
        let find = |name: &str, rate| a.codecs.iter().find(|c| c.1.eq_ignore_ascii_case(name) && c.2 == rate);
        let dtmf = find("telephone-event", 48000).or_else(|| find("telephone-event", 8000));
        Some(Negotiated {
            opus_payload_type: find("opus", 48000)?.0,
            dtmf_payload_type: dtmf.map(|d| d.0),
            dtmf_clock_rate: dtmf.map_or(0, |d| d.2),
            sends: matches!(a.direction.as_str(), "sendrecv" | "sendonly"),
            receives: matches!(a.direction.as_str(), "sendrecv" | "recvonly"),
        })
    }

    /// Removes payload type `pt` from the first audio m-section (format list and attributes).
    pub fn drop_audio_payload_type(sdp: &str, pt: u8) -> String {
        let (mut section, mut out) = (0, String::with_capacity(sdp.len()));
        let attrs = [format!("a=rtpmap:{pt} "), format!("a=fmtp:{pt} "), format!("a=rtcp-fb:{pt} ")];
        for line in sdp.split_inclusive('\n') {
            if line.starts_with("m=") {
                section = if section == 0 && line.starts_with("m=audio") { 1 } else { 2 };
                if section == 1 {
                    let pt = pt.to_string();
                    let kept: Vec<_> =
                        line.split_whitespace().enumerate().filter(|(i, f)| *i < 3 || *f != pt).map(|f| f.1).collect();
                    out.push_str(&(kept.join(" ") + "\r\n"));
                    continue;
                }
            }
            if section != 1 || !attrs.iter().any(|a| line.starts_with(a.as_str())) {
                out.push_str(line);
            }
        }
        out
    }

    /// The mid of the first m-section (the BUNDLE transport the candidate belongs to).
    pub fn first_mid(sdp: &str) -> Option<String> {
        sdp.lines().find_map(|l| l.trim().strip_prefix("a=mid:")).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tokio::sync::mpsc::{UnboundedReceiver as URx, UnboundedSender as UTx, unbounded_channel};
    use tokio::time::timeout;

    type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

    /// Commands to the fake browser: a second rtc peer connection, the offerer.
    enum Cmd {
        Answer(String),
        Candidate(Value),
        Rtp(u8, u16),
        Reoffer(Dir),
    }

    /// Waits (at most 10 s) for the first item matching `$p`, skipping the others.
    macro_rules! next {
        ($rx:expr, $p:pat => $v:expr) => {
            timeout(Duration::from_secs(10), async {
                loop {
                    if let $p = $rx.recv().await.expect("channel closed") {
                        break $v;
                    }
                }
            })
            .await
            .expect("timed out")
        };
    }

    /// The fake browser: offers Opus + telephone-event/48000 (sendrecv) and a video m-line;
    /// offers and candidates go to `to_peer` (weak, so the test alone owns the hang-up);
    /// reports `Some(rtp)` per received packet and `None` once connected.
    async fn browser(
        to_peer: mpsc::WeakUnboundedSender<PeerInput>,
        mut cmds: URx<Cmd>,
        out: UTx<Option<rtc::rtp::Packet>>,
    ) -> Res {
        let signal = |i| to_peer.upgrade().map(|s| s.send(i));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut media = audio_engine()?;
        media.register_codec(codec("video/VP8", 90000, 0, "", 96), RtpCodecKind::Video)?;
        let mut pc = build_pc(media)?;
        let sender = pc.add_track(audio_track("browser", 4242))?;
        pc.add_transceiver_from_kind(RtpCodecKind::Video, None)?;
        let offer = pc.create_offer(None)?;
        pc.set_local_description(Instant::now(), offer.clone())?;
        signal(PeerInput::Offer(offer.sdp));
        let host = host_candidate(local)?;
        pc.add_local_candidate(host.clone())?;
        signal(PeerInput::Candidate(serde_json::to_value(&host)?));
        let mut buf = vec![0u8; 2048];
        loop {
            while let Some(m) = pc.poll_write() {
                socket.send_to(&m.message, m.transport.peer_addr).await?;
            }
            while let Some(e) = pc.poll_event() {
                if let Ev::OnConnectionStateChangeEvent(Pc::Connected) = e {
                    out.send(None)?;
                }
            }
            while let Some(m) = pc.poll_read() {
                if let RTCMessage::RtpPacket(_, p) = m.message {
                    out.send(Some(p))?;
                }
            }
            let deadline = pc.poll_timeout().unwrap_or(Instant::now() + Duration::from_secs(60));
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    pc.handle_read(datagram(local, from, &buf[..n]))?;
                }
                c = cmds.recv() => match c {
                    None => return Ok(()),
                    Some(Cmd::Answer(sdp)) => pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(sdp)?)?,
                    Some(Cmd::Candidate(Value::Null)) => {}
                    Some(Cmd::Candidate(v)) => pc.add_remote_candidate(serde_json::from_value(v)?)?,
                    Some(Cmd::Rtp(pt, seq)) => {
                        let mut p = rtc::rtp::Packet { payload: Bytes::from_static(&[1, 2, 3, 4]), ..Default::default() };
                        (p.header.version, p.header.payload_type, p.header.sequence_number, p.header.ssrc) = (2, pt, seq, 4242);
                        pc.rtp_sender(sender).ok_or("no sender")?.write_rtp(Instant::now(), p)?;
                    }
                    Some(Cmd::Reoffer(dir)) => {
                        let first = pc.get_transceivers().next().ok_or("no transceiver")?;
                        pc.rtp_transceiver(first).ok_or("no transceiver")?.set_direction(dir);
                        let offer = pc.create_offer(None)?;
                        pc.set_local_description(Instant::now(), offer.clone())?;
                        signal(PeerInput::Offer(offer.sdp));
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => pc.handle_timeout(Instant::now())?,
            }
        }
    }

    struct Harness {
        to_peer: Option<UTx<PeerInput>>,
        events: URx<PeerEvent>,
        outbound: mpsc::Sender<Bytes>,
        inbound: mpsc::Receiver<Bytes>,
        peer: tokio::task::JoinHandle<()>,
        cmds: UTx<Cmd>,
        from_browser: URx<Option<rtc::rtp::Packet>>,
    }

    /// Spawns `run` on 127.0.0.1; if `browser` is given, answers and candidates go to it.
    fn start(browser: UTx<Cmd>, from_browser: URx<Option<rtc::rtp::Packet>>) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let ((to_peer, inputs), (ev_tx, events)) = (unbounded_channel(), unbounded_channel());
        let ((outbound, out_rx), (in_tx, inbound)) = (mpsc::channel(64), mpsc::channel(64));
        let cmds = browser.clone();
        let on_event = move |e: PeerEvent| {
            match &e {
                PeerEvent::Answer(s) => drop(browser.send(Cmd::Answer(s.clone()))),
                PeerEvent::Candidate(c) => drop(browser.send(Cmd::Candidate(c.clone()))),
                _ => {}
            }
            drop(ev_tx.send(e));
        };
        let settings = PeerSettings { announce: [127, 0, 0, 1].into() };
        let peer = tokio::spawn(run(settings, socket, inputs, out_rx, in_tx, Box::new(on_event)));
        Harness { to_peer: Some(to_peer), events, outbound, inbound, peer, cmds, from_browser }
    }

    /// Runs `run` against the fake browser until both sides are connected.
    async fn connected() -> Harness {
        let ((cmds, cmd_rx), (out_tx, from_browser)) = (unbounded_channel(), unbounded_channel());
        let mut h = start(cmds, from_browser);
        let weak = h.to_peer.as_ref().expect("sender").downgrade();
        tokio::spawn(async move { browser(weak, cmd_rx, out_tx).await.expect("browser") });
        let answer = next!(h.events, PeerEvent::Answer(s) => s);
        assert!(answer.contains("a=rtpmap:111 opus/48000/2"), "{answer}");
        assert!(answer.contains("a=rtpmap:110 telephone-event/48000"), "{answer}");
        assert!(answer.contains("m=video 0 "), "video must be rejected: {answer}");
        let neg = next!(h.events, PeerEvent::Negotiated(n) => n);
        let (opus_payload_type, dtmf_payload_type, dtmf_clock_rate) = (111, Some(110), 48000);
        assert_eq!(
            neg,
            Negotiated { opus_payload_type, dtmf_payload_type, dtmf_clock_rate, sends: true, receives: true }
        );
        assert!(next!(h.events, PeerEvent::Connected => true));
        assert!(next!(h.from_browser, None => true));
        h
    }

    impl Harness {
        /// Engine packets (foreign SSRC and PT) arrive with the same seq, timestamp and payload.
        async fn engine_to_browser(&mut self, seq: u16) {
            for seq in seq..seq + 5 {
                let mut p = rtc::rtp::Packet { payload: Bytes::from_static(&[0xf8, 0xff, 0xfe]), ..Default::default() };
                (p.header.version, p.header.payload_type, p.header.ssrc) = (2, 96, 0xdead_beef);
                (p.header.sequence_number, p.header.timestamp) = (seq, 960 * u32::from(seq));
                self.outbound.send(p.marshal().expect("marshal").freeze()).await.expect("send");
                let got = next!(self.from_browser, Some(p) => p);
                let h = &got.header;
                assert_eq!((h.sequence_number, h.timestamp, h.payload_type), (seq, 960 * u32::from(seq), 111));
                assert_eq!(&got.payload[..], &[0xf8, 0xff, 0xfe]);
            }
        }

        async fn browser_to_engine(&mut self, pt: u8, seq: u16) {
            self.cmds.send(Cmd::Rtp(pt, seq)).expect("cmd");
            let raw = timeout(Duration::from_secs(10), self.inbound.recv()).await.expect("timed out").expect("inbound");
            let p = rtc::rtp::Packet::unmarshal(&mut raw.clone()).expect("rtp");
            assert_eq!((p.header.payload_type, p.header.sequence_number), (pt, seq));
            assert_eq!(&p.payload[..], &[1, 2, 3, 4]);
        }

        async fn reoffer(&mut self, dir: Dir, direction: &str) -> Negotiated {
            self.cmds.send(Cmd::Reoffer(dir)).expect("cmd");
            let answer = next!(self.events, PeerEvent::Answer(s) => s);
            assert!(answer.contains(&format!("a={direction}")), "{answer}");
            next!(self.events, PeerEvent::Negotiated(n) => n)
        }

        async fn hang_up(mut self) {
            self.to_peer = None;
            assert_eq!(next!(self.events, PeerEvent::Ended(r) => r), "hung up");
            timeout(Duration::from_secs(10), self.peer).await.expect("run still running").expect("join");
        }
    }

    #[tokio::test]
    async fn media_flows_both_ways_and_hangup_ends() {
        let mut h = connected().await;
        h.engine_to_browser(1000).await;
        h.browser_to_engine(111, 7).await;
        h.browser_to_engine(110, 8).await;
        h.hang_up().await;
    }

    #[tokio::test]
    async fn renegotiation_hold_and_resume() {
        let mut h = connected().await;
        let n = h.reoffer(Dir::Sendonly, "recvonly").await;
        assert!(n.receives && !n.sends);
        h.browser_to_engine(111, 20).await;
        let n = h.reoffer(Dir::Inactive, "inactive").await;
        assert!(!n.receives && !n.sends);
        let n = h.reoffer(Dir::Sendrecv, "sendrecv").await;
        assert!(n.receives && n.sends);
        h.engine_to_browser(2000).await;
        h.browser_to_engine(110, 21).await;
        h.hang_up().await;
    }

    async fn offer_fails(sdp: &str) -> String {
        let mut h = start(unbounded_channel().0, unbounded_channel().1);
        h.to_peer.as_ref().expect("sender").send(PeerInput::Offer(sdp.to_owned())).expect("send");
        next!(h.events, PeerEvent::Ended(r) => r)
    }

    /// An offer with telephone-event/8000 only (and without, and with both) is answered with it.
    #[tokio::test]
    async fn telephone_event_8000_only() -> Res {
        for (te, expect) in [(&[8000][..], Some((126, 8000))), (&[], None), (&[8000, 48000], Some((110, 48000)))] {
            let mut media = MediaEngine::default();
            media.register_codec(codec(MIME_TYPE_OPUS, 48000, 2, "", 111), RtpCodecKind::Audio)?;
            for &rate in te {
                let pt = if rate == 8000 { 126 } else { 110 };
                media.register_codec(codec(MIME_TYPE_TELEPHONE_EVENT, rate, 0, "", pt), RtpCodecKind::Audio)?;
            }
            let mut pc = build_pc(media)?;
            pc.add_transceiver_from_kind(RtpCodecKind::Audio, None)?;
            let mut h = start(unbounded_channel().0, unbounded_channel().1);
            let offer = pc.create_offer(None)?.sdp;
            assert_eq!(offer.matches("telephone-event").count(), te.len(), "{offer}");
            h.to_peer.as_ref().ok_or("gone")?.send(PeerInput::Offer(offer))?;
            let answer = next!(h.events, PeerEvent::Answer(s) => s);
            assert_eq!(answer.matches("telephone-event").count(), te.len().min(1), "{answer}");
            let n = next!(h.events, PeerEvent::Negotiated(n) => n);
            assert_eq!(n.dtmf_payload_type.map(|pt| (pt, n.dtmf_clock_rate)), expect);
        }
        Ok(())
    }

    #[tokio::test]
    async fn bad_offers_end_the_peer() {
        assert!(offer_fails("v=0 garbage").await.contains("unparsable"));
        let video_only = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n\
            a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=sendrecv\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(offer_fails(video_only).await.contains("no audio"));
        let no_opus = video_only
            .replace("video 9 UDP/TLS/RTP/SAVPF 96", "audio 9 UDP/TLS/RTP/SAVPF 0")
            .replace("96 VP8/90000", "0 PCMU/8000");
        assert!(offer_fails(&no_opus).await.contains("no Opus"));
    }
}
