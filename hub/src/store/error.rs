//! Storage errors, the same for every backend.

use std::fmt;

/// Result of a store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value is already taken (duplicate extension, subject, username…).
    #[error("{what} {value:?} is already taken")]
    Conflict {
        /// Which uniqueness rule.
        what: Unique,
        /// The value that clashed, when known.
        value: String,
    },
    /// The record to change does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The database could not be opened or migrated.
    #[error("cannot open the database at {location}: {reason}")]
    Open {
        /// File path or redacted URL.
        location: String,
        /// Why.
        reason: String,
    },
    /// A stored record cannot be read back (edited by hand, or a newer hub's data).
    #[error("corrupt {what} record: {reason}")]
    Corrupt {
        /// Record kind.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Fills the clashing value into a conflict that the database reported without it, from
    /// what the caller was writing; every backend reports conflicts the same way.
    pub(crate) fn with_value(self, value_of: impl Fn(Unique) -> Option<String>) -> StoreError {
        match self {
            StoreError::Conflict { what, value } if value.is_empty() => {
                StoreError::Conflict { what, value: value_of(what).unwrap_or_default() }
            }
            other => other,
        }
    }
}

/// The uniqueness rules every backend enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unique {
    /// Two users with one username.
    Username,
    /// Two users for one IdP account.
    Subject,
    /// Two users with one extension.
    Extension,
    /// Two SIP accounts with one username.
    SipUsername,
    /// Two records with one id.
    Id,
}

impl fmt::Display for Unique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unique::Username => "username",
            Unique::Subject => "identity-provider subject",
            Unique::Extension => "extension",
            Unique::SipUsername => "SIP username",
            Unique::Id => "id",
        })
    }
}
