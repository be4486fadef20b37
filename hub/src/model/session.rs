//! Signed-in sessions: one per device (browser) of a user.

use serde::{Deserialize, Serialize};

use super::{SessionId, Timestamp, UserId};

/// A server-side session. Its expiry is fixed at creation and never extended, so a stolen
/// cookie stops working at a known time whatever its holder does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The random token carried (encrypted) in the cookie.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The browser's `User-Agent`, to let a person recognise their devices.
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub ip: Option<String>,
}

impl Session {
    /// Whether the session is still valid at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}
