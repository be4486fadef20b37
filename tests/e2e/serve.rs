//! `hub serve`: HTTPS endpoints, certificate reuse, shutdown and start-up failures.

use std::time::Duration;

use crate::common::{Hub, event_field, run, text};

#[tokio::test]
async fn serves_health_readiness_metrics_and_the_app_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let client = hub.client();

    let res = client.get(hub.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok\n");
    let res = client.get(hub.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let res = client.get(hub.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("<title>Hub</title>"), "{page}");
    let status: serde_json::Value = client.get(hub.url("/api/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["store_ready"], true);

    let metrics = client.get(hub.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("hub_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hub_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hub_build_info{"), "{metrics}");
    assert!(metrics.contains("hub_uptime_seconds "), "{metrics}");
    assert!(dir.path().join("data/hub.db").is_file(), "SQLite database in the data directory");
}

#[test]
fn self_signed_certificate_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    let line = hub.wait_for("TLS certificate (SHA-256)");
    let first = event_field(&line, "TLS certificate (SHA-256)", "fingerprint").unwrap();
    assert_eq!(event_field(&line, "TLS certificate (SHA-256)", "source").as_deref(), Some("Generated"));
    assert_eq!(first.len(), 95, "AA:BB:… SHA-256: {first}");
    let pem = std::fs::read(dir.path().join("data/tls/cert.pem")).unwrap();
    drop(hub.stop("TERM"));

    let hub = Hub::start(dir.path(), &[], &[]);
    let line = hub.wait_for("TLS certificate (SHA-256)");
    assert_eq!(event_field(&line, "TLS certificate (SHA-256)", "fingerprint").unwrap(), first);
    assert_eq!(event_field(&line, "TLS certificate (SHA-256)", "source").as_deref(), Some("Reused"));
    assert_eq!(std::fs::read(dir.path().join("data/tls/cert.pem")).unwrap(), pem, "certificate file untouched");
}

#[tokio::test]
async fn sigterm_and_sigint_drain_and_stop_within_five_seconds() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(dir.path(), &[], &[]);
        // A client with an open keep-alive connection must not hold the shutdown up.
        let client = hub.client();
        assert_eq!(client.get(hub.url("/healthz")).send().await.unwrap().status(), 200);
        let (status, took, log) = hub.stop(signal);
        assert!(status.success(), "exit status {status:?}\n{}", log.join("\n"));
        assert!(took < Duration::from_secs(5), "SIG{signal}: took {took:?}");
        let messages: Vec<_> = log.iter().filter_map(|l| crate::common::event_message(l)).collect();
        assert!(messages.contains(&"signal received".to_string()), "{messages:?}");
        assert!(messages.contains(&"stopped".to_string()), "{messages:?}");
    }
}

fn start_error(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(dir, args, env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<_> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    errors[0].to_string()
}

#[test]
fn a_port_in_use_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = start_error(dir.path(), &["--bind", &addr, "--log-level", "off", "serve"], &[]);
    assert_eq!(err, format!("error: cannot listen on {addr}: Address already in use (os error 98)"));
}

#[test]
fn an_unreadable_certificate_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let env = [("HUB_WEB__TLS_CERT", "nope.pem"), ("HUB_WEB__TLS_KEY", "key.pem")];
    let err = start_error(dir.path(), &["--bind", "127.0.0.1:0", "--log-level", "off", "serve"], &env);
    assert!(err.starts_with("error: cannot use TLS certificate nope.pem: No such file or directory"), "{err}");
}

#[test]
fn an_unusable_data_directory_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    let err = start_error(
        dir.path(),
        &["--bind", "127.0.0.1:0", "--data-dir", "a-file/data", "--log-level", "off", "serve"],
        &[],
    );
    assert!(err.starts_with("error: data directory a-file/data is not usable: "), "{err}");
}
