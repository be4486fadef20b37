//! The one error type that becomes an HTTP response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error a handler returns. The client gets a status and a short message; the cause is
/// logged once, here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A dependency (the database) is not available.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Something failed inside the hub.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, public) = match &self {
            ApiError::Unavailable(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason.clone()),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_string()),
        };
        tracing::warn!(error = %self, status = status.as_u16(), "request failed");
        (status, Json(serde_json::json!({ "error": public }))).into_response()
    }
}
