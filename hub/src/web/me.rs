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

/// `GET /api/me/sip`: what my browser needs to register to Asterisk as me (SIP over WSS).
/// The hub serves HTTPS only, so the secret never crosses the network in clear; the answer
/// is never cached. A user whose account the provisioning has not created yet gets 404
/// `not_provisioned` (it appears within seconds of the first sign-in).
pub(super) async fn sip(State(state): State<WebState>, me: SignedIn) -> Result<Response, ApiError> {
    let no_store = [(axum::http::header::CACHE_CONTROL, "no-store")];
    let Some(wss_url) = state.sip.wss_url.clone() else {
        let body = json!({ "error": "no_asterisk", "message": "this hub has no Asterisk configured (pbx.ami_url)" });
        return Ok((StatusCode::NOT_FOUND, no_store, Json(body)).into_response());
    };
    let account = state.store.sip_account(&me.user.id).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let (Some(account), Some(extension)) = (account, me.user.extension.as_ref()) else {
        let body = json!({
            "error": "not_provisioned",
            "message": "your phone account is being set up on Asterisk; try again in a few seconds",
        });
        return Ok((StatusCode::NOT_FOUND, no_store, Json(body)).into_response());
    };
    let host = wss_url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .map(|hostport| match hostport.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => hostport,
        })
        .unwrap_or("")
        .to_string();
    tracing::info!(user = %me.user.username, endpoint = %account.username, "SIP credentials handed to a browser");
    let body = json!({
        "wss_url": wss_url,
        "uri": format!("sip:{}@{host}", account.username),
        "username": account.username,
        "secret": account.secret.expose(),
        "extension": extension,
        "realm": state.sip.realm,
        "display_name": me.user.display_name,
        "rotated_at": account.rotated_at,
    });
    Ok((StatusCode::OK, no_store, Json(body)).into_response())
}
