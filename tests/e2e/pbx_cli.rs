//! `hub pbx …` against the fixture-replay AMI server.

use crate::common::ami_replay::Replay;
use crate::common::{run, text};

async fn hub_pbx(port: u16, secret: &str, args: &'static [&'static str]) -> std::process::Output {
    let url = format!("ami://admin:{secret}@127.0.0.1:{port}");
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), args, &[("HUB_PBX__AMI_URL", url.as_str()), ("HUB_PBX__AMI_AUTH", "plain")])
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn endpoints_with_state_and_contacts() {
    let replay = Replay::start("06a-pjsip-show-endpoints-registered").await;
    let out = hub_pbx(replay.port, "secret-test", &["pbx", "endpoints", "--json"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["name"], "1001");
    assert_eq!(rows[0]["state"], "Not in use");
    assert_eq!(rows[0]["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(rows[1]["state"], "Unavailable");
    replay.verdict().await.unwrap();

    let replay = Replay::start("06a-pjsip-show-endpoints").await;
    let (table, _) = text(&hub_pbx(replay.port, "secret-test", &["pbx", "endpoints"]).await);
    assert!(table.starts_with("ENDPOINT  STATE"), "{table}");
}

#[tokio::test]
async fn contacts_registered_and_none() {
    let replay = Replay::start("06c-pjsip-show-contacts-registered").await;
    let out = hub_pbx(replay.port, "secret-test", &["pbx", "contacts", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(rows[0]["aor"], "1001");
    assert_eq!(rows[0]["uri"], "sip:1001@127.0.0.1:51484");
    assert_eq!(rows[0]["status"], "NonQualified");
    assert_eq!(rows[0]["user_agent"], "fixture-ua/1.0");
    replay.verdict().await.unwrap();

    // Asterisk answers an empty contact list with an error; people see an empty list.
    let replay = Replay::start("06c-pjsip-show-contacts").await;
    let out = hub_pbx(replay.port, "secret-test", &["pbx", "contacts"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0.trim(), "no registered contacts");
}

#[tokio::test]
async fn channels_when_idle() {
    let replay = Replay::start("08c-core-show-channels-empty").await;
    let out = hub_pbx(replay.port, "secret-test", &["pbx", "channels"]).await;
    assert_eq!(text(&out).0.trim(), "no live channels");
    replay.verdict().await.unwrap();
}

#[tokio::test]
async fn unreachable_or_refused_is_one_line_and_exit_3() {
    let replay = Replay::start("01c-login-failure-wrong-secret").await;
    let out = hub_pbx(replay.port, "wrong-secret", &["pbx", "endpoints"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out).1.trim(), "error: Asterisk refused the manager login for user \"admin\" (check pbx.ami_url)");

    let out = hub_pbx(1, "x", &["pbx", "contacts"]).await;
    assert_eq!(out.status.code(), Some(3));
    let (_, stderr) = text(&out);
    assert!(stderr.starts_with("error: cannot connect to the Asterisk manager at 127.0.0.1:1"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["pbx", "channels"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("set [pbx] ami_url"));
}
