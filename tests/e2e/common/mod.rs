//! Shared harness: runs the real hub binary in a temporary directory and talks to it over
//! HTTPS on 127.0.0.1, waiting on its log events (never on sleeps).

#![allow(dead_code)]

pub mod ami_replay;
pub mod ami_sim;
pub mod baresip;
pub mod idp;
pub mod kamailio;
pub mod pcap;
pub mod sipp;
pub mod turn;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port free for both UDP and TCP on 127.0.0.1, found by binding port 0, for peers that
/// cannot be told to pick their own port (coturn, kamailio, SIPp as a UAS). As close to
/// "port 0" as it gets: another process could take it before the peer binds it.
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Path of the hub binary Cargo built for these tests.
pub fn hub_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hub-e2e")
}

/// A command for the hub binary with a clean environment: no `HUB_*` variable of the
/// calling shell leaks into a test.
pub fn hub_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(hub_bin());
    cmd.current_dir(cwd).env_clear();
    for keep in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    cmd
}

/// Runs a one-shot hub command to completion.
pub fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = hub_cmd(cwd);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hub")
}

/// Stdout and stderr of an output, for assertions and failure messages.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A test peer's output (kamailio, baresip…): everything so far, and a wait for a line.
pub struct PeerLog {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl PeerLog {
    /// Starts collecting `child`'s output under `name`.
    pub fn capture(name: &'static str, child: &mut Child) -> Self {
        let (log, lines) = capture_output(child);
        Self { name, log, lines }
    }

    /// Everything logged so far, under a header for failure messages.
    pub fn text(&self) -> String {
        format!("--- {} log ---\n{}", self.name, self.log.lock().unwrap().join("\n"))
    }

    /// Waits (bounded by [`WAIT`]) until a line containing `needle` appears; returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("{} logged no {needle:?} within {WAIT:?}\n{}", self.name, self.text());
    }
}

/// Collects a child's stdout and stderr lines, in a shared log and as a stream of events.
pub fn capture_output(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, mpsc::Receiver<String>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let streams: [Box<dyn std::io::Read + Send>; 2] =
        [Box::new(child.stderr.take().expect("piped stderr")), Box::new(child.stdout.take().expect("piped stdout"))];
    for stream in streams {
        let (log, tx) = (log.clone(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    (log, rx)
}

/// A running `hub serve` and everything it logged so far.
pub struct Hub {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its working directory (the data dir is `data/` inside).
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

/// How long any single wait in these tests may take before it fails with the hub's log.
pub const WAIT: Duration = Duration::from_secs(20);

impl Hub {
    /// Starts `hub serve` in `dir` on an ephemeral port with JSON logs and waits for its
    /// "listening" event.
    pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Hub {
        match Self::try_start(dir, extra, env) {
            Ok(hub) => hub,
            Err((msg, log)) => panic!("{msg}\n--- hub log ---\n{}", log.join("\n")),
        }
    }

    /// Like [`Hub::start`], but returns the log instead of panicking when the hub exits or
    /// never gets to listening.
    pub fn try_start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Hub, (String, Vec<String>)> {
        let mut cmd = hub_cmd(dir);
        cmd.args(["--bind", "127.0.0.1:0", "--log-format", "json", "serve"]).args(extra);
        // Tests run in parallel: the SIP user agent (when a test turns it on) takes a free port.
        cmd.env("HUB_SIP__LISTEN", "127.0.0.1:0");
        // Debug builds sharing two cores with browsers and other hubs stall in ways the
        // production default (50 ms) would read as overload and answer a test's INVITE 503.
        cmd.env("HUB_SIP__OVERLOAD_LAG", "1s");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hub");
        let (log, rx) = capture_output(&mut child);
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = event_field(&line, "listening", "addr") {
                        let addr = addr.parse().expect("listening addr");
                        return Ok(Hub { child, addr, dir: dir.to_path_buf(), log, lines: rx });
                    }
                }
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    let msg = format!("hub did not start listening (exit status: {status:?})");
                    return Err((msg, log.lock().unwrap().clone()));
                }
            }
        }
    }

    /// The base URL.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// An HTTPS client that trusts exactly the hub's own certificate.
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.dir.join("data/tls/cert.pem")).expect("generated certificate");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(WAIT)
            .build()
            .unwrap()
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line with `message` arrives; returns it.
    pub fn wait_for(&self, message: &str) -> String {
        let deadline = Instant::now() + WAIT;
        if let Some(l) = self.log().into_iter().find(|l| event_message(l).as_deref() == Some(message)) {
            return l;
        }
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if event_message(&line).as_deref() == Some(message) {
                return line;
            }
        }
        panic!("no {message:?} event within {WAIT:?}\n--- hub log ---\n{}", self.log().join("\n"));
    }

    /// Waits until a log line with `message` whose `field` equals `value` arrives.
    pub fn wait_for_event(&self, message: &str, field: &str, value: &str) -> String {
        let matches = |l: &str| event_field(l, message, field).as_deref() == Some(value);
        let deadline = Instant::now() + WAIT;
        if let Some(l) = self.log().into_iter().find(|l| matches(l)) {
            return l;
        }
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if matches(&line) {
                return line;
            }
        }
        panic!("no {message:?} event with {field}={value} within {WAIT:?}\n--- hub log ---\n{}", self.log().join("\n"));
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`) and waits for the exit; returns the status and how
    /// long the hub took to exit.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, Duration, Vec<String>) {
        let start = Instant::now();
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{signal} failed");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                while self.lines.recv_timeout(Duration::from_millis(200)).is_ok() {}
                return (status, start.elapsed(), self.log());
            }
            assert!(start.elapsed() < WAIT, "hub did not exit after SIG{signal}\n{}", self.log().join("\n"));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The audit log of the hub whose working directory is `dir`, newest first (read through the
/// hub's own store code, next to the running hub).
pub async fn audit_log(dir: &Path) -> Vec<hub::model::AuditEntry> {
    use hub::store::AuditStore;
    let store = hub::store::SqliteStore::open(&dir.join("data/hub.db"), 1).await.expect("open the hub's database");
    store.audit_entries(None, 1000).await.unwrap()
}

/// The `message` of a JSON log line.
pub fn event_message(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("message")?.as_str().map(str::to_string)
}

/// A field of a JSON log line whose message is `message`.
pub fn event_field(line: &str, message: &str, field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != message {
        return None;
    }
    match v.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Stops a test peer: SIGTERM (so it can unregister or stop its children), then SIGKILL when it
/// has not exited within `grace`.
pub fn terminate(child: &mut std::process::Child, grace: Duration) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
