//! Media apps: what handles the audio of calls the SIP user agent answers.
//!
//! Layer L3 (see `lib.rs`): implements [`crate::sip::media_port`] from above; `sip` never
//! imports this module. Today there is the RTP echo ([`echo`]), which answers every call and
//! sends the caller's audio back, the classic "echo test" of a phone system; the IVR engine
//! comes next behind the same port.

pub mod echo;
pub mod ports;
