use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/fixtures/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const ALL: [&str; 50] = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
    "badbranch",
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
    "test",
];

fn on(name: &str, transport: TransportKind) -> Classified {
    classify(&fixture(name), transport)
}

fn request(name: &str) -> rsip::Request {
    match on(name, TransportKind::Udp).inbound {
        Inbound::Request(r) => *r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

fn response(name: &str) -> rsip::Response {
    match on(name, TransportKind::Udp).inbound {
        Inbound::Response(r) => *r,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

fn rejection(name: &str, transport: TransportKind) -> Rejection {
    match on(name, transport).inbound {
        Inbound::Reject(r) => r,
        other => panic!("{name}: expected a rejection, got {other:?}"),
    }
}

fn header<'a>(message: &'a impl rsip::HasHeaders, name: &str) -> Vec<&'a str> {
    message.headers().iter().filter(|h| h.name().eq_ignore_ascii_case(name)).map(|h| h.value().trim()).collect()
}

/// A fixture that must be accepted as a request with the given method, over UDP and TCP.
macro_rules! accepts {
    ($name:ident, $method:ident) => {
        #[test]
        fn $name() {
            let r = request(stringify!($name));
            assert_eq!(r.method, rsip::Method::$method);
            // These fixtures all carry Content-Length, so a stream takes them too.
            match on(stringify!($name), TransportKind::Tcp).inbound {
                Inbound::Request(t) => assert_eq!(t.method, r.method),
                other => panic!("over TCP: {other:?}"),
            }
        }
    };
}

/// A fixture that must be rejected with `status` for `reason`, over UDP and TCP alike.
macro_rules! rejects {
    ($name:ident, $status:expr, $reason:ident) => {
        #[test]
        fn $name() {
            for transport in [TransportKind::Udp, TransportKind::Tcp] {
                let r = rejection(stringify!($name), transport);
                assert_eq!((r.status, r.reason), ($status, MessageError::$reason));
                let reply = String::from_utf8(error_response(&r.head, r.status, "x")).unwrap();
                assert!(reply.starts_with(&format!("SIP/2.0 {} x\r\n", $status)));
                assert!(reply.contains("\r\nVia: "), "{reply}");
            }
        }
    };
}

#[test]
fn wsinv() {
    let r = request("wsinv");
    assert_eq!(r.method, rsip::Method::Invite);
    assert_eq!(r.uri.auth.as_ref().unwrap().user, "vivekg");
    // Unfolded: continuation lines joined with one space.
    assert_eq!(header(&r, "CSeq"), ["0009 INVITE"]);
    assert_eq!(header(&r, "Max-Forwards"), ["0068"]);
    assert_eq!(header(&r, "NewFangledHeader"), ["newfangled value continued newfangled value"]);
    assert_eq!(header(&r, "UnknownHeaderWithUnusualValue"), [";;,,;;,;"]);
    assert!(header(&r, "To")[0].ends_with("tag    = 1918181833n"));
    assert!(header(&r, "From")[0].contains("tag = 98asjd8"));
    assert_eq!(header(&r, "Via").len(), 2);
    assert_eq!(r.body.len(), 150);
}

#[test]
fn intmeth() {
    let name = "!interesting-Method0123456789_*+`.%indeed'~";
    match on("intmeth", TransportKind::Udp).inbound {
        Inbound::UnknownMethod { method, head } => {
            assert_eq!(method, name);
            assert_eq!(head.cseq.as_deref(), Some(format!("139122385 {name}").as_str()));
            let reply = String::from_utf8(error_response(&head, 501, "Not Implemented")).unwrap();
            assert!(reply.starts_with("SIP/2.0 501 Not Implemented\r\n"));
            assert!(reply.contains(";tag="));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn esc01() {
    let r = request("esc01");
    // Kept escaped, never unescaped (twice or at all) by the message layer.
    assert_eq!(r.uri.auth.as_ref().unwrap().user, "sips%3Auser%40example.com");
    assert!(header(&r, "Contact")[0].contains(";n%61me=v%61lue%25%34%31"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn escnull() {
    let r = request("escnull");
    assert_eq!(r.method, rsip::Method::Register);
    let contacts = header(&r, "Contact");
    assert_eq!(contacts.len(), 2);
    assert_ne!(contacts[0], contacts[1]);
    assert!(header(&r, "To")[0].contains("null-%00-null"));
}

#[test]
fn esc02() {
    match on("esc02", TransportKind::Udp).inbound {
        Inbound::UnknownMethod { method, head } => {
            assert_eq!(method, "RE%47IST%45R");
            assert_eq!(head.to.as_deref(), Some("\"%Z%45\" <sip:resource@example.com>"));
        }
        other => panic!("{other:?}"),
    }
}

accepts!(lwsdisp, Options);
accepts!(longreq, Invite);

#[test]
fn dblreq() {
    let bytes = fixture("dblreq");
    let c = classify(&bytes, TransportKind::Udp);
    assert_eq!(c.consumed, bytes.len());
    match c.inbound {
        Inbound::Request(r) => {
            assert_eq!(r.method, rsip::Method::Register);
            assert!(r.body.is_empty(), "trailing INVITE octets ignored");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn semiuri() {
    let r = request("semiuri");
    let auth = r.uri.auth.as_ref().unwrap();
    assert_eq!(auth.user, "user;par=u%40example.net");
    assert_eq!(r.uri.host_with_port.to_string(), "example.com");
}

accepts!(transports, Options);

#[test]
fn mpart01() {
    let r = request("mpart01");
    let length: usize = header(&r, "Content-Length")[0].parse().unwrap();
    assert_eq!(r.body.len(), length);
    assert!(r.body.contains(&0), "binary part with NULs kept");
}

#[test]
fn unreason() {
    let r = response("unreason");
    assert_eq!(r.status_code.code(), 200);
}

#[test]
fn noreason() {
    let r = response("noreason");
    assert_eq!(r.status_code.code(), 100);
}

rejects!(badinv01, 400, BadVia);

#[test]
fn clerr() {
    let r = rejection("clerr", TransportKind::Udp);
    assert_eq!((r.status, r.reason), (400, MessageError::ShortBody));
    let mut bytes = fixture("clerr");
    let c = classify(&bytes, TransportKind::Tcp);
    assert!(matches!(c.inbound, Inbound::Incomplete), "{c:?}");
    assert_eq!(c.consumed, 0);
    // The rest arrives: the stream message completes.
    bytes.extend_from_slice(&[b'x'; 9999]);
    let c = classify(&bytes, TransportKind::Tcp);
    assert!(matches!(c.inbound, Inbound::Request(_)), "{c:?}");
    assert!(c.consumed < bytes.len());
}

#[test]
fn ncl() {
    let r = rejection("ncl", TransportKind::Udp);
    assert_eq!((r.status, r.reason), (400, MessageError::BadContentLength));
    match on("ncl", TransportKind::Tcp) {
        Classified { inbound: Inbound::CloseConnection { reason, reply: Some(reply) }, .. } => {
            assert_eq!(reason, MessageError::BadContentLength);
            assert_eq!(reply.status, 400);
        }
        other => panic!("{other:?}"),
    }
}

rejects!(scalar02, 400, BadCSeq);

#[test]
fn scalarlg() {
    assert!(matches!(on("scalarlg", TransportKind::Udp).inbound, Inbound::Discard { reason: MessageError::BadCSeq }));
}

rejects!(quotbal, 400, UnterminatedQuote);
rejects!(ltgtruri, 400, BadRequestUri);
rejects!(lwsruri, 400, BadRequestLine);
rejects!(lwsstart, 400, BadRequestLine);
// The RFC allows ignoring the trailing SP; we reject: one request-line grammar, no guessing.
rejects!(trws, 400, BadRequestLine);
// The RFC allows ignoring the escaped headers; we reject.
rejects!(escruri, 400, BadRequestUri);

#[test]
fn baddate() {
    // The hub never uses Date, so the bad time zone is ignored.
    let r = request("baddate");
    assert_eq!(header(&r, "Date"), ["Fri, 01 Jan 2010 16:00:00 EST"]);
}

rejects!(regbadct, 400, BadAddress);
rejects!(badaspec, 400, BadUri);

#[test]
fn baddn() {
    // As archived the header section never ends: over UDP 400, over TCP wait.
    let r = rejection("baddn", TransportKind::Udp);
    assert_eq!((r.status, r.reason), (400, MessageError::UnterminatedHeaders));
    assert!(matches!(on("baddn", TransportKind::Tcp).inbound, Inbound::Incomplete));
    // With the empty line added, the display names themselves get the 400.
    let mut bytes = fixture("baddn");
    bytes.extend_from_slice(b"\r\n");
    match classify(&bytes, TransportKind::Udp).inbound {
        Inbound::Reject(r) => assert_eq!((r.status, r.reason), (400, MessageError::BadDisplayName)),
        other => panic!("{other:?}"),
    }
}

rejects!(badvers, 505, VersionNotSupported);
rejects!(mismatch01, 400, CSeqMethodMismatch);

#[test]
fn mismatch02() {
    // Unknown method: handed to the UA, which answers 501 (the preferred outcome).
    match on("mismatch02", TransportKind::Udp).inbound {
        Inbound::UnknownMethod { method, .. } => assert_eq!(method, "NEWMETHOD"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bigcode() {
    assert!(matches!(
        on("bigcode", TransportKind::Udp).inbound,
        Inbound::Discard { reason: MessageError::BadStatusLine }
    ));
}

rejects!(badbranch, 400, BareBranch);

#[test]
fn insuf() {
    let r = rejection("insuf", TransportKind::Udp);
    assert_eq!((r.status, r.reason), (400, MessageError::MissingHeader));
    assert_eq!(r.head.call_id, None);
    let reply = String::from_utf8(error_response(&r.head, 400, "Bad Request")).unwrap();
    assert!(reply.contains("CSeq: 193942 INVITE\r\n"));
}

rejects!(unkscm, 416, UnsupportedUriScheme);
rejects!(novelsc, 416, UnsupportedUriScheme);
accepts!(unksm2, Register);
accepts!(bext01, Options);
accepts!(invut, Invite);
accepts!(regaut01, Register);
rejects!(multi01, 400, DuplicateHeader);

#[test]
fn mcl01() {
    let r = rejection("mcl01", TransportKind::Udp);
    assert_eq!(r.reason, MessageError::ConflictingContentLength);
    assert!(matches!(
        on("mcl01", TransportKind::Tcp).inbound,
        Inbound::CloseConnection { reason: MessageError::ConflictingContentLength, reply: Some(_) }
    ));
}

#[test]
fn bcast() {
    // Parsed; discarding it is the UA's call (it has no matching transaction).
    let r = response("bcast");
    assert_eq!(r.status_code.code(), 200);
    assert!(header(&r, "Via").iter().any(|v| v.contains("255.255.255.255")));
}

accepts!(zeromf, Options);

#[test]
fn cparam01() {
    let r = request("cparam01");
    assert_eq!(header(&r, "Contact"), ["sip:+19725552222@gw1.example.net;unknownparam"]);
}

#[test]
fn cparam02() {
    let r = request("cparam02");
    assert!(header(&r, "Contact")[0].contains(";unknownparam>"));
}

#[test]
fn regescrt() {
    let r = request("regescrt");
    assert!(header(&r, "Contact")[0].contains("?Route=%3Csip:sip.example.com%3E>"));
}

accepts!(sdp01, Invite);

#[test]
fn inv2543() {
    let bytes = fixture("inv2543");
    let r = request("inv2543");
    // No Content-Length over UDP: the body is the rest of the datagram.
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(r.body, bytes[start..]);
    assert!(!r.body.is_empty());
    assert!(matches!(
        on("inv2543", TransportKind::Tcp).inbound,
        Inbound::CloseConnection { reason: MessageError::MissingContentLength, .. }
    ));
}

#[test]
fn test_dat() {
    // Not in the RFC. No SIP version, a header line without a colon and no Via: nothing to
    // answer, so it is discarded over UDP and closes a stream.
    assert!(matches!(on("test", TransportKind::Udp).inbound, Inbound::Discard { reason: MessageError::BadHeaderLine }));
    assert!(matches!(on("test", TransportKind::Tcp).inbound, Inbound::CloseConnection { .. }));
}

/// Why the layer exists: what `rsipstack` alone accepts that RFC 4475 says to refuse, and
/// the valid messages it cannot represent.
#[test]
fn rsipstack_alone_is_too_liberal_and_too_strict() {
    let alone = |name: &str| rsip::SipMessage::try_from(fixture(name).as_slice());
    for name in [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "scalarlg",
        "quotbal",
        "ltgtruri",
        "trws",
        "escruri",
        "regbadct",
        "badaspec",
        "badvers",
        "mismatch01",
        "badbranch",
        "insuf",
        "multi01",
        "mcl01",
    ] {
        assert!(alone(name).is_ok(), "{name}: rsipstack now refuses it; update the table");
    }
    for name in ["intmeth", "esc02", "mismatch02"] {
        assert!(alone(name).is_err(), "{name}: rsipstack now takes extension methods");
    }
    // semiuri: the user part is lost; inv2543: the body is dropped.
    match alone("semiuri") {
        Ok(rsip::SipMessage::Request(r)) => assert!(r.uri.auth.is_none()),
        other => panic!("{other:?}"),
    }
    match alone("inv2543") {
        Ok(rsip::SipMessage::Request(r)) => assert!(r.body.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_frames_back_to_back_messages_and_keepalives() {
    let first = fixture("zeromf");
    let second = fixture("esc01");
    let mut buffer = b"\r\n\r\n".to_vec();
    buffer.extend_from_slice(&first);
    buffer.extend_from_slice(&second);
    let c = classify(&buffer, TransportKind::Tcp);
    assert!(matches!(c.inbound, Inbound::Request(_)));
    assert_eq!(c.consumed, 4 + first.len());
    let c = classify(&buffer[c.consumed..], TransportKind::Tcp);
    assert!(matches!(c.inbound, Inbound::Request(_)));
    assert_eq!(c.consumed, second.len());
    let c = classify(b"\r\n\r\n", TransportKind::Tcp);
    assert!(matches!(c.inbound, Inbound::Incomplete));
    assert_eq!(c.consumed, 4);
}

#[test]
fn oversized_stream_message_closes_the_connection() {
    let mut big = b"OPTIONS sip:a@b SIP/2.0\r\nX: ".to_vec();
    big.resize(MAX_MESSAGE_SIZE + 10, b'a');
    assert!(matches!(
        classify(&big, TransportKind::Tcp).inbound,
        Inbound::CloseConnection { reason: MessageError::TooLarge, .. }
    ));
    let head = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n";
    assert!(matches!(
        classify(head, TransportKind::Tcp).inbound,
        Inbound::CloseConnection { reason: MessageError::TooLarge, .. }
    ));
}

#[test]
fn error_response_adds_a_to_tag_once_and_copies_the_head() {
    let r = rejection("badinv01", TransportKind::Udp);
    let reply = String::from_utf8(error_response(&r.head, 400, "Bad\r\nInjected: 1")).unwrap();
    assert!(reply.starts_with("SIP/2.0 400 Bad  Injected: 1\r\n"));
    assert!(reply.contains("\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"));
    assert!(reply.contains("\r\nTo: sip:j.user@example.com;tag="));
    assert!(reply.contains("\r\nFrom: sip:caller@example.net;tag=134161461246\r\n"));
    assert!(reply.contains("\r\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\r\n"));
    assert!(reply.contains("\r\nCSeq: 8 INVITE\r\n"));
    assert!(reply.ends_with("Content-Length: 0\r\n\r\n"));
    // Same request, same tag; a To that has a tag keeps it.
    assert_eq!(error_response(&r.head, 400, "x"), error_response(&r.head, 400, "x"));
    let mut tagged = r.head.clone();
    tagged.to = Some("<sip:a@b>;tag=abc".into());
    let reply = String::from_utf8(error_response(&tagged, 400, "x")).unwrap();
    assert!(reply.contains("\r\nTo: <sip:a@b>;tag=abc\r\n"));
}

/// Every fixture truncated at every offset, and a few thousand seeded byte flips: never a
/// panic, always a verdict, never more consumed than given.
#[test]
fn truncated_and_flipped_fixtures_never_panic() {
    let check = |bytes: &[u8]| {
        // rsipstack on its own must not panic either (the module docs rely on it).
        let _ = rsip::SipMessage::try_from(bytes);
        for transport in [TransportKind::Udp, TransportKind::Tcp] {
            let c = classify(bytes, transport);
            assert!(c.consumed <= bytes.len());
            if transport == TransportKind::Udp {
                assert_eq!(c.consumed, bytes.len());
                assert!(!matches!(c.inbound, Inbound::Incomplete));
            }
        }
    };
    let fixtures: Vec<Vec<u8>> = ALL.iter().map(|n| fixture(n)).collect();
    for bytes in &fixtures {
        for end in 0..=bytes.len() {
            check(&bytes[..end]);
        }
    }
    // xorshift64*, seeded: reproducible without a dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for _ in 0..4000 {
        let mut bytes = fixtures[(next() % fixtures.len() as u64) as usize].clone();
        if bytes.is_empty() {
            continue;
        }
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        check(&bytes);
    }
}
