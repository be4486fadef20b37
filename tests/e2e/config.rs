//! `hub config …` and configuration errors as a sysadmin meets them.

use crate::common::{run, text};

#[test]
fn check_with_no_file_uses_working_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["config", "check"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("configuration OK: defaults (no config file)"), "{stdout}");
    assert!(stdout.contains("https on 127.0.0.1:8443"), "{stdout}");
    assert!(stdout.contains("demo sign-in"), "{stdout}");
}

#[test]
fn hub_toml_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hub.toml"), "[web]\nbind = \"127.0.0.1:9443\"\n").unwrap();
    let out = run(dir.path(), &["config", "show"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("bind = \"127.0.0.1:9443\""), "{stdout}");
    assert!(stdout.starts_with("# effective configuration: hub.toml"), "{stdout}");
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("custom.toml"), "[web]\nbind = \"127.0.0.1:1001\"\n[store]\nmax_connections = 3\n")
        .unwrap();
    let env = [("HUB_WEB__BIND", "127.0.0.1:1002"), ("HUB_STORE__MAX_CONNECTIONS", "4")];
    let out = run(dir.path(), &["--config", "custom.toml", "--bind", "127.0.0.1:1003", "config", "show"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("bind = \"127.0.0.1:1003\""), "flag wins: {stdout}");
    assert!(stdout.contains("max_connections = 4"), "env beats file: {stdout}");
    let out = run(dir.path(), &["config", "show"], &[("HUB_CONFIG", "custom.toml")]);
    assert!(text(&out).0.contains("bind = \"127.0.0.1:1001\""), "HUB_CONFIG names the file");
}

#[test]
fn malformed_file_names_file_line_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hub.toml"),
        "[web]\nbind = \"127.0.0.1:8443\"\n\n[store]\nmax_connections = \"eight\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(stderr.starts_with("error: hub.toml:5: key store.max_connections: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");

    std::fs::write(dir.path().join("hub.toml"), "[web\nbind = 1\n").unwrap();
    let out = run(dir.path(), &["serve"], &[]);
    assert_eq!(out.status.code(), Some(2), "serve refuses a broken file too");
    assert!(text(&out).1.starts_with("error: hub.toml:1:"), "{}", text(&out).1);
}

#[test]
fn bad_values_from_env_and_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["config", "check"], &[("HUB_MEDIA__PTIME_MS", "fast")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out).1.trim(),
        "error: environment variable HUB_MEDIA__PTIME_MS: key media.ptime_ms: expected an integer, got \"fast\""
    );
    let out = run(dir.path(), &["--log-format", "xml", "config", "check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.starts_with("error: flag --log-format: key log.format: "), "{}", text(&out).1);
    let out = run(dir.path(), &["--config", "missing.toml", "config", "check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.starts_with("error: cannot read config file missing.toml: "), "{}", text(&out).1);
}

#[test]
fn unknown_keys_and_variables_are_warned_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hub.toml"), "[web]\nbnid = \"x\"\n").unwrap();
    let out = run(dir.path(), &["config", "check"], &[("HUB_WEB__PROT", "1"), ("HUB_TYPO", "1")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "warnings do not stop the hub: {stderr}");
    assert!(stderr.contains("hub.toml:2: unknown config key web.bnid"), "{stderr}");
    assert!(stderr.contains("unknown environment variable HUB_WEB__PROT"), "{stderr}");
    assert!(stderr.contains("unknown environment variable HUB_TYPO"), "{stderr}");
    assert!(stdout.contains("3 warning(s)"), "{stdout}");
}

#[test]
fn show_never_prints_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hub.toml"),
        "[auth]\nclient_secret = \"oidc-s3cret\"\n[pbx]\nami_url = \"ami://admin:ami-s3cret@127.0.0.1:5038\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "show"], &[("HUB_SIP__PASSWORD", "sip-s3cret")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for secret in ["oidc-s3cret", "ami-s3cret", "sip-s3cret"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} leaked:\n{stdout}{stderr}");
    }
    assert!(stdout.contains("ami://admin:[redacted]@127.0.0.1:5038"), "{stdout}");
    assert!(stdout.contains("client_secret = \"[redacted]\""), "{stdout}");
}

#[test]
fn demo_mode_on_a_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--bind", "0.0.0.0:8443", "serve"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("demo sign-in is only offered on loopback"), "{stderr}");
}
