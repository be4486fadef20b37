//! The controller with fake devices (plain channels) and paused time.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::SqliteStore;

struct Tab {
    id: DeviceId,
    rx: mpsc::Receiver<String>,
}

impl Tab {
    async fn next(&mut self) -> Value {
        let text = tokio::time::timeout(Duration::from_secs(5), self.rx.recv()).await.expect("a frame").expect("open");
        serde_json::from_str(&text).unwrap()
    }

    async fn expect(&mut self, kind: &str) -> Value {
        let v = self.next().await;
        assert_eq!(v["type"], kind, "{v}");
        assert_eq!(v["v"], 1);
        v
    }

    fn quiet(&mut self) {
        assert!(self.rx.try_recv().is_err(), "unexpected frame");
    }
}

fn party(id: &str) -> Party {
    Party { id: UserId::from_string(id), name: format!("User {id}"), extension: None }
}

struct Fixture {
    calls: Calls,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn fixture(config: CallsConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("c.db"), 2).await.unwrap());
    let (calls, _task) = Calls::start(config, store.clone(), CancellationToken::new());
    Fixture { calls, store, _dir: dir }
}

impl Fixture {
    async fn tab(&self, user: &str) -> Tab {
        self.tab_from(user, IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    async fn tab_from(&self, user: &str, ip: IpAddr) -> Tab {
        let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
        let info = DeviceInfo { user: party(user), ip, session: format!("s-{user}") };
        let id = self.calls.connect(info, tx).await.unwrap();
        Tab { id, rx }
    }

    async fn say(&self, tab: &Tab, json: Value) {
        let msg: ClientMessage = serde_json::from_value(json).unwrap();
        self.calls.message(tab.id, msg).await.unwrap();
    }

    async fn call(&self, from: &mut Tab, to: &str) -> CallId {
        self.calls.place(from.id, party(to), false, Some("r1".into())).await.unwrap();
        let v = from.expect("calling").await;
        assert_eq!(v["req"], "r1");
        CallId::from_string(v["call"].as_str().unwrap())
    }

    /// The call records, once `n` have been written (they are written in the background).
    async fn records(&self, n: usize) -> Vec<CallRecord> {
        for _ in 0..500 {
            let r = self.store.call_records(None, 100).await.unwrap();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} call records written");
    }
}

#[tokio::test]
async fn every_device_rings_first_accept_wins_and_signaling_flows_between_two() {
    let f = fixture(CallsConfig::default()).await;
    let (mut a1, mut a2, mut b) = (f.tab("a").await, f.tab("a").await, f.tab("b").await);
    let call = f.call(&mut b, "a").await;
    for tab in [&mut a1, &mut a2] {
        let v = tab.expect("incoming").await;
        assert_eq!(v["from"]["name"], "User b");
    }
    f.say(&a2, serde_json::json!({"type": "accept", "call": call})).await;
    f.say(&a1, serde_json::json!({"type": "accept", "call": call})).await;
    a2.expect("accepted").await;
    b.expect("answered").await;
    a1.expect("answered_elsewhere").await;
    a1.expect("answered_elsewhere").await; // its late accept
    f.say(&b, serde_json::json!({"type": "offer", "call": call, "sdp": "v=0 offer"})).await;
    assert_eq!(a2.expect("offer").await["sdp"], "v=0 offer");
    f.say(&a2, serde_json::json!({"type": "answer", "call": call, "sdp": "v=0 answer"})).await;
    assert_eq!(b.expect("answer").await["sdp"], "v=0 answer");
    f.say(&a2, serde_json::json!({"type": "ice", "call": call, "candidate": {"candidate": "c", "sdpMid": "0"}})).await;
    assert_eq!(b.expect("ice").await["candidate"]["candidate"], "c");
    f.say(&a1, serde_json::json!({"type": "ice", "call": call, "candidate": null})).await;
    assert_eq!(a1.expect("error").await["code"], "not_your_call", "the loser cannot inject signaling");
    let p = f.calls.presence(vec![UserId::from_string("a"), UserId::from_string("c")]).await.unwrap();
    assert_eq!(p, vec![Presence { devices: 2, in_call: true }, Presence::default()]);
    f.say(&b, serde_json::json!({"type": "hangup", "call": call})).await;
    assert_eq!(b.expect("ended").await["reason"], "completed");
    assert_eq!(a2.expect("ended").await["reason"], "completed");
    a1.quiet();
    let records = f.records(1).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!((r.caller.as_str(), r.callee.as_str(), r.outcome), ("b", "a", crate::model::CallOutcome::Completed));
    assert!(r.answered_at.is_some());
    assert_eq!(r.devices, ["s-b", "s-a", "s-a"]);
    assert_eq!(f.calls.stats().await.unwrap().calls, 0, "no call leaks");
}

#[tokio::test]
async fn decline_cancel_offline_busy_and_yourself() {
    let f = fixture(CallsConfig::default()).await;
    let (mut a1, mut a2, mut b) = (f.tab("a").await, f.tab("a").await, f.tab("b").await);
    // Decline ends it on every device.
    let call = f.call(&mut b, "a").await;
    a1.expect("incoming").await;
    a2.expect("incoming").await;
    f.say(&a1, serde_json::json!({"type": "decline", "call": call})).await;
    for tab in [&mut b, &mut a1, &mut a2] {
        assert_eq!(tab.expect("ended").await["reason"], "declined");
    }
    // Cancel by the caller.
    let call = f.call(&mut b, "a").await;
    a1.expect("incoming").await;
    a2.expect("incoming").await;
    f.say(&b, serde_json::json!({"type": "cancel", "call": call})).await;
    for tab in [&mut b, &mut a1, &mut a2] {
        assert_eq!(tab.expect("ended").await["reason"], "cancelled");
    }
    // Offline callee.
    f.call(&mut b, "nobody").await;
    assert_eq!(b.expect("ended").await["reason"], "offline");
    // Yourself.
    f.calls.place(b.id, party("b"), false, None).await.unwrap();
    assert_eq!(b.expect("error").await["code"], "cannot_call_yourself");
    // Busy on every device: caller hears busy, busy devices see call waiting.
    let mut c = f.tab("c").await;
    let first = f.call(&mut c, "b").await;
    b.expect("incoming").await;
    f.say(&b, serde_json::json!({"type": "accept", "call": first})).await;
    b.expect("accepted").await;
    c.expect("answered").await;
    let mut d = f.tab("d").await;
    f.call(&mut d, "b").await;
    assert_eq!(b.expect("call_waiting").await["from"]["id"], "d");
    assert_eq!(d.expect("ended").await["reason"], "busy");
    // A busy tab cannot place another call.
    f.calls.place(b.id, party("a"), false, None).await.unwrap();
    assert_eq!(b.expect("error").await["code"], "busy");
    use crate::model::CallOutcome::*;
    let mut outcomes: Vec<_> = f.records(4).await.iter().map(|r| r.outcome.as_str()).collect();
    outcomes.sort_unstable();
    let mut want = vec![Declined.as_str(), Cancelled.as_str(), Offline.as_str(), Busy.as_str()];
    want.sort_unstable();
    assert_eq!(outcomes, want);
}

#[tokio::test]
async fn no_answer_after_the_ring_timeout() {
    let f = fixture(CallsConfig { ring_timeout: Duration::from_secs(30), ..Default::default() }).await;
    let (mut a, mut b) = (f.tab("a").await, f.tab("b").await);
    // The database is open; from here on the clock is the test's.
    tokio::time::pause();
    f.call(&mut b, "a").await;
    a.expect("incoming").await;
    tokio::time::advance(Duration::from_secs(29)).await;
    a.quiet();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(b.expect("ended").await["reason"], "no_answer");
    assert_eq!(a.expect("ended").await["reason"], "no_answer");
}

#[tokio::test]
async fn a_dropped_connection_ends_the_call_for_the_other_side() {
    let f = fixture(CallsConfig::default()).await;
    let (mut a, mut b) = (f.tab("a").await, f.tab("b").await);
    let call = f.call(&mut b, "a").await;
    a.expect("incoming").await;
    f.say(&a, serde_json::json!({"type": "accept", "call": call})).await;
    a.expect("accepted").await;
    b.expect("answered").await;
    f.calls.disconnect(a.id).await.unwrap();
    assert_eq!(b.expect("ended").await["reason"], "connection_lost");
    // Ringing devices that all go away: the caller hears no answer.
    let mut a2 = f.tab("a").await;
    let _call = f.call(&mut b, "a").await;
    a2.expect("incoming").await;
    f.calls.disconnect(a2.id).await.unwrap();
    assert_eq!(b.expect("ended").await["reason"], "no_answer");
    assert_eq!(f.calls.stats().await.unwrap(), Stats { devices: 1, calls: 0, ended: 2 });
}

#[tokio::test]
async fn ringing_limits_per_user_and_per_address() {
    let config = CallsConfig { max_outgoing_per_user: 2, max_outgoing_per_ip: 3, ..Default::default() };
    let f = fixture(config).await;
    let _targets = [f.tab("x").await, f.tab("y").await, f.tab("z").await, f.tab("w").await];
    let mut tabs = Vec::new();
    for _ in 0..3 {
        tabs.push(f.tab("caller").await);
    }
    f.call(&mut tabs[0], "x").await;
    f.call(&mut tabs[1], "y").await;
    f.calls.place(tabs[2].id, party("z"), false, None).await.unwrap();
    assert_eq!(tabs[2].expect("error").await["code"], "too_many_calls", "per user");
    let mut other = f.tab("other").await;
    f.call(&mut other, "z").await;
    let mut another = f.tab("another").await;
    f.calls.place(another.id, party("w"), false, None).await.unwrap();
    assert_eq!(another.expect("error").await["code"], "too_many_calls", "per address");
    let mut elsewhere = f.tab_from("another", "10.0.0.7".parse().unwrap()).await;
    f.call(&mut elsewhere, "w").await;
}

#[tokio::test]
async fn a_stalled_device_is_disconnected_without_stopping_the_others() {
    let f = fixture(CallsConfig::default()).await;
    let (tx, _never_read) = mpsc::channel(1);
    let info = DeviceInfo { user: party("slow"), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), session: "s".into() };
    let slow = f.calls.connect(info, tx).await.unwrap();
    for i in 0..3 {
        f.calls
            .message(slow, serde_json::from_value(serde_json::json!({"type": "ping", "req": format!("{i}")})).unwrap())
            .await
            .unwrap();
    }
    let mut fine = f.tab("fine").await;
    f.say(&fine, serde_json::json!({"type": "ping"})).await;
    fine.expect("pong").await;
    assert_eq!(f.calls.stats().await.unwrap().devices, 1, "the stalled device was dropped");
}

/// A hub number that records what its peer is given and lets the test speak for it.
#[derive(Default)]
struct FakeNumbers {
    got: Arc<std::sync::Mutex<Vec<String>>>,
    events: Arc<std::sync::Mutex<Option<super::super::service::ServiceEvents>>>,
}

struct FakePeer(Arc<std::sync::Mutex<Vec<String>>>);

impl ServicePeer for FakePeer {
    fn offer(&mut self, sdp: String) {
        self.0.lock().unwrap().push(format!("offer {sdp}"));
    }
    fn ice(&mut self, candidate: Value) {
        self.0.lock().unwrap().push(format!("ice {candidate}"));
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.0.lock().unwrap().push("dropped".into());
    }
}

impl HubNumbers for FakeNumbers {
    fn name(&self, number: &str) -> Option<String> {
        ["*43", "*99"].contains(&number).then(|| format!("Test {number}"))
    }
    fn answer(
        &self,
        call: ServiceCall,
        events: super::super::service::ServiceEvents,
    ) -> Result<Box<dyn ServicePeer>, String> {
        if call.number == "*99" {
            return Err("no ports left".into());
        }
        self.got.lock().unwrap().push(format!("answer {} from {}", call.number, call.caller.id));
        *self.events.lock().unwrap() = Some(events);
        Ok(Box::new(FakePeer(self.got.clone())))
    }
}

async fn fixture_with_numbers() -> (Fixture, Arc<FakeNumbers>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("c.db"), 2).await.unwrap());
    let numbers = Arc::new(FakeNumbers::default());
    let hub: Arc<dyn HubNumbers> = numbers.clone();
    let (calls, _task) =
        Calls::start_with_numbers(CallsConfig::default(), store.clone(), Some(hub), CancellationToken::new());
    (Fixture { calls, store, _dir: dir }, numbers)
}

#[tokio::test]
async fn a_hub_number_answers_at_once_and_takes_the_tabs_signaling() {
    let (f, numbers) = fixture_with_numbers().await;
    let mut a = f.tab("a").await;
    f.calls.dial(a.id, "*43".into(), Some("r7".into())).await.unwrap();
    let v = a.expect("calling").await;
    assert_eq!((v["req"].as_str(), v["to"]["name"].as_str()), (Some("r7"), Some("Test *43")));
    let call = v["call"].as_str().unwrap().to_string();
    a.expect("answered").await;
    f.say(&a, serde_json::json!({"type": "offer", "call": call, "sdp": "v=0 offer"})).await;
    f.say(&a, serde_json::json!({"type": "ice", "call": call, "candidate": {"candidate": "c"}})).await;
    let emit = |e: ServiceEvent| (numbers.events.lock().unwrap().as_ref().expect("answered"))(e);
    emit(ServiceEvent::Answer("v=0 answer".into()));
    emit(ServiceEvent::Ice(serde_json::json!({"candidate": "h"})));
    assert_eq!(a.expect("answer").await["sdp"], "v=0 answer");
    assert_eq!(a.expect("ice").await["candidate"]["candidate"], "h");
    let p = f.calls.presence(vec![UserId::from_string("a")]).await.unwrap();
    assert_eq!(p, vec![Presence { devices: 1, in_call: true }], "a tab talking to a hub number is in a call");
    // The tab cannot start a second call meanwhile.
    f.calls.dial(a.id, "*43".into(), Some("r8".into())).await.unwrap();
    assert_eq!(a.expect("error").await["code"], "busy");
    // The app is done: the tab sees a completed call, and the hub's peer is released.
    emit(ServiceEvent::Hangup("done".into()));
    assert_eq!(a.expect("ended").await["reason"], "completed");
    let records = f.records(1).await;
    assert_eq!((records[0].callee.as_str(), records[0].outcome), ("*43", crate::model::CallOutcome::Completed));
    assert_eq!(
        *numbers.got.lock().unwrap(),
        vec!["answer *43 from a", "offer v=0 offer", r#"ice {"candidate":"c"}"#, "dropped"]
    );
}

#[tokio::test]
async fn unknown_numbers_refused_failures_end_the_call_and_hanging_up_releases_the_peer() {
    let (f, numbers) = fixture_with_numbers().await;
    let mut a = f.tab("a").await;
    f.calls.dial(a.id, "*44".into(), Some("r1".into())).await.unwrap();
    let v = a.expect("error").await;
    assert_eq!((v["code"].as_str(), v["req"].as_str()), (Some("unknown_number"), Some("r1")));
    // The app cannot start (no ports, say): the call ends at once as unreachable.
    f.calls.dial(a.id, "*99".into(), None).await.unwrap();
    a.expect("calling").await;
    assert_eq!(a.expect("ended").await["reason"], "offline");
    // A media failure ends the call as lost; the caller's hang-up drops the peer.
    f.calls.dial(a.id, "*43".into(), None).await.unwrap();
    let call = a.expect("calling").await["call"].as_str().unwrap().to_string();
    a.expect("answered").await;
    (numbers.events.lock().unwrap().as_ref().unwrap())(ServiceEvent::Failed("ICE failed".into()));
    assert_eq!(a.expect("ended").await["reason"], "connection_lost");
    f.calls.dial(a.id, "*43".into(), None).await.unwrap();
    let call2 = a.expect("calling").await["call"].as_str().unwrap().to_string();
    assert_ne!(call, call2);
    a.expect("answered").await;
    f.say(&a, serde_json::json!({"type": "hangup", "call": call2})).await;
    assert_eq!(a.expect("ended").await["reason"], "completed");
    f.records(3).await;
    let got = numbers.got.lock().unwrap().clone();
    assert_eq!(got.iter().filter(|s| *s == "dropped").count(), 2, "{got:?}");
    // Nothing else reaches a tab that dialled without a hub (no numbers configured).
    let plain = fixture(CallsConfig::default()).await;
    let mut b = plain.tab("b").await;
    plain.calls.dial(b.id, "*43".into(), None).await.unwrap();
    assert_eq!(b.expect("error").await["code"], "unknown_number");
}

#[tokio::test]
async fn news_for_a_user_reaches_every_tab_of_theirs_and_nobody_else() {
    let f = fixture(CallsConfig::default()).await;
    let mut a1 = f.tab("a").await;
    let mut a2 = f.tab("a").await;
    let mut b = f.tab("b").await;
    f.calls.notify_user(UserId::from_string("a"), ServerMessage::Voicemail { unread: 2 }).await.unwrap();
    for tab in [&mut a1, &mut a2] {
        assert_eq!(tab.expect("voicemail").await["unread"], 2);
    }
    // Ordered behind the notice: a ping answered after it proves b got nothing in between.
    f.say(&b, serde_json::json!({"type": "ping", "req": "p"})).await;
    b.expect("pong").await;
    b.quiet();
    f.calls.notify_user(UserId::from_string("nobody"), ServerMessage::Voicemail { unread: 1 }).await.unwrap();
}

#[tokio::test]
async fn a_hub_number_transfers_the_tab_to_a_colleague_whose_tabs_ring() {
    let (f, numbers) = fixture_with_numbers().await;
    let (mut a, mut b) = (f.tab("a").await, f.tab("b").await);
    f.calls.dial(a.id, "*43".into(), None).await.unwrap();
    let ivr_call = a.expect("calling").await["call"].as_str().unwrap().to_string();
    a.expect("answered").await;
    (numbers.events.lock().unwrap().as_ref().unwrap())(ServiceEvent::Transfer(party("b")));
    let t = a.expect("transferred").await;
    assert_eq!((t["call"].as_str(), t["to"]["id"].as_str()), (Some(ivr_call.as_str()), Some("b")));
    let req = t["req"].as_str().unwrap().to_string();
    assert_eq!(a.expect("ended").await["call"], ivr_call.as_str(), "the hub number's call is over");
    let calling = a.expect("calling").await;
    assert_eq!((calling["req"].as_str(), calling["devices"].as_u64()), (Some(req.as_str()), Some(1)));
    assert_ne!(calling["call"], ivr_call.as_str());
    assert_eq!(b.expect("incoming").await["from"]["id"], "a", "the colleague's tab rings");
    assert!(numbers.got.lock().unwrap().contains(&"dropped".to_string()), "the hub's peer is released");
}
