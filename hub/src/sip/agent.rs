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
    fn forward(mut request: Box<rsipstack::sip::Request>) -> Self {
        rfc2543_compat(&mut request);
        Self { forward: Some(request), ..Self::default() }
    }
}

/// Gives a request from an RFC 2543 peer what RFC 3261 transactions and dialogs key on:
/// a Via branch and a From tag (RFC 4475 §3.4.1 `inv2543`: "accept it for backward
/// compatibility"). Both are derived from the request itself, so a retransmission, its ACK
/// and its CANCEL get the same ones (RFC 3261 §17.2.3 matches them by what we hash here).
/// An INVITE without Contact (optional in RFC 2543) gets its From URI as the remote target,
/// where RFC 2543 sends later requests.
fn rfc2543_compat(request: &mut rsipstack::sip::Request) {
    use rsipstack::sip::Header;
    use std::hash::{Hash, Hasher};
    let value = |names: &[&str]| {
        request
            .headers
            .iter()
            .find(|h| names.iter().any(|n| h.name().eq_ignore_ascii_case(n)))
            .map(|h| h.value().to_owned())
            .unwrap_or_default()
    };
    let (call_id, cseq, from) = (value(&["Call-ID", "i"]), value(&["CSeq"]), value(&["From", "f"]));
    let seq = cseq.split_whitespace().next().unwrap_or("").to_owned();
    let digest = |parts: &[&str]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let mut top_via = true;
    for header in request.headers.iter_mut() {
        match header {
            Header::Via(via) if top_via => {
                top_via = false;
                let text = via.value().to_owned();
                if !text.to_ascii_lowercase().contains("branch=z9hg4bk") {
                    let sent_by = text.split(';').next().unwrap_or("").trim().to_owned();
                    *header = Header::Via(
                        format!("{text};branch=z9hG4bK2543{}", digest(&[&call_id, &seq, &sent_by, &from])).into(),
                    );
                }
            }
            Header::From(f) if !has_tag(f.value()) => {
                let text = f.value().to_owned();
                *header = Header::From(format!("{text};tag=2543{}", digest(&[&call_id, &text])).into());
            }
            _ => {}
        }
    }
    let has_contact = request.headers.iter().any(|h| h.name().eq_ignore_ascii_case("Contact") || h.name() == "m");
    if request.method == Method::Invite && !has_contact {
        let uri = from.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(u, _)| u.to_owned());
        let uri = uri.unwrap_or_else(|| from.split(';').next().unwrap_or("").trim().to_owned());
        request.headers.push(Header::Contact(format!("<{uri}>").into()));
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
    fn an_rfc2543_request_gets_a_stable_branch_and_from_tag() {
        let old = "INVITE sip:UserB@example.com SIP/2.0\r\nVia: SIP/2.0/UDP iftgw.example.com\r\n\
                   From: <sip:+13035551111@ift.client.example.net;user=phone>\r\nTo: sip:b@example.net\r\n\
                   Call-ID: inv2543.1717@x\r\nCSeq: 56 INVITE\r\nContent-Length: 0\r\n\r\n";
        let forwarded = |text: &str| {
            let r = reply(text.as_bytes(), LOCAL).forward.expect("forwarded");
            let get = |n: &str| r.headers.iter().find(|h| h.name() == n).unwrap().value().to_owned();
            (get("Via"), get("From"))
        };
        let (via, from) = forwarded(old);
        assert!(via.starts_with("SIP/2.0/UDP iftgw.example.com;branch=z9hG4bK2543"), "{via}");
        assert!(from.starts_with("<sip:+13035551111@ift.client.example.net;user=phone>;tag=2543"), "{from}");
        assert_eq!(forwarded(old), (via.clone(), from.clone()), "a retransmission matches");
        let ack = old.replace("INVITE sip", "ACK sip").replace("56 INVITE", "56 ACK");
        assert_eq!(forwarded(&ack).0, via, "its ACK belongs to the same transaction");
        let modern = old.replace("iftgw.example.com\r\n", "iftgw.example.com;branch=z9hG4bK77\r\n");
        assert_eq!(forwarded(&modern).0, "SIP/2.0/UDP iftgw.example.com;branch=z9hG4bK77");
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
