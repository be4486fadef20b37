//! The hub's SIP user agent: protocol code only (RFC 3261), built on `rsipstack`.
//!
//! Layer L2 (see `lib.rs`): this module may use `model`, `config` and `files`. It never imports
//! `pbx`, `calls`, `web`, `cli`, `app` or `media`, so it can be tested with bytes and loopback
//! sockets alone and could later move into its own crate without edits.
//!
//! ```text
//!  message.rs    bytes → classified message (RFC 3261 framing, RFC 4475-proof checks) and
//!                stateless responses
//!  agent.rs      what the user agent answers outside a dialog (OPTIONS, 403, 405, 501, errors)
//!  transport.rs  UDP and TCP on one port: classify, answer, keep bad neighbours apart
//!  bridge.rs     what passed classify, to rsipstack's transactions (one channel per peer)
//!  registration.rs  registered with the registrar (digest, refresh, 423, backoff, unregister)
//!  status.rs     the state `hub sip status` reads (a JSON file the serving hub rewrites)
//! ```
//!
//! Calls (dialogs on rsipstack) and the media hand-off come next; until then the agent
//! answers INVITE with 405 (or 403 from a stranger).

pub mod agent;
pub mod bridge;
pub mod message;
pub mod registration;
pub mod status;
pub mod transport;
