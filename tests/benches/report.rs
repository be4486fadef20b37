//! Shared by the benchmarks: latency percentiles in one line, and finding a started hub.

use std::time::Duration;

/// Prints p50/p99/p99.9/max of `samples` (sorted in place) in microseconds.
#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
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

/// Waits for the hub's JSON `listening` log line on `child`'s stderr and returns its address;
/// warnings and errors the hub logs afterwards are echoed so a bench run shows them.
#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
pub fn listening_addr(child: &mut std::process::Child, wait: Duration) -> String {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("hub stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "listening" {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
            } else if v["level"] == "WARN" || v["level"] == "ERROR" {
                eprintln!("hub: {line}");
            }
        }
    });
    rx.recv_timeout(wait).expect("the hub did not start listening")
}

/// Prints p50/p95/max of `samples` (sorted in place) in milliseconds: for runs that take
/// milliseconds and are repeated a few dozen times, where p99 would just be the max.
#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
pub fn millis(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {label}: p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms  (n={})",
        ms(at(0.5)),
        ms(at(0.95)),
        ms(*samples.last().unwrap()),
        samples.len()
    );
}

/// User+system CPU seconds of `pid`.
#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, r)| r.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is index 0, utime 11, stime 12; 100 ticks per second.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of `pid` in KiB.
#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A `hub serve` with its SIP user agent on, in a fresh directory, for the SIP benchmarks.
#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
pub struct HubProcess {
    child: std::process::Child,
    /// Its working directory (`hub.toml`, `data/`).
    pub dir: tempfile::TempDir,
    /// The UA's UDP address.
    pub sip: String,
}

#[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
impl HubProcess {
    /// Starts the hub in `dir` (already holding what it should read) with `env` on top of the
    /// SIP settings every benchmark uses, and waits for its UA to listen.
    pub fn start(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        use std::process::{Command, Stdio};
        use std::time::Instant;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub-e2e"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("HUB_SIP__ENABLED", "true")
            .env("HUB_SIP__LISTEN", "127.0.0.1:0")
            .env("HUB_SIP__MAX_CALLS", "100000")
            .env("HUB_SIP__RTP_TIMEOUT", "0s");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["--bind", "127.0.0.1:0", "--log-format", "json", "serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hub");
        listening_addr(&mut child, Duration::from_secs(20));
        // The status file names the UA's address once it listens.
        let status = dir.path().join("data/sip-status.json");
        let deadline = Instant::now() + Duration::from_secs(20);
        let sip = loop {
            if let Ok(text) = std::fs::read_to_string(&status)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(udp) = v["udp"].as_str()
            {
                break udp.to_string();
            }
            assert!(Instant::now() < deadline, "the SIP user agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, dir, sip }
    }

    /// Its process id, for CPU and RSS readings.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its live SIP calls, as `hub sip calls --json` lists them (empty if it cannot say).
    #[allow(dead_code, reason = "each bench compiles this module and uses only part of it")]
    pub fn sip_calls(&self) -> Vec<serde_json::Value> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
            .current_dir(self.dir.path())
            .env_clear()
            .args(["sip", "calls", "--json"])
            .output();
        out.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
