//! Calls to the user agent, on rsipstack's transactions and dialogs.
//!
//! [`CallService::serve`] takes every server transaction rsipstack creates:
//! - a new INVITE is admitted ([`CallTable::admit`]: `486` beyond `max_calls`, `503` while
//!   stopping or overloaded, see [`super::overload`]), its SDP offer answered ([`super::sdp`]: `488` with no common codec, `400` when
//!   unreadable), a media leg opened, and a call task started ([`super::call`]);
//! - a request inside a dialog goes to that dialog (BYE, INFO, re-INVITE, UPDATE, NOTIFY, ACK,
//!   CANCEL through the INVITE's transaction);
//! - anything else gets `481 Call/Transaction Does Not Exist`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::message::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::Transaction;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::call::{self, CallSetup};
use super::call_table::{AdmitError, CallCommand, CallTable, CallView};
use super::media_port::{CallInfo, MediaApp};
use super::sdp::{self, LocalSession, SdpError};

/// How calls are answered.
#[derive(Clone, Debug)]
pub struct CallSettings {
    /// Ring (send `180`) this long before answering; zero answers at once.
    pub ring: Duration,
    /// Hang up after this long without RTP from the caller (not while held); zero: never.
    pub rtp_timeout: Duration,
    /// The user part of the hub's Contact.
    pub contact_user: String,
    /// Where transfers point (`Refer-To: sip:EXT@domain`); the caller's host when absent.
    pub transfer_domain: Option<String>,
    /// The address the transports listen on (for Contact and SDP when it is a wildcard).
    pub listen: SocketAddr,
    /// Where calls the hub places go, and how it authenticates there; none: it places none.
    pub outbound: Option<Outbound>,
}

/// The registrar the hub places calls through (Asterisk), with the hub's digest credentials.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// Its host and port, the domain of the URIs called (`asterisk.example.org:5060`).
    pub domain: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Digest username (and the user part of the hub's From).
    pub username: String,
    /// Digest password.
    pub password: crate::model::Secret,
}

/// Why the hub could not place a call.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No `[sip] registrar` is configured.
    #[error("no registrar is configured ([sip] registrar): the hub has nowhere to place calls")]
    NoRegistrar,
    /// Over the call limit, or stopping.
    #[error(transparent)]
    Admit(#[from] AdmitError),
    /// No media for the call.
    #[error(transparent)]
    Media(#[from] super::media_port::MediaError),
    /// The extension or a URI built from it is not valid.
    #[error("cannot call {0:?}: not a valid SIP URI")]
    BadTarget(String),
}

/// The calls side of the user agent.
pub struct CallService {
    layer: Arc<DialogLayer>,
    table: Arc<CallTable>,
    app: Arc<dyn MediaApp>,
    settings: CallSettings,
}

impl CallService {
    /// A service answering with `app`, its calls in `table`.
    pub fn new(layer: Arc<DialogLayer>, table: Arc<CallTable>, app: Arc<dyn MediaApp>, settings: CallSettings) -> Self {
        Self { layer, table, app, settings }
    }

    /// The live calls.
    pub fn table(&self) -> &Arc<CallTable> {
        &self.table
    }

    /// Serves server transactions until `shutdown`, then hangs up every call (within 2 s).
    pub async fn serve(self: Arc<Self>, mut incoming: TransactionReceiver, shutdown: CancellationToken) {
        loop {
            let tx = tokio::select! {
                () = shutdown.cancelled() => break,
                tx = incoming.recv() => match tx { Some(tx) => tx, None => break },
            };
            self.clone().dispatch(tx);
        }
        self.table.close(Duration::from_secs(2)).await;
    }

    fn dispatch(self: Arc<Self>, mut tx: Transaction) {
        let has_to_tag = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
        if tx.original.method == Method::Invite && !has_to_tag {
            tokio::spawn(async move { self.new_call(tx).await });
            return;
        }
        match self.layer.match_dialog(&tx) {
            Some(Dialog::Invite(mut dialog)) => {
                tokio::spawn(async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        tracing::debug!(error = %e, "in-dialog request failed");
                    }
                });
            }
            _ if tx.original.method == Method::Ack => {} // a stray ACK is absorbed
            _ => {
                tokio::spawn(async move {
                    let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                });
            }
        }
    }

    async fn new_call(self: Arc<Self>, mut tx: Transaction) {
        let request = &tx.original;
        let peer = tx
            .connection
            .as_ref()
            .and_then(|c| c.get_addr().get_socketaddr().ok())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let call_id = request.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default();
        let from = request.from_header().map(|f| f.value().to_owned()).unwrap_or_default();
        let to = request.uri.user().unwrap_or_default().to_owned();
        let span = tracing::info_span!("sip_call", %call_id, %peer, to = %to);
        let _enter = span.enter();
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
        let view = CallView::new(call_id.clone(), from.clone(), to.clone(), peer);
        let slot = match self.table.admit(view, commands) {
            Ok(slot) => slot,
            Err(e) => {
                let status = match e {
                    AdmitError::Full(_) => StatusCode::BusyHere,
                    AdmitError::Closing | AdmitError::Overloaded => StatusCode::ServiceUnavailable,
                };
                // Under overload one line per refused call would add to the load.
                if e == AdmitError::Overloaded {
                    tracing::debug!(error = %e, "call refused");
                } else {
                    tracing::info!(error = %e, "call refused");
                }
                let headers = match e {
                    AdmitError::Closing => vec![Header::Other("Retry-After".into(), "30".into())],
                    AdmitError::Overloaded => vec![Header::Other("Retry-After".into(), "5".into())],
                    AdmitError::Full(_) => vec![],
                };
                drop(_enter);
                let _ = tx.reply_with(status, headers, None).await;
                return;
            }
        };
        let refuse = |status: StatusCode, warning: Option<String>| {
            let headers: Vec<Header> = warning
                .map(|w| vec![Header::Other("Warning".into(), format!("399 hub \"{}\"", w.replace('"', "'")))])
                .unwrap_or_default();
            (status, headers)
        };
        let timer = match call::session_timer(&tx.original) {
            Ok(t) => t,
            Err(min_se) => {
                self.table.remove(slot.id);
                drop(_enter);
                let _ = tx
                    .reply_with(
                        StatusCode::SessionIntervalTooSmall,
                        vec![Header::Other("Min-SE".into(), min_se.to_string())],
                        None,
                    )
                    .await;
                return;
            }
        };
        let headers = CallInfo::script_headers(tx.original.headers.iter().map(|h| (h.name(), h.value())));
        let info = CallInfo { id: slot.id.to_string(), call_id, from, to, peer, headers };
        let (leg_events, leg_rx) = tokio::sync::mpsc::unbounded_channel();
        let answer = if tx.original.body.is_empty() {
            Err(refuse(StatusCode::NotAcceptableHere, Some("an offer in the INVITE is required".into())))
        } else {
            match self.app.open(&info, leg_events) {
                Err(e) => {
                    tracing::warn!(error = %e, "no media for the call");
                    Err(refuse(StatusCode::ServiceUnavailable, Some(e.to_string())))
                }
                Ok(leg) => {
                    let rtp = announced(leg.local_rtp(), &tx.original.uri, peer);
                    let local = LocalSession { id: u64::from(rand::random::<u32>()), version: 1, rtp };
                    slot.set_leg(leg);
                    match sdp::answer(&tx.original.body, self.app.codecs(), &local) {
                        Ok(a) => Ok((a, local)),
                        Err(e @ SdpError::Malformed(_)) => Err(refuse(StatusCode::BadRequest, Some(e.to_string()))),
                        Err(e @ SdpError::NoCommonCodec(_)) => {
                            Err(refuse(StatusCode::NotAcceptableHere, Some(e.to_string())))
                        }
                    }
                }
            }
        };
        let (answer, local) = match answer {
            Ok(a) => a,
            Err((status, headers)) => {
                tracing::info!(status = u16::from(status.clone()), "call refused");
                self.table.remove(slot.id);
                drop(_enter);
                let _ = tx.reply_with(status, headers, None).await;
                return;
            }
        };
        let contact_host = announced(self.settings.listen, &tx.original.uri, peer);
        let contact = format!("sip:{}@{}", self.settings.contact_user, contact_host);
        let contact = match rsipstack::sip::Uri::try_from(contact.as_str()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the Contact");
                self.table.remove(slot.id);
                drop(_enter);
                let _ = tx.reply(StatusCode::ServerInternalError).await;
                return;
            }
        };
        let (state_tx, state_rx) = self.layer.new_dialog_state_channel();
        let dialog = match self.layer.get_or_create_server_invite(&tx, state_tx, None, Some(contact)) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "no dialog for the INVITE");
                self.table.remove(slot.id);
                drop(_enter);
                let _ = tx.reply(StatusCode::ServerInternalError).await;
                return;
            }
        };
        let id: DialogId = dialog.id();
        let mut handler = dialog.clone();
        drop(_enter);
        tokio::spawn(async move {
            if let Err(e) = handler.handle(&mut tx).await {
                tracing::debug!(error = %e, "INVITE transaction ended with an error");
            }
        });
        let setup = CallSetup {
            slot,
            dialog,
            dialog_id: id,
            states: state_rx,
            leg_events: leg_rx,
            commands: command_rx,
            answer,
            local,
            timer,
            settings: self.settings.clone(),
            app_codecs: self.app.codecs().to_vec(),
            peer,
            outbound: false,
        };
        let layer = self.layer.clone();
        let table = self.table.clone();
        tokio::spawn(call::run(setup, layer, table).instrument(span));
    }

    /// Places a call to `extension` through the registrar (digest auth when challenged), with
    /// the media app on the hub's side. Returns the call's id at once; the call appears in the
    /// table while it rings and ends there as any other.
    pub fn dial(self: &Arc<Self>, extension: &str) -> Result<u64, DialError> {
        let out = self.settings.outbound.clone().ok_or(DialError::NoRegistrar)?;
        let uri = |user: &str, host: &str| {
            rsipstack::sip::Uri::try_from(format!("sip:{user}@{host}").as_str())
                .map_err(|_| DialError::BadTarget(extension.to_owned()))
        };
        let callee = uri(extension, &out.domain)?;
        let caller = uri(&out.username, &out.domain)?;
        let listen = announced(self.settings.listen, &callee, out.addr);
        let contact = uri(&self.settings.contact_user, &listen.to_string())?;
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
        let view = CallView::new(String::new(), caller.to_string(), extension.to_owned(), out.addr);
        let slot = self.table.admit(view, commands)?;
        let info = CallInfo {
            id: slot.id.to_string(),
            call_id: String::new(),
            from: caller.to_string(),
            to: extension.to_owned(),
            peer: out.addr,
            headers: Vec::new(),
        };
        let (leg_events, leg_rx) = tokio::sync::mpsc::unbounded_channel();
        let leg = match self.app.open(&info, leg_events) {
            Ok(leg) => leg,
            Err(e) => {
                self.table.remove(slot.id);
                return Err(e.into());
            }
        };
        let rtp = announced(leg.local_rtp(), &callee, out.addr);
        slot.set_leg(leg);
        let local = LocalSession { id: u64::from(rand::random::<u32>()), version: 1, rtp };
        let offer = sdp::offer(self.app.codecs(), &local);
        let option = rsipstack::dialog::invitation::InviteOption {
            caller,
            callee,
            destination: Some(rsipstack::transport::SipAddr::new(rsipstack::sip::Transport::Udp, out.addr.into())),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.clone().into_bytes()),
            contact,
            credential: Some(rsipstack::dialog::authenticate::Credential {
                username: out.username.clone(),
                password: out.password.expose().to_owned(),
                realm: None,
                auth_username: None,
            }),
            ..Default::default()
        };
        let id = slot.id;
        let span = tracing::info_span!("sip_dial", call = id, to = %extension);
        let service = self.clone();
        tokio::spawn(
            async move {
                let (state_tx, state_rx) = service.layer.new_dialog_state_channel();
                let (dialog, mut invite) = match service.layer.do_invite_async(option, state_tx) {
                    Ok(started) => started,
                    Err(e) => {
                        tracing::warn!(error = %e, "call failed");
                        service.table.remove(id);
                        return;
                    }
                };
                // While it rings, an operator's hang-up cancels it (CANCEL, then the 487).
                let mut command_rx = command_rx;
                let (mut commands_open, mut cancelled) = (true, false);
                let answered = loop {
                    tokio::select! {
                        r = &mut invite => break match r {
                            Ok(Ok(r)) => Ok(r),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(e) => Err(e.to_string()),
                        },
                        c = command_rx.recv(), if commands_open => match c {
                            Some(CallCommand::Hangup { .. }) if !cancelled => {
                                tracing::info!("call cancelled before the answer");
                                cancelled = true;
                                if let Err(e) = dialog.cancel().await {
                                    tracing::warn!(error = %e, "CANCEL failed");
                                }
                            }
                            Some(_) => {}
                            None => commands_open = false,
                        },
                    }
                };
                let (dialog, response) = match answered {
                    Ok((_, Some(r)))
                        if r.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful && !cancelled =>
                    {
                        (dialog, r)
                    }
                    Ok((_, r)) => {
                        let status = r.map_or(0, |r| u16::from(r.status_code));
                        tracing::info!(status, "call not answered");
                        service.table.remove(id);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "call failed");
                        service.table.remove(id);
                        return;
                    }
                };
                let params = match sdp::parse_answer(&response.body, service.app.codecs(), &local) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "unusable answer; hanging up");
                        let _ = dialog.bye().await;
                        service.layer.remove_dialog(&dialog.id());
                        service.table.remove(id);
                        return;
                    }
                };
                let call_id = dialog.id().call_id.clone();
                slot.update(|v| v.call_id = call_id);
                let setup = CallSetup {
                    slot,
                    dialog_id: dialog.id(),
                    dialog,
                    states: state_rx,
                    leg_events: leg_rx,
                    commands: command_rx,
                    answer: sdp::Answer { sdp: offer, params },
                    local,
                    timer: None,
                    settings: service.settings.clone(),
                    app_codecs: service.app.codecs().to_vec(),
                    peer: out.addr,
                    outbound: true,
                };
                call::run(setup, service.layer.clone(), service.table.clone()).await;
            }
            .instrument(span),
        );
        Ok(id)
    }
}

/// The address to announce for a local socket: itself, or when it is a wildcard, the address
/// the caller used to reach the hub (the Request-URI host), or the one facing the caller.
pub fn announced(local: SocketAddr, uri: &rsipstack::sip::Uri, peer: SocketAddr) -> SocketAddr {
    if !local.ip().is_unspecified() {
        return local;
    }
    let from_uri = uri.host().to_string().trim_matches(['[', ']']).parse::<IpAddr>().ok();
    let ip = from_uri.filter(|ip| !ip.is_unspecified()).or_else(|| facing(peer)).unwrap_or(local.ip());
    SocketAddr::new(ip, local.port())
}

/// The local address the kernel would use to reach `peer` (no packet is sent).
fn facing(peer: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}
