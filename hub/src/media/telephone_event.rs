//! RFC 4733 telephone-events: DTMF digits sent as RTP packets beside the audio.
//!
//! Sans-IO: this module owns neither a socket nor a clock. The RTP task hands every packet whose
//! payload type is `telephone-event` to an [`EventReceiver`], and paces the packets an
//! [`EventSender`] produces. That keeps the rules (one report per digit, long events, lost end
//! packets, timestamp wraparound) testable on plain values.
//!
//! The payload (RFC 4733 §2.3):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! One event is a series of packets sharing one RTP timestamp (the event's start): the first
//! has the marker bit, each reports the duration so far, and the last (`E` set) is usually sent
//! three times.

use crate::sip::dtmf_info::event_digit;

/// The `E` (end) bit in the second payload byte.
const END_BIT: u8 = 0x80;
/// The volume field of the second payload byte (the `R` bit is reserved and ignored).
const VOLUME_MASK: u8 = 0x3F;
/// The volume the sender announces: -10 dBm0, what common phones send.
const SEND_VOLUME: u8 = 10;
/// How many times the sender sends the end packet (RFC 4733 §2.5.1.4 recommends three).
const END_REPEATS: u8 = 3;
/// The largest duration one segment can carry; longer events continue in a new segment
/// (RFC 4733 §2.5.1.3) whose timestamp is the old one plus this.
const SEGMENT_UNITS: u32 = 0xFFFF;
/// How far behind the current event a packet's timestamp may be and still count as a late
/// (reordered) packet of an earlier event: a few segments. Further back, the sender's timestamps
/// jumped (a new SSRC after a re-INVITE, or half the 32-bit range elapsed in a very long call)
/// and the packet starts a new event, so the receiver is never deaf.
const LATE_UNITS: u32 = 4 * SEGMENT_UNITS;

/// Why an [`EventSender`] cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TelephoneEventError {
    /// The character has no RFC 4733 event number.
    #[error("{0:?} is not a DTMF digit")]
    NotADigit(char),
    /// A zero packet time or clock rate would never advance the duration.
    #[error("packet time ({ptime_ms} ms) and clock rate ({clock_rate} Hz) must be non-zero")]
    ZeroTiming {
        /// The packet time asked for.
        ptime_ms: u32,
        /// The clock rate asked for.
        clock_rate: u32,
    },
}

/// A digit the far end finished sending, reported once per key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedDigit {
    /// `0`–`9`, `*`, `#`, `A`–`D`, or `!` for flash.
    pub digit: char,
    /// How long the key was held, from the event's duration field (summed over segments).
    pub duration_ms: u32,
}

/// The RFC 4733 event number of a digit, for sending it (`a`–`d` are taken as `A`–`D`).
///
/// The inverse of [`event_digit`]; `!` is flash (event 16), which the hub receives too.
pub fn digit_event(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        '!' => Some(16),
        _ => None,
    }
}

/// The fields of one event payload this module uses.
#[derive(Debug, Clone, Copy)]
struct Payload {
    event: u8,
    end: bool,
    duration: u16,
}

impl Payload {
    /// The payload's fields, or `None` when it is too short or not a DTMF event.
    fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, hi, lo, ..] = *payload else { return None };
        event_digit(event)?;
        Some(Self { event, end: flags & END_BIT != 0, duration: u16::from_be_bytes([hi, lo]) })
    }
}

/// The event being received, kept after its report so retransmissions are recognised.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    event: u8,
    /// The RTP timestamp of the current segment (the event's start unless it is long).
    segment_ts: u32,
    /// Timestamp units of the segments before the current one (long events only).
    earlier_units: u64,
    /// The largest duration the current segment has reported.
    segment_units: u16,
    /// The clock rate of the latest packet, to turn units into milliseconds.
    clock_rate: u32,
    /// An end packet was seen: later packets of this segment are retransmissions.
    ended: bool,
    /// The digit was handed to the caller: never report it again.
    reported: bool,
}

impl Tracked {
    fn new(ts: u32, p: Payload, clock_rate: u32) -> Self {
        Self {
            event: p.event,
            segment_ts: ts,
            earlier_units: 0,
            segment_units: p.duration,
            clock_rate,
            ended: p.end,
            reported: false,
        }
    }

    /// Marks the digit reported and returns it, unless it already was.
    fn report(&mut self) -> Option<ReceivedDigit> {
        if self.reported {
            return None;
        }
        self.reported = true;
        let units = self.earlier_units + u64::from(self.segment_units);
        let ms = (units * 1000).checked_div(u64::from(self.clock_rate)).unwrap_or(0);
        Some(ReceivedDigit { digit: event_digit(self.event)?, duration_ms: u32::try_from(ms).unwrap_or(u32::MAX) })
    }

    /// Whether a packet `diff` units after this segment, for the same event and without the
    /// marker bit, continues a long event (RFC 4733 §2.5.1.3) rather than starting a new one.
    fn continued_by(&self, diff: u32, p: Payload, marker: bool) -> bool {
        let saturated = u32::from(self.segment_units) == SEGMENT_UNITS;
        !self.ended
            && !marker
            && p.event == self.event
            && (diff == SEGMENT_UNITS || (saturated && diff <= SEGMENT_UNITS + 1))
    }
}

/// Turns the telephone-event packets of one RTP stream into digits, each reported once.
///
/// A digit is reported at its end packet; retransmitted end packets (same timestamp) are
/// ignored. When all end packets are lost, the digit is reported when the next event starts
/// (with its last known duration), or by [`EventReceiver::flush`] when the caller decides the
/// stream has stopped. Packets from shortly before the current event (reordered) are ignored;
/// timestamps are compared modulo 2³², so wraparound is harmless.
#[derive(Debug, Default)]
pub struct EventReceiver {
    current: Option<Tracked>,
}

impl EventReceiver {
    /// A receiver for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet: its RTP `timestamp`, `marker` bit, `payload`, and the
    /// payload type's `clock_rate` (8000 for G.711 calls, 48000 for Opus calls).
    ///
    /// Returns the digit this packet completes, if any. Short payloads and events that are not
    /// DTMF (numbers above 16) are ignored.
    ///
    /// At most one digit comes back per call. In the rare case where one packet both ends an
    /// unfinished event and is itself a complete event, the older digit comes back now and the
    /// newer one at the next call (its retransmission, usually) or at [`EventReceiver::flush`].
    pub fn packet(&mut self, timestamp: u32, marker: bool, payload: &[u8], clock_rate: u32) -> Option<ReceivedDigit> {
        let p = Payload::parse(payload)?;
        let Some(cur) = &mut self.current else {
            let mut new = Tracked::new(timestamp, p, clock_rate);
            let digit = if new.ended { new.report() } else { None };
            self.current = Some(new);
            return digit;
        };
        let diff = timestamp.wrapping_sub(cur.segment_ts);
        if diff == 0 {
            // More of the current segment: an update, the end, or a retransmission.
            if p.event != cur.event {
                return None;
            }
            if !cur.ended {
                cur.segment_units = cur.segment_units.max(p.duration);
                cur.clock_rate = clock_rate;
                cur.ended = p.end;
            }
            return if cur.ended { cur.report() } else { None };
        }
        if timestamp.wrapping_sub(cur.segment_ts.wrapping_sub(LATE_UNITS)) < LATE_UNITS {
            // Shortly before the current segment: a late packet of an event already handled.
            return None;
        }
        if cur.continued_by(diff, p, marker) {
            cur.earlier_units += u64::from(diff);
            cur.segment_ts = timestamp;
            cur.segment_units = p.duration;
            cur.clock_rate = clock_rate;
            cur.ended = p.end;
            return if cur.ended { cur.report() } else { None };
        }
        // A new event: whatever was unreported about the old one is reported now.
        let previous = cur.report();
        let mut new = Tracked::new(timestamp, p, clock_rate);
        let digit = match previous {
            Some(d) => Some(d),
            None if new.ended => new.report(),
            None => None,
        };
        self.current = Some(new);
        digit
    }

    /// Reports the current event if it was never reported, for when the caller decides the
    /// stream stopped (timeout, hangup) before its end packet arrived.
    ///
    /// Later packets of the same event are then ignored, so a flush never causes a double report.
    pub fn flush(&mut self) -> Option<ReceivedDigit> {
        self.current.as_mut()?.report()
    }
}

/// One packet of an event to send, in order; the caller adds the RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The RTP marker bit: set on the first packet of the event only.
    pub marker: bool,
    /// The 4-byte RFC 4733 payload.
    pub payload: [u8; 4],
    /// Whether this is one of the (identical) end packets, for logs and tests.
    pub end: bool,
}

/// The packets that send one digit as an RFC 4733 event.
///
/// The caller sends one packet per `ptime`, all with the same RTP timestamp (the event's
/// start) and consecutive sequence numbers, until [`EventSender::next_packet`] returns `None`.
/// The durations grow by one packet time each; the last packet (with the full duration and the
/// `E` bit) comes three times, so one lost end packet does not lose the digit's end. Audio
/// resumes with timestamps at least [`EventSender::duration_units`] after the event's.
///
/// A duration longer than one segment (0xFFFF units: 8.19 s at 8 kHz, 1.36 s at 48 kHz) is cut
/// to that: the hub's digits are short, and long events would need a second timestamp.
#[derive(Debug, Clone)]
pub struct EventSender {
    event: u8,
    /// The event's total duration in timestamp units.
    total_units: u16,
    /// Timestamp units per packet time.
    step_units: u32,
    /// Update (non-end) packets sent so far.
    updates_sent: u32,
    /// Whether the last update was sent (its duration reached the total).
    updates_done: bool,
    /// End packets sent so far.
    ends_sent: u8,
}

impl EventSender {
    /// The packets for `digit` held `duration_ms`, sent every `ptime_ms` on a payload type with
    /// `clock_rate` (8000 for G.711 calls, 48000 for Opus calls).
    pub fn new(digit: char, duration_ms: u32, ptime_ms: u32, clock_rate: u32) -> Result<Self, TelephoneEventError> {
        let event = digit_event(digit).ok_or(TelephoneEventError::NotADigit(digit))?;
        let units = |ms: u32| u64::from(ms) * u64::from(clock_rate) / 1000;
        let step_units = u32::try_from(units(ptime_ms)).unwrap_or(u32::MAX);
        if step_units == 0 {
            return Err(TelephoneEventError::ZeroTiming { ptime_ms, clock_rate });
        }
        let total_units = u16::try_from(units(duration_ms)).unwrap_or(u16::MAX);
        Ok(Self { event, total_units, step_units, updates_sent: 0, updates_done: false, ends_sent: 0 })
    }

    /// How many timestamp units the event covers, so the caller knows where audio resumes.
    pub fn duration_units(&self) -> u32 {
        u32::from(self.total_units)
    }

    /// The next packet to send, or `None` once the last end packet was sent.
    pub fn next_packet(&mut self) -> Option<EventPacket> {
        if !self.updates_done {
            let marker = self.updates_sent == 0;
            self.updates_sent += 1;
            let so_far = u64::from(self.updates_sent) * u64::from(self.step_units);
            let duration = u16::try_from(so_far).unwrap_or(u16::MAX).min(self.total_units);
            // The packet reaching the full duration is the first end packet, except when it is
            // also the first packet: the marker packet is always an update.
            if duration < self.total_units || marker {
                self.updates_done = duration == self.total_units;
                return Some(self.packet(marker, false, duration));
            }
            self.updates_done = true;
        }
        if self.ends_sent < END_REPEATS {
            self.ends_sent += 1;
            return Some(self.packet(false, true, self.total_units));
        }
        None
    }

    fn packet(&self, marker: bool, end: bool, duration: u16) -> EventPacket {
        let [hi, lo] = duration.to_be_bytes();
        let flags = if end { END_BIT } else { 0 } | (SEND_VOLUME & VOLUME_MASK);
        EventPacket { marker, payload: [self.event, flags, hi, lo], end }
    }
}

impl Iterator for EventSender {
    type Item = EventPacket;

    fn next(&mut self) -> Option<EventPacket> {
        self.next_packet()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: &str = "0123456789*#ABCD";

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let [hi, lo] = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, hi, lo]
    }

    /// Feeds every packet of `sender` at `ts`, collecting the reports.
    fn feed(rx: &mut EventReceiver, sender: EventSender, ts: u32, rate: u32) -> Vec<ReceivedDigit> {
        sender.filter_map(|p| rx.packet(ts, p.marker, &p.payload, rate)).collect()
    }

    #[test]
    fn digit_event_inverts_event_digit() {
        for n in 0..=16 {
            let c = event_digit(n).unwrap();
            assert_eq!(digit_event(c), Some(n));
        }
        assert_eq!(digit_event('a'), Some(12));
        assert_eq!(digit_event('x'), None);
        assert_eq!(digit_event('E'), None);
    }

    #[test]
    fn round_trip_all_digits() {
        for (rate, ptime) in [(8000, 20), (48000, 20), (8000, 50)] {
            let mut rx = EventReceiver::new();
            let mut ts = 1000u32;
            for (i, c) in DIGITS.chars().enumerate() {
                let ms = 80 + 10 * u32::try_from(i).unwrap();
                let tx = EventSender::new(c, ms, ptime, rate).unwrap();
                let units = tx.duration_units();
                assert_eq!(feed(&mut rx, tx, ts, rate), vec![ReceivedDigit { digit: c, duration_ms: ms }]);
                ts = ts.wrapping_add(units + 800);
            }
            assert_eq!(rx.flush(), None);
        }
    }

    #[test]
    fn sender_packet_sequence() {
        let packets: Vec<_> = EventSender::new('5', 80, 20, 8000).unwrap().collect();
        let expected = [
            EventPacket { marker: true, payload: payload(5, false, 160), end: false },
            EventPacket { marker: false, payload: payload(5, false, 320), end: false },
            EventPacket { marker: false, payload: payload(5, false, 480), end: false },
            EventPacket { marker: false, payload: payload(5, true, 640), end: true },
            EventPacket { marker: false, payload: payload(5, true, 640), end: true },
            EventPacket { marker: false, payload: payload(5, true, 640), end: true },
        ];
        assert_eq!(packets, expected);
        // Shorter than one packet time: still one marker update before the ends.
        let short: Vec<_> = EventSender::new('#', 10, 20, 8000).unwrap().collect();
        assert_eq!(short.len(), 4);
        assert!(short[0].marker && !short[0].end);
        assert!(short[1..].iter().all(|p| p.end && !p.marker && p.payload == payload(11, true, 80)));
    }

    #[test]
    fn sender_rejects_bad_input() {
        assert_eq!(EventSender::new('x', 100, 20, 8000).unwrap_err(), TelephoneEventError::NotADigit('x'));
        assert!(matches!(EventSender::new('1', 100, 0, 8000), Err(TelephoneEventError::ZeroTiming { .. })));
        assert!(matches!(EventSender::new('1', 100, 20, 0), Err(TelephoneEventError::ZeroTiming { .. })));
        // Longer than a segment: cut to 0xFFFF units.
        let tx = EventSender::new('1', 10_000, 20, 8000).unwrap();
        assert_eq!(tx.duration_units(), 0xFFFF);
        assert_eq!(tx.last().unwrap().payload, payload(1, true, 0xFFFF));
    }

    #[test]
    fn triple_end_reported_once() {
        let mut rx = EventReceiver::new();
        assert_eq!(rx.packet(500, true, &payload(1, false, 160), 8000), None);
        let d = rx.packet(500, false, &payload(1, true, 800), 8000);
        assert_eq!(d, Some(ReceivedDigit { digit: '1', duration_ms: 100 }));
        assert_eq!(rx.packet(500, false, &payload(1, true, 800), 8000), None);
        assert_eq!(rx.packet(500, false, &payload(1, true, 800), 8000), None);
        // A late update of the same event changes nothing either.
        assert_eq!(rx.packet(500, false, &payload(1, false, 480), 8000), None);
        assert_eq!(rx.flush(), None);
    }

    #[test]
    fn lost_end_packets_reported_when_next_digit_starts() {
        let mut rx = EventReceiver::new();
        assert_eq!(rx.packet(0, true, &payload(4, false, 160), 8000), None);
        assert_eq!(rx.packet(0, false, &payload(4, false, 320), 8000), None);
        // The three end packets are lost; the next digit starts.
        let d = rx.packet(2000, true, &payload(7, false, 160), 8000);
        assert_eq!(d, Some(ReceivedDigit { digit: '4', duration_ms: 40 }));
        assert_eq!(rx.packet(2000, false, &payload(7, true, 640), 8000).map(|d| d.digit), Some('7'));
        // Late packets of the first digit are ignored.
        assert_eq!(rx.packet(0, false, &payload(4, true, 800), 8000), None);
    }

    #[test]
    fn lost_end_then_single_packet_event_reports_both() {
        let mut rx = EventReceiver::new();
        rx.packet(0, true, &payload(2, false, 160), 8000);
        // Everything of the next event but its ends is lost.
        assert_eq!(rx.packet(4000, false, &payload(3, true, 480), 8000).map(|d| d.digit), Some('2'));
        assert_eq!(rx.packet(4000, false, &payload(3, true, 480), 8000).map(|d| d.digit), Some('3'));
        assert_eq!(rx.packet(4000, false, &payload(3, true, 480), 8000), None);
    }

    #[test]
    fn flush_reports_unfinished_event_once() {
        let mut rx = EventReceiver::new();
        assert_eq!(rx.flush(), None);
        rx.packet(100, true, &payload(9, false, 400), 8000);
        assert_eq!(rx.flush(), Some(ReceivedDigit { digit: '9', duration_ms: 50 }));
        assert_eq!(rx.flush(), None);
        assert_eq!(rx.packet(100, false, &payload(9, true, 800), 8000), None);
    }

    #[test]
    fn long_event_counts_once_with_summed_duration() {
        for start in [10u32, u32::MAX - 0x1_0000] {
            let mut rx = EventReceiver::new();
            // Segment 1: saturates, no end bit.
            assert_eq!(rx.packet(start, true, &payload(0, false, 400), 8000), None);
            assert_eq!(rx.packet(start, false, &payload(0, false, 0xFFFF), 8000), None);
            // Segment 2: same event, new timestamp, no marker; saturates too.
            let ts2 = start.wrapping_add(0xFFFF);
            assert_eq!(rx.packet(ts2, false, &payload(0, false, 400), 8000), None);
            assert_eq!(rx.packet(ts2, false, &payload(0, false, 0xFFFF), 8000), None);
            // Segment 3 ends.
            let ts3 = ts2.wrapping_add(0xFFFF);
            assert_eq!(rx.packet(ts3, false, &payload(0, false, 800), 8000), None);
            let d = rx.packet(ts3, false, &payload(0, true, 8000), 8000);
            let units = 2 * 0xFFFF + 8000;
            assert_eq!(d, Some(ReceivedDigit { digit: '0', duration_ms: units * 1000 / 8000 }));
            assert_eq!(rx.packet(ts3, false, &payload(0, true, 8000), 8000), None);
            assert_eq!(rx.flush(), None);
        }
    }

    #[test]
    fn long_event_with_lost_saturated_packet_still_one_digit() {
        let mut rx = EventReceiver::new();
        rx.packet(0, true, &payload(6, false, 0xF000), 48000);
        // The packet reporting 0xFFFF is lost; the next segment still follows at +0xFFFF.
        assert_eq!(rx.packet(0xFFFF, false, &payload(6, false, 960), 48000), None);
        let d = rx.packet(0xFFFF, false, &payload(6, true, 4800), 48000);
        assert_eq!(d, Some(ReceivedDigit { digit: '6', duration_ms: (0xFFFF + 4800) * 1000 / 48000 }));
    }

    #[test]
    fn same_digit_twice_is_two_digits() {
        let mut rx = EventReceiver::new();
        assert_eq!(feed(&mut rx, EventSender::new('5', 100, 20, 8000).unwrap(), 0, 8000).len(), 1);
        assert_eq!(feed(&mut rx, EventSender::new('5', 100, 20, 8000).unwrap(), 1600, 8000).len(), 1);
        // Even when the second press starts exactly one segment later with its marker lost,
        // the first one had ended, so it is not a continuation.
        let d = rx.packet(1600 + 0xFFFF, false, &payload(5, true, 800), 8000);
        assert_eq!(d.map(|d| d.digit), Some('5'));
    }

    #[test]
    fn garbage_payloads_are_ignored() {
        let mut rx = EventReceiver::new();
        for bad in [&[][..], &[1], &[1, 0x80], &[1, 0x80, 0], &[17, 0x80, 0, 160], &[255, 0x8A, 0xFF, 0xFF]] {
            assert_eq!(rx.packet(0, true, bad, 8000), None);
        }
        assert_eq!(rx.flush(), None);
        // Zero clock rate: the digit still counts, with no duration.
        assert_eq!(rx.packet(0, true, &payload(16, true, 160), 0), Some(ReceivedDigit { digit: '!', duration_ms: 0 }));
        // Longer payloads (RFC 4733 allows several events in redundancy) use the first four bytes.
        let long = [3, 0x8A, 0x01, 0x40, 9, 9, 9, 9];
        assert_eq!(rx.packet(9000, true, &long, 8000), Some(ReceivedDigit { digit: '3', duration_ms: 40 }));
    }

    #[test]
    fn timestamp_wraparound() {
        let mut rx = EventReceiver::new();
        let ts1 = u32::MAX - 100;
        assert_eq!(feed(&mut rx, EventSender::new('1', 100, 20, 8000).unwrap(), ts1, 8000).len(), 1);
        // The next event's timestamp wrapped past zero: still newer.
        let ts2 = ts1.wrapping_add(2000);
        assert!(ts2 < ts1);
        let got = feed(&mut rx, EventSender::new('2', 100, 20, 8000).unwrap(), ts2, 8000);
        assert_eq!(got, vec![ReceivedDigit { digit: '2', duration_ms: 100 }]);
        // A retransmission from before the wrap is old, not new.
        assert_eq!(rx.packet(ts1, false, &payload(1, true, 800), 8000), None);
    }

    #[test]
    fn timestamp_jumps_start_new_events() {
        let mut rx = EventReceiver::new();
        let ts = 3_000_000_000u32;
        assert_eq!(feed(&mut rx, EventSender::new('1', 100, 20, 8000).unwrap(), ts, 8000).len(), 1);
        // The far end restarted its timestamps (new SSRC): far behind is not "late".
        let got = feed(&mut rx, EventSender::new('2', 100, 20, 8000).unwrap(), 1000, 8000);
        assert_eq!(got.iter().map(|d| d.digit).collect::<String>(), "2");
        // More than half the 32-bit range later (a very long call) is a new event too.
        let got = feed(&mut rx, EventSender::new('3', 100, 20, 8000).unwrap(), 1000 + 0x9000_0000, 8000);
        assert_eq!(got.iter().map(|d| d.digit).collect::<String>(), "3");
    }
}
