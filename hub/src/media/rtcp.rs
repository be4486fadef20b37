//! RTCP for one call: the hub's sender and receiver reports out, the peer's reports in.
//!
//! Built and parsed with `rtc-rtcp`. Every report the hub sends is a compound packet (RFC 3550
//! §6.1): a sender report when the hub sent RTP since the last report (else a receiver report),
//! with one reception block about the caller's stream, then an SDES with the hub's CNAME. From
//! the peer's reports the hub keeps what the peer says about the hub's stream (loss, jitter)
//! and the round-trip time (RFC 3550 §6.4.1, from LSR and DLSR).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rtc_rtcp::packet::Packet;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};

use super::rtp_stats::IntervalReport;

/// Seconds from 1900 (NTP epoch) to 1970 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why an RTCP packet could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RtcpError {
    /// rtc-rtcp refused the bytes.
    #[error("RTCP: {0}")]
    Rtcp(#[from] rtc_shared::error::Error),
}

/// A wall-clock time as a 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
pub fn ntp_now() -> u64 {
    ntp_from(SystemTime::now())
}

fn ntp_from(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u128::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac as u64
}

/// The middle 32 bits of an NTP timestamp: how LSR, DLSR and round trips are counted.
fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// What the hub sent, for a sender report.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendCounts {
    /// Packets sent since the stream began.
    pub packets: u32,
    /// Payload octets sent since the stream began.
    pub octets: u32,
    /// The RTP timestamp that corresponds to "now" on the stream's clock.
    pub rtp_now: u32,
}

/// The last sender report the peer sent, to echo in our reception block (LSR/DLSR).
#[derive(Clone, Copy, Debug)]
pub struct PeerSr {
    /// The middle 32 bits of its NTP time.
    pub lsr: u32,
    /// When it arrived, on our NTP clock (middle 32 bits).
    pub received_at: u32,
}

/// Builds the hub's compound report.
pub fn build_report(
    ssrc: u32,
    cname: &str,
    sent: Option<SendCounts>,
    received: Option<IntervalReport>,
    peer_sr: Option<PeerSr>,
) -> Result<Bytes, RtcpError> {
    let now = ntp_now();
    let reports: Vec<ReceptionReport> = received
        .map(|r| {
            let (last_sender_report, delay) = match peer_sr {
                Some(sr) => (sr.lsr, ntp_middle(now).wrapping_sub(sr.received_at)),
                None => (0, 0),
            };
            ReceptionReport {
                ssrc: r.ssrc,
                fraction_lost: r.fraction_lost,
                total_lost: r.total_lost,
                last_sequence_number: r.highest_seq,
                jitter: r.jitter,
                last_sender_report,
                delay,
            }
        })
        .into_iter()
        .collect();
    let first: Box<dyn Packet> = match sent {
        Some(s) => Box::new(SenderReport {
            ssrc,
            ntp_time: now,
            rtp_time: s.rtp_now,
            packet_count: s.packets,
            octet_count: s.octets,
            reports,
            profile_extensions: Bytes::new(),
        }),
        None => Box::new(ReceiverReport { ssrc, reports, profile_extensions: Bytes::new() }),
    };
    let sdes: Box<dyn Packet> = Box::new(SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source: ssrc,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: Bytes::copy_from_slice(cname.as_bytes()),
            }],
        }],
    });
    Ok(rtc_rtcp::packet::marshal(&[first, sdes])?.freeze())
}

/// What a peer's compound report told us.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PeerReport {
    /// The peer's sender report, when it sent one.
    pub sender_report: Option<PeerSrInfo>,
    /// The peer's view of the hub's stream, when it had a block about it.
    pub about_us: Option<RemoteView>,
}

/// A sender report's identity, to answer with LSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSrInfo {
    /// The middle 32 bits of the report's NTP time.
    pub lsr: u32,
}

/// How the peer receives the hub's stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RemoteView {
    /// Fraction lost in the last interval, 0–1.
    pub fraction_lost: f64,
    /// Cumulative packets lost.
    pub total_lost: u32,
    /// Jitter in timestamp units.
    pub jitter: u32,
    /// Round-trip time, when the peer echoed one of our sender reports.
    pub rtt: Option<Duration>,
}

/// Reads a peer's compound RTCP packet, keeping what concerns the stream with `our_ssrc`.
pub fn parse_report(mut raw: &[u8], our_ssrc: u32) -> Result<PeerReport, RtcpError> {
    let now_mid = ntp_middle(ntp_now());
    let packets = rtc_rtcp::packet::unmarshal(&mut raw)?;
    let mut out = PeerReport::default();
    let mut consider = |blocks: &[ReceptionReport]| {
        for b in blocks.iter().filter(|b| b.ssrc == our_ssrc) {
            let rtt = (b.last_sender_report != 0).then(|| {
                let units = now_mid.wrapping_sub(b.last_sender_report).wrapping_sub(b.delay);
                Duration::from_micros(u64::from(units) * 1_000_000 / 65_536)
            });
            out.about_us = Some(RemoteView {
                fraction_lost: f64::from(b.fraction_lost) / 256.0,
                total_lost: b.total_lost,
                jitter: b.jitter,
                rtt,
            });
        }
    };
    for p in &packets {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            out.sender_report = Some(PeerSrInfo { lsr: ntp_middle(sr.ntp_time) });
            consider(&sr.reports);
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            consider(&rr.reports);
        }
    }
    Ok(out)
}

/// The middle 32 bits of our NTP clock now, to stamp a peer's sender report on arrival.
pub fn ntp_middle_now() -> u32 {
    ntp_middle(ntp_now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_report_round_trips_and_the_peer_sees_its_block() {
        let block = IntervalReport { ssrc: 0xabc, fraction_lost: 64, total_lost: 12, highest_seq: 70_000, jitter: 80 };
        let sent = SendCounts { packets: 500, octets: 80_000, rtp_now: 123_456 };
        let raw = build_report(0x1234, "hub@example", Some(sent), Some(block), None).unwrap();
        // The peer (ssrc 0xabc) parses it: our block is about it.
        let seen = parse_report(&raw, 0xabc).unwrap();
        let view = seen.about_us.unwrap();
        assert_eq!((view.total_lost, view.jitter), (12, 80));
        assert!((view.fraction_lost - 0.25).abs() < 1e-9);
        assert!(seen.sender_report.is_some());
        assert_eq!(view.rtt, None, "no LSR echoed");
    }

    #[test]
    fn a_receiver_report_is_sent_when_nothing_was_sent_and_rtt_comes_from_lsr() {
        // The peer sent an SR whose NTP middle is `lsr`; we answer 0.25 s later with DLSR.
        let lsr = ntp_middle_now().wrapping_sub(65_536 / 2); // half a second ago
        let peer_sr = PeerSr { lsr, received_at: ntp_middle_now().wrapping_sub(65_536 / 4) };
        let block = IntervalReport { ssrc: 0x55, fraction_lost: 0, total_lost: 0, highest_seq: 10, jitter: 0 };
        let raw = build_report(0x66, "hub", None, Some(block), Some(peer_sr)).unwrap();
        let parsed = rtc_rtcp::packet::unmarshal(&mut &raw[..]).unwrap();
        assert!(parsed[0].as_any().downcast_ref::<ReceiverReport>().is_some());
        let view = parse_report(&raw, 0x55).unwrap().about_us.unwrap();
        let rtt = view.rtt.unwrap().as_millis();
        assert!((230..=270).contains(&rtt), "{rtt} ms");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_report(&[0x80, 0xc9, 0x00], 1).is_err());
        assert!(parse_report(&[], 1).is_err());
    }
}
