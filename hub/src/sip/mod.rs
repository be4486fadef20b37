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
//!  nonce_reuse.rs  REGISTER refreshes answer the last challenge ahead of time (nonce count+1)
//!  status.rs     the state `hub sip status` reads (a JSON file the serving hub rewrites)
//!  sdp.rs        offer → answer (codec choice in the caller's order, hold, 488)
//!  media_port.rs the interface to whatever handles a call's audio (implemented above `sip`)
//!  calls.rs      server transactions → admission, answer, dialog routing
//!  call.rs       one call's life: ring, answer, re-INVITE, INFO, REFER/NOTIFY, timers, end
//!  call_table.rs the live calls: limit, listing, hang up / transfer from outside
//!  overload.rs   scheduling lag → new calls get 503 until the hub catches up
//!  dtmf_info.rs  digits in SIP INFO bodies
//!  control.rs    the local socket `hub sip calls|hangup|transfer` talk to
//! ```

pub mod agent;
pub mod bridge;
pub mod call;
pub mod call_table;
pub mod calls;
pub mod control;
pub mod dtmf_info;
pub mod media_port;
pub mod message;
pub mod nonce_reuse;
pub mod overload;
pub mod registration;
pub mod sdp;
pub mod status;
pub mod transport;
