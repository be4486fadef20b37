//! Calls to the hub's SIP user agent, end to end with real SIPp (and baresip): answer, RTP
//! echo, CANCEL, lost ACK, hold, INFO digits, limits, hang-up and transfer from the CLI.
//! The hub answers with its RTP echo app (`media::echo`).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use crate::common::sipp::Sipp;
use crate::common::{Hub, event_field, run, text};
use crate::sip_ua::{hub_with_ua, passed};

/// `hub sip calls --json` in `dir`.
fn calls(dir: &Path) -> Vec<serde_json::Value> {
    let out = run(dir, &["sip", "calls", "--json"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "hub sip calls failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// An RTP packet: version 2, no CSRC or extension.
fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

struct Rtp {
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
}

fn parse_rtp(b: &[u8]) -> Rtp {
    assert!(b.len() >= 12 && b[0] >> 6 == 2, "not RTP: {b:?}");
    Rtp {
        pt: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b[12..].to_vec(),
    }
}

fn hub_log(hub: &Hub) -> String {
    hub.log().join("\n")
}

#[test]
fn a_call_is_answered_and_echoes_rtp_as_its_own_stream_then_ends_on_rtp_silence() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[("HUB_SIP__RTP_TIMEOUT", "2s")]);
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    media.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = media.local_addr().unwrap().port().to_string();
    let sipp = Sipp::spawn("uac_echo_test_media.xml", Some(addr), &["-s", "*43", "-key", "rtp_port", &port]);
    let up = hub.wait_for("call up");
    let hub_rtp: SocketAddr = event_field(&up, "call up", "local_rtp").unwrap().parse().unwrap();
    assert_eq!(event_field(&up, "call up", "codec").as_deref(), Some("PCMA"), "the caller's first choice");
    let mut echoed = Vec::new();
    for i in 0..50u16 {
        let payload: Vec<u8> = (0..160).map(|j| (i as u8).wrapping_mul(7).wrapping_add(j as u8)).collect();
        media.send_to(&rtp(8, 1000 + i, 8000 + u32::from(i) * 160, 0xdead_beef, i == 0, &payload), hub_rtp).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) =
            media.recv_from(&mut buf).unwrap_or_else(|e| panic!("packet {i} not echoed: {e}\n{}", hub_log(&hub)));
        assert_eq!(from, hub_rtp, "the echo comes from the answered address");
        let back = parse_rtp(&buf[..n]);
        assert_eq!((back.pt, back.payload.as_slice(), back.marker), (8, payload.as_slice(), i == 0));
        echoed.push(back);
    }
    let first = &echoed[0];
    assert_ne!(first.ssrc, 0xdead_beef, "the echo is the hub's own stream");
    for (i, p) in echoed.iter().enumerate() {
        let i16 = u16::try_from(i).unwrap();
        assert_eq!(p.ssrc, first.ssrc);
        assert_eq!(p.seq, first.seq.wrapping_add(i16), "its own, gapless sequence");
        assert_eq!(p.ts.wrapping_sub(first.ts), u32::from(i16) * 160, "its own timestamps, the caller's spacing");
    }
    // An RFC 4733 digit (end packet sent three times) is counted once and not echoed.
    for _ in 0..3 {
        media.send_to(&rtp(101, 2000, 20000, 0xdead_beef, false, &[7, 0x8a, 0x03, 0x20]), hub_rtp).unwrap();
    }
    media.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(media.recv_from(&mut [0u8; 1500]).is_err(), "telephone-events are not echoed");
    let listed = calls(dir.path());
    assert_eq!(listed.len(), 1, "{listed:?}");
    let call = &listed[0];
    assert_eq!(call["state"], "up");
    assert_eq!(call["codec"], "PCMA");
    assert_eq!(call["to"], "*43");
    assert_eq!(call["media"]["packets_in"], 53);
    assert_eq!(call["media"]["packets_out"], 50);
    assert_eq!(call["media"]["digits"], "7");
    assert_eq!(call["remote_rtp"], format!("127.0.0.1:{port}"));
    let table = text(&run(dir.path(), &["sip", "calls"], &[])).0;
    assert!(table.contains("PCMA") && table.contains("53/50") && table.contains("1 live call"), "{table}");
    // Silence: the hub hangs up after rtp_timeout with a BYE, which SIPp waits for.
    passed(&sipp.wait(), &hub);
    let ended = hub.wait_for("call ended");
    assert!(event_field(&ended, "call ended", "ended").unwrap().contains("no RTP"), "{ended}");
    assert!(calls(dir.path()).is_empty(), "the call left the table");
}

#[test]
fn pcap_audio_played_by_sipp_comes_back_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    for transport in ["u1", "t1"] {
        passed(&Sipp::run("uac_basic_echo.xml", addr, &["-s", "*43", "-t", transport]), &hub);
        let ended = hub.wait_for_event("call ended", "ended", "BYE from the caller");
        let count = |f: &str| event_field(&ended, "call ended", f).unwrap().parse::<u64>().unwrap();
        // pcma_1s.pcap holds 50 packets of 20 ms; each that arrives before the BYE goes back.
        let (got, sent) = (count("packets_in"), count("packets_out"));
        assert!(got >= 25 && sent == got, "{transport}: {ended}");
        let _ = hub.wait_for("call ended"); // consumed; the next call logs its own
    }
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn cancel_before_answer_gets_487_and_the_call_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[("HUB_SIP__RING", "10s")]);
    passed(&Sipp::run("uac_cancel.xml", addr, &["-s", "*43"]), &hub);
    let ended = hub.wait_for("call ended");
    assert!(ended.contains("CANCEL from the caller"), "{ended}");
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn a_200_never_acknowledged_is_retransmitted_then_the_call_ends_with_bye() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    let outcome = Sipp::run("uac_lost_ack.xml", addr, &["-s", "*43", "-timeout", "60s"]);
    passed(&outcome, &hub);
    // SIPp logs every 200 it received: the first and the UA's retransmissions (T1 doubling
    // to T2 within 64·T1 gives about ten).
    let received_200 = outcome.messages.matches("SIP/2.0 200 OK").count();
    assert!(received_200 >= 5, "the 200 was retransmitted ({received_200} seen)\n{}", outcome.report());
    let ended = hub.wait_for("call ended");
    assert!(ended.contains("no ACK"), "{ended}");
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn hold_and_resume_by_reinvite_are_answered_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    passed(&Sipp::run("uac_hold_unhold.xml", addr, &["-s", "*43"]), &hub);
    hub.wait_for_event("session changed", "direction", "RecvOnly");
    hub.wait_for_event("session changed", "direction", "SendRecv");
}

#[test]
fn dtmf_by_sip_info_is_accepted_and_reaches_the_media_side() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    passed(&Sipp::run("uac_info_dtmf.xml", addr, &["-s", "*43"]), &hub);
    let ended = hub.wait_for("call ended");
    assert_eq!(event_field(&ended, "call ended", "digits").as_deref(), Some("5#"), "{ended}");
}

#[test]
fn no_common_codec_gets_488() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    passed(&Sipp::run("uac_expect_488.xml", addr, &["-s", "*43"]), &hub);
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn beyond_the_call_limit_486_and_an_operator_hangs_up_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[("HUB_SIP__MAX_CALLS", "1")]);
    let first = Sipp::spawn("uac_until_hangup.xml", Some(addr), &["-s", "*43"]);
    let up = hub.wait_for("call up");
    let id = event_field(&up, "call up", "call").unwrap();
    let busy = Sipp::run("uac_expect_486_or_503.xml", addr, &["-s", "*43"]);
    passed(&busy, &hub);
    assert!(busy.messages.contains("SIP/2.0 486 Busy Here"), "{}", busy.report());
    let out = run(dir.path(), &["sip", "hangup", &id], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    passed(&first.wait(), &hub);
    let ended = hub.wait_for("call ended");
    assert!(ended.contains("hung up by an operator"), "{ended}");
    // A call that is not there: a clear error, exit 1.
    let out = run(dir.path(), &["sip", "hangup", &id], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains(&format!("no call {id}")), "{:?}", text(&out));
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn an_operator_transfers_a_call_by_refer_and_the_hub_leaves_after_notify_200() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    let caller = Sipp::spawn("uac_transfer.xml", Some(addr), &["-s", "*43"]);
    let up = hub.wait_for("call up");
    let id = event_field(&up, "call up", "call").unwrap();
    let out = run(dir.path(), &["sip", "transfer", &id, "201"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    passed(&caller.wait(), &hub);
    hub.wait_for_event("transfer progress (NOTIFY)", "code", "200");
    let ended = hub.wait_for("call ended");
    assert!(ended.contains("transferred"), "{ended}");
}

#[test]
fn cli_without_a_serving_hub_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["sip", "calls"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no serving hub answers"), "{:?}", text(&out));
}

#[test]
fn baresip_calls_the_hub_hears_its_echo_and_is_hung_up_by_an_operator() {
    use crate::common::baresip::Baresip;
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_ua(dir.path(), &[]);
    let phone = Baresip::start_with("<sip:tester@127.0.0.1>;regint=0", &[&format!("/dial sip:800@{addr}")]);
    let up = hub.wait_for("call up");
    let id = event_field(&up, "call up", "call").unwrap();
    phone.wait_for_log("Call established");
    // baresip's sine source sends 50 packets a second; wait until the echo has sent some back.
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    loop {
        let listed = calls(dir.path());
        let out = listed.first().and_then(|c| c["media"]["packets_out"].as_u64()).unwrap_or(0);
        if out >= 25 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no echo to baresip: {listed:?}\n{}", phone.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run(dir.path(), &["sip", "hangup", &id], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let ended = hub.wait_for("call ended");
    assert!(ended.contains("hung up by an operator"), "{ended}");
    // baresip 1.0 words a received BYE differently across runs ("terminated", "Connection
    // reset by peer"); its "session closed" line is the call ending.
    phone.wait_for_log("session closed");
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn the_hub_calls_an_extension_through_its_registrar_with_digest_auth() {
    let dir = tempfile::tempdir().unwrap();
    let registrar =
        Sipp::spawn("uas_registrar_auth_call.xml", None, &["-m", "2", "-key", "key_password", "t0p-secret"]);
    let uri = format!("sip:{}", registrar.addr());
    let (hub, _) = hub_with_ua(
        dir.path(),
        &[("HUB_SIP__REGISTRAR", &uri), ("HUB_SIP__USERNAME", "hub"), ("HUB_SIP__PASSWORD", "t0p-secret")],
    );
    let out = run(dir.path(), &["sip", "dial", "201"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let up = hub.wait_for("call up");
    assert_eq!(event_field(&up, "call up", "codec").as_deref(), Some("PCMA"), "what the far end answered");
    let id = event_field(&up, "call up", "call").unwrap();
    let listed = calls(dir.path());
    assert_eq!((listed[0]["to"].as_str(), listed[0]["state"].as_str()), (Some("201"), Some("up")), "{listed:?}");
    assert!(run(dir.path(), &["sip", "hangup", &id], &[]).status.success());
    passed(&registrar.wait(), &hub);
    assert!(calls(dir.path()).is_empty());
    // Without a registrar there is nowhere to call: a clear error.
    let dir = tempfile::tempdir().unwrap();
    let (_hub, _) = hub_with_ua(dir.path(), &[]);
    let out = run(dir.path(), &["sip", "dial", "201"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no registrar is configured"), "{:?}", text(&out));
}

/// A 486 for `request`.
fn busy_for(request: &str) -> String {
    response_to(request, "486 Busy Here", "busy")
}

fn top_via(message: &str) -> String {
    message
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("via:") || l.starts_with("v:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_request_too_large_for_udp_goes_over_tcp_with_its_via_saying_so() {
    use std::io::{Read, Write};
    // A stand-in registrar listening on one port with UDP and TCP; it never answers REGISTER.
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = std::net::TcpListener::bind(udp.local_addr().unwrap()) {
            break (udp, tcp);
        }
    };
    udp.set_read_timeout(Some(crate::common::WAIT)).unwrap();
    let uri = format!("sip:{}", udp.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = hub_with_ua(
        dir.path(),
        &[("HUB_SIP__REGISTRAR", &uri), ("HUB_SIP__USERNAME", "hub"), ("HUB_SIP__PASSWORD", "pw")],
    );

    // A small INVITE goes over UDP.
    assert!(run(dir.path(), &["sip", "dial", "201"], &[]).status.success());
    let mut buf = vec![0u8; 65536];
    let (invite, from) = loop {
        let (n, from) = udp.recv_from(&mut buf).expect("an INVITE over UDP");
        let m = String::from_utf8_lossy(&buf[..n]).to_string();
        if m.starts_with("INVITE ") {
            break (m, from);
        }
    };
    assert!(invite.len() <= 1300 && top_via(&invite).contains("SIP/2.0/UDP"), "{invite}");
    udp.send_to(busy_for(&invite).as_bytes(), from).unwrap();
    hub.wait_for_event("call not answered", "status", "486");

    // One to a 700-digit extension (Request-URI and To carry it) is over 1300 bytes: TCP.
    let long = "9".repeat(700);
    assert!(run(dir.path(), &["sip", "dial", &long], &[]).status.success());
    tcp.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    let mut conn = loop {
        match tcp.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "the hub never connected over TCP\n{}", hub_log(&hub));
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(crate::common::WAIT)).unwrap();
    let mut got = Vec::new();
    let invite = loop {
        let n = conn.read(&mut buf).expect("the large INVITE over TCP");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .split("\r\n")
                .find_map(|l| l.strip_prefix("Content-Length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                break text;
            }
        }
    };
    assert!(invite.starts_with("INVITE sip:9999"), "{invite}");
    assert!(invite.len() > 1300, "{}", invite.len());
    assert!(top_via(&invite).contains("SIP/2.0/TCP"), "the Via names the transport used: {}", top_via(&invite));
    conn.write_all(busy_for(&invite).as_bytes()).unwrap();
    // The 486 that came back over TCP ends the hub's transaction like any other answer.
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    while hub.log().iter().filter(|l| event_field(l, "call not answered", "status").as_deref() == Some("486")).count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "{}", hub_log(&hub));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(calls(dir.path()).is_empty());
}

/// A response to `request` with `status`: its Via, From, Call-ID and CSeq, and its To with
/// `tag`.
fn response_to(request: &str, status: &str, tag: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => out.push_str(&format!("{line}\r\n")),
            "to" | "t" => out.push_str(&format!("{line};tag={tag}\r\n")),
            _ => {}
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

#[test]
fn an_operator_hangs_up_a_call_out_while_it_rings_and_the_hub_cancels_it() {
    // A stand-in registrar that lets the call ring; it never answers REGISTER.
    let registrar = UdpSocket::bind("127.0.0.1:0").unwrap();
    registrar.set_read_timeout(Some(crate::common::WAIT)).unwrap();
    let uri = format!("sip:{}", registrar.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = hub_with_ua(
        dir.path(),
        &[("HUB_SIP__REGISTRAR", &uri), ("HUB_SIP__USERNAME", "hub"), ("HUB_SIP__PASSWORD", "pw")],
    );
    let mut buf = vec![0u8; 65536];
    let mut next = |method: &str| loop {
        let (n, from) = registrar.recv_from(&mut buf).unwrap_or_else(|e| panic!("no {method}: {e}\n{}", hub_log(&hub)));
        let m = String::from_utf8_lossy(&buf[..n]).to_string();
        if m.starts_with(&format!("{method} ")) {
            break (m, from);
        }
    };
    let out = run(dir.path(), &["sip", "dial", "202"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let id = text(&out)
        .0
        .split_whitespace()
        .find_map(|w| w.trim_end_matches(':').parse::<u64>().ok())
        .expect("the call id")
        .to_string();
    let (invite, hub_addr) = next("INVITE");
    registrar.send_to(response_to(&invite, "180 Ringing", "ringing").as_bytes(), hub_addr).unwrap();
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    while calls(dir.path()).first().and_then(|c| c["state"].as_str().map(str::to_owned)).as_deref() != Some("ringing") {
        assert!(std::time::Instant::now() < deadline, "{:?}\n{}", calls(dir.path()), hub_log(&hub));
        std::thread::sleep(Duration::from_millis(20));
    }

    assert!(run(dir.path(), &["sip", "hangup", &id], &[]).status.success());
    let (cancel, _) = next("CANCEL");
    let invite_cseq = invite.split("\r\n").find_map(|l| l.strip_prefix("CSeq: ")).unwrap().to_string();
    assert!(cancel.contains(&format!("CSeq: {}", invite_cseq.replace("INVITE", "CANCEL"))), "{cancel}");
    registrar.send_to(response_to(&cancel, "200 OK", "ringing").as_bytes(), hub_addr).unwrap();
    registrar.send_to(response_to(&invite, "487 Request Terminated", "ringing").as_bytes(), hub_addr).unwrap();
    let (ack, _) = next("ACK");
    assert!(ack.contains("tag=ringing"), "{ack}");
    hub.wait_for_event("call not answered", "status", "487");
    assert!(calls(dir.path()).is_empty());
}
