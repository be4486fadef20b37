//! Typed configuration, layered: defaults, then `hub.toml`, then `HUB_SECTION__KEY`
//! environment variables, then command-line flags.
//!
//! Every key has a default that serves a demo on one machine, so an empty or absent file is
//! a working config. Each module receives only its own section. Errors name where the bad
//! value came from (file and line, environment variable or flag) and the key; unknown keys
//! and unknown `HUB_*` variables are warnings, never silently ignored.

mod auth;
mod calls;
mod error;
mod ivr;
mod layers;
mod media;
mod pbx;
mod sip;
mod store;
mod url;
mod voicemail;
mod web;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use auth::{AuthConfig, ClaimsConfig};
pub use calls::CallsConfig;
pub use error::{ConfigError, Origin};
pub use ivr::IvrConfig;
pub use media::{MediaApp, MediaConfig};
pub use pbx::{AmiAuth, AmiTarget, ExtensionRange, PbxConfig};
pub use sip::{SipConfig, Switch};
pub use store::{Backend, StoreConfig};
pub use url::ConnectionUrl;
pub use voicemail::VoicemailConfig;
pub use web::{LogConfig, LogFormat, WebConfig};

/// The whole configuration of a hub.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// HTTPS listener and web app.
    pub web: WebConfig,
    /// Log format and level.
    pub log: LogConfig,
    /// Data directory and database.
    pub store: StoreConfig,
    /// Identity provider and sessions.
    pub auth: AuthConfig,
    /// Browser-to-browser calls.
    pub calls: CallsConfig,
    /// Asterisk provisioning and AMI.
    pub pbx: PbxConfig,
    /// The hub's SIP user agent.
    pub sip: SipConfig,
    /// RTP and ICE servers.
    pub media: MediaConfig,
    /// IVR scripts and routes.
    pub ivr: IvrConfig,
    /// Voicemail storage.
    pub voicemail: VoicemailConfig,
}

/// One value given by a command-line flag, applied after the file and the environment.
#[derive(Clone, Debug)]
pub struct FlagOverride {
    /// The flag as a person typed it (`--bind`), for error messages.
    pub flag: &'static str,
    /// The dotted key it sets (`web.bind`).
    pub key: &'static str,
    /// The value, typed like an environment variable's.
    pub value: String,
}

/// Where to read configuration from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// `--config PATH`: must exist when given.
    pub file: Option<PathBuf>,
    /// Environment variables to consider (all of them in production, a chosen set in tests).
    pub env: Vec<(String, String)>,
    /// Flag overrides, in order.
    pub flags: Vec<FlagOverride>,
}

impl Sources {
    /// The process environment and the given file and flags.
    pub fn from_process(file: Option<PathBuf>, flags: Vec<FlagOverride>) -> Self {
        Self { file, env: std::env::vars().collect(), flags }
    }
}

/// A loaded configuration and the warnings found while loading it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// Unknown keys and variables, one readable line each.
    pub warnings: Vec<String>,
}

/// The file read when no `--config` is given, if it exists in the working directory.
pub const DEFAULT_FILE: &str = "hub.toml";

impl Config {
    /// Loads and validates the configuration from `sources`.
    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        layers::load(sources)
    }

    /// The effective configuration as TOML, secrets redacted: what `hub config show` prints.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Every semantic problem with the values (not their types).
    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.web.check(&mut out);
        self.store.check(&mut out);
        self.auth.check(&mut out);
        self.calls.check(&mut out);
        self.pbx.check(&mut out);
        self.sip.check(&mut out);
        self.media.check(&mut out);
        self.ivr.check(&mut out);
        self.voicemail.check(&mut out);
        if self.auth.issuer.is_some()
            && self.auth.redirect_url.is_none()
            && self.web.public_url.is_none()
            && self.web.bind.ip().is_unspecified()
        {
            out.push(Problem::new(
                "web.public_url",
                format!(
                    "web.bind {} listens on every address, so the hub cannot tell the identity provider where \
                     to send people back: set web.public_url (or auth.redirect_url)",
                    self.web.bind
                ),
            ));
        }
        if self.auth.issuer.is_none() && !self.web.bind.ip().is_loopback() {
            out.push(Problem::new(
                "auth.issuer",
                format!(
                    "no identity provider is configured and web.bind {} is not a loopback address: \
                     demo sign-in is only offered on loopback; set auth.issuer or bind to 127.0.0.1",
                    self.web.bind
                ),
            ));
        }
        out
    }

    /// Where generated Asterisk config goes.
    pub fn pbx_config_dir(&self) -> PathBuf {
        self.pbx.config_dir.clone().unwrap_or_else(|| self.store.data_dir.join("asterisk"))
    }
}

/// A value that deserialised but is not acceptable, with the key it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    key: String,
    message: String,
}

impl Problem {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self { key: key.to_string(), message: message.into() }
    }
}

#[cfg(test)]
mod tests;
