//! The RTP echo: every audio packet the caller sends comes back, so the caller hears itself.
//!
//! The echo is a real RTP sender, not a mirror: its packets carry the hub's own SSRC, its own
//! sequence numbers (starting at random) and its own timestamps (a random base plus the
//! caller's elapsed timestamp, so pacing and gaps are kept), with the caller's payload and
//! marker bit. Packets go back to where they came from (symmetric RTP, RFC 4961), which is
//! what callers behind NAT need. RFC 4733 telephone-events are not echoed: each digit is
//! counted once (at its end packet) and shown in the call's stats. On hold nothing is sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc_rtp::header::Header;
use rtc_shared::marshal::{Marshal, MarshalSize, Unmarshal};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ports::PortRange;
use super::rtp_stats::ReceiveStats;
use crate::sip::media_port::{CallInfo, Digit, LegEvents, LegStats, MediaApp, MediaError, MediaLeg};
use crate::sip::sdp::{AudioCodec, Direction, MediaParams};

/// Digits kept per call for the stats.
const DIGITS_KEPT: usize = 32;

/// The echo app: answers every call with an echo leg.
pub struct EchoApp {
    ports: PortRange,
}

impl EchoApp {
    /// Echo legs on RTP ports from `ports`.
    pub fn new(ports: PortRange) -> Self {
        Self { ports }
    }
}

const CODECS: &[AudioCodec] = &[AudioCodec::Pcmu, AudioCodec::Pcma, AudioCodec::Opus];

impl MediaApp for EchoApp {
    fn codecs(&self) -> &[AudioCodec] {
        // The echo sends the caller's own payload back, so any of them works.
        CODECS
    }

    fn open(&self, call: &CallInfo, _events: LegEvents) -> Result<Box<dyn MediaLeg>, MediaError> {
        let socket = UdpSocket::from_std(self.ports.bind()?)?;
        let local = socket.local_addr()?;
        let shared = Arc::new(Shared {
            packets_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            last_in: Mutex::new(Instant::now()),
            digits: Mutex::new(String::new()),
            received: Mutex::new(ReceiveStats::new(8000)),
        });
        let (params, params_rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let span = tracing::debug_span!("echo", call = %call.id, %local);
        tokio::spawn(tracing::Instrument::instrument(run(socket, params_rx, shared.clone(), stop.clone()), span));
        Ok(Box::new(EchoLeg { local, shared, params, stop }))
    }
}

struct Shared {
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    last_in: Mutex<Instant>,
    digits: Mutex<String>,
    received: Mutex<ReceiveStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn digit(&self, d: char) {
        let mut digits = lock(&self.digits);
        if digits.len() >= DIGITS_KEPT {
            digits.remove(0);
        }
        digits.push(d);
    }
}

struct EchoLeg {
    local: SocketAddr,
    shared: Arc<Shared>,
    params: watch::Sender<Option<MediaParams>>,
    stop: CancellationToken,
}

impl Drop for EchoLeg {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl MediaLeg for EchoLeg {
    fn local_rtp(&self) -> SocketAddr {
        self.local
    }

    fn start(&mut self, params: &MediaParams) {
        *lock(&self.shared.last_in) = Instant::now();
        self.params.send_replace(Some(params.clone()));
    }

    fn update(&mut self, params: &MediaParams) {
        // Coming off hold restarts the inactivity clock.
        *lock(&self.shared.last_in) = Instant::now();
        self.params.send_replace(Some(params.clone()));
    }

    fn dtmf(&mut self, digit: Digit) {
        self.shared.digit(digit.digit);
    }

    fn stats(&self) -> LegStats {
        let idle = lock(&self.shared.last_in).elapsed();
        let received = lock(&self.shared.received);
        LegStats {
            packets_in: self.shared.packets_in.load(Ordering::Relaxed),
            packets_out: self.shared.packets_out.load(Ordering::Relaxed),
            idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            digits: lock(&self.shared.digits).clone(),
            lost: received.lost(),
            jitter_ms: (received.jitter_ms() * 10.0).round() / 10.0,
            ..LegStats::default()
        }
    }
}

/// The hub's side of the echoed stream.
struct Echo {
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    their_first_ts: Option<u32>,
    last_event_end: Option<u32>,
}

impl Echo {
    fn new() -> Self {
        Self {
            ssrc: rand::random(),
            seq: rand::random(),
            ts_base: rand::random(),
            their_first_ts: None,
            last_event_end: None,
        }
    }

    /// The header of the packet echoing `theirs`.
    fn header_for(&mut self, theirs: &Header) -> Header {
        let first = *self.their_first_ts.get_or_insert(theirs.timestamp);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        Header {
            version: 2,
            marker: theirs.marker,
            payload_type: theirs.payload_type,
            sequence_number: seq,
            timestamp: self.ts_base.wrapping_add(theirs.timestamp.wrapping_sub(first)),
            ssrc: self.ssrc,
            ..Header::default()
        }
    }

    /// The digit an RFC 4733 event packet ends, once per event (its end packet is sent 3 times).
    fn event_end(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let (&event, &flags) = (payload.first()?, payload.get(1)?);
        if flags & 0x80 == 0 || self.last_event_end == Some(timestamp) {
            return None;
        }
        self.last_event_end = Some(timestamp);
        crate::sip::dtmf_info::event_digit(event)
    }
}

async fn run(
    socket: UdpSocket,
    mut params: watch::Receiver<Option<MediaParams>>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut echo = Echo::new();
    let mut buf = vec![0u8; 1500];
    let mut out = vec![0u8; 1500];
    loop {
        let (n, from) = tokio::select! {
            () = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "RTP receive error");
                    continue;
                }
            },
        };
        let Some(current) = params.borrow_and_update().clone() else { continue };
        let mut packet = &buf[..n];
        let Ok(header) = Header::unmarshal(&mut packet) else { continue };
        if header.version != 2 {
            continue;
        }
        shared.packets_in.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        *lock(&shared.last_in) = now;
        {
            let mut received = lock(&shared.received);
            received.set_clock_rate(current.codec.clock_rate());
            received.packet(header.ssrc, header.sequence_number, header.timestamp, now);
        }
        let payload = packet;
        if Some(header.payload_type) == current.dtmf_payload_type {
            if let Some(d) = echo.event_end(header.timestamp, payload) {
                tracing::debug!(digit = %d, "digit (RFC 4733)");
                shared.digit(d);
            }
            continue;
        }
        if header.payload_type != current.payload_type || current.direction != Direction::SendRecv {
            continue;
        }
        let reply = echo.header_for(&header);
        let size = reply.marshal_size();
        if size + payload.len() > out.len() || reply.marshal_to(&mut out[..size]).is_err() {
            continue;
        }
        out[size..size + payload.len()].copy_from_slice(payload);
        if socket.send_to(&out[..size + payload.len()], from).await.is_ok() {
            shared.packets_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theirs(seq: u16, ts: u32, marker: bool) -> Header {
        Header {
            version: 2,
            marker,
            payload_type: 8,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0x1234,
            ..Header::default()
        }
    }

    #[test]
    fn echoed_packets_have_their_own_ssrc_sequence_and_timestamps_with_the_callers_spacing() {
        let mut echo = Echo::new();
        let a = echo.header_for(&theirs(100, 8000, true));
        let b = echo.header_for(&theirs(101, 8160, false));
        let c = echo.header_for(&theirs(103, 8480, false));
        assert_ne!(a.ssrc, 0x1234);
        assert!(a.ssrc == b.ssrc && b.ssrc == c.ssrc);
        assert_eq!(b.sequence_number, a.sequence_number.wrapping_add(1));
        assert_eq!(c.sequence_number, a.sequence_number.wrapping_add(2), "our sequence has no gaps");
        assert_eq!(b.timestamp.wrapping_sub(a.timestamp), 160);
        assert_eq!(c.timestamp.wrapping_sub(a.timestamp), 480, "the caller's gap is kept");
        assert!(a.marker && !b.marker);
    }

    #[test]
    fn a_telephone_event_counts_once_at_its_end() {
        let mut echo = Echo::new();
        assert_eq!(echo.event_end(500, &[5, 0x0a, 0, 160]), None, "not the end yet");
        assert_eq!(echo.event_end(500, &[5, 0x8a, 3, 32]), Some('5'));
        assert_eq!(echo.event_end(500, &[5, 0x8a, 3, 32]), None, "retransmitted end");
        assert_eq!(echo.event_end(900, &[11, 0x8a, 3, 32]), Some('#'));
    }
}
