//! `[media]`: RTP ports and the ICE servers handed to browsers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Secret;

use super::Problem;

/// Media settings shared by the RTP engine and browser calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// Lowest UDP port for RTP.
    pub rtp_port_min: u16,
    /// Highest UDP port for RTP.
    pub rtp_port_max: u16,
    /// Packet time in milliseconds.
    pub ptime_ms: u32,
    /// STUN server URLs given to browsers (`stun:stun.example.org:3478`).
    pub stun_urls: Vec<String>,
    /// TURN server URLs given to browsers (`turn:turn.example.org:3478?transport=udp`).
    pub turn_urls: Vec<String>,
    /// The coturn `static-auth-secret` used to mint short-lived TURN credentials.
    pub turn_secret: Secret,
    /// Lifetime of a TURN credential.
    #[serde(with = "humantime_serde")]
    pub turn_ttl: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            ptime_ms: 20,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: Secret::default(),
            turn_ttl: Duration::from_secs(3600),
        }
    }
}

impl MediaConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if self.rtp_port_min >= self.rtp_port_max {
            out.push(Problem::new("media.rtp_port_max", "must be above rtp_port_min"));
        }
        if self.rtp_port_min < 1024 {
            out.push(Problem::new("media.rtp_port_min", "must be 1024 or above"));
        }
        if ![10, 20, 30, 40, 60].contains(&self.ptime_ms) {
            out.push(Problem::new("media.ptime_ms", "must be 10, 20, 30, 40 or 60"));
        }
        for url in &self.stun_urls {
            if !url.starts_with("stun:") && !url.starts_with("stuns:") {
                out.push(Problem::new("media.stun_urls", format!("{url:?} is not a stun: URL")));
            }
        }
        for url in &self.turn_urls {
            if !url.starts_with("turn:") && !url.starts_with("turns:") {
                out.push(Problem::new("media.turn_urls", format!("{url:?} is not a turn: URL")));
            }
        }
        if !self.turn_urls.is_empty() && self.turn_secret.is_empty() {
            out.push(Problem::new("media.turn_secret", "must be set when turn_urls are given"));
        }
        if self.turn_ttl < Duration::from_secs(60) {
            out.push(Problem::new("media.turn_ttl", "must be at least 60s"));
        }
    }
}
