//! `[media]`: RTP ports, the ICE servers handed to browsers, the media engine and the
//! built-in apps of dialled numbers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Secret;

use super::Problem;

/// Media settings shared by the RTP engine and browser calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// Lowest UDP port for RTP.
    pub rtp_port_min: u16,
    /// Highest UDP port for RTP.
    pub rtp_port_max: u16,
    /// Packet time in milliseconds.
    pub ptime_ms: u32,
    /// STUN server URLs given to browsers (`stun:stun.example.org:3478`).
    pub stun_urls: Vec<String>,
    /// TURN server URLs given to browsers (`turn:turn.example.org:3478?transport=udp`).
    pub turn_urls: Vec<String>,
    /// The coturn `static-auth-secret` used to mint short-lived TURN credentials.
    pub turn_secret: Secret,
    /// Lifetime of a TURN credential.
    #[serde(with = "humantime_serde")]
    pub turn_ttl: Duration,
    /// Directory of prompt files (WAV, MP3, OGG/Vorbis, FLAC) named by apps and scripts.
    pub prompts_dir: PathBuf,
    /// Threads of the pacer that sends every call's RTP on the packet-time grid.
    pub pacer_threads: usize,
    /// Listen for DTMF tones in the audio of callers that negotiated no RFC 4733 events.
    pub inband_dtmf: bool,
    /// A recording stops after this long below `silence_threshold_dbfs` (0s: never).
    #[serde(with = "humantime_serde")]
    pub record_silence: Duration,
    /// The level under which the caller counts as silent, in dBFS.
    pub silence_threshold_dbfs: f32,
    /// Dialled number → built-in app (`echo`, `playback`, `record`); other numbers echo.
    pub numbers: BTreeMap<String, MediaApp>,
}

/// A built-in app for a dialled number, as Asterisk's Echo(), Playback() and Record() are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "app", rename_all = "lowercase", deny_unknown_fields)]
pub enum MediaApp {
    /// The caller hears itself: checks audio both ways.
    Echo,
    /// Plays `prompt` (a file in `prompts_dir`) and hangs up.
    Playback {
        /// The prompt file, relative to `prompts_dir`.
        prompt: String,
    },
    /// Beep, record until `#`, silence or `[voicemail] max_message`, play it back, hang up.
    Record,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            ptime_ms: 20,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: Secret::default(),
            turn_ttl: Duration::from_secs(3600),
            prompts_dir: PathBuf::from("prompts"),
            pacer_threads: 2,
            inband_dtmf: true,
            record_silence: Duration::from_secs(5),
            silence_threshold_dbfs: -45.0,
            numbers: BTreeMap::from([("*43".to_string(), MediaApp::Echo), ("*45".to_string(), MediaApp::Record)]),
        }
    }
}

impl MediaConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if self.rtp_port_min >= self.rtp_port_max {
            out.push(Problem::new("media.rtp_port_max", "must be above rtp_port_min"));
        }
        if self.rtp_port_min < 1024 {
            out.push(Problem::new("media.rtp_port_min", "must be 1024 or above"));
        }
        if ![10, 20, 30, 40, 60].contains(&self.ptime_ms) {
            out.push(Problem::new("media.ptime_ms", "must be 10, 20, 30, 40 or 60"));
        }
        for url in &self.stun_urls {
            if !url.starts_with("stun:") && !url.starts_with("stuns:") {
                out.push(Problem::new("media.stun_urls", format!("{url:?} is not a stun: URL")));
            }
        }
        for url in &self.turn_urls {
            if !url.starts_with("turn:") && !url.starts_with("turns:") {
                out.push(Problem::new("media.turn_urls", format!("{url:?} is not a turn: URL")));
            }
        }
        if !self.turn_urls.is_empty() && self.turn_secret.is_empty() {
            out.push(Problem::new("media.turn_secret", "must be set when turn_urls are given"));
        }
        if self.turn_ttl < Duration::from_secs(60) {
            out.push(Problem::new("media.turn_ttl", "must be at least 60s"));
        }
        if !(1..=16).contains(&self.pacer_threads) {
            out.push(Problem::new("media.pacer_threads", "must be 1 to 16"));
        }
        if !(-90.0..=0.0).contains(&self.silence_threshold_dbfs) {
            out.push(Problem::new("media.silence_threshold_dbfs", "must be between -90 and 0"));
        }
        for (number, app) in &self.numbers {
            let key = format!("media.numbers.{number}");
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
                out.push(Problem::new(&key, "a dialled number has digits, * and # only"));
            }
            if let MediaApp::Playback { prompt } = app
                && (prompt.is_empty()
                    || !std::path::Path::new(prompt).components().all(|c| matches!(c, std::path::Component::Normal(_))))
            {
                out.push(Problem::new(&key, format!("prompt {prompt:?} must be a file inside prompts_dir")));
            }
        }
    }
}
