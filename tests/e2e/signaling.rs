//! The signaling WebSocket at the protocol level: what a misbehaving or unusual client gets.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::Hub;
use crate::common::idp::browser;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Signs `name` in (demo mode) and returns the session cookie header value.
async fn session_cookie(hub: &Hub, name: &str) -> String {
    let b = browser(hub);
    let res = b.post(hub.url("/auth/demo")).header("origin", hub.url("")).form(&[("name", name)]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn open(hub: &Hub, cookie: Option<&str>, origin: &str) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(hub.dir.join("data/tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut req = format!("wss://{}/ws", hub.addr).into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector)).await?;
    Ok(socket)
}

async fn next_json(s: &mut Socket) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .unwrap();
        match frame {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn expect_type(s: &mut Socket, kind: &str) -> serde_json::Value {
    let v = next_json(s).await;
    assert_eq!(v["type"], kind, "{v}");
    v
}

async fn still_alive(s: &mut Socket) {
    s.send(Message::text(r#"{"v":1,"type":"ping","req":"alive"}"#)).await.unwrap();
    loop {
        let v = next_json(s).await;
        if v["type"] == "pong" {
            assert_eq!(v["req"], "alive");
            return;
        }
    }
}

#[tokio::test]
async fn bad_input_gets_an_error_frame_and_the_connection_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[("HUB_CALLS__MESSAGES_PER_SECOND", "20")]);
    let cookie = session_cookie(&hub, "Eve Tester").await;
    let mut s = open(&hub, Some(&cookie), &hub.url("")).await.unwrap();
    let welcome = expect_type(&mut s, "welcome").await;
    assert_eq!(welcome["v"], 1);
    assert_eq!(welcome["user"]["name"], "Eve Tester");
    assert_eq!(welcome["ring_timeout_ms"], 30000);

    for (bad, code) in [
        ("not json at all", "bad_message"),
        (r#"{"v":1,"type":"teleport","call":"x"}"#, "bad_message"),
        (r#"{"v":1,"type":"accept"}"#, "bad_message"),
        (r#"{"v":2,"type":"ping"}"#, "unsupported_version"),
        (r#"{"v":1,"type":"accept","call":"no-such-call"}"#, "call_ended"),
        (r#"{"v":1,"type":"offer","call":"no-such-call","sdp":"v=0"}"#, "call_ended"),
        (r#"{"v":1,"type":"call","to":"nobody-with-this-id","req":"q"}"#, "unknown_user"),
    ] {
        s.send(Message::text(bad)).await.unwrap();
        let v = expect_type(&mut s, "error").await;
        assert_eq!(v["code"], code, "{bad} -> {v}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    s.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(expect_type(&mut s, "error").await["code"], "bad_message");
    still_alive(&mut s).await;

    // 70 KiB is over the 64 KiB limit: refused, connection kept.
    let big = format!(r#"{{"v":1,"type":"ping","req":"{}"}}"#, "x".repeat(70 * 1024));
    s.send(Message::text(big)).await.unwrap();
    assert_eq!(expect_type(&mut s, "error").await["code"], "too_large");
    still_alive(&mut s).await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_without_hurting_anyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[("HUB_CALLS__MESSAGES_PER_SECOND", "10")]);
    let (flooder, bystander) = (session_cookie(&hub, "Flood").await, session_cookie(&hub, "Calm").await);
    let mut f = open(&hub, Some(&flooder), &hub.url("")).await.unwrap();
    let mut b = open(&hub, Some(&bystander), &hub.url("")).await.unwrap();
    expect_type(&mut f, "welcome").await;
    expect_type(&mut b, "welcome").await;
    let started = std::time::Instant::now();
    for i in 0..100 {
        f.send(Message::text(format!(r#"{{"v":1,"type":"ping","req":"{i}"}}"#))).await.unwrap();
    }
    let (mut pongs, mut limited) = (0, 0);
    while pongs + limited < 100 {
        let v = next_json(&mut f).await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if v["code"] == "rate_limited" => limited += 1,
            _ => panic!("{v}"),
        }
    }
    // A burst of twice the rate (20) gets through, plus what refills while the flood lasts.
    let refill = (started.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!((20..=25 + refill).contains(&pongs), "{pongs} answered, refill {refill}");
    assert_eq!(pongs + limited, 100);
    still_alive(&mut b).await;
}

#[tokio::test]
async fn no_session_no_socket_and_turn_credentials_in_the_welcome() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HUB_MEDIA__STUN_URLS", "stun:127.0.0.1:3478"),
        ("HUB_MEDIA__TURN_URLS", "turn:127.0.0.1:3478?transport=udp"),
        ("HUB_MEDIA__TURN_SECRET", "turn-test-secret"),
        ("HUB_MEDIA__TURN_TTL", "10m"),
    ];
    let hub = Hub::start(dir.path(), &[], &env);
    let err = open(&hub, None, &hub.url("")).await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let cookie = session_cookie(&hub, "Turner").await;
    let err = open(&hub, Some(&cookie), "https://evil.example").await.unwrap_err().to_string();
    assert!(err.contains("403"), "{err}");
    let mut s = open(&hub, Some(&cookie), &hub.url("")).await.unwrap();
    let w = expect_type(&mut s, "welcome").await;
    let servers = w["ice_servers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"][0], "stun:127.0.0.1:3478");
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    let expiry: i64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expiry - now - 600).abs() <= 5, "expires in the configured 10 minutes");
    assert_eq!(user, w["user"]["id"].as_str().unwrap());
    assert_eq!(servers[1]["credential"], hub::calls::ice::turn_password("turn-test-secret", username));
    assert_eq!(w["ice_expires_at"].as_i64().unwrap() / 1000, expiry);
}
