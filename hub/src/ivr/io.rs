//! What an IVR script's call API needs from the call and from the rest of the hub, as two
//! blocking traits. Each script runs on its own thread, so a script reads as a plain sequence
//! of steps (`play`, `gather`, `record`…) with no `await`. The real call implements
//! [`CallIo`] over the media engine's channel; `hub ivr simulate` and `hub ivr test` implement
//! it with a scripted caller and a transcript, with no SIP or audio at all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Why a call API step did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// The caller hung up: the script stops, quietly.
    #[error("the caller hung up")]
    Hangup,
    /// The step failed (a missing prompt, no text-to-speech, a refused transfer).
    #[error("{0}")]
    Failed(String),
}

/// Who calls, as a script sees it through `caller()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerInfo {
    /// The caller's number (SIP `From` user, or the browser user's extension).
    pub number: String,
    /// Display name, if known.
    pub name: String,
    /// `sip` or `webrtc`.
    pub path: String,
    /// The number the caller dialled.
    pub dialled: String,
    /// SIP headers of the INVITE worth a script's attention (empty for browser callers).
    pub headers: BTreeMap<String, String>,
}

/// What `record(#{…})` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRequest {
    /// File name without extension (the engine adds it and picks the directory).
    pub name: String,
    /// Longest recording.
    pub max_seconds: u32,
    /// Beep first.
    pub beep: bool,
    /// Silence that ends the recording (0: never).
    pub silence_ms: u32,
}

/// A finished recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedMessage {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub duration_ms: u64,
}

/// The call, as the script's API drives it. Every step may end with [`IoError::Hangup`].
pub trait CallIo: Send {
    /// Answers the call (a no-op when already answered).
    fn answer(&mut self) -> Result<(), IoError>;
    /// Plays a prompt file (relative to the prompts directory). With `barge_in`, a digit stops
    /// it and is returned (it stays unread for the next `read_digit` as well).
    fn play(&mut self, prompt: &str, barge_in: bool) -> Result<Option<char>, IoError>;
    /// Speaks `text` with text-to-speech; `barge_in` as for [`CallIo::play`].
    fn say(&mut self, text: &str, barge_in: bool) -> Result<Option<char>, IoError>;
    /// The next digit the caller sends, or `None` after `timeout`.
    fn read_digit(&mut self, timeout: Duration) -> Result<Option<char>, IoError>;
    /// Forgets digits typed ahead.
    fn flush_digits(&mut self);
    /// Records the caller; `None` when nothing was said.
    fn record(&mut self, request: &RecordRequest) -> Result<Option<RecordedMessage>, IoError>;
    /// Transfers the caller to `target` (an extension); the script's part of the call ends.
    fn transfer(&mut self, target: &str) -> Result<(), IoError>;
    /// Hangs up.
    fn hangup(&mut self, reason: &str);
    /// Waits, noticing a hang-up.
    fn sleep(&mut self, duration: Duration) -> Result<(), IoError>;
    /// Who calls.
    fn caller(&self) -> CallerInfo;
}

/// A colleague, as `directory_search` and `user_by_extension` give them to scripts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    /// User id (what `voicemail_deposit` takes).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Extension, if any.
    pub extension: Option<String>,
    /// Other numbers (mobile, direct lines).
    pub numbers: Vec<String>,
}

/// What scripts reach beyond the call. Blocking, each with its own time limit.
pub trait Services: Send + Sync {
    /// `GET url`, JSON in the answer; only hosts allowed by `[ivr] http_allow`.
    fn http_get(&self, url: &str) -> Result<serde_json::Value, String>;
    /// `POST url` with a JSON body, JSON in the answer; same rules.
    fn http_post(&self, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String>;
    /// Colleagues whose name matches `query`.
    fn directory_search(&self, query: &str) -> Result<Vec<Person>, String>;
    /// The colleague with extension `extension`.
    fn user_by_extension(&self, extension: &str) -> Result<Option<Person>, String>;
    /// Files `message` in `user`'s mailbox (a user id or extension).
    fn voicemail_deposit(&self, user: &str, message: &RecordedMessage, caller: &CallerInfo) -> Result<(), String>;
}
