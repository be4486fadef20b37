//! The signaling protocol between a browser tab and the hub, version 1: JSON objects with a
//! `v` (protocol version) and a `type`, one per WebSocket text message. Documented with an
//! example of every message in `docs/signaling.md`.

use serde::{Deserialize, Serialize};

use super::ice::IceServer;
use super::state::EndReason;
use crate::model::{CallId, UserId};

/// The protocol version this hub speaks.
pub const VERSION: u32 = 1;

/// A message from a browser tab.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Call a colleague (every open tab of theirs rings).
    Call {
        /// The callee's user id.
        to: UserId,
        /// Whether the caller starts with video.
        #[serde(default)]
        video: bool,
        /// Echoed in the answer, to match it to this request.
        #[serde(default)]
        req: Option<String>,
        /// Protocol version (checked by the connection).
        #[serde(default)]
        v: Option<u32>,
    },
    /// Call a number the hub answers itself (an echo test, a recording test, an IVR menu).
    Dial {
        /// The number, as dialled.
        number: String,
        /// Echoed in the answer, to match it to this request.
        #[serde(default)]
        req: Option<String>,
        /// Protocol version (checked by the connection).
        #[serde(default)]
        v: Option<u32>,
    },
    /// Answer a ringing call on this tab.
    Accept {
        /// The call.
        call: CallId,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
    /// Refuse a ringing call (it stops ringing everywhere).
    Decline {
        /// The call.
        call: CallId,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
    /// End the call; before an answer, from the caller, this cancels it.
    #[serde(alias = "cancel")]
    Hangup {
        /// The call.
        call: CallId,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
    /// An SDP offer for the peer (first negotiation or renegotiation).
    Offer {
        /// The call.
        call: CallId,
        /// The SDP.
        sdp: String,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
    /// An SDP answer for the peer.
    Answer {
        /// The call.
        call: CallId,
        /// The SDP.
        sdp: String,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
    /// A trickled ICE candidate for the peer (`null`: end of candidates).
    Ice {
        /// The call.
        call: CallId,
        /// `RTCIceCandidateInit` as the browser gives it.
        candidate: serde_json::Value,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
    /// Keep-alive from the page (browsers cannot send WebSocket pings).
    Ping {
        /// Echoed.
        #[serde(default)]
        req: Option<String>,
        /// Protocol version.
        #[serde(default)]
        v: Option<u32>,
    },
}

impl ClientMessage {
    /// The protocol version the message claims (absent: the current one).
    pub fn version(&self) -> u32 {
        let v = match self {
            ClientMessage::Call { v, .. }
            | ClientMessage::Dial { v, .. }
            | ClientMessage::Accept { v, .. }
            | ClientMessage::Decline { v, .. }
            | ClientMessage::Hangup { v, .. }
            | ClientMessage::Offer { v, .. }
            | ClientMessage::Answer { v, .. }
            | ClientMessage::Ice { v, .. }
            | ClientMessage::Ping { v, .. } => *v,
        };
        v.unwrap_or(VERSION)
    }

    /// The call it is about, if any.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            ClientMessage::Accept { call, .. }
            | ClientMessage::Decline { call, .. }
            | ClientMessage::Hangup { call, .. }
            | ClientMessage::Offer { call, .. }
            | ClientMessage::Answer { call, .. }
            | ClientMessage::Ice { call, .. } => Some(call),
            ClientMessage::Call { .. } | ClientMessage::Dial { .. } | ClientMessage::Ping { .. } => None,
        }
    }
}

/// Who someone is, as shown on a ringing or calling screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Party {
    /// User id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Extension, if any.
    pub extension: Option<String>,
}

/// A message to a browser tab.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on a new connection.
    Welcome {
        /// This tab's device id.
        device: String,
        /// The signed-in user.
        user: Party,
        /// STUN/TURN servers for `RTCPeerConnection`.
        ice_servers: Vec<IceServer>,
        /// When the TURN credentials expire (ms since the epoch); fresh ones arrive before.
        ice_expires_at: i64,
        /// How long a call rings before it ends unanswered.
        ring_timeout_ms: u64,
        /// Unheard voicemail messages (not in the trash), for the badge; later changes come
        /// as [`ServerMessage::Voicemail`].
        voicemail_unread: u64,
    },
    /// Fresh STUN/TURN credentials.
    IceServers {
        /// Servers.
        ice_servers: Vec<IceServer>,
        /// Expiry, ms since the epoch.
        ice_expires_at: i64,
    },
    /// Your call request was accepted: the callee's devices ring.
    Calling {
        /// The new call.
        call: CallId,
        /// Whom you are calling.
        to: Party,
        /// How many devices ring.
        devices: usize,
        /// Your `req`.
        req: Option<String>,
    },
    /// Someone calls you: ring.
    Incoming {
        /// The call.
        call: CallId,
        /// Who calls.
        from: Party,
        /// Whether they start with video.
        video: bool,
    },
    /// Someone tried to call you while you were in another call on this tab.
    CallWaiting {
        /// Their call.
        call: CallId,
        /// Who.
        from: Party,
    },
    /// Your accept won: wait for the caller's offer.
    Accepted {
        /// The call.
        call: CallId,
    },
    /// (Caller) the callee answered: send your offer.
    Answered {
        /// The call.
        call: CallId,
    },
    /// Another of your devices answered: stop ringing.
    AnsweredElsewhere {
        /// The call.
        call: CallId,
    },
    /// Your peer's SDP offer.
    Offer {
        /// The call.
        call: CallId,
        /// SDP.
        sdp: String,
    },
    /// Your peer's SDP answer.
    Answer {
        /// The call.
        call: CallId,
        /// SDP.
        sdp: String,
    },
    /// Your peer's ICE candidate.
    Ice {
        /// The call.
        call: CallId,
        /// The candidate (`null`: end of candidates).
        candidate: serde_json::Value,
    },
    /// The hub number you called transferred you to a colleague: this call is over, and a
    /// call to them follows (`calling` with this `req`), on the same tab and microphone.
    Transferred {
        /// The call that ends.
        call: CallId,
        /// Whom you are now calling.
        to: Party,
        /// The `req` of the `calling` that follows.
        req: String,
    },
    /// The call is over.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
    },
    /// Your message was refused; nothing else changed.
    Error {
        /// Stable code for programs.
        code: ErrorCode,
        /// Sentence for people.
        message: String,
        /// The call concerned.
        #[serde(skip_serializing_if = "Option::is_none")]
        call: Option<CallId>,
        /// Your `req`.
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<String>,
    },
    /// Answer to `ping`.
    Pong {
        /// Your `req`.
        req: Option<String>,
    },
    /// Your mailbox changed (a message arrived, was read, trashed or restored): every open
    /// tab updates its badge without polling.
    Voicemail {
        /// Unheard messages not in the trash.
        unread: u64,
    },
}

/// Stable error codes of [`ServerMessage::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a known message.
    BadMessage,
    /// A `v` this hub does not speak.
    UnsupportedVersion,
    /// Larger than 64 KiB.
    TooLarge,
    /// Too many messages per second.
    RateLimited,
    /// Too many calls ringing at once from this user or address.
    TooManyCalls,
    /// No such user, or a disabled one.
    UnknownUser,
    /// A dialled number the hub does not answer.
    UnknownNumber,
    /// Calling yourself.
    CannotCallYourself,
    /// This tab is already in a call.
    Busy,
    /// No live call with this id involves this tab.
    NotYourCall,
    /// Another device answered first.
    AlreadyAnswered,
    /// Signaling before the call was answered.
    NotAnswered,
    /// The call is over.
    CallEnded,
}

impl ServerMessage {
    /// The JSON text sent on the wire, with the protocol version.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Versioned<'a> {
            v: u32,
            #[serde(flatten)]
            msg: &'a ServerMessage,
        }
        serde_json::to_string(&Versioned { v: VERSION, msg: self }).unwrap_or_else(|e| {
            format!(
                "{{\"v\":{VERSION},\"type\":\"error\",\"code\":\"bad_message\",\"message\":\"encoding failed: {e}\"}}"
            )
        })
    }

    /// An error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, call: Option<CallId>, req: Option<String>) -> Self {
        ServerMessage::Error { code, message: message.into(), call, req }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_and_unknown_ones_do_not() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"v":1,"type":"call","to":"u1","video":true,"req":"r1"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Call { to: UserId::from_string("u1"), video: true, req: Some("r1".into()), v: Some(1) }
        );
        let m: ClientMessage = serde_json::from_str(r#"{"type":"cancel","call":"c1"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Hangup { .. }), "cancel is an alias of hangup");
        assert_eq!(m.version(), VERSION);
        let m: ClientMessage = serde_json::from_str(r#"{"v":1,"type":"ice","call":"c1","candidate":null}"#).unwrap();
        assert_eq!(m.call().map(CallId::as_str), Some("c1"));
        for bad in [
            r#"{"type":"fly","call":"c"}"#,
            r#"{"type":"accept"}"#,
            r#"{"type":"accept","call":"c","x":1}"#,
            "[]",
            "nope",
        ] {
            assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_carry_the_version() {
        let json = ServerMessage::Ended { call: CallId::from_string("c1"), reason: EndReason::NoAnswer }.to_json();
        assert_eq!(json, r#"{"v":1,"type":"ended","call":"c1","reason":"no_answer"}"#);
        let json = ServerMessage::error(ErrorCode::RateLimited, "slow down", None, None).to_json();
        assert_eq!(json, r#"{"v":1,"type":"error","code":"rate_limited","message":"slow down"}"#);
        let json = ServerMessage::Voicemail { unread: 3 }.to_json();
        assert_eq!(json, r#"{"v":1,"type":"voicemail","unread":3}"#);
    }
}
