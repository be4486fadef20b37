//! What a stream's receiver knows about it: RFC 3550 sequence tracking, loss and jitter.
//!
//! These are the numbers a receiver report carries (RFC 3550 §6.4.2) and what `hub sip calls`
//! shows per call. The algorithms are the RFC's own (Appendix A.1 for sequence validation and
//! wrap counting, A.3 for expected and lost packets, A.8 for interarrival jitter), so the
//! figures match what Asterisk or a phone would report for the same stream.

use std::time::Instant;

/// A source is valid after this many packets in sequence (RFC 3550 A.1 `MIN_SEQUENTIAL`).
const MIN_SEQUENTIAL: u16 = 2;
/// A jump larger than this is a restart or a misordering, not loss (A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind is late, not a restart (A.1 `MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// Receive-side statistics of one RTP source.
#[derive(Clone, Debug)]
pub struct ReceiveStats {
    ssrc: Option<u32>,
    clock_rate: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u16,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<i64>,
    jitter: f64,
    epoch: Instant,
}

/// The figures of one interval, for a reception report block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntervalReport {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction of packets lost in the interval, in 1/256 (RFC 3550 §6.4.1).
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits, may be negative with duplicates; clamped at 0 here).
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

impl ReceiveStats {
    /// Statistics for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            ssrc: None,
            clock_rate: clock_rate.max(1),
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
            epoch: Instant::now(),
        }
    }

    /// The clock rate changed (a re-INVITE switched codec): jitter restarts in the new units.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        if clock_rate != self.clock_rate {
            self.clock_rate = clock_rate.max(1);
            self.transit = None;
            self.jitter = 0.0;
        }
    }

    /// The source's SSRC, once a packet arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Counts a packet that arrived at `now`. Returns false when the packet is not (yet) part of
    /// a valid stream: in probation, or a jump to be confirmed by the next packet.
    pub fn packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, now: Instant) -> bool {
        if self.ssrc != Some(ssrc) {
            // A new source (first packet, or the sender restarted with a new SSRC).
            self.ssrc = Some(ssrc);
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
            self.transit = None;
        }
        if !self.update_seq(seq) {
            return false;
        }
        self.jitter(timestamp, now);
        true
    }

    /// RFC 3550 A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: a restart if the next packet follows it.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // Otherwise a duplicate or a reordered packet: counted, not moved to.
        self.received += 1;
        true
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, with arrival converted to timestamp units.
    fn jitter(&mut self, timestamp: u32, now: Instant) {
        let arrival = now.saturating_duration_since(self.epoch);
        let arrival_units = (arrival.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as i64;
        // Timestamps wrap at 2^32; the difference of two transits is taken modulo 2^32 below.
        let transit = arrival_units.wrapping_sub(i64::from(timestamp));
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            self.jitter += (f64::from(d) - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Packets received (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected from the first to the highest sequence number.
    pub fn expected(&self) -> u64 {
        if self.received == 0 {
            return 0;
        }
        u64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1
    }

    /// Packets lost so far (never negative: duplicates do not make packets un-lost here).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// The report block for the interval since the previous call (A.3), for an RTCP report.
    pub fn interval(&mut self) -> Option<IntervalReport> {
        let ssrc = self.ssrc?;
        if self.received == 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost =
            (lost_interval << 8).checked_div(expected_interval).map_or(0, |f| u8::try_from(f).unwrap_or(u8::MAX));
        Some(IntervalReport {
            ssrc,
            fraction_lost,
            total_lost: u32::try_from(self.lost()).unwrap_or(0x00ff_ffff).min(0x00ff_ffff),
            highest_seq: self.extended_max(),
            jitter: self.jitter as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Feeds `seqs` as packets 20 ms apart with matching timestamps.
    fn feed(stats: &mut ReceiveStats, seqs: &[u16]) -> Instant {
        let t0 = Instant::now();
        for (i, &seq) in seqs.iter().enumerate() {
            let k = u32::from(seq.wrapping_sub(seqs[0]));
            stats.packet(7, seq, 1000 + k * 160, t0 + Duration::from_millis(20 * i as u64));
        }
        t0
    }

    #[test]
    fn a_clean_stream_has_no_loss_and_no_jitter() {
        let mut s = ReceiveStats::new(8000);
        let seqs: Vec<u16> = (100..200).collect();
        feed(&mut s, &seqs);
        // The first packet is probation (A.1); the rest count.
        assert_eq!(s.received(), 99);
        assert_eq!(s.lost(), 0);
        assert!(s.jitter_ms() < 0.5, "{}", s.jitter_ms());
        let r = s.interval().unwrap();
        assert_eq!((r.fraction_lost, r.total_lost, r.highest_seq), (0, 0, 199));
    }

    #[test]
    fn losses_are_counted_across_the_sequence_wrap() {
        let mut s = ReceiveStats::new(8000);
        let seqs: Vec<u16> = (65_500u16..=65_535).chain(0..100).filter(|q| q % 10 != 3).collect();
        feed(&mut s, &seqs);
        assert_eq!(s.extended_max(), 65_536 + 99);
        // Every seq ending in 3 is missing: 4 in 65500..=65535 and 10 in 0..100.
        assert_eq!(s.lost(), 14);
        let r = s.interval().unwrap();
        assert!(r.fraction_lost > 0 && r.fraction_lost < 30, "{}", r.fraction_lost);
        assert_eq!(s.interval().unwrap().fraction_lost, 0, "a new interval with no packets lost none");
    }

    #[test]
    fn jitter_follows_the_arrival_spread() {
        let mut s = ReceiveStats::new(8000);
        let t0 = Instant::now();
        for i in 0..200u32 {
            // Every other packet 10 ms late.
            let late = if i % 2 == 1 { 10 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(20 * i + late));
            s.packet(9, i as u16, i * 160, at);
        }
        // |D| alternates at 10 ms, so J converges on 10 ms.
        assert!((s.jitter_ms() - 10.0).abs() < 1.0, "{}", s.jitter_ms());
    }

    #[test]
    fn a_sender_restart_with_a_new_ssrc_starts_over() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, &(0..50).collect::<Vec<_>>());
        let t = Instant::now();
        assert!(!s.packet(8, 40_000, 0, t), "first packet of a new source is probation");
        assert!(s.packet(8, 40_001, 160, t + Duration::from_millis(20)));
        assert_eq!((s.ssrc(), s.lost()), (Some(8), 0));
    }

    #[test]
    fn a_big_jump_needs_confirmation_and_duplicates_do_not_move_the_highest() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, &(0..10).collect::<Vec<_>>());
        let t = Instant::now();
        assert!(s.packet(7, 5, 0, t), "a duplicate is counted");
        assert_eq!(s.extended_max(), 9);
        assert!(!s.packet(7, 30_000, 0, t), "a lone jump is not believed");
        assert!(s.packet(7, 30_001, 160, t), "but confirmed by its successor");
        assert_eq!(s.extended_max(), 30_001);
    }
}
