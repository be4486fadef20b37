use std::sync::Arc;

use super::*;
use crate::model::{NumberKind, NumberSource};
use crate::store::{SqliteStore, Unique};

async fn directory(range: &str) -> (Directory, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("d.db"), 4).await.unwrap());
    (Directory::new(store.clone(), range.parse().unwrap()), store, dir)
}

fn add(username: &str, extension: Option<&str>) -> AddUser {
    AddUser {
        username: username.into(),
        display_name: format!("User {username}"),
        extension: extension.map(Into::into),
        ..Default::default()
    }
}

#[tokio::test]
async fn extensions_are_handed_out_in_order_until_the_range_is_exhausted() {
    let (d, _s, _t) = directory("2000-2002").await;
    let actor = Actor::cli();
    d.add_user(add("fixed", Some("2001")), &actor).await.unwrap();
    let a = d.add_user(add("a", None), &actor).await.unwrap();
    let b = d.add_user(add("b", None), &actor).await.unwrap();
    assert_eq!(a.extension.unwrap().as_str(), "2000");
    assert_eq!(b.extension.unwrap().as_str(), "2002");
    let err = d.add_user(add("c", None), &actor).await.unwrap_err();
    assert!(matches!(err, DirectoryError::RangeExhausted(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "no free extension left in pbx.extension_range 2000-2002: widen the range or free an extension"
    );
}

#[tokio::test]
async fn concurrent_adds_never_share_an_extension() {
    let (d, _s, _t) = directory("3000-3099").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let d = d.clone();
        tasks.spawn(async move { d.add_user(add(&format!("u{i}"), None), &Actor::cli()).await });
    }
    let mut exts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        exts.push(r.unwrap().unwrap().extension.unwrap().value());
    }
    exts.sort_unstable();
    exts.dedup();
    assert_eq!(exts.len(), 30);
}

#[tokio::test]
async fn duplicate_extension_is_a_typed_conflict() {
    let (d, _s, _t) = directory("1000-1999").await;
    d.add_user(add("a", Some("1500")), &Actor::cli()).await.unwrap();
    let err = d.add_user(add("b", Some("1500")), &Actor::cli()).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Store(StoreError::Conflict { what: Unique::Extension, .. })), "{err}");
    assert_eq!(err.to_string(), "extension \"1500\" is already taken");
}

#[tokio::test]
async fn find_by_username_extension_or_id() {
    let (d, _s, _t) = directory("1000-1999").await;
    let u = d.add_user(add("alice", Some("1234")), &Actor::cli()).await.unwrap();
    assert_eq!(d.find("alice").await.unwrap().id, u.id);
    assert_eq!(d.find("1234").await.unwrap().id, u.id);
    assert_eq!(d.find(u.id.as_str()).await.unwrap().id, u.id);
    assert!(matches!(d.find("bob").await, Err(DirectoryError::NotFound(_))));
}

#[tokio::test]
async fn disabling_ends_sessions_and_is_audited() {
    let (d, s, _t) = directory("1000-1999").await;
    let u = d.add_user(add("alice", None), &Actor::cli()).await.unwrap();
    let now = crate::model::Timestamp::now();
    for _ in 0..2 {
        let session = crate::model::Session {
            id: crate::model::SessionId::generate(),
            user_id: u.id.clone(),
            created_at: now,
            expires_at: now.plus(std::time::Duration::from_secs(60)),
            user_agent: None,
            ip: None,
        };
        s.create_session(&session).await.unwrap();
    }
    let (user, ended) = d.set_disabled("alice", true, &Actor::cli()).await.unwrap();
    assert!(user.disabled);
    assert_eq!(ended, 2);
    assert!(s.sessions_of(&u.id).await.unwrap().is_empty());
    let actions: Vec<_> = s.audit_entries(Some(&u.id), 10).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["user.disable", "user.create"]);
}

#[test]
fn invalid_input_is_refused_with_the_field_named() {
    let bad = |f: fn(&mut AddUser)| {
        let mut a = add("alice", None);
        f(&mut a);
        a.validate().unwrap_err().to_string()
    };
    assert!(bad(|a| a.username = "al ice".into()).starts_with("username: "));
    assert!(bad(|a| a.username = String::new()).starts_with("username: "));
    assert!(bad(|a| a.display_name = "Evil\n[endpoint]".into()).starts_with("name: must not contain control"));
    assert!(bad(|a| a.email = Some("nope".into())).starts_with("email: "));
    assert!(bad(|a| a.extension = Some("01".into())).starts_with("extension: "));
    assert!(bad(|a| a.numbers = vec!["12ab".into()]).starts_with("number: "));
    assert!(bad(|a| a.numbers = vec!["+4930:fax".into()]).starts_with("number: unknown NumberKind"));
}

#[test]
fn numbers_are_normalised() {
    let n = parse_number("+49 (30) 1234-567:mobile", NumberSource::Admin).unwrap();
    assert_eq!(n.number, "+49301234567");
    assert_eq!(n.kind, NumberKind::Mobile);
    assert_eq!(parse_number("030 123", NumberSource::User).unwrap().kind, NumberKind::Work);
}
