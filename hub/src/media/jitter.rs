//! A small reorder buffer for received RTP: packets go in as they arrive, come out in sequence
//! order, and gaps come out as [`Slot::Lost`] so the decoder can conceal them.
//!
//! It reorders by count, not by time: a packet that is next in sequence is handed out at once,
//! and a gap is waited for only while fewer than `depth` later packets are held. When more than
//! `depth` are held, the missing one is declared lost and the buffer moves on. A caller pacing
//! playout on a clock can also give up on a gap early with [`JitterBuffer::skip`].
//!
//! ```text
//! push 1 ─▶ pop → Packet 1
//! push 3 ─▶ pop → None            (2 missing, 1 held ≤ depth: wait)
//! push 2 ─▶ pop → Packet 2, Packet 3
//! push 5,6,7 (depth 2) ─▶ pop → Lost 4, Packet 5, Packet 6, Packet 7
//! ```
//!
//! Sequence numbers are 16-bit and wrap; they are extended to 64 bits against the highest seen
//! (RFC 3550 appendix A.1), so 65535 → 0 is just the next packet. A jump of more than
//! [`MAX_JUMP`] either way is a new stream (the sender restarted): whatever is held is handed out
//! first, in order, then the new stream starts.

use std::collections::{BTreeMap, VecDeque};

/// A sequence jump larger than this (either way) is taken as a sender restart rather than loss
/// or lateness: at 50 packets a second it is 20 s of audio, far beyond any real reordering.
pub const MAX_JUMP: u64 = 1000;

/// What comes out of the buffer, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot<T> {
    /// A packet that arrived.
    Packet {
        /// Its RTP sequence number.
        seq: u16,
        /// Its RTP timestamp.
        timestamp: u32,
        /// Its payload.
        payload: T,
    },
    /// A packet that never arrived (or arrived too late): the consumer conceals one frame.
    Lost {
        /// The sequence number that is missing.
        seq: u16,
    },
}

/// Counters of what the network did to the stream, for RTCP reports and call quality logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets dropped because their turn had passed (including duplicates of played packets).
    pub late: u64,
    /// Packets dropped because the same sequence number was already held.
    pub duplicate: u64,
    /// Sequence numbers handed out as [`Slot::Lost`].
    pub lost: u64,
    /// Times the stream was restarted by a large sequence jump.
    pub resets: u64,
}

/// The reorder buffer. Generic over the payload so it can hold raw bytes or parsed packets.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    /// How many later packets to hold before giving up on a gap.
    depth: usize,
    /// Held packets by extended sequence number.
    held: BTreeMap<u64, (u32, T)>,
    /// Slots ready to hand out before anything in `held` (left over from a stream restart).
    ready: VecDeque<Slot<T>>,
    /// Extended sequence number to hand out next; `None` until the first pop of a stream.
    next: Option<u64>,
    /// Highest extended sequence number seen in this stream: the reference for extending.
    highest: Option<u64>,
    stats: JitterStats,
}

impl<T> JitterBuffer<T> {
    /// A buffer that waits for a missing packet until `depth` later ones are held (at 20 ms
    /// packets, a depth of 3 tolerates 60 ms of reordering). A depth of 0 never waits.
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            held: BTreeMap::new(),
            ready: VecDeque::new(),
            next: None,
            highest: None,
            stats: JitterStats::default(),
        }
    }

    /// Adds a received packet. Late and duplicate packets are dropped and counted.
    pub fn push(&mut self, seq: u16, timestamp: u32, payload: T) {
        let Some(highest) = self.highest else {
            // The first packet of a stream: start well above zero so earlier packets extend
            // to positive numbers too.
            let ext = (1 << 16) + u64::from(seq);
            self.highest = Some(ext);
            self.held.insert(ext, (timestamp, payload));
            return;
        };
        let ext = extend(highest, seq);
        let restart = match self.next {
            Some(next) => ext + MAX_JUMP < next || ext > highest + MAX_JUMP,
            None => ext + MAX_JUMP < highest || ext > highest + MAX_JUMP,
        };
        if restart {
            self.restart();
            self.push(seq, timestamp, payload);
            return;
        }
        if self.next.is_some_and(|next| ext < next) {
            self.stats.late += 1;
            return;
        }
        if self.held.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        self.highest = Some(highest.max(ext));
        self.held.insert(ext, (timestamp, payload));
    }

    /// The next slot in order, or `None` while waiting (for a gap to fill, or for packets).
    pub fn pop(&mut self) -> Option<Slot<T>> {
        if let Some(slot) = self.ready.pop_front() {
            return Some(slot);
        }
        let next = self.next_seq()?;
        if let Some(slot) = self.take(next) {
            return Some(slot);
        }
        (self.held.len() > self.depth).then(|| self.lose(next))
    }

    /// Gives up on a gap now: the next slot in order, declaring it lost if it has not arrived,
    /// whatever the depth. For a consumer that plays on a clock and cannot wait any longer.
    /// `None` when nothing is held at all (no gap: the stream is just quiet).
    pub fn skip(&mut self) -> Option<Slot<T>> {
        if let Some(slot) = self.ready.pop_front() {
            return Some(slot);
        }
        if self.held.is_empty() {
            return None;
        }
        let next = self.next_seq()?;
        Some(self.take(next).unwrap_or_else(|| self.lose(next)))
    }

    /// Drains everything held, in order, with gaps as [`Slot::Lost`]: at the end of a stream.
    pub fn flush(&mut self) -> Vec<Slot<T>> {
        let mut out = Vec::with_capacity(self.ready.len() + self.held.len());
        while let Some(slot) = self.skip() {
            out.push(slot);
        }
        out
    }

    /// Packets (and leftover slots) waiting to be handed out.
    pub fn len(&self) -> usize {
        self.ready.len() + self.held.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What happened to the stream so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets dropped as late.
    pub fn late(&self) -> u64 {
        self.stats.late
    }

    /// Packets dropped as duplicates.
    pub fn duplicate(&self) -> u64 {
        self.stats.duplicate
    }

    /// Sequence numbers declared lost.
    pub fn lost(&self) -> u64 {
        self.stats.lost
    }

    /// The sequence number to hand out next, starting a stream at its lowest held packet.
    fn next_seq(&mut self) -> Option<u64> {
        match self.next {
            Some(next) => Some(next),
            None => {
                let first = *self.held.keys().next()?;
                self.next = Some(first);
                Some(first)
            }
        }
    }

    /// Hands out `next` if it is held.
    fn take(&mut self, next: u64) -> Option<Slot<T>> {
        let (timestamp, payload) = self.held.remove(&next)?;
        self.next = Some(next + 1);
        Some(Slot::Packet { seq: next as u16, timestamp, payload })
    }

    /// Declares `next` lost and moves past it.
    fn lose(&mut self, next: u64) -> Slot<T> {
        self.stats.lost += 1;
        self.next = Some(next + 1);
        Slot::Lost { seq: next as u16 }
    }

    /// Ends the current stream: held packets move, in order and without loss markers, to the
    /// ready queue, and the next push starts a new stream.
    fn restart(&mut self) {
        self.stats.resets += 1;
        tracing::debug!(held = self.held.len(), "rtp sequence jump: stream restarted");
        let held = std::mem::take(&mut self.held);
        self.ready.extend(held.into_iter().map(|(ext, (timestamp, payload))| Slot::Packet {
            seq: ext as u16,
            timestamp,
            payload,
        }));
        self.next = None;
        self.highest = None;
    }
}

/// Extends a 16-bit sequence number to the 64-bit one nearest `reference`.
fn extend(reference: u64, seq: u16) -> u64 {
    let delta = i64::from(seq.wrapping_sub(reference as u16) as i16);
    reference.saturating_add_signed(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(slots: &[Slot<u16>]) -> Vec<String> {
        slots
            .iter()
            .map(|s| match s {
                Slot::Packet { seq, payload, .. } => {
                    assert_eq!(seq, payload, "payload travels with its seq");
                    seq.to_string()
                }
                Slot::Lost { seq } => format!("lost {seq}"),
            })
            .collect()
    }

    fn push(jb: &mut JitterBuffer<u16>, seq: u16) {
        jb.push(seq, u32::from(seq) * 160, seq);
    }

    fn drain(jb: &mut JitterBuffer<u16>) -> Vec<String> {
        seqs(&std::iter::from_fn(|| jb.pop()).collect::<Vec<_>>())
    }

    #[test]
    fn in_order_packets_come_straight_out() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 10);
        assert_eq!(
            jb.pop(),
            Some(Slot::Packet { seq: 10, timestamp: 1600, payload: 10 }),
            "no delay when nothing is missing"
        );
        push(&mut jb, 11);
        assert_eq!(drain(&mut jb), ["11"]);
        assert_eq!(jb.pop(), None);
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 1);
        assert_eq!(drain(&mut jb), ["1"]);
        push(&mut jb, 3);
        push(&mut jb, 4);
        assert_eq!(drain(&mut jb), Vec::<String>::new(), "waiting for 2");
        push(&mut jb, 2);
        assert_eq!(drain(&mut jb), ["2", "3", "4"]);
        assert_eq!(jb.stats(), JitterStats::default());
    }

    #[test]
    fn packets_reordered_before_the_first_pop_are_kept() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 6);
        push(&mut jb, 5);
        assert_eq!(drain(&mut jb), ["5", "6"]);
    }

    #[test]
    fn a_gap_is_declared_lost_once_more_than_depth_packets_wait() {
        let mut jb = JitterBuffer::new(2);
        push(&mut jb, 1);
        assert_eq!(drain(&mut jb), ["1"]);
        push(&mut jb, 3);
        push(&mut jb, 4);
        assert_eq!(drain(&mut jb), Vec::<String>::new());
        push(&mut jb, 5);
        assert_eq!(drain(&mut jb), ["lost 2", "3", "4", "5"]);
        push(&mut jb, 2);
        assert_eq!(jb.pop(), None, "too late");
        assert_eq!((jb.lost(), jb.late(), jb.duplicate()), (1, 1, 0));
    }

    #[test]
    fn a_burst_loss_gives_one_lost_slot_per_packet() {
        let mut jb = JitterBuffer::new(1);
        push(&mut jb, 1);
        push(&mut jb, 5);
        push(&mut jb, 6);
        assert_eq!(drain(&mut jb), ["1", "lost 2", "lost 3", "lost 4", "5", "6"]);
        assert_eq!(jb.lost(), 3);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 1);
        push(&mut jb, 3);
        push(&mut jb, 3);
        assert_eq!(jb.duplicate(), 1);
        assert_eq!(drain(&mut jb), ["1"]);
        push(&mut jb, 1);
        assert_eq!(jb.late(), 1, "a duplicate of a played packet is late");
        push(&mut jb, 2);
        assert_eq!(drain(&mut jb), ["2", "3"]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::new(3);
        for seq in [65533, 65535, 65534, 1, 0, 2] {
            push(&mut jb, seq);
        }
        assert_eq!(drain(&mut jb), ["65533", "65534", "65535", "0", "1", "2"]);
        push(&mut jb, 65535);
        assert_eq!(jb.late(), 1, "65535 after 2 is old, not a jump forward");
        assert_eq!(jb.stats().resets, 0);
    }

    #[test]
    fn a_big_jump_restarts_the_stream_after_what_was_held() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 100);
        assert_eq!(drain(&mut jb), ["100"]);
        push(&mut jb, 102);
        push(&mut jb, 40_000);
        push(&mut jb, 40_001);
        assert_eq!(drain(&mut jb), ["102", "40000", "40001"]);
        assert_eq!(jb.stats().resets, 1);
        // A restart to a lower number works the same way.
        push(&mut jb, 7);
        push(&mut jb, 8);
        assert_eq!(drain(&mut jb), ["7", "8"]);
        assert_eq!(jb.stats().resets, 2);
        assert_eq!(jb.lost(), 0, "101 is not reported: that stream ended");
    }

    #[test]
    fn flush_drains_everything_with_gaps() {
        let mut jb = JitterBuffer::new(10);
        push(&mut jb, 1);
        push(&mut jb, 3);
        push(&mut jb, 6);
        assert_eq!(jb.len(), 3);
        assert_eq!(seqs(&jb.flush()), ["1", "lost 2", "3", "lost 4", "lost 5", "6"]);
        assert!(jb.is_empty());
        assert!(jb.flush().is_empty());
    }

    #[test]
    fn skip_gives_up_on_a_gap_now() {
        let mut jb = JitterBuffer::new(10);
        push(&mut jb, 1);
        push(&mut jb, 3);
        assert_eq!(drain(&mut jb), ["1"]);
        assert_eq!(jb.skip(), Some(Slot::Lost { seq: 2 }));
        assert_eq!(drain(&mut jb), ["3"]);
        assert_eq!(jb.skip(), None, "nothing held: silence, not loss");
    }

    #[test]
    fn depth_zero_never_waits() {
        let mut jb = JitterBuffer::new(0);
        push(&mut jb, 1);
        push(&mut jb, 3);
        assert_eq!(drain(&mut jb), ["1", "lost 2", "3"]);
    }
}
