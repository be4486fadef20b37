//! The AMI client against the fixture-replay server (real Asterisk 22 transcripts), and
//! against a real Asterisk when `HUB_TEST_AMI_URL` is set.

use std::time::{Duration, Instant};

use hub::config::AmiTarget;
use hub::pbx::ami::{AmiError, Auth, Session};

use crate::common::ami_replay::{AmiServer, Replay, link_answers};

fn target(port: u16, secret: &str) -> AmiTarget {
    AmiTarget::parse(&format!("ami://admin:{secret}@127.0.0.1:{port}")).unwrap()
}

async fn logged_in(fixture: &str) -> (Session, Replay) {
    let replay = Replay::start(fixture).await;
    let s = Session::login(&target(replay.port, "secret-test"), Auth::Plain, false).await.unwrap();
    (s, replay)
}

#[tokio::test]
async fn plain_login() {
    let (s, replay) = logged_in("01a-login-success").await;
    assert_eq!(s.greeting(), "Asterisk Call Manager/11.0.0");
    drop(s);
    replay.verdict().await.unwrap();
}

#[tokio::test]
async fn refused_logins_are_one_clear_error_after_asterisk_closes() {
    for (fixture, secret) in
        [("01c-login-failure-wrong-secret", "wrong-secret"), ("01f-login-failure-unknown-user", "x")]
    {
        let replay = Replay::start(fixture).await;
        let started = Instant::now();
        let err = Session::login(&target(replay.port, secret), Auth::Plain, false).await.err().unwrap();
        assert!(matches!(err, AmiError::AuthFailed(_)), "{fixture}: {err}");
        assert_eq!(err.to_string(), "Asterisk refused the manager login for user \"admin\" (check pbx.ami_url)");
        assert!(started.elapsed() >= Duration::from_millis(900), "{fixture}: Asterisk answers after about 1 s");
        replay.verdict().await.unwrap();
    }
}

#[tokio::test]
async fn md5_challenge_login_ping_and_logoff() {
    let replay = Replay::start("02a-challenge-md5-login").await;
    let mut s = Session::login(&target(replay.port, "secret-test"), Auth::Md5, false).await.unwrap();
    s.ping().await.unwrap();
    s.logoff().await.unwrap();
    replay.verdict().await.expect("the key is md5(challenge + secret), as Asterisk accepted it");
}

#[tokio::test]
async fn ping_with_answers_split_across_reads() {
    let (mut s, replay) = logged_in("03-ping").await;
    s.ping().await.unwrap();
    s.ping().await.unwrap();
    drop(s);
    replay.verdict().await.unwrap();
}

#[tokio::test]
async fn command_output_and_the_22x_pjsip_reload_trap() {
    let (mut s, _r) = logged_in("04c-command-dialplan-reload").await;
    let out = s.command("dialplan reload").await.unwrap();
    assert!(out.iter().any(|l| l.contains("Dialplan reloaded")), "{out:?}");

    let (mut s, _r) = logged_in("04e-command-pjsip-reload-invalid").await;
    let err = s.command("pjsip reload").await.err().unwrap();
    assert!(err.to_string().contains("No such command 'pjsip reload'"), "{err}");
}

#[tokio::test]
async fn event_lists_and_unknown_endpoints() {
    let (mut s, replay) = logged_in("06a-pjsip-show-endpoints").await;
    let items = s.list("PJSIPShowEndpoints", &[]).await.unwrap();
    let names: Vec<_> = items.iter().filter_map(|m| m.get("ObjectName")).collect();
    assert_eq!(names, ["1001", "1002"]);
    drop(s);
    replay.verdict().await.unwrap();

    let (mut s, _r) = logged_in("06f-pjsip-show-endpoint-unknown").await;
    let err = s.list("PJSIPShowEndpoint", &[("Endpoint", "9999")]).await.err().unwrap();
    assert_eq!(err.to_string(), "Asterisk refused PJSIPShowEndpoint: Unable to retrieve endpoint 9999");
}

#[tokio::test]
async fn an_events_session_hands_out_events_in_order_around_actions() {
    // 07b: the REGISTER events arrive before the answer to PJSIPShowContacts, the
    // un-REGISTER events right after the PJSIPShowEndpoint list.
    let replay = Replay::start("07b-register-unregister-events-websocket").await;
    let mut s = Session::login(&target(replay.port, "secret-test"), Auth::Plain, true).await.unwrap();
    let contacts = s.list("PJSIPShowContacts", &[]).await.unwrap();
    assert_eq!(contacts.len(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut names = Vec::new();
    for _ in 0..7 {
        names.push(s.next_event(deadline).await.unwrap().expect("a queued event").name().unwrap().to_string());
    }
    assert_eq!(
        names,
        [
            "FullyBooted",
            "SuccessfulAuth",
            "ChallengeSent",
            "SuccessfulAuth",
            "PeerStatus",
            "DeviceStateChange",
            "ContactStatus"
        ]
    );
    let items = s.list("PJSIPShowEndpoint", &[("Endpoint", "1002")]).await.unwrap();
    assert_eq!(items.len(), 4, "list items are answers, not events");
    let mut unregister = Vec::new();
    for _ in 0..5 {
        let m = s.next_event(deadline).await.unwrap().expect("an un-REGISTER event");
        unregister.push(format!("{} {}", m.name().unwrap(), m.get("ContactStatus").or(m.get("State")).unwrap_or("")));
    }
    assert_eq!(
        unregister,
        ["ChallengeSent ", "SuccessfulAuth ", "PeerStatus ", "DeviceStateChange UNAVAILABLE", "ContactStatus Removed"]
    );
    let quiet = tokio::time::Instant::now() + Duration::from_millis(200);
    assert!(s.next_event(quiet).await.unwrap().is_none(), "nothing more until the deadline");
    s.logoff().await.unwrap();
    replay.verdict().await.unwrap();
}

#[tokio::test]
async fn a_bounded_ping_and_one_that_goes_unanswered() {
    let (mut s, replay) = logged_in("03-ping").await;
    s.ping_within(Duration::from_secs(5)).await.unwrap();
    s.ping_within(Duration::from_secs(5)).await.unwrap();
    assert!(s.next_event(tokio::time::Instant::now()).await.unwrap().is_none(), "a Pong is not an event");
    s.logoff().await.unwrap();
    replay.verdict().await.unwrap();

    let server = AmiServer::start(link_answers()).await;
    server.answer_pings(false);
    let mut s = Session::login(&target(server.port, "secret-test"), Auth::Plain, true).await.unwrap();
    let started = Instant::now();
    let err = s.ping_within(Duration::from_millis(300)).await.err().unwrap();
    assert!(matches!(err, AmiError::Timeout(_)), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The events that came with the login are still there, in order.
    let first = s.next_event(tokio::time::Instant::now()).await.unwrap().unwrap();
    assert_eq!(first.name(), Some("FullyBooted"));
}

#[tokio::test]
async fn logoff() {
    let (s, replay) = logged_in("11-logoff").await;
    s.logoff().await.unwrap();
    replay.verdict().await.unwrap();
}

#[tokio::test]
async fn against_a_real_asterisk_when_configured() {
    let Ok(url) = std::env::var("HUB_TEST_AMI_URL") else {
        println!("real Asterisk tests SKIPPED: HUB_TEST_AMI_URL is not set (only the fixture replay was used)");
        return;
    };
    let target = AmiTarget::parse(&url).expect("HUB_TEST_AMI_URL is ami://user:secret@host:port");
    for auth in [Auth::Plain, Auth::Md5] {
        let mut s = Session::login(&target, auth, false).await.unwrap();
        s.ping().await.unwrap();
        let version = s.command("core show version").await.unwrap();
        assert!(version.iter().any(|l| l.starts_with("Asterisk")), "{version:?}");
        let err = s.command("pjsip reload").await.err().unwrap();
        assert!(err.to_string().contains("No such command"), "{err}");
        s.list("PJSIPShowEndpoints", &[]).await.unwrap();
        s.logoff().await.unwrap();
    }
    let bad = AmiTarget { secret: hub::model::Secret::new("certainly-wrong"), ..target };
    assert!(matches!(Session::login(&bad, Auth::Plain, false).await, Err(AmiError::AuthFailed(_))));
}
