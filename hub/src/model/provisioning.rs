//! What the hub knows about each user's state on Asterisk, persisted so that a hub restart
//! or an Asterisk outage loses no pending change.

use serde::{Deserialize, Serialize};

use super::{Timestamp, UserId};

/// One user's provisioning state. `desired` is what the generated config says (the
/// revision in the endpoint's `HUB_REV` variable, or `None` when the endpoint must not exist);
/// `applied` is what Asterisk was last *verified* to have loaded. They differ while a change
/// is pending, and stay different when Asterisk did not take the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRecord {
    /// Whose endpoint it is.
    pub user_id: UserId,
    /// The PJSIP endpoint name (the user's SIP username).
    pub endpoint: String,
    /// Revision the generated config holds; `None`: the endpoint must be absent.
    pub desired: Option<String>,
    /// Revision Asterisk was verified to hold; `None`: verified absent, or never provisioned.
    pub applied: Option<String>,
    /// The outcome of the last attempt.
    pub status: ProvisionStatus,
    /// Why it failed or is pending, for `hub pbx status` (empty when provisioned).
    pub detail: String,
    /// When the status last changed.
    pub updated_at: Timestamp,
}

impl ProvisionRecord {
    /// Whether Asterisk still has to be brought in line with the generated config. A failed
    /// endpoint is not pending: retrying the same config would fail the same way, so it waits
    /// for a change (or `hub pbx reload`) instead of reloading Asterisk on every resync.
    pub fn is_pending(&self) -> bool {
        self.status == ProvisionStatus::Pending
            || (self.desired != self.applied && self.status != ProvisionStatus::Failed)
    }
}

/// The outcome of provisioning one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionStatus {
    /// Written, not yet verified on Asterisk (Asterisk unreachable, or a reload is due).
    Pending,
    /// Asterisk has the endpoint at the desired revision.
    Provisioned,
    /// Asterisk reloaded but does not have the desired revision (see `detail`).
    Failed,
    /// The endpoint was removed from Asterisk (user disabled or without an extension).
    Removed,
}

str_enum!(ProvisionStatus {
    Pending => "pending",
    Provisioned => "provisioned",
    Failed => "failed",
    Removed => "removed",
});

/// The last reload the hub asked of Asterisk, for `hub pbx status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadRecord {
    /// When it finished.
    pub at: Timestamp,
    /// Whether Asterisk accepted the reload and every changed endpoint verified.
    pub ok: bool,
    /// A one-line summary (`reloaded res_pjsip.so, pbx_config.so; 3 provisioned, 1 failed`).
    pub detail: String,
    /// How many users' endpoints changed in it.
    pub changed: u32,
    /// How long reload and verification took.
    pub duration_ms: u64,
}
