//! Runs provisioning passes inside `hub serve`: changes are coalesced (1,000 changes in a
//! second give one or two reloads, not 1,000), pending work is retried with backoff while
//! Asterisk is down and applied at once when the event link sees it come back, and a periodic
//! resync catches changes made by another process (the CLI) and secrets due for rotation.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::provision::{PassOptions, Provisioner, Quiet};

/// Timing of the loop.
#[derive(Clone, Copy, Debug)]
pub struct LoopTiming {
    /// A pass starts once no change arrived for this long…
    pub quiet: Duration,
    /// …or this long after the first unapplied change, whichever comes first.
    pub max_wait: Duration,
    /// A pass also runs this often without any change.
    pub resync: Duration,
    /// First retry after Asterisk was unreachable; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
}

/// Handle to the running loop.
#[derive(Clone)]
pub struct ProvisionLoop {
    nudge: watch::Sender<u64>,
    passes: watch::Receiver<u64>,
}

impl ProvisionLoop {
    /// Starts the loop. `changes` ticks whenever the directory changed a user; `asterisk_up`
    /// (from the AMI event link) turns `true` when Asterisk becomes reachable.
    pub fn spawn(
        provisioner: Provisioner,
        mut changes: watch::Receiver<u64>,
        mut asterisk_up: Option<watch::Receiver<bool>>,
        timing: LoopTiming,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (nudge, mut nudged) = watch::channel(0u64);
        let (passes_tx, passes) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            // The first pass applies whatever a previous run left pending.
            let mut due = Some(Instant::now());
            let mut first_change: Option<Instant> = None;
            let mut retry = timing.retry_min;
            let mut next_resync = Instant::now() + timing.resync;
            loop {
                let wake_at = match (due, first_change) {
                    (Some(d), _) => d,
                    (None, Some(first)) => first + timing.max_wait,
                    (None, None) => next_resync,
                };
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    r = changes.changed() => {
                        if r.is_err() { changes = watch::channel(0).1; continue; }
                        let now = Instant::now();
                        let first = *first_change.get_or_insert(now);
                        due = Some((now + timing.quiet).min(first + timing.max_wait));
                    }
                    r = nudged.changed() => {
                        if r.is_ok() { due = Some(Instant::now()); }
                    }
                    up = async {
                        match asterisk_up.as_mut() {
                            Some(rx) => rx.changed().await.map(|()| *rx.borrow_and_update()),
                            None => std::future::pending().await,
                        }
                    } => {
                        match up {
                            Ok(true) => { retry = timing.retry_min; due = Some(Instant::now()); }
                            Ok(false) => {}
                            Err(_) => asterisk_up = None,
                        }
                    }
                    () = tokio::time::sleep_until(wake_at) => {
                        first_change = None;
                        due = None;
                        next_resync = Instant::now() + timing.resync;
                        match provisioner.run(&PassOptions::default(), &Quiet).await {
                            Ok(report) if report.pending_reason.is_some() && provisioner.settings().ami.is_some() => {
                                tracing::info!(pending = report.pending, retry_in_ms = retry.as_millis() as u64, "provisioning will retry");
                                due = Some(Instant::now() + retry);
                                retry = (retry * 2).min(timing.retry_max);
                            }
                            Ok(_) => retry = timing.retry_min,
                            Err(e) => {
                                tracing::error!(error = %e, "provisioning pass failed");
                                due = Some(Instant::now() + retry);
                                retry = (retry * 2).min(timing.retry_max);
                            }
                        }
                        passes_tx.send_modify(|n| *n += 1);
                    }
                }
            }
        });
        (Self { nudge, passes }, task)
    }

    /// Asks for a pass as soon as possible (e.g. after `hub pbx rotate` on the web).
    pub fn nudge(&self) {
        self.nudge.send_modify(|n| *n += 1);
    }

    /// Counts finished passes (tests and status wait on it).
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.clone()
    }
}
