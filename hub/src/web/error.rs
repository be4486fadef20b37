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
    /// The request cannot be served as asked (not found, too large, wrong type): the client
    /// gets `{"error": code, "message": message}` with `status`.
    #[error("{status}: {code}: {message}")]
    Refused {
        /// A 4xx status.
        status: StatusCode,
        /// Stable code for programs (`not_found`, `too_large`…).
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
}

impl ApiError {
    /// A refusal with `status`, a stable `code` and a sentence for people.
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Refused { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, public) = match &self {
            ApiError::Unavailable(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason.clone()),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_string()),
            ApiError::Refused { status, code, message } => {
                tracing::info!(status = status.as_u16(), code, message, "request refused");
                let body = serde_json::json!({ "error": code, "message": message });
                return (*status, Json(body)).into_response();
            }
        };
        tracing::warn!(error = %self, status = status.as_u16(), "request failed");
        (status, Json(serde_json::json!({ "error": public }))).into_response()
    }
}
