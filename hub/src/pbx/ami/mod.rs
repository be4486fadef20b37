//! The Asterisk Manager Interface (AMI).
//!
//! `frame` turns bytes into messages and is pure code, tested against every transcript in
//! `shared/fixtures/ami` (real Asterisk 22.10.1, with the TCP splitting as it happened).

pub mod frame;

pub use frame::{Decoder, FrameError, Kind, Message};
