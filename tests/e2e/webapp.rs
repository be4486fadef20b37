//! The web app in a real browser: Debian's Chromium driven by playwright-core
//! (tests/js/browser/*.mjs), against a hub started here.

use std::path::PathBuf;
use std::process::Command;

use crate::common::Hub;

/// Runs a browser scenario against `hub`; panics with its whole output when it fails.
pub fn run_scenario(script: &str, hub: &Hub, env: &[(&str, &str)]) {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(js.join("node_modules/playwright-core").is_dir(), "run `npm ci` in tests/js (scripts/test does)");
    assert!(
        PathBuf::from("/usr/bin/chromium").exists(),
        "Debian's chromium is not installed (scripts/test installs it)"
    );
    let shots = hub.dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(format!("browser/{script}"))
        .current_dir(&js)
        .env("HUB_URL", hub.url(""))
        .env("SCREENSHOT_DIR", &shots)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The scenario bounds every wait itself (15 s each); this is only the last resort.
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `HUB_TEST_SHOW=1` prints the scenario's steps (the figures it saw) on success too.
    if std::env::var_os("HUB_TEST_SHOW").is_some() {
        eprintln!("--- {script} ---\n{stdout}");
    }
    assert!(
        out.status.success() && stdout.contains("{\"ok\":true}"),
        "browser scenario {script} failed\n--- scenario ---\n{stdout}\n--- browser ---\n{stderr}\n--- hub log ---\n{}\n(screenshots in {})",
        hub.log().join("\n"),
        shots.display()
    );
}

/// The call records the hub wrote, newest first.
async fn records(hub: &Hub) -> Vec<hub::model::CallRecord> {
    use hub::store::CallLogStore;
    let store = hub::store::SqliteStore::open(&hub.dir.join("data/hub.db"), 1).await.unwrap();
    for _ in 0..100 {
        let r = store.call_records(None, 100).await.unwrap();
        if !r.is_empty() {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no call record\n{}", hub.log().join("\n"));
}

async fn call_scenario(scenario: &str, hub_env: &[(&str, &str)]) -> Vec<hub::model::CallRecord> {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], hub_env);
    run_scenario("calls.mjs", &hub, &[("SCENARIO", scenario)]);
    records(&hub).await
}

#[tokio::test]
async fn a_call_rings_every_tab_is_answered_on_one_and_audio_flows_both_ways() {
    let records = call_scenario("answer", &[]).await;
    let r = &records[0];
    assert_eq!(r.outcome, hub::model::CallOutcome::Completed);
    assert!(r.answered_at.is_some() && r.ended_at >= r.answered_at.unwrap());
    assert_eq!(r.devices.len(), 3, "the caller's tab and both of the callee's tabs: {r:?}");
}

#[tokio::test]
async fn media_flows_through_a_real_turn_relay() {
    let dir = tempfile::tempdir().unwrap();
    let turn = crate::common::turn::Turn::start(dir.path());
    let url = format!("turn:127.0.0.1:{}?transport=udp", turn.port);
    let env = [("HUB_MEDIA__TURN_URLS", url.as_str()), ("HUB_MEDIA__TURN_SECRET", crate::common::turn::SECRET)];
    let hub = Hub::start(dir.path(), &[], &env);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_scenario("calls.mjs", &hub, &[("SCENARIO", "answer"), ("ICE_POLICY", "relay")]);
    }));
    if let Err(e) = result {
        eprintln!("--- coturn log ---\n{}", turn.log());
        std::panic::resume_unwind(e);
    }
    assert_eq!(records(&hub).await[0].outcome, hub::model::CallOutcome::Completed);
}

#[tokio::test]
async fn a_call_between_two_firefox_browsers() {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let python = py.join(".venv/bin/python");
    assert!(python.exists(), "tests/py/.venv is missing: scripts/test creates it");
    assert!(
        PathBuf::from("/usr/bin/firefox-esr").exists(),
        "Debian's firefox-esr is not installed (scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let url = hub.url("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).arg("firefox_call.py").current_dir(py).env("HUB_URL", url).output().expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("{\"ok\": true}"),
        "Firefox scenario failed\n--- scenario ---\n{stdout}\n--- browsers ---\n{}\n--- hub log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        hub.log().join("\n")
    );
    let r = &records(&hub).await[0];
    assert_eq!(r.outcome, hub::model::CallOutcome::Completed);
    assert!(r.answered_at.is_some());
}

#[tokio::test]
async fn a_declined_call() {
    assert_eq!(call_scenario("decline", &[]).await[0].outcome, hub::model::CallOutcome::Declined);
}

#[tokio::test]
async fn a_call_cancelled_by_the_caller() {
    assert_eq!(call_scenario("cancel", &[]).await[0].outcome, hub::model::CallOutcome::Cancelled);
}

#[tokio::test]
async fn an_unanswered_call() {
    let r = call_scenario("no_answer", &[("HUB_CALLS__RING_TIMEOUT", "3s")]).await;
    assert_eq!(r[0].outcome, hub::model::CallOutcome::NoAnswer);
}

#[tokio::test]
async fn closing_the_tab_mid_call() {
    assert_eq!(call_scenario("close_tab", &[]).await[0].outcome, hub::model::CallOutcome::Failed);
}

#[test]
fn a_blocked_microphone_is_explained_and_rings_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    run_scenario("media-denied.mjs", &hub, &[]);
    assert!(!hub.log().iter().any(|l| l.contains("\"ringing\"")), "no call was placed");
}

#[test]
fn account_page_signs_in_lists_devices_and_signs_out() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    run_scenario("account.mjs", &hub, &[]);
}
