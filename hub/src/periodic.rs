//! Housekeeping that runs on a timer until the hub stops: expired sessions, the voicemail
//! trash. One loop shape for all of them, so each says only what it purges.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `purge` now and then every `every` until `cancel` fires; logs how many things each run
/// removed (`what` names them) and any failure, which the next run retries.
pub fn spawn_purger<F, Fut, E>(
    every: Duration,
    cancel: CancellationToken,
    what: &'static str,
    purge: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, E>> + Send,
    E: Display,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => match purge().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, what, "purged"),
                    Err(e) => tracing::warn!(error = %e, what, "purge failed; retried on the next run"),
                },
            }
        }
    })
}
