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
    let list: Vec<Value> = users
        .iter()
        .zip(presence)
        .map(|(u, p)| {
            json!({
                "id": u.id,
                "display_name": u.display_name,
                "username": u.username,
                "extension": u.extension,
                "numbers": u.numbers.iter().map(|n| json!({ "number": n.number, "kind": n.kind })).collect::<Vec<_>>(),
                "online": p.devices > 0,
                "devices": p.devices,
                "in_call": p.in_call,
                "you": u.id == me.user.id,
            })
        })
        .collect();
    Ok(Json(json!({ "users": list })))
}
