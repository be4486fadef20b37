//! Presence from the real Asterisk 22 transcripts: seeded from the 06a/06c listings, then
//! changed by the events of 07a (register/unregister over UDP) and 07b (over WebSocket).

use tokio::sync::broadcast::Receiver;

use super::*;
use crate::pbx::ami::fixtures::server;

fn endpoint_rows(fixture: &str) -> Vec<EndpointRow> {
    server(fixture).iter().filter_map(EndpointRow::from_item).collect()
}

fn contact_rows(fixture: &str) -> Vec<ContactRow> {
    server(fixture).iter().filter_map(ContactRow::from_item).collect()
}

/// Both endpoints known, none registered (06a, and 06c's "No Contacts found").
fn seeded_unregistered() -> SipPresence {
    let p = SipPresence::new();
    let contacts = contact_rows("06c-pjsip-show-contacts");
    assert!(contacts.is_empty());
    p.seed(&endpoint_rows("06a-pjsip-show-endpoints"), &contacts);
    p
}

/// 1001 registered over UDP (06a and 06c, `-registered`).
fn seeded_registered() -> SipPresence {
    let p = SipPresence::new();
    p.seed(&endpoint_rows("06a-pjsip-show-endpoints-registered"), &contact_rows("06c-pjsip-show-contacts-registered"));
    p
}

fn drain(rx: &mut Receiver<String>) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// An event built like the real ones (for statuses the fixtures do not show).
fn event(headers: &[(&str, &str)]) -> Message {
    Message { kind: Kind::Event, headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

#[test]
fn device_states_in_both_wordings() {
    for (words, state) in [
        (&["NOT_INUSE", "Not in use"][..], DeviceState::NotInUse),
        (&["INUSE", "In use"], DeviceState::InUse),
        (&["BUSY", "Busy"], DeviceState::Busy),
        (&["INVALID", "Invalid"], DeviceState::Invalid),
        (&["UNAVAILABLE", "Unavailable"], DeviceState::Unavailable),
        (&["RINGING", "Ringing"], DeviceState::Ringing),
        (&["RINGINUSE", "Ring+Inuse"], DeviceState::RingInUse),
        (&["ONHOLD", "On Hold"], DeviceState::OnHold),
        (&["UNKNOWN", "Unknown", "something new"], DeviceState::Unknown),
    ] {
        for word in words {
            assert_eq!(DeviceState::parse(word), state, "{word}");
        }
    }
    let busy: Vec<_> = [
        DeviceState::NotInUse,
        DeviceState::InUse,
        DeviceState::Busy,
        DeviceState::Ringing,
        DeviceState::RingInUse,
        DeviceState::OnHold,
        DeviceState::Unavailable,
    ]
    .into_iter()
    .filter(|s| s.in_use())
    .collect();
    assert_eq!(busy, [DeviceState::InUse, DeviceState::Busy, DeviceState::RingInUse, DeviceState::OnHold]);
}

#[test]
fn contact_and_peer_words() {
    assert_eq!(ContactStatus::parse("NonQualified"), ContactStatus::NonQualified);
    assert_eq!(ContactStatus::parse("Reachable"), ContactStatus::Reachable);
    assert_eq!(ContactStatus::parse("Avail"), ContactStatus::Reachable);
    assert_eq!(ContactStatus::parse("Unreachable"), ContactStatus::Unreachable);
    assert_eq!(ContactStatus::parse("Unknown"), ContactStatus::Unknown);
    assert_eq!(PeerStatus::parse("Reachable"), PeerStatus::Reachable);
    assert_eq!(PeerStatus::parse("Unreachable"), PeerStatus::Unreachable);
    assert_eq!(PeerStatus::parse("Registered"), PeerStatus::Registered);
    assert_eq!(PeerStatus::parse("Unregistered"), PeerStatus::Unregistered);
}

#[test]
fn nothing_is_known_before_a_listing() {
    let p = SipPresence::new();
    let mut rx = p.subscribe();
    assert!(!p.is_live());
    for m in server("07a-register-unregister-events-udp") {
        assert_eq!(p.apply(&m), None, "an event is a change; without a listing there is nothing to change");
    }
    assert_eq!(p.get("1001"), None);
    assert_eq!(p.snapshot(), PresenceSnapshot { live: false, endpoints: Vec::new() });
    assert!(drain(&mut rx).is_empty());
}

#[test]
fn seeded_from_listings_without_registrations() {
    let p = SipPresence::new();
    let mut rx = p.subscribe();
    p.seed(&endpoint_rows("06a-pjsip-show-endpoints"), &contact_rows("06c-pjsip-show-contacts"));
    assert!(p.is_live());
    let snapshot = p.snapshot();
    let names: Vec<_> = snapshot.endpoints.iter().map(EndpointPresence::endpoint).collect();
    assert_eq!(names, ["1001", "1002"]);
    for e in &snapshot.endpoints {
        assert_eq!(e.device_state(), DeviceState::Unavailable);
        assert!(!e.is_registered() && !e.is_reachable() && !e.in_use());
        assert_eq!(e.peer_status(), None, "listings carry no peer status");
    }
    assert_eq!(drain(&mut rx), ["1001", "1002"]);
}

#[test]
fn seeded_from_listings_with_a_registration() {
    let p = seeded_registered();
    let e = p.get("1001").unwrap();
    assert_eq!(e.device_state(), DeviceState::NotInUse);
    assert!(e.is_registered() && e.is_reachable() && !e.in_use());
    assert_eq!(
        e.registered_contacts(),
        [Contact {
            aor: "1001".into(),
            uri: "sip:1001@127.0.0.1:51484".into(),
            status: ContactStatus::NonQualified,
            user_agent: Some("fixture-ua/1.0".into()),
            rtt_us: None, // `RoundtripUsec: N/A`
        }]
    );
    let other = p.get("1002").unwrap();
    assert_eq!(other.device_state(), DeviceState::Unavailable);
    assert!(!other.is_registered());
    assert_eq!(p.get("9999"), None);
}

/// Feeds every server message of a register/unregister transcript and checks the state after
/// the register (first `ContactStatus`) and after the unregister (second).
fn register_then_unregister(fixture: &str, endpoint: &str, uri: &str) {
    let p = seeded_unregistered();
    let mut rx = p.subscribe();
    let mut changed_by = Vec::new();
    let mut after_contact_status = Vec::new();
    for m in server(fixture) {
        if let Some(name) = p.apply(&m) {
            assert_eq!(name, endpoint);
            changed_by.push(m.name().unwrap().to_string());
        }
        if m.name() == Some("ContactStatus") {
            after_contact_status.push(p.get(endpoint).unwrap());
        }
    }
    let [registered, unregistered] = after_contact_status.try_into().expect("two ContactStatus events");

    assert_eq!(registered.device_state(), DeviceState::NotInUse);
    assert_eq!(registered.peer_status(), Some(PeerStatus::Reachable));
    assert!(registered.is_registered() && registered.is_reachable() && !registered.in_use());
    assert_eq!(
        registered.registered_contacts(),
        [Contact {
            aor: endpoint.into(),
            uri: uri.into(),
            status: ContactStatus::NonQualified,
            user_agent: None, // ContactStatus events do not say
            rtt_us: None,     // `RoundtripUsec: 0`: nothing was measured
        }]
    );

    assert_eq!(unregistered.device_state(), DeviceState::Unavailable);
    assert_eq!(unregistered.peer_status(), Some(PeerStatus::Unreachable));
    assert!(!unregistered.is_registered() && !unregistered.is_reachable());

    // Security events, FullyBooted, list items and responses change nothing.
    let mut expected: Vec<&str> = ["DeviceStateChange", "PeerStatus"].to_vec();
    if changed_by[0] == "PeerStatus" {
        expected.reverse(); // the order of these two differs between UDP and WebSocket
    }
    expected.extend(["ContactStatus", "PeerStatus", "DeviceStateChange", "ContactStatus"]);
    assert_eq!(changed_by, expected, "{fixture}");
    assert_eq!(drain(&mut rx), vec![endpoint.to_string(); 6]);

    let untouched = if endpoint == "1001" { "1002" } else { "1001" };
    assert_eq!(p.get(untouched).unwrap().device_state(), DeviceState::Unavailable);
}

#[test]
fn udp_register_and_unregister_events() {
    register_then_unregister("07a-register-unregister-events-udp", "1001", "sip:1001@127.0.0.1:38260");
}

#[test]
fn websocket_register_and_unregister_events() {
    register_then_unregister(
        "07b-register-unregister-events-websocket",
        "1002",
        "sip:9ul56ldb@127.0.0.1:35094;transport=WS;x-ast-orig-host=79zci6i0.invalid:0",
    );
}

#[test]
fn repeats_and_identical_listings_are_not_changes() {
    let p = seeded_unregistered();
    let mut rx = p.subscribe();
    let register: Vec<Message> = server("07a-register-unregister-events-udp")
        .into_iter()
        .take_while(|m| m.get("PeerStatus") != Some("Unreachable"))
        .collect();
    assert_eq!(register.iter().filter_map(|m| p.apply(m)).count(), 3);
    assert_eq!(register.iter().filter_map(|m| p.apply(m)).count(), 0, "the same events again");
    assert_eq!(drain(&mut rx).len(), 3);

    let p = seeded_registered();
    let mut rx = p.subscribe();
    p.seed(&endpoint_rows("06a-pjsip-show-endpoints-registered"), &contact_rows("06c-pjsip-show-contacts-registered"));
    assert!(drain(&mut rx).is_empty(), "the same listing again");
    p.seed(&endpoint_rows("06a-pjsip-show-endpoints"), &[]);
    assert_eq!(drain(&mut rx), ["1001"], "only 1001 differs in the listing without registrations");
    assert!(!p.get("1001").unwrap().is_registered());
}

#[test]
fn qualify_results_and_calls_change_a_seeded_contact() {
    let p = seeded_registered();
    let uri = "sip:1001@127.0.0.1:51484";
    let status = |word: &str, rtt: &str| {
        event(&[
            ("Event", "ContactStatus"),
            ("Privilege", "system,all"),
            ("URI", uri),
            ("ContactStatus", word),
            ("AOR", "1001"),
            ("EndpointName", "1001"),
            ("RoundtripUsec", rtt),
        ])
    };
    assert_eq!(p.apply(&status("Reachable", "1834")), Some("1001".into()));
    let c = p.get("1001").unwrap().registered_contacts()[0].clone();
    assert_eq!((c.status, c.rtt_us), (ContactStatus::Reachable, Some(1834)));
    assert_eq!(c.user_agent.as_deref(), Some("fixture-ua/1.0"), "the listing's user agent stays");

    assert_eq!(p.apply(&status("Updated", "0")), None, "a refreshed registration is not news");
    assert_eq!(p.apply(&status("Unreachable", "0")), Some("1001".into()));
    let e = p.get("1001").unwrap();
    assert!(e.is_registered() && !e.is_reachable(), "unreachable contacts stay registered");

    let device = |state: &str| event(&[("Event", "DeviceStateChange"), ("Device", "PJSIP/1001"), ("State", state)]);
    p.apply(&device("INUSE"));
    assert!(p.get("1001").unwrap().in_use());
    p.apply(&device("RINGINUSE"));
    assert_eq!(p.get("1001").unwrap().device_state(), DeviceState::RingInUse);
    p.apply(&device("NOT_INUSE"));
    assert!(!p.get("1001").unwrap().in_use());

    // A contact first seen in an event (Created, before any qualify) has an unknown status.
    let created = event(&[
        ("Event", "ContactStatus"),
        ("URI", "sip:1001@10.0.0.7:5060"),
        ("ContactStatus", "Created"),
        ("AOR", "1001"),
        ("EndpointName", "1001"),
    ]);
    assert_eq!(p.apply(&created), Some("1001".into()));
    let e = p.get("1001").unwrap();
    assert_eq!(e.registered_contacts().len(), 2);
    assert_eq!(e.registered_contacts()[1].status, ContactStatus::Unknown);
}

#[test]
fn devices_other_than_pjsip_are_ignored() {
    // 09i: VoicemailRefresh raises `DeviceStateChange` for `MWI:1001@default`;
    // 08e: a call to `Local/200@test` raises them for the Local channel.
    let p = seeded_unregistered();
    for fixture in ["09i-voicemail-refresh-new-message-mwi-events", "08e-originate-async-local-with-events"] {
        let msgs = server(fixture);
        assert!(msgs.iter().any(|m| m.name() == Some("DeviceStateChange")), "{fixture}");
        for m in &msgs {
            assert_eq!(p.apply(m), None, "{fixture}: {m:?}");
        }
    }
}

#[test]
fn clear_makes_the_state_unknown_not_unregistered() {
    let p = seeded_registered();
    let reader = p.clone();
    let mut rx = p.subscribe();
    p.clear();
    assert!(!reader.is_live());
    assert_eq!(reader.get("1001"), None);
    assert_eq!(reader.snapshot(), PresenceSnapshot { live: false, endpoints: Vec::new() });
    assert_eq!(drain(&mut rx), ["1001", "1002"]);
    let register = server("07a-register-unregister-events-udp");
    assert!(register.iter().all(|m| p.apply(m).is_none()));

    p.seed(&endpoint_rows("06a-pjsip-show-endpoints"), &[]);
    assert!(reader.is_live());
    assert!(!reader.get("1001").unwrap().is_registered());
}
