//! Shedding load before queues grow: when the runtime falls behind, new calls get `503` with
//! `Retry-After` (cheap, and Asterisk tries another route or tells the caller) instead of
//! every call slowing down together until retransmissions and memory run away.
//!
//! The signal is scheduling lag: a probe asks to wake every [`TICK`] and measures how late it
//! wakes. A late wake means every task, SIP messages included, waits that long in the run
//! queue. Overload starts when [`ENTER_STREAK`] wakes in a row are later than the configured lag
//! (`[sip] overload_lag`; one stall of the whole process, say by a busy machine, is not
//! overload) and ends only after [`CALM_FOR`] of wakes all under a fifth of it, so it does not
//! flap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::call_table::CallTable;

/// How often the probe wakes.
pub const TICK: Duration = Duration::from_millis(20);
/// This many late wakes in a row start shedding.
pub const ENTER_STREAK: u32 = 3;
/// Wakes under a fifth of the lag for this long stop it.
pub const CALM_FOR: Duration = Duration::from_secs(2);

/// The hysteresis, apart from any clock, so that it is tested with made-up lags.
#[derive(Debug)]
pub struct Detector {
    enter: Duration,
    leave: Duration,
    overloaded: bool,
    late: u32,
    calm_since: Option<Instant>,
}

impl Detector {
    /// Shedding from `lag` (three late wakes in a row) until wakes stay under a fifth of it.
    pub fn new(lag: Duration) -> Self {
        Self { enter: lag, leave: lag / 5, overloaded: false, late: 0, calm_since: None }
    }

    /// Takes one measured lag at `now`; returns the new state when it changes.
    pub fn observe(&mut self, lag: Duration, now: Instant) -> Option<bool> {
        if !self.overloaded {
            self.late = if lag > self.enter { self.late + 1 } else { 0 };
            if self.late >= ENTER_STREAK {
                self.late = 0;
                self.overloaded = true;
                self.calm_since = None;
                return Some(true);
            }
            return None;
        }
        if lag >= self.leave {
            self.calm_since = None;
            return None;
        }
        let since = *self.calm_since.get_or_insert(now);
        if now.duration_since(since) >= CALM_FOR {
            self.overloaded = false;
            self.calm_since = None;
            return Some(false);
        }
        None
    }
}

/// Runs the probe until `shutdown`, switching the table's shedding on and off at `lag`.
pub fn spawn(table: Arc<CallTable>, lag: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut detector = Detector::new(lag);
        let mut expected = Instant::now() + TICK;
        let mut started: Option<(Instant, Duration)> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(expected.into()) => {}
            }
            let now = Instant::now();
            let lag = now.saturating_duration_since(expected);
            expected = now + TICK;
            match detector.observe(lag, now) {
                Some(true) => {
                    table.set_shedding(true);
                    started = Some((now, lag));
                    tracing::warn!(lag_ms = lag.as_millis() as u64, "SIP overloaded: new calls get 503 until it eases");
                }
                Some(false) => {
                    let shed = table.set_shedding(false);
                    let (since, first_lag) = started.take().unwrap_or((now, lag));
                    tracing::warn!(
                        shed,
                        lasted_ms = now.duration_since(since).as_millis() as u64,
                        first_lag_ms = first_lag.as_millis() as u64,
                        "SIP overload over: new calls are answered again"
                    );
                }
                None => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_wakes_in_a_row_start_shedding_and_only_a_calm_stretch_ends_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Detector::new(Duration::from_millis(100));
        assert_eq!(d.observe(ms(5), t0), None);
        assert_eq!(d.observe(ms(90), t0 + ms(20)), None, "under the threshold");
        assert_eq!(d.observe(ms(400), t0 + ms(40)), None, "one stall is not overload");
        assert_eq!(d.observe(ms(400), t0 + ms(60)), None);
        assert_eq!(d.observe(ms(5), t0 + ms(80)), None, "the streak is broken");
        assert_eq!(d.observe(ms(150), t0 + ms(100)), None);
        assert_eq!(d.observe(ms(150), t0 + ms(120)), None);
        assert_eq!(d.observe(ms(150), t0 + ms(140)), Some(true));
        // Calm for a while, then one middling wake restarts the calm stretch.
        assert_eq!(d.observe(ms(1), t0 + ms(100)), None);
        assert_eq!(d.observe(ms(1), t0 + ms(1500)), None);
        assert_eq!(d.observe(ms(30), t0 + ms(1600)), None);
        assert_eq!(d.observe(ms(1), t0 + ms(2200)), None, "the calm stretch restarted at 1.6 s");
        assert_eq!(d.observe(ms(1), t0 + ms(3700)), None);
        assert_eq!(d.observe(ms(1), t0 + ms(4300)), Some(false));
        assert_eq!(d.observe(ms(1), t0 + ms(4400)), None);
    }
}
