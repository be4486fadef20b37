//! `[pbx]`: the Asterisk the hub provisions and watches over AMI.

use std::fmt;
use std::path::PathBuf;

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
    }
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
    fn ranges_parse() {
        let r: ExtensionRange = "2000-2099".parse().unwrap();
        assert!(r.contains(&Extension::new("2050").unwrap()));
        assert!(!r.contains(&Extension::new("2100").unwrap()));
        assert!("2099-2000".parse::<ExtensionRange>().is_err());
        assert!("abc".parse::<ExtensionRange>().is_err());
    }
}
