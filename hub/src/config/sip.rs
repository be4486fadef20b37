//! `[sip]`: the hub's own SIP user agent (the IVR and voicemail as Asterisk sees them).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Secret;

use super::Problem;

/// Listening addresses and registration of the hub's SIP user agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SipConfig {
    /// UDP and TCP listening address.
    pub listen: SocketAddr,
    /// Registrar to register with (`sip:asterisk.example.org:5060`); absent: do not register.
    pub registrar: Option<String>,
    /// SIP auth username at the registrar.
    pub username: String,
    /// SIP auth password at the registrar.
    pub password: Secret,
    /// Requested registration lifetime.
    #[serde(with = "humantime_serde")]
    pub register_expiry: Duration,
    /// Source addresses allowed to send INVITEs (the Asterisk servers).
    pub allowed_peers: Vec<String>,
    /// Concurrent calls accepted; beyond it new INVITEs are refused.
    pub max_calls: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5070)),
            registrar: None,
            username: "hub".into(),
            password: Secret::default(),
            register_expiry: Duration::from_secs(300),
            allowed_peers: vec!["127.0.0.1".into(), "::1".into()],
            max_calls: 5000,
        }
    }
}

impl SipConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if let Some(r) = &self.registrar
            && !(r.starts_with("sip:") || r.starts_with("sips:"))
        {
            out.push(Problem::new("sip.registrar", format!("{r:?} is not a sip: URI")));
        }
        for peer in &self.allowed_peers {
            if peer.parse::<std::net::IpAddr>().is_err() {
                out.push(Problem::new("sip.allowed_peers", format!("{peer:?} is not an IP address")));
            }
        }
        if self.register_expiry < Duration::from_secs(60) {
            out.push(Problem::new("sip.register_expiry", "must be at least 60s"));
        }
        if self.max_calls == 0 {
            out.push(Problem::new("sip.max_calls", "must be at least 1"));
        }
    }
}
