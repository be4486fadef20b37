//! Load benchmark: 10,000 signed-in tabs on one hub, then call set-ups at a steady rate;
//! a set-up counts from the caller sending `call` to the ring (`incoming`) having reached
//! every device of the callee. Reports p50/p99 set-up latency and the hub's memory and CPU.
//!
//! Run: `cargo bench -p hub-tests --bench signaling_load` (release). Optional environment:
//! `CALLERS` (default 5000), `CALLEE_USERS` (2500, two tabs each), `RATE` (500 calls/s),
//! `SECONDS` (10). The hub runs as its own process (the release binary), on 127.0.0.1.

mod report;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hub::model::{NewUser, Session, SessionToken, Timestamp};
use hub::store::{DirectoryStore, SessionStore, SqliteStore, Store};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn proc_status(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (rss_kb, ticks / 100.0)
}

struct Tab {
    user: String,
    cookie: String,
}

/// When each caller sent its call, and when each callee device got the ring.
#[derive(Default)]
struct Timings {
    sent: HashMap<String, Instant>,
    rung: HashMap<String, Vec<Instant>>,
}

/// A user with `tokens` signed-in tabs, and their cookies.
async fn make(store: &SqliteStore, key: &cookie::Key, tokens: usize, name: String) -> Vec<Tab> {
    let user = store
        .create_user(NewUser { username: name.clone(), display_name: name.clone(), ..Default::default() })
        .await
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..tokens {
        let token = SessionToken::generate();
        let now = Timestamp::now();
        let s = Session {
            id: token.id(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now.plus(Duration::from_secs(3600)),
            user_agent: Some("load".into()),
            ip: Some("127.0.0.1".into()),
        };
        store.create_session(&s).await.unwrap();
        let mut jar = cookie::CookieJar::new();
        jar.private_mut(key).add(cookie::Cookie::new("hub_session", token.expose().to_string()));
        let c = jar.get("hub_session").unwrap();
        out.push(Tab { user: user.id.to_string(), cookie: format!("hub_session={}", c.value()) });
    }
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let callers = env("CALLERS", 5000);
    let callee_users = env("CALLEE_USERS", 2500);
    let rate = env("RATE", 500);
    let seconds = env("SECONDS", 10);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let devices = callers + callee_users * 2;
    println!(
        "signaling load: {devices} tabs ({callers} callers, {callee_users} callees × 2 tabs), {rate} calls/s for {seconds} s, {cores} cores"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key_bytes: [u8; 64] = rand::random();
    std::fs::write(data.join("cookie.key"), key_bytes).unwrap();
    let key = cookie::Key::from(&key_bytes);

    // Users and sessions, written before the hub starts.
    let t = Instant::now();
    let store = SqliteStore::open(&data.join("hub.db"), 4).await.unwrap();
    let mut tabs: Vec<Tab> = Vec::with_capacity(devices);
    let mut callee_ids = Vec::new();
    for i in 0..callee_users {
        let made = make(&store, &key, 2, format!("callee{i}")).await;
        callee_ids.push(made[0].user.clone());
        tabs.extend(made);
    }
    let mut caller_ids = Vec::new();
    for i in 0..callers {
        let made = make(&store, &key, 1, format!("caller{i}")).await;
        caller_ids.push(made[0].user.clone());
        tabs.extend(made);
    }
    store.close().await;
    println!("  setup: {} users and {devices} sessions in {:.1} s", callers + callee_users, t.elapsed().as_secs_f64());

    let mut hub = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .current_dir(dir.path())
        .env_clear()
        .env("HUB_CALLS__MAX_OUTGOING_PER_IP", "1000000")
        .args(["--bind", "127.0.0.1:0", "--log-format", "json", "--log-level", "warn,hub::app=info", "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = hub.id();
    let addr = report::listening_addr(&mut hub, Duration::from_secs(30));
    let (rss0, _) = proc_status(pid);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth());

    // Connect every tab, 200 at a time.
    let t = Instant::now();
    let timings = Arc::new(Mutex::new(Timings::default()));
    let (welcomed_tx, mut welcomed_rx) = mpsc::unbounded_channel::<()>();
    let mut senders: HashMap<String, mpsc::UnboundedSender<String>> = HashMap::new();
    let mut keep: Vec<mpsc::UnboundedSender<String>> = Vec::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(200));
    let mut joins = Vec::new();
    for tab in tabs {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        // Every tab keeps its sender alive (a closed one would end the tab's loop); callers
        // (one tab each) are also found by user.
        keep.push(out_tx.clone());
        senders.insert(tab.user.clone(), out_tx);
        let (addr, tls, timings, welcomed) = (addr.clone(), tls.clone(), timings.clone(), welcomed_tx.clone());
        joins.push(tokio::spawn(async move {
            let mut req = format!("wss://{addr}/ws").into_client_request().unwrap();
            req.headers_mut().insert("origin", format!("https://{addr}").parse().unwrap());
            req.headers_mut().insert("cookie", tab.cookie.parse().unwrap());
            let connector = tokio_tungstenite::Connector::Rustls(tls);
            let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
                .await
                .expect("connect");
            drop(permit);
            let (mut sink, mut stream) = ws.split();
            loop {
                tokio::select! {
                    frame = stream.next() => {
                        let Some(Ok(frame)) = frame else { break };
                        let Message::Text(text) = frame else { continue };
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        match v["type"].as_str() {
                            Some("welcome") => { let _ = welcomed.send(()); }
                            Some("incoming") => {
                                let from = v["from"]["id"].as_str().unwrap().to_string();
                                timings.lock().unwrap().rung.entry(from).or_default().push(Instant::now());
                            }
                            Some("calling") => {
                                let hangup = format!(r#"{{"v":1,"type":"hangup","call":{}}}"#, v["call"]);
                                if sink.send(Message::text(hangup)).await.is_err() { break; }
                            }
                            _ => {}
                        }
                    }
                    out = out_rx.recv() => {
                        let Some(text) = out else { break };
                        if sink.send(Message::text(text)).await.is_err() { break; }
                    }
                }
            }
        }));
    }
    drop(welcomed_tx);
    for _ in 0..devices {
        welcomed_rx.recv().await.expect("every tab welcomed");
    }
    let (rss_connected, cpu_connected) = proc_status(pid);
    println!(
        "  connected {devices} tabs in {:.1} s; hub RSS {:.0} MB idle before, {:.0} MB with all tabs ({:.1} KB per tab)",
        t.elapsed().as_secs_f64(),
        rss0 as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        (rss_connected.saturating_sub(rss0)) as f64 / devices as f64
    );

    // Calls at a steady rate: caller i calls callee (i % callee_users).
    let total = (rate * seconds).min(callers);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let caller = &caller_ids[i];
        let callee = &callee_ids[i % callee_users];
        let msg = format!(r#"{{"v":1,"type":"call","to":"{callee}","req":"{i}"}}"#);
        timings.lock().unwrap().sent.insert(caller.clone(), Instant::now());
        senders[caller].send(msg).unwrap();
    }
    let sending = start.elapsed();
    // Wait until every ring arrived (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let complete = timings.lock().unwrap().rung.values().filter(|v| v.len() >= 2).count();
        if complete >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rss_end, cpu_end) = proc_status(pid);
    let t = timings.lock().unwrap();
    let mut samples: Vec<Duration> = Vec::new();
    let mut missing = 0;
    for (caller, sent) in &t.sent {
        match t.rung.get(caller) {
            Some(r) if r.len() >= 2 => samples.push(r.iter().max().unwrap().duration_since(*sent)),
            _ => missing += 1,
        }
    }
    println!(
        "  {total} calls sent in {:.2} s ({:.0}/s); {missing} did not ring both tabs",
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64()
    );
    report::latency("set-up latency (call → ring on every callee tab)", &mut samples);
    println!(
        "  hub after the run: RSS {:.0} MB, CPU {:.1} s during the calls ({:.0}% of one core)",
        rss_end as f64 / 1024.0,
        cpu_end - cpu_connected,
        (cpu_end - cpu_connected) / sending.as_secs_f64() * 100.0
    );
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = hub.wait();
    for j in joins {
        j.abort();
    }
}
