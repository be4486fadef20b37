//! One call's life after admission: ring, answer, serve what arrives in its dialog, end.
//!
//! The task owns the call: it answers the INVITE (`180` first when `[sip] ring` is set), starts
//! the media leg, then reacts to
//! - the dialog: ACK (up), re-INVITE/UPDATE (hold, unhold, new address, new codec: answered
//!   with a new SDP version, `488` when unusable and the old session kept), INFO digits,
//!   NOTIFY of a transfer, BYE or CANCEL (ended), a missing ACK (rsipstack ends it after
//!   64·T1 and sends BYE);
//! - the media leg: hang up, transfer;
//! - commands from outside (`hub sip hangup|transfer`, shutdown);
//! - its timers: RTP inactivity (`[sip] rtp_timeout`, not while held) and the session timer
//!   (RFC 4028, the caller refreshes; no refresh within the interval ends the call).
//!
//! Every path ends in the same cleanup: the dialog leaves rsipstack's layer and the call
//! leaves the table (which drops the media leg).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, Request, StatusCode};
use tokio::sync::mpsc::UnboundedReceiver;

use super::call_table::{CallCommand, CallSlot, CallState, CallTable, show_params};
use super::calls::CallSettings;
use super::dtmf_info;
use super::media_port::LegEvent;
use super::sdp::{self, Answer, AudioCodec, LocalSession, SdpError};
use crate::model::Timestamp;

/// The methods a call accepts, sent in `Allow`.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, UPDATE";
/// The smallest session interval accepted (RFC 4028 §4: 90 s).
pub const MIN_SE: u64 = 90;

/// A session timer the caller asked for (RFC 4028); the caller refreshes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval.
    pub interval: Duration,
}

/// Everything a call task starts with.
pub struct CallSetup {
    /// Its place in the table.
    pub slot: Arc<CallSlot>,
    /// Its dialog.
    pub dialog: InviteDialog,
    /// The dialog's id in rsipstack's layer.
    pub dialog_id: DialogId,
    /// The dialog's state changes.
    pub states: DialogStateReceiver,
    /// What the media leg asks.
    pub leg_events: UnboundedReceiver<LegEvent>,
    /// What the outside asks.
    pub commands: UnboundedReceiver<CallCommand>,
    /// The answer to the INVITE's offer.
    pub answer: Answer,
    /// The hub's SDP session.
    pub local: LocalSession,
    /// The session timer, if the caller asked for one.
    pub timer: Option<SessionTimer>,
    /// How calls are answered.
    pub settings: CallSettings,
    /// The codecs the media side runs.
    pub app_codecs: Vec<AudioCodec>,
    /// Where the signalling comes from.
    pub peer: SocketAddr,
    /// The hub placed this call (it is already answered; nothing to ring or accept).
    pub outbound: bool,
}

fn header<'a>(request: &'a Request, names: &[&str]) -> Option<&'a str> {
    request.headers.iter().find(|h| names.iter().any(|n| h.name().eq_ignore_ascii_case(n))).map(|h| h.value())
}

/// The session timer an INVITE asks for, or `Err(min)` when its interval is below [`MIN_SE`]
/// (answered `422` with `Min-SE`).
pub fn session_timer(request: &Request) -> Result<Option<SessionTimer>, u64> {
    let Some(value) = header(request, &["Session-Expires", "x"]) else { return Ok(None) };
    let Ok(secs) = value.split(';').next().unwrap_or("").trim().parse::<u64>() else { return Ok(None) };
    let min = header(request, &["Min-SE"]).and_then(|v| v.split(';').next()?.trim().parse::<u64>().ok());
    if secs < MIN_SE {
        return Err(MIN_SE.max(min.unwrap_or(0)));
    }
    Ok(Some(SessionTimer { interval: Duration::from_secs(secs.max(min.unwrap_or(0))) }))
}

fn reason(text: &str) -> Header {
    Header::Reason(format!("Q.850;cause=16;text=\"{}\"", text.replace('"', "'")).into())
}

/// Runs the call to its end, then removes it from `layer` and `table`.
pub async fn run(mut setup: CallSetup, layer: Arc<DialogLayer>, table: Arc<CallTable>) {
    let ended = serve(&mut setup).await;
    let media = setup.slot.with_leg(|l| l.stats()).unwrap_or_default();
    tracing::info!(
        call = setup.slot.id,
        ended = %ended,
        packets_in = media.packets_in,
        packets_out = media.packets_out,
        lost = media.lost,
        jitter_ms = media.jitter_ms,
        late = media.late,
        digits = %media.digits,
        "call ended"
    );
    setup.slot.update(|v| v.state = CallState::Ending);
    setup.slot.drop_leg();
    layer.remove_dialog(&setup.dialog_id);
    table.remove(setup.slot.id);
}

/// Why a call ended, for the log.
type Ended = String;

async fn serve(setup: &mut CallSetup) -> Ended {
    if setup.outbound {
        return serve_answered(setup).await;
    }
    if let Some(ended) = ring(setup).await {
        return ended;
    }
    let mut headers = vec![
        Header::ContentType("application/sdp".into()),
        Header::Allow(ALLOW.into()),
        Header::Supported("timer".into()),
    ];
    if let Some(t) = setup.timer {
        headers.push(Header::SessionExpires(format!("{};refresher=uac", t.interval.as_secs()).into()));
        headers.push(Header::Require("timer".into()));
    }
    if let Err(e) = setup.dialog.accept(Some(headers), Some(setup.answer.sdp.clone().into_bytes())) {
        return format!("could not answer: {e}");
    }
    serve_answered(setup).await
}

/// The call from its 200 on (sent by the hub, or received for a call it placed).
async fn serve_answered(setup: &mut CallSetup) -> Ended {
    let params = setup.answer.params.clone();
    setup.slot.with_leg(|leg| leg.start(&params));
    let local_rtp = setup.local.rtp;
    let outbound = setup.outbound;
    let id = setup.slot.id;
    setup.slot.update(|v| {
        v.state = if !outbound {
            CallState::Answering
        } else if params.direction.is_hold() {
            CallState::Held
        } else {
            CallState::Up
        };
        v.local_rtp = Some(local_rtp);
        show_params(v, &params);
        if outbound {
            v.answered_at = Some(Timestamp::now());
            tracing::info!(call = id, local_rtp = %local_rtp, codec = params.codec.name(), "call up");
        }
    });
    let mut refreshed = Instant::now();
    let tick = tick_interval(&setup.settings, setup.timer);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            state = setup.states.recv() => match state {
                None => return "the dialog layer went away".into(),
                Some(DialogState::Terminated(_, why)) => return terminated(&why),
                Some(DialogState::Confirmed(..)) => {
                    let held = setup.answer.params.direction.is_hold();
                    let id = setup.slot.id;
                    setup.slot.update(|v| {
                        if v.answered_at.is_none() {
                            v.answered_at = Some(Timestamp::now());
                            tracing::info!(call = id, local_rtp = %local_rtp, codec = v.codec.as_deref().unwrap_or("-"), "call up");
                        }
                        if matches!(v.state, CallState::Answering | CallState::Up | CallState::Held) {
                            v.state = if held { CallState::Held } else { CallState::Up };
                        }
                    });
                }
                Some(DialogState::Updated(_, request, handle)) => {
                    refreshed = Instant::now();
                    reoffer(setup, &request, handle).await;
                }
                Some(DialogState::Info(_, request, handle)) => info(setup, &request, handle).await,
                Some(DialogState::Notify(_, request, handle)) => {
                    if let Some(ended) = notify(setup, &request, handle).await {
                        return ended;
                    }
                }
                Some(DialogState::Options(_, _, handle)) => {
                    let _ = handle.respond(StatusCode::OK, Some(vec![Header::Allow(ALLOW.into())]), None).await;
                }
                Some(DialogState::Refer(_, _, handle) | DialogState::Message(_, _, handle) | DialogState::Publish(_, _, handle)) => {
                    let _ = handle.respond(StatusCode::MethodNotAllowed, Some(vec![Header::Allow(ALLOW.into())]), None).await;
                }
                Some(_) => {}
            },
            Some(event) = setup.leg_events.recv() => match event {
                LegEvent::Hangup { reason: why } => return hang_up(setup, &why).await,
                LegEvent::Transfer { target } => transfer(setup, &target).await,
            },
            Some(command) = setup.commands.recv() => match command {
                CallCommand::Hangup { reason: why } => return hang_up(setup, &why).await,
                CallCommand::Transfer { target } => transfer(setup, &target).await,
            },
            _ = ticker.tick() => {
                if let Some(t) = setup.timer
                    && refreshed.elapsed() > t.interval
                {
                    return hang_up(setup, "session timer expired without a refresh").await;
                }
                let timeout = setup.settings.rtp_timeout;
                let held = setup.answer.params.direction.is_hold();
                if !timeout.is_zero() && !held {
                    let idle = setup.slot.with_leg(|l| l.stats().idle_ms).unwrap_or(0);
                    if Duration::from_millis(idle) >= timeout {
                        return hang_up(setup, "no RTP from the caller").await;
                    }
                }
            }
        }
    }
}

fn tick_interval(settings: &CallSettings, timer: Option<SessionTimer>) -> Duration {
    let mut tick = Duration::from_secs(1);
    if !settings.rtp_timeout.is_zero() {
        tick = tick.min(settings.rtp_timeout / 4);
    }
    if let Some(t) = timer {
        tick = tick.min(t.interval / 8);
    }
    tick.max(Duration::from_millis(50))
}

/// Sends `180` and waits `[sip] ring`; `Some` when the call ended meanwhile (CANCEL, a command).
async fn ring(setup: &mut CallSetup) -> Option<Ended> {
    if setup.settings.ring.is_zero() {
        return None;
    }
    if let Err(e) = setup.dialog.ringing(None, None) {
        return Some(format!("could not ring: {e}"));
    }
    let until = tokio::time::sleep(setup.settings.ring);
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => return None,
            state = setup.states.recv() => match state {
                None => return Some("the dialog layer went away".into()),
                Some(DialogState::Terminated(_, why)) => return Some(terminated(&why)),
                Some(_) => {}
            },
            Some(CallCommand::Hangup { reason: why }) = setup.commands.recv() => {
                let _ = setup.dialog.reject(Some(StatusCode::TemporarilyUnavailable), Some(why.clone()));
                return Some(format!("refused before answer: {why}"));
            }
        }
    }
}

fn terminated(why: &TerminatedReason) -> Ended {
    match why {
        TerminatedReason::UacBye => "BYE from the caller".into(),
        TerminatedReason::UacCancel => "CANCEL from the caller".into(),
        TerminatedReason::Timeout => "no ACK for the 200 (BYE sent)".into(),
        TerminatedReason::UasBye => "BYE sent".into(),
        other => format!("{other:?}"),
    }
}

async fn hang_up(setup: &mut CallSetup, why: &str) -> Ended {
    setup.slot.update(|v| v.state = CallState::Ending);
    match setup.dialog.bye_with_headers(Some(vec![reason(why)])).await {
        Ok(()) => format!("hung up: {why}"),
        Err(e) => format!("hung up ({why}), BYE failed: {e}"),
    }
}

/// A re-INVITE or UPDATE: a new offer (hold, unhold, new address, codec) or a refresh.
async fn reoffer(setup: &mut CallSetup, request: &Request, handle: TransactionHandle) {
    let mut headers = vec![Header::Allow(ALLOW.into()), Header::Supported("timer".into())];
    if let Some(t) = setup.timer {
        headers.push(Header::SessionExpires(format!("{};refresher=uac", t.interval.as_secs()).into()));
        headers.push(Header::Require("timer".into()));
    }
    if request.body.is_empty() {
        // A refresh without an offer (RFC 4028 UPDATE) or a late-offer re-INVITE: our
        // current session goes back unchanged (for a re-INVITE it is the offer, its answer
        // comes in the ACK and is taken as is).
        if request.method == Method::Invite {
            headers.push(Header::ContentType("application/sdp".into()));
            let _ = handle.respond(StatusCode::OK, Some(headers), Some(setup.answer.sdp.clone().into_bytes())).await;
        } else {
            let _ = handle.respond(StatusCode::OK, Some(headers), None).await;
        }
        return;
    }
    let next = LocalSession { version: setup.local.version + 1, ..setup.local.clone() };
    match sdp::answer(&request.body, &setup.app_codecs, &next) {
        Ok(answer) => {
            headers.push(Header::ContentType("application/sdp".into()));
            let params = answer.params.clone();
            tracing::info!(direction = ?params.direction, remote = ?params.remote, codec = params.codec.name(), "session changed");
            setup.slot.with_leg(|leg| leg.update(&params));
            setup.slot.update(|v| {
                show_params(v, &params);
                if matches!(v.state, CallState::Up | CallState::Held | CallState::Answering) {
                    v.state = if params.direction.is_hold() { CallState::Held } else { CallState::Up };
                }
            });
            setup.local = next;
            setup.answer = answer;
            let _ = handle.respond(StatusCode::OK, Some(headers), Some(setup.answer.sdp.clone().into_bytes())).await;
        }
        Err(e) => {
            tracing::info!(error = %e, "re-offer refused; the session stays as it was");
            let status = match e {
                SdpError::Malformed(_) => StatusCode::BadRequest,
                SdpError::NoCommonCodec(_) => StatusCode::NotAcceptableHere,
            };
            let _ = handle.respond(status, None, None).await;
        }
    }
}

async fn info(setup: &mut CallSetup, request: &Request, handle: TransactionHandle) {
    let content_type = header(request, &["Content-Type", "c"]).unwrap_or("");
    if request.body.is_empty() && content_type.is_empty() {
        // An empty INFO is a keep-alive some peers send.
        let _ = handle.reply(StatusCode::OK).await;
        return;
    }
    match dtmf_info::parse(content_type, &request.body) {
        Ok(digit) => {
            tracing::info!(digit = %digit.digit, duration_ms = digit.duration_ms, "digit (INFO)");
            setup.slot.with_leg(|leg| leg.dtmf(digit));
            let _ = handle.reply(StatusCode::OK).await;
        }
        Err(e @ dtmf_info::DtmfInfoError::UnsupportedType(_)) => {
            tracing::debug!(error = %e, "INFO refused");
            let accept = Header::Accept(dtmf_info::ACCEPTED.into());
            let _ = handle.respond(StatusCode::UnsupportedMediaType, Some(vec![accept]), None).await;
        }
        Err(e) => {
            tracing::debug!(error = %e, "INFO refused");
            let _ = handle.reply(StatusCode::BadRequest).await;
        }
    }
}

/// Sends REFER for a blind transfer to `target`.
async fn transfer(setup: &mut CallSetup, target: &str) {
    let domain = setup.settings.transfer_domain.clone().unwrap_or_else(|| setup.peer.to_string());
    let refer_to = format!("<sip:{target}@{domain}>");
    setup.slot.update(|v| {
        v.state = CallState::Transferring;
        v.transfer = Some(format!("REFER to {target}"));
    });
    tracing::info!(target, "transfer (REFER)");
    let outcome = setup.dialog.refer(refer_to.as_str(), None, None).await;
    let text = match outcome {
        Ok(Some(r)) if r.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => {
            format!("{} {}", u16::from(r.status_code.clone()), r.status_code)
        }
        Ok(Some(r)) => format!("failed: {}", u16::from(r.status_code.clone())),
        Ok(None) => "failed: no answer".into(),
        Err(e) => format!("failed: {e}"),
    };
    let failed = text.starts_with("failed");
    if failed {
        tracing::warn!(target, outcome = %text, "transfer refused");
    }
    setup.slot.update(|v| {
        v.transfer = Some(text);
        if failed {
            v.state = CallState::Up;
        }
    });
}

/// A NOTIFY about our REFER (RFC 3515): progress, or the end of the transfer.
async fn notify(setup: &mut CallSetup, request: &Request, handle: TransactionHandle) -> Option<Ended> {
    let event = header(request, &["Event", "o"]).unwrap_or("");
    if !event.trim().to_ascii_lowercase().starts_with("refer") {
        let _ = handle.reply(StatusCode::BadEvent).await;
        return None;
    }
    let _ = handle.reply(StatusCode::OK).await;
    let Some((code, terminated)) = refer_progress(request) else {
        tracing::debug!("NOTIFY for a REFER without a readable sipfrag ignored");
        return None;
    };
    tracing::info!(code, terminated, "transfer progress (NOTIFY)");
    setup.slot.update(|v| v.transfer = Some(format!("NOTIFY {code}")));
    if (200..300).contains(&code) {
        // The caller is connected to the target: this leg is done (RFC 5589 §6.1).
        return Some(hang_up(setup, "transferred").await);
    }
    if code >= 300 {
        tracing::warn!(code, "transfer failed; the caller stays with the hub");
        setup.slot.update(|v| {
            v.state = CallState::Up;
            v.transfer = Some(format!("failed: {code}"));
        });
    }
    None
}

/// The status a REFER's NOTIFY reports (its `message/sipfrag` status line, RFC 3515 §2.4.5)
/// and whether the subscription ended.
///
/// Ours, not `rsipstack::dialog::dialog::ReferStatus::parse`: that one looks for `Event` among
/// untyped headers only, and its own parser types `Event`, so it never finds one (see the test).
fn refer_progress(request: &Request) -> Option<(u16, bool)> {
    let terminated = header(request, &["Subscription-State"])?.trim().to_ascii_lowercase().starts_with("terminated");
    let body = std::str::from_utf8(&request.body).ok()?;
    let line = body.lines().find(|l| l.starts_with("SIP/2.0 "))?;
    let code = line.split_whitespace().nth(1)?.parse().ok().filter(|c| (100..700).contains(c))?;
    Some((code, terminated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(state: &str, frag: &str) -> Request {
        let text = format!(
            "NOTIFY sip:hub@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-2\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 NOTIFY\r\n\
             Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag;version=2.0\r\n\
             Content-Length: {}\r\n\r\n{frag}",
            frag.len()
        );
        Request::try_from(text.as_bytes()).unwrap()
    }

    #[test]
    fn refer_progress_reads_the_sipfrag_where_rsipstack_cannot() {
        let trying = notify("active;expires=60", "SIP/2.0 100 Trying\r\n");
        assert_eq!(refer_progress(&trying), Some((100, false)));
        assert_eq!(refer_progress(&notify("terminated;reason=noresource", "SIP/2.0 200 OK")), Some((200, true)));
        assert_eq!(refer_progress(&notify("terminated", "SIP/2.0 486 Busy Here\r\n")), Some((486, true)));
        assert_eq!(refer_progress(&notify("active", "garbage")), None);
        // Why not the crate's: the same NOTIFY is not recognised at all.
        assert!(rsipstack::dialog::dialog::ReferStatus::parse(&trying).is_none());
    }

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_bytes()).unwrap()
    }

    #[test]
    fn session_timers_are_honoured_refused_below_90s_or_absent() {
        assert_eq!(session_timer(&invite("")), Ok(None));
        assert_eq!(
            session_timer(&invite("Session-Expires: 1800;refresher=uac\r\n")),
            Ok(Some(SessionTimer { interval: Duration::from_secs(1800) }))
        );
        assert_eq!(session_timer(&invite("x: 300\r\nMin-SE: 600\r\n")).unwrap().unwrap().interval.as_secs(), 600);
        assert_eq!(session_timer(&invite("Session-Expires: 30\r\n")), Err(90));
        assert_eq!(session_timer(&invite("Session-Expires: 30\r\nMin-SE: 120\r\n")), Err(120));
        assert_eq!(session_timer(&invite("Session-Expires: soon\r\n")), Ok(None), "unreadable: tolerated");
    }

    #[test]
    fn ticks_are_fine_enough_for_every_timer() {
        let s = CallSettings {
            ring: Duration::ZERO,
            rtp_timeout: Duration::from_secs(2),
            contact_user: "hub".into(),
            transfer_domain: None,
            listen: "127.0.0.1:5070".parse().unwrap(),
            outbound: None,
        };
        assert_eq!(tick_interval(&s, None), Duration::from_millis(500));
        let off = CallSettings { rtp_timeout: Duration::ZERO, ..s };
        assert_eq!(tick_interval(&off, None), Duration::from_secs(1));
        assert_eq!(
            tick_interval(&off, Some(SessionTimer { interval: Duration::from_secs(90) })),
            Duration::from_secs(1)
        );
    }
}
