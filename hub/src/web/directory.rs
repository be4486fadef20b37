//! `GET /api/directory?q=…`: colleagues by name, with their numbers and whether they can be
//! reached in the browser right now.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::signed_in::SignedIn;
use super::{ApiError, WebState};
use crate::store::UserQuery;

/// Search parameters.
#[derive(Deserialize)]
pub(super) struct Search {
    /// Start of a name, username or e-mail word; empty lists everybody (up to `limit`).
    #[serde(default)]
    q: String,
    /// At most this many (1..=100, default 20).
    limit: Option<usize>,
}

/// `GET /api/directory`.
pub(super) async fn search(
    State(state): State<WebState>,
    me: SignedIn,
    Query(s): Query<Search>,
) -> Result<Json<Value>, ApiError> {
    let limit = s.limit.unwrap_or(20).clamp(1, 100);
    let q = s.q.trim().chars().take(64).collect::<String>();
    let query = UserQuery { name_prefix: (!q.is_empty()).then_some(q), include_disabled: false, limit: Some(limit) };
    let users = state.store.list_users(&query).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let presence = state
        .calls
        .presence(users.iter().map(|u| u.id.clone()).collect())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut sip = Vec::with_capacity(users.len());
    for u in &users {
        sip.push(sip_reachability(&state, u).await?);
    }
    let list: Vec<Value> = users
        .iter()
        .zip(presence)
        .zip(sip)
        .map(|((u, p), sip)| {
            json!({
                "id": u.id,
                "display_name": u.display_name,
                "username": u.username,
                "extension": u.extension,
                "numbers": u.numbers.iter().map(|n| json!({ "number": n.number, "kind": n.kind })).collect::<Vec<_>>(),
                "online": p.devices > 0,
                "devices": p.devices,
                "in_call": p.in_call,
                "sip": sip,
                "you": u.id == me.user.id,
            })
        })
        .collect();
    Ok(Json(json!({ "users": list })))
}

/// A user's reachability on Asterisk (desk phones, browsers registered over SIP): `null` when
/// no Asterisk is configured, the user has no endpoint, or the hub cannot see Asterisk now
/// (unknown is not the same as unregistered).
async fn sip_reachability(state: &WebState, user: &crate::model::User) -> Result<Value, ApiError> {
    let Some(presence) = &state.sip.presence else { return Ok(Value::Null) };
    if !presence.is_live() {
        return Ok(Value::Null);
    }
    let Some(account) = state.store.sip_account(&user.id).await.map_err(|e| ApiError::Unavailable(e.to_string()))?
    else {
        return Ok(Value::Null);
    };
    Ok(match presence.get(&account.username) {
        Some(p) => json!({
            "registered": p.registered_contacts().len(),
            "in_use": p.in_use(),
            "state": p.device_state(),
        }),
        None => json!({ "registered": 0, "in_use": false, "state": "unavailable" }),
    })
}
