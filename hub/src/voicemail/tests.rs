//! Mailboxes over an SQLite store in a temporary directory, with a real call controller and
//! fake tabs (plain channels) to see the unread count arrive.

use std::time::Duration;

use tokio::sync::mpsc;

use super::audio::tests::{ogg_opus, wav, webm};
use super::*;
use crate::calls::signal::Party;
use crate::calls::{DEVICE_QUEUE, DeviceInfo};
use crate::model::{Extension, NewUser, UserUpdate};
use crate::store::SqliteStore;

struct Fixture {
    vm: Voicemail,
    store: Arc<dyn Store>,
    calls: Calls,
    dir: tempfile::TempDir,
    alice: User,
    bob: User,
}

async fn fixture(config: impl FnOnce(&mut VoicemailConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("v.db"), 2).await.unwrap());
    let (calls, _) = Calls::start(Default::default(), store.clone(), CancellationToken::new());
    let mut cfg = VoicemailConfig { recordings_dir: dir.path().join("recordings"), ..VoicemailConfig::default() };
    config(&mut cfg);
    let vm = Voicemail::new(store.clone(), &cfg, Some(calls.clone()));
    let user = |name: &str, ext: Option<&str>| NewUser {
        username: name.to_lowercase(),
        display_name: format!("{name} Tester"),
        extension: ext.map(|e| Extension::new(e).unwrap()),
        ..NewUser::default()
    };
    let alice = store.create_user(user("Alice", Some("1001"))).await.unwrap();
    let bob = store.create_user(user("Bob", None)).await.unwrap();
    Fixture { vm, store, calls, dir, alice, bob }
}

impl Fixture {
    async fn tab(&self, user: &User) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
        let party = Party { id: user.id.clone(), name: user.display_name.clone(), extension: None };
        let info = DeviceInfo { user: party, ip: std::net::Ipv4Addr::LOCALHOST.into(), session: "s".into() };
        self.calls.connect(info, tx).await.unwrap();
        rx
    }

    async fn send_wav(&self, from: &User, to: &User, ms: u32) -> MailboxMessage {
        self.vm.send(from, &to.id, Some("audio/wav"), wav(ms).into()).await.unwrap().1
    }
}

async fn unread_notice(rx: &mut mpsc::Receiver<String>) -> u64 {
    let text = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a notice").expect("open");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "voicemail", "{v}");
    v["unread"].as_u64().unwrap()
}

#[tokio::test]
async fn a_browser_message_is_filed_for_the_recipient_and_their_tabs_hear_of_it() {
    let f = fixture(|_| {}).await;
    let mut bob_tab = f.tab(&f.bob).await;
    let (to, m) = f.vm.send(&f.alice, &f.bob.id, Some("audio/webm;codecs=opus"), webm(2500).into()).await.unwrap();
    assert_eq!(to.id, f.bob.id);
    assert_eq!((m.owner.clone(), m.from.as_str(), m.duration_ms), (f.bob.id.clone(), "Alice Tester <1001>", 2500));
    assert_eq!(m.media_type, "audio/webm");
    assert!(m.path.starts_with(&format!("voicemail/{}/", f.bob.id)) && m.path.ends_with(".webm"), "{}", m.path);
    assert_eq!(std::fs::read(f.vm.audio_path(&m).unwrap()).unwrap(), webm(2500));
    assert_eq!(unread_notice(&mut bob_tab).await, 1);

    let ogg = f.vm.send(&f.bob, &f.alice.id, None, ogg_opus(1000).into()).await.unwrap().1;
    assert_eq!((ogg.from.as_str(), ogg.media_type.as_str(), ogg.duration_ms), ("Bob Tester", "audio/ogg", 1000));

    // Heard, trashed, restored: each change reaches the tab with the new count.
    f.vm.set_read(&f.bob.id, &m.id, true).await.unwrap();
    assert_eq!(unread_notice(&mut bob_tab).await, 0);
    f.vm.set_read(&f.bob.id, &m.id, false).await.unwrap();
    assert_eq!(unread_notice(&mut bob_tab).await, 1);
    f.vm.move_to_trash(&f.bob.id, &m.id).await.unwrap();
    assert_eq!(unread_notice(&mut bob_tab).await, 0);
    assert!(f.vm.inbox(&f.bob.id).await.unwrap().is_empty());
    assert_eq!(f.vm.trash(&f.bob.id).await.unwrap()[0].id, m.id);
    f.vm.restore(&f.bob.id, &m.id).await.unwrap();
    assert_eq!(unread_notice(&mut bob_tab).await, 1);
    assert_eq!(f.vm.inbox(&f.bob.id).await.unwrap()[0].id, m.id);
}

#[tokio::test]
async fn unheard_messages_come_first_each_group_newest_first() {
    let f = fixture(|_| {}).await;
    let a = f.send_wav(&f.alice, &f.bob, 100).await;
    let b = f.send_wav(&f.alice, &f.bob, 200).await;
    let c = f.send_wav(&f.alice, &f.bob, 300).await;
    f.vm.set_read(&f.bob.id, &c.id, true).await.unwrap();
    let order: Vec<_> = f.vm.inbox(&f.bob.id).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(order, [b.id, a.id, c.id]);
    assert_eq!(f.vm.unread(&f.bob.id).await.unwrap(), 2);
}

#[tokio::test]
async fn nobody_but_the_owner_reaches_a_message_and_a_refusal_changes_nothing() {
    let f = fixture(|_| {}).await;
    let m = f.send_wav(&f.alice, &f.bob, 500).await;
    let alice = &f.alice.id;
    assert!(matches!(f.vm.message(alice, &m.id).await, Err(VoicemailError::NotFound)));
    assert!(matches!(f.vm.set_read(alice, &m.id, true).await, Err(VoicemailError::NotFound)));
    assert!(matches!(f.vm.move_to_trash(alice, &m.id).await, Err(VoicemailError::NotFound)));
    f.store.set_trashed(&m.id, Some(Timestamp::now())).await.unwrap();
    assert!(matches!(f.vm.restore(alice, &m.id).await, Err(VoicemailError::NotFound)));
    let now = f.store.message(&m.id).await.unwrap().unwrap();
    assert!(!now.read && now.deleted_at.is_some(), "unchanged by Alice's attempts");
    let unknown = MessageId::from_string("no-such-id");
    assert!(matches!(f.vm.message(&f.bob.id, &unknown).await, Err(VoicemailError::NotFound)));
}

#[tokio::test]
async fn uploads_are_checked_by_content_size_and_length() {
    let f = fixture(|c| c.max_message = Duration::from_secs(2)).await;
    let refused = |r: Result<Checked>| match r {
        Err(VoicemailError::Unsupported(why)) => why,
        other => panic!("{other:?}"),
    };
    assert!(refused(f.vm.check(Some("audio/webm"), &wav(500))).contains("WAV, not WebM"));
    assert!(refused(f.vm.check(Some("audio/webm"), b"definitely not audio at all")).contains("not a WebM"));
    assert!(refused(f.vm.check(Some("image/png"), &wav(500))).contains("not an audio type"));
    assert!(matches!(f.vm.check(None, &wav(2500)), Err(VoicemailError::TooLong { duration_ms: 2500, limit_ms: 2000 })));
    let huge = vec![0u8; MAX_UPLOAD_BYTES + 1];
    assert!(matches!(f.vm.check(None, &huge), Err(VoicemailError::TooLarge { .. })));
    assert_eq!(f.vm.check(Some("application/octet-stream"), &wav(2000)).unwrap().duration_ms, 2000);

    // A refused upload files nothing.
    assert!(f.vm.send(&f.alice, &f.bob.id, Some("audio/webm"), wav(500).into()).await.is_err());
    assert!(f.vm.inbox(&f.bob.id).await.unwrap().is_empty());
    assert!(!f.dir.path().join("recordings/voicemail").exists());
}

#[tokio::test]
async fn only_enabled_colleagues_receive_messages() {
    let f = fixture(|_| {}).await;
    let nobody = UserId::from_string("0196f3c1-0000-7000-8000-000000000000");
    let evil = UserId::from_string("../../etc");
    for to in [&nobody, &evil] {
        assert!(matches!(f.vm.send(&f.alice, to, None, wav(100).into()).await, Err(VoicemailError::UnknownRecipient)));
    }
    f.store.update_user(&f.bob.id, &UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
    let to_bob = f.vm.send(&f.alice, &f.bob.id, None, wav(100).into()).await;
    assert!(matches!(to_bob, Err(VoicemailError::UnknownRecipient)));
}

#[tokio::test]
async fn the_purge_takes_file_and_record_of_old_trash_only() {
    let f = fixture(|c| c.trash_retention = Duration::from_secs(3600)).await;
    let old = f.send_wav(&f.alice, &f.bob, 100).await;
    let recent = f.send_wav(&f.alice, &f.bob, 100).await;
    let kept = f.send_wav(&f.alice, &f.bob, 100).await;
    let long_ago = Timestamp::now().as_millis() - 2 * 3600 * 1000;
    f.store.set_trashed(&old.id, Some(Timestamp::from_millis(long_ago))).await.unwrap();
    f.vm.move_to_trash(&f.bob.id, &recent.id).await.unwrap();
    assert_eq!(f.vm.purge().await.unwrap(), 1);
    assert!(f.store.message(&old.id).await.unwrap().is_none());
    assert!(!f.vm.audio_path(&old).unwrap().exists(), "the file went with the record");
    for m in [&recent, &kept] {
        assert!(f.vm.audio_path(m).unwrap().exists());
        assert!(f.store.message(&m.id).await.unwrap().is_some());
    }
    assert_eq!(f.vm.purge().await.unwrap(), 0);
}

#[tokio::test]
async fn a_purger_runs_at_once_and_stops_when_told() {
    let f = fixture(|c| c.trash_retention = Duration::from_secs(1)).await;
    let m = f.send_wav(&f.alice, &f.bob, 100).await;
    f.store.set_trashed(&m.id, Some(Timestamp::from_millis(1000))).await.unwrap();
    let cancel = CancellationToken::new();
    let task = f.vm.spawn_purger(cancel.clone());
    tokio::time::timeout(Duration::from_secs(5), async {
        while f.store.message(&m.id).await.unwrap().is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("purged on the first tick");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").unwrap();
}

#[tokio::test]
async fn a_greeting_is_saved_replaced_across_containers_and_deleted() {
    let f = fixture(|_| {}).await;
    assert_eq!(f.vm.greeting(&f.alice.id), None);
    assert!(matches!(f.vm.delete_greeting(&f.alice.id).await, Err(VoicemailError::NoGreeting)));
    let c = f.vm.save_greeting(&f.alice.id, Some("audio/webm"), webm(1200).into()).await.unwrap();
    assert_eq!((c.kind, c.duration_ms), (AudioKind::Webm, 1200));
    let g = f.vm.greeting(&f.alice.id).unwrap();
    assert_eq!(g.path, f.dir.path().join(format!("recordings/greetings/{}.webm", f.alice.id)));
    f.vm.save_greeting(&f.alice.id, None, wav(800).into()).await.unwrap();
    assert_eq!(f.vm.greeting(&f.alice.id).unwrap().kind, AudioKind::Wav);
    assert!(!g.path.exists(), "the WebM one is gone");
    assert_eq!(f.vm.greeting(&f.bob.id), None, "one person's greeting is nobody else's");
    f.vm.delete_greeting(&f.alice.id).await.unwrap();
    assert_eq!(f.vm.greeting(&f.alice.id), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_works_from_a_thread_outside_the_runtime() {
    let f = fixture(|_| {}).await;
    let mut tab = f.tab(&f.bob).await;
    // As the IVR does: file the record itself, then call the notifier from its own thread.
    f.store
        .add_message(NewMailboxMessage {
            owner: f.bob.id.clone(),
            from: "+4930123".into(),
            duration_ms: 1000,
            media_type: "audio/wav".into(),
            path: "voicemail/x.wav".into(),
        })
        .await
        .unwrap();
    // The IVR gets its notifier before the controller runs; the controller comes later.
    let late = Voicemail::new(f.store.clone(), &VoicemailConfig::default(), None);
    let notify = late.notifier();
    late.attach_calls(f.calls.clone());
    let bob = f.bob.id.clone();
    std::thread::spawn(move || notify(bob)).join().unwrap();
    assert_eq!(unread_notice(&mut tab).await, 1);
}
