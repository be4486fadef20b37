//! The audit log: who did what, from where. Never holds tokens or secrets.

use serde::{Deserialize, Serialize};

use super::{RecordId, Timestamp, UserId};

/// One audit log entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Entry id (time ordered).
    pub id: RecordId,
    /// When it happened.
    pub at: Timestamp,
    /// The user concerned, when known.
    pub user_id: Option<UserId>,
    /// Who acted: `cli`, `web`, `idp`, a username.
    pub actor: String,
    /// Client address, when the action came over the network.
    pub ip: Option<String>,
    /// What happened, a dotted verb: `user.create`, `session.login`, `session.login_failed`.
    pub action: String,
    /// Free-form detail (a reason), never a secret.
    pub detail: String,
}

/// What a caller supplies to append an entry; id and time are set by the store layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// See [`AuditEntry::user_id`].
    pub user_id: Option<UserId>,
    /// See [`AuditEntry::actor`].
    pub actor: String,
    /// See [`AuditEntry::ip`].
    pub ip: Option<String>,
    /// See [`AuditEntry::action`].
    pub action: String,
    /// See [`AuditEntry::detail`].
    pub detail: String,
}
