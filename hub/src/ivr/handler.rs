//! The routed numbers (`[ivr] routes`) as the media apps' [`NumberHandler`]: a SIP or browser
//! call to one gets its script, run on a thread of its own over the call's channel.

use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Handle;

use super::channel_io::ChannelIo;
use super::io::{CallerInfo, Services};
use super::tts::Tts;
use super::{CALL_STACK_SIZE, CallOutcome, Limits, Scripts, run_call};
use crate::media::apps::{CallerPath, NumberHandler};
use crate::media::channel::Channel;
use crate::media::recorder::RecordOptions;

/// Runs the script routed for each dialled number.
pub struct IvrHandler {
    scripts: Scripts,
    limits: Limits,
    services: Arc<dyn Services>,
    tts: Tts,
    record: RecordOptions,
    runtime: Handle,
}

impl IvrHandler {
    /// Scripts and routes from `scripts`; `record` gives the recording defaults (format,
    /// silence), `runtime` the runtime the calls' channels live on.
    pub fn new(
        scripts: Scripts,
        limits: Limits,
        services: Arc<dyn Services>,
        tts: Tts,
        record: RecordOptions,
        runtime: Handle,
    ) -> Self {
        Self { scripts, limits, services, tts, record, runtime }
    }
}

/// "main_menu.rhai" → "Main menu": what a browser caller sees while connected.
fn display_name(script: &str) -> String {
    let stem = script.rsplit('/').next().unwrap_or(script).trim_end_matches(".rhai").replace(['_', '-'], " ");
    let mut chars = stem.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

impl NumberHandler for IvrHandler {
    fn name(&self, number: &str) -> Option<String> {
        self.scripts.route(number).ok().map(display_name)
    }

    fn start(&self, channel: Channel, path: CallerPath) {
        let info = channel.info().clone();
        let Ok(script) = self.scripts.route(&info.to).map(str::to_string) else {
            channel.hangup("no script for this number");
            return;
        };
        let caller = CallerInfo {
            number: info.from.clone(),
            name: String::new(),
            path: match path {
                CallerPath::Sip => "sip",
                CallerPath::WebRtc => "webrtc",
            }
            .to_string(),
            dialled: info.to.clone(),
            headers: Default::default(),
        };
        let deadline = Instant::now() + self.limits.max_call_time;
        let io = ChannelIo::new(channel, self.runtime.clone(), caller, self.tts.clone(), self.record, deadline);
        let (scripts, limits, services) = (self.scripts.clone(), self.limits.clone(), self.services.clone());
        let span = tracing::info_span!("ivr", call = %info.id, script = %script, from = %info.from, to = %info.to);
        let spawned =
            std::thread::Builder::new().name("ivr-call".into()).stack_size(CALL_STACK_SIZE).spawn(move || {
                let _entered = span.enter();
                let started = Instant::now();
                let outcome = run_call(&scripts, &script, Box::new(io), services, &limits);
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                match &outcome {
                    CallOutcome::Failed(failure) => tracing::warn!(ms, failure = %failure, "script failed"),
                    other => tracing::info!(ms, outcome = ?other, "script ended"),
                }
            });
        if let Err(e) = spawned {
            // The closure, and with it the channel, is gone: the call ends on its RTP timeout.
            tracing::error!(call = %info.id, error = %e, "cannot start the script's thread");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripts_get_a_readable_name() {
        assert_eq!(super::display_name("main_menu.rhai"), "Main menu");
        assert_eq!(super::display_name("sub/business-hours.rhai"), "Business hours");
    }
}
