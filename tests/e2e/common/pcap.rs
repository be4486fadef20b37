//! Writes RTP streams as pcap files for SIPp's `play_pcap_audio`: the tests generate the audio
//! they need (a tone, DTMF tones with noise, RFC 4733 events) instead of keeping binary fixtures.
//! Ethernet + IPv4 + UDP framing, as SIPp's reader expects; SIPp rewrites addresses and ports.

use std::path::Path;

/// One RTP packet to write, sent `at_ms` after the first.
pub struct RtpPacket {
    /// Milliseconds from the start of the capture.
    pub at_ms: u64,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The datagram of `p` from SSRC `ssrc`.
pub fn rtp_bytes(ssrc: u32, p: &RtpPacket) -> Vec<u8> {
    let mut rtp = vec![0x80, p.pt | if p.marker { 0x80 } else { 0 }];
    rtp.extend_from_slice(&p.seq.to_be_bytes());
    rtp.extend_from_slice(&p.ts.to_be_bytes());
    rtp.extend_from_slice(&ssrc.to_be_bytes());
    rtp.extend_from_slice(&p.payload);
    rtp
}

/// Sends `packets` from `from` to `to` at their capture times, as a caller's phone would.
pub fn play(packets: &[RtpPacket], ssrc: u32, from: &std::net::UdpSocket, to: std::net::SocketAddr) {
    let start = std::time::Instant::now();
    for p in packets {
        let due = start + std::time::Duration::from_millis(p.at_ms);
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        from.send_to(&rtp_bytes(ssrc, p), to).unwrap();
    }
}

/// Writes `packets` (all from SSRC `ssrc`) to `path`.
pub fn write(path: &Path, ssrc: u32, packets: &[RtpPacket]) {
    let mut out = Vec::new();
    // Global header: magic, version 2.4, zone 0, sigfigs 0, snaplen, Ethernet.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        let rtp = rtp_bytes(ssrc, p);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&u16::try_from(ip_len).unwrap().to_be_bytes());
        ip.extend_from_slice(&u16::try_from(i % 65_536).unwrap().to_be_bytes());
        ip.extend_from_slice(&[0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&6002u16.to_be_bytes());
        frame.extend_from_slice(&u16::try_from(udp_len).unwrap().to_be_bytes());
        frame.extend_from_slice(&0u16.to_be_bytes());
        frame.extend_from_slice(&rtp);
        let secs = u32::try_from(p.at_ms / 1000).unwrap();
        let micros = u32::try_from((p.at_ms % 1000) * 1000).unwrap();
        out.extend_from_slice(&(1_700_000_000 + secs).to_le_bytes());
        out.extend_from_slice(&micros.to_le_bytes());
        out.extend_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).unwrap();
}

/// 20 ms frames of `pcm` (8 kHz) encoded with `encode`, as packets from `start_ms` on.
pub fn audio_packets(
    pcm: &[i16],
    pt: u8,
    encode: impl Fn(&[i16]) -> Vec<u8>,
    first_seq: u16,
    first_ts: u32,
) -> Vec<RtpPacket> {
    pcm.chunks(160)
        .enumerate()
        .map(|(i, frame)| {
            let mut frame = frame.to_vec();
            frame.resize(160, 0);
            RtpPacket {
                at_ms: 20 * i as u64,
                pt,
                marker: i == 0,
                seq: first_seq.wrapping_add(u16::try_from(i).unwrap()),
                ts: first_ts.wrapping_add(u32::try_from(i * 160).unwrap()),
                payload: encode(&frame),
            }
        })
        .collect()
}
