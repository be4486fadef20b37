//! Benchmark: `hub serve` from exec to the first `/readyz` 200, on SQLite.
//!
//! Run: `cargo bench -p hub-tests --bench startup` (release build). Measures a first start
//! (empty data directory: database created, migrations applied, certificate generated) and
//! a restart (everything reused), 20 runs each, and prints p50/p95/max.

mod report;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("hub serve cold start to /readyz 200 (SQLite, release), {} cores", cores());
    let mut first = Vec::new();
    let mut restart = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        first.push(rt.block_on(start_once(dir.path())));
        restart.push(rt.block_on(start_once(dir.path())));
    }
    report("first start (creates db + certificate)", &mut first);
    report("restart (reuses db + certificate)     ", &mut restart);
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "  {label}: p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms  (n={})",
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(*samples.last().unwrap()),
        samples.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn start_once(dir: &std::path::Path) -> Duration {
    let begin = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .current_dir(dir)
        .env_clear()
        .args(["--bind", "127.0.0.1:0", "--log-format", "json", "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hub");
    let addr = report::listening_addr(&mut child, Duration::from_secs(20));
    let pem = std::fs::read(dir.join("data/tls/cert.pem")).unwrap();
    let client =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();
    let url = format!("https://{addr}/readyz");
    let took = loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            break begin.elapsed();
        }
        assert!(begin.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap();
    took
}
