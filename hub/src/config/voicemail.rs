//! `[voicemail]`: where messages are kept, how long they may be and in which file format.

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
    /// File format of new recordings; existing ones keep theirs.
    pub recording_format: RecordingFormat,
}

/// `recording_format`: how messages are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingFormat {
    /// `NAME.wav`, 16-bit PCM: read by every tool, 16 kB per second at 8 kHz.
    #[default]
    Wav,
    /// `NAME.opus` (Ogg Opus): about a tenth of the size, for mailboxes kept long.
    Opus,
}

impl RecordingFormat {
    /// Whether this is [`RecordingFormat::Opus`]. The composition root picks the recorder's
    /// format with this: the type itself is not re-exported from `config`, and `media` does not
    /// depend on configuration types.
    pub fn is_opus(self) -> bool {
        self == Self::Opus
    }
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        Self {
            recordings_dir: PathBuf::from("recordings"),
            max_message: Duration::from_secs(180),
            trash_retention: Duration::from_secs(30 * 24 * 3600),
            recording_format: RecordingFormat::Wav,
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
