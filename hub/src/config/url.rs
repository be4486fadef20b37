//! Connection strings that may carry a password.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A URL such as `mongodb://user:pass@host/` or `ami://user:secret@host:5038`. It prints and
/// serialises with the password replaced by `[redacted]`, so `hub config show` and log lines
/// can include it safely; [`ConnectionUrl::expose`] gives the real value to the one client
/// that connects with it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the client that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{scheme}://{user}:{}@{host}{path}", crate::model::REDACTED)
                }
                None => self.0.clone(),
            },
            None => self.0.clone(),
        }
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionUrl({})", self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_hidden() {
        let u = ConnectionUrl::new("ami://admin:s3cret@pbx:5038");
        assert_eq!(u.to_string(), "ami://admin:[redacted]@pbx:5038");
        assert_eq!(format!("{u:?}"), "ConnectionUrl(ami://admin:[redacted]@pbx:5038)");
        let m = ConnectionUrl::new("mongodb://hub:p%40ss@db1,db2/?replicaSet=rs0");
        assert_eq!(m.to_string(), "mongodb://hub:[redacted]@db1,db2/?replicaSet=rs0");
        assert_eq!(ConnectionUrl::new("mongodb://db/").to_string(), "mongodb://db/");
        assert_eq!(m.expose(), "mongodb://hub:p%40ss@db1,db2/?replicaSet=rs0");
    }
}
