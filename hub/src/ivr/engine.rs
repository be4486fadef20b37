//! Runs one call's script: a fresh engine per call (the sandbox plus the call API bound to
//! this call), the cached AST, a wall-time deadline checked by `on_progress` and by every
//! API step, and a clean end whatever happens.
//!
//! ```text
//! run_call ─ Scripts::get (stat; compiled once) ─ engine: sandbox + api::register ─ run_ast
//!    ├─ Ok / exit            → hangup                              → Completed
//!    ├─ hangup() / transfer  → (done by the API)                   → HungUp / Transferred
//!    ├─ caller hung up       → nothing more, no error logged       → CallerHungUp
//!    └─ error or limit hit   → log file:line, play error_prompt, hangup → Failed
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rhai::{Dynamic, EvalAltResult, OptimizationLevel};

use super::api::{self, CallState, End};
use super::error::ScriptFailure;
use super::io::{CallIo, IoError, Services};
use super::sandbox::{self, Limits};
use super::scripts::{ImportResolver, Scripts};

/// Stack size for the thread that runs a call: deep (but limited) script recursion needs
/// more than a default 2 MiB thread has in debug builds.
pub const CALL_STACK_SIZE: usize = 16 * 1024 * 1024;

/// How a call's script ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The script ran to its end; the hub hung up.
    Completed,
    /// The script hung up (`hangup()`).
    HungUp,
    /// The caller hung up (the script stopped there, quietly).
    CallerHungUp,
    /// The script transferred the caller to this extension.
    Transferred(String),
    /// The script failed or hit a limit: the caller heard the error prompt, then the hub hung up.
    Failed(ScriptFailure),
}

/// Said when the error prompt cannot be played.
pub const SPOKEN_ERROR: &str = "Sorry, something went wrong. Goodbye.";

/// Sees what a script logs and how it fails, besides `tracing` (the simulator's transcript).
pub trait Observer: Send + Sync {
    /// `log(…)` from `file` at `line`.
    fn log(&self, file: &str, line: Option<usize>, message: &str) {
        let _ = (file, line, message);
    }
    /// The script failed; called before the error prompt plays.
    fn failed(&self, failure: &ScriptFailure) {
        let _ = failure;
    }
}

/// Observes nothing: `tracing` alone.
pub struct Quiet;

impl Observer for Quiet {}

/// Runs `script` (a name relative to the scripts directory) for one call, blocking until the
/// call's script part is over. Call it on a thread of its own, with [`CALL_STACK_SIZE`].
pub fn run_call(
    scripts: &Scripts,
    script: &str,
    io: Box<dyn CallIo>,
    services: Arc<dyn Services>,
    limits: &Limits,
) -> CallOutcome {
    run_call_observed(scripts, script, io, services, limits, Arc::new(Quiet))
}

/// [`run_call`], telling `observer` about logs and failures.
pub fn run_call_observed(
    scripts: &Scripts,
    script: &str,
    io: Box<dyn CallIo>,
    services: Arc<dyn Services>,
    limits: &Limits,
    observer: Arc<dyn Observer>,
) -> CallOutcome {
    let span = tracing::info_span!("ivr", script);
    let _entered = span.enter();
    let state = Arc::new(CallState::new(io, services, limits, script, observer));
    let result = match scripts.get(script) {
        Err(e) => Err(e.failure()),
        Ok(ast) => {
            let engine = call_engine(scripts, limits, &state);
            let result = engine.run_ast(&ast);
            drop(engine); // the API closures hold `state`
            result.map_err(|e| failure(&e, script, limits))
        }
    };
    let end = state.end.lock().unwrap_or_else(|p| p.into_inner()).take();
    let mut io = state.io.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = match (end, result) {
        (Some(End::CallerHungUp), _) => CallOutcome::CallerHungUp,
        (Some(End::HungUp), _) => CallOutcome::HungUp,
        (Some(End::Transferred(to)), _) => CallOutcome::Transferred(to),
        (None, Ok(())) => {
            io.hangup("script ended");
            CallOutcome::Completed
        }
        (Some(End::WallTime), Err(mut f)) => {
            f.message = format!(
                "the call ran longer than [ivr] max_call_time ({})",
                humantime::format_duration(limits.max_call_time)
            );
            CallOutcome::Failed(f)
        }
        (Some(End::WallTime), Ok(())) => CallOutcome::Completed,
        (None, Err(f)) => CallOutcome::Failed(f),
    };
    match &outcome {
        CallOutcome::Failed(f) => {
            tracing::warn!(file = %f.file, line = f.line, column = f.column, error = %f.message, "IVR script failed");
            state.observer.failed(f);
            // Without the recorded error prompt the caller still hears why the call ends.
            if let Err(e) = io.play(&limits.error_prompt, false)
                && e != IoError::Hangup
            {
                tracing::debug!(prompt = %limits.error_prompt, error = %e, "error prompt not played");
                let _ = io.say(SPOKEN_ERROR, false);
            }
            io.hangup("script error");
        }
        CallOutcome::CallerHungUp => tracing::info!("caller hung up"),
        other => tracing::debug!(outcome = ?other, "script done"),
    }
    outcome
}

/// The sandbox, sibling-script imports, the deadline and this call's API.
pub(crate) fn call_engine(scripts: &Scripts, limits: &Limits, state: &Arc<CallState>) -> rhai::Engine {
    let mut engine = sandbox::engine(limits);
    engine.set_optimization_level(OptimizationLevel::None); // ASTs are optimised when compiled
    engine.set_module_resolver(ImportResolver::new(scripts.clone()));
    let s = state.clone();
    engine.on_progress(move |ops| {
        if s.ended.load(Ordering::Relaxed) {
            return Some(Dynamic::UNIT);
        }
        if ops % 1024 == 0 && s.remaining().is_zero() {
            let _ = s.stop(End::WallTime);
            return Some(Dynamic::UNIT);
        }
        None
    });
    api::register(&mut engine, state);
    engine
}

/// The innermost error, with the file and position it happened at, in words for people.
fn failure(err: &EvalAltResult, entry: &str, limits: &Limits) -> ScriptFailure {
    let mut file = entry.to_string();
    let mut pos = err.position();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(_, source, inner, _) => {
                if !source.is_empty() {
                    file = source.clone();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, _) => {
                file = if name.ends_with(".rhai") { name.clone() } else { format!("{name}.rhai") };
                e = inner;
            }
            _ => break,
        }
        if !e.position().is_none() {
            pos = e.position();
        }
    }
    let mut message = e.to_string();
    if !e.position().is_none() {
        let suffix = format!(" ({})", e.position());
        if let Some(bare) = message.strip_suffix(&suffix) {
            message = bare.to_string();
        }
    }
    match e {
        EvalAltResult::ErrorTooManyOperations(..) => {
            message = format!("too many operations ([ivr] max_operations = {})", limits.max_operations)
        }
        EvalAltResult::ErrorStackOverflow(..) => {
            message = format!("functions nested too deeply ([ivr] max_call_depth = {})", limits.max_call_depth)
        }
        EvalAltResult::ErrorDataTooLarge(what, ..) => {
            message = format!(
                "{what} too large ([ivr] max_string_size = {}, max_array_size = {}, max_map_size = {})",
                limits.max_string_size, limits.max_array_size, limits.max_map_size
            )
        }
        _ => {}
    }
    ScriptFailure { file, line: pos.line(), column: pos.position(), message }
}
