//! `hub sip status`: what the serving hub's SIP user agent reports (its status file), checked
//! on the wire with an OPTIONS that it must answer. `hub sip calls|hangup|transfer`: the live
//! calls, through the serving hub's control socket.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sip::call_table::CallView;
use crate::sip::control::{self, ControlError};
use crate::sip::registration::RegistrationState;
use crate::sip::status::{self, SipStatus};

use super::Exit;
use super::table::Table;

/// How long the OPTIONS probe waits.
const PROBE_WAIT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    status: SipStatus,
    answering: bool,
    rtt_ms: Option<f64>,
}

/// `hub sip status [--json]`. Exit 0 when the UA answers and is registered (or has no
/// registrar), 1 otherwise.
pub async fn status(data_dir: &Path, json: bool) -> Exit {
    let status = match status::read(data_dir) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!(
                "error: the SIP user agent is not running here: start `hub serve` with [sip] enabled = true \
                 (or an Asterisk in [pbx] ami_url)"
            );
            return Exit::Failure;
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", status::path(data_dir).display());
            return Exit::Failure;
        }
    };
    let rtt = probe(status.udp).await;
    let report = Report { answering: rtt.is_some(), rtt_ms: rtt.map(|d| d.as_secs_f64() * 1e3), status };
    let registered =
        matches!(report.status.registration, RegistrationState::Registered { .. } | RegistrationState::NotConfigured);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        let s = &report.status;
        match report.rtt_ms {
            Some(ms) => {
                let tls = s.tls.map(|t| format!(" and tls {t}")).unwrap_or_default();
                println!(
                    "User agent    answering on udp {} and tcp {}{tls} ({ms:.1} ms; hub pid {})",
                    s.udp, s.tcp, s.pid
                )
            }
            None => println!("User agent    NOT answering on udp {} (hub pid {}; stopped or stuck?)", s.udp, s.pid),
        }
        let since = humantime::format_rfc3339_seconds(s.updated_at.to_system_time());
        let registrar = s.registrar.as_deref().unwrap_or("-");
        match &s.registration {
            RegistrationState::NotConfigured => println!("Registration  none ([sip] registrar is not set)"),
            RegistrationState::Starting => println!("Registration  starting with {registrar}"),
            RegistrationState::Registered { expires } => {
                println!("Registration  registered with {registrar} for {expires} s (since {since})")
            }
            RegistrationState::Failed { status, reason } => println!(
                "Registration  FAILED with {registrar}{}: {reason} (since {since}; retrying)",
                status.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
            RegistrationState::Stopped => println!("Registration  unregistered (the hub is stopping)"),
        }
    }
    if report.answering && registered { Exit::Ok } else { Exit::Failure }
}

/// Sends an OPTIONS to the user agent; its round trip when answered.
async fn probe(to: SocketAddr) -> Option<Duration> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
    let local = socket.local_addr().ok()?;
    let call_id = format!("status-{:x}", rand::random::<u64>());
    let request = format!(
        "OPTIONS sip:hub@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:status@{local}>;tag={call_id}\r\nTo: <sip:hub@{to}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let started = Instant::now();
    socket.send_to(request.as_bytes(), to).await.ok()?;
    let mut buf = vec![0u8; 65536];
    let deadline = started + PROBE_WAIT;
    loop {
        let (n, _) = tokio::time::timeout_at(deadline.into(), socket.recv_from(&mut buf)).await.ok()?.ok()?;
        let answer = String::from_utf8_lossy(&buf[..n]);
        if answer.starts_with("SIP/2.0 200") && answer.contains(&call_id) {
            return Some(started.elapsed());
        }
    }
}

/// `hub sip calls [--json]`: exit 0 with the list (possibly empty), 1 when no hub serves.
pub async fn calls(data_dir: &Path, json: bool) -> Exit {
    let calls = match control::calls(data_dir).await {
        Ok(c) => c,
        Err(e) => return control_failed(&e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&calls).unwrap_or_default());
        return Exit::Ok;
    }
    if calls.is_empty() {
        println!("No live calls.");
        return Exit::Ok;
    }
    print!("{}", calls_table(&calls));
    println!("{} live call{}", calls.len(), if calls.len() == 1 { "" } else { "s" });
    Exit::Ok
}

fn calls_table(calls: &[CallView]) -> String {
    let now = crate::model::Timestamp::now();
    let mut table = Table::new(vec![
        "ID",
        "STATE",
        "FROM",
        "TO",
        "CODEC",
        "AGE",
        "RTP IN/OUT",
        "LOST",
        "JITTER",
        "LATE",
        "REMOTE RTP",
        "DIGITS",
    ]);
    for c in calls {
        let age = now.to_system_time().duration_since(c.started_at.to_system_time()).unwrap_or_default();
        table.row(vec![
            c.id.to_string(),
            format!("{:?}", c.state).to_lowercase(),
            c.from.clone(),
            c.to.clone(),
            c.codec.clone().unwrap_or_else(|| "-".into()),
            humantime::format_duration(Duration::from_secs(age.as_secs())).to_string(),
            format!("{}/{}", c.media.packets_in, c.media.packets_out),
            format!("{}", c.media.lost),
            format!("{:.1} ms", c.media.jitter_ms),
            format!("{}", c.media.late),
            c.remote_rtp.map_or_else(|| "-".into(), |a| a.to_string()),
            c.media.digits.clone(),
        ]);
    }
    table.render()
}

/// `hub sip hangup ID` and `hub sip transfer ID EXT`: exit 0 when the hub took it, 1 when it
/// refused (no such call) or no hub serves.
pub async fn control(data_dir: &Path, request: control::Request) -> Exit {
    match control::act(data_dir, &request).await {
        Ok(()) => {
            match request {
                control::Request::Hangup { id } => println!("Call {id}: hanging up."),
                control::Request::Transfer { id, to } => {
                    println!("Call {id}: transfer to {to} requested (see `hub sip calls` for its progress).")
                }
                control::Request::Calls | control::Request::Dial { .. } => {}
            }
            Exit::Ok
        }
        Err(e) => control_failed(&e),
    }
}

fn control_failed(e: &ControlError) -> Exit {
    eprintln!("error: {e}");
    match e {
        ControlError::Refused(_) => Exit::Failure,
        _ => Exit::Failure,
    }
}

/// `hub sip dial EXT`: exit 0 once the hub placed the call (it then rings; `hub sip calls`
/// shows it), 1 when it cannot (no registrar, limit) or no hub serves.
pub async fn dial(data_dir: &Path, extension: &str) -> Exit {
    match control::dial(data_dir, extension).await {
        Ok(id) => {
            println!("Call {id}: calling {extension} (echo test; `hub sip hangup {id}` ends it).");
            Exit::Ok
        }
        Err(e) => control_failed(&e),
    }
}
