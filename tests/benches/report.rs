//! Shared by the benchmarks: latency percentiles in one line.

use std::time::Duration;

/// Prints p50/p99/p99.9/max of `samples` (sorted in place) in microseconds.
pub fn latency(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "  {label}: p50 {:.0} µs  p99 {:.0} µs  p99.9 {:.0} µs  max {:.0} µs  (n={})",
        us(at(0.5)),
        us(at(0.99)),
        us(at(0.999)),
        us(*samples.last().unwrap()),
        samples.len()
    );
}
