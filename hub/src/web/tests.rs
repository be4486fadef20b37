use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::store::SqliteStore;

async fn state_in(dir: &std::path::Path) -> WebState {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("w.db"), 2).await.unwrap());
    let config = crate::config::Config::default();
    let directory = crate::directory::Directory::new(store.clone(), config.pbx.extension_range);
    let auth = Auth::new(store.clone(), directory, &config.auth, "https://hub.test").unwrap();
    let (calls, _) = Calls::start(config.calls.clone(), store.clone(), tokio_util::sync::CancellationToken::new());
    let origin = OriginPolicy { fixed: Some("https://hub.test".into()) };
    let settings = Settings {
        cookie_key: Key::generate(),
        limiter: RateLimiter::new(5),
        origin,
        media: config.media,
        calls: config.calls,
        sip: crate::web::SipWebSettings {
            wss_url: Some("wss://pbx.test:8089/ws".into()),
            realm: "asterisk".into(),
            presence: None,
        },
    };
    WebState::new(Services { store, auth, calls, shutdown: tokio_util::sync::CancellationToken::new() }, settings)
}

async fn app() -> (Router, WebState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = state_in(dir.path()).await;
    let webapp = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../webapp");
    (router(state.clone(), &webapp), state, dir)
}

async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_endpoints() {
    let (app, state, _d) = app().await;
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
    let (status, _, body) = get(&app, "/readyz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    state.store.close().await;
    let (status, _, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("store: "), "{body}");
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK, "liveness does not depend on the store");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let (app, _state, _d) = app().await;
    get(&app, "/healthz").await;
    get(&app, "/healthz").await;
    get(&app, "/no/such/page").await;
    let (status, headers, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    assert!(text.contains("hub_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"), "{text}");
    assert!(text.contains("hub_http_requests_total{route=\"static\",method=\"GET\",status=\"404\"} 1"), "{text}");
    assert!(text.contains("hub_build_info{version=\""), "{text}");
    assert!(text.contains("hub_uptime_seconds "), "{text}");
}

#[tokio::test]
async fn serves_the_webapp_with_security_headers() {
    let (app, _state, _d) = app().await;
    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<title>"), "{body}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let (status, _, body) = get(&app, "/api/status").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["store"], "sqlite");
    assert_eq!(v["store_ready"], true);
}

#[tokio::test]
async fn falls_back_to_the_built_in_webapp() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state_in(dir.path()).await, &dir.path().join("no-webapp-here"));
    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("<title>"));
    assert_eq!(get(&app, "/app.js").await.0, StatusCode::OK);
}
