//! Liveness, readiness, metrics and status: what monitoring and the status page read.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::{ApiError, WebState};

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up and serving. Never touches dependencies, so a slow
/// database does not get the hub restarted.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store answers; 503 with the reason otherwise.
pub(super) async fn readyz(State(state): State<WebState>) -> Result<&'static str, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("store: {e}"))),
        Err(_) => Err(ApiError::Unavailable(format!("store: no answer within {READY_TIMEOUT:?}"))),
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub(super) async fn metrics(State(state): State<WebState>) -> impl IntoResponse {
    let body = state.metrics.render(state.started.elapsed(), state.store.backend_name());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// What the status page shows.
#[derive(Serialize)]
pub(super) struct Status {
    version: &'static str,
    uptime_seconds: u64,
    store: &'static str,
    store_ready: bool,
    /// `oidc` or `demo`: the page shows a warning banner in demo mode.
    auth: &'static str,
}

/// `GET /api/status`: version, uptime and store health for the web app's status page.
pub(super) async fn status(State(state): State<WebState>) -> Json<Status> {
    let store_ready = matches!(tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await, Ok(Ok(())));
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: state.store.backend_name(),
        store_ready,
        auth: match state.auth.mode() {
            crate::auth::Mode::Oidc => "oidc",
            crate::auth::Mode::Demo => "demo",
        },
    })
}
