//! What the hub's user agent answers statelessly, and what it hands to the call layer.
//!
//! - OPTIONS outside a dialog: `200` with `Allow`, `Accept` and `Supported` (RFC 3261 §11.2),
//!   so Asterisk's qualify and any monitoring see the hub alive;
//! - INVITE from an address not in `[sip] allowed_peers`: `403` (only the configured Asterisk
//!   servers may call the hub);
//! - INVITE from an allowed peer, and every request of a call (ACK, BYE, CANCEL, INFO, NOTIFY,
//!   UPDATE, PRACK, an in-dialog OPTIONS or REFER): [`Reply::forward`], to rsipstack's
//!   transactions and the call layer (which answers `481` when no dialog matches);
//! - a method the hub does not serve (REGISTER, SUBSCRIBE, MESSAGE…): `405` with `Allow`;
//! - an extension method (`intmeth`, `esc02` of RFC 4475): `501` with `Allow`;
//! - malformed requests: what [`classify`](super::message::classify) decided (400, 505, 513…).
//!
//! Pure: bytes in, bytes out, so every rule is tested without a socket.

use std::net::IpAddr;

use rsipstack::sip::Method;

use super::message::{Inbound, RequestHead, error_response, response};

/// The methods this user agent accepts; sent in every `Allow`.
pub const ALLOW: &str = super::call::ALLOW;
/// Body types the user agent will accept (SDP offers, once calls are served).
pub const ACCEPT: &str = "application/sdp";

/// What to do after a message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Bytes to send back to where the message came from.
    pub bytes: Option<Vec<u8>>,
    /// Whether a stream connection must close after `bytes` (its framing is lost).
    pub close: bool,
    /// A request for the transaction and call layer (rsipstack), instead of an answer here.
    pub forward: Option<Box<rsipstack::sip::Request>>,
}

/// The out-of-dialog policy of the hub's user agent.
#[derive(Clone, Debug)]
pub struct Agent {
    allowed_peers: Vec<IpAddr>,
    user_agent: String,
}

impl Agent {
    /// An agent that accepts INVITEs only from `allowed_peers`.
    pub fn new(allowed_peers: Vec<IpAddr>) -> Self {
        Self { allowed_peers, user_agent: format!("hub/{}", env!("CARGO_PKG_VERSION")) }
    }

    /// The answer to one classified message from `peer`.
    pub fn handle(&self, inbound: Inbound, peer: IpAddr) -> Reply {
        match inbound {
            Inbound::Request(request) => self.request(request, peer),
            Inbound::UnknownMethod { method, head } => {
                tracing::debug!(%method, %peer, "extension method refused");
                self.answer(&head, 501, "Not Implemented", &[("Allow", ALLOW)])
            }
            Inbound::Reject(r) => {
                Reply { bytes: Some(error_response(&r.head, r.status, r.reason.reason_phrase())), ..Reply::default() }
            }
            Inbound::CloseConnection { reply, .. } => Reply {
                bytes: reply.map(|r| error_response(&r.head, r.status, r.reason.reason_phrase())),
                close: true,
                forward: None,
            },
            // Responses belong to client transactions; this agent sends no requests yet.
            Inbound::Response(_) | Inbound::Discard { .. } | Inbound::Incomplete => Reply::default(),
        }
    }

    fn request(&self, request: Box<rsipstack::sip::Request>, peer: IpAddr) -> Reply {
        let head = head_of(&request);
        let in_dialog = head.to.as_deref().is_some_and(has_tag);
        match request.method {
            Method::Invite if self.allowed_peers.contains(&peer) => Reply::forward(request),
            Method::Ack
            | Method::Bye
            | Method::Cancel
            | Method::Info
            | Method::Notify
            | Method::Update
            | Method::PRack => Reply::forward(request),
            Method::Options | Method::Refer if in_dialog => Reply::forward(request),
            Method::Options => self.answer(
                &head,
                200,
                "OK",
                &[("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", ""), ("User-Agent", &self.user_agent)],
            ),
            Method::Invite if !self.allowed_peers.contains(&peer) => {
                tracing::warn!(%peer, "INVITE from an address not in sip.allowed_peers refused");
                self.answer(&head, 403, "Forbidden", &[])
            }
            _ => self.answer(&head, 405, "Method Not Allowed", &[("Allow", ALLOW)]),
        }
    }

    fn answer(&self, head: &RequestHead, status: u16, reason: &str, extra: &[(&str, &str)]) -> Reply {
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if !headers.iter().any(|(n, _)| *n == "User-Agent") {
            headers.push(("Server", &self.user_agent));
        }
        Reply { bytes: Some(response(head, status, reason, &headers)), ..Reply::default() }
    }
}

impl Reply {
    fn forward(request: Box<rsipstack::sip::Request>) -> Self {
        Self { forward: Some(request), ..Self::default() }
    }
}

/// Whether a `To` header value carries a tag (the request is inside a dialog).
fn has_tag(to: &str) -> bool {
    let params = to.rsplit_once('>').map_or(to, |(_, p)| p);
    params.split(';').any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}

/// The parts of a parsed request a stateless reply copies.
fn head_of(request: &rsipstack::sip::Request) -> RequestHead {
    let mut head = RequestHead { method: request.method.to_string(), ..Default::default() };
    for h in request.headers.iter() {
        let value = h.value().to_string();
        match h.name().to_ascii_lowercase().as_str() {
            "via" => head.vias.push(value),
            "from" => head.from = Some(value),
            "to" => head.to = Some(value),
            "call-id" => head.call_id = Some(value),
            "cseq" => head.cseq = Some(value),
            _ => {}
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{TransportKind, classify};

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));

    fn request(method: &str) -> Vec<u8> {
        format!(
            "{method} sip:hub@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:hub@127.0.0.1>\r\n\
             Call-ID: c1@127.0.0.1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn reply(bytes: &[u8], peer: IpAddr) -> Reply {
        Agent::new(vec![LOCAL]).handle(classify(bytes, TransportKind::Udp).inbound, peer)
    }

    fn answer(bytes: &[u8], peer: IpAddr) -> String {
        String::from_utf8(reply(bytes, peer).bytes.unwrap_or_default()).unwrap()
    }

    fn forwarded(bytes: &[u8], peer: IpAddr) -> bool {
        let r = reply(bytes, peer);
        r.forward.is_some() && r.bytes.is_none()
    }

    #[test]
    fn options_gets_200_with_allow_accept_and_supported() {
        let a = answer(&request("OPTIONS"), LOCAL);
        assert!(a.starts_with("SIP/2.0 200 OK\r\n"), "{a}");
        for h in [
            "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, UPDATE\r\n",
            "Accept: application/sdp\r\n",
            "Supported: \r\n",
            "CSeq: 1 OPTIONS\r\n",
        ] {
            assert!(a.contains(h), "{h:?} missing: {a}");
        }
        assert!(a.contains("To: <sip:hub@127.0.0.1>;tag="), "{a}");
        assert_eq!(answer(&request("OPTIONS"), LOCAL), a, "a retransmission gets the same answer");
    }

    #[test]
    fn invites_from_strangers_are_forbidden_and_from_peers_go_to_the_call_layer() {
        assert!(answer(&request("INVITE"), STRANGER).starts_with("SIP/2.0 403 Forbidden\r\n"));
        assert!(forwarded(&request("INVITE"), LOCAL));
    }

    #[test]
    fn requests_of_a_call_go_to_the_call_layer_and_others_get_405() {
        for method in ["ACK", "BYE", "CANCEL", "INFO", "NOTIFY", "UPDATE"] {
            assert!(forwarded(&request(method), STRANGER), "{method}");
        }
        let in_dialog = String::from_utf8(request("OPTIONS"))
            .unwrap()
            .replace("To: <sip:hub@127.0.0.1>", "To: <sip:hub@127.0.0.1>;tag=9");
        assert!(forwarded(in_dialog.as_bytes(), LOCAL));
        for method in ["REGISTER", "SUBSCRIBE", "MESSAGE", "REFER"] {
            let a = answer(&request(method), LOCAL);
            assert!(a.starts_with("SIP/2.0 405 ") && a.contains("Allow: INVITE, ACK,"), "{method}: {a}");
        }
        assert!(has_tag("\"A;tag=x\" <sip:a@b>;tag=1") && !has_tag("\"A;tag=x\" <sip:a@b>"));
    }

    #[test]
    fn extension_methods_get_501_and_malformed_requests_the_classifier_status() {
        assert!(answer(&request("FOO"), LOCAL).starts_with("SIP/2.0 501 Not Implemented\r\n"));
        let bad_version = String::from_utf8(request("OPTIONS")).unwrap().replacen("SIP/2.0", "SIP/7.0", 1);
        assert!(
            answer(bad_version.as_bytes(), LOCAL).starts_with("SIP/2.0 505 "),
            "{}",
            answer(bad_version.as_bytes(), LOCAL)
        );
    }
}
