//! Voicemail over HTTPS against a started hub: only the owner reaches a message, uploads are
//! checked by content, size and length, the trash is restorable and purged; and in Chromium,
//! a message recorded by one person reaches another's open tab live.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Hub;
use crate::common::idp::browser;
use crate::webapp::run_scenario;

/// A signed-in person: their browser (cookie jar) and user id.
struct Person {
    web: reqwest::Client,
    id: String,
}

/// Signs `name` in on the demo form.
async fn sign_in(hub: &Hub, name: &str) -> Person {
    let web = browser(hub);
    let res =
        web.post(hub.url("/auth/demo")).header("origin", hub.url("")).form(&[("name", name)]).send().await.unwrap();
    assert_eq!(res.status(), 303, "demo sign-in of {name}");
    let me: Value = web.get(hub.url("/api/me")).send().await.unwrap().json().await.unwrap();
    Person { web, id: me["user"]["id"].as_str().unwrap().to_string() }
}

/// A 16-bit mono PCM WAV of `ms` milliseconds at 8 kHz.
fn wav(ms: u32) -> Vec<u8> {
    let data_len = ms * 16;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&[1, 0, 1, 0]);
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&[2, 0, 16, 0]);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend((0..data_len).map(|i| (i % 251) as u8));
    b
}

/// Sends `body` as `content_type` from `from` to user `to`; the status and the JSON answer.
async fn send(hub: &Hub, from: &Person, to: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let res = from
        .web
        .post(hub.url(&format!("/api/voicemail/send?to={to}")))
        .header("origin", hub.url(""))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

async fn inbox(hub: &Hub, who: &Person) -> Value {
    let res = who.web.get(hub.url("/api/voicemail")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn trash(hub: &Hub, who: &Person) -> Value {
    let res = who.web.get(hub.url("/api/voicemail/trash")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Every request a person can make of the voicemail API about message `id`, each with the
/// Origin header a page would send.
fn requests(hub: &Hub, web: &reqwest::Client, id: &str, to: &str) -> Vec<(String, reqwest::RequestBuilder)> {
    let origin = hub.url("");
    let url = |p: &str| hub.url(p);
    vec![
        ("GET list".into(), web.get(url("/api/voicemail"))),
        ("GET trash".into(), web.get(url("/api/voicemail/trash"))),
        ("GET audio".into(), web.get(url(&format!("/api/voicemail/{id}/audio")))),
        ("GET download".into(), web.get(url(&format!("/api/voicemail/{id}/audio?download=1")))),
        ("POST read".into(), web.post(url(&format!("/api/voicemail/{id}/read"))).json(&json!({"read": true}))),
        ("DELETE".into(), web.delete(url(&format!("/api/voicemail/{id}")))),
        ("POST restore".into(), web.post(url(&format!("/api/voicemail/{id}/restore")))),
        ("POST send".into(), web.post(url(&format!("/api/voicemail/send?to={to}"))).body(wav(100))),
        ("GET greeting".into(), web.get(url("/api/voicemail/greeting"))),
        ("PUT greeting".into(), web.put(url("/api/voicemail/greeting")).body(wav(100))),
        ("DELETE greeting".into(), web.delete(url("/api/voicemail/greeting"))),
    ]
    .into_iter()
    .map(|(name, r)| (name, r.header("origin", &origin)))
    .collect()
}

#[tokio::test]
async fn every_voicemail_endpoint_serves_the_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let alice = sign_in(&hub, "Alice Tester").await;
    let bob = sign_in(&hub, "Bob Tester").await;
    let eve = sign_in(&hub, "Eve Tester").await;
    assert_eq!(send(&hub, &alice, &bob.id, "audio/wav", wav(1000)).await.0, 201);
    let greeting = bob
        .web
        .put(hub.url("/api/voicemail/greeting"))
        .header("origin", hub.url(""))
        .header("content-type", "audio/wav")
        .body(wav(700))
        .send()
        .await
        .unwrap();
    assert_eq!(greeting.status(), 200);
    let before = inbox(&hub, &bob).await;
    let id = before["messages"][0]["id"].as_str().unwrap().to_string();

    // Signed out: 401 everywhere, before anything else is looked at.
    let nobody = browser(&hub);
    for (name, req) in requests(&hub, &nobody, &id, &bob.id) {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{name} signed out");
    }

    // Eve, signed in: Bob's message does not exist for her; her own lists are empty.
    for (name, req) in requests(&hub, &eve.web, &id, &bob.id) {
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        match name.as_str() {
            "GET list" | "GET trash" => {
                assert_eq!(status, 200, "{name}");
                assert_eq!(body["messages"], json!([]), "{name}: nothing of Bob's");
            }
            "GET audio" | "GET download" | "POST read" | "DELETE" | "POST restore" => {
                assert_eq!(status, 404, "{name} of someone else's message: {body}");
                assert_eq!(body["error"], "not_found", "{name}: the same answer as an unknown id");
            }
            "GET greeting" => assert_eq!(status, 404, "{name}: Bob's greeting is not Eve's"),
            // What Eve may do: leave Bob a message, save and delete her own greeting.
            "POST send" => assert_eq!(status, 201, "{name}"),
            "PUT greeting" => assert_eq!(status, 200, "{name}"),
            "DELETE greeting" => assert_eq!(status, 204, "{name}: her own, saved just before"),
            other => panic!("unexpected {other}"),
        }
    }
    let unknown = "0196f3c1-0000-7000-8000-000000000000";
    let res = eve.web.get(hub.url(&format!("/api/voicemail/{unknown}/audio"))).send().await.unwrap();
    assert_eq!(res.status(), 404, "an unknown id answers like someone else's");

    // Writes from another site are refused even for the owner.
    for req in [
        bob.web.post(hub.url(&format!("/api/voicemail/{id}/read"))).json(&json!({"read": true})),
        bob.web.delete(hub.url(&format!("/api/voicemail/{id}"))),
        bob.web.delete(hub.url("/api/voicemail/greeting")),
        bob.web.post(hub.url(&format!("/api/voicemail/send?to={}", alice.id))).body(wav(100)),
    ] {
        assert_eq!(req.try_clone().unwrap().send().await.unwrap().status(), 403, "no Origin");
        let res = req.header("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(res.status(), 403, "foreign Origin");
    }

    // Nothing changed for Bob: still unheard, not trashed, his greeting still there; Eve's
    // one message (sent above) is the only new one.
    let after = inbox(&hub, &bob).await;
    let original = after["messages"].as_array().unwrap().iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(original, &before["messages"][0]);
    assert_eq!(after["unread"], 2);
    assert_eq!(trash(&hub, &bob).await["messages"], json!([]));
    assert_eq!(bob.web.get(hub.url("/api/voicemail/greeting")).send().await.unwrap().status(), 200);
    assert!(dir.path().join(format!("recordings/greetings/{}.wav", bob.id)).is_file());
}

#[tokio::test]
async fn uploads_are_checked_by_content_size_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[("HUB_VOICEMAIL__MAX_MESSAGE", "2s")]);
    let alice = sign_in(&hub, "Alice Tester").await;
    let bob = sign_in(&hub, "Bob Tester").await;

    let (status, body) = send(&hub, &alice, &bob.id, "audio/webm", wav(500)).await;
    assert_eq!(status, 415, "a WAV sent as WebM: {body}");
    assert_eq!(body["error"], "unsupported_media_type");
    assert!(body["message"].as_str().unwrap().contains("WAV, not WebM"), "{body}");
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert_eq!(send(&hub, &alice, &bob.id, "audio/webm", random.clone()).await.0, 415, "random bytes");
    assert_eq!(send(&hub, &alice, &bob.id, "application/octet-stream", random).await.0, 415, "whatever the type");
    let mut fake_ogg = b"OggS".to_vec();
    fake_ogg.extend_from_slice(&[0x55; 200]);
    assert_eq!(send(&hub, &alice, &bob.id, "audio/ogg", fake_ogg).await.0, 415, "a magic number is not enough");

    let mut huge = wav(1000);
    huge.resize(11 * 1024 * 1024, 0);
    let (status, body) = send(&hub, &alice, &bob.id, "audio/wav", huge).await;
    assert_eq!(status, 413, "over 10 MiB: {body}");

    let (status, body) = send(&hub, &alice, &bob.id, "audio/wav", wav(3000)).await;
    assert_eq!(status, 422, "3 s with max_message = 2s: {body}");
    assert_eq!(body["error"], "too_long");

    let (status, body) = send(&hub, &alice, "0196f3c1-0000-7000-8000-000000000000", "audio/wav", wav(500)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_recipient")));

    // The greeting passes the same checks.
    let put = |ct: &'static str, body: Vec<u8>| {
        bob.web
            .put(hub.url("/api/voicemail/greeting"))
            .header("origin", hub.url(""))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_eq!(put("audio/webm", wav(500)).await.unwrap().status(), 415);
    assert_eq!(put("audio/wav", wav(3000)).await.unwrap().status(), 422);
    assert_eq!(bob.web.get(hub.url("/api/voicemail/greeting")).send().await.unwrap().status(), 404);

    // None of it was filed.
    let list = inbox(&hub, &bob).await;
    assert_eq!((list["messages"].clone(), list["unread"].clone()), (json!([]), json!(0)));
    assert!(!dir.path().join("recordings/voicemail").exists());
    assert!(!dir.path().join("recordings/greetings").exists());
    assert_eq!(list["limits"]["max_message_ms"], 2000);
}

#[tokio::test]
async fn a_message_lands_in_the_recipients_mailbox_and_plays_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let alice = sign_in(&hub, "Alice Tester").await;
    let bob = sign_in(&hub, "Bob Tester").await;
    let audio = wav(1500);
    let (status, sent) = send(&hub, &alice, &bob.id, "audio/wav", audio.clone()).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["to"]["display_name"], "Bob Tester");
    assert!(sent.get("id").is_none(), "the sender does not learn the message id");

    let list = inbox(&hub, &bob).await;
    assert_eq!(list["unread"], 1);
    let m = &list["messages"][0];
    assert!(m["from"].as_str().unwrap().starts_with("Alice Tester"), "{m}");
    assert_eq!(
        (m["duration_ms"].as_u64(), m["media_type"].as_str(), m["read"].as_bool()),
        (Some(1500), Some("audio/wav"), Some(false))
    );
    assert_eq!(inbox(&hub, &alice).await["messages"], json!([]), "the sender's own mailbox is untouched");
    let id = m["id"].as_str().unwrap();
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join(format!("recordings/voicemail/{}", bob.id))).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one file, no temporary left over");
    assert_eq!(std::fs::read(files[0].path()).unwrap(), audio);

    let res = bob.web.get(hub.url(&format!("/api/voicemail/{id}/audio"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    assert!(res.headers().get("content-disposition").is_none());
    assert_eq!(res.bytes().await.unwrap().as_ref(), audio.as_slice());
    let res =
        bob.web.get(hub.url(&format!("/api/voicemail/{id}/audio"))).header("range", "bytes=0-11").send().await.unwrap();
    assert_eq!(res.status(), 206, "ranges for the audio element");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &audio[..12]);
    let res = bob.web.get(hub.url(&format!("/api/voicemail/{id}/audio?download=1"))).send().await.unwrap();
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"voicemail-")
            && disposition.contains("-Alice-Tester")
            && disposition.ends_with(".wav\""),
        "{disposition}"
    );

    let res = bob
        .web
        .post(hub.url(&format!("/api/voicemail/{id}/read")))
        .header("origin", hub.url(""))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(inbox(&hub, &bob).await["unread"], 0);
}

#[tokio::test]
async fn trashed_messages_are_restorable_then_purged_with_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[("HUB_VOICEMAIL__TRASH_RETENTION", "2s")]);
    let alice = sign_in(&hub, "Alice Tester").await;
    let bob = sign_in(&hub, "Bob Tester").await;
    assert_eq!(send(&hub, &alice, &bob.id, "audio/wav", wav(400)).await.0, 201);
    let id = inbox(&hub, &bob).await["messages"][0]["id"].as_str().unwrap().to_string();
    let file = || std::fs::read_dir(dir.path().join(format!("recordings/voicemail/{}", bob.id))).unwrap().count();
    let delete = || bob.web.delete(hub.url(&format!("/api/voicemail/{id}"))).header("origin", hub.url("")).send();
    let restore =
        || bob.web.post(hub.url(&format!("/api/voicemail/{id}/restore"))).header("origin", hub.url("")).send();

    assert_eq!(delete().await.unwrap().status(), 204);
    assert_eq!(inbox(&hub, &bob).await["messages"], json!([]));
    assert_eq!(inbox(&hub, &bob).await["unread"], 0, "trashed messages do not count");
    let t = trash(&hub, &bob).await;
    assert_eq!(t["messages"][0]["id"], id.as_str());
    let m = &t["messages"][0];
    assert_eq!(m["purge_at"].as_i64().unwrap() - m["deleted_at"].as_i64().unwrap(), 2000);
    assert_eq!(
        bob.web.get(hub.url(&format!("/api/voicemail/{id}/audio"))).send().await.unwrap().status(),
        200,
        "playable from the trash"
    );

    let res = restore().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(inbox(&hub, &bob).await["messages"][0]["id"], id.as_str());
    assert_eq!(inbox(&hub, &bob).await["unread"], 1);
    assert_eq!(trash(&hub, &bob).await["messages"], json!([]));

    // Trashed again and left there: the purger takes record and file after the retention.
    assert_eq!(delete().await.unwrap().status(), 204);
    assert_eq!(file(), 1);
    hub.wait_for_event("voicemail purged", "message_id", &id);
    assert_eq!(trash(&hub, &bob).await["messages"], json!([]));
    assert_eq!(file(), 0, "the audio file went with the record");
    assert_eq!(bob.web.get(hub.url(&format!("/api/voicemail/{id}/audio"))).send().await.unwrap().status(), 404);
    let res = restore().await.unwrap();
    assert_eq!(res.status(), 404, "gone for good");
}

#[test]
fn a_message_recorded_in_the_browser_reaches_a_colleagues_open_tab_live() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    run_scenario("voicemail.mjs", &hub, &[]);
    let line = hub.wait_for("voicemail left from the browser");
    assert!(line.contains("audio/webm") || line.contains("audio/ogg"), "recorded by the browser: {line}");
    // About the 2 s recorded (from the second the page counted to when the stop landed),
    // read from the browser's own container.
    let ms: u64 = crate::common::event_field(&line, "voicemail left from the browser", "duration_ms")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line}"));
    assert!((1500..=5000).contains(&ms), "duration read from the recording: {ms} ms");
}
