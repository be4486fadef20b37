//! One call's audio in the engine: the receive side, and the [`MediaLeg`] the SIP layer drives.
//!
//! Sending is the pacer's ([`super::pacer`]): the leg adds a stream when the call is answered
//! and steers it (remote address, codec, what plays). Receiving is one small task per call,
//! woken by its sockets only: each RTP packet updates the RFC 3550 statistics, RFC 4733 events
//! become digits, and audio goes through a reorder buffer and the decoder when someone needs
//! the sound (a recording, or in-band DTMF detection for callers that negotiated no
//! telephone-event, as old POTS gateways do). RTCP from the caller tells what it hears of us.
//!
//! Symmetric RTP (RFC 4961): the first packets from an address other than the SDP's switch the
//! stream to it, so callers behind NAT hear the hub.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use bytes::Bytes;
use rtc_rtp::header::Header;
use rtc_shared::marshal::Unmarshal;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::codec::{self, Decoder};
use super::engine::Engine;
use super::goertzel::InbandDetector;
use super::jitter::{JitterBuffer, Slot};
use super::pacer::{RtcpOut, StreamCounters, StreamHandle, StreamSpec};
use super::recorder::{RecordError, Recorder, Recording, StopReason};
use super::rtcp::{self, PeerSr, RemoteView, SendCounts};
use super::rtp_stats::ReceiveStats;
use super::socket::{RtpSink, RtpSocket};
use super::telephone_event::EventReceiver;
use crate::sip::media_port::{Digit, LegStats, MediaLeg};
use crate::sip::sdp::{AudioCodec, Direction, MediaParams};

/// Digits kept per call for the stats.
const DIGITS_KEPT: usize = 32;
/// Packets the reorder buffer holds before it gives up on a missing one (3 × 20 ms).
const JITTER_DEPTH: usize = 3;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the receive side knows, shared with the stats and the RTCP report.
pub(super) struct RecvState {
    pub stats: ReceiveStats,
    pub last_in: Instant,
    pub digits: String,
    pub peer_sr: Option<PeerSr>,
    pub remote_view: Option<RemoteView>,
    pub codec: Option<AudioCodec>,
}

/// State shared by the leg, its receive task, its channel and the pacer's report builder.
pub(super) struct LegShared {
    pub counters: Arc<StreamCounters>,
    pub recv: Mutex<RecvState>,
    pub stream: Mutex<Option<StreamHandle>>,
    pub params: watch::Sender<Option<MediaParams>>,
    pub digits: mpsc::UnboundedSender<Digit>,
    pub commands: mpsc::UnboundedSender<RecvCommand>,
}

impl LegShared {
    fn digit(&self, digit: Digit) {
        {
            let mut recv = lock(&self.recv);
            if recv.digits.len() >= DIGITS_KEPT {
                recv.digits.remove(0);
            }
            recv.digits.push(digit.digit);
        }
        let _ = self.digits.send(digit);
    }
}

/// Where the receive task reports a finished recording (`None`: nothing was said).
pub(super) type RecordingDone = oneshot::Sender<Result<Option<Recording>, RecordError>>;

/// Asks of the receive task.
pub(super) enum RecvCommand {
    /// Start writing the caller's audio; the outcome comes back when it stops.
    Record(Box<Recorder>, RecordingDone),
    /// Stop the recording (the caller pressed the stop key).
    StopRecording(StopReason),
}

/// How a leg's packets travel.
#[derive(Clone)]
pub(super) enum Transport {
    /// RTP and RTCP on the call's own UDP ports (SIP callers).
    Udp {
        /// RTP, shared by the receive task and the pacer.
        rtp: Arc<RtpSocket>,
        /// RTCP, the odd port above.
        rtcp: Arc<RtpSocket>,
    },
    /// Plain RTP handed to a WebRTC peer connection, which encrypts it (SRTP) and keeps its
    /// own RTCP; the caller's plain RTP comes back on a queue.
    Packets {
        /// Where the pacer puts the packets.
        sink: Arc<dyn RtpSink>,
    },
}

/// Where the receive task reads the caller's packets.
pub(super) enum Inbound {
    /// The call's RTP and RTCP sockets.
    Udp(Arc<RtpSocket>, Arc<RtpSocket>),
    /// Decrypted RTP from a WebRTC peer, tagged with the leg's stand-in address.
    Packets(mpsc::Receiver<Bytes>, SocketAddr),
}

/// The engine's [`MediaLeg`].
pub struct EngineLeg {
    pub(super) local: SocketAddr,
    pub(super) shared: Arc<LegShared>,
    pub(super) engine: Arc<Engine>,
    pub(super) transport: Transport,
    pub(super) stop: CancellationToken,
}

impl Drop for EngineLeg {
    fn drop(&mut self) {
        // Removes the pacer's stream (its report builder holds only a weak reference).
        lock(&self.shared.stream).take();
        self.stop.cancel();
    }
}

/// The pacer stream's parameters for `params`.
fn sends(params: &MediaParams) -> Option<SocketAddr> {
    matches!(params.direction, Direction::SendRecv | Direction::SendOnly).then_some(params.remote).flatten()
}

/// The silence frame of a codec, sent between prompts.
fn silence(engine: &Engine, codec: AudioCodec, ptime_ms: u32) -> Option<Arc<[u8]>> {
    engine.silence(codec, ptime_ms)
}

impl EngineLeg {
    fn add_stream(&self, params: &MediaParams) {
        let (socket, rtcp): (Arc<dyn RtpSink>, _) = match &self.transport {
            Transport::Udp { rtp, rtcp } => (rtp.clone(), Some(rtcp.clone())),
            Transport::Packets { sink } => (sink.clone(), None),
        };
        let weak: Weak<LegShared> = Arc::downgrade(&self.shared);
        let cname = self.engine.cname.clone();
        let report: super::pacer::ReportFn = Arc::new(move |ssrc, sent: SendCounts| {
            let shared = weak.upgrade()?;
            let mut recv = lock(&shared.recv);
            let block = recv.stats.interval();
            let sent = (sent.packets > 0).then_some(sent);
            rtcp::build_report(ssrc, &cname, sent, block, recv.peer_sr).ok()
        });
        let rtcp_out = params.remote.zip(rtcp).map(|(r, socket)| RtcpOut {
            socket,
            remote: SocketAddr::new(r.ip(), r.port().saturating_add(1)),
            report,
        });
        let spec = StreamSpec {
            socket,
            remote: sends(params),
            payload_type: params.payload_type,
            clock_rate: params.codec.clock_rate(),
            ptime_ms: params.ptime_ms,
            silence: silence(&self.engine, params.codec, params.ptime_ms),
            rtcp: rtcp_out,
            counters: self.shared.counters.clone(),
        };
        *lock(&self.shared.stream) = Some(self.engine.pacer.add(spec));
    }
}

impl MediaLeg for EngineLeg {
    fn local_rtp(&self) -> SocketAddr {
        self.local
    }

    fn start(&mut self, params: &MediaParams) {
        {
            let mut recv = lock(&self.shared.recv);
            recv.last_in = Instant::now();
            recv.codec = Some(params.codec);
            recv.stats.set_clock_rate(params.codec.clock_rate());
        }
        self.add_stream(params);
        self.shared.params.send_replace(Some(params.clone()));
    }

    fn update(&mut self, params: &MediaParams) {
        {
            let mut recv = lock(&self.shared.recv);
            recv.last_in = Instant::now();
            recv.codec = Some(params.codec);
            recv.stats.set_clock_rate(params.codec.clock_rate());
        }
        if let Some(stream) = lock(&self.shared.stream).as_ref() {
            stream.set_remote(sends(params));
            stream.set_format(
                params.payload_type,
                params.codec.clock_rate(),
                silence(&self.engine, params.codec, params.ptime_ms),
            );
        }
        self.shared.params.send_replace(Some(params.clone()));
    }

    fn dtmf(&mut self, digit: Digit) {
        self.shared.digit(digit);
    }

    fn stats(&self) -> LegStats {
        let recv = lock(&self.shared.recv);
        let c = &self.shared.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let rate = recv.codec.map_or(8000, AudioCodec::clock_rate);
        LegStats {
            packets_in: recv.stats.received(),
            packets_out: load(&c.packets),
            idle_ms: u64::try_from(recv.last_in.elapsed().as_millis()).unwrap_or(u64::MAX),
            digits: recv.digits.clone(),
            lost: recv.stats.lost(),
            jitter_ms: (recv.stats.jitter_ms() * 10.0).round() / 10.0,
            late: load(&c.late),
            dropped: load(&c.dropped),
            remote_loss: recv.remote_view.map(|v| v.fraction_lost),
            remote_jitter_ms: recv.remote_view.map(|v| f64::from(v.jitter) * 1000.0 / f64::from(rate)),
            rtt_ms: recv.remote_view.and_then(|v| v.rtt).map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// The receive task's own state.
struct Receive {
    shared: Arc<LegShared>,
    inband_enabled: bool,
    params: Option<MediaParams>,
    learned: Option<SocketAddr>,
    learned_rtcp: Option<SocketAddr>,
    events: EventReceiver,
    jitter: JitterBuffer<Bytes>,
    decoder: Option<Decoder>,
    inband: Option<InbandDetector>,
    recording: Option<(Box<Recorder>, RecordingDone)>,
    pcm: Vec<i16>,
    found: Vec<super::goertzel::DetectedDigit>,
}

impl Receive {
    /// New parameters (answer, re-INVITE): the decoder and detectors follow the codec.
    fn set_params(&mut self, params: Option<MediaParams>) {
        let codec_changed = self.params.as_ref().map(|p| p.codec) != params.as_ref().map(|p| p.codec);
        if codec_changed {
            self.decoder = params.as_ref().and_then(|p| {
                let rate = if p.codec == AudioCodec::Opus { 16_000 } else { 8000 };
                Decoder::new(p.codec, rate).ok()
            });
            self.jitter = JitterBuffer::new(JITTER_DEPTH);
        }
        // In-band detection only where the caller has no RFC 4733 (Asterisk's dtmf_mode=auto).
        self.inband = params
            .as_ref()
            .filter(|p| self.inband_enabled && p.dtmf_payload_type.is_none() && p.codec != AudioCodec::Opus)
            .and_then(|_| InbandDetector::new(8000).ok());
        self.learned = None;
        self.learned_rtcp = None;
        self.params = params;
    }

    fn rtp(&mut self, packet: &[u8], from: SocketAddr) {
        let Some(params) = &self.params else { return };
        let mut raw = packet;
        let Ok(header) = Header::unmarshal(&mut raw) else { return };
        if header.version != 2 {
            return;
        }
        let payload = raw;
        let now = Instant::now();
        {
            let mut recv = lock(&self.shared.recv);
            recv.stats.packet(header.ssrc, header.sequence_number, header.timestamp, now);
            recv.last_in = now;
        }
        if self.learned != Some(from) && sends(params).is_some() {
            self.learned = Some(from);
            if params.remote != Some(from) {
                tracing::debug!(%from, "symmetric RTP: sending where the caller's packets come from");
                if let Some(stream) = lock(&self.shared.stream).as_ref() {
                    stream.set_remote(Some(from));
                }
            }
        }
        if Some(header.payload_type) == params.dtmf_payload_type {
            let rate = params.codec.clock_rate();
            if let Some(d) = self.events.packet(header.timestamp, header.marker, payload, rate) {
                tracing::debug!(digit = %d.digit, duration_ms = d.duration_ms, "digit (RFC 4733)");
                self.shared.digit(Digit { digit: d.digit, duration_ms: d.duration_ms });
            }
            return;
        }
        if header.payload_type != params.payload_type || (self.recording.is_none() && self.inband.is_none()) {
            return;
        }
        self.jitter.push(header.sequence_number, header.timestamp, Bytes::copy_from_slice(payload));
        while let Some(slot) = self.jitter.pop() {
            self.audio(slot);
        }
    }

    /// Decodes one slot of the reordered stream and feeds the detectors and the recording.
    fn audio(&mut self, slot: Slot<Bytes>) {
        let Some(decoder) = &mut self.decoder else { return };
        let ptime = self.params.as_ref().map_or(20, |p| p.ptime_ms);
        self.pcm.clear();
        let decoded = match &slot {
            Slot::Packet { payload, .. } => decoder.decode(payload, &mut self.pcm),
            Slot::Lost { .. } => decoder.conceal(codec::frame_samples(decoder.rate(), ptime), &mut self.pcm),
        };
        if decoded.is_err() {
            return;
        }
        if let Some(inband) = &mut self.inband {
            self.found.clear();
            inband.push(&self.pcm, &mut self.found);
            for d in self.found.drain(..) {
                tracing::debug!(digit = %d.digit, duration_ms = d.duration_ms, "digit (in-band)");
                self.shared.digit(Digit { digit: d.digit, duration_ms: d.duration_ms });
            }
        }
        if let Some((recorder, _)) = &mut self.recording
            && let Some(reason) = recorder.push(&self.pcm)
        {
            self.finish_recording(reason);
        }
    }

    fn finish_recording(&mut self, reason: StopReason) {
        if let Some((recorder, done)) = self.recording.take() {
            let _ = done.send(recorder.finish(reason));
        }
    }

    fn rtcp(&mut self, packet: &[u8], from: SocketAddr) {
        let Some(ssrc) = lock(&self.shared.stream).as_ref().map(StreamHandle::ssrc) else { return };
        match rtcp::parse_report(packet, ssrc) {
            Ok(report) => {
                // Symmetric RTCP, as for RTP: reports go back where the caller's come from.
                if self.learned_rtcp != Some(from) && self.params.as_ref().is_some_and(|p| sends(p).is_some()) {
                    self.learned_rtcp = Some(from);
                    if let Some(stream) = lock(&self.shared.stream).as_ref() {
                        stream.set_rtcp_remote(from);
                    }
                }
                let mut recv = lock(&self.shared.recv);
                if let Some(sr) = report.sender_report {
                    recv.peer_sr = Some(PeerSr { lsr: sr.lsr, received_at: rtcp::ntp_middle_now() });
                }
                if report.about_us.is_some() {
                    recv.remote_view = report.about_us;
                }
            }
            Err(e) => tracing::debug!(error = %e, "unreadable RTCP"),
        }
    }

    fn command(&mut self, command: RecvCommand) {
        match command {
            RecvCommand::Record(recorder, done) => {
                self.finish_recording(StopReason::Requested);
                self.recording = Some((recorder, done));
            }
            RecvCommand::StopRecording(reason) => self.finish_recording(reason),
        }
    }
}

/// The next datagram of `socket`; never, without one.
async fn datagram(socket: Option<&RtpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The next packet from a WebRTC peer; never, without one (or once it is gone).
async fn queued(queue: Option<&mut mpsc::Receiver<Bytes>>) -> Bytes {
    if let Some(q) = queue
        && let Some(packet) = q.recv().await
    {
        return packet;
    }
    std::future::pending().await
}

/// The receive task of one leg: runs until the leg is dropped.
pub(super) async fn receive(
    inbound: Inbound,
    shared: Arc<LegShared>,
    mut params: watch::Receiver<Option<MediaParams>>,
    mut commands: mpsc::UnboundedReceiver<RecvCommand>,
    inband_enabled: bool,
    stop: CancellationToken,
) {
    let mut state = Receive {
        shared,
        inband_enabled,
        params: None,
        learned: None,
        learned_rtcp: None,
        events: EventReceiver::new(),
        jitter: JitterBuffer::new(JITTER_DEPTH),
        decoder: None,
        inband: None,
        recording: None,
        pcm: Vec::with_capacity(960),
        found: Vec::new(),
    };
    // The call may have been answered before this task first ran: start from what is there.
    let current = params.borrow_and_update().clone();
    state.set_params(current);
    let mut buf = vec![0u8; 1500];
    let mut rtcp_buf = vec![0u8; 1500];
    let (rtp, rtcp, mut queue, tag) = match inbound {
        Inbound::Udp(rtp, rtcp) => (Some(rtp), Some(rtcp), None, None),
        Inbound::Packets(queue, tag) => (None, None, Some(queue), Some(tag)),
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            changed = params.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = params.borrow_and_update().clone();
                state.set_params(current);
            }
            Some(command) = commands.recv() => state.command(command),
            r = datagram(rtp.as_deref(), &mut buf) => match r {
                Ok((n, from)) => state.rtp(&buf[..n], from),
                Err(e) => tracing::debug!(error = %e, "RTP receive error"),
            },
            packet = queued(queue.as_mut()) => {
                if let Some(tag) = tag {
                    state.rtp(&packet, tag);
                }
            }
            r = datagram(rtcp.as_deref(), &mut rtcp_buf) => match r {
                Ok((n, from)) => state.rtcp(&rtcp_buf[..n], from),
                Err(e) => tracing::debug!(error = %e, "RTCP receive error"),
            },
        }
    }
    // The caller hung up or the call ended: what was buffered goes to the recording, which is
    // closed cleanly under its final name.
    for slot in state.jitter.flush() {
        state.audio(slot);
    }
    if let Some(d) = state.events.flush() {
        state.shared.digit(Digit { digit: d.digit, duration_ms: d.duration_ms });
    }
    state.finish_recording(StopReason::Hangup);
}
