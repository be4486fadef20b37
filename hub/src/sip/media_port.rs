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
    /// Headers of the INVITE a script may want (`X-…`, `Diversion`, `P-Asserted-Identity`,
    /// `Referred-By`, `User-Agent`), as sent; empty for browser callers.
    pub headers: Vec<(String, String)>,
}

/// Headers kept for scripts: at most this many…
const MAX_HEADERS: usize = 32;
/// …of at most this many bytes each (longer ones are left out, not cut).
const MAX_HEADER_VALUE: usize = 512;

impl CallInfo {
    /// The caller's number: the user part of the `From` URI (`+4930123`), or `from` as it is
    /// when it is not a SIP URI (a browser caller's extension).
    pub fn caller_number(&self) -> String {
        let uri = match (self.from.find('<'), self.from.find('>')) {
            (Some(a), Some(b)) if a < b => &self.from[a + 1..b],
            _ => self.from.split(';').next().unwrap_or_default(),
        };
        let Some(rest) = ["sip:", "sips:", "tel:"].iter().find_map(|s| uri.trim().strip_prefix(s)) else {
            return uri.trim().to_string();
        };
        rest.split(['@', ';']).next().unwrap_or_default().to_string()
    }

    /// The display name the caller sent in `From` (`"Alice Liddell" <sip:…>`), if any.
    pub fn caller_name(&self) -> String {
        match self.from.find('<') {
            Some(i) => self.from[..i].trim().trim_matches('"').trim().to_string(),
            None => String::new(),
        }
    }

    /// The headers of `pairs` (name, value) that scripts may see, in order.
    pub fn script_headers<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
        const NAMED: [&str; 4] = ["Diversion", "P-Asserted-Identity", "Referred-By", "User-Agent"];
        pairs
            .filter(|(n, v)| {
                (n.len() > 2 && n[..2].eq_ignore_ascii_case("x-") || NAMED.iter().any(|k| k.eq_ignore_ascii_case(n)))
                    && v.len() <= MAX_HEADER_VALUE
            })
            .take(MAX_HEADERS)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
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

#[cfg(test)]
mod tests {
    use super::CallInfo;

    fn from(from: &str) -> CallInfo {
        CallInfo {
            id: "1".into(),
            call_id: "c".into(),
            from: from.into(),
            to: "800".into(),
            peer: ([127, 0, 0, 1], 5060).into(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn the_callers_number_and_name_come_from_the_from_header() {
        let c = from("\"Alice Liddell\" <sip:+4930123@pbx.example.org;user=phone>;tag=abc");
        assert_eq!((c.caller_number(), c.caller_name()), ("+4930123".to_string(), "Alice Liddell".to_string()));
        let c = from("<sip:1001@10.0.0.1:5060>;tag=x");
        assert_eq!((c.caller_number(), c.caller_name()), ("1001".to_string(), String::new()));
        let c = from("sip:bob@example.org;tag=1");
        assert_eq!(c.caller_number(), "bob");
        let c = from("Carol <tel:+15555550100>");
        assert_eq!((c.caller_number(), c.caller_name()), ("+15555550100".to_string(), "Carol".to_string()));
        // A browser caller: name and extension, no SIP URI.
        let c = from("\"Dave\" <1002>");
        assert_eq!((c.caller_number(), c.caller_name()), ("1002".to_string(), "Dave".to_string()));
    }

    #[test]
    fn scripts_see_x_headers_and_a_few_named_ones_only() {
        let long = "v".repeat(600);
        let pairs = [
            ("Via", "SIP/2.0/UDP x"),
            ("X-Account", "42"),
            ("x-lang", "de"),
            ("Diversion", "<sip:1001@pbx>;reason=no-answer"),
            ("Authorization", "Digest secret"),
            ("X-Huge", long.as_str()),
            ("X", "too short a name"),
        ];
        let kept = CallInfo::script_headers(pairs.iter().copied());
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Account", "x-lang", "Diversion"]);
        let many: Vec<(String, String)> = (0..50).map(|i| (format!("X-H{i}"), "v".to_string())).collect();
        assert_eq!(CallInfo::script_headers(many.iter().map(|(n, v)| (n.as_str(), v.as_str()))).len(), 32);
    }
}
