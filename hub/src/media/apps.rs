//! The hub's built-in call apps, chosen by the dialled number (`[media.numbers]`).
//!
//! A sysadmin checking a line after the old PBX died wants the same tools Asterisk gives:
//! an echo test (is audio flowing both ways?), a playback (does the caller hear prompts?) and
//! a record-and-playback (is the caller heard, and does recording work?). IVR scripts come on
//! top of the same [`Channel`]. A number with no app gets the echo test, as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::channel::{Channel, ChannelError};
use super::echo::EchoApp;
use super::engine::Engine;
use super::webrtc::{self, Answerer, SessionEvents, WebRtcCall};
use crate::config::MediaApp as AppSpec;
use crate::sip::media_port::{CallInfo, LegEvents, MediaApp, MediaError, MediaLeg};
use crate::sip::sdp::AudioCodec;

const CODECS: &[AudioCodec] = &[AudioCodec::Pcmu, AudioCodec::Pcma, AudioCodec::Opus];

/// How the caller reached the hub, for what drives the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerPath {
    /// SIP and RTP (through Asterisk, or a SIP phone).
    Sip,
    /// A browser tab over WebRTC.
    WebRtc,
}

/// Numbers answered by something above the engine (the IVR's scripts), which gets the call's
/// [`Channel`]. Consulted before `[media.numbers]`; the composition root wires it, so the
/// engine never imports the IVR.
pub trait NumberHandler: Send + Sync {
    /// The name a browser caller sees for `number`, when this handler answers it.
    fn name(&self, number: &str) -> Option<String>;
    /// Runs the call (spawning what it needs; returns at once).
    fn start(&self, channel: Channel, path: CallerPath);
}

/// The [`MediaApp`] the SIP user agent answers with: routes each call to its app.
pub struct Apps {
    engine: Arc<Engine>,
    echo: EchoApp,
    numbers: BTreeMap<String, AppSpec>,
    handler: Option<Arc<dyn NumberHandler>>,
}

impl Apps {
    /// Apps for `numbers` on `engine`; `echo` answers the rest.
    pub fn new(engine: Arc<Engine>, echo: EchoApp, numbers: BTreeMap<String, AppSpec>) -> Self {
        Self { engine, echo, numbers, handler: None }
    }

    /// The same apps, with `handler` answering its numbers first.
    pub fn with_handler(mut self, handler: Arc<dyn NumberHandler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// The engine the apps run on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// What a browser caller sees for `number`, when an app answers it. (A SIP caller of an
    /// unknown number gets the echo test; a person who mistypes in the browser is told.)
    pub fn name(&self, number: &str) -> Option<String> {
        if let Some(name) = self.handler.as_ref().and_then(|h| h.name(number)) {
            return Some(name);
        }
        self.numbers.get(number).map(|spec| {
            match spec {
                AppSpec::Echo => "Echo test",
                AppSpec::Playback { .. } => "Announcement",
                AppSpec::Record => "Recording test",
            }
            .to_string()
        })
    }

    /// Answers a browser's call to `call.to` as a WebRTC peer running the number's app.
    pub fn open_webrtc(&self, call: CallInfo, events: SessionEvents) -> Result<WebRtcCall, MediaError> {
        if let Some(handler) = self.handler.clone().filter(|h| h.name(&call.to).is_some()) {
            let answerer = Answerer::Engine(Box::new(move |channel| handler.start(channel, CallerPath::WebRtc)));
            return Ok(webrtc::start(&self.engine, call, answerer, events)?);
        }
        let spec = self
            .numbers
            .get(&call.to)
            .cloned()
            .ok_or_else(|| MediaError::Refused(format!("no app answers {}", call.to)))?;
        let answerer = match spec {
            AppSpec::Echo => Answerer::Echo,
            spec => {
                let span = tracing::info_span!("app", call = %call.id, to = %call.to, path = "webrtc");
                Answerer::Engine(Box::new(move |channel| {
                    tokio::spawn(tracing::Instrument::instrument(run(spec, channel), span));
                }))
            }
        };
        Ok(webrtc::start(&self.engine, call, answerer, events)?)
    }
}

impl MediaApp for Apps {
    fn codecs(&self) -> &[AudioCodec] {
        CODECS
    }

    fn open(&self, call: &CallInfo, events: LegEvents) -> Result<Box<dyn MediaLeg>, MediaError> {
        if let Some(handler) = self.handler.as_ref().filter(|h| h.name(&call.to).is_some()) {
            let (leg, channel) = self.engine.open(call, events)?;
            handler.start(channel, CallerPath::Sip);
            return Ok(Box::new(leg));
        }
        let spec = match self.numbers.get(&call.to) {
            None | Some(AppSpec::Echo) => return self.echo.open(call, events),
            Some(spec) => spec.clone(),
        };
        let (leg, channel) = self.engine.open(call, events)?;
        let span = tracing::info_span!("app", call = %call.id, to = %call.to);
        tokio::spawn(tracing::Instrument::instrument(run(spec, channel), span));
        Ok(Box::new(leg))
    }
}

async fn run(spec: AppSpec, mut channel: Channel) {
    let outcome = match &spec {
        AppSpec::Echo => Ok(()),
        AppSpec::Playback { prompt } => playback(&mut channel, prompt).await,
        AppSpec::Record => record(&mut channel).await,
    };
    match outcome {
        Ok(()) => channel.hangup("done"),
        Err(ChannelError::Hangup) => {}
        Err(e) => {
            tracing::warn!(error = %e, "app failed");
            channel.hangup(&e.to_string());
        }
    }
}

/// Plays the prompt, then hangs up.
async fn playback(channel: &mut Channel, prompt: &str) -> Result<(), ChannelError> {
    channel.play(prompt, false).await?;
    Ok(())
}

/// Beep, record until `#`, silence or the limit, then play the recording back and hang up.
async fn record(channel: &mut Channel) -> Result<(), ChannelError> {
    let name = format!("test-{}", channel.info().id.replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    match channel.record(&name, None).await? {
        Some(recording) => {
            channel.play_file(&recording.path, false).await?;
        }
        None => tracing::info!("nothing was recorded"),
    }
    Ok(())
}
