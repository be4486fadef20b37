//! `[web]`: the HTTPS listener and the pages it serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Problem;

/// Where and how the hub serves HTTPS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    /// Address to listen on. A loopback address is the only one allowed without an identity
    /// provider (demo sign-in).
    pub bind: SocketAddr,
    /// The URL people type, when the hub is behind a proxy or a DNS name (`https://hub.example.org`).
    /// Used for same-origin checks and redirect URLs; derived from `bind` when absent.
    pub public_url: Option<String>,
    /// PEM certificate chain. With neither this nor `tls_key`, a self-signed certificate for
    /// localhost is generated in the data directory on first start and reused afterwards.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Directory of the browser app served at `/`.
    pub webapp_dir: PathBuf,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            webapp_dir: PathBuf::from("webapp"),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl WebConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                out.push(Problem::new("web.tls_key", "tls_cert is set but tls_key is not: give both or neither"))
            }
            (None, Some(_)) => {
                out.push(Problem::new("web.tls_cert", "tls_key is set but tls_cert is not: give both or neither"))
            }
            _ => {}
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            out.push(Problem::new("web.public_url", format!("{url:?} is not an http(s) URL")));
        }
        if self.shutdown_grace > Duration::from_secs(60) {
            out.push(Problem::new("web.shutdown_grace", "must be at most 60s"));
        }
    }

    /// The origin browsers use to reach the hub (`https://host:port`), for same-origin
    /// checks and redirect URLs: `public_url` when set, else the address actually bound.
    pub fn origin(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => {
                let url = url.trim_end_matches('/');
                let after_scheme = url.find("://").map_or(0, |i| i + 3);
                match url[after_scheme..].find('/') {
                    Some(i) => url[..after_scheme + i].to_string(),
                    None => url.to_string(),
                }
            }
            None => format!("https://{bound}"),
        }
    }
}

/// `[log]`: how the hub writes its logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `human` (default) for a terminal, `json` for a log collector.
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `hub=debug,tower_http=info`, …
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}
