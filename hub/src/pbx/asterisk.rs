//! What a sysadmin reads from Asterisk: endpoints, registered contacts and live channels,
//! as plain rows for the CLI (and later the admin UI), from one AMI session.

use serde::Serialize;

use super::ami::{AmiError, Message, Session};
use crate::config::{AmiAuth, AmiTarget};

/// A PJSIP endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointRow {
    /// Endpoint name.
    pub name: String,
    /// Device state as Asterisk words it (`Not in use`, `Unavailable`, `In use`…).
    pub state: String,
    /// Registered contacts (`aor/uri`).
    pub contacts: Vec<String>,
}

/// A registered contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContactRow {
    /// The AOR (usually the endpoint name).
    pub aor: String,
    /// The contact URI (a desk phone, or a browser's WebSocket contact).
    pub uri: String,
    /// `Reachable`, `NonQualified`, `Unreachable`…
    pub status: String,
    /// Round trip of the last qualify, when there was one.
    pub rtt_us: Option<u64>,
    /// The registering user agent.
    pub user_agent: String,
}

/// A live channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelRow {
    /// Channel name (`PJSIP/1001-00000004`).
    pub channel: String,
    /// State (`Up`, `Ring`…).
    pub state: String,
    /// Caller number.
    pub caller: String,
    /// Dialled extension.
    pub exten: String,
    /// Running application (`Dial`, `Echo`…).
    pub application: String,
    /// Seconds up (`HH:MM:SS` as Asterisk gives it).
    pub duration: String,
}

fn text(m: &Message, key: &str) -> String {
    m.get(key).unwrap_or("").trim().to_string()
}

/// A short-lived command session to the configured Asterisk.
pub async fn connect(target: &AmiTarget, auth: AmiAuth) -> Result<Session, AmiError> {
    Session::login(target, auth.into(), false).await
}

impl EndpointRow {
    /// The row of one `EndpointList` item of a `PJSIPShowEndpoints` listing (`None` for any
    /// other message), so a listing read another way (a replayed transcript) gives the same rows.
    pub fn from_item(m: &Message) -> Option<Self> {
        (m.name() == Some("EndpointList")).then(|| EndpointRow {
            name: text(m, "ObjectName"),
            state: text(m, "DeviceState"),
            contacts: text(m, "Contacts")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl ContactRow {
    /// The row of one `ContactList` item of a `PJSIPShowContacts` listing (`None` for any
    /// other message).
    pub fn from_item(m: &Message) -> Option<Self> {
        (m.name() == Some("ContactList")).then(|| {
            let object = text(m, "ObjectName");
            ContactRow {
                aor: object.split(';').next().unwrap_or("").to_string(),
                uri: text(m, "Uri"),
                status: text(m, "Status"),
                rtt_us: m.get("RoundtripUsec").and_then(|v| v.trim().parse().ok()),
                user_agent: text(m, "UserAgent"),
            }
        })
    }
}

/// Every PJSIP endpoint with its device state and contacts.
pub async fn endpoints(s: &mut Session) -> Result<Vec<EndpointRow>, AmiError> {
    let items = s.list("PJSIPShowEndpoints", &[]).await?;
    Ok(items.iter().filter_map(EndpointRow::from_item).collect())
}

/// Every registered contact. Asterisk answers an empty list with an error (`No Contacts
/// found`); that is an empty list here.
pub async fn contacts(s: &mut Session) -> Result<Vec<ContactRow>, AmiError> {
    let items = match s.list("PJSIPShowContacts", &[]).await {
        Err(AmiError::Refused { message, .. }) if message.starts_with("No Contacts found") => return Ok(Vec::new()),
        other => other?,
    };
    Ok(items.iter().filter_map(ContactRow::from_item).collect())
}

/// Every live channel.
pub async fn channels(s: &mut Session) -> Result<Vec<ChannelRow>, AmiError> {
    let items = s.list("CoreShowChannels", &[]).await?;
    Ok(items
        .iter()
        .filter(|m| m.name() == Some("CoreShowChannel"))
        .map(|m| ChannelRow {
            channel: text(m, "Channel"),
            state: text(m, "ChannelStateDesc"),
            caller: text(m, "CallerIDNum"),
            exten: text(m, "Exten"),
            application: text(m, "Application"),
            duration: text(m, "Duration"),
        })
        .collect())
}
