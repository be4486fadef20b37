//! The hub's SIP user agent on the wire (first step: out-of-dialog answers): real SIPp, and
//! the RFC 4475 torture messages sent over UDP and TCP to the running hub.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use hub::sip::agent::Agent;
use hub::sip::message::{TransportKind, classify};

use crate::common::kamailio::Kamailio;
use crate::common::sipp::{Sipp, SippOutcome};
use crate::common::{Hub, event_field};

/// Starts a hub whose SIP user agent is on, in `dir`; returns it and the UA's address.
pub(crate) fn hub_with_ua(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> (Hub, SocketAddr) {
    let mut env = vec![("HUB_SIP__ENABLED", "true")];
    env.extend_from_slice(extra_env);
    let hub = Hub::start(dir, &[], &env);
    let line = hub.wait_for("SIP user agent listening");
    let addr = event_field(&line, "SIP user agent listening", "udp").unwrap().parse().unwrap();
    (hub, addr)
}

pub(crate) fn passed(outcome: &SippOutcome, hub: &Hub) {
    assert!(outcome.success, "{}\n--- hub log ---\n{}", outcome.report(), hub.log().join("\n"));
}

fn options(call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:hub@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:hub@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Sends one datagram and returns the answer's status line, or `None` when none came in `wait`.
fn udp_exchange(socket: &UdpSocket, to: SocketAddr, bytes: &[u8], wait: Duration) -> Option<String> {
    socket.send_to(bytes, to).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 70_000];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()),
        Err(_) => None,
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/rfc4475");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "dat"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    assert_eq!(out.len(), 50, "the RFC 4475 archive has 50 files");
    out
}

#[test]
fn options_from_sipp_gets_allow_accept_and_supported() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    passed(&Sipp::run("uac_options.xml", addr, &["-s", "hub"]), &hub);
}

#[test]
fn an_invite_from_an_address_not_allowed_gets_403() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hub.toml"), "[sip]\nallowed_peers = [\"192.0.2.1\"]\n").unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    passed(&Sipp::run("uac_expect_403.xml", addr, &["-s", "800"]), &hub);
    hub.wait_for("INVITE from an address not in sip.allowed_peers refused");
}

#[test]
fn every_rfc4475_message_over_udp_gets_the_answer_it_deserves_and_the_ua_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent = Agent::new(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]);
    let mut answered = 0;
    let mut calls = 0;
    for (name, bytes) in fixtures() {
        // What the message layer and the agent decide, tested on their own in the library;
        // here: the running UA sends exactly that over the wire, and nothing when nothing is due.
        let reply = agent.handle(classify(&bytes, TransportKind::Udp).inbound, "127.0.0.1".parse().unwrap());
        if let Some(request) = reply.forward {
            // A request for the call layer: a valid INVITE is a call (answered, then ended by
            // us), anything else outside a dialog gets 481, an ACK nothing.
            let got = match request.method.to_string().as_str() {
                "INVITE" => {
                    let answer = invite_final(&socket, addr, &bytes, &name, &hub);
                    if answer.starts_with("SIP/2.0 200") {
                        calls += 1;
                        hang_up(&socket, addr, &answer, &name);
                    }
                    Some(answer.lines().next().unwrap_or("").to_string())
                }
                "ACK" => udp_exchange(&socket, addr, &bytes, Duration::from_millis(300)),
                _ => {
                    let got = udp_exchange(&socket, addr, &bytes, Duration::from_secs(5));
                    assert_eq!(got.as_deref(), Some("SIP/2.0 481 Call/Transaction Does Not Exist"), "{name}");
                    got
                }
            };
            let status = got.as_deref().map(|l| &l[8..11]);
            assert!(
                matches!(status, None | Some("200" | "400" | "481" | "488")),
                "{name}: {got:?}\n--- hub log ---\n{}",
                hub.log().join("\n")
            );
            answered += usize::from(got.is_some());
            continue;
        }
        let expected = reply.bytes.map(|b| String::from_utf8_lossy(&b).lines().next().unwrap_or("").to_string());
        let wait = if expected.is_some() { Duration::from_secs(5) } else { Duration::from_millis(300) };
        let got = udp_exchange(&socket, addr, &bytes, wait);
        assert_eq!(got, expected, "{name}\n--- hub log ---\n{}", hub.log().join("\n"));
        answered += usize::from(got.is_some());
        // Still alive and answering after each one.
        let alive = udp_exchange(&socket, addr, &options(&format!("alive-{name}")), Duration::from_secs(5));
        assert_eq!(alive.as_deref(), Some("SIP/2.0 200 OK"), "after {name}");
    }
    // The RFC's own verdicts for a few, so the wiring is not only compared with itself.
    let expect = |file: &str, status: Option<&str>| {
        let bytes = fixtures().into_iter().find(|(n, _)| n == file).unwrap().1;
        let got = udp_exchange(&socket, addr, &bytes, Duration::from_millis(if status.is_some() { 5000 } else { 300 }));
        assert_eq!(got.as_deref().map(|l| &l[8..11]), status, "{file}: {got:?}");
    };
    expect("badvers.dat", Some("505"));
    expect("badinv01.dat", Some("400"));
    expect("intmeth.dat", Some("501"));
    expect("clerr.dat", Some("400"));
    expect("scalarlg.dat", None);
    expect("unreason.dat", None);
    assert!(answered > 30, "most torture messages are requests that get an answer ({answered})");
    assert!(calls >= 3, "the valid INVITEs among them became calls ({calls})");
    // Never a stuck transaction or dialog: every call is gone.
    let out = crate::common::run(dir.path(), &["sip", "calls", "--json"], &[]);
    assert_eq!(crate::common::text(&out).0.trim(), "[]", "{}", hub.log().join("\n"));
}

/// Sends an INVITE and returns the whole final response (1xx skipped).
fn invite_final(socket: &UdpSocket, to: SocketAddr, bytes: &[u8], name: &str, hub: &Hub) -> String {
    socket.send_to(bytes, to).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 70_000];
    loop {
        let (n, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{name}: no final answer to the INVITE ({e})\n{}", hub.log().join("\n")));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

/// ACKs a 200 and ends the call with BYE, built from the 200's own headers.
fn hang_up(socket: &UdpSocket, to: SocketAddr, ok: &str, name: &str) {
    let header = |names: &[&str]| {
        ok.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                names.iter().any(|x| n.trim().eq_ignore_ascii_case(x)).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{name}: no {names:?} in {ok}"))
    };
    let (from, to_h, call_id, cseq) =
        (header(&["From", "f"]), header(&["To", "t"]), header(&["Call-ID", "i"]), header(&["CSeq"]));
    let n: u32 = cseq.split_whitespace().next().unwrap().parse().unwrap();
    let local = socket.local_addr().unwrap();
    let request = |method: &str, seq: u32, branch: &str| {
        format!(
            "{method} sip:hub@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to_h}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    socket.send_to(request("ACK", n, &format!("ack{n}")).as_bytes(), to).unwrap();
    let bye = udp_exchange(socket, to, request("BYE", n + 1, &format!("bye{n}")).as_bytes(), Duration::from_secs(5));
    assert_eq!(bye.as_deref(), Some("SIP/2.0 200 OK"), "{name}: BYE");
}

#[test]
fn tcp_frames_by_content_length_and_closes_only_a_connection_whose_framing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    let read_status = |s: &mut TcpStream| {
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()
    };
    // Two requests in one write, then one split across writes: both framed right.
    let mut a = TcpStream::connect(addr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut two = options("tcp-1");
    two.extend_from_slice(&options("tcp-2"));
    a.write_all(&two).unwrap();
    let mut replies = String::new();
    while replies.matches("SIP/2.0 200 OK").count() < 2 {
        let mut buf = vec![0u8; 4096];
        let n = a.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {replies}\n{}", hub.log().join("\n"));
        replies.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let third = options("tcp-3");
    a.write_all(&third[..20]).unwrap();
    a.write_all(&third[20..]).unwrap();
    assert_eq!(read_status(&mut a), "SIP/2.0 200 OK");

    // A body shorter than its Content-Length over TCP: wait for the rest, answer nothing yet.
    let clerr =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/rfc4475/clerr.dat"))
            .unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    b.write_all(&clerr).unwrap();
    let mut buf = [0u8; 64];
    assert!(b.read(&mut buf).is_err(), "nothing is answered while the body is incomplete");

    // A negative Content-Length: framing is lost, the connection gets 400 and is closed.
    let ncl =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/rfc4475/ncl.dat")).unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&ncl).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("SIP/2.0 400 "), "{text}");

    // The well-behaved neighbour is unaffected.
    a.write_all(&options("tcp-4")).unwrap();
    assert_eq!(read_status(&mut a), "SIP/2.0 200 OK");
}

/// Starts a hub whose user agent registers with `kamailio` as `user`/`password`, with a
/// requested lifetime of `expiry`.
fn hub_registering(dir: &std::path::Path, kamailio: &Kamailio, user: &str, password: &str, expiry: &str) -> Hub {
    let registrar = format!("sip:{}", kamailio.addr());
    let env = [
        ("HUB_SIP__ENABLED", "true"),
        ("HUB_SIP__REGISTRAR", registrar.as_str()),
        ("HUB_SIP__USERNAME", user),
        ("HUB_SIP__PASSWORD", password),
        ("HUB_SIP__REGISTER_EXPIRY", expiry),
    ];
    Hub::start(dir, &[], &env)
}

#[test]
fn the_ua_registers_with_digest_and_unregisters_on_shutdown() {
    let kamailio = Kamailio::start(&[("hub", "s3cret-pass")]);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_registering(dir.path(), &kamailio, "hub", "s3cret-pass", "5m");
    let line = hub.wait_for("SIP registered");
    assert_eq!(event_field(&line, "SIP registered", "expires").as_deref(), Some("300"), "{line}");
    let ua = event_field(&hub.wait_for("SIP user agent listening"), "SIP user agent listening", "udp").unwrap();
    let ok = kamailio.wait_for_log("REGISTER ok hub");
    assert!(ok.contains(&ua), "the contact is the user agent's own socket ({ua}): {ok}");

    // `hub sip status` in another process: the file the hub wrote (just after it logged, so
    // read again until it shows the registration, bounded), checked on the wire.
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    let v: serde_json::Value = loop {
        let out = crate::common::run(dir.path(), &["sip", "status", "--json"], &[]);
        let (stdout, stderr) = crate::common::text(&out);
        if out.status.success() {
            break serde_json::from_str(&stdout).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{stdout}\n{stderr}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (v["answering"].as_bool(), v["registration"]["state"].as_str()),
        (Some(true), Some("registered")),
        "{v}"
    );
    assert_eq!(v["registration"]["expires"], 300);
    let table = crate::common::text(&crate::common::run(dir.path(), &["sip", "status"], &[])).0;
    assert!(table.contains("answering on udp") && table.contains("registered with sip:"), "{table}");

    let (status, _, log) = hub.stop("TERM");
    assert!(status.success());
    assert!(log.iter().any(|l| l.contains("SIP unregistered")), "{}", log.join("\n"));
    kamailio.wait_for_log("expires=0");
    assert!(!log.join("\n").contains("s3cret-pass"), "the SIP password reached the log");
    let out = crate::common::run(dir.path(), &["sip", "status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::common::text(&out).1.contains("not running"), "{:?}", crate::common::text(&out));
}

#[test]
fn a_too_brief_expiry_is_raised_to_min_expires() {
    // The registrar wants at least 600 s; the hub asks for 120 s, gets 423 with Min-Expires.
    let kamailio = Kamailio::start_with(&[("hub", "pw")], 600);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_registering(dir.path(), &kamailio, "hub", "pw", "120s");
    hub.wait_for("registrar wants a longer registration; retrying");
    let line = hub.wait_for("SIP registered");
    let granted: u32 = event_field(&line, "SIP registered", "expires").unwrap().parse().unwrap();
    assert_eq!(granted, 600, "{line}");
}

#[test]
fn wrong_credentials_are_reported_once_and_retried() {
    let kamailio = Kamailio::start(&[("hub", "right")]);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_registering(dir.path(), &kamailio, "hub", "wrong", "5m");
    let line = hub.wait_for("SIP registration refused");
    assert_eq!(event_field(&line, "SIP registration refused", "status").as_deref(), Some("403"), "{line}");
    // The backoff retries (1 s, then 2 s): the registrar sees a second attempt…
    let first = kamailio.wait_for_log("REGISTER rejected hub: wrong password");
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    while kamailio.log_text().matches("REGISTER rejected hub: wrong password").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no retry: {first}\n{}", kamailio.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // …and the hub said it once.
    let refusals = hub.log().iter().filter(|l| l.contains("SIP registration refused")).count();
    assert_eq!(refusals, 1, "{}", hub.log().join("\n"));
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    loop {
        let out = crate::common::run(dir.path(), &["sip", "status"], &[]);
        let table = crate::common::text(&out).0;
        assert_eq!(out.status.code(), Some(1), "{table}");
        if table.contains("FAILED") {
            assert!(table.contains("(403)"), "{table}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{table}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until kamailio has logged `needle` at least `n` times.
fn wait_for_count(kamailio: &Kamailio, needle: &str, n: usize, hub: &Hub) {
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    while kamailio.log_text().matches(needle).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "kamailio logged {needle:?} fewer than {n} times\n{}\n{}",
            kamailio.log_text(),
            hub.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn refreshes_reuse_the_nonce_without_a_new_challenge() {
    // Nonces live 300 s; the registrar grants 3 s, so the hub refreshes every 2 s.
    let kamailio = Kamailio::start_with_nonces(&[("hub", "pw")], 3, 300);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_registering(dir.path(), &kamailio, "hub", "pw", "5m");
    wait_for_count(&kamailio, "REGISTER ok hub", 3, &hub);
    let log = kamailio.log_text();
    assert_eq!(
        log.matches("REGISTER challenge hub").count(),
        1,
        "only the first REGISTER is challenged; refreshes answer that challenge ahead of time\n{log}"
    );
    assert_eq!(log.matches("REGISTER stale nonce").count(), 0, "{log}");
}

#[test]
fn a_stale_nonce_is_answered_with_the_fresh_one_and_the_registration_holds() {
    // Nonces live 2 s; the registrar grants 4 s, so the hub refreshes every 3 s with an expired
    // nonce and gets `401` with `stale=true` (as with Asterisk, whose nonces live 32 s).
    let kamailio = Kamailio::start_with_nonces(&[("hub", "pw")], 4, 2);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_registering(dir.path(), &kamailio, "hub", "pw", "5m");
    wait_for_count(&kamailio, "REGISTER ok hub", 3, &hub);
    let log = kamailio.log_text();
    assert!(log.matches("REGISTER stale nonce hub").count() >= 2, "{log}");
    assert_eq!(log.matches("REGISTER challenge hub").count(), 1, "{log}");
    assert!(!log.contains("REGISTER rejected"), "{log}");
    let hub_log = hub.log().join("\n");
    assert!(!hub_log.contains("SIP registration refused"), "a stale nonce is not a refusal\n{hub_log}");
    let out = crate::common::run(dir.path(), &["sip", "status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&crate::common::text(&out).0).unwrap();
    assert_eq!(v["registration"]["state"], "registered", "{v}");
}
