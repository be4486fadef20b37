//! Voicemail messages.

use serde::{Deserialize, Serialize};

use super::{MessageId, Timestamp, UserId};

/// A voicemail message in a user's mailbox. The audio lives in a file under the recordings
/// directory; this is its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxMessage {
    /// Message id.
    pub id: MessageId,
    /// Mailbox owner: the only user allowed to list, play or delete it.
    pub owner: UserId,
    /// Who left it: a caller number, or a colleague's display name for browser messages.
    pub from: String,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// Length of the audio.
    pub duration_ms: u64,
    /// MIME type of the audio file (`audio/wav`, `audio/ogg`, `audio/webm`).
    pub media_type: String,
    /// File path relative to the recordings directory.
    pub path: String,
    /// Whether the owner has heard it.
    pub read: bool,
    /// When it was moved to the trash; trashed messages are restorable for 30 days.
    pub deleted_at: Option<Timestamp>,
}

/// What is needed to store a new message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMailboxMessage {
    /// See [`MailboxMessage::owner`].
    pub owner: UserId,
    /// See [`MailboxMessage::from`].
    pub from: String,
    /// See [`MailboxMessage::duration_ms`].
    pub duration_ms: u64,
    /// See [`MailboxMessage::media_type`].
    pub media_type: String,
    /// See [`MailboxMessage::path`].
    pub path: String,
}
