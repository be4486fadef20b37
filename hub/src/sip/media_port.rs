//! The interface between a call and whatever handles its audio.
//!
//! The SIP side negotiates ([`super::sdp`]) and hands the outcome to a [`MediaApp`]; the media
//! side reports back through [`LegEvents`]. `sip` defines this port and never imports `media`:
//! the echo app of today and the IVR engine of tomorrow implement it from above, and the
//! composition root (`app`) plugs one in.

use std::net::SocketAddr;

use tokio::sync::mpsc::UnboundedSender;

use super::sdp::{AudioCodec, MediaParams};

/// Who is calling, handed to the media side when a call arrives.
#[derive(Clone, Debug)]
pub struct CallInfo {
    /// The hub's id for the call (its dialog id), as `hub sip calls` shows it.
    pub id: String,
    /// The SIP Call-ID.
    pub call_id: String,
    /// The caller (`From` URI, with display name when sent).
    pub from: String,
    /// What was dialled (the Request-URI user, e.g. an IVR number).
    pub to: String,
    /// Where the INVITE came from.
    pub peer: SocketAddr,
}

/// A digit the caller sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Digit {
    /// `0`–`9`, `*`, `#`, `A`–`D`, or `!` for flash.
    pub digit: char,
    /// How long it was held, in milliseconds (0 when the sender did not say).
    pub duration_ms: u32,
}

/// What the media side asks of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// The media side is done (an IVR script hung up): the hub sends BYE.
    Hangup {
        /// Logged and put in the BYE's `Reason`.
        reason: String,
    },
    /// Blind transfer (REFER) of the caller to `target` (an extension).
    Transfer {
        /// The extension or SIP URI user to transfer to.
        target: String,
    },
}

/// Where a leg sends its [`LegEvent`]s.
pub type LegEvents = UnboundedSender<LegEvent>;

/// Counters a leg keeps, shown by `hub sip calls` and used for the RTP inactivity timeout.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LegStats {
    /// RTP packets received.
    pub packets_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// Milliseconds since the last RTP packet arrived (since the leg opened when none did).
    pub idle_ms: u64,
    /// Digits received so far (RFC 4733, in-band or SIP INFO), oldest first, at most the last 32.
    pub digits: String,
    /// RTP packets from the caller that never arrived (RFC 3550 cumulative loss).
    pub lost: u64,
    /// Interarrival jitter of the caller's stream, in milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Frames the hub sent more than 5 ms after their slot on the packet-time grid.
    pub late: u64,
    /// Frames the hub could not send (the socket's queue was full).
    pub dropped: u64,
    /// What the caller's last RTCP report said of the hub's stream: fraction lost, 0–1.
    pub remote_loss: Option<f64>,
    /// The caller's reported jitter of the hub's stream, in milliseconds.
    pub remote_jitter_ms: Option<f64>,
    /// Round-trip time from the caller's RTCP (LSR/DLSR), in milliseconds.
    pub rtt_ms: Option<f64>,
}

/// Why a media leg could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No local RTP port could be bound.
    #[error("cannot bind an RTP port: {0}")]
    Bind(#[from] std::io::Error),
    /// The app refuses the call (it is full, say).
    #[error("media refused: {0}")]
    Refused(String),
}

/// Something that handles the audio of calls: one [`MediaLeg`] per call.
pub trait MediaApp: Send + Sync + 'static {
    /// The codecs it can run; the caller's order decides among them.
    fn codecs(&self) -> &[AudioCodec];

    /// Prepares a call's audio: binds the local RTP port the answer will announce.
    /// Media flows once [`MediaLeg::start`] is called (the 200 is on its way).
    fn open(&self, call: &CallInfo, events: LegEvents) -> Result<Box<dyn MediaLeg>, MediaError>;
}

/// One call's audio. Dropping it stops the audio and frees the port.
pub trait MediaLeg: Send {
    /// The local RTP address put in the SDP answer.
    fn local_rtp(&self) -> SocketAddr;
    /// Audio may flow with `params` (after the 200 is sent).
    fn start(&mut self, params: &MediaParams);
    /// A re-INVITE changed the parameters (hold, unhold, a new remote address or codec).
    fn update(&mut self, params: &MediaParams);
    /// A digit arrived out of band (SIP INFO).
    fn dtmf(&mut self, digit: Digit);
    /// The leg's counters now.
    fn stats(&self) -> LegStats;
}
