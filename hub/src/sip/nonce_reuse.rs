//! Digest nonce reuse for the hub's REGISTER refreshes (RFC 3261 §22.4, RFC 2617 §3.2.2).
//!
//! rsipstack's `Registration` sends every refresh without credentials, so each one costs a
//! 401 round trip. A registrar may let a client reuse its nonce until it expires; this
//! inspector remembers the last REGISTER challenge and answers it ahead of time on the next
//! REGISTER, with the nonce count raised by one and a new client nonce. When the registrar has
//! let the nonce expire it answers `401` with `stale=true` (Asterisk's nonces live 32 s, so a
//! refresh every few minutes always meets one), and rsipstack answers that challenge with the
//! fresh nonce; a challenge without `stale` to a reused nonce is answered the same way, once,
//! so a registrar that does not allow reuse costs what it cost before.
//!
//! Only REGISTER is touched: calls out keep rsipstack's challenge-per-request handling.

use std::sync::Mutex;

use rand::Rng;
use rsipstack::dialog::authenticate::compute_digest;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::headers::auth::{Algorithm, AuthQop, Qop};
use rsipstack::sip::headers::typed::{Authorization, WwwAuthenticate};
use rsipstack::sip::message::HeadersExt;
use rsipstack::sip::{Header, Method, Request, Response, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// The largest nonce count sent; past it the next REGISTER goes without credentials and gets a
/// fresh nonce (rsipstack's nonce count is one byte).
const MAX_NONCE_COUNT: u8 = 250;

/// Remembers the registrar's last challenge and answers it ahead of time on later REGISTERs.
pub struct NonceReuse {
    username: String,
    password: String,
    state: Mutex<Option<Cached>>,
}

struct Cached {
    challenge: WwwAuthenticate,
    /// The nonce count used last with this nonce.
    nc: u8,
    /// The branch and header of the last request answered ahead of time, so that a
    /// retransmission carries the same credentials.
    last: Option<(String, Header)>,
}

impl NonceReuse {
    /// Credentials for the registrar (the same the registration uses).
    pub fn new(username: &str, password: &str) -> Self {
        Self { username: username.to_owned(), password: password.to_owned(), state: Mutex::new(None) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a `401` challenge to a REGISTER.
    fn observe(&self, response: &Response) {
        if response.status_code != StatusCode::Unauthorized || cseq_method(&response.headers) != Some(Method::Register)
        {
            return;
        }
        let Some(challenge) = response.www_authenticate_header().and_then(|h| h.typed().ok()) else {
            return;
        };
        *self.lock() = Some(Cached { challenge, nc: 0, last: None });
    }

    /// Adds credentials for the remembered nonce to a REGISTER that has none, or notes the
    /// nonce count of credentials rsipstack computed itself.
    fn prepare(&self, request: &mut Request) {
        if request.method != Method::Register {
            return;
        }
        let mut state = self.lock();
        let Some(cached) = state.as_mut() else { return };
        if let Some(existing) = request.headers.iter().find_map(|h| match h {
            Header::Authorization(a) => Authorization::parse(a.value()).ok(),
            _ => None,
        }) {
            // rsipstack answered a challenge (nonce count 1); continue from there.
            if existing.nonce == cached.challenge.nonce
                && let Some(AuthQop::Auth { nc, .. } | AuthQop::AuthInt { nc, .. }) = existing.qop
            {
                cached.nc = cached.nc.max(nc);
            }
            return;
        }
        let branch =
            request.via_header().ok().and_then(|v| v.typed().ok()).and_then(|v| v.branch().map(|b| b.to_string()));
        if let (Some(branch), Some((last_branch, header))) = (&branch, &cached.last)
            && branch == last_branch
        {
            request.headers.push(header.clone());
            return;
        }
        if cached.nc >= MAX_NONCE_COUNT {
            *state = None;
            return;
        }
        cached.nc += 1;
        let header: Header = self.authorization(request, &cached.challenge, cached.nc).into();
        cached.last = branch.map(|b| (b, header.clone()));
        request.headers.push(header);
    }

    fn authorization(&self, request: &Request, challenge: &WwwAuthenticate, nc: u8) -> Authorization {
        let cnonce: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(16).map(char::from).collect();
        let qop = match challenge.qop {
            Some(Qop::AuthInt) => Some(AuthQop::AuthInt { cnonce, nc }),
            Some(Qop::Auth) => Some(AuthQop::Auth { cnonce, nc }),
            None => None,
        };
        let algorithm = challenge.algorithm.unwrap_or(Algorithm::Md5);
        let response = compute_digest(
            &self.username,
            &self.password,
            &challenge.realm,
            &challenge.nonce,
            &request.method,
            &request.uri.to_string(),
            algorithm,
            qop.as_ref(),
        );
        Authorization {
            scheme: challenge.scheme.clone(),
            username: self.username.clone(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: request.uri.clone(),
            response,
            algorithm: Some(algorithm),
            opaque: challenge.opaque.clone(),
            qop,
        }
    }
}

fn cseq_method(headers: &rsipstack::sip::Headers) -> Option<Method> {
    headers.iter().find_map(|h| match h {
        Header::CSeq(c) => c.typed().ok().map(|c| c.method),
        _ => None,
    })
}

impl MessageInspector for NonceReuse {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        match msg {
            SipMessage::Request(mut request) => {
                self.prepare(&mut request);
                SipMessage::Request(request)
            }
            other => other,
        }
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Response(response) = &msg {
            self.observe(response);
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_request(text: &str) -> Request {
        match SipMessage::try_from(text.replace('\n', "\r\n")).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("not a request"),
        }
    }

    fn register(branch: &str) -> Request {
        parse_request(&format!(
            "REGISTER sip:pbx.test SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\n\
             From: <sip:hub@pbx.test>;tag=a\n\
             To: <sip:hub@pbx.test>\n\
             Call-ID: reg-1\n\
             CSeq: 3 REGISTER\n\
             Content-Length: 0\n\n"
        ))
    }

    fn challenge() -> Response {
        match SipMessage::try_from(
            "SIP/2.0 401 Unauthorized\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKone\r\n\
             From: <sip:hub@pbx.test>;tag=a\r\n\
             To: <sip:hub@pbx.test>;tag=b\r\n\
             Call-ID: reg-1\r\n\
             CSeq: 1 REGISTER\r\n\
             WWW-Authenticate: Digest realm=\"pbx.test\", nonce=\"n0nce\", qop=\"auth\", opaque=\"op\"\r\n\
             Content-Length: 0\r\n\r\n",
        )
        .unwrap()
        {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => panic!("not a response"),
        }
    }

    fn authorization(request: &Request) -> Option<Authorization> {
        request.headers.iter().find_map(|h| match h {
            Header::Authorization(a) => Some(Authorization::parse(a.value()).unwrap()),
            _ => None,
        })
    }

    #[test]
    fn nothing_is_added_before_a_challenge() {
        let reuse = NonceReuse::new("hub", "pw");
        let mut r = register("z9hG4bKa");
        reuse.prepare(&mut r);
        assert!(authorization(&r).is_none());
    }

    #[test]
    fn the_next_register_answers_the_last_challenge_with_a_higher_nonce_count() {
        let reuse = NonceReuse::new("hub", "pw");
        reuse.observe(&challenge());
        let mut first = register("z9hG4bKa");
        reuse.prepare(&mut first);
        let a = authorization(&first).expect("credentials added");
        assert_eq!((a.nonce.as_str(), a.realm.as_str(), a.opaque.as_deref()), ("n0nce", "pbx.test", Some("op")));
        let Some(AuthQop::Auth { nc, cnonce }) = &a.qop else { panic!("qop=auth expected") };
        assert_eq!(*nc, 1);
        // The digest is the one a registrar computes from the same inputs.
        let expected = compute_digest(
            "hub",
            "pw",
            "pbx.test",
            "n0nce",
            &Method::Register,
            "sip:pbx.test",
            Algorithm::Md5,
            Some(&AuthQop::Auth { cnonce: cnonce.clone(), nc: 1 }),
        );
        assert_eq!(a.response, expected);

        // A retransmission (same branch) carries the same credentials.
        let mut again = register("z9hG4bKa");
        reuse.prepare(&mut again);
        assert_eq!(authorization(&again), Some(a.clone()));

        let mut refresh = register("z9hG4bKb");
        reuse.prepare(&mut refresh);
        let b = authorization(&refresh).unwrap();
        let Some(AuthQop::Auth { nc, cnonce: c2 }) = &b.qop else { panic!() };
        assert_eq!(*nc, 2);
        assert_ne!(c2, cnonce, "a new client nonce each time");
    }

    #[test]
    fn credentials_rsipstack_computed_are_kept_and_counted() {
        let reuse = NonceReuse::new("hub", "pw");
        reuse.observe(&challenge());
        let mut answered = register("z9hG4bKc");
        answered.headers.push(
            Authorization {
                scheme: rsipstack::sip::headers::auth::Scheme::Digest,
                username: "hub".into(),
                realm: "pbx.test".into(),
                nonce: "n0nce".into(),
                uri: answered.uri.clone(),
                response: "x".into(),
                algorithm: Some(Algorithm::Md5),
                opaque: None,
                qop: Some(AuthQop::Auth { cnonce: "c".into(), nc: 1 }),
            }
            .into(),
        );
        let before = answered.clone();
        reuse.prepare(&mut answered);
        assert_eq!(answered, before, "rsipstack's own answer is left alone");
        let mut next = register("z9hG4bKd");
        reuse.prepare(&mut next);
        assert!(matches!(authorization(&next).unwrap().qop, Some(AuthQop::Auth { nc: 2, .. })));
    }

    #[test]
    fn other_requests_and_responses_are_left_alone() {
        let reuse = NonceReuse::new("hub", "pw");
        reuse.observe(&challenge());
        let mut invite = parse_request(
            "INVITE sip:100@pbx.test SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKi\n\
             From: <sip:hub@pbx.test>;tag=a\n\
             To: <sip:100@pbx.test>\n\
             Call-ID: inv-1\n\
             CSeq: 1 INVITE\n\
             Content-Length: 0\n\n",
        );
        reuse.prepare(&mut invite);
        assert!(authorization(&invite).is_none());
        // A 401 to an INVITE does not replace the REGISTER challenge.
        let mut to_invite = challenge();
        to_invite.headers.retain(|h| !matches!(h, Header::CSeq(_)));
        to_invite.headers.push(Header::CSeq(rsipstack::sip::headers::CSeq::new("1 INVITE")));
        to_invite.headers.retain(|h| !matches!(h, Header::WwwAuthenticate(_)));
        reuse.observe(&to_invite);
        let mut r = register("z9hG4bKe");
        reuse.prepare(&mut r);
        assert_eq!(authorization(&r).unwrap().nonce, "n0nce");
    }
}
