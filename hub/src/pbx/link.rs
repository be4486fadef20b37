//! The long-lived AMI event connection that keeps [`SipPresence`] current.
//!
//! One background task, on a connection of its own (command sessions stay `Events: off`):
//!
//! ```text
//!  connect ─► Login (Events: on) ─► PJSIPShowEndpoints + PJSIPShowContacts ─► seed ─► follow events
//!     ▲                                                                                 │ Ping every
//!     └──── backoff with jitter (min → max; max after a refused login) ◄── lost ◄───────┘ `keepalive`
//! ```
//!
//! - Presence is seeded on every (re)connect, so whatever happened while the link was down
//!   is picked up, and cleared when the link goes down: unknown, not "unregistered".
//! - A `Ping` goes out every [`LinkOptions::keepalive`]; no answer within
//!   [`LinkOptions::ping_timeout`] means the link is dead (a half-open TCP connection to a
//!   crashed or unplugged Asterisk never says so by itself).
//! - Asterisk answers a wrong secret after about a second and closes the connection
//!   (fixture 01c). That is logged once, clearly, and retried at the longest backoff: the
//!   secret may be fixed on the Asterisk side without the hub restarting. Any failure is
//!   logged when it first happens or changes, not on every retry.
//! - Nothing here logs a secret or a message's headers (`Password:` appears in clear in
//!   some AMI answers).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ami::{AmiError, Auth, Session};
use super::asterisk;
use super::presence::SipPresence;
use crate::config::{AmiAuth, AmiTarget};
use crate::model::Timestamp;

/// Timings of the link; tests shorten them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkOptions {
    /// How often a keepalive `Ping` is sent (default 20 s).
    pub keepalive: Duration,
    /// How long a `Ping` may go unanswered before the link counts as dead (default 5 s).
    pub ping_timeout: Duration,
    /// The first reconnect delay, doubled on each failure (default 500 ms; at least 1 ms).
    pub backoff_min: Duration,
    /// The longest reconnect delay, and the one after a refused login (default 30 s).
    pub backoff_max: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// What the link is doing, for the admin UI, health checks and tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    /// Logged in with presence seeded and events flowing.
    pub connected: bool,
    /// When `connected` last changed (or the link started).
    pub since: Timestamp,
    /// The greeting of the last Asterisk logged in to (`Asterisk Call Manager/11.0.0`).
    pub greeting: Option<String>,
    /// Why the last attempt failed or the last connection ended; kept after a reconnect so
    /// the admin can see what happened.
    pub last_error: Option<String>,
    /// Whether the last attempt failed because Asterisk refused the login (wrong user or
    /// secret): a setting to fix, not an outage to wait out.
    pub auth_refused: bool,
    /// How many times the link came up again after having been up.
    pub reconnects: u64,
    /// Attempts that did not come up (no connection, refused login, failed listing).
    pub failed_attempts: u64,
}

/// A cheap handle on a running link: its status, and a way to wait for it.
#[derive(Clone, Debug)]
pub struct LinkHandle {
    status: watch::Receiver<LinkStatus>,
    connected: watch::Receiver<bool>,
}

impl LinkHandle {
    /// The status now.
    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// Every status change (a health page, a test waiting for a count).
    pub fn subscribe(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    /// `true` while the link is up: wait on it to run something when Asterisk comes (back)
    /// up, e.g. provisioning after an Asterisk restart.
    pub fn subscribe_connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// Resolves once the task has ended (after the shutdown token was cancelled).
    pub async fn stopped(&self) {
        let mut rx = self.status.clone();
        while rx.changed().await.is_ok() {}
    }
}

/// The event link task. Its only entry point is [`EventLink::spawn`].
pub struct EventLink {
    target: AmiTarget,
    auth: Auth,
    presence: SipPresence,
    options: LinkOptions,
    status: watch::Sender<LinkStatus>,
    connected: watch::Sender<bool>,
}

/// Why following the events stopped.
enum Ended {
    Shutdown,
    Lost(AmiError),
}

impl EventLink {
    /// Starts the link on the current Tokio runtime; it runs until `shutdown` is cancelled,
    /// then logs off and clears `presence`.
    pub fn spawn(
        target: AmiTarget,
        auth: AmiAuth,
        presence: SipPresence,
        shutdown: CancellationToken,
        options: LinkOptions,
    ) -> LinkHandle {
        let initial = LinkStatus {
            connected: false,
            since: Timestamp::now(),
            greeting: None,
            last_error: None,
            auth_refused: false,
            reconnects: 0,
            failed_attempts: 0,
        };
        let (status, status_rx) = watch::channel(initial);
        let (connected, connected_rx) = watch::channel(false);
        let span = tracing::info_span!("ami_events", host = %target.host, port = target.port, user = %target.username);
        let link = EventLink { target, auth: auth.into(), presence, options, status, connected };
        tokio::spawn(link.run(shutdown).instrument(span));
        LinkHandle { status: status_rx, connected: connected_rx }
    }

    fn set_connected(&self, up: bool) {
        self.connected.send_if_modified(|c| std::mem::replace(c, up) != up);
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.options.backoff_min, self.options.backoff_max);
        let mut ever_up = false;
        // The failure last logged; the same one again is not logged again.
        let mut logged: Option<String> = None;
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            let span = tracing::info_span!("connection", attempt);
            let up = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                up = self.come_up().instrument(span.clone()) => up,
            };
            let delay = match up {
                Ok(mut session) => {
                    backoff.reset();
                    logged = None;
                    let reconnect = ever_up;
                    ever_up = true;
                    let greeting = session.greeting().to_string();
                    self.status.send_modify(|s| {
                        s.connected = true;
                        s.since = Timestamp::now();
                        s.greeting = Some(greeting.clone());
                        s.auth_refused = false;
                        s.reconnects += u64::from(reconnect);
                    });
                    self.set_connected(true);
                    tracing::info!(parent: &span, %greeting, reconnect, "AMI event link up; presence seeded");
                    let ended = self.follow(&mut session, &shutdown).instrument(span.clone()).await;
                    self.presence.clear();
                    match ended {
                        Ended::Shutdown => {
                            // Polite, but bounded: shutting down must not hang on Asterisk.
                            let _ = tokio::time::timeout(self.options.ping_timeout, session.logoff()).await;
                            break;
                        }
                        Ended::Lost(e) => {
                            tracing::warn!(parent: &span, error = %e, "AMI event link lost; presence unknown until it is back");
                            self.status.send_modify(|s| {
                                s.connected = false;
                                s.since = Timestamp::now();
                                s.last_error = Some(e.to_string());
                            });
                            self.set_connected(false);
                            backoff.next_delay()
                        }
                    }
                }
                Err(e) => {
                    let refused = matches!(e, AmiError::AuthFailed(_));
                    let text = e.to_string();
                    let delay = if refused { backoff.max_delay() } else { backoff.next_delay() };
                    if logged.as_deref() == Some(text.as_str()) {
                        tracing::debug!(parent: &span, error = %e, retry_in = ?delay, "AMI event link still down");
                    } else if refused {
                        tracing::error!(parent: &span, error = %e, retry_every = ?self.options.backoff_max,
                            "AMI login refused: fix the user or secret in pbx.ami_url or in Asterisk's manager.conf; \
                             retrying without logging this again");
                    } else {
                        tracing::warn!(parent: &span, error = %e, retry_in = ?delay,
                            "AMI event link cannot come up; retrying with backoff");
                    }
                    logged = Some(text.clone());
                    self.status.send_modify(|s| {
                        s.failed_attempts += 1;
                        s.last_error = Some(text);
                        s.auth_refused = refused;
                    });
                    delay
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.presence.clear();
        self.status.send_modify(|s| {
            if s.connected {
                s.connected = false;
                s.since = Timestamp::now();
            }
        });
        self.set_connected(false);
        tracing::info!("AMI event link stopped");
    }

    /// Logs in with events on and seeds presence from fresh listings.
    async fn come_up(&self) -> Result<Session, AmiError> {
        let mut session = Session::login(&self.target, self.auth, true).await?;
        let endpoints = asterisk::endpoints(&mut session).await?;
        let contacts = asterisk::contacts(&mut session).await?;
        self.presence.seed(&endpoints, &contacts);
        tracing::debug!(endpoints = endpoints.len(), contacts = contacts.len(), "presence seeded");
        Ok(session)
    }

    /// Applies events (including those that arrived during the listings) and keeps the
    /// connection honest with a `Ping` every `keepalive`, until it fails or shutdown.
    async fn follow(&self, session: &mut Session, shutdown: &CancellationToken) -> Ended {
        let mut next_ping = Instant::now() + self.options.keepalive;
        loop {
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ended::Shutdown,
                event = session.next_event(next_ping) => event,
            };
            match event {
                Ok(Some(m)) => {
                    if let Some(endpoint) = self.presence.apply(&m) {
                        tracing::debug!(%endpoint, event = m.name().unwrap_or(""), "presence changed");
                    }
                }
                Ok(None) => {
                    let pong = tokio::select! {
                        biased;
                        () = shutdown.cancelled() => return Ended::Shutdown,
                        pong = session.ping_within(self.options.ping_timeout) => pong,
                    };
                    match pong {
                        Ok(()) => next_ping = Instant::now() + self.options.keepalive,
                        Err(AmiError::Timeout(_)) => {
                            let within = humantime::format_duration(self.options.ping_timeout);
                            return Ended::Lost(AmiError::Timeout(format!(
                                "keepalive Ping unanswered within {within}"
                            )));
                        }
                        Err(e) => return Ended::Lost(e),
                    }
                }
                Err(e) => return Ended::Lost(e),
            }
        }
    }
}

/// Exponential backoff with "equal jitter": each delay is drawn from [base/2, base], so
/// many hubs (or a restart storm) do not reconnect in step, and no delay exceeds the max.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    base: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Self { min, max, base: min }
    }

    /// The next delay; the one after it is twice as long, up to the max.
    fn next_delay(&mut self) -> Duration {
        let base = self.base;
        self.base = base.saturating_mul(2).min(self.max);
        jitter(base)
    }

    /// A delay at the longest backoff (after a refused login).
    fn max_delay(&self) -> Duration {
        jitter(self.max)
    }

    /// Back to the shortest delay (the link came up).
    fn reset(&mut self) {
        self.base = self.min;
    }
}

fn jitter(base: Duration) -> Duration {
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max_and_resets() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(30));
        let mut b = Backoff::new(min, max);
        let mut bases = Vec::new();
        for _ in 0..10 {
            let base = b.base;
            let d = b.next_delay();
            assert!(d >= base / 2 && d <= base, "{d:?} outside [{:?}, {base:?}]", base / 2);
            bases.push(base.as_millis());
        }
        assert_eq!(bases, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
        let d = b.max_delay();
        assert!(d >= max / 2 && d <= max);
        b.reset();
        assert_eq!(b.base, min);
        // Jitter really varies the delays.
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| Backoff::new(min, max).next_delay()).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn backoff_settings_that_make_no_sense_are_made_safe() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay() <= Duration::from_millis(1));
        assert_eq!((b.min, b.max), (Duration::from_millis(1), Duration::from_millis(1)));
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.max, Duration::from_secs(5), "max is never below min");
    }
}
