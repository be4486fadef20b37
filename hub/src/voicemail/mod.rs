//! Mailboxes (L4): filing messages recorded in the browser, each person's own greeting, the
//! trash and its purge, and the "your mailbox changed" notice to the owner's open tabs.
//! Shared by the web adapter and (through [`Voicemail::notifier`]) the IVR, which files SIP
//! callers' messages itself; never imports `ivr`, `sip` or `media`.
//!
//! ```text
//!   web (send, read, trash…) ──► Voicemail ──► store (MailboxStore: metadata)
//!   ivr deposit ── notifier ──►     │      ──► recordings_dir/voicemail/<owner>/<file>
//!                                   │      ──► recordings_dir/greetings/<owner>.<ext>
//!                                   └── unread count ──► calls (every tab of the owner)
//! ```
//!
//! Every operation on a message takes the person asking: a message of someone else is
//! [`VoicemailError::NotFound`], exactly like a message that does not exist, so ids reveal
//! nothing.

pub mod audio;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::calls::Calls;
use crate::calls::signal::ServerMessage;
use crate::config::VoicemailConfig;
use crate::model::{MailboxMessage, MessageId, NewMailboxMessage, Timestamp, User, UserId};
use crate::store::{Store, StoreError};
use audio::{AudioKind, Declared};

/// Largest recording accepted from a browser (a message or a greeting). Three minutes of
/// Opus at browser bitrates is well under 2 MiB; WAV at 16 kHz about 6 MiB.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// Why a mailbox operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum VoicemailError {
    /// No such message in the asker's mailbox (it may exist in someone else's).
    #[error("no such message in your mailbox")]
    NotFound,
    /// The asker has no greeting.
    #[error("you have no greeting")]
    NoGreeting,
    /// The recipient does not exist or is disabled.
    #[error("there is no such colleague")]
    UnknownRecipient,
    /// Over [`MAX_UPLOAD_BYTES`].
    #[error("the recording is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Longer than `[voicemail] max_message`.
    #[error("the recording lasts {duration_ms} ms; at most {limit_ms} ms are accepted")]
    TooLong {
        /// What the container says.
        duration_ms: u64,
        /// The limit.
        limit_ms: u64,
    },
    /// Not WebM, Ogg or WAV by its content, or not what its declared type says.
    #[error("{0}")]
    Unsupported(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A file could not be written, read or removed.
    #[error("recordings: {0}")]
    Files(String),
}

/// Shorthand for mailbox results.
pub type Result<T, E = VoicemailError> = std::result::Result<T, E>;

/// A recording that passed the checks: its container and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The container, from the content.
    pub kind: AudioKind,
    /// How long it plays.
    pub duration_ms: u64,
}

/// A person's greeting on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// The file.
    pub path: PathBuf,
    /// Its container.
    pub kind: AudioKind,
}

/// Handle to the mailboxes. Cheap to clone.
#[derive(Clone)]
pub struct Voicemail {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// `[voicemail] recordings_dir`: message paths in the store are relative to it.
    dir: PathBuf,
    max_message: Duration,
    retention: Duration,
    /// Where the unread count goes; unset in tools and tests without a controller, and until
    /// [`Voicemail::attach_calls`] in a hub that builds the mailboxes before the controller
    /// (the IVR takes the notifier before the call controller exists).
    calls: std::sync::OnceLock<Calls>,
    /// Counting and sending happen under this lock, so two changes in a row cannot reach the
    /// tabs in the opposite order (an older count arriving last).
    notify: tokio::sync::Mutex<()>,
    /// For notices from threads outside the runtime (the IVR's script threads).
    runtime: Option<tokio::runtime::Handle>,
}

impl Voicemail {
    /// Mailboxes over `store`, with files under `config.recordings_dir`; unread counts go to
    /// the owners' tabs through `calls` (or the controller attached later). Call from within
    /// the runtime (the IVR notifier spawns on it).
    pub fn new(store: Arc<dyn Store>, config: &VoicemailConfig, calls: Option<Calls>) -> Self {
        let slot = std::sync::OnceLock::new();
        if let Some(calls) = calls {
            let _ = slot.set(calls);
        }
        Self {
            inner: Arc::new(Inner {
                store,
                dir: config.recordings_dir.clone(),
                max_message: config.max_message,
                retention: config.trash_retention,
                calls: slot,
                notify: tokio::sync::Mutex::new(()),
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
        }
    }

    /// Hands over the call controller once it runs; unread counts reach tabs from then on.
    /// Only the first call counts.
    pub fn attach_calls(&self, calls: Calls) {
        let _ = self.inner.calls.set(calls);
    }

    /// Longest recording accepted (`[voicemail] max_message`), for the page's recorder.
    pub fn max_message(&self) -> Duration {
        self.inner.max_message
    }

    /// How long trashed messages stay restorable.
    pub fn trash_retention(&self) -> Duration {
        self.inner.retention
    }

    /// The owner's messages outside the trash: unheard first, then heard, each newest first.
    pub async fn inbox(&self, owner: &UserId) -> Result<Vec<MailboxMessage>> {
        let mut list = self.inner.store.messages(owner, false).await?;
        // Stable: each group keeps the store's newest-first order.
        list.sort_by_key(|m| m.read);
        Ok(list)
    }

    /// The owner's messages in the trash, most recently trashed first.
    pub async fn trash(&self, owner: &UserId) -> Result<Vec<MailboxMessage>> {
        let mut list = self.inner.store.messages(owner, true).await?;
        list.sort_by_key(|m| std::cmp::Reverse(m.deleted_at));
        Ok(list)
    }

    /// When a message trashed at `deleted_at` is purged for good.
    pub fn purge_at(&self, deleted_at: Timestamp) -> Timestamp {
        deleted_at.plus(self.inner.retention)
    }

    /// Unheard messages outside the trash.
    pub async fn unread(&self, owner: &UserId) -> Result<u64> {
        Ok(self.inner.store.unread_count(owner).await?)
    }

    /// The message, when it is `owner`'s.
    pub async fn message(&self, owner: &UserId, id: &MessageId) -> Result<MailboxMessage> {
        match self.inner.store.message(id).await? {
            Some(m) if &m.owner == owner => Ok(m),
            _ => Err(VoicemailError::NotFound),
        }
    }

    /// Where a message's audio is. Paths come from the store; one that would leave the
    /// recordings directory (absolute, `..`) is treated as missing.
    pub fn audio_path(&self, message: &MailboxMessage) -> Result<PathBuf> {
        let relative = Path::new(&message.path);
        if relative.as_os_str().is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            tracing::warn!(message_id = %message.id, path = %message.path, "a message path outside the recordings");
            return Err(VoicemailError::NotFound);
        }
        Ok(self.inner.dir.join(relative))
    }

    /// Marks `owner`'s message heard or unheard.
    pub async fn set_read(&self, owner: &UserId, id: &MessageId, read: bool) -> Result<MailboxMessage> {
        let mut m = self.message(owner, id).await?;
        if m.read != read {
            self.inner.store.set_read(id, read).await?;
            m.read = read;
            self.mailbox_changed(owner).await;
        }
        Ok(m)
    }

    /// Moves `owner`'s message to the trash (already there: unchanged).
    pub async fn move_to_trash(&self, owner: &UserId, id: &MessageId) -> Result<()> {
        let m = self.message(owner, id).await?;
        if m.deleted_at.is_none() {
            self.inner.store.set_trashed(id, Some(Timestamp::now())).await?;
            tracing::info!(owner = %owner, message_id = %id, "voicemail trashed");
            self.mailbox_changed(owner).await;
        }
        Ok(())
    }

    /// Takes `owner`'s message out of the trash (not there: unchanged).
    pub async fn restore(&self, owner: &UserId, id: &MessageId) -> Result<()> {
        let m = self.message(owner, id).await?;
        if m.deleted_at.is_some() {
            self.inner.store.set_trashed(id, None).await?;
            tracing::info!(owner = %owner, message_id = %id, "voicemail restored");
            self.mailbox_changed(owner).await;
        }
        Ok(())
    }

    /// Checks an upload: size, container by content (and agreeing with `declared`, the
    /// request's `Content-Type`, when that names an audio type), length.
    pub fn check(&self, declared: Option<&str>, bytes: &[u8]) -> Result<Checked> {
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(VoicemailError::TooLarge { limit: MAX_UPLOAD_BYTES });
        }
        let kind = audio::sniff(bytes)
            .ok_or_else(|| VoicemailError::Unsupported("the file is not a WebM, Ogg or WAV recording".to_string()))?;
        match declared.and_then(AudioKind::declared) {
            Some(Declared::Kind(k)) if k != kind => {
                return Err(VoicemailError::Unsupported(format!(
                    "the file is {}, not {} as its type says",
                    kind.name(),
                    k.name()
                )));
            }
            Some(Declared::Other) => {
                return Err(VoicemailError::Unsupported(format!("{} is not an audio type", declared.unwrap_or(""))));
            }
            _ => {}
        }
        let duration_ms = audio::duration_ms(kind, bytes).map_err(|e| VoicemailError::Unsupported(e.to_string()))?;
        let limit_ms = u64::try_from(self.inner.max_message.as_millis()).unwrap_or(u64::MAX);
        if duration_ms > limit_ms {
            return Err(VoicemailError::TooLong { duration_ms, limit_ms });
        }
        Ok(Checked { kind, duration_ms })
    }

    /// Files a recording from `sender`'s browser in `to`'s mailbox (after [`Voicemail::check`]),
    /// and tells `to`'s tabs.
    pub async fn send(
        &self,
        sender: &User,
        to: &UserId,
        declared: Option<&str>,
        bytes: bytes::Bytes,
    ) -> Result<(User, MailboxMessage)> {
        let recipient = match self.inner.store.user(to).await? {
            Some(u) if !u.disabled && safe_component(u.id.as_str()) => u,
            _ => return Err(VoicemailError::UnknownRecipient),
        };
        let checked = self.check(declared, &bytes)?;
        let name = format!("{}.{}", uuid::Uuid::now_v7(), checked.kind.extension());
        let relative = Path::new("voicemail").join(recipient.id.as_str()).join(&name);
        let target = self.inner.dir.join(&relative);
        write_file(target.clone(), bytes).await?;
        let from = match &sender.extension {
            Some(ext) => format!("{} <{ext}>", sender.display_name),
            None => sender.display_name.clone(),
        };
        let new = NewMailboxMessage {
            owner: recipient.id.clone(),
            from,
            duration_ms: checked.duration_ms,
            media_type: checked.kind.media_type().to_string(),
            path: relative.to_string_lossy().into_owned(),
        };
        let stored = match self.inner.store.add_message(new).await {
            Ok(m) => m,
            Err(e) => {
                let _ = tokio::fs::remove_file(&target).await;
                return Err(e.into());
            }
        };
        tracing::info!(
            owner = %recipient.id,
            sender = %sender.id,
            message_id = %stored.id,
            duration_ms = stored.duration_ms,
            media_type = %stored.media_type,
            "voicemail left from the browser"
        );
        self.mailbox_changed(&recipient.id).await;
        Ok((recipient, stored))
    }

    /// `owner`'s greeting, if they recorded one.
    pub fn greeting(&self, owner: &UserId) -> Option<Greeting> {
        if !safe_component(owner.as_str()) {
            return None;
        }
        AudioKind::ALL.into_iter().find_map(|kind| {
            let path = self.greeting_path(owner, kind);
            path.is_file().then_some(Greeting { path, kind })
        })
    }

    fn greeting_path(&self, owner: &UserId, kind: AudioKind) -> PathBuf {
        self.inner.dir.join("greetings").join(format!("{}.{}", owner.as_str(), kind.extension()))
    }

    /// Replaces `owner`'s greeting (after [`Voicemail::check`]); a greeting in another
    /// container is removed once the new one is in place.
    pub async fn save_greeting(&self, owner: &UserId, declared: Option<&str>, bytes: bytes::Bytes) -> Result<Checked> {
        if !safe_component(owner.as_str()) {
            return Err(VoicemailError::Files("unusable user id".into()));
        }
        let checked = self.check(declared, &bytes)?;
        write_file(self.greeting_path(owner, checked.kind), bytes).await?;
        for other in AudioKind::ALL.into_iter().filter(|k| *k != checked.kind) {
            remove_if_present(&self.greeting_path(owner, other)).await?;
        }
        tracing::info!(owner = %owner, duration_ms = checked.duration_ms, "voicemail greeting saved");
        Ok(checked)
    }

    /// Removes `owner`'s greeting; [`VoicemailError::NoGreeting`] when there is none.
    pub async fn delete_greeting(&self, owner: &UserId) -> Result<()> {
        let Some(g) = self.greeting(owner) else { return Err(VoicemailError::NoGreeting) };
        remove_if_present(&g.path).await?;
        tracing::info!(owner = %owner, "voicemail greeting deleted");
        Ok(())
    }

    /// Deletes for good, file and record, the messages trashed longer than the retention ago.
    /// Returns how many went.
    pub async fn purge(&self) -> Result<usize> {
        let before = Timestamp::from_millis(
            Timestamp::now()
                .as_millis()
                .saturating_sub(i64::try_from(self.inner.retention.as_millis()).unwrap_or(i64::MAX)),
        );
        let mut purged = 0;
        for m in self.inner.store.trashed_before(before).await? {
            // The file first: a record without its file would show as a broken message; a
            // file left by a failed record deletion is retried on the next round.
            if let Ok(path) = self.audio_path(&m) {
                remove_if_present(&path).await?;
            }
            if self.inner.store.delete_message(&m.id).await? {
                purged += 1;
                tracing::info!(owner = %m.owner, message_id = %m.id, "voicemail purged");
            }
        }
        Ok(purged)
    }

    /// Purges the trash now, then at an interval (a tenth of the retention, between 1 s and
    /// 10 min), until `cancel` fires.
    pub fn spawn_purger(&self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let every = (self.inner.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let vm = self.clone();
        crate::periodic::spawn_purger(every, cancel, "voicemail trash", move || {
            let vm = vm.clone();
            async move { vm.purge().await.map(|n| n as u64) }
        })
    }

    /// Tells every open tab of `owner` their unread count. Failures are logged: a badge that
    /// lags is no reason to fail the change itself.
    pub async fn mailbox_changed(&self, owner: &UserId) {
        let Some(calls) = self.inner.calls.get() else { return };
        let _order = self.inner.notify.lock().await;
        match self.inner.store.unread_count(owner).await {
            Ok(unread) => {
                let _ = calls.notify_user(owner.clone(), ServerMessage::Voicemail { unread }).await;
            }
            Err(e) => tracing::warn!(owner = %owner, error = %e, "cannot count unread voicemail"),
        }
    }

    /// "This mailbox changed" as a plain function, for code that files messages itself and
    /// runs on its own threads (the IVR's `voicemail_deposit`): the notice is sent in the
    /// background on the runtime the mailboxes were created on.
    pub fn notifier(&self) -> Arc<dyn Fn(UserId) + Send + Sync> {
        let vm = self.clone();
        Arc::new(move |owner: UserId| {
            let Some(runtime) = vm.inner.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) else {
                tracing::warn!(owner = %owner, "no runtime to send the voicemail notice on");
                return;
            };
            let vm = vm.clone();
            runtime.spawn(async move { vm.mailbox_changed(&owner).await });
        })
    }
}

/// Whether `s` can be a single path component as it is (user ids are UUIDs).
fn safe_component(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes `bytes` to `path` atomically (never seen half-written), creating its directory.
async fn write_file(path: PathBuf, bytes: bytes::Bytes) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::files::write_atomic(&path, &bytes, 0o640)
    })
    .await
    .map_err(|e| VoicemailError::Files(e.to_string()))?
    .map_err(|e| VoicemailError::Files(e.to_string()))
}

async fn remove_if_present(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VoicemailError::Files(format!("cannot remove {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests;
