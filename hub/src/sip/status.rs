//! What the running user agent reports about itself to `hub sip status`, a separate process:
//! a small JSON file in the data directory, rewritten atomically on every change.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::registration::RegistrationState;
use crate::model::Timestamp;

/// The file's name inside the data directory.
pub const FILE: &str = "sip-status.json";

/// The user agent's state as `hub sip status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipStatus {
    /// The serving hub's process id.
    pub pid: u32,
    /// UDP address.
    pub udp: SocketAddr,
    /// TCP address.
    pub tcp: SocketAddr,
    /// TLS address, when SIP over TLS is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SocketAddr>,
    /// The registrar, when one is configured.
    pub registrar: Option<String>,
    /// Where the registration stands.
    pub registration: RegistrationState,
    /// When this was written.
    pub updated_at: Timestamp,
}

/// Where the status file of the hub with `data_dir` is.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Writes the status (atomically: a reader never sees half a file).
pub fn write(data_dir: &Path, status: &SipStatus) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    crate::files::write_atomic(&path(data_dir), &json, 0o644)
}

/// Reads the status the serving hub last wrote; `None` when there is none.
pub fn read(data_dir: &Path) -> std::io::Result<Option<SipStatus>> {
    match std::fs::read(path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
