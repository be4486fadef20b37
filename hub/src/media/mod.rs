//! The media engine: the audio of calls the SIP user agent answers.
//!
//! Layer L3 (see `lib.rs`): implements [`crate::sip::media_port`] from above; `sip` never
//! imports this module. One [`pacer`] sends every call's RTP on the packet-time grid; each call
//! has a small receive task ([`leg`]) for statistics, digits (RFC 4733 and in-band) and
//! recording; prompts are decoded once and encoded once per codec ([`prompt`]). What drives a
//! call sees a [`channel::Channel`]: the built-in [`apps`] today, IVR scripts next. The RTP
//! [`echo`] answers numbers without an app. Browsers calling a hub number reach the same
//! engine through a WebRTC peer ([`webrtc`]).

pub mod apps;
pub mod channel;
pub mod codec;
pub mod echo;
pub mod engine;
pub mod goertzel;
pub mod jitter;
pub mod leg;
pub mod pacer;
pub mod ports;
pub mod prompt;
pub mod recorder;
pub mod rtcp;
pub mod rtp_stats;
pub mod socket;
pub mod telephone_event;
pub mod webrtc;
