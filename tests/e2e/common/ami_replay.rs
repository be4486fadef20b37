//! A fixture-replay AMI server: it answers a client with the bytes a real Asterisk 22 sent in
//! the same session (`shared/fixtures/ami`), chunk by chunk as they arrived, with the delays
//! that matter (a failed login is answered after about a second, then the socket closes).
//!
//! It is a test peer that *replays*; it is not Asterisk. It checks that the client sends the
//! same actions in the same order (and, for MD5 logins, the same key), and rewrites the
//! fixture's ActionIDs to the client's so answers can be matched.
//!
//! [`AmiServer`] is the other mode, for a long-lived client (the event link): it answers
//! each action *by name* with a [`Canned`] answer cut from a fixture, on every connection
//! (so a client can reconnect), lets a test push a fixture's events, close the connection,
//! or leave `Ping` unanswered, and records what it received.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub::pbx::ami::{Decoder, Kind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::WAIT;

/// Longest delay replayed (the real ones that matter are about 1 s).
const MAX_DELAY: Duration = Duration::from_millis(1500);

fn dir() -> PathBuf {
    std::env::var_os("HUB_AMI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ami"))
}

struct Exchange {
    /// The fixture client's actions in one write.
    actions: Vec<Message>,
    /// What the server sent after them: (delay after the previous step, bytes).
    replies: Vec<(Duration, String)>,
    /// Whether the server closed the connection after the replies.
    close: bool,
}

struct Script {
    greeting: String,
    exchanges: Vec<Exchange>,
}

fn script(name: &str) -> Script {
    let path = dir().join(format!("{name}.timeline.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut greeting = String::new();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut last_t = 0.0f64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["t"].as_f64().unwrap_or(0.0);
        let data = v["data"].as_str().unwrap_or("").to_string();
        match v["dir"].as_str() {
            Some("S") if exchanges.is_empty() => greeting.push_str(&data),
            Some("S") => {
                let delay = Duration::from_secs_f64((t - last_t).max(0.0)).min(MAX_DELAY);
                exchanges.last_mut().unwrap().replies.push((delay, data));
            }
            Some("C") => {
                let mut d = Decoder::client();
                d.feed(data.as_bytes());
                let mut actions = Vec::new();
                while let Ok(Some(m)) = d.next_message() {
                    actions.push(m);
                }
                exchanges.push(Exchange { actions, replies: Vec::new(), close: false });
            }
            _ if data.contains("server closed") => {
                if let Some(e) = exchanges.last_mut() {
                    e.close = true;
                }
            }
            _ => {}
        }
        last_t = t;
    }
    Script { greeting, exchanges }
}

/// A running replay of one fixture, for one client connection.
pub struct Replay {
    /// Where to connect.
    pub port: u16,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Replay {
    /// Listens on 127.0.0.1 (ephemeral port) and replays `fixture` to the first client.
    pub async fn start(fixture: &str) -> Replay {
        let script = script(fixture);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
            sock.write_all(script.greeting.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut decoder = Decoder::client();
            let mut buf = [0u8; 8192];
            for (i, ex) in script.exchanges.iter().enumerate() {
                let mut got = Vec::new();
                while got.len() < ex.actions.len() {
                    match decoder.next_message() {
                        Ok(Some(m)) => got.push(m),
                        Ok(None) => {
                            let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
                            if n == 0 {
                                return Ok(()); // the client stopped early: fine
                            }
                            decoder.feed(&buf[..n]);
                        }
                        Err(e) => return Err(format!("client sent non-AMI bytes: {e}")),
                    }
                }
                let mut replies: String = ex.replies.iter().map(|(_, s)| s.as_str()).collect();
                for (want, sent) in ex.actions.iter().zip(&got) {
                    if want.get("Action") != sent.get("Action") {
                        return Err(format!(
                            "step {i}: expected action {:?}, client sent {:?}",
                            want.get("Action"),
                            sent.get("Action")
                        ));
                    }
                    if want.get("Key").is_some() && want.get("Key") != sent.get("Key") {
                        return Err(format!("step {i}: MD5 key differs from the one Asterisk accepted or refused"));
                    }
                    replies = match (want.action_id(), sent.action_id()) {
                        (Some(old), Some(new)) => {
                            replies.replace(&format!("ActionID: {old}\r\n"), &format!("ActionID: {new}\r\n"))
                        }
                        (None, Some(new)) => match replies.find("\r\n") {
                            Some(end) if replies.starts_with("Response:") => {
                                format!("{}\r\nActionID: {new}{}", &replies[..end], &replies[end..])
                            }
                            _ => replies,
                        },
                        _ => replies,
                    };
                }
                // Same chunk boundaries as recorded (the last chunk absorbs any length change).
                let mut rest = replies.as_str();
                for (k, (delay, original)) in ex.replies.iter().enumerate() {
                    tokio::time::sleep(*delay).await;
                    let take = if k + 1 == ex.replies.len() { rest.len() } else { original.len().min(rest.len()) };
                    let (chunk, tail) = rest.split_at(take);
                    sock.write_all(chunk.as_bytes()).await.map_err(|e| e.to_string())?;
                    rest = tail;
                }
                if ex.close {
                    return Ok(());
                }
            }
            // Everything replayed: wait for the client to go.
            let _ = sock.read(&mut buf).await;
            Ok(())
        });
        Replay { port, task }
    }

    /// The replay's verdict: did the client send what the real session sent?
    pub async fn verdict(self) -> Result<(), String> {
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .map_err(|_| "replay still running".to_string())?
            .unwrap()
    }
}

/// Whether a message is a response (for assertions).
pub fn is_response(m: &Message) -> bool {
    m.kind == Kind::Response
}

/// One line of a `.timeline.jsonl`.
struct Entry {
    t: f64,
    dir: String,
    data: String,
}

fn timeline(name: &str) -> Vec<Entry> {
    let path = dir().join(format!("{name}.timeline.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Entry {
                t: v["t"].as_f64().unwrap_or(0.0),
                dir: v["dir"].as_str().unwrap_or("").to_string(),
                data: v["data"].as_str().unwrap_or("").to_string(),
            }
        })
        .collect()
}

fn decode(decoder: &mut Decoder) -> Vec<Message> {
    std::iter::from_fn(|| decoder.next_message().expect("valid AMI")).collect()
}

/// The server's messages of a fixture, each with the step it arrived in: step 0 runs from
/// the greeting to the first `---- … ----` note (an out-of-band step such as a SIP
/// REGISTER), step 1 to the next one, and so on.
fn server_steps(fixture: &str) -> Vec<(usize, Message)> {
    let mut decoder = Decoder::server();
    let mut step = 0;
    let mut out = Vec::new();
    for e in timeline(fixture) {
        match e.dir.as_str() {
            "S" => {
                decoder.feed(e.data.as_bytes());
                out.extend(decode(&mut decoder).into_iter().map(|m| (step, m)));
            }
            "note" if e.data.starts_with("----") => step += 1,
            _ => {}
        }
    }
    out
}

/// The events without an ActionID that Asterisk sent during one step of a fixture (see
/// [`server_steps`]): in 07a and 07b, step 1 is the REGISTER and step 2 the un-REGISTER.
pub fn step_events(fixture: &str, step: usize) -> Vec<Message> {
    let events: Vec<Message> = server_steps(fixture)
        .into_iter()
        .filter(|(s, m)| *s == step && m.kind == Kind::Event && m.action_id().is_none())
        .map(|(_, m)| m)
        .collect();
    assert!(!events.is_empty(), "{fixture}: no events in step {step}");
    events
}

/// Writes messages as a server would (`Key: Value` lines and an empty line each). Values
/// that ended in a bare LF on the wire were trimmed by the decoder and are written without.
fn encode(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        for (k, v) in &m.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
    }
    out
}

/// What Asterisk answered to one action in a fixture, ready to be given to another client.
#[derive(Clone, Debug)]
pub struct Canned {
    /// Events sent before the answer (as if they happened while the action was handled).
    before: Vec<Message>,
    /// The answer: every message that carried the action's ActionID (the `Response`, and for
    /// event lists the items and the `…Complete` event).
    answer: Vec<Message>,
    /// Events without ActionID that follow the answer.
    after: Vec<Message>,
    /// How long Asterisk took to answer (capped like the replay's delays).
    delay: Duration,
    /// Whether Asterisk closed the connection after answering.
    close: bool,
}

impl Canned {
    /// The answer to the action sent with `action_id` in `fixture`.
    pub fn answer(fixture: &str, action_id: &str) -> Canned {
        let entries = timeline(fixture);
        let sent_at = entries
            .iter()
            .position(|e| {
                let mut d = Decoder::client();
                d.feed(e.data.as_bytes());
                e.dir == "C" && decode(&mut d).iter().any(|m| m.action_id() == Some(action_id))
            })
            .unwrap_or_else(|| panic!("{fixture}: no action with ActionID {action_id}"));
        let answered_at = entries[sent_at..].iter().find(|e| e.dir == "S").map_or(0.0, |e| e.t);
        let delay = Duration::from_secs_f64((answered_at - entries[sent_at].t).max(0.0)).min(MAX_DELAY);
        let later = &entries[sent_at + 1..];
        let close = !later.iter().any(|e| e.dir == "C") && later.iter().any(|e| e.data.contains("server closed"));
        let answer: Vec<Message> =
            server_steps(fixture).into_iter().map(|(_, m)| m).filter(|m| m.action_id() == Some(action_id)).collect();
        assert!(!answer.is_empty(), "{fixture}: nothing answered {action_id}");
        Canned { before: Vec::new(), answer, after: Vec::new(), delay, close }
    }

    /// The same answer, preceded by `events`.
    pub fn after_events(mut self, events: Vec<Message>) -> Canned {
        self.before = events;
        self
    }

    /// The same answer, followed by `events`.
    pub fn then_events(mut self, events: Vec<Message>) -> Canned {
        self.after = events;
        self
    }

    /// The bytes for a client that sent `action_id` (or none: then the answer has none).
    fn render(&self, action_id: Option<&str>) -> String {
        let answer: Vec<Message> = self
            .answer
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.headers.retain_mut(|(k, v)| {
                    if !k.eq_ignore_ascii_case("ActionID") {
                        return true;
                    }
                    match action_id {
                        Some(id) => {
                            *v = id.to_string();
                            true
                        }
                        None => false,
                    }
                });
                m
            })
            .collect();
        format!("{}{}{}", encode(&self.before), encode(&answer), encode(&self.after))
    }

    fn is_success(&self) -> bool {
        self.answer.first().and_then(|m| m.get("Response")) == Some("Success")
    }
}

/// Answers for an events-on client that logs in, lists endpoints and contacts, pings and
/// logs off, all cut from real transcripts: Login from 07a (with the `FullyBooted` and
/// `SuccessfulAuth` events that follow it), the listings without registrations (06a, 06c:
/// `No Contacts found`), Ping from 03, Logoff from 11.
pub fn link_answers() -> Vec<(&'static str, Canned)> {
    let fixture = "07a-register-unregister-events-udp";
    vec![
        ("Login", Canned::answer(fixture, "07a-login").then_events(step_events(fixture, 0))),
        ("PJSIPShowEndpoints", Canned::answer("06a-pjsip-show-endpoints", "06a-1")),
        ("PJSIPShowContacts", Canned::answer("06c-pjsip-show-contacts", "06c-1")),
        ("Ping", Canned::answer("03-ping", "03-ping-1")),
        ("Logoff", Canned::answer("11-logoff", "11-logoff")),
    ]
}

/// An action the server received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Which connection (1 for the first).
    pub connection: usize,
    /// When it arrived.
    pub at: tokio::time::Instant,
    /// The action as sent.
    pub message: Message,
}

impl Received {
    /// The `Action:` name.
    pub fn action(&self) -> &str {
        self.message.get("Action").unwrap_or("")
    }
}

/// What the server saw so far.
#[derive(Clone, Debug, Default)]
pub struct ServerLog {
    /// Connections accepted.
    pub connections: usize,
    /// Logins answered with success.
    pub logins: usize,
    /// Every action, in order.
    pub actions: Vec<Received>,
}

impl ServerLog {
    /// The action names one connection sent, in order.
    pub fn actions_of(&self, connection: usize) -> Vec<&str> {
        self.actions.iter().filter(|r| r.connection == connection).map(Received::action).collect()
    }
}

enum Control {
    Push(String),
    Close,
}

struct ServerShared {
    greeting: String,
    answers: Mutex<HashMap<String, Canned>>,
    answer_pings: AtomicBool,
    log: watch::Sender<ServerLog>,
    current: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    stop: CancellationToken,
}

/// A fixture-answering AMI server for long-lived clients (see the module doc). Stops when
/// dropped.
pub struct AmiServer {
    /// Where to connect.
    pub port: u16,
    shared: Arc<ServerShared>,
}

impl AmiServer {
    /// Listens on an ephemeral 127.0.0.1 port.
    pub async fn start(answers: Vec<(&str, Canned)>) -> AmiServer {
        Self::start_on(0, answers).await
    }

    /// Listens on 127.0.0.1:`port` (a port a client already tries: Asterisk comes up late).
    pub async fn start_on(port: u16, answers: Vec<(&str, Canned)>) -> AmiServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let greeting = timeline("01a-login-success").into_iter().find(|e| e.dir == "S").unwrap().data;
        let shared = Arc::new(ServerShared {
            greeting,
            answers: Mutex::new(answers.into_iter().map(|(name, c)| (name.to_ascii_lowercase(), c)).collect()),
            answer_pings: AtomicBool::new(true),
            log: watch::channel(ServerLog::default()).0,
            current: Mutex::new(None),
            stop: CancellationToken::new(),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            loop {
                let sock = tokio::select! {
                    () = accepting.stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((sock, _)) => sock,
                        Err(_) => return,
                    },
                };
                let (tx, rx) = mpsc::unbounded_channel();
                *accepting.current.lock().unwrap() = Some(tx);
                let mut number = 0;
                accepting.log.send_modify(|l| {
                    l.connections += 1;
                    number = l.connections;
                });
                tokio::spawn(serve(accepting.clone(), sock, number, rx));
            }
        });
        AmiServer { port, shared }
    }

    /// Replaces the answer to `action` (from the next time it is asked).
    pub fn answer(&self, action: &str, canned: Canned) {
        self.shared.answers.lock().unwrap().insert(action.to_ascii_lowercase(), canned);
    }

    /// Whether `Ping` gets an answer (`false`: a silent, half-dead Asterisk).
    pub fn answer_pings(&self, yes: bool) {
        self.shared.answer_pings.store(yes, Ordering::SeqCst);
    }

    /// Sends events on the latest connection, as Asterisk would when they happen.
    pub fn push(&self, events: &[Message]) {
        self.control(Control::Push(encode(events)));
    }

    /// Closes the latest connection (Asterisk restarted, or the network dropped it).
    pub fn close_connection(&self) {
        self.control(Control::Close);
    }

    fn control(&self, c: Control) {
        let current = self.shared.current.lock().unwrap();
        let sent = current.as_ref().expect("no connection yet").send(c);
        assert!(sent.is_ok(), "the latest connection has ended");
    }

    /// What the server saw so far.
    pub fn log(&self) -> ServerLog {
        self.shared.log.borrow().clone()
    }

    /// Waits (at most [`WAIT`]) until the log satisfies `done`; panics with the log otherwise.
    pub async fn wait_for(&self, what: &str, done: impl FnMut(&ServerLog) -> bool) -> ServerLog {
        let mut rx = self.shared.log.subscribe();
        match tokio::time::timeout(WAIT, rx.wait_for(done)).await {
            Ok(Ok(log)) => log.clone(),
            _ => panic!("AMI server: no {what} within {WAIT:?}; saw {:#?}", self.log()),
        }
    }
}

impl Drop for AmiServer {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// One client connection: greeting, then each action answered by name, pushed events and
/// closes in between.
async fn serve(
    shared: Arc<ServerShared>,
    mut sock: TcpStream,
    connection: usize,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    if sock.write_all(shared.greeting.as_bytes()).await.is_err() {
        return;
    }
    let mut decoder = Decoder::client();
    let mut buf = [0u8; 8192];
    loop {
        while let Ok(Some(action)) = decoder.next_message() {
            shared.log.send_modify(|l| {
                l.actions.push(Received { connection, at: tokio::time::Instant::now(), message: action.clone() })
            });
            let name = action.get("Action").unwrap_or("").to_ascii_lowercase();
            if name == "ping" && !shared.answer_pings.load(Ordering::SeqCst) {
                continue;
            }
            let canned = shared.answers.lock().unwrap().get(&name).cloned();
            let canned = canned.unwrap_or_else(|| {
                let mut c = Canned::answer("10a-unknown-action", "10a-1");
                for (_, v) in &mut c.answer[0].headers {
                    *v = v.replace("NoSuchThing", action.get("Action").unwrap_or(""));
                }
                c
            });
            // Asterisk's own answer time (a refused login takes about a second).
            tokio::time::sleep(canned.delay).await;
            if sock.write_all(canned.render(action.action_id()).as_bytes()).await.is_err() {
                return;
            }
            if name == "login" && canned.is_success() {
                shared.log.send_modify(|l| l.logins += 1);
            }
            if canned.close {
                return;
            }
        }
        tokio::select! {
            () = shared.stop.cancelled() => return,
            c = control.recv() => match c {
                Some(Control::Push(bytes)) => {
                    if sock.write_all(bytes.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Some(Control::Close) | None => return,
            },
            n = sock.read(&mut buf) => match n {
                Ok(n) if n > 0 => decoder.feed(&buf[..n]),
                _ => return,
            },
        }
    }
}
