//! `[ivr]`: Rhai scripts and the numbers that reach them.

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
    /// Rhai operations a script may run per call.
    pub max_operations: u64,
    /// Wall time a script may run per call.
    #[serde(with = "humantime_serde")]
    pub max_call_time: Duration,
}

impl Default for IvrConfig {
    fn default() -> Self {
        Self {
            scripts_dir: PathBuf::from("ivr-scripts"),
            routes: BTreeMap::from([("800".to_string(), "main_menu.rhai".to_string())]),
            max_operations: 1_000_000,
            max_call_time: Duration::from_secs(3600),
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
        if self.max_operations == 0 {
            out.push(Problem::new("ivr.max_operations", "must be at least 1"));
        }
    }
}
