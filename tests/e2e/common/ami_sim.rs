//! A *simulated* Asterisk manager for provisioning tests. It is not Asterisk and must never
//! be called that: it answers each action with a message whose shape (headers, order,
//! wording) is taken from the real Asterisk 22.10.1 transcripts in `shared/fixtures/ami`,
//! with names and values filled in from its own state.
//!
//! Its state comes from the files the hub writes, loaded the way Asterisk loads `#include`d
//! PJSIP config on `Reload res_pjsip.so`, and as strictly as the fixtures show Asterisk is:
//! - a file that does not parse (an unterminated `[section`) is refused whole and the
//!   previous objects stay (fixture 05c);
//! - an object with an option its type does not have, or a value the option does not accept,
//!   is dropped alone (05b, 05e), and the reload still reports success;
//! - an endpoint naming a missing auth or AOR loads anyway (05a, 05d).
//!
//! It listens on a port it can be stopped and restarted on (Asterisk down, then back), counts
//! reloads, holds fake live channels, and writes every response in two TCP chunks.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub::pbx::ami::{Decoder, Message};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn fixtures() -> PathBuf {
    std::env::var_os("HUB_AMI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ami"))
}

/// One message of a fixture as ordered headers.
type Headers = Vec<(String, String)>;

/// Every message (after the greeting) of `<name>.server`.
fn fixture_messages(name: &str) -> Vec<Headers> {
    let path = fixtures().join(format!("{name}.server"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = text.split_once("\r\n").map(|(_, rest)| rest).unwrap_or("");
    body.split("\r\n\r\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            block
                .split("\r\n")
                .filter_map(|line| line.split_once(": ").or_else(|| line.strip_suffix(':').map(|k| (k, ""))))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn find(messages: &[Headers], key: &str, value: &str) -> Headers {
    messages
        .iter()
        .find(|m| m.iter().any(|(k, v)| k == key && v == value))
        .unwrap_or_else(|| panic!("no fixture message with {key}: {value}"))
        .clone()
}

fn set(m: &mut Headers, key: &str, value: &str) {
    match m.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => m.push((key.to_string(), value.to_string())),
    }
}

fn with_id(mut m: Headers, id: Option<&str>) -> Headers {
    match id {
        Some(id) => set(&mut m, "ActionID", id),
        None => m.retain(|(k, _)| k != "ActionID"),
    }
    m
}

fn encode(m: &Headers) -> String {
    let mut s = String::new();
    for (k, v) in m {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// Response shapes from the real transcripts.
struct Shapes {
    greeting: String,
    login_ok: Headers,
    login_failed: Headers,
    challenge: Headers,
    reload_ok: Headers,
    no_such_module: Headers,
    endpoint_start: Headers,
    endpoint_detail: Headers,
    auth_detail: Headers,
    aor_detail: Headers,
    endpoint_complete: Headers,
    endpoint_unknown: Headers,
    endpoints_start: Headers,
    endpoint_list: Headers,
    endpoints_complete: Headers,
    no_contacts: Headers,
    channels_start: Headers,
    channel: Headers,
    channels_complete: Headers,
    settings: Headers,
    ping: Headers,
    goodbye: Headers,
    unknown: Headers,
    originate_queued: Headers,
    originate_ok: Headers,
    originate_failed: Headers,
    permission_denied: Headers,
    peer_status: Headers,
    device_state: Headers,
    contact_status: Headers,
    contacts_start: Headers,
    contact_item: Headers,
    contacts_complete: Headers,
}

impl Shapes {
    fn load() -> Self {
        let greeting = {
            let text = std::fs::read_to_string(fixtures().join("01a-login-success.server")).unwrap();
            format!("{}\r\n", text.split("\r\n").next().unwrap())
        };
        let login = fixture_messages("01a-login-success");
        let failed = fixture_messages("01c-login-failure-wrong-secret");
        let md5 = fixture_messages("02a-challenge-md5-login");
        let reload = fixture_messages("04a-reload-res-pjsip");
        let nomod = fixture_messages("04f-reload-nonexistent-module");
        let ep = fixture_messages("06b-pjsip-show-endpoint-1001");
        let unknown_ep = fixture_messages("06f-pjsip-show-endpoint-unknown");
        let eps = fixture_messages("06a-pjsip-show-endpoints");
        let contacts = fixture_messages("06c-pjsip-show-contacts");
        let chans = fixture_messages("08e-originate-async-local-with-events");
        let empty_chans = fixture_messages("08c-core-show-channels-empty");
        let settings = fixture_messages("08b-core-settings");
        let ping = fixture_messages("03-ping");
        let unknown = fixture_messages("10a-unknown-action");
        let failed_orig = fixture_messages("08h-originate-async-failure-with-events");
        let denied = fixture_messages("01d-action-before-login");
        let register = fixture_messages("07b-register-unregister-events-websocket");
        let registered = fixture_messages("06c-pjsip-show-contacts-registered");
        Self {
            greeting,
            login_ok: find(&login, "Message", "Authentication accepted"),
            login_failed: find(&failed, "Message", "Authentication failed"),
            challenge: md5.iter().find(|m| m.iter().any(|(k, _)| k == "Challenge")).unwrap().clone(),
            reload_ok: find(&reload, "Message", "Module Reloaded"),
            no_such_module: find(&nomod, "Response", "Error"),
            endpoint_start: find(&ep, "EventList", "start"),
            endpoint_detail: find(&ep, "Event", "EndpointDetail"),
            auth_detail: find(&ep, "Event", "AuthDetail"),
            aor_detail: find(&ep, "Event", "AorDetail"),
            endpoint_complete: find(&ep, "Event", "EndpointDetailComplete"),
            endpoint_unknown: find(&unknown_ep, "Response", "Error"),
            endpoints_start: find(&eps, "EventList", "start"),
            endpoint_list: find(&eps, "Event", "EndpointList"),
            endpoints_complete: find(&eps, "Event", "EndpointListComplete"),
            no_contacts: find(&contacts, "Response", "Error"),
            channels_start: find(&empty_chans, "EventList", "start"),
            channel: find(&chans, "Event", "CoreShowChannel"),
            channels_complete: find(&empty_chans, "Event", "CoreShowChannelsComplete"),
            settings: find(&settings, "AsteriskVersion", "22.10.1"),
            ping: find(&ping, "Ping", "Pong"),
            goodbye: find(&ping, "Response", "Goodbye"),
            unknown: find(&unknown, "Response", "Error"),
            originate_queued: find(&chans, "Message", "Originate successfully queued"),
            originate_ok: find(&chans, "Event", "OriginateResponse"),
            originate_failed: find(&failed_orig, "Event", "OriginateResponse"),
            permission_denied: find(&denied, "Message", "Permission denied"),
            peer_status: find(&register, "Event", "PeerStatus"),
            device_state: find(&register, "Event", "DeviceStateChange"),
            contact_status: find(&register, "Event", "ContactStatus"),
            contacts_start: find(&registered, "EventList", "start"),
            contact_item: find(&registered, "Event", "ContactList"),
            contacts_complete: find(&registered, "Event", "ContactListComplete"),
        }
    }
}

/// A loaded PJSIP object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// `endpoint`, `auth`, `aor`…
    pub kind: String,
    /// Options as written.
    pub options: BTreeMap<String, String>,
}

fn is_bool(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "no" | "true" | "false" | "on" | "off" | "1" | "0" | "y" | "n")
}
fn is_uint(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}
fn one_of<'a>(choices: &'a [&'a str]) -> impl Fn(&str) -> bool + 'a {
    move |v| choices.contains(&v)
}

/// Whether Asterisk 22's `kind` object has option `key` and accepts `value` (the options the
/// hub's templates could use; anything else drops the object, as in fixture 05b).
fn option_ok(kind: &str, key: &str, value: &str) -> bool {
    let any = |_: &str| true;
    let check: &dyn Fn(&str) -> bool = match (kind, key) {
        (_, "type") => &any,
        ("endpoint", "context" | "disallow" | "allow" | "auth" | "aors" | "callerid" | "transport") => &any,
        ("endpoint", "set_var" | "mailboxes" | "outbound_auth" | "from_user" | "from_domain" | "accountcode") => &any,
        ("endpoint", "media_address" | "language" | "dtls_cert_file" | "dtls_private_key" | "identify_by") => &any,
        (
            "endpoint",
            "webrtc"
            | "use_avpf"
            | "dtls_auto_generate_cert"
            | "ice_support"
            | "rtcp_mux"
            | "direct_media"
            | "media_use_received_transport"
            | "bind_rtp_to_media_address"
            | "force_rport"
            | "rewrite_contact"
            | "rtp_symmetric"
            | "trust_id_inbound"
            | "send_pai"
            | "allow_subscribe",
        ) => &is_bool,
        ("endpoint", "rtp_timeout" | "rtp_timeout_hold" | "device_state_busy_at" | "max_audio_streams") => &is_uint,
        ("endpoint", "media_encryption") => &one_of(&["no", "sdes", "dtls"]),
        ("endpoint", "dtls_verify") => &one_of(&["yes", "no", "fingerprint", "certificate"]),
        ("endpoint", "dtls_setup") => &one_of(&["active", "passive", "actpass"]),
        ("endpoint", "dtls_fingerprint") => &one_of(&["SHA-1", "SHA-256"]),
        ("endpoint", "dtmf_mode") => &one_of(&["rfc4733", "inband", "info", "auto", "auto_info"]),
        ("auth", "auth_type") => &one_of(&["userpass", "md5", "google_oauth", "digest"]),
        ("auth", "username" | "password" | "realm") => &any,
        ("aor", "max_contacts" | "qualify_frequency" | "default_expiration" | "minimum_expiration") => &is_uint,
        ("aor", "maximum_expiration") => &is_uint,
        ("aor", "remove_existing" | "remove_unavailable" | "authenticate_qualify" | "support_path") => &is_bool,
        ("aor", "qualify_timeout") => &|v: &str| v.parse::<f64>().is_ok(),
        ("aor", "contact" | "mailboxes") => &any,
        ("identify", "endpoint" | "match") => &any,
        _ => return false,
    };
    check(value)
}

/// Parses Asterisk config text into sections; `Err` when Asterisk would refuse the file.
/// Config sections in file order: name and options.
type Sections = Vec<(String, Vec<(String, String)>)>;

fn parse_config(text: &str) -> Result<Sections, String> {
    let mut sections: Sections = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        // `;` starts a comment unless escaped as `\;`.
        let mut line = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&';') => {
                    line.push(';');
                    chars.next();
                }
                ';' => break,
                c => line.push(c),
            }
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("line {}: directive {line:?} in a generated file", n + 1));
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some((name, _)) = rest.split_once(']') else {
                return Err(format!("line {}: unterminated section header", n + 1));
            };
            sections.push((name.to_string(), Vec::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("line {}: no '=' in {line:?}", n + 1));
        };
        let Some(section) = sections.last_mut() else {
            return Err(format!("line {}: option outside a section", n + 1));
        };
        let v = v.strip_prefix('>').unwrap_or(v);
        section.1.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(sections)
}

#[derive(Default)]
struct State {
    objects: HashMap<(String, String), Object>,
    reloads: Vec<String>,
    actions: Vec<String>,
    channels: Vec<String>,
    hung_up: Vec<String>,
    registered: Vec<String>,
    /// Registered contact URIs by endpoint.
    contacts: Vec<(String, String)>,
    rejected: Vec<String>,
    dialplan_sections: Vec<String>,
}

/// A running simulated Asterisk manager.
pub struct AsteriskSim {
    /// Where to connect.
    pub port: u16,
    state: Arc<Mutex<State>>,
    config: SimConfig,
    stop: CancellationToken,
    events: tokio::sync::broadcast::Sender<Headers>,
    shapes: Arc<Shapes>,
}

/// What the simulated Asterisk is set up with.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Manager user.
    pub username: String,
    /// Manager secret.
    pub secret: String,
    /// The PJSIP files its `pjsip.conf` would `#include`, read at each res_pjsip reload.
    pub pjsip_files: Vec<PathBuf>,
    /// The dialplan file its `extensions.conf` would `#include`.
    pub dialplan_file: Option<PathBuf>,
}

impl SimConfig {
    /// The hub's three generated files in `dir`.
    pub fn for_dir(dir: &Path) -> Self {
        Self {
            username: "admin".into(),
            secret: "secret-test".into(),
            pjsip_files: vec![dir.join("hub-pjsip-trunk.conf"), dir.join("hub-pjsip-users.conf")],
            dialplan_file: Some(dir.join("hub-extensions.conf")),
        }
    }
}

impl AsteriskSim {
    /// Starts on an ephemeral port of 127.0.0.1.
    pub async fn start(config: SimConfig) -> Self {
        Self::start_on(0, config, Arc::default()).await
    }

    async fn start_on(port: u16, config: SimConfig, state: Arc<Mutex<State>>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the simulated AMI port");
        let port = listener.local_addr().unwrap().port();
        let stop = CancellationToken::new();
        let shapes = Arc::new(Shapes::load());
        let (events, _) = tokio::sync::broadcast::channel(256);
        let (st, cfg, token, ev, sh) = (state.clone(), config.clone(), stop.clone(), events.clone(), shapes.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((sock, _)) = accepted else { break };
                        let conn = Conn {
                            shapes: sh.clone(),
                            state: st.clone(),
                            config: cfg.clone(),
                            challenge: None,
                            authed: false,
                            events: false,
                            pushed: ev.subscribe(),
                        };
                        let token = token.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                () = token.cancelled() => {}
                                () = conn.serve(sock) => {}
                            }
                        });
                    }
                }
            }
        });
        Self { port, state, config, stop, events, shapes }
    }

    /// `ami://user:secret@127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("ami://{}:{}@127.0.0.1:{}", self.config.username, self.config.secret, self.port)
    }

    /// Asterisk goes down: the port closes and every connection drops. State is kept.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Asterisk comes back on the same port with the state it had.
    pub async fn restart(&self) -> Self {
        Self::start_on(self.port, self.config.clone(), self.state.clone()).await
    }

    /// Reloads asked for, by module, in order.
    pub fn reloads(&self) -> Vec<String> {
        self.state.lock().unwrap().reloads.clone()
    }

    /// Every action received, in order.
    pub fn actions(&self) -> Vec<String> {
        self.state.lock().unwrap().actions.clone()
    }

    /// The loaded PJSIP object of type `kind` (`endpoint`, `auth`, `aor`) named `name`
    /// (an endpoint and its AOR usually share a name).
    pub fn object(&self, kind: &str, name: &str) -> Option<Object> {
        self.state.lock().unwrap().objects.get(&(kind.to_string(), name.to_string())).cloned()
    }

    /// Names of loaded endpoints, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut v: Vec<String> = s.objects.keys().filter(|(k, _)| k == "endpoint").map(|(_, n)| n.clone()).collect();
        v.sort();
        v
    }

    /// Objects the last reloads dropped, with why (what Asterisk's log would say).
    pub fn rejected(&self) -> Vec<String> {
        self.state.lock().unwrap().rejected.clone()
    }

    /// Dialplan contexts loaded at the last pbx_config reload.
    pub fn dialplan_contexts(&self) -> Vec<String> {
        self.state.lock().unwrap().dialplan_sections.clone()
    }

    /// Adds a live channel (`PJSIP/alice-k3x9qa-00000001`).
    pub fn add_channel(&self, channel: &str) {
        self.state.lock().unwrap().channels.push(channel.to_string());
    }

    /// Channels still up.
    pub fn channels(&self) -> Vec<String> {
        self.state.lock().unwrap().channels.clone()
    }

    /// Channels hung up over AMI.
    pub fn hung_up(&self) -> Vec<String> {
        self.state.lock().unwrap().hung_up.clone()
    }

    /// Marks an endpoint as having a registered contact (Originate to it then succeeds).
    pub fn register(&self, endpoint: &str) {
        self.state.lock().unwrap().registered.push(endpoint.to_string());
    }

    /// A device registers as `endpoint` from `uri`: the state changes and every events-on
    /// session gets the events real Asterisk sends for a WebSocket registration (07b).
    pub fn register_contact(&self, endpoint: &str, uri: &str) {
        {
            let mut st = self.state.lock().unwrap();
            st.registered.push(endpoint.to_string());
            st.contacts.push((endpoint.to_string(), uri.to_string()));
        }
        let s = &self.shapes;
        let mut peer = with_id(s.peer_status.clone(), None);
        set(&mut peer, "Peer", &format!("PJSIP/{endpoint}"));
        let mut device = with_id(s.device_state.clone(), None);
        set(&mut device, "Device", &format!("PJSIP/{endpoint}"));
        let mut contact = with_id(s.contact_status.clone(), None);
        set(&mut contact, "URI", uri);
        set(&mut contact, "AOR", endpoint);
        set(&mut contact, "EndpointName", endpoint);
        for e in [peer, device, contact] {
            let _ = self.events.send(e);
        }
    }
}

impl Drop for AsteriskSim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Conn {
    shapes: Arc<Shapes>,
    state: Arc<Mutex<State>>,
    config: SimConfig,
    challenge: Option<String>,
    authed: bool,
    events: bool,
    pushed: tokio::sync::broadcast::Receiver<Headers>,
}

impl Conn {
    async fn serve(mut self, mut sock: TcpStream) {
        let _ = sock.set_nodelay(true);
        if sock.write_all(self.shapes.greeting.as_bytes()).await.is_err() {
            return;
        }
        let mut decoder = Decoder::client();
        let mut buf = [0u8; 8192];
        loop {
            let m = match decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => {
                    tokio::select! {
                        read = sock.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(n) => decoder.feed(&buf[..n]),
                        },
                        event = self.pushed.recv() => {
                            if let Ok(event) = event
                                && self.events
                                && sock.write_all(encode(&event).as_bytes()).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    continue;
                }
                Err(_) => return,
            };
            let (replies, close, delay) = self.answer(&m);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for reply in replies {
                let text = encode(&reply);
                // Two chunks per message: clients must parse from a buffer.
                let (a, b) = text.split_at(text.len() / 2);
                if sock.write_all(a.as_bytes()).await.is_err() || sock.write_all(b.as_bytes()).await.is_err() {
                    return;
                }
            }
            if close {
                let _ = sock.shutdown().await;
                return;
            }
        }
    }

    fn answer(&mut self, m: &Message) -> (Vec<Headers>, bool, Duration) {
        let s = &self.shapes;
        let id = m.action_id();
        let action = m.get("Action").unwrap_or("").to_string();
        self.state.lock().unwrap().actions.push(action.clone());
        let one = |h: &Headers| vec![with_id(h.clone(), id)];
        match action.to_ascii_lowercase().as_str() {
            "challenge" => {
                let challenge = format!("{}", rand::random::<u32>() % 900_000_000 + 100_000_000);
                self.challenge = Some(challenge.clone());
                let mut reply = with_id(s.challenge.clone(), id);
                set(&mut reply, "Challenge", &challenge);
                (vec![reply], false, Duration::ZERO)
            }
            "login" => {
                let user_ok = m.get("Username") == Some(self.config.username.as_str());
                let secret_ok = match (m.get("Key"), &self.challenge) {
                    (Some(key), Some(ch)) => {
                        key.eq_ignore_ascii_case(&hex::encode(Md5::digest(format!("{ch}{}", self.config.secret))))
                    }
                    (Some(_), None) => false,
                    (None, _) => m.get("Secret") == Some(self.config.secret.as_str()),
                };
                if user_ok && secret_ok {
                    self.authed = true;
                    self.events = !m.get("Events").is_some_and(|e| e.eq_ignore_ascii_case("off"));
                    (one(&s.login_ok), false, Duration::ZERO)
                } else {
                    // Real Asterisk answers a failed login after about a second, then closes.
                    (one(&s.login_failed), true, Duration::from_secs(1))
                }
            }
            "logoff" => (one(&s.goodbye), true, Duration::ZERO),
            _ if !self.authed => (one(&s.permission_denied), false, Duration::ZERO),
            "ping" => (one(&s.ping), false, Duration::ZERO),
            "coresettings" => (one(&s.settings), false, Duration::ZERO),
            "reload" => {
                let module = m.get("Module").unwrap_or("").trim_end_matches(".so").to_string();
                match module.as_str() {
                    "res_pjsip" => self.reload_pjsip(),
                    "pbx_config" => self.reload_dialplan(),
                    _ => return (one(&s.no_such_module), false, Duration::ZERO),
                }
                self.state.lock().unwrap().reloads.push(format!("{module}.so"));
                (one(&s.reload_ok), false, Duration::ZERO)
            }
            "pjsipshowendpoint" => (self.show_endpoint(m.get("Endpoint").unwrap_or(""), id), false, Duration::ZERO),
            "pjsipshowendpoints" => (self.show_endpoints(id), false, Duration::ZERO),
            "pjsipshowcontacts" => (self.show_contacts(id), false, Duration::ZERO),
            "coreshowchannels" => (self.show_channels(id), false, Duration::ZERO),
            "hangup" => {
                let channel = m.get("Channel").unwrap_or("");
                let mut st = self.state.lock().unwrap();
                if let Some(pos) = st.channels.iter().position(|c| c == channel) {
                    st.channels.remove(pos);
                    st.hung_up.push(channel.to_string());
                    let reply =
                        vec![("Response".into(), "Success".into()), ("Message".into(), "Channel Hungup".into())];
                    (vec![with_id(reply, id)], false, Duration::ZERO)
                } else {
                    let reply = vec![("Response".into(), "Error".into()), ("Message".into(), "No such channel".into())];
                    (vec![with_id(reply, id)], false, Duration::ZERO)
                }
            }
            "originate" => (self.originate(m, id), false, Duration::ZERO),
            _ => {
                let mut reply = with_id(s.unknown.clone(), id);
                set(
                    &mut reply,
                    "Message",
                    &format!("Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."),
                );
                (vec![reply], false, Duration::ZERO)
            }
        }
    }

    fn reload_pjsip(&self) {
        let mut loaded: HashMap<(String, String), Object> = HashMap::new();
        let mut rejected = Vec::new();
        for file in &self.config.pjsip_files {
            let Ok(text) = std::fs::read_to_string(file) else { continue };
            let sections = match parse_config(&text) {
                Ok(s) => s,
                Err(e) => {
                    // The whole reload keeps the previous objects (fixture 05c).
                    let mut st = self.state.lock().unwrap();
                    st.rejected.push(format!("{}: {e}", file.display()));
                    return;
                }
            };
            for (name, options) in sections {
                let kind = options.iter().find(|(k, _)| k == "type").map(|(_, v)| v.clone()).unwrap_or_default();
                let bad = options.iter().find(|(k, v)| !option_ok(&kind, k, v));
                if let Some((k, v)) = bad {
                    rejected.push(format!("{name}: {kind} option {k}={v} rejected"));
                    continue;
                }
                // Repeated keys (allow=, set_var=) accumulate, comma-joined.
                let mut opts: BTreeMap<String, String> = BTreeMap::new();
                for (k, v) in options {
                    opts.entry(k)
                        .and_modify(|old| {
                            old.push(',');
                            old.push_str(&v);
                        })
                        .or_insert(v);
                }
                loaded.insert((kind.clone(), name), Object { kind, options: opts });
            }
        }
        let mut st = self.state.lock().unwrap();
        st.objects = loaded;
        st.rejected.extend(rejected);
    }

    fn reload_dialplan(&self) {
        let Some(file) = &self.config.dialplan_file else { return };
        let Ok(text) = std::fs::read_to_string(file) else { return };
        if let Ok(sections) = parse_config(&text) {
            self.state.lock().unwrap().dialplan_sections = sections.into_iter().map(|(n, _)| n).collect();
        }
    }

    fn show_endpoint(&self, name: &str, id: Option<&str>) -> Vec<Headers> {
        let s = &self.shapes;
        let st = self.state.lock().unwrap();
        let key = |kind: &str, name: &str| (kind.to_string(), name.to_string());
        let Some(ep) = st.objects.get(&key("endpoint", name)) else {
            let mut reply = with_id(s.endpoint_unknown.clone(), id);
            set(&mut reply, "Message", &format!("Unable to retrieve endpoint {name}\n"));
            return vec![reply];
        };
        let opt = |o: &Object, k: &str| o.options.get(k).cloned().unwrap_or_default();
        let mut out = vec![with_id(s.endpoint_start.clone(), id)];
        let mut detail = with_id(s.endpoint_detail.clone(), id);
        for (key, option) in [("Aors", "aors"), ("Auth", "auth"), ("Context", "context"), ("SetVar", "set_var")] {
            set(&mut detail, key, &opt(ep, option));
        }
        set(&mut detail, "ObjectName", name);
        set(&mut detail, "Webrtc", if opt(ep, "webrtc") == "yes" { "yes" } else { "no" });
        let registered = st.registered.iter().any(|r| r == name);
        set(&mut detail, "DeviceState", if registered { "Not in use" } else { "Unavailable" });
        out.push(detail);
        let auth_name = opt(ep, "auth");
        if let Some(auth) = st.objects.get(&key("auth", &auth_name)) {
            let mut a = with_id(s.auth_detail.clone(), id);
            set(&mut a, "ObjectName", &auth_name);
            set(&mut a, "Username", &opt(auth, "username"));
            set(&mut a, "Password", &opt(auth, "password"));
            out.push(a);
        }
        let aor_name = opt(ep, "aors");
        if let Some(aor) = st.objects.get(&key("aor", &aor_name)) {
            let mut a = with_id(s.aor_detail.clone(), id);
            set(&mut a, "ObjectName", &aor_name);
            set(&mut a, "MaxContacts", &opt(aor, "max_contacts"));
            out.push(a);
        }
        let mut complete = with_id(s.endpoint_complete.clone(), id);
        set(&mut complete, "ListItems", &(out.len() - 1).to_string());
        out.push(complete);
        out
    }

    fn show_endpoints(&self, id: Option<&str>) -> Vec<Headers> {
        let s = &self.shapes;
        let st = self.state.lock().unwrap();
        let mut names: Vec<&String> = st.objects.keys().filter(|(k, _)| k == "endpoint").map(|(_, n)| n).collect();
        names.sort();
        let mut out = vec![with_id(s.endpoints_start.clone(), id)];
        for name in names {
            let ep = &st.objects[&("endpoint".to_string(), name.clone())];
            let mut item = with_id(s.endpoint_list.clone(), id);
            set(&mut item, "ObjectName", name);
            let contacts: Vec<String> =
                st.contacts.iter().filter(|(e, _)| e == name).map(|(e, uri)| format!("{e}/{uri},")).collect();
            set(&mut item, "Contacts", &contacts.concat());
            set(&mut item, "Aor", ep.options.get("aors").map(String::as_str).unwrap_or(""));
            set(&mut item, "Auths", ep.options.get("auth").map(String::as_str).unwrap_or(""));
            let registered = st.registered.iter().any(|r| r == name);
            set(&mut item, "DeviceState", if registered { "Not in use" } else { "Unavailable" });
            out.push(item);
        }
        let mut complete = with_id(s.endpoints_complete.clone(), id);
        set(&mut complete, "ListItems", &(out.len() - 1).to_string());
        out.push(complete);
        out
    }

    fn show_contacts(&self, id: Option<&str>) -> Vec<Headers> {
        let s = &self.shapes;
        let st = self.state.lock().unwrap();
        if st.contacts.is_empty() {
            // Real Asterisk answers an empty listing with an error (06c).
            return vec![with_id(s.no_contacts.clone(), id)];
        }
        let mut out = vec![with_id(s.contacts_start.clone(), id)];
        for (endpoint, uri) in &st.contacts {
            let mut item = with_id(s.contact_item.clone(), id);
            set(&mut item, "ObjectName", &format!("{endpoint};@0123456789abcdef"));
            set(&mut item, "Endpoint", endpoint);
            set(&mut item, "Uri", uri);
            out.push(item);
        }
        let mut complete = with_id(s.contacts_complete.clone(), id);
        set(&mut complete, "ListItems", &(out.len() - 1).to_string());
        out.push(complete);
        out
    }

    fn show_channels(&self, id: Option<&str>) -> Vec<Headers> {
        let s = &self.shapes;
        let st = self.state.lock().unwrap();
        let mut out = vec![with_id(s.channels_start.clone(), id)];
        for c in &st.channels {
            let mut item = with_id(s.channel.clone(), id);
            set(&mut item, "Channel", c);
            out.push(item);
        }
        let mut complete = with_id(s.channels_complete.clone(), id);
        set(&mut complete, "ListItems", &(out.len() - 1).to_string());
        out.push(complete);
        out
    }

    fn originate(&self, m: &Message, id: Option<&str>) -> Vec<Headers> {
        let s = &self.shapes;
        let channel = m.get("Channel").unwrap_or("").to_string();
        let endpoint = channel.strip_prefix("PJSIP/").unwrap_or("").to_string();
        let st = self.state.lock().unwrap();
        let ok =
            st.objects.contains_key(&("endpoint".to_string(), endpoint.clone())) && st.registered.contains(&endpoint);
        let mut out = vec![with_id(s.originate_queued.clone(), id)];
        if self.events {
            let mut event = with_id(if ok { s.originate_ok.clone() } else { s.originate_failed.clone() }, id);
            set(&mut event, "Channel", &channel);
            if let Some(exten) = m.get("Exten") {
                set(&mut event, "Exten", exten);
            }
            out.push(event);
        }
        out
    }
}
