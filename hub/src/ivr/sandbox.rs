//! The sandbox every script runs in: Rhai's limits (it has none by default), no `eval`, no
//! file or process access (Rhai's standard library has none; `import` only reaches sibling
//! scripts through [`super::scripts::ImportResolver`]), `print`/`debug` to the log, and the
//! hosts `http_get`/`http_post` may reach.

use std::sync::OnceLock;
use std::time::Duration;

use rhai::packages::{Package, StandardPackage};
use rhai::{Engine, OptimizationLevel, Shared};

use crate::config::{IvrConfig, VoicemailConfig};

/// Per-call limits, from `[ivr]` (and `[voicemail] max_message` for `voicemail_deposit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations per call.
    pub max_operations: u64,
    /// Wall time per call, waiting for the caller and for services included.
    pub max_call_time: Duration,
    /// Nested script function calls.
    pub max_call_depth: usize,
    /// Longest string, in bytes.
    pub max_string_size: usize,
    /// Most array elements.
    pub max_array_size: usize,
    /// Most object map entries.
    pub max_map_size: usize,
    /// How long one `http_get` / `http_post` may take.
    pub http_timeout: Duration,
    /// Hosts `http_*` may reach (`*.example.org` for subdomains); empty: none.
    pub http_allow: Vec<String>,
    /// Played when a script fails.
    pub error_prompt: String,
    /// Longest voicemail message `voicemail_deposit` records.
    pub max_message: Duration,
}

impl Limits {
    /// The limits the configuration sets.
    pub fn new(ivr: &IvrConfig, voicemail: &VoicemailConfig) -> Self {
        Self {
            max_operations: ivr.max_operations,
            max_call_time: ivr.max_call_time,
            max_call_depth: ivr.max_call_depth,
            max_string_size: ivr.max_string_size,
            max_array_size: ivr.max_array_size,
            max_map_size: ivr.max_map_size,
            http_timeout: ivr.http_timeout,
            http_allow: ivr.http_allow.clone(),
            error_prompt: ivr.error_prompt.clone(),
            max_message: voicemail.max_message,
        }
    }

    /// Whether `url` is `http(s)://` to an allowed host; the refusal says why.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let host = if let Some(v6) = host_port.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            host_port.split(':').next().unwrap_or_default()
        }
        .to_ascii_lowercase();
        let allowed = self.http_allow.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.strip_prefix("*.") {
                Some(domain) => host.len() > domain.len() && host.ends_with(&format!(".{domain}")),
                None => host == a,
            }
        });
        if host.is_empty() || !allowed {
            return Err(format!("host {host:?} is not in [ivr] http_allow"));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&IvrConfig::default(), &VoicemailConfig::default())
    }
}

/// Rhai's standard library, built once: building it is most of `Engine::new()`'s cost.
fn standard_package() -> Shared<rhai::Module> {
    static STD: OnceLock<Shared<rhai::Module>> = OnceLock::new();
    STD.get_or_init(|| StandardPackage::new().as_shared_module()).clone()
}

/// An engine with the language restrictions and limits but no call API: for compiling and
/// as the base of each call's engine.
pub fn engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(standard_package());
    engine.disable_symbol("eval");
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_modules(16);
    engine.set_optimization_level(OptimizationLevel::Simple);
    engine.on_print(|text| tracing::info!(target: "hub::ivr::script", text, "print"));
    engine.on_debug(|text, source, pos| {
        tracing::debug!(target: "hub::ivr::script", text, file = source.unwrap_or(""), line = pos.line(), "debug")
    });
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_are_reachable() {
        let limits = Limits { http_allow: vec!["api.example.org".into(), "*.corp.test".into()], ..Limits::default() };
        assert!(limits.check_url("https://api.example.org/x?y=1").is_ok());
        assert!(limits.check_url("http://API.example.org:8080").is_ok());
        assert!(limits.check_url("https://a.b.corp.test/").is_ok());
        for bad in [
            "https://corp.test/",
            "https://evil.org/api.example.org",
            "https://api.example.org.evil.org/",
            "https://api.example.org@evil.org/",
            "file:///etc/passwd",
            "ftp://api.example.org/",
        ] {
            assert!(limits.check_url(bad).is_err(), "{bad}");
        }
        assert!(Limits::default().check_url("https://api.example.org/").is_err(), "empty list allows none");
    }

    #[test]
    fn eval_is_not_part_of_the_language() {
        let engine = engine(&Limits::default());
        assert!(engine.compile(r#"eval("1 + 1")"#).is_err());
    }
}
