//! The hub: a self-hosted backup telephony hub.
//!
//! # Layout
//!
//! Lower layers never import higher ones; modules on one row don't import each other unless
//! noted.
//!
//! ```text
//! L0  model, config, files ids, records, typed config (config uses model's value types);
//!     pem, periodic        atomic file writes; PEM certificates and keys; housekeeping
//!                          loops (the purgers of sessions and the voicemail trash)
//! L1  store                storage role traits; SQLite and MongoDB backends
//! L2  sip                  SIP user agent on rsipstack: transports, registration, calls,
//!                          SDP, and the media port its calls hand audio to; uses only L0
//! L2  directory, auth, pbx users, extensions, numbers; sign-in and sessions (auth uses directory);
//!                          Asterisk (AMI; generated config: templates, render, write;
//!                          provisioning; SIP presence from AMI events)
//! L3  calls                browser calls: state machine, controller, signaling protocol;
//!                          the HubNumbers trait for numbers the hub answers itself
//! L3  media                media engine and apps behind sip's media port, and the WebRTC
//!                          peer that answers browsers dialling hub numbers; uses sip
//! L4  ivr                  Rhai IVR scripts in a sandbox over blocking call/service traits;
//!                          above media and calls, below web and cli
//! L4  voicemail            mailboxes: browser messages and greetings on disk, the trash and
//!                          its purge, unread counts to the owner's tabs (uses calls; never ivr)
//! L5  web, cli             thin adapters (HTTPS + JSON; the `hub` command line)
//! L6  app                  composition root: the only place that picks concrete backends;
//!                          wires calls' HubNumbers to media's WebRTC apps
//! ```

pub mod app;
pub mod auth;
pub mod calls;
pub mod cli;
pub mod config;
pub mod directory;
pub mod files;
pub mod ivr;
pub mod media;
pub mod model;
pub mod pbx;
pub mod pem;
pub mod periodic;
pub mod sip;
pub mod store;
pub mod voicemail;
pub mod web;
