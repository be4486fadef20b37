//! `/api/voicemail…`: the signed-in person's mailbox, their greeting, and messages they leave
//! colleagues from the browser. Thin: checks and files live in [`crate::voicemail`].
//!
//! Every endpoint needs a session (401) and serves only the owner's messages: someone else's
//! message id answers 404 like an unknown one. Writes pass the same-origin guard of every
//! write (403). Endpoints and examples: `docs/voicemail.md`.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::signed_in::SignedIn;
use super::{ApiError, WebState};
use crate::model::{MailboxMessage, MessageId, UserId};
use crate::voicemail::{MAX_UPLOAD_BYTES, Voicemail, VoicemailError};

/// The mailbox routes, merged into the main router.
pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/voicemail", get(inbox))
        .route("/api/voicemail/trash", get(trash))
        .route("/api/voicemail/send", post(send))
        .route("/api/voicemail/greeting", get(greeting).put(save_greeting).delete(delete_greeting))
        .route("/api/voicemail/{id}", delete(move_to_trash))
        .route("/api/voicemail/{id}/audio", get(audio))
        .route("/api/voicemail/{id}/read", post(set_read))
        .route("/api/voicemail/{id}/restore", post(restore))
}

fn mailboxes(state: &WebState) -> Result<&Voicemail, ApiError> {
    state.voicemail.as_ref().ok_or_else(|| ApiError::Unavailable("voicemail is not set up on this hub".into()))
}

/// Domain errors as HTTP: refusals keep their sentence, failures are logged once.
fn api(e: VoicemailError) -> ApiError {
    let message = e.to_string();
    match e {
        VoicemailError::NotFound => {
            ApiError::refused(StatusCode::NOT_FOUND, "not_found", "No such message in your mailbox.")
        }
        VoicemailError::NoGreeting => ApiError::refused(StatusCode::NOT_FOUND, "no_greeting", "You have no greeting."),
        VoicemailError::UnknownRecipient => {
            ApiError::refused(StatusCode::NOT_FOUND, "unknown_recipient", "There is no such colleague.")
        }
        VoicemailError::TooLarge { limit } => ApiError::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("The recording is larger than {} MiB.", limit / (1024 * 1024)),
        ),
        VoicemailError::TooLong { duration_ms, limit_ms } => ApiError::refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
            format!(
                "The recording lasts {:.1} s; messages may last at most {} s.",
                duration_ms as f64 / 1000.0,
                limit_ms / 1000
            ),
        ),
        VoicemailError::Unsupported(why) => ApiError::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("This recording cannot be used: {why}."),
        ),
        VoicemailError::Store(_) => ApiError::Unavailable(message),
        VoicemailError::Files(_) => ApiError::Internal(message),
    }
}

fn message_json(vm: &Voicemail, m: &MailboxMessage) -> Value {
    json!({
        "id": m.id,
        "from": m.from,
        "created_at": m.created_at,
        "duration_ms": m.duration_ms,
        "media_type": m.media_type,
        "read": m.read,
        "audio_url": format!("/api/voicemail/{}/audio", m.id),
        "download_url": format!("/api/voicemail/{}/audio?download=1", m.id),
        "deleted_at": m.deleted_at,
        "purge_at": m.deleted_at.map(|d| vm.purge_at(d)),
    })
}

/// `GET /api/voicemail`: my messages outside the trash, unheard first, and the limits the
/// recorder needs.
async fn inbox(State(state): State<WebState>, me: SignedIn) -> Result<Json<Value>, ApiError> {
    let vm = mailboxes(&state)?;
    let list = vm.inbox(&me.user.id).await.map_err(api)?;
    Ok(Json(json!({
        "messages": list.iter().map(|m| message_json(vm, m)).collect::<Vec<_>>(),
        "unread": list.iter().filter(|m| !m.read).count(),
        "greeting": vm.greeting(&me.user.id).map(|g| json!({ "media_type": g.kind.media_type() })),
        "limits": {
            "max_message_ms": u64::try_from(vm.max_message().as_millis()).unwrap_or(u64::MAX),
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "trash_retention_ms": u64::try_from(vm.trash_retention().as_millis()).unwrap_or(u64::MAX),
        },
    })))
}

/// `GET /api/voicemail/trash`: my trashed messages, with when each goes for good.
async fn trash(State(state): State<WebState>, me: SignedIn) -> Result<Json<Value>, ApiError> {
    let vm = mailboxes(&state)?;
    let list = vm.trash(&me.user.id).await.map_err(api)?;
    Ok(Json(json!({ "messages": list.iter().map(|m| message_json(vm, m)).collect::<Vec<_>>() })))
}

/// `?download=1` on the audio.
#[derive(Deserialize)]
struct AudioQuery {
    #[serde(default)]
    download: Option<String>,
}

/// `GET /api/voicemail/{id}/audio`: the recording, with its media type; `Range` works (audio
/// elements seek with it); `?download=1` makes it an attachment with a readable name.
async fn audio(
    State(state): State<WebState>,
    me: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<AudioQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let vm = mailboxes(&state)?;
    let m = vm.message(&me.user.id, &MessageId::from_string(id)).await.map_err(api)?;
    let path = vm.audio_path(&m).map_err(api)?;
    let download = q.download.as_deref().is_some_and(|d| matches!(d, "1" | "true" | "yes"));
    let disposition = download.then(|| format!("attachment; filename=\"{}\"", download_name(&m)));
    serve_file(path, &m.media_type, disposition, request).await.map_err(|()| {
        tracing::warn!(message_id = %m.id, path = %m.path, "a voicemail message's audio file is missing");
        ApiError::refused(StatusCode::NOT_FOUND, "not_found", "The recording of this message is missing.")
    })
}

/// Streams `path` (ranges, conditional requests) as `media_type`; `Err` when it is missing.
async fn serve_file(
    path: std::path::PathBuf,
    media_type: &str,
    disposition: Option<String>,
    request: Request,
) -> Result<Response, ()> {
    let Ok(res) = ServeFile::new(path).oneshot(request).await;
    if res.status() == StatusCode::NOT_FOUND {
        return Err(());
    }
    let mut res = res.map(Body::new);
    let headers = res.headers_mut();
    if res_has_body(headers)
        && let Ok(v) = HeaderValue::from_str(media_type)
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Some(v) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Whether the response carries the file (not a 304 or 416 without a media type).
fn res_has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_TYPE)
}

/// `voicemail-2026-05-01-1030-Alice-Tester.webm`: date, time (UTC) and who, in plain ASCII.
fn download_name(m: &MailboxMessage) -> String {
    let when: String = m.created_at.to_string().chars().take(16).collect::<String>().replace(':', "").replace('T', "-");
    let mut who = String::new();
    for c in m.from.chars() {
        if c.is_ascii_alphanumeric() {
            who.push(c);
        } else if !who.ends_with('-') && !who.is_empty() {
            who.push('-');
        }
        if who.len() >= 40 {
            break;
        }
    }
    let who = who.trim_end_matches('-');
    let ext = match m.media_type.as_str() {
        "audio/webm" => "webm",
        "audio/ogg" => "ogg",
        "audio/wav" => "wav",
        _ => "audio",
    };
    if who.is_empty() { format!("voicemail-{when}.{ext}") } else { format!("voicemail-{when}-{who}.{ext}") }
}

/// Body of `POST /api/voicemail/{id}/read`.
#[derive(Deserialize)]
struct ReadBody {
    read: bool,
}

/// `POST /api/voicemail/{id}/read` with `{"read": true|false}`.
async fn set_read(
    State(state): State<WebState>,
    me: SignedIn,
    Path(id): Path<String>,
    Json(body): Json<ReadBody>,
) -> Result<Json<Value>, ApiError> {
    let vm = mailboxes(&state)?;
    let m = vm.set_read(&me.user.id, &MessageId::from_string(id), body.read).await.map_err(api)?;
    Ok(Json(message_json(vm, &m)))
}

/// `DELETE /api/voicemail/{id}`: to the trash, restorable for `[voicemail] trash_retention`.
async fn move_to_trash(
    State(state): State<WebState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    mailboxes(&state)?.move_to_trash(&me.user.id, &MessageId::from_string(id)).await.map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/voicemail/{id}/restore`: out of the trash.
async fn restore(State(state): State<WebState>, me: SignedIn, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    mailboxes(&state)?.restore(&me.user.id, &MessageId::from_string(id)).await.map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Oversized uploads up to this size are read to the end before the 413, so the client gets
/// the answer instead of a connection reset in the middle of its upload; beyond it the hub
/// answers at once.
const DRAIN_LIMIT: u64 = 4 * MAX_UPLOAD_BYTES as u64;

/// The request body, refused with 413 when it passes [`MAX_UPLOAD_BYTES`] (by its
/// `Content-Length`, or while it streams in).
async fn upload(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let too_large = || api(VoicemailError::TooLarge { limit: MAX_UPLOAD_BYTES });
    let declared_len = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::refused(StatusCode::BAD_REQUEST, "upload_failed", format!("The upload broke off: {e}"))
        })?;
        total += chunk.len() as u64;
        if total > DRAIN_LIMIT {
            return Err(too_large());
        }
        if total <= MAX_UPLOAD_BYTES as u64 {
            buf.extend_from_slice(&chunk);
        }
    }
    if total > MAX_UPLOAD_BYTES as u64 {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// `?to=<user id>` of a message left from the browser.
#[derive(Deserialize)]
struct SendQuery {
    #[serde(default)]
    to: Option<String>,
}

/// `POST /api/voicemail/send?to=<user id>`: the recording is the raw body (`audio/webm`,
/// `audio/ogg` or `audio/wav`, checked by content).
async fn send(
    State(state): State<WebState>,
    me: SignedIn,
    Query(q): Query<SendQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let vm = mailboxes(&state)?;
    let Some(to) = q.to.filter(|t| !t.is_empty()) else {
        return Err(ApiError::refused(StatusCode::BAD_REQUEST, "no_recipient", "Say whom the message is for (?to=…)."));
    };
    let bytes = upload(&headers, body).await?;
    let (recipient, m) =
        vm.send(&me.user, &UserId::from_string(to), content_type(&headers), bytes).await.map_err(api)?;
    let body = json!({
        "to": { "id": recipient.id, "display_name": recipient.display_name },
        "duration_ms": m.duration_ms,
        "media_type": m.media_type,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/voicemail/greeting`: my own greeting's audio; 404 when I have none.
async fn greeting(State(state): State<WebState>, me: SignedIn, request: Request) -> Result<Response, ApiError> {
    let g = mailboxes(&state)?.greeting(&me.user.id).ok_or_else(|| api(VoicemailError::NoGreeting))?;
    serve_file(g.path, g.kind.media_type(), None, request).await.map_err(|()| api(VoicemailError::NoGreeting))
}

/// `PUT /api/voicemail/greeting`: replaces my greeting (same checks as a message).
async fn save_greeting(
    State(state): State<WebState>,
    me: SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let vm = mailboxes(&state)?;
    let bytes = upload(&headers, body).await?;
    let checked = vm.save_greeting(&me.user.id, content_type(&headers), bytes).await.map_err(api)?;
    Ok(Json(json!({ "media_type": checked.kind.media_type(), "duration_ms": checked.duration_ms })))
}

/// `DELETE /api/voicemail/greeting`.
async fn delete_greeting(State(state): State<WebState>, me: SignedIn) -> Result<StatusCode, ApiError> {
    mailboxes(&state)?.delete_greeting(&me.user.id).await.map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    #[test]
    fn download_names_are_plain_ascii() {
        let m = MailboxMessage {
            id: MessageId::from_string("m"),
            owner: UserId::from_string("u"),
            from: "Zoë \"Boss\" <1001>".into(),
            created_at: Timestamp::from_millis(1_777_630_200_000),
            duration_ms: 1,
            media_type: "audio/webm".into(),
            path: "voicemail/u/m.webm".into(),
            read: false,
            deleted_at: None,
        };
        assert_eq!(download_name(&m), "voicemail-2026-05-01-1010-Zo-Boss-1001.webm");
    }
}
