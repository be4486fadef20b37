//! Sign-in through a real OpenID provider (`oidc-provider`), sessions on several devices, and
//! every way a sign-in must be refused.

use std::time::Duration;

use crate::common::idp::{AtProvider, Idp, browser, pause, query_param, sign_in, to_callback};
use crate::common::{Hub, run, text};

/// A provider and a hub that uses it (with extra environment), the hub registered there.
async fn setup(extra_env: &[(&str, &str)]) -> (Idp, Hub, tempfile::TempDir) {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let idp_env = idp.hub_env();
    let mut env: Vec<(&str, &str)> = idp_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra_env);
    let hub = Hub::start(dir.path(), &[], &env);
    idp.register(&hub).await;
    (idp, hub, dir)
}

async fn fetch_me(browser: &reqwest::Client, hub: &Hub) -> (u16, serde_json::Value) {
    let res = browser.get(hub.url("/api/me")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

/// The page a refused sign-in shows: status, and the sentence in it.
async fn refused_page(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign-in did not work"), "{html}");
    assert!(!html.to_lowercase().contains("panicked") && !html.contains("stack"), "{html}");
    (status, html)
}

#[tokio::test]
async fn first_sign_in_creates_the_user_from_the_claims() {
    let (_idp, hub, dir) = setup(&[]).await;
    let alice = browser(&hub);
    let res = sign_in(&alice, &hub, "alice").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["hub_session=", "HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    hub.wait_for_event("signed in", "method", "oidc");

    let (status, me) = fetch_me(&alice, &hub).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(me["user"]["display_name"], "Alice Liddell");
    assert_eq!(me["user"]["email"], "alice@example.org");
    assert_eq!(me["user"]["extension"], "1001", "extension from the IdP claim");
    assert_eq!(me["user"]["admin"], true, "groups claim holds hub-admins");
    let numbers: Vec<_> = me["user"]["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["number"].as_str().unwrap(), n["read_only"].as_bool().unwrap()))
        .collect();
    assert_eq!(numbers, [("+49301234567", true), ("+491705550001", true), ("+49307654321", true)]);
    assert_eq!(me["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(me["sessions"][0]["current"], true);
    assert!(me["sessions"][0]["user_agent"].as_str().unwrap().contains("hub-e2e"));
    assert_eq!(me["auth_mode"], "oidc");

    // The directory holds the same, with the numbers marked as coming from the IdP.
    let out = run(dir.path(), &["users", "show", "alice", "--json"], &[]);
    let shown: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(shown["subject"], "alice");
    assert!(shown["numbers"].as_array().unwrap().iter().all(|n| n["source"] == "idp"));

    // A second sign-in finds the same user, with a second session.
    let again = browser(&hub);
    assert_eq!(sign_in(&again, &hub, "alice").await.status(), 303);
    let (_, me2) = fetch_me(&again, &hub).await;
    assert_eq!(me2["user"]["id"], me["user"]["id"]);
    assert_eq!(me2["sessions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn without_an_extension_claim_the_next_free_one_is_assigned() {
    let (_idp, hub, _dir) = setup(&[("HUB_PBX__EXTENSION_RANGE", "2000-2099")]).await;
    let bob = browser(&hub);
    assert_eq!(sign_in(&bob, &hub, "bob").await.status(), 303);
    let (_, me) = fetch_me(&bob, &hub).await;
    assert_eq!(me["user"]["extension"], "2000");
    assert_eq!(me["user"]["admin"], false);
}

#[tokio::test]
async fn sessions_on_several_devices_and_signing_out() {
    let (_idp, hub, dir) = setup(&[]).await;
    let laptop = browser(&hub);
    let phone = browser(&hub);
    let tablet = browser(&hub);
    for b in [&laptop, &phone, &tablet] {
        assert_eq!(sign_in(b, &hub, "alice").await.status(), 303);
    }
    for b in [&laptop, &phone, &tablet] {
        assert_eq!(fetch_me(b, &hub).await.0, 200, "every device works side by side");
    }

    // Sign out on the laptop: the others keep working.
    let res = laptop.post(hub.url("/logout")).header("origin", hub.url("")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(fetch_me(&laptop, &hub).await.0, 401);
    assert_eq!(fetch_me(&phone, &hub).await.0, 200);

    // From the phone, end the tablet's session by its id.
    let (_, on_phone) = fetch_me(&phone, &hub).await;
    let sessions = on_phone["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let tablet_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let res = phone
        .delete(hub.url(&format!("/api/me/sessions/{tablet_id}")))
        .header("origin", hub.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(fetch_me(&tablet, &hub).await.0, 401);
    assert_eq!(fetch_me(&phone, &hub).await.0, 200);

    let audit = crate::common::audit_log(&hub.dir).await;
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions[..2], ["session.end", "session.logout"], "{actions:?}");
    assert!(audit.iter().filter(|e| e.action == "session.login").all(|e| e.ip.as_deref() == Some("127.0.0.1")));

    // The sysadmin sees one session, then signs alice out everywhere.
    let out = run(dir.path(), &["users", "sessions", "alice", "--json"], &[]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text(&out).0).unwrap().as_array().unwrap().len(), 1);
    assert_eq!(sign_in(&laptop, &hub, "alice").await.status(), 303);
    let res = phone.post(hub.url("/api/me/logout-all")).header("origin", hub.url("")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["ended"], 2);
    assert_eq!(fetch_me(&phone, &hub).await.0, 401);
    assert_eq!(fetch_me(&laptop, &hub).await.0, 401);

    // hub users logout does the same from the command line.
    assert_eq!(sign_in(&laptop, &hub, "alice").await.status(), 303);
    let out = run(dir.path(), &["users", "logout", "alice"], &[]);
    assert_eq!(text(&out).0.trim(), "signed alice out on every device; ended 1 session(s)");
    assert_eq!(fetch_me(&laptop, &hub).await.0, 401);
}

#[tokio::test]
async fn a_disabled_user_is_locked_out_at_once() {
    let (_idp, hub, dir) = setup(&[]).await;
    let b = browser(&hub);
    assert_eq!(sign_in(&b, &hub, "alice").await.status(), 303);
    assert_eq!(fetch_me(&b, &hub).await.0, 200);
    assert!(run(dir.path(), &["users", "disable", "alice"], &[]).status.success());
    assert_eq!(fetch_me(&b, &hub).await.0, 401, "the running hub refuses the session immediately");
    let (status, html) = refused_page(sign_in(&b, &hub, "alice").await).await;
    assert_eq!(status, 403);
    assert!(html.contains("Your account is disabled"), "{html}");
    hub.wait_for_event("sign-in failed", "kind", "user_disabled");
    assert!(run(dir.path(), &["users", "enable", "alice"], &[]).status.success());
    assert_eq!(sign_in(&b, &hub, "alice").await.status(), 303);
}

#[tokio::test]
async fn session_expiry_is_never_extended_by_activity() {
    let (_idp, hub, _dir) = setup(&[("HUB_AUTH__SESSION_LIFETIME", "4s")]).await;
    let b = browser(&hub);
    assert_eq!(sign_in(&b, &hub, "alice").await.status(), 303);
    let (_, first) = fetch_me(&b, &hub).await;
    let expires_at = first["session"]["expires_at"].as_i64().unwrap();
    let this = first["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).unwrap().clone();
    assert_eq!(expires_at - this["created_at"].as_i64().unwrap(), 4000, "fixed lifetime from sign-in");
    // The hub and the test read the same clock.
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut active = 0;
    // Busy until just before expiry: every request succeeds and the expiry does not move.
    while now_ms() < expires_at - 700 {
        let (status, body) = fetch_me(&b, &hub).await;
        assert_eq!(status, 200);
        assert_eq!(body["session"]["expires_at"].as_i64().unwrap(), expires_at, "expiry moved");
        active += 1;
        pause(Duration::from_millis(200)).await;
    }
    assert!(active >= 3, "only {active} requests while the session was live");
    let left = (expires_at + 300 - now_ms()).max(0) as u64;
    pause(Duration::from_millis(left)).await;
    assert_eq!(fetch_me(&b, &hub).await.0, 401, "expired on time despite constant activity");
}

#[tokio::test]
async fn tampered_and_replayed_callbacks_are_refused() {
    let (_idp, hub, _dir) = setup(&[]).await;
    let b = browser(&hub);

    // Tampered state.
    let callback = to_callback(&b, &hub, "alice", AtProvider::SignIn).await;
    let state = query_param(&callback, "state").unwrap();
    let tampered = callback.replace(&format!("state={state}"), &format!("state={state}x"));
    let (status, html) = refused_page(b.get(&tampered).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(html.contains("not valid any more") && html.contains("Try again"), "{html}");
    hub.wait_for_event("sign-in failed", "kind", "unknown_state");
    assert_eq!(fetch_me(&b, &hub).await.0, 401);

    // The genuine callback works once; replaying it is refused.
    let callback = to_callback(&b, &hub, "alice", AtProvider::SignIn).await;
    assert_eq!(b.get(&callback).send().await.unwrap().status(), 303);
    let other = browser(&hub);
    let (status, _) = refused_page(other.get(&callback).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(fetch_me(&other, &hub).await.0, 401, "a replayed callback signs nobody in");

    // A used authorization code with a fresh, genuine state: the provider refuses the code.
    let used_code = query_param(&callback, "code").unwrap();
    let fresh = to_callback(&other, &hub, "alice", AtProvider::SignIn).await;
    let fresh_state = query_param(&fresh, "state").unwrap();
    let replay = hub.url(&format!("/auth/callback?code={used_code}&state={fresh_state}"));
    let (status, _) = refused_page(other.get(&replay).send().await.unwrap()).await;
    assert_eq!(status, 400);
    hub.wait_for_event("sign-in failed", "kind", "token_rejected");
    assert_eq!(fetch_me(&other, &hub).await.0, 401);
    let audit = crate::common::audit_log(&hub.dir).await;
    let kinds: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "session.login_failed")
        .map(|e| e.detail.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["token_rejected", "unknown_state", "unknown_state"], "newest first");
    assert_eq!(audit.iter().filter(|e| e.action == "session.login").count(), 1);
}

#[tokio::test]
async fn misbehaving_id_tokens_are_refused() {
    let (idp, hub, _dir) = setup(&[]).await;
    for mode in ["wrong-nonce", "other-audience", "expired", "other-issuer", "alg-none", "bad-signature", "hs256"] {
        idp.set_id_token_mode(Some(mode)).await;
        let b = browser(&hub);
        let (status, html) = refused_page(sign_in(&b, &hub, "alice").await).await;
        assert_eq!(status, 400, "{mode}");
        assert!(html.contains("could not be verified"), "{mode}: {html}");
        assert_eq!(fetch_me(&b, &hub).await.0, 401, "{mode}: nobody signed in");
    }
    let failures: Vec<String> =
        hub.log().iter().filter_map(|l| crate::common::event_field(l, "sign-in failed", "reason")).collect();
    assert_eq!(failures.len(), 7, "{failures:#?}");
    for (want, mode) in [
        ("nonce", "wrong-nonce"),
        ("audience", "other-audience"),
        ("xpired", "expired"),
        ("issuer", "other-issuer"),
        ("No signature found", "alg-none"),
        ("bad signature", "bad-signature"),
        ("algorithm `HS256` is not one of", "hs256"),
    ] {
        assert!(failures.iter().any(|f| f.contains(want)), "{mode}: no reason mentioning {want:?} in {failures:#?}");
    }
    assert!(failures.iter().all(|f| !f.contains("eyJ")), "no token in the log: {failures:#?}");
    let audit = crate::common::audit_log(&hub.dir).await;
    let refused: Vec<_> = audit.iter().filter(|e| e.action == "session.login_failed").collect();
    assert_eq!(refused.len(), 7, "{audit:#?}");
    for e in &refused {
        assert!(e.detail.starts_with("invalid_id_token: "), "{e:?}");
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
        assert!(!e.detail.contains("eyJ"), "no token in the audit log: {e:?}");
    }
    // And a well-behaved provider signs people in again.
    idp.set_id_token_mode(None).await;
    assert_eq!(sign_in(&browser(&hub), &hub, "alice").await.status(), 303);
}

#[tokio::test]
async fn cancelling_at_the_provider_is_a_readable_page() {
    let (_idp, hub, _dir) = setup(&[]).await;
    let b = browser(&hub);
    let callback = to_callback(&b, &hub, "alice", AtProvider::Cancel).await;
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"));
    let (status, html) = refused_page(b.get(&callback).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(html.contains("Sign-in was cancelled") && html.contains("/auth/login"), "{html}");
    hub.wait_for_event("sign-in failed", "kind", "cancelled");
}

#[tokio::test]
async fn an_unknown_issuer_and_a_provider_that_is_down_are_readable_pages() {
    // The provider calls itself 127.0.0.1; a hub told "localhost" sees another issuer.
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = idp.issuer.replace("127.0.0.1", "localhost");
    let env = [("HUB_AUTH__ISSUER", wrong.as_str()), ("HUB_AUTH__CLIENT_ID", "hub")];
    let hub = Hub::start(dir.path(), &[], &env);
    idp.register(&hub).await;
    let b = browser(&hub);
    let (status, html) = refused_page(b.get(hub.url("/auth/login")).send().await.unwrap()).await;
    assert_eq!(status, 502);
    assert!(html.contains("different service"), "{html}");
    hub.wait_for_event("sign-in failed", "kind", "unknown_issuer");
    drop(hub);

    // Nothing listens on port 1.
    let dir = tempfile::tempdir().unwrap();
    let env = [("HUB_AUTH__ISSUER", "http://127.0.0.1:1"), ("HUB_AUTH__CLIENT_ID", "hub")];
    let hub = Hub::start(dir.path(), &[], &env);
    let b = browser(&hub);
    let (status, html) = refused_page(b.get(hub.url("/auth/login")).send().await.unwrap()).await;
    assert_eq!(status, 502);
    assert!(html.contains("cannot be reached") && html.contains("Try again"), "{html}");
    hub.wait_for_event("sign-in failed", "kind", "provider_unreachable");
}

#[tokio::test]
async fn an_expired_attempt_is_a_readable_page() {
    let (_idp, hub, _dir) = setup(&[("HUB_AUTH__SIGNIN_TIMEOUT", "1s")]).await;
    let b = browser(&hub);
    let callback = to_callback(&b, &hub, "alice", AtProvider::SignIn).await;
    pause(Duration::from_millis(1200)).await;
    let (status, html) = refused_page(b.get(&callback).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(html.contains("took too long"), "{html}");
    hub.wait_for_event("sign-in failed", "kind", "expired_attempt");
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_address() {
    let (_idp, hub, _dir) = setup(&[("HUB_AUTH__SIGNIN_RATE_PER_MINUTE", "3")]).await;
    let b = browser(&hub);
    for _ in 0..3 {
        assert_eq!(b.get(hub.url("/auth/login")).send().await.unwrap().status(), 303);
    }
    let res = b.get(hub.url("/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert!(res.text().await.unwrap().contains("Too many sign-in attempts"));
}
