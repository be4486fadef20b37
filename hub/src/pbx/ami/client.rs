//! A logged-in AMI session: each action gets an `ActionID` and its answer is the `Response`
//! carrying that id; events that arrive meanwhile (including event-list items and
//! `OriginateResponse`, which carry ActionIDs but are events) are kept apart, in order. A
//! session with events on is read with [`Session::next_event`], which hands out those kept
//! events first, and kept alive with [`Session::ping_within`].
//!
//! What real Asterisk 22 does that this relies on (see the fixtures): a failed login is
//! answered after about a second and the socket is then closed; without `Events: off` a
//! login turns every event on; event lists are a `Response` with `EventList: start`, items,
//! and an `…Complete` event; `Command` output comes as `Output:` headers and success shows
//! only in `Response:`.

use std::collections::VecDeque;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::time::Instant;

use super::connection::Connection;
use super::frame::{FrameError, Kind, Message};
use crate::config::{AmiAuth, AmiTarget};

/// How long an action may take to be answered.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to Asterisk.
#[derive(Debug, thiserror::Error)]
pub enum AmiError {
    /// No TCP connection.
    #[error("cannot connect to the Asterisk manager at {0}")]
    Connect(String),
    /// No answer in time.
    #[error("Asterisk did not answer in time ({0})")]
    Timeout(String),
    /// Login refused (wrong user or secret; Asterisk then closes the connection).
    #[error("Asterisk refused the manager login for user {0:?} (check pbx.ami_url)")]
    AuthFailed(String),
    /// The connection closed.
    #[error("the Asterisk manager connection closed ({0})")]
    Closed(String),
    /// An action was answered with `Response: Error`.
    #[error("Asterisk refused {action}: {message}")]
    Refused {
        /// The action.
        action: String,
        /// Asterisk's message (and `Output:` lines, for `Command`).
        message: String,
    },
    /// Bytes that are not AMI.
    #[error("Asterisk manager protocol error: {0}")]
    Protocol(#[from] FrameError),
}

/// How to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The secret in the `Login` action.
    Plain,
    /// `Challenge` first, then `Key: md5(challenge + secret)`: the secret never crosses the wire.
    Md5,
}

/// The configured login method (`[pbx] ami_auth`) as the session performs it.
impl From<AmiAuth> for Auth {
    fn from(auth: AmiAuth) -> Self {
        match auth {
            AmiAuth::Md5 => Auth::Md5,
            AmiAuth::Plain => Auth::Plain,
        }
    }
}

/// A logged-in manager session.
pub struct Session {
    conn: Connection,
    next_id: u64,
    prefix: String,
    events: VecDeque<Message>,
}

fn refused(action: &str, m: &Message) -> AmiError {
    let mut message = m.get("Message").unwrap_or("").to_string();
    for line in m.all("Output") {
        if !message.is_empty() {
            message.push_str(" | ");
        }
        message.push_str(line);
    }
    AmiError::Refused { action: action.to_string(), message }
}

impl Session {
    /// Connects and logs in as `target`; `events` turns events on for this session
    /// (command sessions use `false`).
    pub async fn login(target: &AmiTarget, auth: Auth, events: bool) -> Result<Self, AmiError> {
        let conn = Connection::open(&target.host, target.port, ACTION_TIMEOUT).await?;
        let mut session =
            Session { conn, next_id: 0, prefix: format!("hub-{:x}", rand::random::<u32>()), events: VecDeque::new() };
        let events = if events { "on" } else { "off" };
        let answer = match auth {
            Auth::Plain => {
                let headers =
                    [("Username", target.username.as_str()), ("Secret", target.secret.expose()), ("Events", events)];
                session.raw_action("Login", &headers).await
            }
            Auth::Md5 => {
                let challenge = session.action("Challenge", &[("AuthType", "MD5")]).await?;
                let challenge = challenge.get("Challenge").unwrap_or("").to_string();
                let key = hex::encode(Md5::digest(format!("{challenge}{}", target.secret.expose()).as_bytes()));
                let headers = [
                    ("AuthType", "MD5"),
                    ("Username", target.username.as_str()),
                    ("Key", key.as_str()),
                    ("Events", events),
                ];
                session.raw_action("Login", &headers).await
            }
        };
        match answer {
            Ok(m) if m.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Success")) => Ok(session),
            Ok(_) | Err(AmiError::Closed(_)) => Err(AmiError::AuthFailed(target.username.clone())),
            Err(e) => Err(e),
        }
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &str {
        self.conn.greeting()
    }

    /// Sends an action and returns its `Response` (whatever it says).
    async fn raw_action(&mut self, action: &str, headers: &[(&str, &str)]) -> Result<Message, AmiError> {
        self.raw_action_until(action, headers, Instant::now() + ACTION_TIMEOUT).await
    }

    /// [`Session::raw_action`] with its own deadline for the answer.
    async fn raw_action_until(
        &mut self,
        action: &str,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Message, AmiError> {
        self.next_id += 1;
        let id = format!("{}-{}", self.prefix, self.next_id);
        let mut all: Vec<(&str, &str)> = vec![("Action", action), ("ActionID", id.as_str())];
        all.extend_from_slice(headers);
        self.conn.send(&all).await?;
        loop {
            let Some(m) = self.conn.read(deadline, action).await? else {
                return Err(AmiError::Closed(format!("while waiting for the answer to {action}")));
            };
            if m.kind == Kind::Response && m.action_id() == Some(id.as_str()) {
                return Ok(m);
            }
            self.events.push_back(m);
        }
    }

    /// Sends an action; `Response: Error` becomes [`AmiError::Refused`].
    pub async fn action(&mut self, action: &str, headers: &[(&str, &str)]) -> Result<Message, AmiError> {
        let m = self.raw_action(action, headers).await?;
        if m.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Error")) {
            return Err(refused(action, &m));
        }
        Ok(m)
    }

    /// Runs a CLI command; returns its output lines.
    pub async fn command(&mut self, command: &str) -> Result<Vec<String>, AmiError> {
        let m = self.action("Command", &[("Command", command)]).await?;
        Ok(m.all("Output").map(str::to_string).collect())
    }

    /// Runs an action that answers with an event list; returns the items.
    pub async fn list(&mut self, action: &str, headers: &[(&str, &str)]) -> Result<Vec<Message>, AmiError> {
        let start = self.action(action, headers).await?;
        if !start.get("EventList").is_some_and(|v| v.eq_ignore_ascii_case("start")) {
            return Ok(Vec::new());
        }
        let id = start.action_id().unwrap_or_default().to_string();
        let deadline = Instant::now() + ACTION_TIMEOUT;
        let mut items = Vec::new();
        loop {
            let Some(m) = self.conn.read(deadline, action).await? else {
                return Err(AmiError::Closed(format!("in the middle of the {action} list")));
            };
            if m.kind == Kind::Event && m.action_id() == Some(id.as_str()) {
                if m.get("EventList").is_some_and(|v| v.eq_ignore_ascii_case("Complete")) {
                    return Ok(items);
                }
                items.push(m);
            } else {
                self.events.push_back(m);
            }
        }
    }

    /// Runs the same list action for several header sets at once: all actions are written
    /// before any answer is read (Asterisk answers pipelined actions in order, fixture 10e),
    /// so N lists cost one round trip instead of N. Each slot is that action's items, or its
    /// refusal (`Response: Error`, e.g. `Unable to retrieve endpoint …`).
    pub async fn list_many(
        &mut self,
        action: &str,
        header_sets: &[Vec<(&str, &str)>],
    ) -> Result<Vec<Result<Vec<Message>, AmiError>>, AmiError> {
        let mut ids = Vec::with_capacity(header_sets.len());
        let mut bytes = Vec::new();
        for headers in header_sets {
            self.next_id += 1;
            let id = format!("{}-{}", self.prefix, self.next_id);
            let mut all: Vec<(&str, &str)> = vec![("Action", action), ("ActionID", id.as_str())];
            all.extend_from_slice(headers);
            bytes.extend_from_slice(&Message::encode_action(&all));
            ids.push(id);
        }
        self.conn.send_bytes(&bytes).await?;
        let index: std::collections::HashMap<&str, usize> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let mut slots: Vec<Option<Result<Vec<Message>, AmiError>>> = (0..ids.len()).map(|_| None).collect();
        let mut open: Vec<Vec<Message>> = (0..ids.len()).map(|_| Vec::new()).collect();
        let mut pending = ids.len();
        let deadline = Instant::now() + ACTION_TIMEOUT;
        while pending > 0 {
            let Some(m) = self.conn.read(deadline, action).await? else {
                return Err(AmiError::Closed(format!("in the middle of {pending} {action} lists")));
            };
            let Some(&i) = m.action_id().and_then(|id| index.get(id)) else {
                self.events.push_back(m);
                continue;
            };
            if slots[i].is_some() {
                continue;
            }
            match m.kind {
                Kind::Response if m.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Error")) => {
                    slots[i] = Some(Err(refused(action, &m)));
                    pending -= 1;
                }
                Kind::Response if !m.get("EventList").is_some_and(|v| v.eq_ignore_ascii_case("start")) => {
                    slots[i] = Some(Ok(Vec::new()));
                    pending -= 1;
                }
                Kind::Response => {}
                Kind::Event if m.get("EventList").is_some_and(|v| v.eq_ignore_ascii_case("Complete")) => {
                    slots[i] = Some(Ok(std::mem::take(&mut open[i])));
                    pending -= 1;
                }
                Kind::Event => open[i].push(m),
                Kind::Other => {}
            }
        }
        Ok(slots.into_iter().map(|s| s.unwrap_or_else(|| Ok(Vec::new()))).collect())
    }

    /// `Ping`: the session is alive.
    pub async fn ping(&mut self) -> Result<(), AmiError> {
        self.action("Ping", &[]).await.map(|_| ())
    }

    /// `Ping` answered within `timeout`, or [`AmiError::Timeout`]: the keepalive of a
    /// long-lived events session, where a silent peer must be noticed sooner than
    /// [`ACTION_TIMEOUT`]. Events that arrive meanwhile stay queued, in order, for
    /// [`Session::next_event`]; the `Pong` itself is never one of them.
    pub async fn ping_within(&mut self, timeout: Duration) -> Result<(), AmiError> {
        let m = self.raw_action_until("Ping", &[], Instant::now() + timeout).await?;
        if m.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Error")) {
            return Err(refused("Ping", &m));
        }
        Ok(())
    }

    /// The next event of an events-on session: first those queued while earlier actions
    /// waited for their answers (oldest first), then what the server sends. `Ok(None)` when
    /// `deadline` passes with no event (time for a keepalive, say); [`AmiError::Closed`]
    /// when the server ends the connection. A `Response` that no action waits for any more
    /// (the late answer to an action that timed out) is dropped: it is not an event.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<Option<Message>, AmiError> {
        loop {
            let m = match self.events.pop_front() {
                Some(m) => m,
                None => match self.conn.read(deadline, "the next event").await {
                    Ok(Some(m)) => m,
                    Ok(None) => return Err(AmiError::Closed("the server ended the event stream".into())),
                    Err(AmiError::Timeout(_)) => return Ok(None),
                    Err(e) => return Err(e),
                },
            };
            if m.kind == Kind::Event {
                return Ok(Some(m));
            }
            tracing::debug!(response = ?m.name(), action_id = ?m.action_id(), "AMI answer nobody waits for, dropped");
        }
    }

    /// Events received while waiting for answers, oldest first.
    pub fn take_events(&mut self) -> Vec<Message> {
        self.events.drain(..).collect()
    }

    /// Ends the session politely (`Logoff`; Asterisk then closes the connection).
    pub async fn logoff(mut self) -> Result<(), AmiError> {
        let m = self.raw_action("Logoff", &[]).await?;
        match m.get("Response") {
            Some(r) if r.eq_ignore_ascii_case("Goodbye") => Ok(()),
            _ => Err(refused("Logoff", &m)),
        }
    }
}
