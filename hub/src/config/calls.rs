//! `[calls]`: browser-to-browser calls and the limits that protect them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Problem;

/// Ringing, and the limits on what one connection, user or address may do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallsConfig {
    /// How long the callee's devices ring before the call ends unanswered.
    #[serde(with = "humantime_serde")]
    pub ring_timeout: Duration,
    /// Calls one user may have ringing at once.
    pub max_outgoing_per_user: u32,
    /// Calls one client address may have ringing at once.
    pub max_outgoing_per_ip: u32,
    /// Signaling messages one connection may send per second (burst of twice that).
    pub messages_per_second: u32,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(30),
            max_outgoing_per_user: 3,
            max_outgoing_per_ip: 20,
            messages_per_second: 50,
        }
    }
}

impl CallsConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if self.ring_timeout < Duration::from_secs(1) || self.ring_timeout > Duration::from_secs(600) {
            out.push(Problem::new("calls.ring_timeout", "must be between 1s and 10m"));
        }
        for (key, v) in [
            ("calls.max_outgoing_per_user", self.max_outgoing_per_user),
            ("calls.max_outgoing_per_ip", self.max_outgoing_per_ip),
            ("calls.messages_per_second", self.messages_per_second),
        ] {
            if v == 0 {
                out.push(Problem::new(key, "must be at least 1"));
            }
        }
    }
}
