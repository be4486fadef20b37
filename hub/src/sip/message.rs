//! The SIP message layer: received bytes in, one verdict out ([`classify`]).
//!
//! Every transport hands what it received to [`classify`] and acts on the [`Inbound`] verdict:
//! pass a request or response up, answer a rejected request statelessly with
//! [`error_response`], drop a bad response, wait for more stream bytes, or close a stream
//! whose framing is lost. The layer answers nothing itself and knows no dialogs: whether an
//! accepted request gets 200, 405 or 501 is the user agent's decision.
//!
//! ```text
//!  bytes ──► frame (ours: CRLF keep-alives, Content-Length, size limit)
//!        ──► header scan (ours: unfold, names, duplicates, From/To/Via/CSeq grammar)
//!        ──► rsipstack::sip parse (the typed Request/Response)
//!        ──► Inbound
//! ```
//!
//! # Why not rsipstack alone
//!
//! `rsipstack` 0.7.14 no longer depends on a separate `rsip` crate: the maintained fork lives
//! inside it as `rsipstack::sip` (also exported as `rsipstack::rsip`), and that is what the hub
//! uses. Its parser is deliberately liberal: it keeps most header values as strings, reads a
//! bad Content-Length as 0 and caps the body at what arrived. The RFC 4475 fixtures
//! (`shared/fixtures/rfc4475`, tests in `message/tests.rs`) sort out as follows; "rsip" means
//! `rsipstack::sip::SipMessage::try_from` on the whole datagram.
//!
//! | fixtures | rsip alone | our layer |
//! |---|---|---|
//! | wsinv, esc01, escnull, lwsdisp, longreq, transports, unreason, noreason, baddate, bcast, zeromf, cparam01, cparam02, regescrt, sdp01, bext01, invut, regaut01, unksm2 | right: parsed | adds nothing but the checks they pass |
//! | mpart01 | right: body framed by Content-Length (NULs kept) | same body, framed by us |
//! | dblreq | right: REGISTER, trailing octets dropped | frames by Content-Length itself |
//! | semiuri | accepted, but the Request-URI user is lost (it splits at the first `;` before `@`) | re-reads the userinfo up to `@` |
//! | inv2543 | accepted with an **empty body** (no Content-Length read as 0) | UDP without Content-Length: body = rest of datagram |
//! | intmeth, esc02, mismatch02 | **error**: `Method` has no extension variant | [`Inbound::UnknownMethod`]; the UA answers 501 |
//! | unkscm, novelsc | **accepted** (novelsc with a nonsense host `soap.beep://192.0.2.103`) | 416 before rsip: the hub serves sip/sips/tel only |
//! | badinv01, quotbal, badaspec, regbadct | **accepted** (values kept as strings) | 400: From/To/Contact/Via grammar |
//! | baddn | error: the archived file has no empty line | 400 (no empty line); with one added, 400 for the unquoted display names |
//! | ltgtruri, escruri | **accepted** (`<>` and `?headers` in the Request-URI) | 400: Request-URI checks |
//! | lwsstart, trws, lwsruri | lwsstart/lwsruri rejected, trws **accepted** | 400: exactly `Method SP URI SP SIP/2.0` |
//! | scalar02, mismatch01, multi01, insuf, badbranch | **accepted** (CSeq, duplicates, missing headers unchecked) | 400 |
//! | badvers | **accepted** as `Version::V(7, 0)` | 505 |
//! | clerr, ncl, mcl01 | **accepted** (short body kept; `-999` read as 0; last length wins) | UDP: 400; stream: wait / close |
//! | scalarlg, bigcode | scalarlg **accepted**; bigcode rejected | discarded: a response is never answered |
//! | test.dat | error | no SIP version and no Via: discarded |
//!
//! No fixture, truncation or byte flip made rsipstack panic (see the robustness test), so
//! there is no `catch_unwind` here.

mod grammar;
#[cfg(test)]
mod tests;

use rsipstack::sip as rsip;
use std::hash::{Hash, Hasher};
use tracing::{debug, debug_span};

/// Largest message the hub accepts on any transport (headers and body together).
///
/// SIP over UDP cannot exceed 64 KiB anyway; on streams the limit bounds what one peer can
/// make the hub buffer before it gives up on the connection.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// How the bytes arrived, which decides how a message is framed (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// One datagram is one message; Content-Length is optional.
    Udp,
    /// A byte stream; Content-Length is mandatory and frames the body.
    Tcp,
    /// Like [`TransportKind::Tcp`], over TLS.
    Tls,
}

impl TransportKind {
    /// Streams must wait for more bytes where a datagram is simply short.
    fn is_stream(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }
}

/// Why the layer refused a message: the one error enum of the message layer.
///
/// Each variant maps to the status a rejected request gets ([`MessageError::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    /// No empty line ends the header section.
    #[error("header section not terminated by an empty line")]
    UnterminatedHeaders,
    /// The header section is not UTF-8 or has a bare CR or LF.
    #[error("header section is not UTF-8 text with CRLF line ends")]
    BadHeaderText,
    /// A header line has no colon or a name that is not a token.
    #[error("malformed header line")]
    BadHeaderLine,
    /// Content-Length is not a number (ncl: `-999`).
    #[error("Content-Length is not a non-negative number")]
    BadContentLength,
    /// Content-Length appears more than once (mcl01).
    #[error("more than one Content-Length")]
    ConflictingContentLength,
    /// A stream message without Content-Length (RFC 3261 §18.3).
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    /// Content-Length is larger than the datagram's body (clerr over UDP).
    #[error("Content-Length larger than the body received")]
    ShortBody,
    /// The request line is not `Method SP Request-URI SP SIP-Version`.
    #[error("malformed request line")]
    BadRequestLine,
    /// The status line is not `SIP-Version SP 3DIGIT SP Reason-Phrase` with a code 100..=699.
    #[error("malformed status line")]
    BadStatusLine,
    /// A well-formed SIP version other than 2.0 (badvers).
    #[error("SIP version not supported")]
    VersionNotSupported,
    /// The Request-URI is malformed, bracketed or carries `?headers`.
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// The Request-URI scheme is neither sip, sips nor tel.
    #[error("unsupported Request-URI scheme")]
    UnsupportedUriScheme,
    /// A mandatory header (Via, From, To, Call-ID, CSeq) is missing.
    #[error("mandatory header missing")]
    MissingHeader,
    /// A single-valued header appears more than once (multi01).
    #[error("single-valued header repeated")]
    DuplicateHeader,
    /// CSeq is malformed or its number is 2^31 or more.
    #[error("malformed CSeq")]
    BadCSeq,
    /// The CSeq method differs from the request method.
    #[error("CSeq method differs from the request method")]
    CSeqMethodMismatch,
    /// Max-Forwards is not a number.
    #[error("malformed Max-Forwards")]
    BadMaxForwards,
    /// Call-ID is empty or has whitespace.
    #[error("malformed Call-ID")]
    BadCallId,
    /// A Via value is malformed.
    #[error("malformed Via")]
    BadVia,
    /// A Via branch is exactly the magic cookie `z9hG4bK` (badbranch).
    #[error("Via branch is the bare magic cookie")]
    BareBranch,
    /// A From, To or Contact value is malformed.
    #[error("malformed address")]
    BadAddress,
    /// A quoted string never closes (quotbal).
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// An unquoted display name has non-token characters (baddn).
    #[error("display name must be quoted")]
    BadDisplayName,
    /// A URI is malformed (whitespace, brackets, no scheme).
    #[error("malformed URI")]
    BadUri,
    /// A header parameter is empty or malformed.
    #[error("malformed header parameter")]
    BadParameter,
    /// `rsipstack` refused what our checks passed.
    #[error("rsipstack could not parse the message")]
    Rsip,
}

impl MessageError {
    /// The status a request rejected for this reason gets (RFC 3261 §8.2, §21).
    pub fn status(self) -> u16 {
        match self {
            MessageError::TooLarge => 513,
            MessageError::VersionNotSupported => 505,
            MessageError::UnsupportedUriScheme => 416,
            _ => 400,
        }
    }

    /// The reason phrase that goes with [`MessageError::status`].
    pub fn reason_phrase(self) -> &'static str {
        match self.status() {
            513 => "Message Too Large",
            505 => "Version Not Supported",
            416 => "Unsupported URI Scheme",
            _ => "Bad Request",
        }
    }
}

/// What a transport does with the bytes it received.
#[derive(Debug)]
pub enum Inbound {
    /// A well-formed request with a method the hub knows; the UA takes it from here.
    Request(Box<rsip::Request>),
    /// A well-formed request with an extension method (intmeth, esc02).
    ///
    /// `rsipstack` has no variant for extension methods, so the request cannot be an
    /// `rsip::Request`; the UA answers it with [`error_response`] (501 with Allow).
    UnknownMethod {
        /// The method exactly as sent (methods are case-sensitive).
        method: String,
        /// What a reply needs.
        head: RequestHead,
    },
    /// A well-formed response; the transaction layer matches it.
    Response(Box<rsip::Response>),
    /// A malformed request to answer with `error_response(&head, status, ..)`.
    Reject(Rejection),
    /// Drop without answering: a bad response (never answered, RFC 3261 §18.1.2), a
    /// keep-alive, or bytes that do not even look like a request to reply to.
    Discard {
        /// Why, for the log.
        reason: MessageError,
    },
    /// A stream holds only part of a message: keep the bytes and read more.
    Incomplete,
    /// A stream's framing is lost (ncl, mcl01, too large): send `reply` if any, then close.
    CloseConnection {
        /// Why, for the log.
        reason: MessageError,
        /// The error response to send before closing, when the message was a request.
        reply: Option<Rejection>,
    },
}

/// The verdict of [`classify`] and how many bytes it used.
#[derive(Debug)]
pub struct Classified {
    /// What to do.
    pub inbound: Inbound,
    /// Bytes to drop from the front of a stream buffer (for UDP, the whole datagram).
    pub consumed: usize,
}

/// A request the layer refused, and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The status to answer with (400, 416, 505 or 513).
    pub status: u16,
    /// Why the request was refused.
    pub reason: MessageError,
    /// The headers the reply copies.
    pub head: RequestHead,
}

/// The headers of a request that an error response copies (RFC 3261 §8.2.6.2), kept even
/// when the full parse failed.
///
/// Values are the unfolded header values exactly as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// The request-line method, as sent.
    pub method: String,
    /// Every Via header value, in order.
    pub vias: Vec<String>,
    /// The From value.
    pub from: Option<String>,
    /// The To value.
    pub to: Option<String>,
    /// The Call-ID value.
    pub call_id: Option<String>,
    /// The CSeq value.
    pub cseq: Option<String>,
}

/// Builds a stateless error response to a request (RFC 3261 §8.2.6).
///
/// Copies Via, From, Call-ID and CSeq, and To with a tag added when it has none. The tag is a
/// hash of the request's identity, so a retransmitted request gets the same tag. CR and LF in
/// `reason` are replaced so it cannot inject headers.
pub fn error_response(head: &RequestHead, status: u16, reason: &str) -> Vec<u8> {
    response(head, status, reason, &[])
}

/// Builds a stateless response to a request, as [`error_response`] does, with `extra` headers
/// (`Allow`, `Accept`, `Supported`…) before `Content-Length`. CR and LF in header values are
/// replaced like those in `reason`.
pub fn response(head: &RequestHead, status: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let reason: String = reason.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for via in &head.vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    if let Some(from) = &head.from {
        out.push_str(&format!("From: {from}\r\n"));
    }
    if let Some(to) = &head.to {
        if grammar::has_tag(to) {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (&head.vias, &head.from, &head.call_id, &head.cseq).hash(&mut hasher);
            out.push_str(&format!("To: {to};tag={:016x}\r\n", hasher.finish()));
        }
    }
    if let Some(call_id) = &head.call_id {
        out.push_str(&format!("Call-ID: {call_id}\r\n"));
    }
    if let Some(cseq) = &head.cseq {
        out.push_str(&format!("CSeq: {cseq}\r\n"));
    }
    for (name, value) in extra {
        let value: String = value.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The methods `rsipstack::sip::Method` can represent, exactly as RFC 3261 and its
/// extensions spell them. rsipstack matches methods case-insensitively; SIP does not.
const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Classifies the bytes a transport received.
///
/// For UDP, `bytes` is one datagram and the verdict covers all of it. For a stream, `bytes`
/// is the connection's buffer; [`Classified::consumed`] says how much of it to drop. Never
/// panics, whatever the input.
pub fn classify(bytes: &[u8], transport: TransportKind) -> Classified {
    let span = debug_span!("sip_classify", ?transport, len = bytes.len());
    let _entered = span.enter();
    let classified = classify_inner(bytes, transport);
    match &classified.inbound {
        Inbound::Reject(r) => debug!(status = r.status, reason = %r.reason, "rejecting request"),
        Inbound::Discard { reason } => debug!(%reason, "discarding message"),
        Inbound::CloseConnection { reason, .. } => debug!(%reason, "closing connection"),
        _ => {}
    }
    classified
}

/// A message whose header section has been located and scanned.
struct Scanned<'a> {
    /// The start line.
    start: &'a str,
    /// `(lower-case full header name, unfolded value)` in order.
    headers: Vec<(String, String)>,
    /// Offset of the first body byte.
    body_start: usize,
}

impl Scanned<'_> {
    /// All values of a header.
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of a header.
    fn first(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// What an error response needs.
    fn head(&self) -> RequestHead {
        RequestHead {
            method: self.start.split(' ').next().unwrap_or("").to_string(),
            vias: self.all("via").map(str::to_string).collect(),
            from: self.first("from").map(str::to_string),
            to: self.first("to").map(str::to_string),
            call_id: self.first("call-id").map(str::to_string),
            cseq: self.first("cseq").map(str::to_string),
        }
    }

    /// True if the start line looks enough like a request to be worth answering.
    fn answerable(&self) -> bool {
        !self.start.starts_with("SIP/") && self.start.split(' ').count() >= 3 && self.first("via").is_some()
    }
}

/// The full names of RFC 3261 §7.3.3 compact forms and later RFCs' ones.
fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let full = match lower.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        _ => return lower,
    };
    full.to_string()
}

/// `(lower-case full header name, unfolded value)` pairs, in order.
type HeaderList = Vec<(String, String)>;

/// Splits the header section into unfolded `(name, value)` pairs.
fn scan_headers(text: &str) -> Result<(&str, HeaderList), MessageError> {
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = headers.last_mut() else {
                return Err(MessageError::BadHeaderLine);
            };
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(MessageError::BadHeaderLine);
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !grammar::is_token(name) {
            return Err(MessageError::BadHeaderLine);
        }
        headers.push((canonical_name(name), value.trim().to_string()));
    }
    Ok((start, headers))
}

/// Where the body starts, given the buffer after any leading CRLFs.
fn find_header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn classify_inner(all: &[u8], transport: TransportKind) -> Classified {
    let stream = transport.is_stream();
    // RFC 3261 §7.5: ignore CRLFs before the start line (also RFC 5626 keep-alives).
    let skipped = all.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let bytes = all.get(skipped..).unwrap_or(&[]);
    let whole = all.len();
    let verdict = |inbound, consumed| Classified { inbound, consumed };

    if bytes.is_empty() {
        return if stream {
            verdict(Inbound::Incomplete, skipped)
        } else {
            verdict(Inbound::Discard { reason: MessageError::UnterminatedHeaders }, whole)
        };
    }
    if !stream && all.len() > MAX_MESSAGE_SIZE {
        return verdict(Inbound::Discard { reason: MessageError::TooLarge }, whole);
    }

    let Some(header_end) = find_header_end(bytes) else {
        if stream {
            return if bytes.len() > MAX_MESSAGE_SIZE {
                verdict(close(MessageError::TooLarge, None), whole)
            } else {
                verdict(Inbound::Incomplete, skipped)
            };
        }
        // A datagram without an empty line: answer if we can read enough to do so.
        return verdict(refuse_text(bytes, MessageError::UnterminatedHeaders), whole);
    };
    if header_end + 4 > MAX_MESSAGE_SIZE {
        let reason = MessageError::TooLarge;
        return if stream { verdict(close(reason, None), whole) } else { verdict(Inbound::Discard { reason }, whole) };
    }
    let Some(text) = bytes.get(..header_end).and_then(|h| std::str::from_utf8(h).ok()) else {
        return datagram_or_close(stream, None, MessageError::BadHeaderText, whole);
    };
    // NUL stays allowed: a quoted-pair may escape it (intmeth's To display name).
    if has_bare_cr_or_lf(text) {
        return datagram_or_close(stream, None, MessageError::BadHeaderText, whole);
    }
    let (start, headers) = match scan_headers(text) {
        Ok(v) => v,
        Err(reason) => {
            return datagram_or_close(stream, None, reason, whole);
        }
    };
    let scanned = Scanned { start, headers, body_start: header_end + 4 };

    // Framing by Content-Length.
    let body_available = bytes.len().saturating_sub(scanned.body_start);
    let lengths: Vec<&str> = scanned.all("content-length").collect();
    let length = match lengths.as_slice() {
        [] if stream => Err(MessageError::MissingContentLength),
        [] => Ok(body_available),
        [one] => parse_content_length(one),
        _ => Err(MessageError::ConflictingContentLength),
    };
    let length = match length {
        Ok(n) => n,
        Err(reason) => {
            return datagram_or_close(stream, Some(&scanned), reason, whole);
        }
    };
    let Some(end) = scanned.body_start.checked_add(length) else {
        return datagram_or_close(stream, Some(&scanned), MessageError::BadContentLength, whole);
    };
    if end > MAX_MESSAGE_SIZE {
        return datagram_or_close(stream, Some(&scanned), MessageError::TooLarge, whole);
    }
    if end > bytes.len() {
        if stream {
            return verdict(Inbound::Incomplete, skipped);
        }
        return verdict(refuse(&scanned, MessageError::ShortBody), whole);
    }
    let consumed = if stream { skipped + end } else { whole };
    let framed = bytes.get(..end).unwrap_or(bytes);
    let body = framed.get(scanned.body_start..).unwrap_or(&[]);
    verdict(check_message(&scanned, framed, body), consumed)
}

/// True if `text` has a CR not followed by LF or an LF not preceded by CR.
fn has_bare_cr_or_lf(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().any(|(i, &c)| match c {
        b'\r' => b.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || b.get(i - 1) != Some(&b'\r'),
        _ => false,
    })
}

/// `Content-Length: 1*DIGIT`; anything else (ncl's `-999`, overflow) is a framing error.
fn parse_content_length(value: &str) -> Result<usize, MessageError> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(MessageError::BadContentLength);
    }
    value.parse().map_err(|_| MessageError::BadContentLength)
}

fn close(reason: MessageError, reply: Option<Rejection>) -> Inbound {
    Inbound::CloseConnection { reason, reply }
}

/// A framing-level failure: over UDP reject or discard the datagram; over a stream close.
fn datagram_or_close(stream: bool, scanned: Option<&Scanned<'_>>, reason: MessageError, whole: usize) -> Classified {
    let inbound = match scanned {
        Some(s) => refuse(s, reason),
        None => Inbound::Discard { reason },
    };
    if !stream {
        return Classified { inbound, consumed: whole };
    }
    let reply = match inbound {
        Inbound::Reject(r) => Some(r),
        _ => None,
    };
    Classified { inbound: close(reason, reply), consumed: whole }
}

/// Refuses a message whose header section could be scanned.
fn refuse(scanned: &Scanned<'_>, reason: MessageError) -> Inbound {
    if scanned.answerable() {
        Inbound::Reject(Rejection { status: reason.status(), reason, head: scanned.head() })
    } else {
        Inbound::Discard { reason }
    }
}

/// Refuses a datagram with no empty line, answering if its lines still scan.
fn refuse_text(bytes: &[u8], reason: MessageError) -> Inbound {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim_end_matches(['\r', '\n']),
        Err(_) => return Inbound::Discard { reason },
    };
    match scan_headers(text) {
        Ok((start, headers)) => refuse(&Scanned { start, headers, body_start: bytes.len() }, reason),
        Err(_) => Inbound::Discard { reason },
    }
}

/// Checks a framed message and builds the verdict.
fn check_message(scanned: &Scanned<'_>, framed: &[u8], body: &[u8]) -> Inbound {
    if scanned.start.starts_with("SIP/") {
        return match check_response(scanned, framed, body) {
            Ok(response) => Inbound::Response(Box::new(response)),
            Err(reason) => Inbound::Discard { reason },
        };
    }
    match check_request(scanned, framed, body) {
        Ok(inbound) => inbound,
        Err(reason) => refuse(scanned, reason),
    }
}

/// The header checks requests and responses share.
fn check_common(scanned: &Scanned<'_>) -> Result<(), MessageError> {
    for name in ["via", "from", "to", "call-id", "cseq"] {
        if scanned.first(name).is_none() {
            return Err(MessageError::MissingHeader);
        }
    }
    for name in ["from", "to", "call-id", "cseq", "max-forwards"] {
        if scanned.all(name).nth(1).is_some() {
            return Err(MessageError::DuplicateHeader);
        }
    }
    for via in scanned.all("via") {
        for value in grammar::split_outside(via, ',') {
            grammar::check_via(value)?;
        }
    }
    for name in ["from", "to"] {
        if let Some(v) = scanned.first(name) {
            grammar::check_address(v)?;
        }
    }
    for contact in scanned.all("contact") {
        if contact.trim() == "*" {
            continue;
        }
        for value in grammar::split_outside(contact, ',') {
            grammar::check_address(value)?;
        }
    }
    let call_id = scanned.first("call-id").unwrap_or("");
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(MessageError::BadCallId);
    }
    if let Some(mf) = scanned.first("max-forwards")
        && (mf.is_empty() || !mf.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(MessageError::BadMaxForwards);
    }
    Ok(())
}

fn check_request(scanned: &Scanned<'_>, framed: &[u8], body: &[u8]) -> Result<Inbound, MessageError> {
    // Exactly `Method SP Request-URI SP SIP-Version` (lwsstart, trws, lwsruri).
    let mut parts = scanned.start.split(' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MessageError::BadRequestLine);
    };
    if !grammar::is_token(method) {
        return Err(MessageError::BadRequestLine);
    }
    check_version(version)?;
    check_request_uri(uri)?;
    check_common(scanned)?;
    let (_, cseq_method) = grammar::parse_cseq(scanned.first("cseq").unwrap_or(""))?;
    let known = KNOWN_METHODS.contains(&method);
    if !known {
        // mismatch02: an unknown method whose CSeq differs gets 501 (preferred) from the UA.
        return Ok(Inbound::UnknownMethod { method: method.to_string(), head: scanned.head() });
    }
    if cseq_method != method {
        return Err(MessageError::CSeqMethodMismatch);
    }
    let message = rsip::SipMessage::try_from(framed).map_err(|e| {
        debug!(error = %e, "rsipstack refused a request our checks passed");
        MessageError::Rsip
    })?;
    let rsip::SipMessage::Request(mut request) = message else {
        return Err(MessageError::Rsip);
    };
    repair_request_uri_user(&mut request, uri);
    // Our framing, not rsipstack's: it reads a missing Content-Length as 0 (inv2543).
    request.body = body.to_vec();
    Ok(Inbound::Request(Box::new(request)))
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT`; only 2.0 is supported (badvers → 505).
fn check_version(version: &str) -> Result<(), MessageError> {
    let Some(number) = version.get(..4).filter(|p| p.eq_ignore_ascii_case("SIP/")).and_then(|_| version.get(4..))
    else {
        return Err(MessageError::BadRequestLine);
    };
    let Some((major, minor)) = number.split_once('.') else {
        return Err(MessageError::BadRequestLine);
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(MessageError::BadRequestLine);
    }
    if number == "2.0" { Ok(()) } else { Err(MessageError::VersionNotSupported) }
}

/// Request-URI checks rsipstack does not make.
///
/// ltgtruri (`<sip:...>`: rsipstack strips the brackets), escruri (`?headers` are not allowed
/// in a Request-URI, RFC 3261 §19.1.1), unkscm and novelsc (schemes the hub does not serve).
fn check_request_uri(uri: &str) -> Result<(), MessageError> {
    if uri.starts_with('<') || uri.ends_with('>') {
        return Err(MessageError::BadRequestUri);
    }
    let Some(scheme) = grammar::scheme_of(uri) else {
        return Err(MessageError::BadRequestUri);
    };
    match scheme.as_str() {
        "sip" | "sips" => {
            // The user part may hold `?` (intmeth); headers start after the host, which
            // follows the first `@` (a user part cannot hold an unescaped `@`).
            let after_user = uri.split_once('@').map_or(uri, |(_, host)| host);
            if after_user.contains('?') { Err(MessageError::BadRequestUri) } else { Ok(()) }
        }
        "tel" => Ok(()),
        s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
            Err(MessageError::UnsupportedUriScheme)
        }
        _ => Err(MessageError::BadRequestUri),
    }
}

/// Restores a SIP Request-URI user part that holds `;` (semiuri).
///
/// rsipstack splits the URI at its first `;` before looking for `@`, so
/// `sip:user;par=u%40example.net@example.com` loses its user. The userinfo ends at the first
/// `@` (an unescaped `@` cannot occur in the user or in parameters); the host and parameters
/// after it are parsed by rsipstack.
fn repair_request_uri_user(request: &mut rsip::Request, uri: &str) {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return;
    };
    let Some((userinfo, hostpart)) = rest.split_once('@') else {
        return;
    };
    if !userinfo.contains(';') {
        return;
    }
    if let Ok(mut repaired) = rsip::parse_uri(&format!("{scheme}:{hostpart}")) {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (userinfo.to_string(), None),
        };
        repaired.auth = Some(rsip::Auth { user, password });
        request.uri = repaired;
    }
}

fn check_response(scanned: &Scanned<'_>, framed: &[u8], body: &[u8]) -> Result<rsip::Response, MessageError> {
    // `SIP-Version SP Status-Code SP Reason-Phrase`; the phrase may be empty (noreason).
    let mut parts = scanned.start.splitn(3, ' ');
    let (Some(version), Some(code), Some(_reason)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(MessageError::BadStatusLine);
    };
    if version != "SIP/2.0" {
        return Err(MessageError::BadStatusLine);
    }
    // bigcode: 3DIGIT, and only 100..=699 exist.
    let code_ok = code.len() == 3
        && code.chars().all(|c| c.is_ascii_digit())
        && code.parse::<u16>().is_ok_and(|c| (100..=699).contains(&c));
    if !code_ok {
        return Err(MessageError::BadStatusLine);
    }
    check_common(scanned)?;
    // scalarlg: a CSeq of 2^32 or more.
    grammar::parse_cseq(scanned.first("cseq").unwrap_or(""))?;
    let message = rsip::SipMessage::try_from(framed).map_err(|e| {
        debug!(error = %e, "rsipstack refused a response our checks passed");
        MessageError::Rsip
    })?;
    let rsip::SipMessage::Response(mut response) = message else {
        return Err(MessageError::Rsip);
    };
    response.body = body.to_vec();
    Ok(response)
}
