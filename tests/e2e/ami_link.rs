//! The AMI event link and SIP presence, in-process, against the fixture-answering AMI server
//! (real Asterisk 22 transcripts), and against a real Asterisk when `HUB_TEST_AMI_URL` is
//! set. Every wait is on an event (a watch, a broadcast, the server's log) and bounded.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub::config::{AmiAuth, AmiTarget};
use hub::pbx::ami::Message;
use hub::pbx::presence::ContactStatus;
use hub::pbx::{DeviceState, EventLink, LinkHandle, LinkOptions, LinkStatus, SipPresence};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::common::WAIT;
use crate::common::ami_replay::{AmiServer, Canned, link_answers, step_events};

const UDP: &str = "07a-register-unregister-events-udp";
const WS: &str = "07b-register-unregister-events-websocket";

fn target(port: u16, secret: &str) -> AmiTarget {
    AmiTarget::parse(&format!("ami://admin:{secret}@127.0.0.1:{port}")).unwrap()
}

/// Short timings, so reconnects and keepalives happen within a test.
fn fast() -> LinkOptions {
    LinkOptions {
        keepalive: Duration::from_secs(60),
        ping_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_millis(400),
    }
}

struct Link {
    handle: LinkHandle,
    presence: SipPresence,
    shutdown: CancellationToken,
}

fn spawn(port: u16, secret: &str, options: LinkOptions) -> Link {
    let presence = SipPresence::new();
    let shutdown = CancellationToken::new();
    let handle = EventLink::spawn(target(port, secret), AmiAuth::Plain, presence.clone(), shutdown.clone(), options);
    Link { handle, presence, shutdown }
}

impl Link {
    /// Waits until the status satisfies `done`.
    async fn status_until(&self, what: &str, done: impl FnMut(&LinkStatus) -> bool) -> LinkStatus {
        let mut rx = self.handle.subscribe();
        match tokio::time::timeout(WAIT, rx.wait_for(done)).await {
            Ok(Ok(s)) => s.clone(),
            _ => panic!("link: not {what} within {WAIT:?}; status {:#?}", self.handle.status()),
        }
    }

    async fn connected(&self) -> LinkStatus {
        let mut rx = self.handle.subscribe_connected();
        let up = tokio::time::timeout(WAIT, rx.wait_for(|up| *up)).await;
        assert!(matches!(up, Ok(Ok(_))), "link not connected within {WAIT:?}: {:#?}", self.handle.status());
        self.handle.status()
    }

    /// Waits until presence satisfies `done`, woken by its change notices.
    async fn presence_until(&self, what: &str, mut done: impl FnMut(&SipPresence) -> bool) {
        let mut changes = self.presence.subscribe();
        let deadline = Instant::now() + WAIT;
        while !done(&self.presence) {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                _ => panic!("presence: not {what} within {WAIT:?}: {:#?}", self.presence.snapshot()),
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(WAIT, self.handle.stopped()).await;
        assert!(stopped.is_ok(), "the link did not stop within {WAIT:?}");
        assert!(!self.presence.is_live(), "presence is unknown once the link is gone");
        assert!(!self.handle.status().connected);
    }
}

fn registered(p: &SipPresence, endpoint: &str) -> bool {
    p.get(endpoint).is_some_and(|e| e.is_registered())
}

#[tokio::test]
async fn seeds_presence_then_follows_register_and_unregister_events() {
    let server = AmiServer::start(link_answers()).await;
    let link = spawn(server.port, "secret-test", fast());
    let status = link.connected().await;
    assert_eq!(status.greeting.as_deref(), Some("Asterisk Call Manager/11.0.0"));
    assert_eq!((status.reconnects, status.failed_attempts, status.last_error), (0, 0, None));

    let log = server.log();
    assert_eq!(log.actions_of(1), ["Login", "PJSIPShowEndpoints", "PJSIPShowContacts"]);
    let login = &log.actions[0].message;
    assert_eq!(login.get("Events"), Some("on"), "the event link is a session of its own with events on");
    assert!(link.presence.is_live());
    for endpoint in ["1001", "1002"] {
        let e = link.presence.get(endpoint).unwrap();
        assert_eq!(e.device_state(), DeviceState::Unavailable);
        assert!(!e.is_registered());
    }

    server.push(&step_events(UDP, 1));
    link.presence_until("1001 registered", |p| registered(p, "1001")).await;
    let e = link.presence.get("1001").unwrap();
    assert_eq!(e.device_state(), DeviceState::NotInUse);
    assert_eq!(e.registered_contacts()[0].uri, "sip:1001@127.0.0.1:38260");
    assert_eq!(e.registered_contacts()[0].status, ContactStatus::NonQualified);

    server.push(&step_events(WS, 1));
    link.presence_until("1002 registered", |p| registered(p, "1002")).await;
    let contact = link.presence.get("1002").unwrap().registered_contacts()[0].uri.clone();
    assert!(contact.contains(";transport=WS;"), "{contact}");

    server.push(&step_events(UDP, 2));
    link.presence_until("1001 unregistered", |p| !registered(p, "1001")).await;
    assert_eq!(link.presence.get("1001").unwrap().device_state(), DeviceState::Unavailable);
    assert!(registered(&link.presence, "1002"), "1002 stays registered");

    link.stop().await;
    let log = server.wait_for("Logoff", |l| l.actions.last().is_some_and(|a| a.action() == "Logoff")).await;
    assert_eq!(log.connections, 1);
}

#[tokio::test]
async fn a_closed_connection_is_reconnected_with_backoff_and_presence_reseeded() {
    let mut answers = link_answers();
    answers.retain(|(name, _)| !name.starts_with("PJSIP"));
    answers.push(("PJSIPShowEndpoints", Canned::answer("06a-pjsip-show-endpoints-registered", "06a-reg-1")));
    answers.push(("PJSIPShowContacts", Canned::answer("06c-pjsip-show-contacts-registered", "06c-reg-1")));
    let server = AmiServer::start(answers).await;
    let options = fast();
    let link = spawn(server.port, "secret-test", options.clone());
    link.connected().await;
    let e = link.presence.get("1001").unwrap();
    assert_eq!(e.registered_contacts()[0].user_agent.as_deref(), Some("fixture-ua/1.0"));

    // While the link is down, 1001 unregisters: the next listings say so.
    server.answer("PJSIPShowEndpoints", Canned::answer("06a-pjsip-show-endpoints", "06a-1"));
    server.answer("PJSIPShowContacts", Canned::answer("06c-pjsip-show-contacts", "06c-1"));
    let closed_at = Instant::now();
    server.close_connection();

    let status = link.status_until("reconnected", |s| s.connected && s.reconnects == 1).await;
    let log = server.log();
    let relogin = log.actions.iter().find(|a| a.connection == 2).expect("a second connection").at;
    assert!(
        relogin - closed_at >= options.backoff_min / 2,
        "reconnected after {:?}, before the shortest backoff",
        relogin - closed_at
    );
    assert_eq!(log.actions_of(2), ["Login", "PJSIPShowEndpoints", "PJSIPShowContacts"], "re-seeded");
    assert!(status.last_error.as_deref().is_some_and(|e| e.contains("closed")), "{status:?}");
    assert_eq!(status.failed_attempts, 0);
    assert!(!registered(&link.presence, "1001"), "presence comes from the new listing");
    link.stop().await;
}

/// A port nothing listens on (yet).
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn comes_up_when_asterisk_starts_after_the_hub() {
    let port = free_port().await;
    let link = spawn(port, "secret-test", LinkOptions { backoff_min: Duration::from_millis(50), ..fast() });
    let down = link.status_until("two failed attempts", |s| s.failed_attempts >= 2).await;
    assert!(!down.connected && !down.auth_refused);
    let error = down.last_error.unwrap();
    assert!(error.starts_with(&format!("cannot connect to the Asterisk manager at 127.0.0.1:{port}")), "{error}");
    assert!(!link.presence.is_live(), "nothing is known yet: unknown, not unregistered");
    assert_eq!(link.presence.get("1001"), None);

    let server = AmiServer::start_on(port, link_answers()).await;
    let up = link.connected().await;
    assert_eq!(up.reconnects, 0, "the first time up is not a reconnect");
    assert!(link.presence.is_live());
    assert_eq!(server.log().logins, 1);
    link.stop().await;
}

/// Log lines written by the code under test, captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// One thread (the default test runtime), so the link task logs to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_login_is_logged_once_and_retried_at_the_longest_backoff() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut answers = link_answers();
    answers.retain(|(name, _)| *name != "Login");
    answers.push(("Login", Canned::answer("01c-login-failure-wrong-secret", "a1f3c2d4-0003")));
    let server = AmiServer::start(answers).await;
    let options =
        LinkOptions { backoff_min: Duration::from_millis(10), backoff_max: Duration::from_millis(400), ..fast() };
    let link = spawn(server.port, "wrong-secret", options.clone());

    let status = link.status_until("three refused logins", |s| s.failed_attempts >= 3).await;
    assert!(status.auth_refused && !status.connected, "{status:?}");
    assert_eq!(
        status.last_error.as_deref(),
        Some("Asterisk refused the manager login for user \"admin\" (check pbx.ami_url)")
    );
    let log = server.log();
    assert_eq!(log.logins, 0);
    let logins: Vec<Instant> = log.actions.iter().filter(|a| a.action() == "Login").map(|a| a.at).collect();
    // Asterisk answers a refused login after ~1 s; the link then waits the longest backoff
    // (with jitter, at least half of it), not the shortest.
    for pair in logins.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(1000) + options.backoff_max / 2, "retried after {gap:?}");
    }

    let text = logs.text();
    assert_eq!(text.matches("AMI login refused").count(), 1, "logged once, not per retry:\n{text}");
    assert!(text.contains("ERROR"), "{text}");
    assert!(!text.contains("wrong-secret") && !text.contains("Secret:"), "a secret reached the log:\n{text}");

    // The secret is fixed on the Asterisk side: the link comes up without a restart.
    server.answer("Login", link_answers().remove(0).1);
    let up = link.connected().await;
    assert!(!up.auth_refused);
    link.stop().await;
}

#[tokio::test]
async fn keepalive_pings_are_answered_and_events_around_them_kept() {
    let server = AmiServer::start(link_answers()).await;
    let link = spawn(server.port, "secret-test", LinkOptions { keepalive: Duration::from_millis(50), ..fast() });
    link.connected().await;
    let pings = |l: &crate::common::ami_replay::ServerLog| l.actions_of(1).iter().filter(|a| **a == "Ping").count();
    server.wait_for("three Pings", |l| pings(l) >= 3).await;

    // Events that arrive while the link waits for a Pong are applied, and the Pong is not
    // taken for one of them.
    let register = step_events(UDP, 1);
    server.answer("Ping", Canned::answer("03-ping", "03-ping-1").after_events(register));
    link.presence_until("1001 registered", |p| registered(p, "1001")).await;
    let seen = pings(&server.log());
    server.wait_for("two more Pings", |l| pings(l) >= seen + 2).await;

    let status = link.handle.status();
    assert!(status.connected, "{status:?}");
    assert_eq!((status.reconnects, status.last_error), (0, None));
    assert_eq!(server.log().connections, 1);
    link.stop().await;
}

#[tokio::test]
async fn an_unanswered_ping_is_a_dead_link() {
    let server = AmiServer::start(link_answers()).await;
    server.answer_pings(false);
    let options =
        LinkOptions { keepalive: Duration::from_millis(50), ping_timeout: Duration::from_millis(300), ..fast() };
    let link = spawn(server.port, "secret-test", options);
    link.connected().await;

    let status = link.status_until("reconnected", |s| s.connected && s.reconnects >= 1).await;
    assert_eq!(
        status.last_error.as_deref(),
        Some("Asterisk did not answer in time (keepalive Ping unanswered within 300ms)")
    );
    let log = server.log();
    assert_eq!(log.actions_of(1), ["Login", "PJSIPShowEndpoints", "PJSIPShowContacts", "Ping"]);
    assert_eq!(&log.actions_of(2)[..3], ["Login", "PJSIPShowEndpoints", "PJSIPShowContacts"]);
    assert!(link.presence.is_live());
    link.stop().await;
}

#[tokio::test]
async fn against_a_real_asterisk_when_configured() {
    let Ok(url) = std::env::var("HUB_TEST_AMI_URL") else {
        println!(
            "real Asterisk event link test SKIPPED: HUB_TEST_AMI_URL is not set (only the fixture replay was used)"
        );
        return;
    };
    let target = AmiTarget::parse(&url).expect("HUB_TEST_AMI_URL is ami://user:secret@host:port");
    let presence = SipPresence::new();
    let shutdown = CancellationToken::new();
    let handle = EventLink::spawn(target, AmiAuth::Md5, presence.clone(), shutdown.clone(), LinkOptions::default());
    let link = Link { handle, presence, shutdown };
    let status = link.connected().await;
    assert!(status.greeting.as_deref().is_some_and(|g| g.starts_with("Asterisk Call Manager/")), "{status:?}");
    assert!(link.presence.is_live());
    println!("real Asterisk presence: {:?}", link.presence.snapshot());
    link.stop().await;
}

/// What the tests above push is the fixtures' real REGISTER and un-REGISTER event sequences.
#[test]
fn pushed_events_are_the_fixture_register_and_unregister() {
    let names = |events: Vec<Message>| events.iter().filter_map(|m| m.name().map(str::to_string)).collect::<Vec<_>>();
    assert_eq!(
        names(step_events(UDP, 1)),
        ["ChallengeSent", "SuccessfulAuth", "DeviceStateChange", "PeerStatus", "ContactStatus"]
    );
    assert_eq!(
        names(step_events(UDP, 2)),
        ["ChallengeSent", "SuccessfulAuth", "PeerStatus", "DeviceStateChange", "ContactStatus"]
    );
    assert_eq!(
        names(step_events(WS, 1)),
        ["ChallengeSent", "SuccessfulAuth", "PeerStatus", "DeviceStateChange", "ContactStatus"]
    );
}
