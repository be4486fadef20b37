//! Call detail records.

use serde::{Deserialize, Serialize};

use super::{RecordId, Timestamp};

/// One finished call, as kept for the call log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Record id.
    pub id: RecordId,
    /// Who called: a user id, extension or external number.
    pub caller: String,
    /// Whom: a user id, extension, IVR number or external number.
    pub callee: String,
    /// Which way the call went.
    pub path: CallPath,
    /// The devices involved (session ids' short form, SIP contacts).
    pub devices: Vec<String>,
    /// When the call was placed.
    pub started_at: Timestamp,
    /// When it was answered, if it was.
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Timestamp,
    /// How it ended.
    pub outcome: CallOutcome,
}

/// Which way a call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallPath {
    /// Browser to browser through the hub's signaling.
    Browser,
    /// Through Asterisk as SIP.
    Sip,
    /// To the hub's IVR.
    Ivr,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Answered and then hung up by either side.
    Completed,
    /// The callee declined.
    Declined,
    /// Nobody answered before the timeout.
    NoAnswer,
    /// The caller gave up before an answer.
    Cancelled,
    /// Every device of the callee was busy.
    Busy,
    /// The callee had no device online.
    Offline,
    /// A connection dropped or an error ended the call.
    Failed,
}

str_enum!(CallPath { Browser => "browser", Sip => "sip", Ivr => "ivr" });
str_enum!(CallOutcome {
    Completed => "completed",
    Declined => "declined",
    NoAnswer => "no_answer",
    Cancelled => "cancelled",
    Busy => "busy",
    Offline => "offline",
    Failed => "failed",
});
