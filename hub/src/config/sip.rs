//! `[sip]`: the hub's own SIP user agent (the IVR and voicemail as Asterisk sees them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Secret;

use super::Problem;

/// Listening addresses and registration of the hub's SIP user agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SipConfig {
    /// Run the SIP user agent: `true`, `false`, or `"auto"` (when `[pbx] ami_url` is set).
    pub enabled: Switch,
    /// UDP and TCP listening address.
    pub listen: SocketAddr,
    /// SIP over TLS (RFC 3261 §26.2): the listening address, used when `tls_cert` and
    /// `tls_key` are set.
    pub tls_listen: SocketAddr,
    /// PEM certificate chain for SIP over TLS; with `tls_key`, the user agent also listens on
    /// `tls_listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
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
    /// Concurrent calls accepted; beyond it new INVITEs get `486 Busy Here`.
    pub max_calls: u32,
    /// How long a call rings (`180 Ringing`) before the hub answers; `0s`: answer at once.
    #[serde(with = "humantime_serde")]
    pub ring: Duration,
    /// A call whose caller sends no RTP for this long is hung up (not while on hold);
    /// `0s`: never.
    #[serde(with = "humantime_serde")]
    pub rtp_timeout: Duration,
    /// When the hub's scheduling falls this far behind (three times in a row), new calls get
    /// `503` with `Retry-After: 5` until it has caught up for 2 s; `0s`: never shed.
    #[serde(with = "humantime_serde")]
    pub overload_lag: Duration,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            enabled: Switch::Auto,
            listen: SocketAddr::from(([127, 0, 0, 1], 5070)),
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 5071)),
            tls_cert: None,
            tls_key: None,
            registrar: None,
            username: "hub".into(),
            password: Secret::default(),
            register_expiry: Duration::from_secs(300),
            allowed_peers: vec!["127.0.0.1".into(), "::1".into()],
            max_calls: 5000,
            ring: Duration::ZERO,
            rtp_timeout: Duration::from_secs(60),
            overload_lag: Duration::from_millis(50),
        }
    }
}

/// On, off, or decided by the rest of the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Switch {
    /// Decided by the rest of the configuration.
    #[default]
    Auto,
    /// On.
    On,
    /// Off.
    Off,
}

impl Switch {
    /// `On`/`Off` as given, `Auto` as `auto`.
    pub fn resolve(self, auto: bool) -> bool {
        match self {
            Self::Auto => auto,
            Self::On => true,
            Self::Off => false,
        }
    }
}

impl Serialize for Switch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::On => s.serialize_bool(true),
            Self::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Switch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Switch, E> {
                Ok(if v { Switch::On } else { Switch::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Switch, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "auto" => Ok(Switch::Auto),
                    "true" | "yes" | "on" | "1" => Ok(Switch::On),
                    "false" | "no" | "off" | "0" => Ok(Switch::Off),
                    _ => Err(E::custom(format!("expected true, false or \"auto\", got {v:?}"))),
                }
            }
        }
        d.deserialize_any(V)
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
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                out.push(Problem::new("sip.tls_key", "tls_cert is set but tls_key is not: give both or neither"))
            }
            (None, Some(_)) => {
                out.push(Problem::new("sip.tls_cert", "tls_key is set but tls_cert is not: give both or neither"))
            }
            _ => {}
        }
        if self.register_expiry < Duration::from_secs(60) {
            out.push(Problem::new("sip.register_expiry", "must be at least 60s"));
        }
        if self.max_calls == 0 {
            out.push(Problem::new("sip.max_calls", "must be at least 1"));
        }
        if self.ring > Duration::from_secs(60) {
            out.push(Problem::new("sip.ring", "must be at most 60s"));
        }
        if !self.overload_lag.is_zero() && self.overload_lag < Duration::from_millis(20) {
            out.push(Problem::new("sip.overload_lag", "must be 0s (off) or at least 20ms"));
        }
        if !self.rtp_timeout.is_zero() && self.rtp_timeout < Duration::from_secs(1) {
            out.push(Problem::new("sip.rtp_timeout", "must be 0s (off) or at least 1s"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reads_booleans_and_words() {
        let parse = |t: &str| toml::from_str::<SipConfig>(t).map(|c| c.enabled);
        assert_eq!(parse("enabled = true").unwrap(), Switch::On);
        assert_eq!(parse("enabled = false").unwrap(), Switch::Off);
        assert_eq!(parse("enabled = \"auto\"").unwrap(), Switch::Auto);
        assert_eq!(parse("enabled = \"yes\"").unwrap(), Switch::On);
        assert_eq!(parse("").unwrap(), Switch::Auto);
        assert!(parse("enabled = \"sometimes\"").unwrap_err().to_string().contains("auto"));
        assert!(Switch::Auto.resolve(true) && !Switch::Auto.resolve(false) && !Switch::Off.resolve(true));
    }
}
