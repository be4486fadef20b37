//! Debian's SIPp (`sip-tester`) for tests: runs a scenario of `tests/sipp/` (or one built into
//! SIPp) against a peer on 127.0.0.1, bounded in time, and reads back its exit code,
//! statistics, unexpected messages and message trace.
//!
//! SIPp runs with `tests/sipp/` as its working directory (scenarios name their pcap files
//! relative to it) and writes every trace file into a temporary directory.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{WAIT, free_port};

/// The scenario directory, in the source tree.
pub const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");

/// What a SIPp run ended with.
#[derive(Debug)]
pub struct SippOutcome {
    /// Exit code 0: every call reached the end of its scenario.
    pub success: bool,
    /// SIPp's exit code (0 all calls passed, 1 some failed, 97 stopped, 99 no call ran, 255
    /// fatal, e.g. a scenario that does not parse); `None` when killed at the time limit.
    pub exit_code: Option<i32>,
    /// `SuccessfulCall(C)` from the statistics.
    pub calls_successful: u64,
    /// `FailedCall(C)` from the statistics.
    pub calls_failed: u64,
    /// `Retransmissions(C)`: requests or responses SIPp itself had to send again.
    pub retransmissions: u64,
    /// The statistics CSV (`-trace_stat`).
    pub stats: String,
    /// Unexpected messages and scenario errors (`-trace_err`) plus SIPp's stderr.
    pub errors: String,
    /// Every SIP message sent and received (`-trace_msg`).
    pub messages: String,
}

impl SippOutcome {
    /// Everything SIPp reported, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "--- sipp: exit {:?}, {} successful, {} failed, {} retransmissions ---\n--- sipp errors ---\n{}\n--- sipp messages ---\n{}\n--- sipp stats ---\n{}",
            self.exit_code,
            self.calls_successful,
            self.calls_failed,
            self.retransmissions,
            self.errors,
            self.messages,
            self.stats
        )
    }

    /// Panics with the report unless exactly `calls` calls passed and none failed.
    pub fn assert_passed(&self, calls: u64) {
        assert!(
            self.success && self.calls_successful == calls && self.calls_failed == 0,
            "SIPp scenario did not pass {calls} call(s)\n{}",
            self.report()
        );
    }
}

/// A SIPp process running in the background (a UAS waiting for calls, say).
pub struct Sipp {
    child: Child,
    /// Its SIP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    deadline: Instant,
}

/// A UDP port `p` on 127.0.0.1 with `p..p+4` free: SIPp binds `-mp` and the next ports (audio
/// RTP and RTCP, and with `-rtp_echo` also `p+2` for video). None of them is `sip_port`.
fn free_media_ports(sip_port: u16) -> u16 {
    loop {
        let first = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = first.local_addr().unwrap().port();
        let taken = (p..p.saturating_add(4)).contains(&sip_port);
        if !taken && p <= u16::MAX - 4 && (1..4).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
}

/// `-sf tests/sipp/<name>` for a name ending in `.xml`, else `-sn <name>` (built in: `uas`).
fn scenario_args(scenario: &str) -> [String; 2] {
    if scenario.ends_with(".xml") {
        ["-sf".into(), Path::new(SCENARIOS).join(scenario).display().to_string()]
    } else {
        ["-sn".into(), scenario.into()]
    }
}

impl Sipp {
    /// Runs `scenario` for one call against `target` and waits (bounded by [`WAIT`]) for the
    /// outcome. `args` go to SIPp as they are (`-au alice -ap secret -s alice`, `-m 3`…).
    pub fn run(scenario: &str, target: SocketAddr, args: &[&str]) -> SippOutcome {
        Self::spawn(scenario, Some(target), args).wait()
    }

    /// Starts `scenario` on a free port of 127.0.0.1 (towards `target`, if any) and returns
    /// once its SIP socket is bound. SIPp stops by itself after `-m` calls (default 1) or
    /// [`WAIT`] (or a `-timeout` given in `args`), whichever comes first; [`Sipp::wait`]
    /// collects the outcome and kills SIPp 5 s past that limit.
    pub fn spawn(scenario: &str, target: Option<SocketAddr>, args: &[&str]) -> Sipp {
        assert!(Path::new("/usr/bin/sipp").exists(), "Debian's sip-tester is not installed (scripts/test installs it)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let media_port = free_media_ports(port);
        let file = |name: &str| dir.path().join(name).display().to_string();
        let mut cmd = Command::new("sipp");
        cmd.current_dir(SCENARIOS).args(scenario_args(scenario));
        if let Some(target) = target {
            cmd.arg(target.to_string());
        }
        if !args.contains(&"-m") {
            cmd.args(["-m", "1"]);
        }
        cmd.args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-l", "1", "-nostdin", "-timeout", &format!("{}s", WAIT.as_secs()), "-timeout_error"])
            .args(["-trace_err", "-error_file", &file("errors.log")])
            .args(["-trace_stat", "-stf", &file("stats.csv")])
            .args(["-trace_msg", "-message_file", &file("messages.log")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        let child = cmd.spawn().expect("start sipp");
        // A `-timeout` in `args` (whole seconds, "60" or "60s") overrides the default one.
        let limit = args
            .iter()
            .position(|a| *a == "-timeout")
            .and_then(|i| args.get(i + 1))
            .and_then(|t| t.trim_end_matches('s').parse().ok())
            .map_or(WAIT, Duration::from_secs);
        let mut sipp = Sipp { child, port, dir, deadline: Instant::now() + limit + Duration::from_secs(5) };
        // Bound means the port can no longer be taken; SIPp exiting early ends the wait too.
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Ok(Some(_)) = sipp.child.try_wait() {
                break;
            }
            assert!(Instant::now() < sipp.deadline, "sipp never bound 127.0.0.1:{port}\n{}", sipp.read("stderr.log"));
            std::thread::sleep(Duration::from_millis(10));
        }
        sipp
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Waits for SIPp to exit (it is killed past its deadline) and reads its outcome.
    pub fn wait(mut self) -> SippOutcome {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stats = self.read("stats.csv");
        let counter = |name: &str| stat(&stats, name).unwrap_or(0);
        let exit_code = status.and_then(|s| s.code());
        SippOutcome {
            success: exit_code == Some(0),
            exit_code,
            calls_successful: counter("SuccessfulCall(C)"),
            calls_failed: counter("FailedCall(C)"),
            retransmissions: counter("Retransmissions(C)"),
            errors: format!("{}{}", self.read("errors.log"), self.read("stderr.log")),
            messages: self.read("messages.log"),
            stats,
        }
    }

    /// The directory SIPp writes its traces into.
    pub fn trace_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter from SIPp's statistics CSV: `;`-separated, a header row, then one row per dump;
/// the last row holds the final values.
fn stat(csv: &str, name: &str) -> Option<u64> {
    let mut rows = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = rows.next()?.split(';').collect();
    let last: Vec<&str> = rows.next_back()?.split(';').collect();
    let i = header.iter().position(|h| *h == name)?;
    last.get(i)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_last_row_of_the_statistics() {
        let csv = "StartTime;SuccessfulCall(C);FailedCall(C);\n1;0;0;\n2;3;1;\n";
        assert_eq!(super::stat(csv, "SuccessfulCall(C)"), Some(3));
        assert_eq!(super::stat(csv, "FailedCall(C)"), Some(1));
        assert_eq!(super::stat(csv, "Retransmissions(C)"), None);
    }
}
