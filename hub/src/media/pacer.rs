//! One scheduler for every outgoing RTP stream: the pacer.
//!
//! A phone expects a packet every packet time (20 ms), on the grid: a packet late by more than
//! a few milliseconds is audible once jitter buffers run dry. A task or timer per call makes the
//! runtime wake thousands of timers, in no particular order, and a busy moment delays all of
//! them. Here a few worker threads (one by default) each own a timing wheel of one-millisecond
//! slots: a worker wakes once per millisecond, sends the frame of every stream due in that slot,
//! and sleeps to the next slot. Calls start at random moments, so their streams spread over the
//! slots and each wake has about 1/20 of the streams to serve.
//!
//! Sends never block: the socket is non-blocking and a full send buffer (a stalled peer, or
//! the kernel's queue at its limit) drops that one frame, counted, and the worker moves on.
//! A frame sent more than [`LATE_AFTER`] past its slot is counted late, per stream and in total.
//! When a worker falls more than [`MAX_BEHIND`] behind (the machine was suspended, say), it skips
//! the missed frames instead of bursting them, keeping RTP timestamps on the wall clock.
//!
//! Each stream also sends its RTCP report every [`RTCP_INTERVAL`] or so from the same wheel.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc_rtp::header::Header;
use rtc_shared::marshal::{Marshal, MarshalSize};
use tokio::sync::oneshot;

use super::rtcp::SendCounts;
use super::socket::{RtpSink, RtpSocket};
use super::telephone_event::EventPacket;

/// A frame sent this long after its slot counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(5);
/// Behind by more than this, a worker skips frames rather than bursting them.
pub const MAX_BEHIND: Duration = Duration::from_millis(100);
/// Mean time between RTCP reports (RFC 3550's minimum of 5 s; randomised ±50 %).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Slots in the wheel: one per millisecond, above the longest packet time (60 ms).
const WHEEL: usize = 64;
/// The longest payload the pacer sends (an Opus frame is at most 1275 bytes).
const MAX_PAYLOAD: usize = 1500;
/// An RTP header without CSRCs or extensions, as the pacer sends them.
const RTP_HEADER: usize = 12;

/// Audio to send, one encoded frame per packet time (a prompt, a beep).
pub trait FrameSource: Send + Sync {
    /// The payload of frame `index`, or `None` past the end.
    fn frame(&self, index: usize) -> Option<&[u8]>;
}

/// How a playback ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayEnd {
    /// Every frame was sent.
    Completed,
    /// Stopped before its end (a digit, another playback, the call ended).
    Stopped,
}

/// Counters a stream keeps, read by the call's stats and by the RTCP sender report.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// RTP packets sent (published at the first packet, then every 25, at each RTCP report and
    /// when the stream ends).
    pub packets: AtomicU64,
    /// RTP payload octets sent (published with `packets`).
    pub octets: AtomicU64,
    /// Frames sent more than [`LATE_AFTER`] after their slot.
    pub late: AtomicU64,
    /// Frames dropped because the socket would block or refused them.
    pub dropped: AtomicU64,
}

/// Builds the stream's RTCP report from what was sent (the receive side adds its block).
pub type ReportFn = Arc<dyn Fn(u32, SendCounts) -> Option<Bytes> + Send + Sync>;

/// What the pacer needs to run a stream.
pub struct StreamSpec {
    /// The call's RTP socket, shared with its receive task: packets leave from the announced
    /// port, and a call costs one descriptor per socket. The pacer only sends, never waiting.
    pub socket: Arc<dyn RtpSink>,
    /// Where to send; `None` while the call is on hold or the peer gave no address.
    pub remote: Option<SocketAddr>,
    /// The RTP payload type of the audio.
    pub payload_type: u8,
    /// The RTP clock rate of the audio.
    pub clock_rate: u32,
    /// Packet time in milliseconds (10–60).
    pub ptime_ms: u32,
    /// Sent when nothing plays, so the caller's jitter buffer and NAT bindings stay alive;
    /// `None` sends nothing between playbacks.
    pub silence: Option<Arc<[u8]>>,
    /// The RTCP socket and the peer's RTCP address, with the report builder.
    pub rtcp: Option<RtcpOut>,
    /// Counters shared with the call.
    pub counters: Arc<StreamCounters>,
}

/// Where and how a stream sends its RTCP reports.
pub struct RtcpOut {
    /// The call's RTCP socket, shared with its receive task.
    pub socket: Arc<RtpSocket>,
    /// The peer's RTCP address.
    pub remote: SocketAddr,
    /// Builds the compound report for the stream's SSRC.
    pub report: ReportFn,
}

enum Command {
    Add(u64, u32, Box<StreamSpec>),
    Remove(u64),
    Play(u64, Arc<dyn FrameSource>, oneshot::Sender<PlayEnd>),
    Stop(u64),
    Events(u64, u8, Vec<EventPacket>),
    Remote(u64, Option<SocketAddr>),
    RtcpRemote(u64, SocketAddr),
    Format { id: u64, payload_type: u8, clock_rate: u32, silence: Option<Arc<[u8]>> },
}

/// Counters over all streams of the pacer.
#[derive(Debug, Default)]
pub struct PacerCounters {
    /// Streams now running.
    pub streams: AtomicU64,
    /// Frames sent.
    pub frames: AtomicU64,
    /// Frames sent late (more than [`LATE_AFTER`] after their slot).
    pub late: AtomicU64,
    /// Frames dropped (the socket would block).
    pub dropped: AtomicU64,
    /// Frames skipped because a worker fell more than [`MAX_BEHIND`] behind.
    pub skipped: AtomicU64,
}

/// The pacer: a handle to its worker threads. Cloning shares them; they stop when the last
/// handle and the last stream are gone.
#[derive(Clone)]
pub struct Pacer {
    workers: Arc<Vec<Sender<Command>>>,
    next_id: Arc<AtomicU64>,
    counters: Arc<PacerCounters>,
}

impl Pacer {
    /// Starts `threads` worker threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let counters = Arc::new(PacerCounters::default());
        let mut workers = Vec::new();
        for n in 0..threads.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("media-pacer-{n}"))
                .spawn(move || Worker::new(rx, counters).run())?;
            workers.push(tx);
        }
        Ok(Self { workers: Arc::new(workers), next_id: Arc::new(AtomicU64::new(0)), counters })
    }

    /// Totals over all streams.
    pub fn counters(&self) -> &PacerCounters {
        &self.counters
    }

    /// Starts sending a stream; it runs until the handle is dropped.
    pub fn add(&self, spec: StreamSpec) -> StreamHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ssrc = rand::random();
        let worker = self.workers[(id as usize) % self.workers.len()].clone();
        let _ = worker.send(Command::Add(id, ssrc, Box::new(spec)));
        StreamHandle { id, ssrc, worker }
    }
}

/// Controls one stream. Dropping it removes the stream (a playing prompt ends as `Stopped`).
pub struct StreamHandle {
    id: u64,
    ssrc: u32,
    worker: Sender<Command>,
}

impl StreamHandle {
    /// The stream's SSRC: how the caller's RTCP reports name it.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Plays `source` from its first frame, replacing what played (which ends `Stopped`).
    /// The receiver learns how it ended.
    pub fn play(&self, source: Arc<dyn FrameSource>) -> oneshot::Receiver<PlayEnd> {
        let (tx, rx) = oneshot::channel();
        let _ = self.worker.send(Command::Play(self.id, source, tx));
        rx
    }

    /// Stops the playback, if any (silence follows).
    pub fn stop(&self) {
        let _ = self.worker.send(Command::Stop(self.id));
    }

    /// Sends RFC 4733 event packets with `payload_type`, one per packet time, in place of audio.
    pub fn events(&self, payload_type: u8, packets: Vec<EventPacket>) {
        let _ = self.worker.send(Command::Events(self.id, payload_type, packets));
    }

    /// Sends to `remote` from now on (symmetric RTP, a re-INVITE, hold).
    pub fn set_remote(&self, remote: Option<SocketAddr>) {
        let _ = self.worker.send(Command::Remote(self.id, remote));
    }

    /// Sends RTCP reports to `remote` from now on: where the caller's own reports come from,
    /// which behind NAT is not the SDP's port + 1.
    pub fn set_rtcp_remote(&self, remote: SocketAddr) {
        let _ = self.worker.send(Command::RtcpRemote(self.id, remote));
    }

    /// A re-INVITE changed the codec: new payload type, clock and silence frame.
    pub fn set_format(&self, payload_type: u8, clock_rate: u32, silence: Option<Arc<[u8]>>) {
        let _ = self.worker.send(Command::Format { id: self.id, payload_type, clock_rate, silence });
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        let _ = self.worker.send(Command::Remove(self.id));
    }
}

/// A stream inside a worker.
struct Stream {
    spec: StreamSpec,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    first: bool,
    playing: Option<(Arc<dyn FrameSource>, usize, oneshot::Sender<PlayEnd>)>,
    events: VecDeque<EventPacket>,
    event_pt: u8,
    event_ts: Option<u32>,
    next_rtcp: u64,
    /// Packets and octets sent, kept here and published to the shared counters now and then:
    /// an atomic add per packet on a line the stats reader shares was a cache miss per packet.
    packets: u64,
    octets: u64,
    /// Which occupant of its slab slot this is (a removed stream's wheel entries go stale).
    generation: u32,
}

impl Stream {
    fn samples_per_frame(&self) -> u32 {
        self.spec.clock_rate * self.spec.ptime_ms / 1000
    }

    /// Makes the packet and octet counts visible to the call's stats.
    fn publish(&self) {
        self.spec.counters.packets.store(self.packets, Ordering::Relaxed);
        self.spec.counters.octets.store(self.octets, Ordering::Relaxed);
    }

    fn end_playback(&mut self, how: PlayEnd) {
        if let Some((_, _, done)) = self.playing.take() {
            let _ = done.send(how);
        }
    }

    /// Copies this slot's payload into `out`, advancing playback; gives its length, payload
    /// type, marker and RTP timestamp, or `None` when there is nothing to send.
    fn next_frame(&mut self, out: &mut [u8]) -> Option<(usize, u8, bool, u32)> {
        fn copy(out: &mut [u8], payload: &[u8]) -> Option<usize> {
            out.get_mut(..payload.len())?.copy_from_slice(payload);
            Some(payload.len())
        }
        if let Some(event) = self.events.pop_front() {
            let ts = *self.event_ts.get_or_insert(self.timestamp);
            if event.end && self.events.front().is_none_or(|e| e.marker) {
                self.event_ts = None;
            }
            return Some((copy(out, &event.payload)?, self.event_pt, event.marker, ts));
        }
        let ts = self.timestamp;
        if let Some((source, index, _)) = &mut self.playing {
            if let Some(frame) = source.frame(*index) {
                *index += 1;
                return Some((copy(out, frame)?, self.spec.payload_type, false, ts));
            }
            self.end_playback(PlayEnd::Completed);
        }
        let silence = self.spec.silence.as_ref()?;
        Some((copy(out, silence)?, self.spec.payload_type, false, ts))
    }

    /// Advances without sending (a skipped slot): playback moves on with the clock.
    fn skip(&mut self) {
        self.events.pop_front();
        if let Some((source, index, _)) = &mut self.playing {
            if source.frame(*index).is_some() {
                *index += 1;
            } else {
                self.end_playback(PlayEnd::Completed);
            }
        }
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_frame());
    }
}

/// Packets between publications of a stream's counters (half a second at 20 ms).
const PUBLISH_EVERY: u64 = 25;

/// A wheel entry: a slab index and the generation of the stream it was made for.
type Due = (u32, u32);

struct Worker {
    rx: Receiver<Command>,
    counters: Arc<PacerCounters>,
    /// Streams in a slab: the wheel names them by index, so serving a slot walks memory
    /// without hashing.
    slab: Vec<Option<Stream>>,
    free: Vec<u32>,
    generation: u32,
    /// Handle id → slab index, for commands.
    index: std::collections::HashMap<u64, u32>,
    wheel: Vec<Vec<Due>>,
    origin: Instant,
    /// The next slot (milliseconds since `origin`) to serve.
    cursor: u64,
    buf: Vec<u8>,
}

impl Worker {
    fn new(rx: Receiver<Command>, counters: Arc<PacerCounters>) -> Self {
        Self {
            rx,
            counters,
            slab: Vec::new(),
            free: Vec::new(),
            generation: 0,
            index: std::collections::HashMap::new(),
            wheel: vec![Vec::new(); WHEEL],
            origin: Instant::now(),
            cursor: 0,
            buf: vec![0; RTP_HEADER + MAX_PAYLOAD],
        }
    }

    fn run(mut self) {
        loop {
            // No stream: sleep until one comes instead of waking every millisecond.
            if self.index.is_empty() {
                match self.rx.recv() {
                    Ok(c) => self.command(c),
                    Err(_) => return,
                }
                self.cursor = Instant::now().saturating_duration_since(self.origin).as_millis() as u64;
            }
            if !self.commands() {
                return;
            }
            let now = Instant::now();
            let now_slot = now.saturating_duration_since(self.origin).as_millis() as u64;
            if now_slot.saturating_sub(self.cursor) > MAX_BEHIND.as_millis() as u64 {
                while self.cursor + 1 < now_slot {
                    self.serve(self.cursor, None);
                    self.cursor += 1;
                }
            }
            while self.cursor <= now_slot {
                self.serve(self.cursor, Some(now));
                self.cursor += 1;
            }
            let next = self.origin + Duration::from_millis(self.cursor);
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    }

    /// Applies queued commands; false when every handle is gone and no stream is left.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(c) => self.command(c),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return !self.index.is_empty(),
            }
        }
    }

    fn stream(&mut self, id: u64) -> Option<&mut Stream> {
        let i = *self.index.get(&id)?;
        self.slab.get_mut(i as usize)?.as_mut()
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Add(id, ssrc, spec) => {
                // First packet at the next slot; the stream's phase is its start time.
                let slot = self.origin.elapsed().as_millis() as u64 + 1;
                let jitter = u64::from(rand::random::<u32>()) % (RTCP_INTERVAL.as_millis() as u64);
                let stream = Stream {
                    ssrc,
                    seq: rand::random(),
                    timestamp: rand::random(),
                    first: true,
                    playing: None,
                    events: VecDeque::new(),
                    event_pt: 101,
                    event_ts: None,
                    next_rtcp: slot + RTCP_INTERVAL.as_millis() as u64 / 2 + jitter,
                    packets: 0,
                    octets: 0,
                    generation: self.generation,
                    spec: *spec,
                };
                self.generation = self.generation.wrapping_add(1);
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slab[i as usize] = Some(stream);
                        i
                    }
                    None => {
                        self.slab.push(Some(stream));
                        u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                let generation = self.slab[i as usize].as_ref().map_or(0, |s| s.generation);
                self.wheel[(slot as usize) % WHEEL].push((i, generation));
                self.index.insert(id, i);
                self.counters.streams.fetch_add(1, Ordering::Relaxed);
            }
            Command::Remove(id) => {
                if let Some(i) = self.index.remove(&id)
                    && let Some(mut s) = self.slab.get_mut(i as usize).and_then(Option::take)
                {
                    s.publish();
                    s.end_playback(PlayEnd::Stopped);
                    self.free.push(i);
                    self.counters.streams.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Command::Play(id, source, done) => {
                if let Some(s) = self.stream(id) {
                    s.end_playback(PlayEnd::Stopped);
                    s.playing = Some((source, 0, done));
                } else {
                    let _ = done.send(PlayEnd::Stopped);
                }
            }
            Command::Stop(id) => {
                if let Some(s) = self.stream(id) {
                    s.end_playback(PlayEnd::Stopped);
                }
            }
            Command::Events(id, pt, packets) => {
                if let Some(s) = self.stream(id) {
                    s.event_pt = pt;
                    s.events.extend(packets);
                }
            }
            Command::Remote(id, remote) => {
                if let Some(s) = self.stream(id) {
                    s.spec.remote = remote;
                }
            }
            Command::RtcpRemote(id, remote) => {
                if let Some(rtcp) = self.stream(id).and_then(|s| s.spec.rtcp.as_mut()) {
                    rtcp.remote = remote;
                }
            }
            Command::Format { id, payload_type, clock_rate, silence } => {
                if let Some(s) = self.stream(id) {
                    s.spec.payload_type = payload_type;
                    s.spec.clock_rate = clock_rate;
                    s.spec.silence = silence;
                }
            }
        }
    }

    /// Serves every stream due in `slot`; `now` is `None` when the slot is skipped.
    fn serve(&mut self, slot: u64, now: Option<Instant>) {
        let due = std::mem::take(&mut self.wheel[(slot as usize) % WHEEL]);
        let due_at = self.origin + Duration::from_millis(slot);
        let mut sent = 0;
        for &(i, generation) in &due {
            let Some(stream) = self.slab.get_mut(i as usize).and_then(Option::as_mut) else { continue };
            if stream.generation != generation {
                continue;
            }
            match now {
                Some(_) => sent += u64::from(Self::send(stream, &mut self.buf, due_at, &self.counters)),
                None => {
                    stream.skip();
                    self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
            if slot >= stream.next_rtcp {
                Self::rtcp(stream);
                let jitter = u64::from(rand::random::<u32>()) % (RTCP_INTERVAL.as_millis() as u64);
                stream.next_rtcp = slot + RTCP_INTERVAL.as_millis() as u64 / 2 + jitter;
            }
            let next = slot + u64::from(stream.spec.ptime_ms.clamp(1, WHEEL as u32 - 1));
            self.wheel[(next as usize) % WHEEL].push((i, generation));
        }
        self.counters.frames.fetch_add(sent, Ordering::Relaxed);
        // Keep the slot's allocation for its next round.
        let mut due = due;
        due.clear();
        let slot_vec = &mut self.wheel[(slot as usize) % WHEEL];
        if slot_vec.is_empty() {
            *slot_vec = due;
        }
    }

    /// Sends the stream's frame for this slot; true when a packet left.
    fn send(stream: &mut Stream, buf: &mut [u8], due_at: Instant, counters: &PacerCounters) -> bool {
        let step = stream.samples_per_frame();
        let frame = stream.next_frame(&mut buf[RTP_HEADER..]);
        stream.timestamp = stream.timestamp.wrapping_add(step);
        let (Some((len, payload_type, event_marker, timestamp)), Some(remote)) = (frame, stream.spec.remote) else {
            return false;
        };
        let header = Header {
            version: 2,
            marker: stream.first || event_marker,
            payload_type,
            sequence_number: stream.seq,
            timestamp,
            ssrc: stream.ssrc,
            ..Header::default()
        };
        if header.marshal_size() != RTP_HEADER || header.marshal_to(&mut buf[..RTP_HEADER]).is_err() {
            return false;
        }
        stream.first = false;
        stream.seq = stream.seq.wrapping_add(1);
        let c = &stream.spec.counters;
        match stream.spec.socket.try_send_to(&buf[..RTP_HEADER + len], remote) {
            Ok(_) => {
                stream.packets += 1;
                stream.octets += len as u64;
                if stream.packets % PUBLISH_EVERY == 1 {
                    stream.publish();
                }
                if due_at.elapsed() > LATE_AFTER {
                    c.late.fetch_add(1, Ordering::Relaxed);
                    counters.late.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(_) => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn rtcp(stream: &mut Stream) {
        stream.publish();
        let Some(rtcp) = &stream.spec.rtcp else { return };
        let counts =
            SendCounts { packets: stream.packets as u32, octets: stream.octets as u32, rtp_now: stream.timestamp };
        if let Some(report) = (rtcp.report)(stream.ssrc, counts) {
            let _ = rtcp.socket.try_send_to(&report, rtcp.remote);
        }
    }
}

#[cfg(test)]
mod tests {
    use rtc_shared::marshal::Unmarshal;

    use super::*;

    struct Frames(Vec<Vec<u8>>);

    impl FrameSource for Frames {
        fn frame(&self, index: usize) -> Option<&[u8]> {
            self.0.get(index).map(Vec::as_slice)
        }
    }

    fn peer() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// A runtime whose reactor tells the streams' sockets they are writable.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_io().build().unwrap()
    }

    fn spec(rt: &tokio::runtime::Runtime, to: &std::net::UdpSocket, silence: Option<Arc<[u8]>>) -> StreamSpec {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _guard = rt.enter();
        StreamSpec {
            socket: Arc::new(RtpSocket::new(socket).unwrap()),
            remote: Some(to.local_addr().unwrap()),
            payload_type: 0,
            clock_rate: 8000,
            ptime_ms: 20,
            silence,
            rtcp: None,
            counters: Arc::default(),
        }
    }

    fn recv(peer: &std::net::UdpSocket) -> (Header, Vec<u8>) {
        let mut buf = [0u8; 1500];
        let n = peer.recv(&mut buf).expect("a packet within 5 s");
        let mut raw = &buf[..n];
        let header = Header::unmarshal(&mut raw).unwrap();
        (header, raw.to_vec())
    }

    #[test]
    fn a_prompt_is_sent_frame_by_frame_then_silence_with_rtp_numbering() {
        let pacer = Pacer::start(1).unwrap();
        let rt = runtime();
        let to = peer();
        let silence: Arc<[u8]> = Arc::from(vec![0xffu8; 160]);
        let stream = pacer.add(spec(&rt, &to, Some(silence)));
        let frames = Frames((1..=5u8).map(|i| vec![i; 160]).collect());
        let mut done = stream.play(Arc::new(frames));
        let mut got = Vec::new();
        while got.len() < 12 {
            got.push(recv(&to));
        }
        let start = got.iter().position(|(_, p)| p[0] == 1).expect("the prompt started");
        for (k, (_, p)) in got[start..start + 5].iter().enumerate() {
            assert_eq!(p[0], k as u8 + 1, "frames in order");
        }
        assert_eq!(got[start + 5].1[0], 0xff, "silence after the prompt");
        assert!(got[0].0.marker && !got[1].0.marker, "marker on the first packet only");
        for w in got.windows(2) {
            assert_eq!(w[1].0.sequence_number, w[0].0.sequence_number.wrapping_add(1));
            assert_eq!(w[1].0.timestamp.wrapping_sub(w[0].0.timestamp), 160);
            assert_eq!(w[1].0.ssrc, w[0].0.ssrc);
        }
        assert_eq!(done.try_recv(), Ok(PlayEnd::Completed));
    }

    #[test]
    fn events_replace_audio_and_share_one_timestamp() {
        let pacer = Pacer::start(1).unwrap();
        let rt = runtime();
        let to = peer();
        let stream = pacer.add(spec(&rt, &to, Some(Arc::from(vec![0xffu8; 160]))));
        let ev = |marker, end, dur: u16| EventPacket {
            marker,
            payload: [5, if end { 0x8a } else { 0x0a }, (dur >> 8) as u8, dur as u8],
            end,
        };
        stream.events(
            101,
            vec![
                ev(true, false, 160),
                ev(false, false, 320),
                ev(false, true, 480),
                ev(false, true, 480),
                ev(false, true, 480),
            ],
        );
        let mut events = Vec::new();
        let mut after = None;
        for _ in 0..50 {
            let (h, p) = recv(&to);
            if h.payload_type == 101 {
                events.push((h, p));
            } else if !events.is_empty() {
                after = Some(h);
                break;
            }
        }
        assert_eq!(events.len(), 5);
        assert!(events[0].0.marker && events[1..].iter().all(|(h, _)| !h.marker));
        assert!(events.iter().all(|(h, _)| h.timestamp == events[0].0.timestamp));
        let after = after.expect("audio resumes");
        assert_eq!(after.timestamp.wrapping_sub(events[0].0.timestamp), 5 * 160, "the clock ran on");
    }

    #[test]
    fn a_peer_that_never_reads_does_not_hold_up_another() {
        let pacer = Pacer::start(1).unwrap();
        let rt = runtime();
        let stalled = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let big: Arc<[u8]> = Arc::from(vec![0u8; 1400]);
        let mut streams: Vec<_> = (0..50).map(|_| pacer.add(spec(&rt, &stalled, Some(big.clone())))).collect();
        let to = peer();
        streams.push(pacer.add(spec(&rt, &to, Some(Arc::from(vec![0xffu8; 160])))));
        // 60 packets in a row reach the reading peer while 50 streams flood one that never reads.
        let mut last = None;
        for _ in 0..60 {
            let (h, _) = recv(&to);
            if let Some(prev) = last {
                assert_eq!(h.sequence_number, u16::wrapping_add(prev, 1));
            }
            last = Some(h.sequence_number);
        }
    }

    #[test]
    fn a_stream_in_a_reused_slot_is_sent_once_per_packet_time() {
        let pacer = Pacer::start(1).unwrap();
        let rt = runtime();
        let to = peer();
        let silence: Arc<[u8]> = Arc::from(vec![0xffu8; 160]);
        let first = pacer.add(spec(&rt, &to, Some(silence.clone())));
        recv(&to);
        drop(first);
        // The new stream takes the freed slab slot; the old one's wheel entry must not serve it.
        let other = peer();
        let _second = pacer.add(spec(&rt, &other, Some(silence)));
        let start = Instant::now();
        for _ in 0..25 {
            recv(&other);
        }
        // 25 packets at 20 ms take at least 480 ms; served twice per slot they would take 240.
        assert!(start.elapsed() >= Duration::from_millis(440), "{:?}", start.elapsed());
    }

    #[test]
    fn dropping_the_handle_stops_the_stream_and_its_playback() {
        let pacer = Pacer::start(1).unwrap();
        let rt = runtime();
        let to = peer();
        let stream = pacer.add(spec(&rt, &to, None));
        let done = stream.play(Arc::new(Frames(vec![vec![1; 160]; 10_000])));
        recv(&to);
        drop(stream);
        assert_eq!(done.blocking_recv(), Ok(PlayEnd::Stopped));
    }
}
