//! Validating what a person gives to create a user.

use crate::model::{Extension, NewUser, Number, NumberKind, NumberSource};

use super::{DirectoryError, Result};

/// A request to create a user, as typed by a sysadmin or sent by the admin UI.
#[derive(Clone, Debug, Default)]
pub struct AddUser {
    /// Login-style name: letters, digits and `. _ - @ +`.
    pub username: String,
    /// Name colleagues see.
    pub display_name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Extension; the next free one of the range when absent.
    pub extension: Option<String>,
    /// Numbers, each `NUMBER` or `NUMBER:KIND` (see [`parse_number`]).
    pub numbers: Vec<String>,
    /// Administrator.
    pub admin: bool,
    /// Who manages the numbers given here.
    pub number_source: Option<NumberSource>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid { field, reason: reason.into() }
}

impl AddUser {
    /// Checks every field and builds the record to store.
    pub fn validate(self) -> Result<NewUser> {
        let username = self.username.trim().to_string();
        if username.is_empty() || username.len() > 64 {
            return Err(invalid("username", "must be 1 to 64 characters"));
        }
        if !username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c)) {
            return Err(invalid("username", format!("{username:?} may only contain letters, digits and . _ - @ +")));
        }
        let display_name = self.display_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > 128 {
            return Err(invalid("name", "must be 1 to 128 characters"));
        }
        if display_name.chars().any(char::is_control) {
            return Err(invalid("name", "must not contain control characters (line breaks, tabs)"));
        }
        let email = match self.email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()) {
            Some(e) if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(invalid("email", format!("{e:?} is not an e-mail address")));
            }
            Some(e) => match e.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') => Some(e),
                _ => return Err(invalid("email", format!("{e:?} is not an e-mail address"))),
            },
            None => None,
        };
        let extension = self
            .extension
            .map(|e| Extension::new(e.trim()))
            .transpose()
            .map_err(|e| invalid("extension", e.to_string()))?;
        let source = self.number_source.unwrap_or(NumberSource::Admin);
        let numbers = self.numbers.iter().map(|n| parse_number(n, source)).collect::<Result<Vec<_>>>()?;
        Ok(NewUser { subject: None, username, display_name, email, extension, admin: self.admin, numbers })
    }
}

/// Parses `"+49 30 1234-567:work"` into a number: separators (spaces, dashes, dots,
/// parentheses) are dropped, a leading `+` kept, and the kind defaults to `work`.
pub fn parse_number(input: &str, source: NumberSource) -> Result<Number> {
    let (raw, kind) = match input.rsplit_once(':') {
        Some((n, k)) => (n, k.trim().parse::<NumberKind>().map_err(|e| invalid("number", e))?),
        None => (input, NumberKind::Work),
    };
    let raw = raw.trim();
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(r) => ("+", r),
        None => ("", raw),
    };
    let digits: String = rest.chars().filter(|c| !" -.()/".contains(*c)).collect();
    if digits.len() < 2 || digits.len() > 20 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid("number", format!("{input:?} is not a phone number (digits, optionally a leading +)")));
    }
    Ok(Number { number: format!("{plus}{digits}"), kind, source })
}
