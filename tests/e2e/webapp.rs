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
    assert!(
        out.status.success() && stdout.contains("{\"ok\":true}"),
        "browser scenario {script} failed\n--- scenario ---\n{stdout}\n--- browser ---\n{stderr}\n--- hub log ---\n{}\n(screenshots in {})",
        hub.log().join("\n"),
        shots.display()
    );
}

#[test]
fn account_page_signs_in_lists_devices_and_signs_out() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    run_scenario("account.mjs", &hub, &[]);
}
