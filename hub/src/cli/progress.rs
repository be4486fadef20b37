//! A progress bar on stderr for long provisioning runs; silent when stderr is not a terminal
//! (scripts, CI logs), so output stays clean.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::pbx::provision::Progress;

/// Redraws at most this often.
const REDRAW: Duration = Duration::from_millis(100);
/// Below this many items the bar is not worth drawing.
const MIN_ITEMS: u64 = 20;

/// `verifying endpoints [#########           ] 451/1000`
pub struct Bar {
    label: &'static str,
    enabled: bool,
    total: AtomicU64,
    done: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Bar {
    /// A bar with `label`, drawn only on a terminal.
    pub fn new(label: &'static str) -> Self {
        Self::with_output(label, std::io::stderr().is_terminal())
    }

    fn with_output(label: &'static str, enabled: bool) -> Self {
        Self { label, enabled, total: AtomicU64::new(0), done: AtomicU64::new(0), last: Mutex::new(None) }
    }

    fn line(&self) -> String {
        let total = self.total.load(Ordering::Relaxed).max(1);
        let done = self.done.load(Ordering::Relaxed).min(total);
        let width = 30;
        let filled = (done * width / total) as usize;
        format!("\r{} [{}{}] {done}/{total}", self.label, "#".repeat(filled), " ".repeat(width as usize - filled))
    }

    fn draw(&self, force: bool) {
        if !self.enabled || self.total.load(Ordering::Relaxed) < MIN_ITEMS {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if !force && last.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        *last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(self.line().as_bytes());
        let _ = err.flush();
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.draw(true);
    }

    fn step(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.draw(false);
    }

    fn finish(&self) {
        self.draw(true);
        if self.enabled && self.total.load(Ordering::Relaxed) >= MIN_ITEMS {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_progress() {
        let bar = Bar::with_output("verifying", false);
        bar.start(40);
        for _ in 0..10 {
            bar.step();
        }
        let line = bar.line();
        assert!(line.ends_with("] 10/40"), "{line}");
        assert_eq!(line.matches('#').count(), 7, "{line}");
    }
}
