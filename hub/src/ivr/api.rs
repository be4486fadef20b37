//! The functions scripts may call (documented with examples in docs/ivr.md), and the per-call
//! state they share. Every function first checks that the call still runs: after a hang-up,
//! a transfer or the wall-time limit each further call raises the same uncatchable
//! termination again, so a script cannot `try`/`catch` its way past the end of the call.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::engine::Observer;
use super::gather::{self, GatherOptions, Prompt};
use super::io::{CallIo, CallerInfo, IoError, Person, RecordRequest, Services};
use super::sandbox::Limits;
use super::values::{self, Options, script_error};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// How the call ended before the script did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The caller hung up.
    CallerHungUp,
    /// The script called `hangup()`.
    HungUp,
    /// The script transferred the caller.
    Transferred(String),
    /// `max_call_time` ran out.
    WallTime,
}

/// One call's state, shared by the functions registered for it.
pub(crate) struct CallState {
    pub(crate) io: Mutex<Box<dyn CallIo>>,
    pub(crate) services: Arc<dyn Services>,
    pub(crate) limits: Limits,
    pub(crate) deadline: Instant,
    /// The entry script, for logs.
    pub(crate) file: String,
    pub(crate) observer: Arc<dyn Observer>,
    /// Set once with the reason the call ended; read by `run_call` and `on_progress`.
    pub(crate) end: Mutex<Option<End>>,
    pub(crate) ended: AtomicBool,
    recordings: AtomicU32,
    caller: CallerInfo,
}

impl CallState {
    pub(crate) fn new(
        io: Box<dyn CallIo>,
        services: Arc<dyn Services>,
        limits: &Limits,
        file: &str,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let caller = io.caller();
        Self {
            io: Mutex::new(io),
            services,
            limits: limits.clone(),
            deadline: Instant::now() + limits.max_call_time,
            file: file.to_string(),
            observer,
            end: Mutex::new(None),
            ended: AtomicBool::new(false),
            recordings: AtomicU32::new(0),
            caller,
        }
    }

    /// Ends the script: records why (the first reason wins) and returns the error that stops it.
    pub(crate) fn stop(&self, end: End) -> Box<EvalAltResult> {
        let mut slot = self.end.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(end);
        }
        self.ended.store(true, Ordering::SeqCst);
        terminated()
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Fails when the call has ended or its time is up.
    fn guard(&self) -> Res<()> {
        if self.ended.load(Ordering::SeqCst) {
            return Err(terminated());
        }
        if self.remaining().is_zero() {
            return Err(self.stop(End::WallTime));
        }
        Ok(())
    }

    /// One step on the call.
    fn io<T>(&self, step: impl FnOnce(&mut dyn CallIo) -> Result<T, IoError>) -> Res<T> {
        self.guard()?;
        let result = {
            let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
            step(io.as_mut())
        };
        match result {
            Ok(v) => {
                self.guard()?;
                Ok(v)
            }
            Err(IoError::Hangup) => Err(self.stop(End::CallerHungUp)),
            Err(IoError::Failed(m)) => Err(script_error(m)),
        }
    }

    /// One call to a service, on a helper thread so that the wait is bounded by `budget` and
    /// the call's remaining time, whatever the service does.
    fn service<T: Send + 'static>(
        &self,
        what: &str,
        budget: Duration,
        call: impl FnOnce(&dyn Services) -> Result<T, String> + Send + 'static,
    ) -> Res<Result<T, String>> {
        self.guard()?;
        let services = self.services.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("ivr-service".into())
            .spawn(move || {
                let _ = tx.send(call(services.as_ref()));
            })
            .map_err(|e| script_error(format!("{what}: cannot start: {e}")))?;
        let wait = budget.min(self.remaining());
        match rx.recv_timeout(wait) {
            Ok(r) => {
                self.guard()?;
                Ok(r)
            }
            Err(_) if self.remaining().is_zero() => Err(self.stop(End::WallTime)),
            Err(_) => Ok(Err(format!("no answer within {}", humantime::format_duration(wait)))),
        }
    }

    fn next_name(&self, kind: &str) -> String {
        format!("{kind}-{}", self.recordings.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

/// The error that ends a script; Rhai's `try` cannot catch it.
fn terminated() -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(Dynamic::UNIT, rhai::Position::NONE))
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

fn digit(d: Option<char>) -> String {
    d.map(String::from).unwrap_or_default()
}

fn people(list: &[Person]) -> Array {
    list.iter().map(values::person).collect()
}

/// Registers the call API on `engine` for the call `state`.
pub(crate) fn register(engine: &mut Engine, state: &Arc<CallState>) {
    let s = state.clone();
    engine.register_fn("answer", move || s.io(|io| io.answer()));
    let s = state.clone();
    engine.register_fn("play", move |file: &str| s.io(|io| io.play(file, false)).map(|_| ()));
    let s = state.clone();
    engine.register_fn("play", move |file: &str, options: Map| {
        let barge_in = Options::new("play", &options, &["barge_in"])?.bool("barge_in", false)?;
        s.io(|io| {
            let pressed = io.play(file, barge_in)?;
            played(io, pressed, barge_in)
        })
    });
    let s = state.clone();
    engine.register_fn("say", move |text: &str| s.io(|io| io.say(text, false)).map(|_| ()));
    let s = state.clone();
    engine.register_fn("say", move |text: &str, options: Map| {
        let barge_in = Options::new("say", &options, &["barge_in"])?.bool("barge_in", false)?;
        s.io(|io| {
            let pressed = io.say(text, barge_in)?;
            played(io, pressed, barge_in)
        })
    });
    let s = state.clone();
    engine.register_fn("gather", move |options: Map| {
        let o = gather_options(&options)?;
        let st = s.clone();
        s.io(|io| gather::gather(io, &o, &|| st.remaining()))
    });
    let s = state.clone();
    engine.register_fn("record", move |options: Map| -> Res<Dynamic> {
        let o = Options::new("record", &options, &["max_seconds", "beep", "silence_ms"])?;
        let max = o.int("max_seconds", 60)?.clamp(1, s.remaining().as_secs().max(1));
        let request = RecordRequest {
            name: s.next_name("recording"),
            max_seconds: u32::try_from(max).unwrap_or(u32::MAX),
            beep: o.bool("beep", true)?,
            silence_ms: u32::try_from(o.int("silence_ms", 3000)?).unwrap_or(u32::MAX),
        };
        Ok(match s.io(|io| io.record(&request))? {
            None => Dynamic::UNIT,
            Some(m) => {
                let mut map = Map::new();
                map.insert("path".into(), m.path.display().to_string().into());
                map.insert("duration_ms".into(), i64::try_from(m.duration_ms).unwrap_or(i64::MAX).into());
                map.into()
            }
        })
    });
    let s = state.clone();
    engine.register_fn("transfer", move |target: &str| -> Res<()> {
        s.io(|io| io.transfer(target))?;
        Err(s.stop(End::Transferred(target.to_string())))
    });
    let s = state.clone();
    engine.register_fn("hangup", move || -> Res<()> {
        s.io(|io| {
            io.hangup("script");
            Ok(())
        })?;
        Err(s.stop(End::HungUp))
    });
    let s = state.clone();
    engine.register_fn("caller", move || values::caller(&s.caller));
    let s = state.clone();
    engine.register_fn("sleep", move |millis: i64| s.io(|io| io.sleep(ms(millis).min(s.remaining()))));
    let s = state.clone();
    engine.register_fn("http_get", move |url: &str| -> Res<Dynamic> {
        s.limits.check_url(url).map_err(|e| script_error(format!("http_get {url}: {e}")))?;
        let u = url.to_string();
        let answer = s.service("http_get", s.limits.http_timeout, move |sv| sv.http_get(&u))?;
        values::from_json(&answer.map_err(|e| script_error(format!("http GET {url}: {e}")))?)
    });
    let s = state.clone();
    engine.register_fn("http_post", move |url: &str, body: Map| -> Res<Dynamic> {
        s.limits.check_url(url).map_err(|e| script_error(format!("http_post {url}: {e}")))?;
        let body = values::to_json(&Dynamic::from_map(body))?;
        let u = url.to_string();
        let answer = s.service("http_post", s.limits.http_timeout, move |sv| sv.http_post(&u, &body))?;
        values::from_json(&answer.map_err(|e| script_error(format!("http POST {url}: {e}")))?)
    });
    let s = state.clone();
    engine.register_fn("directory_search", move |name: &str| -> Res<Array> {
        let q = name.to_string();
        let found = s.service("directory_search", s.limits.http_timeout, move |sv| sv.directory_search(&q))?;
        Ok(people(&found.map_err(|e| script_error(format!("directory_search: {e}")))?))
    });
    let s = state.clone();
    engine.register_fn("directory_keypad", move |digits: &str| -> Res<Array> {
        let d = digits.to_string();
        let found = s.service("directory_keypad", s.limits.http_timeout, move |sv| by_keypad(sv, &d))?;
        Ok(people(&found.map_err(|e| script_error(format!("directory_keypad: {e}")))?))
    });
    let s = state.clone();
    engine.register_fn("user_by_extension", move |ext: &str| -> Res<Dynamic> {
        let e = ext.to_string();
        let found = s.service("user_by_extension", s.limits.http_timeout, move |sv| sv.user_by_extension(&e))?;
        Ok(found
            .map_err(|e| script_error(format!("user_by_extension: {e}")))?
            .as_ref()
            .map_or(Dynamic::UNIT, values::person))
    });
    let s = state.clone();
    engine.register_fn("voicemail_deposit", move |user: Dynamic| -> Res<bool> {
        let user = match user.clone().into_string() {
            Ok(u) => u,
            Err(_) => user
                .read_lock::<Map>()
                .and_then(|m| m.get("id").and_then(|id| id.clone().into_string().ok()))
                .ok_or_else(|| script_error("voicemail_deposit: give a user id, an extension or a user map"))?,
        };
        let request = RecordRequest {
            name: s.next_name("voicemail"),
            max_seconds: u32::try_from(s.limits.max_message.as_secs().min(s.remaining().as_secs()).max(1))
                .unwrap_or(u32::MAX),
            beep: true,
            silence_ms: 3000,
        };
        let Some(message) = s.io(|io| io.record(&request))? else {
            return Ok(false);
        };
        let caller = s.caller.clone();
        let u = user.clone();
        let done = s.service("voicemail_deposit", s.limits.http_timeout, move |sv| {
            sv.voicemail_deposit(&u, &message, &caller)
        })?;
        if let Err(e) = &done {
            tracing::warn!(user, error = %e, "voicemail deposit failed");
        }
        Ok(done.is_ok())
    });
    for arity in 1..=4 {
        let s = state.clone();
        let log = move |ctx: &NativeCallContext, parts: &[Dynamic]| {
            let message = parts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
            let file = ctx.call_source().unwrap_or(&s.file);
            let line = ctx.call_position().line();
            tracing::info!(target: "hub::ivr::script", file, line, text = %message, "script log");
            s.observer.log(file, line, &message);
        };
        match arity {
            1 => engine.register_fn("log", move |ctx: NativeCallContext, a: Dynamic| log(&ctx, &[a])),
            2 => engine.register_fn("log", move |ctx: NativeCallContext, a: Dynamic, b: Dynamic| log(&ctx, &[a, b])),
            3 => engine.register_fn("log", move |ctx: NativeCallContext, a: Dynamic, b: Dynamic, c: Dynamic| {
                log(&ctx, &[a, b, c])
            }),
            _ => engine
                .register_fn("log", move |ctx: NativeCallContext, a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
                    log(&ctx, &[a, b, c, d])
                }),
        };
    }
}

/// The digit a barge-in returned, taken off the input so that the script sees it once.
fn played(io: &mut dyn CallIo, pressed: Option<char>, barge_in: bool) -> Result<String, IoError> {
    if barge_in && pressed.is_some() {
        return Ok(digit(io.read_digit(Duration::ZERO)?.or(pressed)));
    }
    Ok(digit(pressed))
}

fn gather_options(options: &Map) -> Res<GatherOptions> {
    let o = Options::new("gather", options, &["prompt", "say", "max_digits", "timeout_ms", "terminator", "retries"])?;
    let d = GatherOptions::default();
    let prompt = match (o.string("prompt")?, o.string("say")?) {
        (Some(file), _) => Prompt::File(file),
        (None, Some(text)) => Prompt::Say(text),
        (None, None) => Prompt::None,
    };
    let terminator = match o.string("terminator")? {
        None => d.terminator,
        Some(t) if t.is_empty() => None,
        Some(t) if t.chars().count() == 1 => t.chars().next(),
        Some(_) => return Err(script_error("gather: terminator is one digit, * or #, or \"\" for none")),
    };
    let max_digits = o.int("max_digits", d.max_digits as u64)?;
    if max_digits == 0 {
        return Err(script_error("gather: max_digits must be at least 1"));
    }
    Ok(GatherOptions {
        prompt,
        max_digits: usize::try_from(max_digits).unwrap_or(usize::MAX),
        timeout: Duration::from_millis(o.int("timeout_ms", d.timeout.as_millis() as u64)?),
        terminator,
        retries: u32::try_from(o.int("retries", u64::from(d.retries))?).unwrap_or(u32::MAX),
    })
}

/// People with a name word whose keypad spelling starts with `digits`: one directory search
/// per letter of the first digit, merged.
fn by_keypad(services: &dyn Services, digits: &str) -> Result<Vec<Person>, String> {
    let Some(first) = digits.chars().next() else { return Ok(Vec::new()) };
    let mut found: Vec<Person> = Vec::new();
    for letter in values::letters(first).chars() {
        for p in services.directory_search(&letter.to_string())? {
            let spells = p.name.split_whitespace().any(|w| values::keypad(w).starts_with(digits));
            if spells && !found.iter().any(|f| f.id == p.id) {
                found.push(p);
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}
