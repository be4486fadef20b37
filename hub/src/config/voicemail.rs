//! `[voicemail]`: where messages are kept and how long they may be.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Problem;

/// Mailbox storage and limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoicemailConfig {
    /// Directory for recorded messages and greetings.
    pub recordings_dir: PathBuf,
    /// Longest message accepted.
    #[serde(with = "humantime_serde")]
    pub max_message: Duration,
    /// How long deleted messages stay restorable in the trash.
    #[serde(with = "humantime_serde")]
    pub trash_retention: Duration,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        Self {
            recordings_dir: PathBuf::from("recordings"),
            max_message: Duration::from_secs(180),
            trash_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl VoicemailConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if self.max_message < Duration::from_secs(1) {
            out.push(Problem::new("voicemail.max_message", "must be at least 1s"));
        }
    }
}
