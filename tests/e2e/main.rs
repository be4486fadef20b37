//! End-to-end tests: the real `hub` binary, started by the tests on 127.0.0.1.

mod ami;
mod ami_link;
mod cli;
mod common;
mod config;
mod demo;
mod ivr_cli;
mod media;
mod pbx_cli;
mod provision;
mod serve;
mod signaling;
mod signin;
mod sip_calls;
mod sip_peers;
mod sip_tls;
mod sip_ua;
mod voicemail;
mod webapp;
