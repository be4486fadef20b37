//! SDP offer/answer for calls to the user agent (RFC 3264 on RFC 4566, parsed with `rtc-sdp`).
//!
//! The hub answers; it never offers. From an offer it picks, in the *caller's* order, the first
//! audio codec the media side supports (PCMU, PCMA, opus), adds `telephone-event` when offered
//! (RFC 4733), and answers every other `m=` line with port 0. An offer with no usable audio gets
//! [`SdpError::NoCommonCodec`] (a `488 Not Acceptable Here`); an unparseable one
//! [`SdpError::Malformed`] (a `400`).
//!
//! Hold (RFC 3264 §8.4, and the older `c=0.0.0.0` of RFC 2543) shows as a direction; the
//! answer mirrors it (`sendonly` → `recvonly`, `inactive` → `inactive`).

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use rtc_sdp::SessionDescription;
use rtc_sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc_sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc_sdp::description::session::{Origin, TimeDescription, Timing};

/// Why an offer cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// The body is not SDP (or not SDP this parser can read).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream with a codec both sides support.
    #[error("no common audio codec (offered: {0})")]
    NoCommonCodec(String),
}

/// An audio codec the media side can handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus at 48 kHz, stereo signalled (RFC 7587), a dynamic payload type.
    Opus,
}

impl AudioCodec {
    /// The encoding name in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::Opus => 48000,
        }
    }

    fn rtpmap(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU/8000",
            Self::Pcma => "PCMA/8000",
            Self::Opus => "opus/48000/2",
        }
    }

    fn from_rtpmap(name: &str, rate: u32, channels: &str) -> Option<Self> {
        match (name.to_ascii_lowercase().as_str(), rate) {
            ("pcmu", 8000) => Some(Self::Pcmu),
            ("pcma", 8000) => Some(Self::Pcma),
            ("opus", 48000) if channels == "2" => Some(Self::Opus),
            _ => None,
        }
    }

    fn from_static(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }
}

/// Which way media flows, from the *hub's* side once answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The hub only sends (the caller put the call on hold with `recvonly`… rare).
    SendOnly,
    /// The hub only receives (the caller holds with `sendonly`: music on hold from its side).
    RecvOnly,
    /// Neither (hold with `inactive`, or `c=0.0.0.0`).
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Whether the caller has put the call on hold.
    pub fn is_hold(self) -> bool {
        !matches!(self, Self::SendRecv)
    }
}

/// What the media side needs to run one call's audio: the outcome of the negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaParams {
    /// Where to send RTP (`None` while held with `c=0.0.0.0`).
    pub remote: Option<SocketAddr>,
    /// The codec chosen.
    pub codec: AudioCodec,
    /// Its payload type, as the caller numbered it.
    pub payload_type: u8,
    /// Milliseconds of audio per packet (`a=ptime`, 20 when absent).
    pub ptime_ms: u32,
    /// The `telephone-event` payload type, when the caller offered RFC 4733 digits.
    pub dtmf_payload_type: Option<u8>,
    /// Which way audio flows, from the hub's side.
    pub direction: Direction,
}

/// The hub's answer and what it agreed to.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The SDP body of the 200.
    pub sdp: String,
    /// The negotiated parameters for the media side.
    pub params: MediaParams,
}

/// The hub's side of the session: kept per call so that re-answers increment the version.
#[derive(Clone, Debug)]
pub struct LocalSession {
    /// `o=` session id.
    pub id: u64,
    /// `o=` version, incremented on every answer after the first.
    pub version: u64,
    /// The local RTP address put in `c=` and `m=`.
    pub rtp: SocketAddr,
}

/// Parses `offer` and answers it, choosing from `supported` (in the caller's order).
pub fn answer(offer: &[u8], supported: &[AudioCodec], local: &LocalSession) -> Result<Answer, SdpError> {
    let text = std::str::from_utf8(offer).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
    // rtc-sdp wants CRLF or LF line ends and no trailing garbage; be liberal about a final
    // line without its end (seen from some gateways).
    let mut text = text.to_owned();
    if !text.ends_with('\n') {
        text.push_str("\r\n");
    }
    let offer = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Malformed(e.to_string()))?;
    let mut chosen: Option<(usize, MediaParams, Vec<Attribute>)> = None;
    let mut offered_names = Vec::new();
    for (i, media) in offer.media_descriptions.iter().enumerate() {
        if chosen.is_some() || media.media_name.media != "audio" || media.media_name.port.value == 0 {
            continue;
        }
        if media.media_name.protos.join("/") != "RTP/AVP" {
            offered_names.push(format!("audio over {}", media.media_name.protos.join("/")));
            continue;
        }
        if let Some(found) = negotiate_media(&offer, media, supported, &mut offered_names)? {
            chosen = Some((i, found.0, found.1));
        }
    }
    let Some((index, params, attributes)) = chosen else {
        return Err(SdpError::NoCommonCodec(if offered_names.is_empty() {
            "no audio".into()
        } else {
            offered_names.join(", ")
        }));
    };
    let sdp = render_answer(&offer, index, &params, attributes, local);
    Ok(Answer { sdp, params })
}

/// The chosen parameters and the answer's attributes for one offered audio stream, if usable.
fn negotiate_media(
    session: &SessionDescription,
    media: &MediaDescription,
    supported: &[AudioCodec],
    offered_names: &mut Vec<String>,
) -> Result<Option<(MediaParams, Vec<Attribute>)>, SdpError> {
    let rtpmaps = media.codecs();
    let mut codec = None;
    for format in &media.media_name.formats {
        let Ok(pt) = format.parse::<u8>() else { continue };
        let (this, name) = match rtpmaps.get(&pt) {
            Some(c) => (AudioCodec::from_rtpmap(&c.name, c.clock_rate, &c.encoding_parameters), c.name.clone()),
            None => (AudioCodec::from_static(pt), format.clone()),
        };
        if name.eq_ignore_ascii_case("telephone-event") {
            continue;
        }
        offered_names.push(name);
        if codec.is_none()
            && let Some(c) = this
            && supported.contains(&c)
        {
            codec = Some((c, pt));
        }
    }
    let Some((codec, pt)) = codec else { return Ok(None) };
    // Telephone-events share the codec's clock (RFC 4733 §2.1): 8 kHz with G.711, 48 kHz
    // with opus; the first such format offered is taken.
    let dtmf = media.media_name.formats.iter().filter_map(|f| f.parse::<u8>().ok()).find(|p| {
        rtpmaps
            .get(p)
            .is_some_and(|c| c.name.eq_ignore_ascii_case("telephone-event") && c.clock_rate == codec.clock_rate())
    });
    let connection = media.connection_information.as_ref().or(session.connection_information.as_ref());
    let address = connection.and_then(|c| c.address.as_ref()).map(|a| a.address.as_str());
    let ip = match address {
        Some(a) => a
            .split('/')
            .next()
            .unwrap_or(a)
            .parse::<IpAddr>()
            .map_err(|_| SdpError::Malformed(format!("connection address {a:?} is not an IP address")))?,
        None => return Err(SdpError::Malformed("no connection address (c=)".into())),
    };
    let port = u16::try_from(media.media_name.port.value)
        .map_err(|_| SdpError::Malformed(format!("bad media port {}", media.media_name.port.value)))?;
    let remote = (!ip.is_unspecified()).then_some(SocketAddr::new(ip, port));
    let attr = |key: &str| media.attribute(key).or_else(|| session.attribute(key).map(|v| Some(v.as_str())));
    let offered_direction = ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| media.has_attribute(d) || session.has_attribute(d))
        .unwrap_or("sendrecv");
    let direction = match (offered_direction, remote.is_some()) {
        (_, false) | ("inactive", _) => Direction::Inactive,
        ("sendonly", _) => Direction::RecvOnly,
        ("recvonly", _) => Direction::SendOnly,
        _ => Direction::SendRecv,
    };
    let ptime_ms = attr("ptime")
        .flatten()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|p| (10..=120).contains(p))
        .unwrap_or(20);
    let mut attributes = vec![value_attr("rtpmap", format!("{pt} {}", codec.rtpmap()))];
    if let Some(fmtp) = rtpmaps.get(&pt).map(|c| c.fmtp.clone()).filter(|f| !f.is_empty()) {
        attributes.push(value_attr("fmtp", format!("{pt} {fmtp}")));
    }
    if let Some(d) = dtmf {
        attributes.push(value_attr("rtpmap", format!("{d} telephone-event/{}", codec.clock_rate())));
        let events = rtpmaps.get(&d).map(|c| c.fmtp.clone()).filter(|f| !f.is_empty());
        attributes.push(value_attr("fmtp", format!("{d} {}", events.unwrap_or_else(|| "0-15".into()))));
    }
    attributes.push(value_attr("ptime", ptime_ms.to_string()));
    attributes.push(Attribute { key: direction.attribute().into(), value: None });
    let params = MediaParams { remote, codec, payload_type: pt, ptime_ms, dtmf_payload_type: dtmf, direction };
    Ok(Some((params, attributes)))
}

/// The payload type the hub offers opus on (dynamic, RFC 3551 §3), and telephone-events on.
const OPUS_PT: u8 = 111;
const EVENTS_PT: u8 = 101;

/// The hub's offer for a call it places: `codecs` in the hub's order, telephone-events at
/// 8 kHz, 20 ms packets, both directions.
pub fn offer(codecs: &[AudioCodec], local: &LocalSession) -> String {
    let mut formats = Vec::new();
    let mut attributes = Vec::new();
    for codec in codecs {
        let pt = match codec {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
            AudioCodec::Opus => OPUS_PT,
        };
        formats.push(pt.to_string());
        attributes.push(value_attr("rtpmap", format!("{pt} {}", codec.rtpmap())));
    }
    formats.push(EVENTS_PT.to_string());
    attributes.push(value_attr("rtpmap", format!("{EVENTS_PT} telephone-event/8000")));
    attributes.push(value_attr("fmtp", format!("{EVENTS_PT} 0-16")));
    attributes.push(value_attr("ptime", "20".into()));
    attributes.push(Attribute { key: "sendrecv".into(), value: None });
    let mut sdp = session(local);
    sdp.media_descriptions.push(MediaDescription {
        media_name: MediaName {
            media: "audio".into(),
            port: RangedPort { value: isize::try_from(local.rtp.port()).unwrap_or(0), range: None },
            protos: vec!["RTP".into(), "AVP".into()],
            formats,
        },
        attributes,
        ..Default::default()
    });
    sdp.marshal()
}

/// What the far end's answer to [`offer`] agreed to.
pub fn parse_answer(answer_sdp: &[u8], codecs: &[AudioCodec], local: &LocalSession) -> Result<MediaParams, SdpError> {
    // Reading an answer is reading an offer and keeping its first usable codec: the answerer
    // lists what it chose first.
    answer(answer_sdp, codecs, local).map(|a| a.params)
}

fn value_attr(key: &str, value: String) -> Attribute {
    Attribute { key: key.into(), value: Some(value) }
}

fn address_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

/// The session-level lines of the hub's SDP.
fn session(local: &LocalSession) -> SessionDescription {
    let ip = local.rtp.ip();
    let connection = ConnectionInformation {
        network_type: "IN".into(),
        address_type: address_type(ip).into(),
        address: Some(Address { address: ip.to_string(), ttl: None, range: None }),
    };
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "hub".into(),
            session_id: local.id,
            session_version: local.version,
            network_type: "IN".into(),
            address_type: address_type(ip).into(),
            unicast_address: ip.to_string(),
        },
        session_name: "hub".into(),
        connection_information: Some(connection),
        time_descriptions: vec![TimeDescription {
            timing: Timing { start_time: 0, stop_time: 0 },
            repeat_times: vec![],
        }],
        ..Default::default()
    }
}

fn render_answer(
    offer: &SessionDescription,
    chosen: usize,
    params: &MediaParams,
    attributes: Vec<Attribute>,
    local: &LocalSession,
) -> String {
    let mut answer = session(local);
    for (i, offered) in offer.media_descriptions.iter().enumerate() {
        let media = if i == chosen {
            let mut formats = vec![params.payload_type.to_string()];
            formats.extend(params.dtmf_payload_type.map(|d| d.to_string()));
            MediaDescription {
                media_name: MediaName {
                    media: "audio".into(),
                    port: RangedPort { value: isize::try_from(local.rtp.port()).unwrap_or(0), range: None },
                    protos: vec!["RTP".into(), "AVP".into()],
                    formats,
                },
                attributes: attributes.clone(),
                ..Default::default()
            }
        } else {
            // Declined (RFC 3264 §6): same media and transport, port 0, the offered formats.
            MediaDescription {
                media_name: MediaName { port: RangedPort { value: 0, range: None }, ..offered.media_name.clone() },
                ..Default::default()
            }
        };
        answer.media_descriptions.push(media);
    }
    answer.marshal()
}

#[cfg(test)]
mod tests;
