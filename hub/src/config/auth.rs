//! `[auth]`: sign-in through the organisation's OpenID Connect provider, and sessions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Secret;

use super::Problem;

/// Identity provider and session settings. With no `issuer`, the hub offers a demo sign-in,
/// and only while bound to a loopback address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: Option<String>,
    /// The hub's client id at the provider.
    pub client_id: String,
    /// The hub's client secret at the provider.
    pub client_secret: Secret,
    /// Where the provider sends people back; defaults to `<web origin>/auth/callback`.
    pub redirect_url: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// How long a session lasts. Fixed at sign-in, never extended by activity.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// How long a person has to finish signing in at the provider; each attempt's `state`
    /// and `nonce` are forgotten after that.
    #[serde(with = "humantime_serde")]
    pub signin_timeout: Duration,
    /// Sign-in attempts allowed per client address and minute (burst of the same size);
    /// beyond it the hub answers 429 with `Retry-After`.
    pub signin_rate_per_minute: u32,
    /// Which claims carry what.
    pub claims: ClaimsConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: String::new(),
            client_secret: Secret::default(),
            redirect_url: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into(), "phone".into()],
            session_lifetime: Duration::from_secs(12 * 3600),
            signin_timeout: Duration::from_secs(600),
            signin_rate_per_minute: 30,
            claims: ClaimsConfig::default(),
        }
    }
}

/// Which ID token / userinfo claims give the directory fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaimsConfig {
    /// Claim with the display name.
    pub display_name: String,
    /// Claim with the e-mail address.
    pub email: String,
    /// Claim with the username.
    pub username: String,
    /// Claim with the user's extension; when absent or empty the hub assigns one from
    /// `pbx.extension_range`.
    pub extension: String,
    /// Claim with one phone number.
    pub phone_number: String,
    /// Claim with a list of phone numbers.
    pub numbers: String,
    /// Claim whose value (a string or a list) marks administrators…
    pub admin_claim: String,
    /// …when it contains this value.
    pub admin_value: String,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        Self {
            display_name: "name".into(),
            email: "email".into(),
            username: "preferred_username".into(),
            extension: "extension".into(),
            phone_number: "phone_number".into(),
            numbers: "phone_numbers".into(),
            admin_claim: "groups".into(),
            admin_value: "hub-admins".into(),
        }
    }
}

impl AuthConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if let Some(issuer) = &self.issuer {
            if !issuer.starts_with("https://") && !is_loopback_http(issuer) {
                out.push(Problem::new(
                    "auth.issuer",
                    format!("{issuer:?} must be an https:// URL (plain http only for a provider on this machine)"),
                ));
            }
            if self.client_id.is_empty() {
                out.push(Problem::new("auth.client_id", "must be set when auth.issuer is set"));
            }
            if !self.scopes.iter().any(|s| s == "openid") {
                out.push(Problem::new("auth.scopes", "must include \"openid\""));
            }
        }
        if let Some(url) = &self.redirect_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            out.push(Problem::new("auth.redirect_url", format!("{url:?} is not an http(s) URL")));
        }
        if self.session_lifetime < Duration::from_secs(1) {
            out.push(Problem::new("auth.session_lifetime", "must be at least 1s"));
        }
        if self.signin_rate_per_minute == 0 {
            out.push(Problem::new("auth.signin_rate_per_minute", "must be at least 1"));
        }
    }
}

/// `http://127.0.0.1…`, `http://localhost…` or `http://[::1]…`: a provider on this machine.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_http_is_recognised() {
        assert!(super::is_loopback_http("http://127.0.0.1:4000/oidc"));
        assert!(super::is_loopback_http("http://localhost:4000"));
        assert!(super::is_loopback_http("http://[::1]:4000"));
        assert!(!super::is_loopback_http("http://id.example.org"));
        assert!(!super::is_loopback_http("https://127.0.0.1"));
    }
}
