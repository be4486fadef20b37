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

/// What `PJSIPShowEndpoint` says about one endpoint: enough to tell whether Asterisk loaded
/// the revision the hub wrote (a reload reports success even when it did not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointCheck {
    /// The endpoint's `set_var` list as Asterisk shows it (`HUB_REV=…`).
    pub set_var: String,
    /// The `auth=` the endpoint names.
    pub auth: String,
    /// The `aors=` the endpoint names.
    pub aors: String,
    /// Username of the auth object, when Asterisk has that object.
    pub auth_username: Option<String>,
    /// Whether Asterisk has an AOR object for it.
    pub has_aor: bool,
    /// Device state (`Not in use`, `Unavailable`…).
    pub device_state: String,
}

impl EndpointCheck {
    /// The `HUB_REV` variable the hub's templates put on every endpoint.
    pub fn revision(&self) -> Option<&str> {
        self.set_var.split([',', ';']).find_map(|v| v.trim().strip_prefix("HUB_REV="))
    }
}

/// Each endpoint's details (`None` when Asterisk has no such endpoint), pipelined in batches: one round trip per batch instead
/// of one per endpoint (thousands of users verified after one reload).
pub async fn endpoints_checked(s: &mut Session, names: &[&str]) -> Result<Vec<Option<EndpointCheck>>, AmiError> {
    /// Actions written before their answers are read.
    const BATCH: usize = 64;
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(BATCH) {
        let sets: Vec<Vec<(&str, &str)>> = chunk.iter().map(|n| vec![("Endpoint", *n)]).collect();
        for items in s.list_many("PJSIPShowEndpoint", &sets).await? {
            out.push(endpoint_from(items)?);
        }
    }
    Ok(out)
}

fn endpoint_from(items: Result<Vec<Message>, AmiError>) -> Result<Option<EndpointCheck>, AmiError> {
    let items = match items {
        Err(AmiError::Refused { message, .. }) if message.starts_with("Unable to retrieve endpoint") => {
            return Ok(None);
        }
        other => other?,
    };
    let mut check = None::<EndpointCheck>;
    let mut auth_username = None;
    let mut has_aor = false;
    for m in &items {
        match m.name() {
            Some("EndpointDetail") => {
                check = Some(EndpointCheck {
                    set_var: text(m, "SetVar"),
                    auth: text(m, "Auth"),
                    aors: text(m, "Aors"),
                    device_state: text(m, "DeviceState"),
                    ..Default::default()
                });
            }
            // Never keep or log the `Password:` of an AuthDetail.
            Some("AuthDetail") => auth_username = Some(text(m, "Username")),
            Some("AorDetail") => has_aor = true,
            _ => {}
        }
    }
    Ok(check.map(|c| EndpointCheck { auth_username, has_aor, ..c }))
}

/// Reloads one module (`res_pjsip.so`, `pbx_config.so`). Asterisk answers `Module Reloaded`
/// even when the new config was broken; verify the result with [`endpoints_checked`].
pub async fn reload(s: &mut Session, module: &str) -> Result<(), AmiError> {
    s.action("Reload", &[("Module", module)]).await.map(|_| ())
}

/// Hangs up one channel; `false` when it was already gone.
pub async fn hangup(s: &mut Session, channel: &str) -> Result<bool, AmiError> {
    match s.action("Hangup", &[("Channel", channel), ("Cause", "16")]).await {
        Ok(_) => Ok(true),
        Err(AmiError::Refused { message, .. }) if message.starts_with("No such channel") => Ok(false),
        Err(e) => Err(e),
    }
}

/// The live channels of one PJSIP endpoint (`PJSIP/<endpoint>-<seq>`).
pub fn channels_of<'a>(channels: &'a [ChannelRow], endpoint: &str) -> Vec<&'a ChannelRow> {
    let prefix = format!("PJSIP/{endpoint}-");
    channels.iter().filter(|c| c.channel.starts_with(&prefix)).collect()
}

/// Asterisk's version (`CoreSettings`).
pub async fn version(s: &mut Session) -> Result<String, AmiError> {
    let m = s.action("CoreSettings", &[]).await?;
    Ok(text(&m, "AsteriskVersion"))
}
