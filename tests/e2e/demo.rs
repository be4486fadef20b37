//! Demo sign-in (no identity provider, loopback only) and the same-origin guard.

use crate::common::idp::browser;
use crate::common::{Hub, run, text};

#[tokio::test]
async fn demo_sign_in_with_a_visible_warning() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let b = browser(&hub);
    let res = b.get(hub.url("/auth/login")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/auth/demo"));
    let page = b.get(hub.url("/auth/demo")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Demo mode, no real authentication"), "{page}");
    let status: serde_json::Value = b.get(hub.url("/api/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["auth"], "demo");

    let res = b
        .post(hub.url("/auth/demo"))
        .header("origin", hub.url(""))
        .form(&[("name", "Grace Hopper")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let me: serde_json::Value = b.get(hub.url("/api/me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["user"]["display_name"], "Grace Hopper");
    assert_eq!(me["user"]["username"], "grace-hopper");
    assert_eq!(me["user"]["extension"], "1000");
    assert_eq!(me["auth_mode"], "demo");

    let bad =
        b.post(hub.url("/auth/demo")).header("origin", hub.url("")).form(&[("name", "<script>")]).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.unwrap();
    assert!(html.contains("Please enter your name") && !html.contains("<script>"), "{html}");

    let out = run(dir.path(), &["users", "sessions", "grace-hopper"], &[]);
    let (table, _) = text(&out);
    assert!(table.starts_with("SESSION"), "{table}");
    assert!(table.contains("127.0.0.1") && table.contains("hub-e2e"), "{table}");
}

#[tokio::test]
async fn writes_from_another_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let b = browser(&hub);
    let sign_in = |origin: Option<&'static str>| {
        let mut req = b.post(hub.url("/auth/demo")).form(&[("name", "Mallory")]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_eq!(sign_in(None).await.unwrap().status(), 403, "no Origin");
    assert_eq!(sign_in(Some("https://evil.example")).await.unwrap().status(), 403, "foreign Origin");
    assert_eq!(sign_in(Some("null")).await.unwrap().status(), 403, "opaque Origin");
    let ws = b
        .get(hub.url("/api/me"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), 403, "cross-site WebSocket upgrade");
    let res =
        b.post(hub.url("/auth/demo")).header("origin", hub.url("")).form(&[("name", "Mallory")]).send().await.unwrap();
    assert_eq!(res.status(), 303, "same origin is fine");
    hub.wait_for("cross-origin request refused");
}

#[test]
fn demo_mode_never_runs_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--bind", "0.0.0.0:0", "serve"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("demo sign-in is only offered on loopback"));
}
