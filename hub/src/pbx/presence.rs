//! Who is registered and who is on the phone, as Asterisk sees it: per PJSIP endpoint (one per
//! hub user; the endpoint name is the user's SIP username) the registered contacts and the
//! device state. The event link ([`super::link`]) keeps it current from AMI events; the
//! directory and the API read it, and a UI can follow changes with [`SipPresence::subscribe`].
//!
//! What real Asterisk 22 sends (fixtures 06a, 06c, 07a, 07b):
//! - on REGISTER (UDP and WebSocket alike): `DeviceStateChange` (`Device: PJSIP/1001`,
//!   `State: NOT_INUSE`), `PeerStatus` (`Peer: PJSIP/1001`, `PeerStatus: Reachable`; these two
//!   come in either order), then `ContactStatus` (`URI`, `AOR`, `EndpointName`,
//!   `ContactStatus: NonQualified`, `RoundtripUsec: 0`);
//! - on un-REGISTER: `PeerStatus Unreachable`, `DeviceStateChange UNAVAILABLE`,
//!   `ContactStatus Removed`;
//! - `ContactStatus` events carry no user agent: only a listing (`PJSIPShowContacts`) does,
//!   so a contact first seen in an event has none until the next listing;
//! - listings word device states for people (`Not in use`), events for programs (`NOT_INUSE`).
//!
//! Events are changes, so they mean something only on top of a listing: [`SipPresence::seed`]
//! makes the state live, events then change it, and [`SipPresence::clear`] (the link is down)
//! makes it unknown again. "Unknown because Asterisk is unreachable" is not "not registered":
//! [`SipPresence::is_live`] tells them apart.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::broadcast;

use super::ami::{Kind, Message};
use super::asterisk::{ContactRow, EndpointRow};

/// How many change notices a slow subscriber may fall behind before it is told it lagged
/// (it should then re-read [`SipPresence::snapshot`]).
pub const CHANGES_CAPACITY: usize = 1024;

/// An endpoint's device state, from Asterisk's words: events say `NOT_INUSE`, listings say
/// `Not in use`; both mean [`DeviceState::NotInUse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// `UNKNOWN`, or a word this hub does not know.
    Unknown,
    /// `NOT_INUSE` / `Not in use`: registered and idle.
    NotInUse,
    /// `INUSE` / `In use`: on a call.
    InUse,
    /// `BUSY`: on calls up to its limit.
    Busy,
    /// `INVALID`: Asterisk does not know the device.
    Invalid,
    /// `UNAVAILABLE` / `Unavailable`: no reachable contact (not registered).
    Unavailable,
    /// `RINGING`: a call is ringing it.
    Ringing,
    /// `RINGINUSE` / `Ring+Inuse`: ringing while already on a call.
    RingInUse,
    /// `ONHOLD` / `On Hold`: its call is on hold.
    OnHold,
}

impl DeviceState {
    /// Parses either wording (case, spaces, `_` and `+` do not matter).
    pub fn parse(word: &str) -> Self {
        let word: String =
            word.chars().filter(|c| !matches!(c, ' ' | '_' | '+')).map(|c| c.to_ascii_lowercase()).collect();
        match word.as_str() {
            "notinuse" => Self::NotInUse,
            "inuse" => Self::InUse,
            "busy" => Self::Busy,
            "invalid" => Self::Invalid,
            "unavailable" => Self::Unavailable,
            "ringing" => Self::Ringing,
            "ringinuse" => Self::RingInUse,
            "onhold" => Self::OnHold,
            _ => Self::Unknown,
        }
    }

    /// Whether the device has a call up (in use, busy, ringing while in use, on hold): what a
    /// directory shows as "on the phone". Merely ringing is not in use.
    pub fn in_use(self) -> bool {
        matches!(self, Self::InUse | Self::Busy | Self::RingInUse | Self::OnHold)
    }
}

/// A registered contact's reachability, from `ContactStatus` events and contact listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    /// Answers qualify `OPTIONS` (`Reachable`; the CLI says `Avail`).
    Reachable,
    /// Stopped answering qualify `OPTIONS` (`Unreachable`; the CLI says `Unavail`), but is
    /// still registered.
    Unreachable,
    /// Registered, and the AOR does not qualify it (`NonQualified`): the usual case for
    /// browsers and for the fixtures' phones.
    NonQualified,
    /// Not known yet (`Unknown`, `Created` before a first qualify, or an unknown word).
    Unknown,
}

impl ContactStatus {
    /// Parses Asterisk's long or short label.
    pub fn parse(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "reachable" | "avail" => Self::Reachable,
            "unreachable" | "unavail" | "unavailable" => Self::Unreachable,
            "nonqualified" | "nonqual" => Self::NonQualified,
            _ => Self::Unknown,
        }
    }
}

/// An endpoint's overall status from `PeerStatus` events (listings do not carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    /// A contact became reachable (PJSIP sends this on registration).
    Reachable,
    /// No contact is reachable any more (PJSIP sends this on un-registration).
    Unreachable,
    /// `Registered` (channel drivers other than PJSIP).
    Registered,
    /// `Unregistered` (channel drivers other than PJSIP).
    Unregistered,
    /// A word this hub does not know.
    Unknown,
}

impl PeerStatus {
    /// Parses the `PeerStatus` header.
    pub fn parse(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "reachable" => Self::Reachable,
            "unreachable" => Self::Unreachable,
            "registered" => Self::Registered,
            "unregistered" => Self::Unregistered,
            _ => Self::Unknown,
        }
    }
}

/// One registered contact of an endpoint: a desk phone, or a browser tab over WebSocket
/// (`sip:x@127.0.0.1:PORT;transport=WS;x-ast-orig-host=…`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// The AOR it registered to (usually the endpoint name).
    pub aor: String,
    /// The contact URI, as Asterisk reports it.
    pub uri: String,
    /// Reachability.
    pub status: ContactStatus,
    /// The registering user agent, when a listing said so (events never do).
    pub user_agent: Option<String>,
    /// Round trip of the last qualify, when one was measured.
    pub rtt_us: Option<u64>,
}

/// What is known about one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointPresence {
    endpoint: String,
    device_state: DeviceState,
    peer_status: Option<PeerStatus>,
    contacts: Vec<Contact>,
}

impl EndpointPresence {
    fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            device_state: DeviceState::Unknown,
            peer_status: None,
            contacts: Vec::new(),
        }
    }

    /// The endpoint name (the user's SIP username).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The device state.
    pub fn device_state(&self) -> DeviceState {
        self.device_state
    }

    /// The last `PeerStatus` event's word; `None` until one arrived since the last listing.
    pub fn peer_status(&self) -> Option<PeerStatus> {
        self.peer_status
    }

    /// The contacts Asterisk holds a registration for, unreachable ones included.
    pub fn registered_contacts(&self) -> &[Contact] {
        &self.contacts
    }

    /// Whether at least one contact is registered.
    pub fn is_registered(&self) -> bool {
        !self.contacts.is_empty()
    }

    /// Whether a call could reach it now: a registered contact not known to be unreachable.
    pub fn is_reachable(&self) -> bool {
        self.contacts.iter().any(|c| c.status != ContactStatus::Unreachable)
    }

    /// Whether it is on a call (see [`DeviceState::in_use`]).
    pub fn in_use(&self) -> bool {
        self.device_state.in_use()
    }
}

/// Everything at one instant, for the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PresenceSnapshot {
    /// Whether the state comes from a live link (see [`SipPresence::is_live`]); when not,
    /// `endpoints` is empty because nothing is known.
    pub live: bool,
    /// Every known endpoint, by name.
    pub endpoints: Vec<EndpointPresence>,
}

/// The SIP presence of every endpoint: a cheap `Clone` handle, shared by the event link that
/// writes it and the readers.
#[derive(Clone)]
pub struct SipPresence {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changes: broadcast::Sender<String>,
}

#[derive(Default)]
struct State {
    live: bool,
    endpoints: BTreeMap<String, EndpointPresence>,
}

/// One event's meaning, worked out before the lock is taken.
enum Change {
    Device { endpoint: String, state: DeviceState },
    Peer { endpoint: String, status: PeerStatus },
    Contact { endpoint: String, aor: String, uri: String, update: ContactUpdate },
}

enum ContactUpdate {
    /// Add it if missing; set the status when one is given, else keep it.
    Upsert {
        status: Option<ContactStatus>,
        rtt_us: Option<u64>,
    },
    Remove,
}

impl Default for SipPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl SipPresence {
    /// An empty, not yet live state.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        Self { shared: Arc::new(Shared { state: Mutex::new(State::default()), changes }) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced or edited whole under the lock; a panic elsewhere cannot
        // leave it half-written, so a poisoned lock is still usable.
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one AMI message: `ContactStatus`, `DeviceStateChange` and `PeerStatus` for
    /// `PJSIP/…` devices change the state; everything else is ignored, and so is every event
    /// while the state is not live (no listing to change). Returns the endpoint whose
    /// presence changed (and tells subscribers), or `None` when nothing changed.
    pub fn apply(&self, m: &Message) -> Option<String> {
        let change = Change::from_event(m)?;
        let mut state = self.lock();
        if !state.live {
            return None;
        }
        let name = change.endpoint().to_string();
        let before = state.endpoints.get(&name);
        let mut after = before.cloned().unwrap_or_else(|| EndpointPresence::new(&name));
        change.apply_to(&mut after);
        let unchanged = match before {
            Some(before) => *before == after,
            None => after == EndpointPresence::new(&name),
        };
        if unchanged {
            return None;
        }
        state.endpoints.insert(name.clone(), after);
        // Sent under the lock so notices arrive in the order of the changes.
        let _ = self.shared.changes.send(name.clone());
        Some(name)
    }

    /// Replaces the whole state with a fresh listing (`PJSIPShowEndpoints` and
    /// `PJSIPShowContacts`, taken after login) and makes it live. A contact is matched to
    /// its endpoint through the endpoint's `Contacts` (`aor/uri`); one listed by
    /// `PJSIPShowContacts` only (it registered between the two listings) goes to the
    /// endpoint named like its AOR. Subscribers hear of every endpoint that differs.
    pub fn seed(&self, endpoints: &[EndpointRow], contacts: &[ContactRow]) {
        let rows: HashMap<(&str, &str), &ContactRow> =
            contacts.iter().map(|c| ((c.aor.as_str(), c.uri.as_str()), c)).collect();
        let mut claimed: HashSet<(&str, &str)> = HashSet::new();
        let mut fresh: BTreeMap<String, EndpointPresence> = BTreeMap::new();
        for row in endpoints {
            let mut p = EndpointPresence::new(&row.name);
            p.device_state = DeviceState::parse(&row.state);
            for listed in &row.contacts {
                // `aor/uri`: an AOR name has no '/', a URI may.
                let Some((aor, uri)) = listed.split_once('/') else { continue };
                let contact = match rows.get(&(aor, uri)) {
                    Some(c) => {
                        claimed.insert((aor, uri));
                        Contact::from_row(c)
                    }
                    None => Contact {
                        aor: aor.to_string(),
                        uri: uri.to_string(),
                        status: ContactStatus::Unknown,
                        user_agent: None,
                        rtt_us: None,
                    },
                };
                p.contacts.push(contact);
            }
            fresh.insert(row.name.clone(), p);
        }
        for c in contacts.iter().filter(|c| !claimed.contains(&(c.aor.as_str(), c.uri.as_str()))) {
            let p = fresh.entry(c.aor.clone()).or_insert_with(|| EndpointPresence::new(&c.aor));
            if !p.contacts.iter().any(|k| k.aor == c.aor && k.uri == c.uri) {
                p.contacts.push(Contact::from_row(c));
            }
        }

        let mut state = self.lock();
        let was_live = state.live;
        let old = std::mem::replace(&mut state.endpoints, fresh);
        state.live = true;
        let names: BTreeSet<String> = old.keys().chain(state.endpoints.keys()).cloned().collect();
        for name in names {
            if !was_live || old.get(&name) != state.endpoints.get(&name) {
                let _ = self.shared.changes.send(name);
            }
        }
    }

    /// Forgets everything: the link is down, so nothing is known until the next
    /// [`SipPresence::seed`]. Subscribers hear of every endpoint that was known.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.live = false;
        for name in std::mem::take(&mut state.endpoints).into_keys() {
            let _ = self.shared.changes.send(name);
        }
    }

    /// Whether the state comes from a live link to Asterisk. When it does not, "no presence"
    /// means "unknown", not "not registered".
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    /// One endpoint's presence; `None` when the endpoint is unknown to Asterisk, or when
    /// nothing is known at all (see [`SipPresence::is_live`]).
    pub fn get(&self, endpoint: &str) -> Option<EndpointPresence> {
        let state = self.lock();
        if !state.live {
            return None;
        }
        state.endpoints.get(endpoint).cloned()
    }

    /// Every endpoint, by name, with whether the state is live, taken at one instant.
    pub fn snapshot(&self) -> PresenceSnapshot {
        let state = self.lock();
        PresenceSnapshot { live: state.live, endpoints: state.endpoints.values().cloned().collect() }
    }

    /// Names of endpoints whose presence changed, from now on (for live UI updates). A
    /// receiver that falls more than [`CHANGES_CAPACITY`] behind gets `Lagged` and should
    /// re-read [`SipPresence::snapshot`].
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.shared.changes.subscribe()
    }
}

impl std::fmt::Debug for SipPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SipPresence").field("live", &state.live).field("endpoints", &state.endpoints.len()).finish()
    }
}

impl Contact {
    fn from_row(c: &ContactRow) -> Self {
        Self {
            aor: c.aor.clone(),
            uri: c.uri.clone(),
            status: ContactStatus::parse(&c.status),
            user_agent: Some(c.user_agent.clone()).filter(|ua| !ua.is_empty()),
            rtt_us: c.rtt_us,
        }
    }
}

/// The endpoint of a `PJSIP/<endpoint>` device or peer; other technologies are not ours.
fn pjsip_endpoint(device: &str) -> Option<String> {
    let (tech, name) = device.trim().split_once('/')?;
    (tech.eq_ignore_ascii_case("PJSIP") && !name.is_empty()).then(|| name.to_string())
}

impl Change {
    fn from_event(m: &Message) -> Option<Self> {
        if m.kind != Kind::Event {
            return None;
        }
        match m.name()? {
            "DeviceStateChange" => Some(Change::Device {
                endpoint: pjsip_endpoint(m.get("Device")?)?,
                state: DeviceState::parse(m.get("State")?),
            }),
            "PeerStatus" => Some(Change::Peer {
                endpoint: pjsip_endpoint(m.get("Peer")?)?,
                status: PeerStatus::parse(m.get("PeerStatus")?),
            }),
            "ContactStatus" => {
                let uri = m.get("URI")?.trim().to_string();
                let aor = m.get("AOR").unwrap_or("").trim().to_string();
                let endpoint = match m.get("EndpointName").map(str::trim) {
                    Some(e) if !e.is_empty() => e.to_string(),
                    _ => aor.clone(),
                };
                if uri.is_empty() || endpoint.is_empty() {
                    return None;
                }
                let word = m.get("ContactStatus")?.trim();
                let status = match word.to_ascii_lowercase().as_str() {
                    "removed" => return Some(Change::Contact { endpoint, aor, uri, update: ContactUpdate::Remove }),
                    // A new registration, or a refreshed one: the status is not news.
                    "created" | "updated" => None,
                    "reachable" | "unreachable" | "nonqualified" | "unknown" => Some(ContactStatus::parse(word)),
                    _ => return None,
                };
                let rtt_us = match status {
                    // Asterisk sends `RoundtripUsec: 0` when it measured nothing.
                    Some(ContactStatus::Reachable) => m.get("RoundtripUsec").and_then(|v| v.trim().parse().ok()),
                    _ => None,
                };
                Some(Change::Contact { endpoint, aor, uri, update: ContactUpdate::Upsert { status, rtt_us } })
            }
            _ => None,
        }
    }

    fn endpoint(&self) -> &str {
        match self {
            Change::Device { endpoint, .. } | Change::Peer { endpoint, .. } | Change::Contact { endpoint, .. } => {
                endpoint
            }
        }
    }

    fn apply_to(self, p: &mut EndpointPresence) {
        match self {
            Change::Device { state, .. } => p.device_state = state,
            Change::Peer { status, .. } => p.peer_status = Some(status),
            Change::Contact { aor, uri, update: ContactUpdate::Remove, .. } => {
                p.contacts.retain(|c| !(c.aor == aor && c.uri == uri));
            }
            Change::Contact { aor, uri, update: ContactUpdate::Upsert { status, rtt_us }, .. } => {
                match p.contacts.iter_mut().find(|c| c.aor == aor && c.uri == uri) {
                    Some(c) => {
                        if let Some(status) = status {
                            c.status = status;
                            c.rtt_us = rtt_us;
                        }
                    }
                    None => p.contacts.push(Contact {
                        aor,
                        uri,
                        status: status.unwrap_or(ContactStatus::Unknown),
                        user_agent: None,
                        rtt_us,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
