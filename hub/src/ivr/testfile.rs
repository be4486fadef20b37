//! `hub ivr test`: TOML files naming a script, what the caller does, what services answer
//! and the transcript expected (whole, or lines that must appear in order). A mismatch is
//! reported as a unified diff of expected against actual.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::io::CallerInfo;
use super::sandbox::Limits;
use super::scripts::Scripts;
use super::simulate::{self, Fixture, FixturePerson, SimError, Simulation};

/// Why a test file could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// Not readable.
    #[error("{file}: cannot read: {message}")]
    Read {
        /// The test file.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// Not a valid test file.
    #[error("{file}: {message}")]
    Invalid {
        /// The test file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The simulation could not be set up.
    #[error("{file}: {source}")]
    Simulation {
        /// The test file.
        file: String,
        /// Why.
        source: SimError,
    },
}

/// One test, as written in `ivr-scripts/tests/*.toml` (format in docs/ivr.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestFile {
    /// Script to run, relative to the scripts directory.
    pub script: String,
    /// Caller input, as for `hub ivr simulate --digits`.
    pub digits: String,
    /// The caller's number.
    pub caller: String,
    /// The caller's display name.
    pub caller_name: String,
    /// The number dialled.
    pub dialled: String,
    /// SIP headers of the call (`X-Mailbox = "1002"`).
    pub headers: BTreeMap<String, String>,
    /// `"GET url"` / `"POST url"` → JSON answer (`{ hang = true }` never answers).
    pub http: BTreeMap<String, serde_json::Value>,
    /// The directory.
    pub directory: Vec<FixturePerson>,
    /// Prompts that do not exist.
    pub missing_prompts: Vec<String>,
    /// Hosts allowed besides `[ivr] http_allow`.
    pub http_allow: Vec<String>,
    /// The whole transcript, line by line.
    pub expect: Option<Vec<String>>,
    /// Lines that must appear in this order (others may come between).
    pub expect_in_order: Option<Vec<String>>,
}

/// What one test did.
#[derive(Clone, Debug)]
pub struct TestReport {
    /// The test file.
    pub file: String,
    /// Whether the transcript matched.
    pub passed: bool,
    /// The transcript.
    pub transcript: Vec<String>,
    /// When failed: what did not match and the unified diff (expected → actual).
    pub diff: Option<String>,
}

/// Reads and runs one test file.
pub fn run(scripts: &Scripts, path: &Path, limits: &Limits) -> Result<TestReport, TestFileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| TestFileError::Read { file: file.clone(), message: e.to_string() })?;
    let test: TestFile =
        toml::from_str(&text).map_err(|e| TestFileError::Invalid { file: file.clone(), message: e.to_string() })?;
    let invalid = |message: &str| TestFileError::Invalid { file: file.clone(), message: message.into() };
    if test.script.is_empty() {
        return Err(invalid("`script` is missing"));
    }
    if test.expect.is_some() == test.expect_in_order.is_some() {
        return Err(invalid("give exactly one of `expect` and `expect_in_order`"));
    }
    let inputs = simulate::parse_inputs(&test.digits)
        .map_err(|source| TestFileError::Simulation { file: file.clone(), source })?;
    let caller = CallerInfo {
        number: test.caller.clone(),
        name: test.caller_name.clone(),
        path: "sim".into(),
        dialled: test.dialled.clone(),
        headers: test.headers.clone(),
    };
    let fixture = Fixture {
        http: test.http.clone(),
        directory: test.directory.clone(),
        missing_prompts: test.missing_prompts.clone(),
        http_allow: test.http_allow.clone(),
    };
    let sim = Simulation::new(inputs, caller, fixture, false);
    sim.run(scripts, &test.script, limits)
        .map_err(|source| TestFileError::Simulation { file: file.clone(), source })?;
    let transcript = sim.transcript();
    let diff = match (&test.expect, &test.expect_in_order) {
        (Some(all), _) => (all != &transcript).then(|| diff(all, &transcript, None)),
        (None, Some(wanted)) => missing_in_order(wanted, &transcript).map(|line| diff(wanted, &transcript, Some(line))),
        (None, None) => None,
    };
    Ok(TestReport { file, passed: diff.is_none(), transcript, diff })
}

/// The first wanted line not found after the previous one.
fn missing_in_order<'a>(wanted: &'a [String], actual: &[String]) -> Option<&'a str> {
    let mut rest = actual.iter();
    wanted.iter().find(|w| !rest.any(|a| a == *w)).map(String::as_str)
}

fn diff(expected: &[String], actual: &[String], missing: Option<&str>) -> String {
    let (e, a) = (lines(expected), lines(actual));
    let udiff = similar::TextDiff::from_lines(&e, &a).unified_diff().header("expected", "actual").to_string();
    match missing {
        Some(line) => format!("not found in order: {line}\n{udiff}"),
        None => udiff,
    }
}

fn lines(l: &[String]) -> String {
    l.iter().map(|s| format!("{s}\n")).collect()
}
