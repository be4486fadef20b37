//! Benchmark: calls answered by the hub's SIP user agent, driven by Debian's SIPp.
//!
//! Run: `cargo bench -p hub-tests --bench sip_calls` (release build; needs `sipp`).
//! Each phase starts a fresh `hub serve` (UA on, RTP echo app) and runs
//! `tests/sipp/uac_bench.xml` (INVITE with SDP → 200 → ACK → BYE → 200, no media) at one total
//! rate for `BENCH_SIP_SECS` seconds (default 60), with one SIPp per 3,000 calls/s (SIPp is
//! single-threaded). It reports successful and failed calls, SIPp's retransmissions, and the
//! hub's CPU (from /proc: user+system time over wall time) and peak RSS.
//! Rates: `BENCH_SIP_RATES` (default `1500,3000,4000`). The hub sheds load at its default
//! `[sip] overload_lag`; `BENCH_SIP_OVERLOAD_LAG=0s` measures it without shedding.
//!
//! Then the memory per established dialog: a fresh hub holds `BENCH_SIP_HELD` calls (default
//! 5,000; `uac_until_hangup.xml`), and the RSS growth over an idle hub is divided by them.

mod report;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");
const PER_SIPP: u32 = 3000;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let secs: u64 = env_or("BENCH_SIP_SECS", "60").parse().expect("BENCH_SIP_SECS");
    let rates: Vec<u32> = env_or("BENCH_SIP_RATES", "1500,3000,4000")
        .split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.trim().parse().expect("BENCH_SIP_RATES"))
        .collect();
    let held: u32 = env_or("BENCH_SIP_HELD", "5000").parse().expect("BENCH_SIP_HELD");
    println!("SIP calls INVITE→200→ACK→BYE, no media, {secs} s per rate, {} cores", cores());
    for rate in rates {
        let hub = start_hub();
        let outcome = run_rate(&hub, rate, secs);
        println!(
            "  {rate:>5} calls/s: {:>7} ok, {} failed, {} retransmissions; hub CPU {:>5.1}% of one core ({:.1}% of the machine), peak RSS {:.0} MiB",
            outcome.ok,
            outcome.failed,
            outcome.retransmissions,
            outcome.cpu * 100.0,
            outcome.cpu * 100.0 / cores() as f64,
            outcome.peak_rss_kib as f64 / 1024.0
        );
    }
    let hub = start_hub();
    let per_dialog = held_dialogs(&hub, held);
    println!("  memory per established dialog: {per_dialog:.1} KiB ({held} calls held up)");
}

/// How long finished transactions linger (64·T1 = 32 s) before RSS is read; shorter only to
/// try the bench out (`BENCH_SIP_SETTLE`).
fn settle_secs() -> u32 {
    env_or("BENCH_SIP_SETTLE", "35").parse().expect("BENCH_SIP_SETTLE")
}

/// A fresh hub that sheds load at `BENCH_SIP_OVERLOAD_LAG` (default the production 50 ms).
fn start_hub() -> report::HubProcess {
    let lag = env_or("BENCH_SIP_OVERLOAD_LAG", "50ms");
    report::HubProcess::start(tempfile::tempdir().unwrap(), &[("HUB_SIP__OVERLOAD_LAG", &lag)])
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn sipp(scenario: &str, target: &str, rate: u32, calls: u32, stats: &Path, limit: u64) -> Child {
    let port = free_udp_port();
    Command::new("sipp")
        .current_dir(SCENARIOS)
        .args(["-sf", scenario, target, "-s", "*43", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string(), "-l", "200000", "-nostdin"])
        .args(["-timeout", &format!("{limit}s"), "-trace_stat", "-fd", "1", "-stf"])
        .arg(stats)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp (Debian's sip-tester)")
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// The last row's value of `column` in a SIPp statistics CSV.
fn stat(csv: &str, column: &str) -> u64 {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
    let last: Vec<&str> = lines.next_back().unwrap_or_default().split(';').collect();
    header.iter().position(|h| *h == column).and_then(|i| last.get(i)?.trim().parse().ok()).unwrap_or(0)
}

struct Outcome {
    ok: u64,
    failed: u64,
    retransmissions: u64,
    cpu: f64,
    peak_rss_kib: u64,
}

fn run_rate(hub: &report::HubProcess, rate: u32, secs: u64) -> Outcome {
    let instances = rate.div_ceil(PER_SIPP);
    let each = rate / instances;
    let stats_dir = tempfile::tempdir().unwrap();
    let cpu0 = report::cpu_seconds(hub.pid());
    let started = Instant::now();
    let mut runs: Vec<(Child, std::path::PathBuf)> = (0..instances)
        .map(|i| {
            let stats = stats_dir.path().join(format!("s{i}.csv"));
            let calls = u32::try_from(u64::from(each) * secs).unwrap();
            (sipp("uac_bench.xml", &hub.sip, each, calls, &stats, secs + 60), stats)
        })
        .collect();
    let mut peak = 0;
    while runs.iter_mut().any(|(c, _)| c.try_wait().ok().flatten().is_none()) {
        peak = peak.max(report::rss_kib(hub.pid()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = (report::cpu_seconds(hub.pid()) - cpu0) / wall;
    let mut out = Outcome { ok: 0, failed: 0, retransmissions: 0, cpu, peak_rss_kib: peak };
    for (_, stats) in &runs {
        let csv = std::fs::read_to_string(stats).unwrap_or_default();
        out.ok += stat(&csv, "SuccessfulCall(C)");
        out.failed += stat(&csv, "FailedCall(C)");
        out.retransmissions += stat(&csv, "Retransmissions(C)");
    }
    out
}

/// Holds `n` calls up and returns the hub's RSS growth per call, in KiB.
fn held_dialogs(hub: &report::HubProcess, n: u32) -> f64 {
    // Warm up (allocator, runtime, first transactions) so the baseline is a serving hub's.
    let warm = tempfile::tempdir().unwrap();
    let mut w = sipp("uac_bench.xml", &hub.sip, 200, 200, &warm.path().join("w.csv"), 60);
    let _ = w.wait();
    // Let the warm-up's finished transactions expire (64·T1 = 32 s).
    std::thread::sleep(Duration::from_secs(u64::from(settle_secs())));
    let base = report::rss_kib(hub.pid());
    let stats = warm.path().join("held.csv");
    let mut holder = sipp("uac_until_hangup.xml", &hub.sip, 1000, n, &stats, 600);
    // Up when the control socket lists them all; then wait out the INVITE transactions.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = hub.sip_calls();
        if listed.iter().filter(|c| c["state"] == "up").count() >= n as usize {
            break;
        }
        if let Ok(Some(status)) = holder.try_wait() {
            panic!(
                "SIPp stopped ({status}) with {} of {n} calls up: {}",
                listed.len(),
                std::fs::read_to_string(&stats).unwrap_or_default().lines().last().unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "only {} of {n} calls came up", listed.len());
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(u64::from(settle_secs())));
    let held = report::rss_kib(hub.pid());
    let _ = holder.kill();
    let _ = holder.wait();
    held.saturating_sub(base) as f64 / f64::from(n)
}
