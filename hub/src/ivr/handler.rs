//! The routed numbers (`[ivr] routes`) as the media apps' [`NumberHandler`]: a SIP or browser
//! call to one gets its script, run on a thread of its own over the call's channel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use tokio::runtime::Handle;

use super::channel_io::ChannelIo;
use super::io::{CallerInfo, Services};
use super::tts::Tts;
use super::{CALL_STACK_SIZE, CallOutcome, Limits, Scripts, run_call};
use crate::media::apps::{CallerPath, NumberHandler};
use crate::media::channel::Channel;
use crate::media::recorder::RecordOptions;

/// Reads `[ivr] routes` again (from the config file, the environment and flags).
pub type LoadRoutes = Box<dyn Fn() -> Result<BTreeMap<String, String>, String> + Send + Sync>;

/// Re-reads the routes when the config file changes, so a new menu number needs no restart.
pub struct RoutesReload {
    file: PathBuf,
    load: LoadRoutes,
    seen: Mutex<Option<SystemTime>>,
}

impl RoutesReload {
    /// Watches `file` (by its modification time); `load` gives the routes it now sets.
    pub fn new(file: PathBuf, load: LoadRoutes) -> Self {
        let seen = Mutex::new(std::fs::metadata(&file).and_then(|m| m.modified()).ok());
        Self { file, load, seen }
    }

    /// New routes when the file changed since the last look; `None` otherwise (or when it
    /// cannot be read: the old routes stay, and the problem is logged).
    fn changed(&self) -> Option<BTreeMap<String, String>> {
        let now = std::fs::metadata(&self.file).and_then(|m| m.modified()).ok();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now == *seen {
            return None;
        }
        *seen = now;
        match (self.load)() {
            Ok(routes) => Some(routes),
            Err(e) => {
                tracing::warn!(file = %self.file.display(), error = %e, "IVR routes not reloaded; the old ones stay");
                None
            }
        }
    }
}

/// Runs the script routed for each dialled number.
pub struct IvrHandler {
    scripts: RwLock<Scripts>,
    reload: Option<RoutesReload>,
    limits: Limits,
    services: Arc<dyn Services>,
    tts: Tts,
    record: RecordOptions,
    runtime: Handle,
    voicemail: Option<(String, String)>,
    greetings: Option<PathBuf>,
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
        Self {
            scripts: RwLock::new(scripts),
            reload: None,
            limits,
            services,
            tts,
            record,
            runtime,
            voicemail: None,
            greetings: None,
        }
    }

    /// The same handler, answering `prefix` + extension (where Asterisk's dial plan sends
    /// unanswered calls) with `script`, which finds the extension in the `X-Mailbox` header.
    pub fn with_voicemail(mut self, prefix: &str, script: &str) -> Self {
        if !prefix.is_empty() {
            self.voicemail = Some((prefix.to_string(), script.to_string()));
        }
        self
    }

    /// The same handler, letting scripts play greetings recorded in the browser (kept under
    /// `dir/greetings/`) as `greetings/<user id>.wav`.
    pub fn with_greetings(mut self, dir: PathBuf) -> Self {
        self.greetings = Some(dir);
        self
    }

    /// The script for `dialled`, and the mailbox when it is a voicemail number.
    fn route(&self, scripts: &Scripts, dialled: &str) -> Option<(String, Option<String>)> {
        if let Ok(script) = scripts.route(dialled) {
            return Some((script.to_string(), None));
        }
        let (prefix, script) = self.voicemail.as_ref()?;
        let mailbox = dialled.strip_prefix(prefix.as_str()).filter(|m| !m.is_empty())?;
        Some((script.clone(), Some(mailbox.to_string())))
    }

    /// The same handler, re-reading its routes when the config file changes. Calls in
    /// progress keep the script they started with.
    pub fn with_reload(mut self, reload: RoutesReload) -> Self {
        self.reload = Some(reload);
        self
    }

    /// The scripts and routes for a new call (reloaded first when the config changed).
    fn scripts(&self) -> Scripts {
        if let Some(routes) = self.reload.as_ref().and_then(RoutesReload::changed) {
            let mut scripts = self.scripts.write().unwrap_or_else(|e| e.into_inner());
            tracing::info!(routes = routes.len(), "IVR routes reloaded");
            *scripts = Scripts::new(scripts.dir(), routes, &self.limits);
        }
        self.scripts.read().unwrap_or_else(|e| e.into_inner()).clone()
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
        self.route(&self.scripts(), number).map(|(script, mailbox)| match mailbox {
            Some(m) => format!("Voicemail {m}"),
            None => display_name(&script),
        })
    }

    fn start(&self, channel: Channel, path: CallerPath) {
        let info = channel.info().clone();
        let scripts = self.scripts();
        let Some((script, mailbox)) = self.route(&scripts, &info.to) else {
            channel.hangup("no script for this number");
            return;
        };
        let caller = CallerInfo {
            number: info.caller_number(),
            name: info.caller_name(),
            path: match path {
                CallerPath::Sip => "sip",
                CallerPath::WebRtc => "webrtc",
            }
            .to_string(),
            dialled: info.to.clone(),
            headers: info.headers.iter().cloned().chain(mailbox.map(|m| ("X-Mailbox".to_string(), m))).collect(),
        };
        let deadline = Instant::now() + self.limits.max_call_time;
        let io = ChannelIo::new(channel, self.runtime.clone(), caller, self.tts.clone(), self.record, deadline);
        let io = match &self.greetings {
            Some(dir) => io.with_greetings(dir.clone()),
            None => io,
        };
        let (limits, services) = (self.limits.clone(), self.services.clone());
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
    use super::*;
    use crate::config::{IvrConfig, VoicemailConfig};
    use crate::ivr::io::{Person, RecordedMessage};

    struct NoServices;

    impl Services for NoServices {
        fn http_get(&self, _: &str) -> Result<serde_json::Value, String> {
            Err("none".into())
        }
        fn http_post(&self, _: &str, _: &serde_json::Value) -> Result<serde_json::Value, String> {
            Err("none".into())
        }
        fn directory_search(&self, _: &str) -> Result<Vec<Person>, String> {
            Ok(Vec::new())
        }
        fn user_by_extension(&self, _: &str) -> Result<Option<Person>, String> {
            Ok(None)
        }
        fn voicemail_deposit(&self, _: &str, _: &RecordedMessage, _: &CallerInfo) -> Result<(), String> {
            Err("none".into())
        }
    }

    /// Writes `text` to `file` with modification time `secs` (so the change is seen whatever
    /// the file system's timestamp granularity).
    fn write(file: &std::path::Path, text: &str, secs: u64) {
        std::fs::write(file, text).unwrap();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options().write(true).open(file).unwrap().set_modified(at).unwrap();
    }

    #[tokio::test]
    async fn routes_follow_the_config_file_and_a_broken_file_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.toml");
        write(&file, "\"800\" = \"main_menu.rhai\"\n", 1_000);
        let path = file.clone();
        let load: LoadRoutes = Box::new(move || {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            toml::from_str(&text).map_err(|e| e.to_string())
        });
        let limits = Limits::new(&IvrConfig::default(), &VoicemailConfig::default());
        let routes = BTreeMap::from([("800".to_string(), "main_menu.rhai".to_string())]);
        let handler = IvrHandler::new(
            Scripts::new(dir.path(), routes, &limits),
            limits,
            Arc::new(NoServices),
            Tts::new(dir.path().join("tts")),
            RecordOptions::default(),
            Handle::current(),
        )
        .with_reload(RoutesReload::new(file.clone(), load));
        assert_eq!(handler.name("800").as_deref(), Some("Main menu"));
        assert_eq!(handler.name("801"), None);
        write(&file, "\"800\" = \"main_menu.rhai\"\n\"801\" = \"business_hours.rhai\"\n", 2_000);
        assert_eq!(handler.name("801").as_deref(), Some("Business hours"), "a new number without a restart");
        write(&file, "\"801\" = [broken", 3_000);
        assert_eq!(handler.name("801").as_deref(), Some("Business hours"), "a broken file changes nothing");
        write(&file, "\"802\" = \"directory.rhai\"\n", 4_000);
        assert_eq!((handler.name("800"), handler.name("802").as_deref()), (None, Some("Directory")));
    }

    #[test]
    fn scripts_get_a_readable_name() {
        assert_eq!(super::display_name("main_menu.rhai"), "Main menu");
        assert_eq!(super::display_name("sub/business-hours.rhai"), "Business hours");
    }
}
