//! Sign-in attempts in progress: the `state`, `nonce` and PKCE verifier of each, kept
//! server-side, usable once, forgotten after the sign-in timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most this many attempts are pending at once; beyond it the oldest are dropped, so a
/// flood of `/auth/login` requests cannot grow memory without bound.
const MAX_PENDING: usize = 10_000;

/// What the hub remembers between sending a person to the provider and their return.
#[derive(Debug)]
pub struct Attempt {
    /// The `nonce` sent in the authorization request; the ID token must carry it.
    pub nonce: String,
    /// The PKCE code verifier for the token request.
    pub pkce_verifier: String,
    started: Instant,
}

/// Why a returning `state` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptRefusal {
    /// Never issued, tampered with, or already used.
    Unknown,
    /// Issued, but the person took longer than the sign-in timeout.
    Expired,
}

/// The pending attempts.
#[derive(Debug)]
pub struct Attempts {
    timeout: Duration,
    pending: Mutex<HashMap<String, Attempt>>,
}

impl Attempts {
    /// Attempts that expire after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, pending: Mutex::new(HashMap::new()) }
    }

    /// Remembers a new attempt under `state`.
    pub fn insert(&self, state: String, nonce: String, pkce_verifier: String) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING {
            // Keep attempts that expired recently for a clear "expired" answer, but never
            // more than the cap: evict the oldest.
            if let Some(oldest) = pending.iter().min_by_key(|(_, a)| a.started).map(|(k, _)| k.clone()) {
                pending.remove(&oldest);
            }
        }
        pending.insert(state, Attempt { nonce, pkce_verifier, started: Instant::now() });
    }

    /// Takes the attempt for `state` out (single use).
    pub fn take(&self, state: &str) -> Result<Attempt, AttemptRefusal> {
        let attempt =
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(state).ok_or(AttemptRefusal::Unknown)?;
        if attempt.started.elapsed() > self.timeout {
            return Err(AttemptRefusal::Expired);
        }
        Ok(attempt)
    }

    /// Forgets attempts older than twice the timeout (until then an expired one still gets
    /// the clearer "expired" answer); returns how many.
    pub fn purge(&self) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.len();
        pending.retain(|_, a| a.started.elapsed() <= self.timeout * 2);
        before - pending.len()
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none are pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn single_use_and_expiring() {
        let a = Attempts::new(Duration::from_secs(600));
        a.insert("s1".into(), "n1".into(), "v1".into());
        a.insert("s2".into(), "n2".into(), "v2".into());
        assert_eq!(a.take("s1").unwrap().nonce, "n1");
        assert_eq!(a.take("s1").unwrap_err(), AttemptRefusal::Unknown, "second use refused");
        assert_eq!(a.take("forged").unwrap_err(), AttemptRefusal::Unknown);
        tokio::time::advance(Duration::from_secs(601)).await;
        assert_eq!(a.take("s2").unwrap_err(), AttemptRefusal::Expired);
        a.insert("s3".into(), "n3".into(), "v3".into());
        tokio::time::advance(Duration::from_secs(1201)).await;
        assert_eq!(a.purge(), 1);
        assert!(a.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn bounded() {
        let a = Attempts::new(Duration::from_secs(600));
        for i in 0..MAX_PENDING + 5 {
            a.insert(format!("s{i}"), String::new(), String::new());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(a.len(), MAX_PENDING);
        assert_eq!(a.take("s0").unwrap_err(), AttemptRefusal::Unknown, "oldest evicted");
        assert!(a.take(&format!("s{}", MAX_PENDING + 4)).is_ok());
    }
}
