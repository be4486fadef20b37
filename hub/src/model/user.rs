//! Users of the directory and their phone numbers.

use serde::{Deserialize, Serialize};

use super::{Extension, Timestamp, UserId};

/// A person who can sign in, be called and own a mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id, never reused.
    pub id: UserId,
    /// The IdP's `sub` claim; `None` for users created by an administrator or in demo mode.
    /// Unique: one directory entry per IdP account.
    pub subject: Option<String>,
    /// Login-style name, unique, used by sysadmins to name the user (`hub users show alice`).
    pub username: String,
    /// What colleagues see and search for.
    pub display_name: String,
    /// Contact address, if known.
    pub email: Option<String>,
    /// Internal extension, unique across the directory.
    pub extension: Option<Extension>,
    /// A disabled user cannot sign in and is not provisioned on Asterisk.
    pub disabled: bool,
    /// Administrators may manage other users from the web app.
    pub admin: bool,
    /// Every number of the user, from every source.
    pub numbers: Vec<Number>,
    /// When the entry was created.
    pub created_at: Timestamp,
    /// When the entry last changed.
    pub updated_at: Timestamp,
}

/// What is needed to create a [`User`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewUser {
    /// See [`User::subject`].
    pub subject: Option<String>,
    /// See [`User::username`].
    pub username: String,
    /// See [`User::display_name`].
    pub display_name: String,
    /// See [`User::email`].
    pub email: Option<String>,
    /// See [`User::extension`].
    pub extension: Option<Extension>,
    /// See [`User::admin`].
    pub admin: bool,
    /// Initial numbers.
    pub numbers: Vec<Number>,
}

/// A partial update of a user's profile; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// Links the user to an identity-provider account (set once, at first sign-in).
    pub subject: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New email (`Some(None)` clears it).
    pub email: Option<Option<String>>,
    /// New extension (`Some(None)` clears it).
    pub extension: Option<Option<Extension>>,
    /// New admin flag.
    pub admin: Option<bool>,
    /// New disabled flag.
    pub disabled: Option<bool>,
}

/// One phone number of a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Number {
    /// E.164 (`+4930123456`) or an internal number, as given.
    pub number: String,
    /// What kind of line it is.
    pub kind: NumberKind,
    /// Who manages it; numbers from the IdP are read-only to the user.
    pub source: NumberSource,
}

/// What kind of line a [`Number`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberKind {
    /// A desk or office line.
    Work,
    /// A mobile phone.
    Mobile,
    /// A home line.
    Home,
    /// Anything else.
    Other,
}

/// Who manages a [`Number`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberSource {
    /// From an identity-provider claim; replaced at every sign-in, read-only to the user.
    Idp,
    /// Set by an administrator.
    Admin,
    /// Added by the user.
    User,
}

str_enum!(NumberKind { Work => "work", Mobile => "mobile", Home => "home", Other => "other" });
str_enum!(NumberSource { Idp => "idp", Admin => "admin", User => "user" });

impl User {
    /// The user's numbers from one source.
    pub fn numbers_from(&self, source: NumberSource) -> impl Iterator<Item = &Number> {
        self.numbers.iter().filter(move |n| n.source == source)
    }
}

/// Lowercased words of a name, e-mail local part and username: the keys the directory's
/// prefix search matches against ("smi" finds "John Smith"). Shared by every backend so
/// that a search gives the same answer everywhere.
pub fn search_tokens(display_name: &str, username: &str, email: Option<&str>) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let email_local = email.and_then(|e| e.split('@').next()).unwrap_or("");
    for source in [display_name, username, email_local] {
        let lower = source.to_lowercase();
        tokens.push(lower.trim().to_string());
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            if !word.is_empty() {
                tokens.push(word.to_string());
            }
        }
    }
    tokens.retain(|t| !t.is_empty());
    tokens.sort();
    tokens.dedup();
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cover_every_word() {
        let t = search_tokens("Anna-Lena Müller", "alm", Some("anna.mueller@example.org"));
        for want in ["anna", "lena", "müller", "anna-lena müller", "alm", "mueller"] {
            assert!(t.contains(&want.to_string()), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn enums_round_trip_through_strings() {
        for k in [NumberKind::Work, NumberKind::Mobile, NumberKind::Home, NumberKind::Other] {
            assert_eq!(k.as_str().parse::<NumberKind>().unwrap(), k);
        }
        assert!("fax".parse::<NumberKind>().unwrap_err().contains("expected one of"));
        assert_eq!("idp".parse::<NumberSource>().unwrap(), NumberSource::Idp);
    }
}
