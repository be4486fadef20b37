//! The signed-in person's own account: `/api/me` and their devices (sessions).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Key, PrivateCookieJar};
use serde_json::{Value, json};

use super::client::Client;
use super::cookies::removal;
use super::signed_in::SignedIn;
use super::{ApiError, WebState};
use crate::auth::{Mode, short_id};
use crate::model::{NumberSource, User};

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "email": u.email,
        "extension": u.extension,
        "admin": u.admin,
        "numbers": u.numbers.iter().map(|n| json!({
            "number": n.number,
            "kind": n.kind,
            "source": n.source,
            "read_only": n.source == NumberSource::Idp,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/me`: who I am, my numbers and my signed-in devices.
pub(super) async fn me(State(state): State<WebState>, me: SignedIn) -> Result<Json<Value>, ApiError> {
    let sessions = state.auth.sessions().list(&me.user.id).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let devices: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": short_id(&s.id),
                "created_at": s.created_at,
                "expires_at": s.expires_at,
                "user_agent": s.user_agent,
                "ip": s.ip,
                "current": s.id == me.session.id,
            })
        })
        .collect();
    Ok(Json(json!({
        "user": user_json(&me.user),
        "session": { "id": short_id(&me.session.id), "expires_at": me.session.expires_at },
        "sessions": devices,
        "auth_mode": match state.auth.mode() { Mode::Oidc => "oidc", Mode::Demo => "demo" },
    })))
}

/// `DELETE /api/me/sessions/{id}`: signs one of my devices out.
pub(super) async fn end_session(
    State(state): State<WebState>,
    me: SignedIn,
    client: Client,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.auth.end_session(&me.user, &id, &client.info).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Ok((StatusCode::NOT_FOUND, Json(json!({ "error": "no such session of yours" }))).into_response()),
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// `POST /api/me/logout-all`: signs out every device, this one included.
pub(super) async fn logout_all(
    State(state): State<WebState>,
    me: SignedIn,
    client: Client,
    jar: PrivateCookieJar<Key>,
) -> Result<Response, ApiError> {
    let ended = state
        .auth
        .sign_out_everywhere(&me.user, &me.user.username, &client.info)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok((jar.remove(removal()), Json(json!({ "ended": ended }))).into_response())
}
