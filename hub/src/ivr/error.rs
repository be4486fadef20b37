//! Why a script could not be loaded or ran into trouble, with the file and position a person
//! needs to fix it.

use std::fmt;

/// Where in which script something went wrong, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptFailure {
    /// Script file, relative to the scripts directory (`main_menu.rhai`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What went wrong, without the position.
    pub message: String,
}

impl ScriptFailure {
    /// `file:line:column`, as compilers print it (only the parts known).
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

/// Why a script could not be found or compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The name would leave the scripts directory, or is not a `.rhai` file.
    #[error("{0:?} is not a .rhai script inside the scripts directory")]
    BadName(String),
    /// The file cannot be read.
    #[error("{file}: cannot read: {message}")]
    Unreadable {
        /// The script.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// The script does not compile.
    #[error("{0}")]
    Compile(ScriptFailure),
    /// No route for the dialled number.
    #[error("no IVR script for number {0:?}")]
    NoRoute(String),
}

impl ScriptError {
    /// The failure as a script position (the file alone when there is no line).
    pub fn failure(&self) -> ScriptFailure {
        match self {
            Self::Compile(f) => f.clone(),
            Self::Unreadable { file, .. } => {
                ScriptFailure { file: file.clone(), line: None, column: None, message: self.to_string() }
            }
            Self::BadName(name) | Self::NoRoute(name) => {
                ScriptFailure { file: name.clone(), line: None, column: None, message: self.to_string() }
            }
        }
    }
}

/// Results of loading scripts.
pub type Result<T> = std::result::Result<T, ScriptError>;
