//! The SIP test peers proven against each other (not against the hub): kamailio as a digest
//! registrar, SIPp's scenarios of `tests/sipp/`, and baresip as a phone. Everything runs on
//! 127.0.0.1; the hub's SIP user agent tests build on these.

use std::net::{SocketAddr, UdpSocket};

use crate::common::baresip::Baresip;
use crate::common::kamailio::Kamailio;
use crate::common::sipp::{SCENARIOS, Sipp, SippOutcome};

/// Fails with both peers' logs.
fn assert_passed(outcome: &SippOutcome, kamailio: &Kamailio) {
    assert!(
        outcome.success && outcome.calls_successful == 1 && outcome.calls_failed == 0,
        "SIPp scenario failed\n{}\n{}",
        outcome.report(),
        kamailio.log_text()
    );
}

#[test]
fn sip_peers_sipp_registers_to_kamailio_with_digest() {
    let kamailio = Kamailio::start(&[("alice", "secret"), ("bob", "hunter2")]);
    for (user, password) in [("alice", "secret"), ("bob", "hunter2")] {
        let outcome =
            Sipp::run("uac_register_digest.xml", kamailio.addr(), &["-s", user, "-au", user, "-ap", password]);
        assert_passed(&outcome, &kamailio);
        let challenge = outcome.messages.lines().find(|l| l.starts_with("WWW-Authenticate:")).unwrap_or_default();
        assert!(challenge.contains("qop=\"auth\"") && challenge.contains("nonce="), "challenge: {challenge}");
        kamailio.wait_for_log(&format!("REGISTER ok {user} "));
    }
}

#[test]
fn sip_peers_kamailio_refuses_a_wrong_password_with_403() {
    let kamailio = Kamailio::start(&[("alice", "secret")]);
    let outcome =
        Sipp::run("uac_register_wrong_password.xml", kamailio.addr(), &["-s", "alice", "-au", "alice", "-ap", "wrong"]);
    assert_passed(&outcome, &kamailio);
    kamailio.wait_for_log("REGISTER rejected alice: wrong password");
    // With the right password the same scenario fails (200, not 403): the 403 is about the password.
    let outcome = Sipp::run(
        "uac_register_wrong_password.xml",
        kamailio.addr(),
        &["-s", "alice", "-au", "alice", "-ap", "secret"],
    );
    assert!(!outcome.success, "a right password must not get 403\n{}", outcome.report());
}

#[test]
fn sip_peers_kamailio_refuses_a_too_brief_expires_with_423() {
    let kamailio = Kamailio::start(&[("alice", "secret")]);
    let outcome =
        Sipp::run("uac_register_too_brief.xml", kamailio.addr(), &["-s", "alice", "-au", "alice", "-ap", "secret"]);
    assert_passed(&outcome, &kamailio);
    let min = outcome.messages.lines().find(|l| l.starts_with("Min-Expires:")).unwrap_or_default();
    assert_eq!(min.trim(), format!("Min-Expires: {}", crate::common::kamailio::MIN_EXPIRES), "{}", outcome.report());
}

#[test]
fn sip_peers_sipp_options_to_kamailio_gets_200() {
    let kamailio = Kamailio::start(&[("alice", "secret")]);
    let outcome = Sipp::run("uac_options.xml", kamailio.addr(), &["-s", "alice"]);
    assert_passed(&outcome, &kamailio);
}

#[test]
fn sip_peers_baresip_registers_to_kamailio() {
    let kamailio = Kamailio::start(&[("alice", "secret")]);
    let baresip =
        Baresip::start(&format!("<sip:alice@127.0.0.1:{};transport=udp>;auth_pass=secret;regint=600", kamailio.port));
    let line = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kamailio.wait_for_log("REGISTER ok alice ")))
        .unwrap_or_else(|_| panic!("baresip did not register\n{}\n{}", baresip.log_text(), kamailio.log_text()));
    assert!(line.contains(&format!("@127.0.0.1:{}", baresip.port)), "{line}");
    // baresip's own view: the registrar's 200 with our binding.
    baresip.wait_for_log("200 OK (hub-test-registrar)");
}

#[test]
fn sip_peers_sipp_uac_call_to_sipp_uas() {
    // The UAS answers with SDP and echoes RTP; the UAC plays 1 s of PCMA and hangs up.
    let uas = Sipp::spawn("uas_bye_from_peer.xml", None, &["-rtp_echo"]);
    let uac = Sipp::run("uac_basic_echo.xml", uas.addr(), &["-s", "echo"]);
    let uas = uas.wait();
    assert!(
        uac.success && uac.calls_successful == 1 && uas.success && uas.calls_successful == 1,
        "call between SIPp UAC and UAS failed\n--- UAC ---\n{}\n--- UAS ---\n{}",
        uac.report(),
        uas.report()
    );
    // SIPp's built-in UAS takes the same call flow.
    let builtin = Sipp::spawn("uas", None, &[]);
    let uac = Sipp::run("uac_basic_echo.xml", builtin.addr(), &["-s", "echo"]);
    let builtin = builtin.wait();
    assert!(
        uac.success && builtin.success,
        "call to SIPp's built-in UAS failed\n--- UAC ---\n{}\n--- UAS ---\n{}",
        uac.report(),
        builtin.report()
    );
}

#[test]
fn sip_peers_every_scenario_loads() {
    // Each scenario runs for a moment against a socket that never answers: SIPp loads it,
    // sends its first message or waits for one, and stops at its timeout. A scenario that
    // does not parse stops at once with "Unable to load or parse".
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = sink.local_addr().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(SCENARIOS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    let running: Vec<(String, Sipp)> = names
        .iter()
        .map(|n| {
            let target = n.starts_with("uac_").then_some(target);
            // The keys some scenarios take (`-key`); SIPp ignores those a scenario does not use.
            let keys = ["-key", "rtp_port", "9", "-key", "key_password", "x", "-key", "sink_port", "9"];
            let keys = [&keys[..], &["-key", "pt", "0", "-key", "rtpmap", "PCMU/8000"]].concat();
            let mut args = vec!["-timeout", "1s"];
            args.extend(keys);
            (n.clone(), Sipp::spawn(n, target, &args))
        })
        .collect();
    for (name, sipp) in running {
        let outcome = sipp.wait();
        assert!(outcome.errors.contains("timed out"), "{name} did not load\n{}", outcome.report());
    }
}
