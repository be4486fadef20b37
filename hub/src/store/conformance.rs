//! One suite of storage cases, run against every backend: always SQLite, MongoDB when
//! `HUB_TEST_MONGODB_URL` is set. A backend that passes it behaves like every other one as
//! far as the rest of the hub can tell.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Store, StoreError, Unique, UserQuery};
use crate::model::{
    CallOutcome, CallPath, CallRecord, Extension, NewAuditEntry, NewMailboxMessage, NewUser, Number, NumberKind,
    NumberSource, ProvisionRecord, ProvisionStatus, RecordId, ReloadRecord, Secret, Session, SessionId, SipAccount,
    Timestamp, UserUpdate,
};

fn ext(s: &str) -> Extension {
    Extension::new(s).unwrap()
}

fn new_user(username: &str, name: &str, extension: Option<&str>) -> NewUser {
    NewUser {
        subject: Some(format!("sub-{username}")),
        username: username.into(),
        display_name: name.into(),
        email: Some(format!("{username}@example.org")),
        extension: extension.map(ext),
        admin: false,
        numbers: vec![],
    }
}

fn num(n: &str, kind: NumberKind, source: NumberSource) -> Number {
    Number { number: n.into(), kind, source }
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, want: Unique, value: &str) {
    match r {
        Err(StoreError::Conflict { what, value: v }) => {
            assert_eq!(what, want);
            assert_eq!(v, value);
        }
        other => panic!("expected a {want} conflict, got {other:?}"),
    }
}

/// Runs every case. `open` must open the same database each time it is called, so that the
/// suite can close and reopen it.
pub async fn run_conformance_suite<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = super::Result<Arc<dyn Store>>>,
{
    let store = open().await.expect("open");
    store.ping().await.expect("ping");
    users(&*store).await;
    uniqueness(&*store).await;
    search(&*store).await;
    numbers(&*store).await;
    sessions(&*store).await;
    sip_accounts(&*store).await;
    provisioning(&*store).await;
    mailbox(&*store).await;
    call_log(&*store).await;
    audit(&*store).await;
    concurrent_writers(store.clone()).await;
    let counted = store.count_users().await.unwrap();
    store.close().await;
    drop(store);
    reopened(&*open().await.expect("reopen"), counted).await;
}

async fn users(s: &dyn Store) {
    let mut nu = new_user("alice", "Alice Liddell", Some("1001"));
    nu.admin = true;
    nu.numbers = vec![
        num("+4930111", NumberKind::Work, NumberSource::Idp),
        num("+49170222", NumberKind::Mobile, NumberSource::Idp),
        num("+4930999", NumberKind::Home, NumberSource::User),
    ];
    let alice = s.create_user(nu).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.display_name, "Alice Liddell");
    assert_eq!(alice.extension, Some(ext("1001")));
    assert!(alice.admin && !alice.disabled);
    assert_eq!(alice.numbers.len(), 3);
    assert_eq!(
        alice.numbers_from(NumberSource::Idp).map(|n| n.number.as_str()).collect::<Vec<_>>(),
        ["+4930111", "+49170222"]
    );

    assert_eq!(s.user(&alice.id).await.unwrap().as_ref(), Some(&alice));
    assert_eq!(s.user_by_username("alice").await.unwrap().as_ref(), Some(&alice));
    assert_eq!(s.user_by_subject("sub-alice").await.unwrap().as_ref(), Some(&alice));
    assert_eq!(s.user_by_extension(&ext("1001")).await.unwrap().as_ref(), Some(&alice));
    assert_eq!(s.user_by_username("nobody").await.unwrap(), None);
    assert_eq!(s.user(&crate::model::UserId::generate()).await.unwrap(), None);

    let updated = s
        .update_user(
            &alice.id,
            &UserUpdate {
                display_name: Some("Alice Pleasance Liddell".into()),
                email: Some(None),
                extension: Some(Some(ext("1002"))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Alice Pleasance Liddell");
    assert_eq!(updated.email, None);
    assert_eq!(updated.extension, Some(ext("1002")));
    assert_eq!(updated.numbers, alice.numbers, "numbers survive a profile update");
    assert!(updated.updated_at >= alice.updated_at);
    assert_eq!(s.user_by_extension(&ext("1001")).await.unwrap(), None, "old extension is free again");
    let disabled = s.update_user(&alice.id, &UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert!(disabled.disabled);
    let enabled = s.update_user(&alice.id, &UserUpdate { disabled: Some(false), ..Default::default() }).await.unwrap();
    assert!(!enabled.disabled);
    let missing = s.update_user(&crate::model::UserId::generate(), &UserUpdate::default()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

async fn uniqueness(s: &dyn Store) {
    s.create_user(new_user("bob", "Bob Builder", Some("1010"))).await.unwrap();
    assert_conflict(s.create_user(new_user("bob", "Other Bob", None)).await, Unique::Username, "bob");
    let mut same_subject = new_user("bob2", "Bob Two", None);
    same_subject.subject = Some("sub-bob".into());
    assert_conflict(s.create_user(same_subject).await, Unique::Subject, "sub-bob");
    assert_conflict(s.create_user(new_user("bob3", "Bob Three", Some("1010"))).await, Unique::Extension, "1010");
    // Users without subject or extension never clash with each other.
    for name in ["nosub1", "nosub2"] {
        let mut u = new_user(name, "No Subject", None);
        u.subject = None;
        s.create_user(u).await.unwrap();
    }
    let carol = s.create_user(new_user("carol", "Carol", Some("1011"))).await.unwrap();
    assert_conflict(
        s.update_user(&carol.id, &UserUpdate { extension: Some(Some(ext("1010"))), ..Default::default() }).await,
        Unique::Extension,
        "1010",
    );
    assert_eq!(s.user(&carol.id).await.unwrap().unwrap().extension, Some(ext("1011")), "failed update changed nothing");
    assert_eq!(s.extensions_in_range(1000, 1010).await.unwrap(), vec![1002, 1010]);
    assert_eq!(s.extensions_in_range(1011, 1999).await.unwrap(), vec![1011]);
}

async fn search(s: &dyn Store) {
    for (u, n) in [
        ("mmueller", "Anna Müller"),
        ("zed", "zed Zimmermann"),
        ("bsmith", "Barbara Smith"),
        ("jsmithers", "John Smithers"),
    ] {
        s.create_user(new_user(u, n, None)).await.unwrap();
    }
    let names = |users: Vec<crate::model::User>| users.into_iter().map(|u| u.display_name).collect::<Vec<_>>();
    let q = |p: &str| UserQuery { name_prefix: Some(p.into()), ..Default::default() };
    assert_eq!(names(s.list_users(&q("smi")).await.unwrap()), ["Barbara Smith", "John Smithers"]);
    assert_eq!(names(s.list_users(&q("SMITHE")).await.unwrap()), ["John Smithers"]);
    assert_eq!(names(s.list_users(&q("mül")).await.unwrap()), ["Anna Müller"]);
    assert_eq!(names(s.list_users(&q("mmue")).await.unwrap()), ["Anna Müller"], "username matches");
    assert_eq!(names(s.list_users(&q("xyz")).await.unwrap()), Vec::<String>::new());
    assert_eq!(names(s.list_users(&q("anna m")).await.unwrap()), ["Anna Müller"], "whole-name prefix");
    let all = names(s.list_users(&UserQuery::default()).await.unwrap());
    let mut sorted = all.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(all, sorted, "sorted case-insensitively by name");
    assert!(all.contains(&"zed Zimmermann".to_string()));
    let limited = s.list_users(&UserQuery { limit: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!(names(limited), all[..2].to_vec());

    let zed = s.user_by_username("zed").await.unwrap().unwrap();
    s.update_user(&zed.id, &UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert!(names(s.list_users(&q("zim")).await.unwrap()).is_empty(), "disabled users hidden by default");
    let with_disabled = UserQuery { name_prefix: Some("zim".into()), include_disabled: true, limit: None };
    assert_eq!(names(s.list_users(&with_disabled).await.unwrap()), ["zed Zimmermann"]);
    // Renaming updates what search finds.
    s.update_user(&zed.id, &UserUpdate { display_name: Some("Zed Quux".into()), ..Default::default() }).await.unwrap();
    let renamed = UserQuery { name_prefix: Some("quu".into()), include_disabled: true, limit: None };
    assert_eq!(names(s.list_users(&renamed).await.unwrap()), ["Zed Quux"]);
    let old = UserQuery { name_prefix: Some("zimm".into()), include_disabled: true, limit: None };
    assert!(names(s.list_users(&old).await.unwrap()).is_empty());
}

async fn numbers(s: &dyn Store) {
    let u = s.user_by_username("bob").await.unwrap().unwrap();
    let set = s
        .set_numbers(
            &u.id,
            NumberSource::Idp,
            &[num("+1555", NumberKind::Work, NumberSource::Admin), num("+1555", NumberKind::Work, NumberSource::Idp)],
        )
        .await
        .unwrap();
    assert_eq!(set.numbers, vec![num("+1555", NumberKind::Work, NumberSource::Idp)], "deduplicated, source forced");
    let set = s
        .set_numbers(&u.id, NumberSource::User, &[num("+1666", NumberKind::Mobile, NumberSource::User)])
        .await
        .unwrap();
    assert_eq!(set.numbers.len(), 2);
    let set = s
        .set_numbers(
            &u.id,
            NumberSource::Idp,
            &[num("+1777", NumberKind::Mobile, NumberSource::Idp), num("+1778", NumberKind::Home, NumberSource::Idp)],
        )
        .await
        .unwrap();
    let mut got: Vec<_> = set.numbers.iter().map(|n| (n.source, n.number.as_str())).collect();
    got.sort();
    assert_eq!(got, [(NumberSource::Idp, "+1777"), (NumberSource::Idp, "+1778"), (NumberSource::User, "+1666")]);
    assert_eq!(s.user(&u.id).await.unwrap().unwrap().numbers, set.numbers);
    let missing = s.set_numbers(&crate::model::UserId::generate(), NumberSource::Idp, &[]).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

async fn sessions(s: &dyn Store) {
    let u = s.user_by_username("carol").await.unwrap().unwrap();
    let now = Timestamp::now();
    let mk = |created: i64, ttl: u64| Session {
        id: SessionId::generate(),
        user_id: u.id.clone(),
        created_at: Timestamp::from_millis(now.as_millis() + created),
        expires_at: Timestamp::from_millis(now.as_millis() + created).plus(Duration::from_secs(ttl)),
        user_agent: Some("Mozilla/5.0 test".into()),
        ip: Some("127.0.0.1".into()),
    };
    let a = mk(0, 3600);
    let b = mk(1, 3600);
    let old = mk(-10_000, 1);
    for x in [&a, &b, &old] {
        s.create_session(x).await.unwrap();
    }
    assert_eq!(s.session(&a.id).await.unwrap().as_ref(), Some(&a));
    let (joined, owner) = s.session_with_user(&a.id).await.unwrap().unwrap();
    assert_eq!((joined, owner.id.clone()), (a.clone(), u.id.clone()));
    assert_eq!(owner, s.user(&u.id).await.unwrap().unwrap(), "the joined user is the whole user");
    assert_eq!(s.session_with_user(&SessionId::generate()).await.unwrap(), None);
    assert_eq!(s.sessions_of(&u.id).await.unwrap(), vec![old.clone(), a.clone(), b.clone()]);
    assert_eq!(s.purge_expired_sessions(now).await.unwrap(), 1);
    assert_eq!(s.session(&old.id).await.unwrap(), None);
    assert!(s.delete_session(&a.id).await.unwrap());
    assert!(!s.delete_session(&a.id).await.unwrap());
    assert_eq!(s.sessions_of(&u.id).await.unwrap(), vec![b.clone()]);
    s.create_session(&mk(2, 3600)).await.unwrap();
    assert_eq!(s.delete_sessions_of(&u.id).await.unwrap(), 2);
    assert!(s.sessions_of(&u.id).await.unwrap().is_empty());
    let orphan = Session { user_id: crate::model::UserId::generate(), ..mk(0, 60) };
    assert!(matches!(s.create_session(&orphan).await, Err(StoreError::NotFound(_))));
    // One live session kept for the reopen check.
    s.create_session(&mk(3, 3600)).await.unwrap();
}

async fn sip_accounts(s: &dyn Store) {
    let bob = s.user_by_username("bob").await.unwrap().unwrap();
    let carol = s.user_by_username("carol").await.unwrap().unwrap();
    let acct = SipAccount {
        user_id: bob.id.clone(),
        username: "u-bob".into(),
        secret: Secret::new("first-secret"),
        rotated_at: Timestamp::from_millis(1_000),
    };
    s.put_sip_account(&acct).await.unwrap();
    assert_eq!(s.sip_account(&bob.id).await.unwrap().as_ref(), Some(&acct));
    assert_eq!(s.sip_account(&bob.id).await.unwrap().unwrap().secret.expose(), "first-secret");
    let rotated =
        SipAccount { secret: Secret::new("second-secret"), rotated_at: Timestamp::from_millis(2_000), ..acct.clone() };
    s.put_sip_account(&rotated).await.unwrap();
    assert_eq!(s.sip_account_by_username("u-bob").await.unwrap().unwrap().secret.expose(), "second-secret");
    let clash = SipAccount { user_id: carol.id.clone(), ..acct.clone() };
    assert_conflict(s.put_sip_account(&clash).await, Unique::SipUsername, "u-bob");
    let carols = SipAccount { user_id: carol.id.clone(), username: "u-carol".into(), ..acct.clone() };
    s.put_sip_account(&carols).await.unwrap();
    let names: Vec<_> = s.sip_accounts().await.unwrap().into_iter().map(|a| a.username).collect();
    assert_eq!(names, ["u-bob", "u-carol"]);
    assert!(s.delete_sip_account(&carol.id).await.unwrap());
    assert!(!s.delete_sip_account(&carol.id).await.unwrap());
    assert_eq!(s.sip_account(&carol.id).await.unwrap(), None);

    // Many at once; a clash inside the batch is the same typed conflict.
    let batch = [
        SipAccount { user_id: carol.id.clone(), username: "u-carol-2".into(), ..acct.clone() },
        SipAccount { secret: Secret::new("third-secret"), ..acct.clone() },
    ];
    s.put_sip_accounts(&batch).await.unwrap();
    assert_eq!(s.sip_account(&carol.id).await.unwrap().unwrap().username, "u-carol-2");
    assert_eq!(s.sip_account(&bob.id).await.unwrap().unwrap().secret.expose(), "third-secret");
    let clash = [SipAccount { user_id: carol.id.clone(), username: "u-bob".into(), ..acct.clone() }];
    assert_conflict(s.put_sip_accounts(&clash).await, Unique::SipUsername, "u-bob");
    s.put_sip_account(&rotated).await.unwrap();
    assert!(s.delete_sip_account(&carol.id).await.unwrap());
}

async fn provisioning(s: &dyn Store) {
    let bob = s.user_by_username("bob").await.unwrap().unwrap();
    let carol = s.user_by_username("carol").await.unwrap().unwrap();
    assert!(s.provision_records().await.unwrap().is_empty());
    assert_eq!(s.last_reload().await.unwrap(), None);
    let pending = ProvisionRecord {
        user_id: bob.id.clone(),
        endpoint: "u-bob".into(),
        desired: Some("r1".into()),
        applied: None,
        status: ProvisionStatus::Pending,
        detail: "Asterisk unreachable".into(),
        updated_at: Timestamp::from_millis(1_000),
    };
    let removed = ProvisionRecord {
        user_id: carol.id.clone(),
        endpoint: "u-carol".into(),
        desired: None,
        applied: None,
        status: ProvisionStatus::Removed,
        detail: String::new(),
        updated_at: Timestamp::from_millis(1_000),
    };
    s.put_provision_records(&[removed.clone(), pending.clone()]).await.unwrap();
    assert_eq!(s.provision_records().await.unwrap(), [pending.clone(), removed.clone()]);
    assert!(pending.is_pending() && !removed.is_pending());
    let done = ProvisionRecord {
        applied: Some("r1".into()),
        status: ProvisionStatus::Provisioned,
        detail: String::new(),
        updated_at: Timestamp::from_millis(2_000),
        ..pending.clone()
    };
    s.put_provision_records(std::slice::from_ref(&done)).await.unwrap();
    assert_eq!(s.provision_records().await.unwrap(), [done, removed]);
    let ghost = ProvisionRecord { user_id: crate::model::UserId::generate(), ..pending };
    assert!(matches!(s.put_provision_records(&[ghost]).await, Err(StoreError::NotFound(_))));
    let reload = ReloadRecord {
        at: Timestamp::from_millis(3_000),
        ok: false,
        detail: "1 failed".into(),
        changed: 2,
        duration_ms: 40,
    };
    s.put_reload(&reload).await.unwrap();
    let later = ReloadRecord { ok: true, at: Timestamp::from_millis(4_000), ..reload };
    s.put_reload(&later).await.unwrap();
    assert_eq!(s.last_reload().await.unwrap(), Some(later));
}

async fn mailbox(s: &dyn Store) {
    let bob = s.user_by_username("bob").await.unwrap().unwrap();
    let carol = s.user_by_username("carol").await.unwrap().unwrap();
    let mk = |owner: &crate::model::UserId, from: &str| NewMailboxMessage {
        owner: owner.clone(),
        from: from.into(),
        duration_ms: 4_200,
        media_type: "audio/wav".into(),
        path: format!("{owner}/{from}.wav"),
    };
    let m1 = s.add_message(mk(&bob.id, "+4930111")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let m2 = s.add_message(mk(&bob.id, "Carol")).await.unwrap();
    s.add_message(mk(&carol.id, "Bob")).await.unwrap();
    assert!(!m1.read && m1.deleted_at.is_none());
    assert_eq!(s.message(&m1.id).await.unwrap().as_ref(), Some(&m1));
    let ids: Vec<_> = s.messages(&bob.id, false).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![m2.id.clone(), m1.id.clone()], "newest first, only the owner's");
    assert_eq!(s.unread_count(&bob.id).await.unwrap(), 2);
    assert!(s.set_read(&m1.id, true).await.unwrap());
    assert_eq!(s.unread_count(&bob.id).await.unwrap(), 1);
    let trashed_at = Timestamp::now();
    assert!(s.set_trashed(&m2.id, Some(trashed_at)).await.unwrap());
    assert_eq!(s.unread_count(&bob.id).await.unwrap(), 0, "trash is not counted");
    assert_eq!(s.messages(&bob.id, false).await.unwrap().len(), 1);
    assert_eq!(s.messages(&bob.id, true).await.unwrap()[0].deleted_at, Some(trashed_at));
    assert!(s.trashed_before(trashed_at).await.unwrap().is_empty());
    assert_eq!(s.trashed_before(trashed_at.plus(Duration::from_millis(1))).await.unwrap().len(), 1);
    assert!(s.set_trashed(&m2.id, None).await.unwrap(), "restore");
    assert_eq!(s.messages(&bob.id, false).await.unwrap().len(), 2);
    assert!(s.delete_message(&m1.id).await.unwrap());
    assert_eq!(s.message(&m1.id).await.unwrap(), None);
    assert!(!s.set_read(&m1.id, true).await.unwrap());
    let orphan = mk(&crate::model::UserId::generate(), "x");
    assert!(matches!(s.add_message(orphan).await, Err(StoreError::NotFound(_))));
}

async fn call_log(s: &dyn Store) {
    let base = Timestamp::now().as_millis();
    let rec = |i: i64, caller: &str, callee: &str, outcome| CallRecord {
        id: RecordId::generate(),
        caller: caller.into(),
        callee: callee.into(),
        path: CallPath::Browser,
        devices: vec!["dev-a".into(), "dev-b".into()],
        started_at: Timestamp::from_millis(base + i * 1000),
        answered_at: (outcome == CallOutcome::Completed).then(|| Timestamp::from_millis(base + i * 1000 + 500)),
        ended_at: Timestamp::from_millis(base + i * 1000 + 900),
        outcome,
    };
    let r1 = rec(1, "bob", "carol", CallOutcome::Completed);
    let r2 = rec(2, "carol", "alice", CallOutcome::NoAnswer);
    let r3 = rec(3, "alice", "bob", CallOutcome::Declined);
    for r in [&r1, &r2, &r3] {
        s.add_call_record(r).await.unwrap();
    }
    assert_eq!(s.call_records(None, 10).await.unwrap(), vec![r3.clone(), r2.clone(), r1.clone()]);
    assert_eq!(s.call_records(Some("carol"), 10).await.unwrap(), vec![r2.clone(), r1.clone()]);
    assert_eq!(s.call_records(None, 1).await.unwrap(), vec![r3.clone()]);
    assert_conflict(s.add_call_record(&r1).await, Unique::Id, r1.id.as_str());
}

async fn audit(s: &dyn Store) {
    let bob = s.user_by_username("bob").await.unwrap().unwrap();
    let e1 = s
        .audit(NewAuditEntry {
            user_id: Some(bob.id.clone()),
            actor: "cli".into(),
            ip: None,
            action: "user.create".into(),
            detail: "created by test".into(),
        })
        .await
        .unwrap();
    let e2 = s
        .audit(NewAuditEntry {
            user_id: None,
            actor: "web".into(),
            ip: Some("127.0.0.1".into()),
            action: "session.login_failed".into(),
            detail: "bad state".into(),
        })
        .await
        .unwrap();
    let all = s.audit_entries(None, 10).await.unwrap();
    assert_eq!(all[..2], [e2.clone(), e1.clone()], "newest first");
    assert_eq!(s.audit_entries(Some(&bob.id), 10).await.unwrap(), vec![e1]);
}

async fn concurrent_writers(s: Arc<dyn Store>) {
    // 40 writers creating distinct users at once: every one lands.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.spawn(async move {
            s.create_user(new_user(&format!("par{i}"), &format!("Parallel {i}"), Some(&format!("2{i:03}")))).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(s.extensions_in_range(2000, 2999).await.unwrap().len(), 40);
    // 20 writers racing for one extension: exactly one wins, every other gets a typed conflict.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.spawn(async move { s.create_user(new_user(&format!("race{i}"), "Racer", Some("3000"))).await });
    }
    let (mut won, mut conflicts) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { what: Unique::Extension, .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error under contention: {e}"),
        }
    }
    assert_eq!((won, conflicts), (1, 19));
}

async fn reopened(s: &dyn Store, users: u64) {
    assert_eq!(s.count_users().await.unwrap(), users);
    let alice = s.user_by_username("alice").await.unwrap().expect("alice survives a reopen");
    assert_eq!(alice.numbers.len(), 3);
    let carol = s.user_by_username("carol").await.unwrap().unwrap();
    assert_eq!(s.sessions_of(&carol.id).await.unwrap().len(), 1);
    let bob = s.user_by_username("bob").await.unwrap().unwrap();
    assert_eq!(s.sip_account(&bob.id).await.unwrap().unwrap().secret.expose(), "second-secret");
    assert_eq!(s.messages(&bob.id, false).await.unwrap().len(), 1);
    assert_eq!(s.call_records(None, 100).await.unwrap().len(), 3);
    assert!(s.audit_entries(None, 100).await.unwrap().len() >= 2);
    let found = s.list_users(&UserQuery { name_prefix: Some("smith".into()), ..Default::default() }).await.unwrap();
    assert_eq!(found.len(), 2, "search index survives a reopen");
}
