//! A scripted caller and canned services: [`CallIo`] and [`Services`] for `hub ivr simulate`
//! and `hub ivr test`, writing a transcript (one line per event) instead of touching SIP,
//! audio or the network.
//!
//! Caller input is a list of tokens consumed in order by reads and barge-ins: a digit, `_`
//! (no input: that read times out), `hangup` (the caller hangs up there) or `rec:SECONDS`
//! (the caller speaks that long when recorded). Services answer from a [`Fixture`].

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::engine::{self, CallOutcome, Observer};
use super::error::ScriptFailure;
use super::io::{CallIo, CallerInfo, IoError, Person, RecordRequest, RecordedMessage, Services};
use super::sandbox::Limits;
use super::scripts::Scripts;

/// Why a simulation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A `--digits` token that is not a digit, `_`, `hangup` or `rec:N`.
    #[error("{0:?} is not caller input: use digits 0-9 * #, _ (timeout), hangup or rec:SECONDS")]
    BadInput(String),
    /// The fixture is not valid.
    #[error("fixture: {0}")]
    Fixture(String),
    /// The call thread could not start.
    #[error("cannot start the call thread: {0}")]
    Thread(String),
}

/// One thing the simulated caller does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Presses a key.
    Digit(char),
    /// Lets one read time out.
    Timeout,
    /// Hangs up.
    Hangup,
    /// Speaks for this many seconds when recorded.
    Speak(u32),
}

/// Parses `--digits`: tokens separated by spaces; `1002` is four digits.
pub fn parse_inputs(text: &str) -> Result<Vec<Input>, SimError> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        match token {
            "_" => out.push(Input::Timeout),
            "hangup" => out.push(Input::Hangup),
            t if t.starts_with("rec:") => {
                let secs = t[4..].parse().map_err(|_| SimError::BadInput(t.into()))?;
                out.push(Input::Speak(secs));
            }
            t if t.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#') => {
                out.extend(t.chars().map(Input::Digit));
            }
            t => return Err(SimError::BadInput(t.into())),
        }
    }
    Ok(out)
}

/// A person in a fixture's directory.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixturePerson {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Extension.
    pub extension: Option<String>,
    /// Other numbers.
    pub numbers: Vec<String>,
}

/// Canned answers for services: HTTP by `"GET url"` / `"POST url"` (`{"hang": true}` never
/// answers), the directory, prompts that do not exist and extra allowed HTTP hosts.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fixture {
    /// `"GET https://…"` / `"POST https://…"` → JSON answer.
    pub http: BTreeMap<String, serde_json::Value>,
    /// People for `directory_search`, `user_by_extension` and `voicemail_deposit`.
    pub directory: Vec<FixturePerson>,
    /// Prompts `play` fails on (`greetings/*` for a prefix).
    pub missing_prompts: Vec<String>,
    /// Hosts allowed besides `[ivr] http_allow`.
    pub http_allow: Vec<String>,
}

impl Fixture {
    /// A JSON fixture: the keys above, and `"GET url"` / `"POST url"` at the top level too.
    pub fn from_json(text: &str) -> Result<Self, SimError> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| SimError::Fixture(e.to_string()))?;
        let top = value.as_object_mut().ok_or_else(|| SimError::Fixture("must be a JSON object".into()))?;
        let http_keys: Vec<String> =
            top.keys().filter(|k| k.starts_with("GET ") || k.starts_with("POST ")).cloned().collect();
        let mut http = serde_json::Map::new();
        for k in http_keys {
            if let Some(v) = top.remove(&k) {
                http.insert(k, v);
            }
        }
        let mut fixture: Fixture = serde_json::from_value(value).map_err(|e| SimError::Fixture(e.to_string()))?;
        fixture.http.extend(http);
        Ok(fixture)
    }

    fn missing(&self, prompt: &str) -> bool {
        self.missing_prompts.iter().any(|m| match m.strip_suffix('*') {
            Some(prefix) => prompt.starts_with(prefix),
            None => prompt == m,
        })
    }

    fn people(&self) -> impl Iterator<Item = Person> + '_ {
        self.directory.iter().map(|p| Person {
            id: p.id.clone(),
            name: p.name.clone(),
            extension: p.extension.clone(),
            numbers: p.numbers.clone(),
        })
    }
}

struct Shared {
    lines: Mutex<Vec<String>>,
    inputs: Mutex<VecDeque<Input>>,
    hung_up: Mutex<bool>,
    fixture: Fixture,
    caller: CallerInfo,
    echo: bool,
}

impl Shared {
    fn line(&self, line: String) {
        if self.echo {
            println!("{line}");
        }
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    fn peek(&self) -> Option<Input> {
        self.inputs.lock().unwrap_or_else(|p| p.into_inner()).front().copied()
    }

    fn pop(&self) -> Option<Input> {
        self.inputs.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    /// Fails when the caller has hung up, or hangs up now (the next input says so).
    fn line_alive(&self) -> Result<(), IoError> {
        let mut hung_up = self.hung_up.lock().unwrap_or_else(|p| p.into_inner());
        if *hung_up {
            return Err(IoError::Hangup);
        }
        if self.peek() == Some(Input::Hangup) {
            self.pop();
            *hung_up = true;
            drop(hung_up);
            self.line("< caller hangs up".into());
            return Err(IoError::Hangup);
        }
        Ok(())
    }
}

/// One simulated call: its caller, its services and its transcript.
#[derive(Clone)]
pub struct Simulation {
    shared: Arc<Shared>,
}

impl Simulation {
    /// A call from `caller` who will do `inputs`, with services answering from `fixture`;
    /// `echo` prints each transcript line as it happens.
    pub fn new(inputs: Vec<Input>, caller: CallerInfo, fixture: Fixture, echo: bool) -> Self {
        Self {
            shared: Arc::new(Shared {
                lines: Mutex::new(Vec::new()),
                inputs: Mutex::new(inputs.into()),
                hung_up: Mutex::new(false),
                fixture,
                caller,
                echo,
            }),
        }
    }

    /// The transcript so far.
    pub fn transcript(&self) -> Vec<String> {
        self.shared.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `script` to its end on a call thread, as a real call would.
    pub fn run(&self, scripts: &Scripts, script: &str, limits: &Limits) -> Result<CallOutcome, SimError> {
        let mut limits = limits.clone();
        limits.http_allow.extend(self.shared.fixture.http_allow.iter().cloned());
        let io: Box<dyn CallIo> = Box::new(SimCall { shared: self.shared.clone() });
        let services: Arc<dyn Services> = Arc::new(SimServices { shared: self.shared.clone() });
        let observer: Arc<dyn Observer> = Arc::new(SimObserver { shared: self.shared.clone() });
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("ivr-call".into())
                .stack_size(engine::CALL_STACK_SIZE)
                .spawn_scoped(scope, || engine::run_call_observed(scripts, script, io, services, &limits, observer))
                .map_err(|e| SimError::Thread(e.to_string()))?
                .join()
                .map_err(|_| SimError::Thread("the call thread panicked".into()))
        })
    }
}

struct SimCall {
    shared: Arc<Shared>,
}

impl SimCall {
    fn barge_in(&self, barge_in: bool) -> Option<char> {
        match self.shared.peek() {
            Some(Input::Digit(d)) if barge_in => Some(d),
            _ => None,
        }
    }
}

impl CallIo for SimCall {
    fn answer(&mut self) -> Result<(), IoError> {
        self.shared.line("* answer".into());
        Ok(())
    }

    fn play(&mut self, prompt: &str, barge_in: bool) -> Result<Option<char>, IoError> {
        self.shared.line_alive()?;
        if self.shared.fixture.missing(prompt) {
            self.shared.line(format!("> play {prompt} (missing)"));
            return Err(IoError::Failed(format!("prompt {prompt} not found")));
        }
        self.shared.line(format!("> play {prompt}"));
        Ok(self.barge_in(barge_in))
    }

    fn say(&mut self, text: &str, barge_in: bool) -> Result<Option<char>, IoError> {
        self.shared.line_alive()?;
        self.shared.line(format!("> say {text:?}"));
        Ok(self.barge_in(barge_in))
    }

    fn read_digit(&mut self, timeout: Duration) -> Result<Option<char>, IoError> {
        self.shared.line_alive()?;
        let timed_out = format!("< (no input, timeout {} ms)", timeout.as_millis());
        match self.shared.peek() {
            Some(Input::Digit(d)) => {
                self.shared.pop();
                self.shared.line(format!("< caller presses {d}"));
                Ok(Some(d))
            }
            Some(Input::Timeout) => {
                self.shared.pop();
                self.shared.line(timed_out);
                Ok(None)
            }
            _ => {
                self.shared.line(timed_out);
                Ok(None)
            }
        }
    }

    fn flush_digits(&mut self) {}

    fn record(&mut self, request: &RecordRequest) -> Result<Option<RecordedMessage>, IoError> {
        self.shared.line_alive()?;
        if request.beep {
            self.shared.line("> beep".into());
        }
        match self.shared.peek() {
            Some(Input::Speak(secs)) => {
                self.shared.pop();
                let secs = secs.min(request.max_seconds);
                let file = format!("{}.wav", request.name);
                self.shared.line(format!("* record {secs} s -> {file}"));
                Ok(Some(RecordedMessage { path: PathBuf::from(file), duration_ms: u64::from(secs) * 1000 }))
            }
            Some(Input::Timeout) => {
                self.shared.pop();
                self.shared.line("* record -> nothing said".into());
                Ok(None)
            }
            _ => {
                self.shared.line("* record -> nothing said".into());
                Ok(None)
            }
        }
    }

    fn transfer(&mut self, target: &str) -> Result<(), IoError> {
        self.shared.line(format!("* transfer {target}"));
        Ok(())
    }

    fn hangup(&mut self, _reason: &str) {
        self.shared.line("* hangup".into());
    }

    fn sleep(&mut self, duration: Duration) -> Result<(), IoError> {
        self.shared.line_alive()?;
        self.shared.line(format!("* sleep {} ms", duration.as_millis()));
        Ok(())
    }

    fn caller(&self) -> CallerInfo {
        self.shared.caller.clone()
    }
}

struct SimServices {
    shared: Arc<Shared>,
}

impl SimServices {
    fn http(&self, key: String, body: Option<&serde_json::Value>) -> Result<serde_json::Value, String> {
        let sent = body.map(|b| format!(" {b}")).unwrap_or_default();
        match self.shared.fixture.http.get(&key) {
            Some(v) if v.get("hang").and_then(serde_json::Value::as_bool) == Some(true) => {
                self.shared.line(format!("* http {key}{sent} -> (no answer)"));
                std::thread::sleep(Duration::from_secs(3600));
                Err("no answer".into())
            }
            Some(v) => {
                self.shared.line(format!("* http {key}{sent} -> {v}"));
                Ok(v.clone())
            }
            None => {
                self.shared.line(format!("! http {key}{sent}: not in the fixture"));
                Err("not in the fixture".into())
            }
        }
    }

    fn find(&self, user: &str) -> Option<Person> {
        self.shared.fixture.people().find(|p| p.id == user || p.extension.as_deref() == Some(user))
    }
}

fn names(people: &[Person]) -> String {
    if people.is_empty() {
        return "nobody".into();
    }
    people.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

impl Services for SimServices {
    fn http_get(&self, url: &str) -> Result<serde_json::Value, String> {
        self.http(format!("GET {url}"), None)
    }

    fn http_post(&self, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        self.http(format!("POST {url}"), Some(body))
    }

    fn directory_search(&self, query: &str) -> Result<Vec<Person>, String> {
        let q = query.to_lowercase();
        let found: Vec<Person> = self
            .shared
            .fixture
            .people()
            .filter(|p| p.name.split_whitespace().any(|w| w.to_lowercase().starts_with(&q)))
            .collect();
        self.shared.line(format!("* directory search {query:?} -> {}", names(&found)));
        Ok(found)
    }

    fn user_by_extension(&self, extension: &str) -> Result<Option<Person>, String> {
        let found = self.shared.fixture.people().find(|p| p.extension.as_deref() == Some(extension));
        self.shared.line(format!("* user {extension} -> {}", found.as_ref().map_or("nobody", |p| p.name.as_str())));
        Ok(found)
    }

    fn voicemail_deposit(&self, user: &str, message: &RecordedMessage, _caller: &CallerInfo) -> Result<(), String> {
        if self.find(user).is_none() {
            self.shared.line(format!("! deposit to {user}: no such user"));
            return Err(format!("no user {user}"));
        }
        self.shared.line(format!("* deposit to {user} ({})", message.path.display()));
        Ok(())
    }
}

struct SimObserver {
    shared: Arc<Shared>,
}

impl Observer for SimObserver {
    fn log(&self, _file: &str, _line: Option<usize>, message: &str) {
        self.shared.line(format!("* log: {message}"));
    }

    fn failed(&self, failure: &ScriptFailure) {
        self.shared.line(format!("! error: {} ({})", failure.message, failure.location()));
    }
}
