//! `hub sip status`: what the serving hub's SIP user agent reports (its status file), checked
//! on the wire with an OPTIONS that it must answer.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sip::registration::RegistrationState;
use crate::sip::status::{self, SipStatus};

use super::Exit;

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
                println!("User agent    answering on udp {} and tcp {} ({ms:.1} ms; hub pid {})", s.udp, s.tcp, s.pid)
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
