//! Same-origin guard: state-changing requests and WebSocket upgrades must come from the hub's
//! own pages. Browsers always send `Origin` on these, so a missing or foreign one is refused
//! (cross-site request forgery, cross-site WebSocket hijacking).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which origin is "ours".
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    /// `web.public_url`'s origin when configured; otherwise `https://<Host header>`.
    pub fixed: Option<String>,
}

impl OriginPolicy {
    fn expected(&self, req: &Request) -> Option<String> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.clone());
        }
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
        let host = host.or_else(|| req.uri().authority().map(|a| a.to_string()))?;
        Some(format!("https://{host}"))
    }
}

fn needs_check(req: &Request) -> bool {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    upgrade || !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware refusing cross-origin writes with 403.
pub(super) async fn same_origin(State(policy): State<OriginPolicy>, req: Request, next: Next) -> Response {
    if needs_check(&req) {
        let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let expected = policy.expected(&req);
        if origin.is_none() || origin.map(str::to_string) != expected {
            tracing::warn!(
                method = %req.method(),
                path = %req.uri().path(),
                origin = origin.unwrap_or("-"),
                expected = expected.as_deref().unwrap_or("-"),
                "cross-origin request refused"
            );
            let body = axum::Json(serde_json::json!({ "error": "cross-origin request refused" }));
            return (StatusCode::FORBIDDEN, body).into_response();
        }
    }
    next.run(req).await
}
