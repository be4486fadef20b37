//! [`CallIo`] over a real call: the media engine's [`Channel`], driven from the script's own
//! thread. Each step blocks that thread on the runtime until the step is done, the caller hangs
//! up, or the call's wall-time limit passes.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::io::{CallIo, CallerInfo, IoError, RecordRequest, RecordedMessage};
use super::tts::Tts;
use crate::media::channel::{Channel, ChannelError, Played};
use crate::media::recorder::RecordOptions;

/// A call's channel as a script's [`CallIo`].
pub struct ChannelIo {
    channel: Channel,
    runtime: Handle,
    caller: CallerInfo,
    tts: Tts,
    record: RecordOptions,
    deadline: Instant,
    greetings: Option<std::path::PathBuf>,
}

impl ChannelIo {
    /// The call's channel; `record` gives the recording defaults (voicemail limits), `deadline`
    /// the end of the script's wall time.
    pub fn new(
        channel: Channel,
        runtime: Handle,
        caller: CallerInfo,
        tts: Tts,
        record: RecordOptions,
        deadline: Instant,
    ) -> Self {
        Self { channel, runtime, caller, tts, record, deadline, greetings: None }
    }

    /// Also looks for `greetings/…` prompts in `dir` (the recordings directory, where greetings
    /// recorded in the browser are kept); the prompts directory still comes first.
    pub fn with_greetings(mut self, dir: std::path::PathBuf) -> Self {
        self.greetings = Some(dir);
        self
    }

    /// A user's own greeting recorded in the browser, when `prompt` names one that exists.
    fn recorded_greeting(&self, prompt: &str) -> Option<std::path::PathBuf> {
        let name = prompt.strip_prefix("greetings/")?;
        let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let path = self.greetings.as_ref()?.join("greetings").join(name);
        (plain
            && !name.starts_with('.')
            && path.is_file()
            && self.channel.prompt_path(prompt).is_ok_and(|p| !p.is_file()))
        .then_some(path)
    }

    /// Runs one step on the runtime, bounded by the call's deadline; a hang-up ends it at once.
    fn block<T>(&mut self, step: impl AsyncFnOnce(&mut Channel) -> Result<T, ChannelError>) -> Result<T, IoError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let channel = &mut self.channel;
        let outcome = self.runtime.block_on(bounded(left, step(channel)));
        match outcome {
            Some(Ok(v)) => Ok(v),
            Some(Err(ChannelError::Hangup)) => Err(IoError::Hangup),
            Some(Err(e)) => Err(IoError::Failed(e.to_string())),
            None => Err(IoError::Failed("the call's time limit was reached".into())),
        }
    }

    fn played(played: Played) -> Option<char> {
        match played {
            Played::Completed => None,
            Played::Interrupted(d) => Some(d.digit),
        }
    }
}

async fn bounded<T>(left: Duration, step: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(left, step).await.ok()
}

impl CallIo for ChannelIo {
    fn answer(&mut self) -> Result<(), IoError> {
        self.block(async |c| c.answered().await.map(|_| ()))
    }

    fn play(&mut self, prompt: &str, barge_in: bool) -> Result<Option<char>, IoError> {
        if let Some(path) = self.recorded_greeting(prompt) {
            tracing::info!(path = %path.display(), "recorded greeting");
            return self.block(async |c| c.play_file(&path, barge_in).await).map(Self::played);
        }
        self.block(async |c| c.play(prompt, barge_in).await).map(Self::played)
    }

    fn say(&mut self, text: &str, barge_in: bool) -> Result<Option<char>, IoError> {
        let path = self.tts.speak(text).map_err(|e| IoError::Failed(e.to_string()))?;
        self.block(async |c| c.play_file(&path, barge_in).await).map(Self::played)
    }

    fn read_digit(&mut self, timeout: Duration) -> Result<Option<char>, IoError> {
        self.block(async |c| c.read_digit(timeout).await).map(|d| d.map(|d| d.digit))
    }

    fn flush_digits(&mut self) {
        self.channel.flush_digits();
    }

    fn record(&mut self, request: &RecordRequest) -> Result<Option<RecordedMessage>, IoError> {
        let max_ms = request.max_seconds.saturating_mul(1000);
        let options = RecordOptions {
            max_ms: Some(self.record.max_ms.map_or(max_ms, |limit| limit.min(max_ms))),
            silence_ms: (request.silence_ms > 0).then_some(request.silence_ms),
            beep: request.beep,
            ..self.record
        };
        // A script's names are unique within its call only: the call's id makes them unique.
        let call: String = self.channel.info().id.chars().filter(char::is_ascii_alphanumeric).take(32).collect();
        let name = format!("{call}-{}", request.name);
        let recording = self.block(async |c| c.record(&name, Some(options)).await)?;
        Ok(recording.map(|r| RecordedMessage { path: r.path, duration_ms: r.duration_ms }))
    }

    fn transfer(&mut self, target: &str) -> Result<(), IoError> {
        self.channel.transfer(target);
        Ok(())
    }

    fn hangup(&mut self, reason: &str) {
        self.channel.hangup(reason);
    }

    fn sleep(&mut self, duration: Duration) -> Result<(), IoError> {
        self.block(async |c| {
            tokio::select! {
                () = c.hung_up() => Err(ChannelError::Hangup),
                () = tokio::time::sleep(duration) => Ok(()),
            }
        })
    }

    fn caller(&self) -> CallerInfo {
        self.caller.clone()
    }
}
