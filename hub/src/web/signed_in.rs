//! The signed-in person behind a request: from the encrypted session cookie to a live
//! session and an enabled user, or 401.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Key, PrivateCookieJar};

use super::WebState;
use super::cookies::SESSION_COOKIE;
use crate::model::{Session, SessionToken, User};

/// A request from a signed-in person.
pub struct SignedIn {
    /// Their session (this device).
    pub session: Session,
    /// Who they are.
    pub user: User,
}

/// Why a request is not signed in.
pub enum NotSignedIn {
    /// No cookie, an unknown or expired session, or a disabled user.
    Unauthenticated,
    /// The store could not be asked.
    Unavailable(String),
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": "not signed in" }))).into_response()
            }
            NotSignedIn::Unavailable(reason) => super::ApiError::Unavailable(reason).into_response(),
        }
    }
}

impl FromRequestParts<WebState> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let jar = PrivateCookieJar::<Key>::from_request_parts(parts, state).await.unwrap_or_else(|e| match e {});
        let token = jar
            .get(SESSION_COOKIE)
            .map(|c| SessionToken::from_string(c.value()))
            .ok_or(NotSignedIn::Unauthenticated)?;
        match state.auth.sessions().check(&token).await {
            Ok(Some((session, user))) => Ok(SignedIn { session, user }),
            Ok(None) => Err(NotSignedIn::Unauthenticated),
            Err(e) => Err(NotSignedIn::Unavailable(format!("session store: {e}"))),
        }
    }
}

impl FromRef<WebState> for Key {
    fn from_ref(state: &WebState) -> Key {
        state.cookie_key.clone()
    }
}
