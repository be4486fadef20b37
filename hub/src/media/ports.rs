//! Local RTP ports from the configured range (`[media] rtp_port_min..=rtp_port_max`).
//!
//! Even ports only (RFC 3550 §11: RTP on even, RTCP on the next odd one). A cursor walks the
//! range so a port just freed is not reused at once (late packets of the old call must not
//! reach the new one); a port another process holds is skipped.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Hands out RTP sockets.
pub struct PortRange {
    ip: IpAddr,
    min: u16,
    count: u32,
    cursor: AtomicU32,
}

impl PortRange {
    /// Ports `min..=max` on `ip`.
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let count = u32::from(max.saturating_sub(first)) / 2 + 1;
        Self { ip, min: first, count, cursor: AtomicU32::new(rand::random::<u32>() % count.max(1)) }
    }

    /// Two bound, non-blocking UDP sockets on the next free even port and the odd one above it:
    /// RTP and RTCP (RFC 3550 §11).
    pub fn bind_pair(&self) -> std::io::Result<(UdpSocket, UdpSocket)> {
        let mut last = None;
        for _ in 0..8 {
            let rtp = self.bind()?;
            let mut rtcp_addr = rtp.local_addr()?;
            rtcp_addr.set_port(rtcp_addr.port() + 1);
            match UdpSocket::bind(rtcp_addr) {
                Ok(rtcp) => {
                    rtcp.set_nonblocking(true)?;
                    return Ok((rtp, rtcp));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free RTP/RTCP port pair")))
    }

    /// A bound, non-blocking UDP socket on the next free even port.
    pub fn bind(&self) -> std::io::Result<UdpSocket> {
        let mut last = None;
        // Try a bounded number of ports: a range that is nearly all taken fails fast.
        for _ in 0..self.count.min(256) {
            let n = self.cursor.fetch_add(1, Ordering::Relaxed) % self.count;
            let Ok(port) = u16::try_from(u32::from(self.min) + n * 2) else { continue };
            match UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                Ok(s) => {
                    s.set_nonblocking(true)?;
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the RTP port range is empty")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_even_within_the_range_and_not_reused_at_once() {
        let range = PortRange::new("127.0.0.1".parse().unwrap(), 41001, 41100);
        let a = range.bind().unwrap();
        let b = range.bind().unwrap();
        for s in [&a, &b] {
            let p = s.local_addr().unwrap().port();
            assert!(p % 2 == 0 && (41002..=41100).contains(&p), "{p}");
        }
        let pa = a.local_addr().unwrap().port();
        drop(a);
        assert_ne!(range.bind().unwrap().local_addr().unwrap().port(), pa);
    }

    #[test]
    fn a_pair_is_an_even_port_and_the_next_one() {
        let range = PortRange::new("127.0.0.1".parse().unwrap(), 41200, 41300);
        let (rtp, rtcp) = range.bind_pair().unwrap();
        let (p, q) = (rtp.local_addr().unwrap().port(), rtcp.local_addr().unwrap().port());
        assert!(p % 2 == 0 && q == p + 1, "{p} {q}");
    }
}
