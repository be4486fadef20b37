//! Per-client-address rate limiting of the sign-in endpoints (token bucket).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Addresses tracked before idle (full) buckets are dropped.
const MAX_TRACKED: usize = 50_000;

/// A token bucket per client address: `per_minute` requests, refilled continuously.
#[derive(Clone)]
pub struct RateLimiter {
    per_minute: f64,
    buckets: Arc<Mutex<HashMap<IpAddr, (f64, Instant)>>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per address per minute (also the burst).
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute: f64::from(per_minute.max(1)), buckets: Arc::default() }
    }

    /// Takes one token for `ip`; when none is left, how long until one is.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.per_minute / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let full = self.per_minute;
            buckets.retain(|_, (tokens, at)| (*tokens + now.duration_since(*at).as_secs_f64() * rate) < full);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(self.per_minute);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - *tokens) / rate).max(1.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_per_address_and_refills() {
        let l = RateLimiter::new(3);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.check(a).unwrap();
        }
        let wait = l.check(a).unwrap_err();
        assert_eq!(wait.as_secs(), 20, "one token every 20 s at 3/min");
        l.check(b).expect("another address is not affected");
        tokio::time::advance(Duration::from_secs(20)).await;
        l.check(a).expect("refilled");
        assert!(l.check(a).is_err());
    }
}
