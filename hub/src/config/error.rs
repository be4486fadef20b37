//! What can go wrong loading configuration, and where it came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from, so that an error points a person at the right place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A line of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line: Some(line) } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A configuration that cannot be used. Every variant names its source; the CLI exits with
/// code 2 on any of them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}:{line}:{column}: invalid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is of the wrong type or not acceptable.
    #[error("{}", render_invalid(.0))]
    Invalid(Vec<Invalid>),
}

/// One unacceptable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Where it came from.
    pub origin: Origin,
    /// The dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Default => write!(f, "key {}: {}", self.key, self.message),
            origin => write!(f, "{origin}: key {}: {}", self.key, self.message),
        }
    }
}

fn render_invalid(items: &[Invalid]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
