//! SIP over TLS (RFC 3261 §26.2): a rustls client (the Debian SIPp has no TLS) talks to the hub's
//! TLS listener: OPTIONS, a call answered and then hung up by an operator, whose BYE comes back
//! over the same TLS connection; a client that speaks plain text to the TLS port is dropped
//! alone. Debian's baresip calls over TLS too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Hub, WAIT, event_field, run, text};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A certificate for 127.0.0.1 and localhost, written to `dir`; returns its DER and the paths.
fn certificate(dir: &std::path::Path) -> (Vec<u8>, String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("generate");
    let (cert, key) = (dir.join("sip-cert.pem"), dir.join("sip-key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (certified.cert.der().to_vec(), cert.display().to_string(), key.display().to_string())
}

fn hub_with_tls(dir: &std::path::Path) -> (Hub, SocketAddr, Vec<u8>) {
    let (der, cert, key) = certificate(dir);
    let env = [
        ("HUB_SIP__ENABLED", "true"),
        ("HUB_SIP__TLS_LISTEN", "127.0.0.1:0"),
        ("HUB_SIP__TLS_CERT", cert.as_str()),
        ("HUB_SIP__TLS_KEY", key.as_str()),
    ];
    let hub = Hub::start(dir, &[], &env);
    let line = hub.wait_for("SIP user agent listening");
    let tls = event_field(&line, "SIP user agent listening", "tls").expect("a tls address").parse().unwrap();
    (hub, tls, der)
}

fn connect(addr: SocketAddr, der: &[u8]) -> Tls {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(der.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one SIP message (headers, then Content-Length bytes of body).
fn read_message(stream: &mut BufReader<&mut Tls>) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = stream.read_line(&mut line).expect("read a SIP message over TLS");
        assert!(n > 0, "the hub closed the TLS connection; got so far: {head}");
        if line == "\r\n" && head.is_empty() {
            continue; // keep-alive
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = header(&head, "Content-Length").map(|v| v.parse::<usize>().unwrap()).unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head + String::from_utf8(body).unwrap().as_str()
}

fn header(message: &str, name: &str) -> Option<String> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn request(method: &str, local: SocketAddr, call: &str, cseq: u32, to_tag: Option<&str>, body: &str) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let content_type = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".into() };
    format!(
        "{method} sip:ivr@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-{call}-{cseq}-{method};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tester@127.0.0.1>;tag=tester-{call}\r\n\
         To: <sip:ivr@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call}@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:tester@{local};transport=tls>\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_call_over_tls_is_answered_and_the_hubs_bye_comes_back_over_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr, der) = hub_with_tls(dir.path());
    let table = text(&run(dir.path(), &["sip", "status"], &[])).0;
    assert!(table.contains(&format!("and tls {addr}")), "{table}");

    // A neighbour that speaks plain SIP to the TLS port is dropped, alone.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    plain.write_all(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n").unwrap();

    let mut tls = connect(addr, &der);
    let local = tls.sock.local_addr().unwrap();
    tls.write_all(request("OPTIONS", local, "tls-options", 1, None, "").as_bytes()).unwrap();
    let answer = read_message(&mut BufReader::new(&mut tls));
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert!(header(&answer, "Via").unwrap().starts_with("SIP/2.0/TLS"), "{answer}");
    let mut rest = Vec::new();
    let closed = plain.read_to_end(&mut rest);
    assert!(closed.is_ok() || rest.is_empty(), "the plain-text client is not answered in plain text: {rest:?}");
    assert!(!String::from_utf8_lossy(&rest).contains("SIP/2.0 200"));

    let sdp = "v=0\r\no=tester 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    tls.write_all(request("INVITE", local, "tls-call", 1, None, sdp).as_bytes()).unwrap();
    let ok = loop {
        let m = read_message(&mut BufReader::new(&mut tls));
        if m.starts_with("SIP/2.0 1") {
            continue;
        }
        break m;
    };
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}\n{}", hub.log().join("\n"));
    assert!(ok.contains("PCMU/8000"), "{ok}");
    let to_tag = header(&ok, "To").unwrap().split(";tag=").nth(1).unwrap().to_string();
    tls.write_all(request("ACK", local, "tls-call", 1, Some(&to_tag), "").as_bytes()).unwrap();
    let up = hub.wait_for("call up");

    // An operator hangs up: the hub's BYE travels over the caller's TLS connection.
    let id = event_field(&up, "call up", "call").unwrap();
    let out = run(dir.path(), &["sip", "hangup", &id], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let bye = read_message(&mut BufReader::new(&mut tls));
    assert!(bye.starts_with("BYE sip:tester@"), "{bye}");
    assert!(header(&bye, "Via").unwrap().starts_with("SIP/2.0/TLS"), "{bye}");
    let via = header(&bye, "Via").unwrap();
    let cseq = header(&bye, "CSeq").unwrap();
    let reply = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "Call-ID").unwrap()
    );
    tls.write_all(reply.as_bytes()).unwrap();
    let ended = hub.wait_for("call ended");
    assert_eq!(event_field(&ended, "call ended", "call").as_deref(), Some(id.as_str()), "{ended}");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let listing = text(&run(dir.path(), &["sip", "calls", "--json"], &[])).0;
        if listing.trim() == "[]" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the call stayed listed: {listing}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_certificate_without_its_key_or_an_unreadable_one_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = certificate(dir.path());
    let out = run(dir.path(), &["config", "check"], &[("HUB_SIP__TLS_CERT", cert.as_str())]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("sip.tls_key: tls_cert is set but tls_key is not"), "{:?}", text(&out));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem").unwrap();
    let garbage = garbage.display().to_string();
    let out = run(
        dir.path(),
        &["config", "check"],
        &[("HUB_SIP__TLS_CERT", garbage.as_str()), ("HUB_SIP__TLS_KEY", garbage.as_str())],
    );
    assert_ne!(out.status.code(), Some(0), "{:?}", text(&out));
    let err = text(&out).1;
    assert!(err.contains("sip.tls_cert") && err.contains("garbage.pem"), "{err}");
}

#[test]
fn baresip_calls_the_hub_over_tls() {
    use crate::common::baresip::Baresip;
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr, _) = hub_with_tls(dir.path());
    // baresip 1.0 loads the CA but does not check the server's certificate against it (a
    // foreign CA file calls just as well); the rustls test above is the one that verifies.
    let ca = dir.path().join("sip-cert.pem");
    let extra = format!("sip_transports\t\tudp,tls\nsip_cafile\t\t{}\n", ca.display());
    let phone = Baresip::start_configured(
        "<sip:tester@127.0.0.1;transport=tls>;regint=0",
        &[&format!("/dial sip:800@{addr};transport=tls")],
        &extra,
    );
    let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hub.wait_for("call up")))
        .unwrap_or_else(|_| panic!("no call over TLS\n{}\n{}", phone.log_text(), hub.log().join("\n")));
    let id = event_field(&up, "call up", "call").unwrap();
    phone.wait_for_log("Call established");
    let out = run(dir.path(), &["sip", "hangup", &id], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    hub.wait_for("call ended");
    phone.wait_for_log("session closed");
}
