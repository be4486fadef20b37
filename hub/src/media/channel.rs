//! What drives a call's audio sees: play a prompt, read digits, record, send digits, hang up.
//!
//! A [`Channel`] is the same whichever way the caller came (SIP through Asterisk, or a
//! browser), so an app or an IVR script cannot tell, and need not. Every wait ends when the
//! caller hangs up, with [`ChannelError::Hangup`]: a script never waits on a dead call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::leg::{LegShared, RecvCommand, lock};
use super::pacer::{FrameSource, PlayEnd};
use super::prompt::{EncodedPrompt, PromptError};
use super::recorder::{RecordError, RecordOptions, Recorder, Recording, StopReason};
use super::telephone_event::EventSender;
use crate::sip::media_port::{CallInfo, Digit, LegEvent, LegEvents};
use crate::sip::sdp::MediaParams;

/// Why a channel operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The caller hung up (or the call ended) first.
    #[error("the caller hung up")]
    Hangup,
    /// The prompt could not be played; the caller heard nothing of it.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The recording could not be written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A prompt name that leaves the prompts directory.
    #[error("prompt {0:?} must be a relative path inside the prompts directory")]
    PromptName(String),
    /// A digit that RFC 4733 cannot carry.
    #[error("{0:?} is not a DTMF digit")]
    NotADigit(char),
}

/// How a playback ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Played {
    /// The whole prompt was heard.
    Completed,
    /// The caller pressed a key during an interruptible prompt; the digit is kept for
    /// [`Channel::read_digit`] as well.
    Interrupted(Digit),
}

impl FrameSource for EncodedPrompt {
    fn frame(&self, index: usize) -> Option<&[u8]> {
        EncodedPrompt::frame(self, index)
    }
}

/// One call's audio, for the app or script that drives it.
pub struct Channel {
    info: CallInfo,
    engine: Arc<Engine>,
    shared: Arc<LegShared>,
    params: watch::Receiver<Option<MediaParams>>,
    digits: mpsc::UnboundedReceiver<Digit>,
    pending: Option<Digit>,
    events: LegEvents,
    gone: CancellationToken,
}

impl Channel {
    pub(super) fn new(
        info: CallInfo,
        engine: Arc<Engine>,
        shared: Arc<LegShared>,
        digits: mpsc::UnboundedReceiver<Digit>,
        events: LegEvents,
        gone: CancellationToken,
    ) -> Self {
        let params = shared.params.subscribe();
        Self { info, engine, shared, params, digits, pending: None, events, gone }
    }

    /// Who called and what they dialled.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// Waits until the call is answered and audio flows; gives the negotiated parameters.
    pub async fn answered(&mut self) -> Result<MediaParams, ChannelError> {
        loop {
            if let Some(p) = self.params.borrow_and_update().clone() {
                return Ok(p);
            }
            tokio::select! {
                () = self.gone.cancelled() => return Err(ChannelError::Hangup),
                changed = self.params.changed() => if changed.is_err() { return Err(ChannelError::Hangup) },
            }
        }
    }

    /// The file of prompt `name` (relative to the prompts directory, never leaving it).
    pub fn prompt_path(&self, name: &str) -> Result<PathBuf, ChannelError> {
        let rel = Path::new(name);
        let inside = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if name.is_empty() || !inside {
            return Err(ChannelError::PromptName(name.to_string()));
        }
        Ok(self.engine.settings.prompts_dir.join(rel))
    }

    /// Plays prompt `name` from the prompts directory. With `interruptible`, a key press stops it.
    pub async fn play(&mut self, name: &str, interruptible: bool) -> Result<Played, ChannelError> {
        let path = self.prompt_path(name)?;
        self.play_file(&path, interruptible).await
    }

    /// Plays an audio file (a prompt or a recording).
    pub async fn play_file(&mut self, path: &Path, interruptible: bool) -> Result<Played, ChannelError> {
        let params = self.answered().await?;
        let prompt = self
            .engine
            .prompts
            .get_async(path, params.codec, params.ptime_ms)
            .await
            .inspect_err(|e| tracing::warn!(call = %self.info.id, error = %e, "prompt not played"))?;
        self.play_prompt(prompt, interruptible).await
    }

    /// Plays an already encoded prompt (it must be in the call's codec and packet time).
    pub async fn play_prompt(
        &mut self,
        prompt: Arc<EncodedPrompt>,
        interruptible: bool,
    ) -> Result<Played, ChannelError> {
        if interruptible && let Some(d) = self.pending {
            // Typed ahead: the caller already chose.
            return Ok(Played::Interrupted(d));
        }
        let Some(done) = lock(&self.shared.stream).as_ref().map(|s| s.play(prompt)) else {
            return Err(ChannelError::Hangup);
        };
        tokio::select! {
            () = self.gone.cancelled() => Err(ChannelError::Hangup),
            end = done => match end {
                // Stopped by someone else (a new playback) counts as heard.
                Ok(PlayEnd::Completed | PlayEnd::Stopped) => Ok(Played::Completed),
                Err(_) => Err(ChannelError::Hangup),
            },
            digit = self.digits.recv(), if interruptible => {
                let Some(d) = digit else { return Err(ChannelError::Hangup) };
                self.pending = Some(d);
                self.stop_playback();
                Ok(Played::Interrupted(d))
            }
        }
    }

    /// Stops what plays (silence follows).
    pub fn stop_playback(&self) {
        if let Some(s) = lock(&self.shared.stream).as_ref() {
            s.stop();
        }
    }

    /// The next digit the caller sends (RFC 4733, SIP INFO or in-band), or `None` after `timeout`.
    pub async fn read_digit(&mut self, timeout: Duration) -> Result<Option<Digit>, ChannelError> {
        if let Some(d) = self.pending.take() {
            return Ok(Some(d));
        }
        tokio::select! {
            () = self.gone.cancelled() => Err(ChannelError::Hangup),
            digit = self.digits.recv() => digit.map(Some).ok_or(ChannelError::Hangup),
            () = tokio::time::sleep(timeout) => Ok(None),
        }
    }

    /// Forgets digits typed ahead.
    pub fn flush_digits(&mut self) {
        self.pending = None;
        while self.digits.try_recv().is_ok() {}
    }

    /// Records the caller into `name`.wav in the recordings directory: a beep (unless the
    /// options say not), then the
    /// caller's audio until `#`, silence, the length limit, or hang-up. A caller who hangs up
    /// mid-message still leaves a complete file, which is returned; `None` when the caller said
    /// nothing at all (no file is left then).
    pub async fn record(
        &mut self,
        name: &str,
        options: Option<RecordOptions>,
    ) -> Result<Option<Recording>, ChannelError> {
        let params = self.answered().await?;
        let options = options.unwrap_or(self.engine.settings.record);
        self.flush_digits();
        if options.beep {
            let beep = self.engine.prompts.beep(params.codec, params.ptime_ms)?;
            self.play_prompt(beep, false).await?;
        }
        let rate = if params.codec == crate::sip::sdp::AudioCodec::Opus { 16_000 } else { 8000 };
        let recorder = Recorder::create(&self.engine.settings.recordings_dir, name, rate, options)?;
        let (done_tx, done) = oneshot::channel();
        if self.shared.commands.send(RecvCommand::Record(Box::new(recorder), done_tx)).is_err() {
            return Err(ChannelError::Hangup);
        }
        tracing::info!(call = %self.info.id, name, "recording started");
        tokio::pin!(done);
        loop {
            tokio::select! {
                outcome = &mut done => {
                    let recording = outcome.map_err(|_| ChannelError::Hangup)??;
                    if let Some(r) = &recording {
                        tracing::info!(call = %self.info.id, path = %r.path.display(),
                            duration_ms = r.duration_ms, reason = ?r.reason, "recorded");
                    }
                    return Ok(recording);
                }
                digit = self.digits.recv() => match digit {
                    Some(d) if d.digit == '#' => {
                        let _ = self.shared.commands.send(RecvCommand::StopRecording(StopReason::Requested));
                    }
                    Some(_) => {}
                    // The leg is gone; the receive task still delivers the finished file.
                    None => {}
                },
            }
        }
    }

    /// Sends `digits` to the caller as RFC 4733 events (SIP INFO is not used: RTP events keep
    /// their timing), each `duration_ms` long with a pause between.
    pub fn send_digits(&self, digits: &str, duration_ms: u32) -> Result<(), ChannelError> {
        let params = self.params.borrow().clone().ok_or(ChannelError::Hangup)?;
        let Some(pt) = params.dtmf_payload_type else {
            tracing::debug!(call = %self.info.id, "the caller takes no RFC 4733 events: digits not sent");
            return Ok(());
        };
        let rate = params.codec.clock_rate();
        let mut packets = Vec::new();
        for c in digits.chars() {
            let sender =
                EventSender::new(c, duration_ms, params.ptime_ms, rate).map_err(|_| ChannelError::NotADigit(c))?;
            packets.extend(sender);
        }
        if let Some(s) = lock(&self.shared.stream).as_ref() {
            s.events(pt, packets);
        }
        Ok(())
    }

    /// Ends the call (the hub sends BYE with `reason`).
    pub fn hangup(&self, reason: &str) {
        let _ = self.events.send(LegEvent::Hangup { reason: reason.to_string() });
    }

    /// Transfers the caller to `target` (REFER).
    pub fn transfer(&self, target: &str) {
        let _ = self.events.send(LegEvent::Transfer { target: target.to_string() });
    }

    /// Resolves when the caller has hung up.
    pub async fn hung_up(&self) {
        self.gone.cancelled().await;
    }
}
