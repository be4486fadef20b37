//! `[pbx]`: the Asterisk the hub provisions and watches over AMI.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Extension;

use super::{ConnectionUrl, Problem};

/// Asterisk connection and numbering plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PbxConfig {
    /// `ami://user:secret@host:port`. Absent: no Asterisk; browser calls still work.
    pub ami_url: Option<ConnectionUrl>,
    /// Where generated Asterisk config is written; default `<data_dir>/asterisk`.
    pub config_dir: Option<PathBuf>,
    /// Extensions handed out to users who get none from the identity provider.
    pub extension_range: ExtensionRange,
    /// Contacts per user (browsers and desk phones registered at once).
    pub max_contacts: u32,
    /// AMI login: `md5` (challenge; the secret never crosses the wire) or `plain`.
    pub ami_auth: AmiAuth,
    /// A directory whose `*.hbs` files replace the built-in Asterisk config templates.
    pub templates_dir: Option<PathBuf>,
    /// Asterisk's own config directory, where `hub pbx init` looks for the `#include`s.
    pub asterisk_config_dir: PathBuf,
    /// Dialplan context of the users' endpoints.
    pub context: String,
    /// The PJSIP endpoint name of the hub's own SIP user agent (IVR and voicemail); it
    /// authenticates with `[sip] username`/`password`.
    pub trunk_endpoint: String,
    /// A PJSIP transport for the users' endpoints; absent: Asterisk picks one.
    pub transport: Option<String>,
    /// The address Asterisk offers in its SDP, on hosts with several addresses.
    pub media_address: Option<String>,
    /// A call whose RTP stops for this long is hung up (a browser closed without BYE).
    #[serde(with = "humantime_serde")]
    pub rtp_timeout: Duration,
    /// How long a user's devices ring before the call goes to voicemail.
    #[serde(with = "humantime_serde")]
    pub ring_time: Duration,
    /// The number the hub's user agent receives for a user's voicemail: prefix + extension.
    pub voicemail_prefix: String,
    /// PJSIP endpoint of the PSTN trunk; absent: no outbound PSTN calls.
    pub outbound_trunk: Option<String>,
    /// Dialplan patterns (`_0[1-9]XXXXXXXX`) users may dial out through `outbound_trunk`;
    /// everything else is refused (toll-fraud guard).
    pub outbound_patterns: Vec<String>,
    /// What browsers register to (`wss://pbx.example.org:8089/ws`); default: the AMI host on
    /// port 8089.
    pub wss_url: Option<String>,
    /// The SIP realm Asterisk challenges with.
    pub realm: String,
    /// How often each user's SIP secret is replaced.
    #[serde(with = "humantime_serde")]
    pub rotate_every: Duration,
    /// Changes are gathered until none arrived for this long (one reload for many changes)…
    #[serde(with = "humantime_serde")]
    pub coalesce_quiet: Duration,
    /// …but no change waits longer than this.
    #[serde(with = "humantime_serde")]
    pub coalesce_max: Duration,
    /// How often the running hub re-checks the store for changes made elsewhere (the CLI).
    #[serde(with = "humantime_serde")]
    pub resync_every: Duration,
    /// Longest wait between attempts while Asterisk is unreachable.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

/// How the hub logs in to AMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmiAuth {
    /// `Challenge` + `Key: md5(challenge + secret)`.
    Md5,
    /// `Secret:` in the `Login` action.
    Plain,
}

impl Default for PbxConfig {
    fn default() -> Self {
        Self {
            ami_url: None,
            config_dir: None,
            extension_range: ExtensionRange { first: 1000, last: 1999 },
            max_contacts: 10,
            ami_auth: AmiAuth::Md5,
            templates_dir: None,
            asterisk_config_dir: PathBuf::from("/etc/asterisk"),
            context: "hub-users".into(),
            trunk_endpoint: "hub".into(),
            transport: None,
            media_address: None,
            rtp_timeout: Duration::from_secs(30),
            ring_time: Duration::from_secs(20),
            voicemail_prefix: "voicemail-".into(),
            outbound_trunk: None,
            outbound_patterns: Vec::new(),
            wss_url: None,
            realm: "asterisk".into(),
            rotate_every: Duration::from_secs(24 * 3600),
            coalesce_quiet: Duration::from_millis(200),
            coalesce_max: Duration::from_secs(2),
            resync_every: Duration::from_secs(30),
            retry_max: Duration::from_secs(30),
        }
    }
}

impl PbxConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if let Some(url) = &self.ami_url
            && let Err(e) = AmiTarget::parse(url.expose())
        {
            out.push(Problem::new("pbx.ami_url", e));
        }
        if self.max_contacts == 0 || self.max_contacts > 100 {
            out.push(Problem::new("pbx.max_contacts", "must be between 1 and 100"));
        }
        let names = [
            ("pbx.context", Some(&self.context)),
            ("pbx.trunk_endpoint", Some(&self.trunk_endpoint)),
            ("pbx.transport", self.transport.as_ref()),
            ("pbx.outbound_trunk", self.outbound_trunk.as_ref()),
        ];
        for (key, value) in names {
            if let Some(v) = value
                && !is_config_name(v)
            {
                out.push(Problem::new(key, format!("{v:?} may only have letters, digits, '-', '_' and '.'")));
            }
        }
        if !self.voicemail_prefix.is_empty() && !is_config_name(&self.voicemail_prefix) {
            out.push(Problem::new("pbx.voicemail_prefix", "may only have letters, digits, '-', '_' and '.'"));
        }
        if let Some(a) = &self.media_address
            && a.parse::<std::net::IpAddr>().is_err()
        {
            out.push(Problem::new("pbx.media_address", format!("{a:?} is not an IP address")));
        }
        for pattern in &self.outbound_patterns {
            if let Err(e) = check_dial_pattern(pattern) {
                out.push(Problem::new("pbx.outbound_patterns", e));
            }
        }
        if !self.outbound_patterns.is_empty() && self.outbound_trunk.is_none() {
            out.push(Problem::new("pbx.outbound_patterns", "needs pbx.outbound_trunk"));
        }
        if let Some(u) = &self.wss_url
            && !(u.starts_with("wss://") || u.starts_with("ws://"))
        {
            out.push(Problem::new("pbx.wss_url", format!("{u:?} must start with wss://")));
        }
        if self.realm.is_empty() || !is_config_name(&self.realm) {
            out.push(Problem::new("pbx.realm", "may only have letters, digits, '-', '_' and '.'"));
        }
        if self.rotate_every < Duration::from_secs(60) {
            out.push(Problem::new("pbx.rotate_every", "must be at least 1m"));
        }
        if self.coalesce_max < self.coalesce_quiet {
            out.push(Problem::new("pbx.coalesce_max", "must not be shorter than pbx.coalesce_quiet"));
        }
        if self.ring_time < Duration::from_secs(1) || self.ring_time > Duration::from_secs(600) {
            out.push(Problem::new("pbx.ring_time", "must be between 1s and 10m"));
        }
    }

    /// The URL browsers register to: `wss_url`, else the AMI host on Asterisk's default TLS
    /// HTTP port.
    pub fn browser_wss_url(&self) -> Option<String> {
        if let Some(u) = &self.wss_url {
            return Some(u.clone());
        }
        let target = AmiTarget::parse(self.ami_url.as_ref()?.expose()).ok()?;
        let host = if target.host.contains(':') { format!("[{}]", target.host) } else { target.host };
        Some(format!("wss://{host}:8089/ws"))
    }
}

/// Names that reach Asterisk config as identifiers (contexts, endpoints, transports).
pub fn is_config_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An Asterisk extension pattern the dialplan may route out: `_` then digits and the pattern
/// letters (`X`, `Z`, `N`, `[…]`, `.`, `!`); nothing that could end the line or the pattern.
pub fn check_dial_pattern(p: &str) -> Result<(), String> {
    let body = p.strip_prefix('_').ok_or_else(|| format!("{p:?} must start with '_'"))?;
    if body.is_empty() || body.len() > 40 {
        return Err(format!("{p:?} must have 1 to 40 pattern characters"));
    }
    if let Some(c) =
        body.chars().find(|c| !matches!(c, '0'..='9' | 'X' | 'Z' | 'N' | '.' | '!' | '[' | ']' | '-' | '*' | '#' | '+'))
    {
        return Err(format!("{p:?}: {c:?} is not allowed in a dial pattern"));
    }
    if body.starts_with(['.', '!']) {
        return Err(format!("{p:?} would match every number: start it with at least one digit or X/Z/N"));
    }
    Ok(())
}

/// Where and as whom to log in to AMI, parsed from `ami://user:secret@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmiTarget {
    /// Manager username.
    pub username: String,
    /// Manager secret.
    pub secret: crate::model::Secret,
    /// Host name or address.
    pub host: String,
    /// TCP port (5038 when absent).
    pub port: u16,
}

impl AmiTarget {
    /// Parses an `ami://` URL; the error says what is wrong without repeating the secret.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("ami://").ok_or("must start with ami://")?;
        let (userinfo, hostport) = rest.rsplit_once('@').ok_or("must be ami://user:secret@host:port")?;
        let (username, secret) = userinfo.split_once(':').ok_or("must be ami://user:secret@host:port")?;
        if username.is_empty() {
            return Err("the AMI username is empty".into());
        }
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("port {p:?} is not a number"))?),
            None => (hostport, 5038),
        };
        if host.is_empty() {
            return Err("the AMI host is empty".into());
        }
        Ok(Self {
            username: username.to_string(),
            secret: crate::model::Secret::new(secret),
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
        })
    }
}

/// An inclusive range of extensions, written `"1000-1999"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionRange {
    /// First extension handed out.
    pub first: u32,
    /// Last extension handed out.
    pub last: u32,
}

impl ExtensionRange {
    /// Whether `ext` falls inside the range.
    pub fn contains(&self, ext: &Extension) -> bool {
        (self.first..=self.last).contains(&ext.value())
    }
}

impl fmt::Display for ExtensionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for ExtensionRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| format!("{s:?} is not a range like \"1000-1999\""))?;
        let first = Extension::new(a.trim()).map_err(|e| e.to_string())?;
        let last = Extension::new(b.trim()).map_err(|e| e.to_string())?;
        if first.value() > last.value() {
            return Err(format!("{s:?}: the first extension is after the last"));
        }
        Ok(Self { first: first.value(), last: last.value() })
    }
}

impl Serialize for ExtensionRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ExtensionRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ami_urls_parse() {
        let t = AmiTarget::parse("ami://admin:s3cr:et@10.0.0.5:5039").unwrap();
        assert_eq!(
            (t.username.as_str(), t.secret.expose(), t.host.as_str(), t.port),
            ("admin", "s3cr:et", "10.0.0.5", 5039)
        );
        assert_eq!(AmiTarget::parse("ami://a:b@pbx").unwrap().port, 5038);
        assert!(AmiTarget::parse("http://a:b@pbx").is_err());
        assert!(AmiTarget::parse("ami://pbx:5038").is_err());
        assert!(AmiTarget::parse("ami://a:b@pbx:99999").is_err());
    }

    #[test]
    fn dial_patterns_are_checked() {
        assert!(check_dial_pattern("_0[1-9]XXXXXXXX").is_ok());
        assert!(check_dial_pattern("_00X.").is_ok());
        assert!(check_dial_pattern("0123").is_err());
        assert!(check_dial_pattern("_.").is_err());
        assert!(check_dial_pattern("_X.,1,System(rm)").is_err());
        assert!(check_dial_pattern("_X\n[evil]").is_err());
    }

    #[test]
    fn browser_url_defaults_to_the_ami_host() {
        let mut c = PbxConfig { ami_url: Some(ConnectionUrl::new("ami://a:b@10.0.0.5:5038")), ..Default::default() };
        assert_eq!(c.browser_wss_url().as_deref(), Some("wss://10.0.0.5:8089/ws"));
        c.wss_url = Some("wss://pbx.example.org/ws".into());
        assert_eq!(c.browser_wss_url().as_deref(), Some("wss://pbx.example.org/ws"));
    }

    #[test]
    fn ranges_parse() {
        let r: ExtensionRange = "2000-2099".parse().unwrap();
        assert!(r.contains(&Extension::new("2050").unwrap()));
        assert!(!r.contains(&Extension::new("2100").unwrap()));
        assert!("2099-2000".parse::<ExtensionRange>().is_err());
        assert!("abc".parse::<ExtensionRange>().is_err());
    }
}
