//! IVR (L4): Rhai scripts that answer calls. Each call runs its script on a thread of its own
//! against two blocking traits ([`io::CallIo`] for the call, [`io::Services`] for HTTP, the
//! directory and voicemail), inside a sandbox with limits on operations, depth, sizes and wall
//! time. The script engine itself never sees sip or media: [`channel_io`] is the real `CallIo`
//! over the media engine's channel, [`services`] the real `Services`, and [`handler`] answers
//! the routed numbers for the media apps (SIP and browser callers alike).
//!
//! ```text
//! Scripts (routes + compiled ASTs, by path) ──► engine::run_call ──► api (functions scripts call)
//!                                                    │                  ├─ gather (menu input)
//!                                                    └─ sandbox (limits, no eval, imports)
//! simulate (scripted caller + fixture) and testfile (`hub ivr test`) drive run_call without a call.
//! ```

mod api;
pub mod channel_io;
pub mod engine;
pub mod error;
pub mod gather;
pub mod handler;
pub mod io;
pub mod sandbox;
pub mod scripts;
pub mod services;
pub mod simulate;
pub mod testfile;
pub mod tts;
mod values;

#[cfg(test)]
mod tests;

pub use engine::{CALL_STACK_SIZE, CallOutcome, Observer, run_call, run_call_observed};
pub use error::{ScriptError, ScriptFailure};
pub use sandbox::Limits;
pub use scripts::Scripts;
