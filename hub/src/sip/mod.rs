//! The hub's SIP user agent: protocol code only (RFC 3261), built on `rsipstack`.
//!
//! Layer L2 (see `lib.rs`): this module may use `model`, `config` and `files`. It never imports
//! `pbx`, `calls`, `web`, `cli`, `app` or `media`, so it can be tested with bytes and loopback
//! sockets alone and could later move into its own crate without edits.
//!
//! For now it holds the message layer only: [`message::classify`] is the one function every
//! transport calls on received bytes, and [`message::error_response`] builds the stateless error
//! answer for a request the layer rejected. Transports, transactions and dialogs come later.

pub mod message;
