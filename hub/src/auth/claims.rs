//! Turning the provider's claims into a directory profile, through the configured mapping.

use serde_json::{Map, Value};

use crate::config::ClaimsConfig;
use crate::directory::parse_number;
use crate::model::{Extension, Number, NumberSource};

/// What the identity provider says about a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The `sub` claim: the stable key of the account at the provider.
    pub subject: String,
    /// Username (sanitised to the directory's rules).
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// E-mail, when given.
    pub email: Option<String>,
    /// Extension, when the provider assigns one.
    pub extension: Option<Extension>,
    /// Phone numbers (source `idp`).
    pub numbers: Vec<Number>,
    /// Whether the admin claim holds the admin value; `None` when the provider sent no such
    /// claim (then the hub keeps whatever an administrator set).
    pub admin: Option<bool>,
    /// Claim values that were present but unusable, for the log.
    pub ignored: Vec<String>,
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    claims.get(name)?.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// Keeps what the directory accepts in a username; anything else becomes `-`.
fn sanitise_username(raw: &str) -> String {
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "._-@+".contains(c) { c } else { '-' }).take(64).collect();
    cleaned.trim_matches('-').to_string()
}

/// Builds a profile from merged ID-token and userinfo claims.
pub fn profile(claims: &Map<String, Value>, mapping: &ClaimsConfig) -> Result<Profile, String> {
    let subject = text(claims, "sub").ok_or("the provider sent no subject (sub) claim")?.to_string();
    let mut ignored = Vec::new();
    let email = text(claims, &mapping.email).filter(|e| e.contains('@')).map(str::to_string);
    let username = text(claims, &mapping.username)
        .map(sanitise_username)
        .filter(|u| !u.is_empty())
        .or_else(|| email.as_deref().map(|e| sanitise_username(e.split('@').next().unwrap_or(e))))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| sanitise_username(&format!("user-{subject}")));
    let display_name = text(claims, &mapping.display_name)
        .map(str::to_string)
        .or_else(|| {
            let given = text(claims, "given_name").unwrap_or("");
            let family = text(claims, "family_name").unwrap_or("");
            let full = format!("{given} {family}").trim().to_string();
            (!full.is_empty()).then_some(full)
        })
        .unwrap_or_else(|| username.clone());
    let display_name: String = display_name.chars().filter(|c| !c.is_control()).take(128).collect();

    let extension = match claims.get(&mapping.extension) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let raw = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            match Extension::new(raw.clone()) {
                Ok(e) => Some(e),
                Err(e) => {
                    ignored.push(format!("claim {}: {e}", mapping.extension));
                    None
                }
            }
        }
    };

    let mut raw_numbers: Vec<String> = Vec::new();
    if let Some(n) = text(claims, &mapping.phone_number) {
        raw_numbers.push(n.to_string());
    }
    match claims.get(&mapping.numbers) {
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => raw_numbers.push(s.clone()),
                    other => ignored.push(format!("claim {}: {other} is not a string", mapping.numbers)),
                }
            }
        }
        Some(Value::String(s)) => {
            raw_numbers.extend(s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()))
        }
        Some(Value::Null) | None => {}
        Some(other) => ignored.push(format!("claim {}: {other} is not a list of numbers", mapping.numbers)),
    }
    let mut numbers: Vec<Number> = Vec::new();
    for raw in raw_numbers {
        match parse_number(&raw, NumberSource::Idp) {
            Ok(n) if !numbers.iter().any(|m| m.number == n.number) => numbers.push(n),
            Ok(_) => {}
            Err(e) => ignored.push(format!("phone number {raw:?}: {e}")),
        }
    }

    let admin = match claims.get(&mapping.admin_claim) {
        _ if mapping.admin_value.is_empty() => None,
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s == &mapping.admin_value),
        Some(Value::Array(items)) => Some(items.iter().any(|v| v.as_str() == Some(mapping.admin_value.as_str()))),
        Some(Value::Bool(b)) => Some(*b && mapping.admin_value == "true"),
        Some(_) => Some(false),
    };

    Ok(Profile { subject, username, display_name, email, extension, numbers, admin, ignored })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::NumberKind;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn maps_every_field() {
        let c = claims(json!({
            "sub": "abc-123",
            "name": "Alice Liddell",
            "email": "alice@example.org",
            "preferred_username": "alice",
            "extension": "1001",
            "phone_number": "+49 30 1234",
            "phone_numbers": ["+49 170 555:mobile", "+49 30 1234", "not a number"],
            "groups": ["staff", "hub-admins"],
        }));
        let p = profile(&c, &ClaimsConfig::default()).unwrap();
        assert_eq!(p.subject, "abc-123");
        assert_eq!(p.username, "alice");
        assert_eq!(p.display_name, "Alice Liddell");
        assert_eq!(p.email.as_deref(), Some("alice@example.org"));
        assert_eq!(p.extension.unwrap().as_str(), "1001");
        let numbers: Vec<_> = p.numbers.iter().map(|n| (n.number.as_str(), n.kind, n.source)).collect();
        assert_eq!(
            numbers,
            [("+49301234", NumberKind::Work, NumberSource::Idp), ("+49170555", NumberKind::Mobile, NumberSource::Idp)]
        );
        assert_eq!(p.admin, Some(true));
        assert_eq!(p.ignored.len(), 1, "{:?}", p.ignored);
    }

    #[test]
    fn custom_mapping_and_fallbacks() {
        let mapping = ClaimsConfig {
            extension: "ext".into(),
            numbers: "tel".into(),
            admin_claim: "role".into(),
            admin_value: "pbx-admin".into(),
            ..Default::default()
        };
        let c = claims(json!({
            "sub": "x", "given_name": "Bob", "family_name": "Builder", "email": "bob.b@example.org",
            "ext": 2001, "tel": "+1 555 0100, +1 555 0101", "role": "pbx-admin",
        }));
        let p = profile(&c, &mapping).unwrap();
        assert_eq!(p.username, "bob.b", "from the e-mail when no username claim");
        assert_eq!(p.display_name, "Bob Builder");
        assert_eq!(p.extension.unwrap().as_str(), "2001", "numeric claims accepted");
        assert_eq!(p.numbers.len(), 2);
        assert_eq!(p.admin, Some(true));
    }

    #[test]
    fn hostile_values_are_tamed() {
        let c = claims(json!({
            "sub": "s", "name": "Evil\nName\r[endpoint]", "preferred_username": "evil user;drop", "extension": "0123",
        }));
        let p = profile(&c, &ClaimsConfig::default()).unwrap();
        assert_eq!(p.display_name, "EvilName[endpoint]");
        assert_eq!(p.username, "evil-user-drop");
        assert_eq!(p.extension, None);
        assert_eq!(p.admin, None, "no admin claim: nothing said");
        assert!(profile(&claims(json!({"name": "x"})), &ClaimsConfig::default()).is_err(), "sub is required");
    }
}
