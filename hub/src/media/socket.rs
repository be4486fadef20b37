//! A call's RTP or RTCP socket, shared by its receive task and the pacer.
//!
//! Registered with the runtime for readability only. A tokio `UdpSocket` also registers for
//! writability, so every datagram the pacer sends, once the kernel frees it, woke the runtime
//! through epoll (`sock_wfree` → `sock_def_write_space`): measured, a third of the hub's CPU at
//! 3,000 calls. The pacer never waits to write (a full queue drops the frame), so it needs no
//! such wake-up: it sends with the plain non-blocking `send_to`.

use std::io;
use std::net::SocketAddr;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Where the pacer puts a call's RTP packets: the call's UDP socket, or (for a browser calling
/// over WebRTC) the peer connection that encrypts them. Never waits: a full queue is an error,
/// and the pacer counts the frame as dropped.
pub trait RtpSink: Send + Sync {
    /// Sends one packet to `to` now, or fails.
    fn try_send_to(&self, packet: &[u8], to: SocketAddr) -> io::Result<usize>;
}

impl RtpSink for RtpSocket {
    fn try_send_to(&self, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
        RtpSocket::try_send_to(self, packet, to)
    }
}

/// A non-blocking UDP socket: awaited for reading, written without waiting.
pub struct RtpSocket(AsyncFd<std::net::UdpSocket>);

impl RtpSocket {
    /// Wraps a bound socket (made non-blocking here). Must be called inside a tokio runtime.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        // `with_interest` is deprecated because an arbitrary `AsRawFd` may change or close its
        // descriptor under the reactor; a `std::net::UdpSocket` owned by the `AsyncFd` cannot.
        // (Its replacement is `unsafe`, which this crate forbids.)
        #[allow(deprecated, reason = "an owned UdpSocket keeps its descriptor for its whole life")]
        let registered = AsyncFd::with_interest(socket, Interest::READABLE)?;
        Ok(Self(registered))
    }

    /// The next datagram and where it came from.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            if let Ok(result) = ready.try_io(|s| s.get_ref().recv_from(buf)) {
                return result;
            }
        }
    }

    /// Sends now or fails (`WouldBlock` when the socket's queue is full); never waits.
    pub fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(buf, to)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
