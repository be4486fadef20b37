//! The call controller: one task owns every live call, every connected device and the ring
//! timers, and applies the state machine to what devices send. One owner means no locks and
//! no races between devices: two accepts, a cancel and an accept, a hang-up and an offer are
//! simply handled one after the other, in arrival order.
//!
//! ```text
//!  web::ws (per tab) ──Command──► Controller task ──step──► calls::state::Call
//!        ▲                             │  ring timers (DelayQueue)
//!        └──── JSON frames (mpsc) ◄────┘  records ──► store (CallLogStore)
//! ```
//!
//! A device whose outgoing queue is full (a stalled tab) is disconnected rather than allowed
//! to slow the controller down for everybody else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

use super::service::{HubNumbers, ServiceCall, ServiceEvent, ServicePeer};
use super::signal::{ClientMessage, ErrorCode, Party, ServerMessage};
use super::state::{Call, DeviceId, EndReason, Input, Notice, Phase, Refusal};
use crate::config::CallsConfig;
use crate::model::{CallId, CallPath, CallRecord, RecordId, Timestamp, UserId};
use crate::store::Store;

/// Frames a device may have queued before it counts as stalled and is disconnected.
pub const DEVICE_QUEUE: usize = 256;

/// What a connection tells the controller about its tab.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Who is signed in on it.
    pub user: Party,
    /// The client address (for the per-address limit).
    pub ip: IpAddr,
    /// The session's short id, to name the device in call records.
    pub session: String,
}

/// Whether a user can be reached in the browser right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Presence {
    /// Open tabs.
    pub devices: usize,
    /// Whether one of them is in an answered call.
    pub in_call: bool,
}

/// Counts for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Connected devices.
    pub devices: usize,
    /// Live calls (ringing or answered).
    pub calls: usize,
    /// Calls ended since start.
    pub ended: u64,
}

enum Command {
    Connect { info: DeviceInfo, out: mpsc::Sender<String>, reply: oneshot::Sender<DeviceId> },
    Disconnect { device: DeviceId },
    Place { device: DeviceId, callee: Party, video: bool, req: Option<String> },
    Dial { device: DeviceId, number: String, req: Option<String> },
    Message { device: DeviceId, msg: ClientMessage },
    Presence { users: Vec<UserId>, reply: oneshot::Sender<Vec<Presence>> },
    Stats { reply: oneshot::Sender<Stats> },
    Notify { user: UserId, msg: ServerMessage },
}

/// Handle to the controller task. Cheap to clone.
#[derive(Clone)]
pub struct Calls {
    tx: mpsc::Sender<Command>,
}

/// The controller has stopped (the hub is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the call controller has stopped")]
pub struct Stopped;

impl Calls {
    /// Starts the controller; it runs until `cancel` fires, then ends every live call.
    pub fn start(
        config: CallsConfig,
        store: Arc<dyn Store>,
        cancel: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start_with_numbers(config, store, None, cancel)
    }

    /// As [`Calls::start`], with the numbers the hub answers itself (apps, IVR scripts).
    pub fn start_with_numbers(
        config: CallsConfig,
        store: Arc<dyn Store>,
        numbers: Option<Arc<dyn HubNumbers>>,
        cancel: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16_384);
        let (service_tx, service_rx) = mpsc::unbounded_channel();
        let state = State::new(config, store, numbers, service_tx);
        let task = tokio::spawn(run(rx, service_rx, state, cancel));
        (Self { tx }, task)
    }

    async fn send(&self, cmd: Command) -> Result<(), Stopped> {
        self.tx.send(cmd).await.map_err(|_| Stopped)
    }

    /// Registers a tab; frames for it go to `out`. Returns its device id.
    pub async fn connect(&self, info: DeviceInfo, out: mpsc::Sender<String>) -> Result<DeviceId, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Connect { info, out, reply }).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// The tab's connection closed: its calls end or stop ringing there.
    pub async fn disconnect(&self, device: DeviceId) -> Result<(), Stopped> {
        self.send(Command::Disconnect { device }).await
    }

    /// Asks to call `callee` (already looked up and checked to exist) from `device`.
    pub async fn place(
        &self,
        device: DeviceId,
        callee: Party,
        video: bool,
        req: Option<String>,
    ) -> Result<(), Stopped> {
        self.send(Command::Place { device, callee, video, req }).await
    }

    /// Asks to call the hub number `number` from `device`.
    pub async fn dial(&self, device: DeviceId, number: String, req: Option<String>) -> Result<(), Stopped> {
        self.send(Command::Dial { device, number, req }).await
    }

    /// Any other message from a tab.
    pub async fn message(&self, device: DeviceId, msg: ClientMessage) -> Result<(), Stopped> {
        self.send(Command::Message { device, msg }).await
    }

    /// Presence of `users`, in order.
    pub async fn presence(&self, users: Vec<UserId>) -> Result<Vec<Presence>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Presence { users, reply }).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// Sends `msg` to every open tab of `user` (none open: nothing happens). For news that is
    /// not about a call, such as the voicemail badge ([`ServerMessage::Voicemail`]); it goes
    /// through the controller so it keeps its order with everything else the tabs get.
    pub async fn notify_user(&self, user: UserId, msg: ServerMessage) -> Result<(), Stopped> {
        self.send(Command::Notify { user, msg }).await
    }

    /// Current counts.
    pub async fn stats(&self) -> Result<Stats, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stats { reply }).await?;
        rx.await.map_err(|_| Stopped)
    }
}

async fn run(
    mut rx: mpsc::Receiver<Command>,
    mut service_rx: mpsc::UnboundedReceiver<(CallId, ServiceEvent)>,
    mut state: State,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            cmd = rx.recv() => match cmd {
                Some(cmd) => state.handle(cmd),
                None => break,
            },
            Some((call, event)) = service_rx.recv() => state.service_event(&call, event),
            Some(expired) = std::future::poll_fn(|cx| state.timers.poll_expired(cx)), if !state.timers.is_empty() => {
                state.ring_timeout(expired.into_inner());
            }
        }
        state.drop_stalled();
    }
    state.shutdown().await;
}

struct Device {
    info: DeviceInfo,
    out: mpsc::Sender<String>,
    /// Live calls this device takes part in (as caller, ringing device or answerer).
    calls: Vec<CallId>,
}

struct Live {
    call: Call,
    caller_ip: IpAddr,
    caller_party: Party,
    /// Whether the call still counts against the caller's ringing limits.
    ringing_counted: bool,
    timer: Option<delay_queue::Key>,
    /// Session short ids of every device involved, for the record.
    labels: Vec<String>,
    /// The hub's answering side, for a call to a hub number.
    service: Option<Service>,
}

/// The hub's side of a call to a hub number: a stand-in device id in the state machine, and
/// the peer that gets what the caller's tab sends it.
struct Service {
    device: DeviceId,
    peer: Box<dyn ServicePeer>,
}

struct State {
    config: CallsConfig,
    store: Arc<dyn Store>,
    next_device: DeviceId,
    devices: HashMap<DeviceId, Device>,
    by_user: HashMap<UserId, Vec<DeviceId>>,
    calls: HashMap<CallId, Live>,
    timers: DelayQueue<CallId>,
    ringing_by_user: HashMap<UserId, u32>,
    ringing_by_ip: HashMap<IpAddr, u32>,
    stalled: Vec<DeviceId>,
    ended: u64,
    numbers: Option<Arc<dyn HubNumbers>>,
    service_tx: mpsc::UnboundedSender<(CallId, ServiceEvent)>,
}

impl State {
    fn new(
        config: CallsConfig,
        store: Arc<dyn Store>,
        numbers: Option<Arc<dyn HubNumbers>>,
        service_tx: mpsc::UnboundedSender<(CallId, ServiceEvent)>,
    ) -> Self {
        Self {
            numbers,
            service_tx,
            config,
            store,
            next_device: 1,
            devices: HashMap::new(),
            by_user: HashMap::new(),
            calls: HashMap::new(),
            timers: DelayQueue::new(),
            ringing_by_user: HashMap::new(),
            ringing_by_ip: HashMap::new(),
            stalled: Vec::new(),
            ended: 0,
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Connect { info, out, reply } => {
                let id = self.next_device;
                self.next_device += 1;
                self.by_user.entry(info.user.id.clone()).or_default().push(id);
                self.devices.insert(id, Device { info, out, calls: Vec::new() });
                let _ = reply.send(id);
            }
            Command::Disconnect { device } => self.disconnect(device),
            Command::Place { device, callee, video, req } => self.place(device, callee, video, req),
            Command::Dial { device, number, req } => self.dial(device, number, req),
            Command::Message { device, msg } => self.message(device, msg),
            Command::Presence { users, reply } => {
                let list = users.iter().map(|u| self.presence(u)).collect();
                let _ = reply.send(list);
            }
            Command::Stats { reply } => {
                let _ = reply.send(Stats { devices: self.devices.len(), calls: self.calls.len(), ended: self.ended });
            }
            Command::Notify { user, msg } => {
                let json = msg.to_json();
                for device in self.by_user.get(&user).cloned().unwrap_or_default() {
                    self.send_json(device, json.clone());
                }
            }
        }
    }

    fn presence(&self, user: &UserId) -> Presence {
        let devices = self.by_user.get(user).map_or(&[][..], Vec::as_slice);
        let in_call = devices.iter().any(|d| self.in_answered_call(*d));
        Presence { devices: devices.len(), in_call }
    }

    fn in_answered_call(&self, device: DeviceId) -> bool {
        self.devices.get(&device).is_some_and(|d| {
            d.calls.iter().any(|c| self.calls.get(c).is_some_and(|l| l.call.peer_of(device).is_some()))
        })
    }

    /// Queues a frame for a device; a device that cannot keep up is disconnected.
    fn send(&mut self, device: DeviceId, msg: &ServerMessage) {
        let json = msg.to_json();
        self.send_json(device, json);
    }

    fn send_json(&mut self, device: DeviceId, json: String) {
        if let Some(d) = self.devices.get(&device)
            && d.out.try_send(json).is_err()
        {
            tracing::warn!(device, "device cannot keep up (or is gone); disconnecting it");
            self.stalled.push(device);
        }
    }

    fn error(&mut self, device: DeviceId, code: ErrorCode, message: &str, call: Option<CallId>, req: Option<String>) {
        self.send(device, &ServerMessage::error(code, message, call, req));
    }

    fn drop_stalled(&mut self) {
        while let Some(device) = self.stalled.pop() {
            // Dropping the sender ends the connection's writer, which closes the socket.
            self.disconnect(device);
        }
    }

    fn disconnect(&mut self, device: DeviceId) {
        let Some(d) = self.devices.remove(&device) else { return };
        if let Some(list) = self.by_user.get_mut(&d.info.user.id) {
            list.retain(|&x| x != device);
            if list.is_empty() {
                self.by_user.remove(&d.info.user.id);
            }
        }
        for call in d.calls {
            self.apply(&call, Input::DeviceGone(device), None);
        }
    }

    /// Whether `device` may place a call now; tells it why not. Returns the caller's party,
    /// address and session label.
    fn may_call(&mut self, device: DeviceId, req: &Option<String>) -> Option<(Party, IpAddr, String)> {
        let caller = self.devices.get(&device)?;
        let caller_party = caller.info.user.clone();
        let caller_ip = caller.info.ip;
        let caller_label = caller.info.session.clone();
        if !caller.calls.is_empty() {
            self.error(device, ErrorCode::Busy, "This tab is already in a call.", None, req.clone());
            return None;
        }
        let by_user = self.ringing_by_user.get(&caller_party.id).copied().unwrap_or(0);
        let by_ip = self.ringing_by_ip.get(&caller_ip).copied().unwrap_or(0);
        if by_user >= self.config.max_outgoing_per_user || by_ip >= self.config.max_outgoing_per_ip {
            self.error(
                device,
                ErrorCode::TooManyCalls,
                "Too many calls are ringing at once; wait for one to end.",
                None,
                req.clone(),
            );
            return None;
        }
        Some((caller_party, caller_ip, caller_label))
    }

    fn place(&mut self, device: DeviceId, callee: Party, video: bool, req: Option<String>) {
        if self.devices.get(&device).is_some_and(|d| d.info.user.id == callee.id) {
            return self.error(device, ErrorCode::CannotCallYourself, "You cannot call yourself.", None, req);
        }
        let Some((caller_party, caller_ip, caller_label)) = self.may_call(device, &req) else { return };

        let id = CallId::generate();
        let now = Timestamp::now();
        let targets = self.by_user.get(&callee.id).cloned().unwrap_or_default();
        let (free, busy): (Vec<DeviceId>, Vec<DeviceId>) =
            targets.into_iter().partition(|d| self.devices.get(d).is_some_and(|x| x.calls.is_empty()));
        let calling = ServerMessage::Calling { call: id.clone(), to: callee.clone(), devices: free.len(), req };
        self.send(device, &calling);
        for &b in &busy {
            self.send(b, &ServerMessage::CallWaiting { call: id.clone(), from: caller_party.clone() });
        }
        if free.is_empty() {
            let reason = if busy.is_empty() { EndReason::Offline } else { EndReason::Busy };
            let call = Call::unreachable(id.clone(), device, caller_party.id.clone(), callee.id.clone(), reason, now);
            self.send(device, &ServerMessage::Ended { call: id, reason });
            self.record(&call, vec![caller_label]);
            return;
        }
        let incoming = ServerMessage::Incoming { call: id.clone(), from: caller_party.clone(), video }.to_json();
        let mut labels = vec![caller_label];
        for &d in &free {
            if let Some(x) = self.devices.get_mut(&d) {
                x.calls.push(id.clone());
                labels.push(x.info.session.clone());
            }
            self.send_json(d, incoming.clone());
        }
        if let Some(x) = self.devices.get_mut(&device) {
            x.calls.push(id.clone());
        }
        *self.ringing_by_user.entry(caller_party.id.clone()).or_default() += 1;
        *self.ringing_by_ip.entry(caller_ip).or_default() += 1;
        let timer = Some(self.timers.insert(id.clone(), self.config.ring_timeout));
        let call = Call::ring(id.clone(), device, caller_party.id.clone(), callee.id.clone(), free, video, now);
        tracing::info!(call = %id, caller = %caller_party.id, callee = %callee.id, devices = call.ringing.len(), "ringing");
        self.calls
            .insert(id, Live { call, caller_ip, caller_party, ringing_counted: true, timer, labels, service: None });
    }

    /// A call to a number the hub answers itself: the answering side picks up at once, and the
    /// tab goes on as with an answered colleague (it sends its offer).
    fn dial(&mut self, device: DeviceId, number: String, req: Option<String>) {
        let name = self.numbers.as_ref().and_then(|n| n.name(&number));
        let (Some(name), Some(numbers)) = (name, self.numbers.clone()) else {
            return self.error(device, ErrorCode::UnknownNumber, "The hub does not answer that number.", None, req);
        };
        let Some((caller_party, caller_ip, caller_label)) = self.may_call(device, &req) else { return };
        let id = CallId::generate();
        let now = Timestamp::now();
        let callee = Party { id: UserId::from_string(&number), name, extension: Some(number.clone()) };
        self.send(device, &ServerMessage::Calling { call: id.clone(), to: callee.clone(), devices: 1, req });
        let events = {
            let (tx, call) = (self.service_tx.clone(), id.clone());
            Box::new(move |event| {
                let _ = tx.send((call.clone(), event));
            })
        };
        let service_call = ServiceCall { call: id.clone(), number: number.clone(), caller: caller_party.clone() };
        let peer = match numbers.answer(service_call, events) {
            Ok(peer) => peer,
            Err(e) => {
                tracing::warn!(call = %id, %number, error = %e, "the hub cannot answer the number");
                let call = Call::unreachable(id.clone(), device, caller_party.id, callee.id, EndReason::Offline, now);
                self.send(device, &ServerMessage::Ended { call: id, reason: EndReason::Offline });
                self.record(&call, vec![caller_label]);
                return;
            }
        };
        let stand_in = self.next_device;
        self.next_device += 1;
        if let Some(x) = self.devices.get_mut(&device) {
            x.calls.push(id.clone());
        }
        let call = Call::ring(id.clone(), device, caller_party.id.clone(), callee.id, vec![stand_in], false, now);
        tracing::info!(call = %id, caller = %caller_party.id, %number, "calling a hub number");
        let service = Some(Service { device: stand_in, peer });
        let live = Live {
            call,
            caller_ip,
            caller_party,
            ringing_counted: false,
            timer: None,
            labels: vec![caller_label],
            service,
        };
        self.calls.insert(id.clone(), live);
        self.apply(&id, Input::Accept(stand_in), None);
    }

    /// What the answering side of a call to a hub number has for the caller.
    fn service_event(&mut self, call: &CallId, event: ServiceEvent) {
        let Some(live) = self.calls.get(call) else { return };
        let Some(stand_in) = live.service.as_ref().map(|s| s.device) else { return };
        let caller = live.call.caller;
        match event {
            ServiceEvent::Answer(sdp) => self.send(caller, &ServerMessage::Answer { call: call.clone(), sdp }),
            ServiceEvent::Ice(candidate) => self.send(caller, &ServerMessage::Ice { call: call.clone(), candidate }),
            ServiceEvent::Hangup(reason) => {
                tracing::info!(%call, %reason, "the hub number hung up");
                self.apply(call, Input::Hangup(stand_in), None);
            }
            ServiceEvent::Failed(reason) => {
                tracing::warn!(%call, %reason, "the hub number's media failed");
                self.apply(call, Input::DeviceGone(stand_in), None);
            }
            ServiceEvent::Transfer(to) => {
                tracing::info!(%call, to = %to.id, "the hub number transfers the caller");
                let req = format!("transfer-{call}");
                self.send(caller, &ServerMessage::Transferred { call: call.clone(), to: to.clone(), req: req.clone() });
                // The hub number's call ends (the tab ignores its `ended`: it was told first),
                // then the tab calls the colleague as if it had asked to.
                self.apply(call, Input::Hangup(stand_in), None);
                self.place(caller, to, false, Some(req));
            }
        }
    }

    fn message(&mut self, device: DeviceId, msg: ClientMessage) {
        if !self.devices.contains_key(&device) {
            return;
        }
        match msg {
            ClientMessage::Ping { req, .. } => self.send(device, &ServerMessage::Pong { req }),
            // Calls are placed through `place` and `dial` (the connection looks the callee up).
            ClientMessage::Call { req, .. } | ClientMessage::Dial { req, .. } => {
                self.error(device, ErrorCode::BadMessage, "call requests go through the connection", None, req)
            }
            ClientMessage::Accept { call, .. } => self.apply(&call, Input::Accept(device), Some(device)),
            ClientMessage::Decline { call, .. } => self.apply(&call, Input::Decline(device), Some(device)),
            ClientMessage::Hangup { call, .. } => self.apply(&call, Input::Hangup(device), Some(device)),
            ClientMessage::Offer { call, sdp, .. } => {
                self.relay(device, &call, ServerMessage::Offer { call: call.clone(), sdp });
            }
            ClientMessage::Answer { call, sdp, .. } => {
                self.relay(device, &call, ServerMessage::Answer { call: call.clone(), sdp });
            }
            ClientMessage::Ice { call, candidate, .. } => {
                self.relay(device, &call, ServerMessage::Ice { call: call.clone(), candidate });
            }
        }
    }

    fn refuse(&mut self, device: DeviceId, call: &CallId, refusal: Refusal) {
        let (code, text) = match refusal {
            Refusal::NotYourCall => (ErrorCode::NotYourCall, "This tab has no part in that call."),
            Refusal::AlreadyAnswered => (ErrorCode::AlreadyAnswered, "The call was answered on another device."),
            Refusal::NotAnswered => (ErrorCode::NotAnswered, "The call has not been answered yet."),
            Refusal::Ended => (ErrorCode::CallEnded, "The call has ended."),
        };
        self.error(device, code, text, Some(call.clone()), None);
    }

    fn relay(&mut self, device: DeviceId, call: &CallId, msg: ServerMessage) {
        let Some(live) = self.calls.get_mut(call) else {
            return self.refuse(device, call, Refusal::Ended);
        };
        match live.call.step(Input::Relay(device), Timestamp::now()) {
            Ok(tell) => {
                let Some(&(peer, _)) = tell.first() else { return };
                match &mut live.service {
                    // The hub answers this call itself: its peer takes the tab's SDP and ICE.
                    Some(service) if service.device == peer => match msg {
                        ServerMessage::Offer { sdp, .. } => service.peer.offer(sdp),
                        ServerMessage::Ice { candidate, .. } => service.peer.ice(candidate),
                        _ => {}
                    },
                    _ => self.send(peer, &msg),
                }
            }
            Err(r) => self.refuse(device, call, r),
        }
    }

    /// Applies an input to a call and carries out its effects; `from` is told about a refusal.
    fn apply(&mut self, call_id: &CallId, input: Input, from: Option<DeviceId>) {
        let Some(live) = self.calls.get_mut(call_id) else {
            if let Some(d) = from {
                self.refuse(d, call_id, Refusal::Ended);
            }
            return;
        };
        let was_ringing = live.call.phase == Phase::Ringing;
        let before_ringing = live.call.ringing.clone();
        let result = live.call.step(input, Timestamp::now());
        let tell = match result {
            Ok(tell) => tell,
            Err(Refusal::AlreadyAnswered) if from.is_some() => {
                // A late accept or decline from another device of the callee.
                let d = from.unwrap_or_default();
                self.send(d, &ServerMessage::AnsweredElsewhere { call: call_id.clone() });
                return;
            }
            Err(r) => {
                if let Some(d) = from {
                    self.refuse(d, call_id, r);
                }
                return;
            }
        };
        let phase = live.call.phase;
        let still_ringing = live.call.ringing.clone();
        // Devices that stopped ringing (answered elsewhere, or gone) leave the call.
        let released: Vec<DeviceId> = before_ringing
            .iter()
            .copied()
            .filter(|d| !still_ringing.contains(d) && Some(*d) != answered_by(phase))
            .collect();
        if was_ringing && phase != Phase::Ringing {
            self.stop_ringing(call_id);
        }
        for (device, notice) in tell {
            let msg = match notice {
                Notice::Accepted => ServerMessage::Accepted { call: call_id.clone() },
                Notice::Answered => ServerMessage::Answered { call: call_id.clone() },
                Notice::AnsweredElsewhere => ServerMessage::AnsweredElsewhere { call: call_id.clone() },
                Notice::Ended(reason) => ServerMessage::Ended { call: call_id.clone(), reason },
                Notice::Relay => continue,
            };
            self.send(device, &msg);
        }
        for d in released {
            self.leave(d, call_id);
        }
        if let Phase::Ended(reason) = phase {
            self.finish(call_id, reason);
        }
    }

    fn leave(&mut self, device: DeviceId, call: &CallId) {
        if let Some(d) = self.devices.get_mut(&device) {
            d.calls.retain(|c| c != call);
        }
    }

    /// The call leaves the ringing phase: its timer and its weight against the limits go.
    fn stop_ringing(&mut self, call: &CallId) {
        let Some(live) = self.calls.get_mut(call) else { return };
        if let Some(key) = live.timer.take() {
            self.timers.remove(&key);
        }
        if std::mem::take(&mut live.ringing_counted) {
            let (user, ip) = (live.call.caller_user.clone(), live.caller_ip);
            decrement(&mut self.ringing_by_user, &user);
            decrement(&mut self.ringing_by_ip, &ip);
        }
    }

    fn ring_timeout(&mut self, call: CallId) {
        if let Some(live) = self.calls.get_mut(&call) {
            live.timer = None;
        }
        self.apply(&call, Input::RingTimeout, None);
    }

    fn finish(&mut self, call_id: &CallId, reason: EndReason) {
        self.stop_ringing(call_id);
        let Some(live) = self.calls.remove(call_id) else { return };
        for d in live.call.devices.iter() {
            self.leave(*d, call_id);
        }
        self.ended += 1;
        tracing::info!(call = %call_id, reason = ?reason, caller = %live.caller_party.id, "call ended");
        self.record(&live.call, live.labels);
    }

    fn record(&mut self, call: &Call, labels: Vec<String>) {
        let record = record_of(call, labels);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.add_call_record(&record).await {
                tracing::error!(call = %record.id, error = %e, "writing the call record failed");
            }
        });
    }

    /// Ends every live call (the hub is stopping) and writes their records.
    async fn shutdown(&mut self) {
        let ids: Vec<CallId> = self.calls.keys().cloned().collect();
        let now = Timestamp::now();
        for id in ids {
            if let Some(mut live) = self.calls.remove(&id) {
                let devices: Vec<DeviceId> = live.call.devices.clone();
                live.call.phase = Phase::Ended(EndReason::ConnectionLost);
                live.call.ended_at = Some(now);
                for d in devices {
                    self.send(d, &ServerMessage::Ended { call: id.clone(), reason: EndReason::ConnectionLost });
                }
                let record = record_of(&live.call, live.labels);
                if let Err(e) = self.store.add_call_record(&record).await {
                    tracing::error!(call = %id, error = %e, "writing the call record failed");
                }
            }
        }
    }
}

fn answered_by(phase: Phase) -> Option<DeviceId> {
    match phase {
        Phase::Answered { by } => Some(by),
        _ => None,
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

fn record_of(call: &Call, labels: Vec<String>) -> CallRecord {
    let reason = match call.phase {
        Phase::Ended(r) => r,
        _ => EndReason::ConnectionLost,
    };
    CallRecord {
        id: RecordId::from_string(call.id.as_str()),
        caller: call.caller_user.to_string(),
        callee: call.callee_user.to_string(),
        path: CallPath::Browser,
        devices: labels,
        started_at: call.started_at,
        answered_at: call.answered_at,
        ended_at: call.ended_at.unwrap_or_else(Timestamp::now),
        outcome: reason.outcome(),
    }
}

#[cfg(test)]
mod tests;
