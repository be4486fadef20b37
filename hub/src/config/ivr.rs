//! `[ivr]`: Rhai scripts, the numbers that reach them and the sandbox they run in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Problem;

/// Where IVR scripts live, which dialled numbers run them and the sandbox's limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IvrConfig {
    /// Directory of `*.rhai` scripts.
    pub scripts_dir: PathBuf,
    /// Dialled number → script file (relative to `scripts_dir`).
    pub routes: BTreeMap<String, String>,
    /// Rhai operations a script may run per call (Rhai itself has no limit).
    pub max_operations: u64,
    /// Wall time a script may run per call, waiting for the caller included.
    #[serde(with = "humantime_serde")]
    pub max_call_time: Duration,
    /// Nested script function calls (stops runaway recursion before the thread's stack does).
    pub max_call_depth: usize,
    /// Longest string a script may build, in bytes.
    pub max_string_size: usize,
    /// Most elements in one array.
    pub max_array_size: usize,
    /// Most entries in one object map.
    pub max_map_size: usize,
    /// How long `http_get` / `http_post` wait for an answer.
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
    /// Hosts scripts may reach with `http_get` / `http_post` (`*.example.org` for subdomains);
    /// empty: none.
    pub http_allow: Vec<String>,
    /// Prompt the caller hears when a script fails, before the hub hangs up.
    pub error_prompt: String,
    /// The script for unanswered calls: Asterisk's dial plan sends them to the hub as
    /// `[pbx] voicemail_prefix` + the extension, and this script takes the message (the
    /// extension reaches it as the `X-Mailbox` header).
    pub voicemail_script: String,
}

impl Default for IvrConfig {
    fn default() -> Self {
        Self {
            scripts_dir: PathBuf::from("ivr-scripts"),
            routes: BTreeMap::from([("800".to_string(), "main_menu.rhai".to_string())]),
            max_operations: 1_000_000,
            max_call_time: Duration::from_secs(3600),
            max_call_depth: 32,
            max_string_size: 100_000,
            max_array_size: 10_000,
            max_map_size: 10_000,
            http_timeout: Duration::from_secs(5),
            http_allow: Vec::new(),
            error_prompt: "error.wav".to_string(),
            voicemail_script: "voicemail.rhai".to_string(),
        }
    }
}

impl IvrConfig {
    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        for (number, script) in &self.routes {
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
                out.push(Problem::new(&format!("ivr.routes.{number}"), "a dialled number has digits, * and # only"));
            }
            if !script.ends_with(".rhai") || script.contains("..") {
                out.push(Problem::new(
                    &format!("ivr.routes.{number}"),
                    format!("{script:?} must name a .rhai file inside scripts_dir"),
                ));
            }
        }
        if !self.voicemail_script.ends_with(".rhai") || self.voicemail_script.contains("..") {
            out.push(Problem::new(
                "ivr.voicemail_script",
                format!("{:?} must name a .rhai file inside scripts_dir", self.voicemail_script),
            ));
        }
        for (key, value) in [
            ("ivr.max_operations", self.max_operations),
            ("ivr.max_call_depth", self.max_call_depth as u64),
            ("ivr.max_string_size", self.max_string_size as u64),
            ("ivr.max_array_size", self.max_array_size as u64),
            ("ivr.max_map_size", self.max_map_size as u64),
        ] {
            if value == 0 {
                out.push(Problem::new(key, "must be at least 1"));
            }
        }
        if self.max_call_depth > 256 {
            out.push(Problem::new(
                "ivr.max_call_depth",
                "at most 256 (deeper recursion risks the call thread's stack)",
            ));
        }
        if self.max_call_time < Duration::from_secs(1) {
            out.push(Problem::new("ivr.max_call_time", "must be at least 1s"));
        }
        if self.http_timeout < Duration::from_millis(100) {
            out.push(Problem::new("ivr.http_timeout", "must be at least 100ms"));
        }
        for host in &self.http_allow {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                out.push(Problem::new(
                    "ivr.http_allow",
                    format!("{host:?} is not a host name (e.g. api.example.org or *.example.org)"),
                ));
            }
        }
        if self.error_prompt.is_empty() || self.error_prompt.contains("..") || self.error_prompt.starts_with('/') {
            out.push(Problem::new("ivr.error_prompt", "must name a prompt file inside the prompts directory"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &IvrConfig) -> Vec<String> {
        let mut out = Vec::new();
        c.check(&mut out);
        out.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn defaults_pass_and_bad_sandbox_values_are_named() {
        assert!(keys(&IvrConfig::default()).is_empty());
        let c = IvrConfig {
            max_call_depth: 0,
            max_string_size: 0,
            http_timeout: Duration::ZERO,
            http_allow: vec!["ok.example.org".into(), "*.example.org".into(), "http://x".into()],
            error_prompt: "../secret.wav".into(),
            ..IvrConfig::default()
        };
        assert_eq!(
            keys(&c),
            ["ivr.max_call_depth", "ivr.max_string_size", "ivr.http_timeout", "ivr.http_allow", "ivr.error_prompt"]
        );
    }
}
