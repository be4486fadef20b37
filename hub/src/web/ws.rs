//! `GET /ws`: the signaling WebSocket of one signed-in tab (a "device").
//!
//! The connection enforces the per-connection limits (64 KiB per message, a message rate),
//! parses the protocol, looks callees up in the directory, and hands everything else to the
//! call controller. Bad input gets an error frame; the connection and everybody else's calls
//! carry on. A silent connection is closed after [`SILENCE_LIMIT`], and the other side of
//! its call is told.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::WebState;
use super::client::Client;
use super::signed_in::SignedIn;
use crate::auth::short_id;
use crate::calls::signal::{ClientMessage, ErrorCode, Party, ServerMessage, VERSION};
use crate::calls::{DEVICE_QUEUE, DeviceInfo, ice};
use crate::model::{Session, User};

/// Largest message a tab may send.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest frame the WebSocket layer reads at all (beyond: the socket closes with 1009).
const MAX_FRAME: usize = 1024 * 1024;
/// How often the hub pings the tab.
const PING_EVERY: Duration = Duration::from_secs(3);
/// Silence after which the tab counts as gone.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// How often the session behind the connection is checked again (expired, signed out,
/// disabled: the socket closes).
const SESSION_RECHECK: Duration = Duration::from_secs(30);

/// `GET /ws`.
pub(super) async fn upgrade(
    State(state): State<WebState>,
    me: SignedIn,
    client: Client,
    ws: WebSocketUpgrade,
) -> Response {
    // Small buffers: signaling messages are small, and ten thousand idle tabs must not each
    // hold the 128 KiB tungstenite reserves by default.
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection(socket, state, me, client))
}

fn party(user: &User) -> Party {
    Party {
        id: user.id.clone(),
        name: user.display_name.clone(),
        extension: user.extension.as_ref().map(ToString::to_string),
    }
}

/// Token bucket over the messages of one connection.
struct Rate {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self { per_second, tokens: per_second * 2.0, at: Instant::now() }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second).min(self.per_second * 2.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[tracing::instrument(name = "ws", skip_all, fields(user = %me.user.username, session = short_id(&me.session.id)))]
async fn connection(mut socket: WebSocket, state: WebState, me: SignedIn, client: Client) {
    let (out, mut queue) = mpsc::channel::<String>(DEVICE_QUEUE);
    let info = DeviceInfo { user: party(&me.user), ip: client.ip, session: short_id(&me.session.id).to_string() };
    let Ok(device) = state.calls.connect(info, out.clone()).await else { return };
    tracing::info!(device, "device connected");

    let (servers, expires) = ice::servers_for(&state.media, &me.user.id, SystemTime::now());
    // Counted after `connect`: a change from here on also reaches this tab, behind the welcome.
    let voicemail_unread = match state.voicemail {
        Some(_) => state.store.unread_count(&me.user.id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot count unread voicemail");
            0
        }),
        None => 0,
    };
    let welcome = ServerMessage::Welcome {
        device: device.to_string(),
        user: party(&me.user),
        ice_servers: servers,
        ice_expires_at: expires.as_millis(),
        ring_timeout_ms: state.calls_config.ring_timeout.as_millis() as u64,
        voicemail_unread,
    };
    let mut close: Option<(u16, &str)> = None;
    if socket.send(Message::Text(welcome.to_json().into())).await.is_ok() {
        close = serve(&mut socket, &state, &me.session, device, &out, &mut queue).await;
    }
    let _ = state.calls.disconnect(device).await;
    if let Some((code, reason)) = close {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
    tracing::info!(device, "device disconnected");
}

/// The connection's loop; returns the close code to send, if any.
async fn serve(
    socket: &mut WebSocket,
    state: &WebState,
    session: &Session,
    device: u64,
    out: &mpsc::Sender<String>,
    queue: &mut mpsc::Receiver<String>,
) -> Option<(u16, &'static str)> {
    let mut rate = Rate::new(state.calls_config.messages_per_second);
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
    // Fresh TURN credentials halfway through their lifetime.
    let mut ice_refresh = tokio::time::interval(state.media.turn_ttl / 2);
    ice_refresh.tick().await;
    let reply = |msg: ServerMessage| {
        // Our own queue: when it is full the controller is about to drop this device anyway.
        let _ = out.try_send(msg.to_json());
    };
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(frame)) = incoming else { return None };
                last_heard = Instant::now();
                match frame {
                    Message::Text(text) => {
                        if text.len() > MAX_MESSAGE {
                            reply(ServerMessage::error(ErrorCode::TooLarge, format!("Messages are limited to {MAX_MESSAGE} bytes."), None, None));
                        } else if !rate.allow() {
                            reply(ServerMessage::error(ErrorCode::RateLimited, "Too many messages; slow down.", None, None));
                        } else {
                            handle(state, device, text.as_str(), &reply).await;
                        }
                    }
                    Message::Binary(_) => reply(ServerMessage::error(ErrorCode::BadMessage, "Only text messages are understood.", None, None)),
                    Message::Close(_) => return None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            frame = queue.recv() => {
                let Some(text) = frame else { return Some((1011, "disconnected by the hub")) };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return None;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::info!(device, "no sign of life; closing");
                    return Some((1001, "no sign of life"));
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return None;
                }
            }
            _ = recheck.tick() => {
                match state.store.session_with_user(&session.id).await {
                    Ok(Some((s, u))) if s.is_live(crate::model::Timestamp::now()) && !u.disabled => {}
                    Ok(_) => return Some((4001, "session ended")),
                    Err(e) => tracing::warn!(error = %e, "session re-check failed; keeping the connection"),
                }
            }
            () = state.shutdown.cancelled() => return Some((1001, "the hub is restarting")),
            _ = ice_refresh.tick() => {
                let (ice_servers, expires) = ice::servers_for(&state.media, &session.user_id, SystemTime::now());
                reply(ServerMessage::IceServers { ice_servers, ice_expires_at: expires.as_millis() });
            }
        }
    }
}

/// What a dialled number may hold: digits, letters, `*`, `#`, `+`, up to 32 of them.
fn valid_number(number: &str) -> bool {
    !number.is_empty()
        && number.len() <= 32
        && number.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '#' | '+'))
}

async fn handle(state: &WebState, device: u64, text: &str, reply: &impl Fn(ServerMessage)) {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return reply(ServerMessage::error(
                ErrorCode::BadMessage,
                format!("Not a message this hub understands: {e}"),
                None,
                None,
            ));
        }
    };
    if msg.version() != VERSION {
        let call = msg.call().cloned();
        return reply(ServerMessage::error(
            ErrorCode::UnsupportedVersion,
            format!("This hub speaks signaling version {VERSION}."),
            call,
            None,
        ));
    }
    let result = match msg {
        ClientMessage::Call { to, video, req, .. } => match state.store.user(&to).await {
            Ok(Some(user)) if !user.disabled => state.calls.place(device, party(&user), video, req).await,
            Ok(_) => {
                return reply(ServerMessage::error(ErrorCode::UnknownUser, "There is no such colleague.", None, req));
            }
            Err(e) => {
                tracing::warn!(error = %e, "directory lookup failed");
                return reply(ServerMessage::error(
                    ErrorCode::UnknownUser,
                    "The directory is not reachable right now.",
                    None,
                    req,
                ));
            }
        },
        ClientMessage::Dial { number, req, .. } => {
            if !valid_number(&number) {
                return reply(ServerMessage::error(
                    ErrorCode::UnknownNumber,
                    "A number is up to 32 digits, letters, *, # or +.",
                    None,
                    req,
                ));
            }
            state.calls.dial(device, number, req).await
        }
        other => state.calls.message(device, other).await,
    };
    if result.is_err() {
        reply(ServerMessage::error(ErrorCode::CallEnded, "The hub is shutting down.", None, None));
    }
}

#[cfg(test)]
mod tests {
    use super::valid_number;

    #[test]
    fn dialled_numbers_are_short_and_plain() {
        for ok in ["*43", "1001", "+441234567890", "#9", "ivr"] {
            assert!(valid_number(ok), "{ok}");
        }
        for bad in ["", "12 34", "1;user=phone", "sip:1001@x", "ü", &"1".repeat(33)] {
            assert!(!valid_number(bad), "{bad}");
        }
    }
}
