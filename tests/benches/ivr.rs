//! IVR scripts under load, in-process and with no audio: callers that take real time.
//!
//! 1. Script start: from the call handed to `run_call` (engine ready) to the script's first
//!    API call, for one call at a time (`BENCH_IVR_STARTS`, default 2000).
//! 2. `BENCH_IVR_CALLS` (default 1000) concurrent calls, each on its own thread as the hub runs
//!    them, walking `ivr-scripts/main_menu.rhai` like a person: every prompt takes 1.5 s, every
//!    key 300 ms; 2 (leave a message), extension 1001 #, a 3 s message. Reports the process's
//!    CPU and memory per call.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub::config::{IvrConfig, VoicemailConfig};
use hub::ivr::io::{CallIo, CallerInfo, IoError, Person, RecordRequest, RecordedMessage, Services};
use hub::ivr::{CALL_STACK_SIZE, CallOutcome, Limits, Scripts, run_call};

#[path = "report.rs"]
mod report;

/// How long the paced caller takes for each step.
#[derive(Clone, Copy)]
struct Pace {
    prompt: Duration,
    key: Duration,
    message: Duration,
}

/// A caller who presses `keys` in order, taking `pace`; notes when the script first acts.
struct Caller {
    keys: VecDeque<char>,
    pace: Pace,
    handed: Instant,
    first: Arc<Mutex<Option<Duration>>>,
}

impl Caller {
    fn acted(&self) {
        let mut first = self.first.lock().unwrap();
        if first.is_none() {
            *first = Some(self.handed.elapsed());
        }
    }

    fn wait(&self, d: Duration) {
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }

    /// A prompt plays; with barge-in the next key cuts it short (and stays to be read, as
    /// `CallIo::play` says).
    fn prompt(&mut self, barge_in: bool) -> Option<char> {
        self.acted();
        if barge_in && let Some(&k) = self.keys.front() {
            self.wait(self.pace.key);
            return Some(k);
        }
        self.wait(self.pace.prompt);
        None
    }
}

impl CallIo for Caller {
    fn answer(&mut self) -> Result<(), IoError> {
        self.acted();
        Ok(())
    }
    fn play(&mut self, _prompt: &str, barge_in: bool) -> Result<Option<char>, IoError> {
        Ok(self.prompt(barge_in))
    }
    fn say(&mut self, _text: &str, barge_in: bool) -> Result<Option<char>, IoError> {
        Ok(self.prompt(barge_in))
    }
    fn read_digit(&mut self, timeout: Duration) -> Result<Option<char>, IoError> {
        self.acted();
        match self.keys.pop_front() {
            // Its wait was taken when it cut the prompt short, or is taken now.
            Some(k) => {
                self.wait(self.pace.key.min(timeout));
                Ok(Some(k))
            }
            None => {
                self.wait(timeout);
                Ok(None)
            }
        }
    }
    fn flush_digits(&mut self) {}
    fn record(&mut self, request: &RecordRequest) -> Result<Option<RecordedMessage>, IoError> {
        self.acted();
        self.wait(self.pace.message);
        let path = PathBuf::from(format!("/nonexistent/{}.wav", request.name));
        Ok(Some(RecordedMessage { path, duration_ms: u64::try_from(self.pace.message.as_millis()).unwrap_or(0) }))
    }
    fn transfer(&mut self, _target: &str) -> Result<(), IoError> {
        Ok(())
    }
    fn hangup(&mut self, _reason: &str) {}
    fn sleep(&mut self, duration: Duration) -> Result<(), IoError> {
        self.wait(duration);
        Ok(())
    }
    fn caller(&self) -> CallerInfo {
        CallerInfo { number: "+15555550100".into(), path: "sip".into(), dialled: "800".into(), ..Default::default() }
    }
}

/// The directory and mailboxes, in memory: counts deposits.
#[derive(Default)]
struct Office {
    deposits: Mutex<u64>,
}

impl Services for Office {
    fn http_get(&self, url: &str) -> Result<serde_json::Value, String> {
        Err(format!("no HTTP in this bench: {url}"))
    }
    fn http_post(&self, url: &str, _body: &serde_json::Value) -> Result<serde_json::Value, String> {
        Err(format!("no HTTP in this bench: {url}"))
    }
    fn directory_search(&self, _query: &str) -> Result<Vec<Person>, String> {
        Ok(Vec::new())
    }
    fn user_by_extension(&self, extension: &str) -> Result<Option<Person>, String> {
        Ok((extension == "1001").then(|| Person {
            id: "u1001".into(),
            name: "Bob Builder".into(),
            extension: Some("1001".into()),
            numbers: Vec::new(),
        }))
    }
    fn voicemail_deposit(&self, _user: &str, _message: &RecordedMessage, _caller: &CallerInfo) -> Result<(), String> {
        *self.deposits.lock().unwrap() += 1;
        Ok(())
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs one call on a thread of the hub's call stack size; gives its outcome and start time.
fn call(
    scripts: &Scripts,
    limits: &Limits,
    office: &Arc<Office>,
    pace: Pace,
) -> std::thread::JoinHandle<(CallOutcome, Option<Duration>)> {
    let (scripts, limits, office) = (scripts.clone(), limits.clone(), office.clone());
    std::thread::Builder::new()
        .stack_size(CALL_STACK_SIZE)
        .spawn(move || {
            let first = Arc::new(Mutex::new(None));
            let caller =
                Caller { keys: "21001#".chars().collect(), pace, handed: Instant::now(), first: first.clone() };
            let services: Arc<dyn Services> = office;
            let outcome = run_call(&scripts, "main_menu.rhai", Box::new(caller), services, &limits);
            let started = *first.lock().unwrap();
            (outcome, started)
        })
        .expect("a thread per call")
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ivr-scripts");
    let limits = Limits::new(&IvrConfig::default(), &VoicemailConfig::default());
    let scripts = Scripts::new(&dir, IvrConfig::default().routes, &limits);
    let office = Arc::new(Office::default());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("ivr: {} on {cores} cores", dir.display());

    // 1. Script start, one call at a time, no waiting in the caller.
    let instant = Pace { prompt: Duration::ZERO, key: Duration::ZERO, message: Duration::ZERO };
    let starts = env("BENCH_IVR_STARTS", 2000);
    let mut samples = Vec::new();
    for _ in 0..starts {
        let (outcome, first) = call(&scripts, &limits, &office, instant).join().unwrap();
        assert!(matches!(outcome, CallOutcome::HungUp), "{outcome:?}");
        samples.push(first.expect("the script acted"));
    }
    report::latency("script start (call handed → first API call)", &mut samples);

    // 2. Concurrent callers who take real time.
    let calls = env("BENCH_IVR_CALLS", 1000);
    let pace =
        Pace { prompt: Duration::from_millis(1500), key: Duration::from_millis(300), message: Duration::from_secs(3) };
    let pid = std::process::id();
    let (cpu0, rss0) = (report::cpu_seconds(pid), report::rss_kib(pid));
    let deposits0 = *office.deposits.lock().unwrap();
    let started = Instant::now();
    let handles: Vec<_> = (0..calls).map(|_| call(&scripts, &limits, &office, pace)).collect();
    // Memory while every call is in progress (they take about 12 s each).
    std::thread::sleep(Duration::from_secs(4));
    let rss_busy = report::rss_kib(pid);
    let mut starts = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (outcome, first) = h.join().unwrap();
        failed += usize::from(!matches!(outcome, CallOutcome::HungUp));
        starts.extend(first);
    }
    let wall = started.elapsed();
    let cpu = report::cpu_seconds(pid) - cpu0;
    let deposits = *office.deposits.lock().unwrap() - deposits0;
    println!(
        "  {calls} concurrent main_menu calls: {:.1} s wall, {deposits} messages left, {failed} failed",
        wall.as_secs_f64()
    );
    println!(
        "  CPU {cpu:.2} s in all = {:.2} ms per call; {:.2} % of one core while they ran",
        cpu * 1000.0 / calls as f64,
        cpu * 100.0 / wall.as_secs_f64()
    );
    println!(
        "  memory: {} KiB before, {rss_busy} KiB with every call in progress = {:.0} KiB per call",
        rss0,
        rss_busy.saturating_sub(rss0) as f64 / calls as f64
    );
    report::latency("script start under load", &mut starts);
    assert_eq!(failed, 0);
}
