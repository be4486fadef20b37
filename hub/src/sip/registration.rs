//! Keeps the hub's user agent registered with the configured registrar (Asterisk), so calls
//! for the IVR and voicemail reach it.
//!
//! Digest authentication (401/407, `qop=auth`, new nonces) is rsipstack's `Registration`.
//! Around it: refresh at three quarters of the granted lifetime; `423 Interval Too Brief`
//! retried at once with the registrar's `Min-Expires`; a refusal (403, or credentials it keeps
//! rejecting) logged once as an error and retried with backoff up to five minutes; a registrar
//! that does not answer retried with backoff too; unregistration (`Expires: 0`) on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::registration::Registration;
use rsipstack::sip::{Response, StatusCode, Uri};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::Secret;

/// Longest wait between attempts after a failure.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// First wait after a failure.
const BACKOFF_MIN: Duration = Duration::from_secs(1);

/// Where the registration stands, for logs and status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RegistrationState {
    /// No registrar is configured.
    NotConfigured,
    /// Not tried yet.
    Starting,
    /// Registered for this many seconds (from the last 200).
    Registered {
        /// The lifetime the registrar granted.
        expires: u32,
    },
    /// The registrar refused or did not answer; retried later.
    Failed {
        /// Status code, when there was an answer.
        status: Option<u16>,
        /// What went wrong, for people.
        reason: String,
    },
    /// Unregistered at shutdown.
    Stopped,
}

/// What to register.
#[derive(Clone, Debug)]
pub struct RegistrationConfig {
    /// The registrar URI (`sip:127.0.0.1:5060`).
    pub registrar: String,
    /// Its address (where the hub sends the REGISTER).
    pub registrar_addr: SocketAddr,
    /// Auth username (and the AOR's user).
    pub username: String,
    /// Auth password.
    pub password: Secret,
    /// Requested lifetime.
    pub expires: Duration,
}

/// The socket address of a registrar URI (`sip:host[:port]`, 5060 when absent; names are
/// resolved once).
pub fn registrar_addr(uri: &str) -> Result<SocketAddr, String> {
    let parsed = Uri::try_from(uri).map_err(|e| format!("sip.registrar {uri:?}: {e}"))?;
    let host = parsed.host_with_port.host.to_string();
    let port = parsed.host_with_port.port.map(|p| p.value().to_owned()).unwrap_or(5060);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .map_err(|e| format!("sip.registrar {uri:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("sip.registrar {uri:?}: no address"))
}

/// The host (and port) of the registrar URI: where transfers and calls to extensions point.
pub fn registrar_domain(uri: &str) -> Option<String> {
    Uri::try_from(uri).ok().map(|u| u.host_with_port.to_string())
}

/// Runs the registration until `shutdown`, then unregisters.
pub fn spawn(
    endpoint: EndpointInnerRef,
    config: RegistrationConfig,
    shutdown: CancellationToken,
) -> (watch::Receiver<RegistrationState>, tokio::task::JoinHandle<()>) {
    let (state_tx, state) = watch::channel(RegistrationState::Starting);
    let task = tokio::spawn(async move {
        let span = tracing::info_span!("sip_registration", registrar = %config.registrar, user = %config.username);
        let _ = tracing::Instrument::instrument(run(endpoint, config, shutdown, state_tx), span).await;
    });
    (state, task)
}

async fn run(
    endpoint: EndpointInnerRef,
    config: RegistrationConfig,
    shutdown: CancellationToken,
    state: watch::Sender<RegistrationState>,
) {
    let Ok(server) = Uri::try_from(config.registrar.as_str()) else {
        tracing::error!("sip.registrar is not a SIP URI");
        return;
    };
    let credential = Credential {
        username: config.username.clone(),
        password: config.password.expose().to_string(),
        realm: None,
        ..Default::default()
    };
    let mut registration = Registration::new(endpoint, Some(credential));
    let mut expires = u32::try_from(config.expires.as_secs()).unwrap_or(3600);
    let mut backoff = BACKOFF_MIN;
    let mut refused_logged = false;
    let mut registered = false;
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => break,
            r = tokio::time::timeout(Duration::from_secs(40), registration.register(server.clone(), Some(expires))) => r,
        };
        let wait = match outcome {
            Ok(Ok(response)) if response.status_code == StatusCode::OK => {
                let granted = registration.expires().max(1);
                if !registered || refused_logged {
                    tracing::info!(expires = granted, "SIP registered");
                }
                registered = true;
                refused_logged = false;
                backoff = BACKOFF_MIN;
                let _ = state.send(RegistrationState::Registered { expires: granted });
                Duration::from_secs(u64::from(granted) * 3 / 4).max(Duration::from_secs(1))
            }
            Ok(Ok(response)) if response.status_code == StatusCode::IntervalTooBrief => {
                match min_expires(&response) {
                    Some(min) if min > expires => {
                        tracing::info!(min_expires = min, "registrar wants a longer registration; retrying");
                        expires = min;
                        continue;
                    }
                    _ => failed(&state, &mut refused_logged, Some(423), "423 without a usable Min-Expires"),
                }
                backoff_step(&mut backoff)
            }
            Ok(Ok(response)) => {
                let code = response.status_code.code();
                failed(
                    &state,
                    &mut refused_logged,
                    Some(code),
                    &format!("the registrar answered {code} (check sip.username and sip.password)"),
                );
                registered = false;
                backoff_step(&mut backoff)
            }
            Ok(Err(e)) => {
                failed(&state, &mut refused_logged, None, &e.to_string());
                registered = false;
                backoff_step(&mut backoff)
            }
            Err(_) => {
                failed(&state, &mut refused_logged, None, "the registrar did not answer");
                registered = false;
                backoff_step(&mut backoff)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    if registered {
        match tokio::time::timeout(Duration::from_secs(3), registration.register(server, Some(0))).await {
            Ok(Ok(r)) if r.status_code == StatusCode::OK => tracing::info!("SIP unregistered"),
            Ok(Ok(r)) => tracing::warn!(status = r.status_code.code(), "SIP unregistration refused"),
            Ok(Err(e)) => tracing::warn!(error = %e, "SIP unregistration failed"),
            Err(_) => tracing::warn!("SIP unregistration: the registrar did not answer in 3 s"),
        }
    }
    let _ = state.send(RegistrationState::Stopped);
}

/// Logs a failure once (as an error) until a success; later repeats only at debug.
fn failed(state: &watch::Sender<RegistrationState>, logged: &mut bool, status: Option<u16>, reason: &str) {
    if *logged {
        tracing::debug!(status, reason, "SIP registration still failing");
    } else {
        tracing::error!(status, reason, "SIP registration refused");
        *logged = true;
    }
    let _ = state.send(RegistrationState::Failed { status, reason: reason.to_string() });
}

fn backoff_step(backoff: &mut Duration) -> Duration {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    wait
}

/// The `Min-Expires` of a 423.
fn min_expires(response: &Response) -> Option<u32> {
    response
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Min-Expires"))
        .and_then(|h| h.value().trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrar_uris_become_addresses() {
        assert_eq!(
            registrar_addr("sip:127.0.0.1:5080").unwrap(),
            "127.0.0.1:5080".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(registrar_addr("sip:127.0.0.1").unwrap().port(), 5060);
        assert!(registrar_addr("http://x").is_err() || registrar_addr("not a uri at all").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let mut b = BACKOFF_MIN;
        let waits: Vec<u64> = (0..12).map(|_| backoff_step(&mut b).as_secs()).collect();
        assert_eq!(&waits[..4], &[1, 2, 4, 8]);
        assert_eq!(*waits.last().unwrap(), 300);
    }
}
