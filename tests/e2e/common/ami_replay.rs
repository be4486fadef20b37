//! A fixture-replay AMI server: it answers a client with the bytes a real Asterisk 22 sent in
//! the same session (`shared/fixtures/ami`), chunk by chunk as they arrived, with the delays
//! that matter (a failed login is answered after about a second, then the socket closes).
//!
//! It is a test peer that *replays*; it is not Asterisk. It checks that the client sends the
//! same actions in the same order (and, for MD5 logins, the same key), and rewrites the
//! fixture's ActionIDs to the client's so answers can be matched.

use std::path::PathBuf;
use std::time::Duration;

use hub::pbx::ami::{Decoder, Kind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Longest delay replayed (the real ones that matter are about 1 s).
const MAX_DELAY: Duration = Duration::from_millis(1500);

fn dir() -> PathBuf {
    std::env::var_os("HUB_AMI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ami"))
}

struct Exchange {
    /// The fixture client's actions in one write.
    actions: Vec<Message>,
    /// What the server sent after them: (delay after the previous step, bytes).
    replies: Vec<(Duration, String)>,
    /// Whether the server closed the connection after the replies.
    close: bool,
}

struct Script {
    greeting: String,
    exchanges: Vec<Exchange>,
}

fn script(name: &str) -> Script {
    let path = dir().join(format!("{name}.timeline.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut greeting = String::new();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut last_t = 0.0f64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["t"].as_f64().unwrap_or(0.0);
        let data = v["data"].as_str().unwrap_or("").to_string();
        match v["dir"].as_str() {
            Some("S") if exchanges.is_empty() => greeting.push_str(&data),
            Some("S") => {
                let delay = Duration::from_secs_f64((t - last_t).max(0.0)).min(MAX_DELAY);
                exchanges.last_mut().unwrap().replies.push((delay, data));
            }
            Some("C") => {
                let mut d = Decoder::client();
                d.feed(data.as_bytes());
                let mut actions = Vec::new();
                while let Ok(Some(m)) = d.next_message() {
                    actions.push(m);
                }
                exchanges.push(Exchange { actions, replies: Vec::new(), close: false });
            }
            _ if data.contains("server closed") => {
                if let Some(e) = exchanges.last_mut() {
                    e.close = true;
                }
            }
            _ => {}
        }
        last_t = t;
    }
    Script { greeting, exchanges }
}

/// A running replay of one fixture, for one client connection.
pub struct Replay {
    /// Where to connect.
    pub port: u16,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Replay {
    /// Listens on 127.0.0.1 (ephemeral port) and replays `fixture` to the first client.
    pub async fn start(fixture: &str) -> Replay {
        let script = script(fixture);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
            sock.write_all(script.greeting.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut decoder = Decoder::client();
            let mut buf = [0u8; 8192];
            for (i, ex) in script.exchanges.iter().enumerate() {
                let mut got = Vec::new();
                while got.len() < ex.actions.len() {
                    match decoder.next_message() {
                        Ok(Some(m)) => got.push(m),
                        Ok(None) => {
                            let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
                            if n == 0 {
                                return Ok(()); // the client stopped early: fine
                            }
                            decoder.feed(&buf[..n]);
                        }
                        Err(e) => return Err(format!("client sent non-AMI bytes: {e}")),
                    }
                }
                let mut replies: String = ex.replies.iter().map(|(_, s)| s.as_str()).collect();
                for (want, sent) in ex.actions.iter().zip(&got) {
                    if want.get("Action") != sent.get("Action") {
                        return Err(format!(
                            "step {i}: expected action {:?}, client sent {:?}",
                            want.get("Action"),
                            sent.get("Action")
                        ));
                    }
                    if want.get("Key").is_some() && want.get("Key") != sent.get("Key") {
                        return Err(format!("step {i}: MD5 key differs from the one Asterisk accepted or refused"));
                    }
                    replies = match (want.action_id(), sent.action_id()) {
                        (Some(old), Some(new)) => {
                            replies.replace(&format!("ActionID: {old}\r\n"), &format!("ActionID: {new}\r\n"))
                        }
                        (None, Some(new)) => match replies.find("\r\n") {
                            Some(end) if replies.starts_with("Response:") => {
                                format!("{}\r\nActionID: {new}{}", &replies[..end], &replies[end..])
                            }
                            _ => replies,
                        },
                        _ => replies,
                    };
                }
                // Same chunk boundaries as recorded (the last chunk absorbs any length change).
                let mut rest = replies.as_str();
                for (k, (delay, original)) in ex.replies.iter().enumerate() {
                    tokio::time::sleep(*delay).await;
                    let take = if k + 1 == ex.replies.len() { rest.len() } else { original.len().min(rest.len()) };
                    let (chunk, tail) = rest.split_at(take);
                    sock.write_all(chunk.as_bytes()).await.map_err(|e| e.to_string())?;
                    rest = tail;
                }
                if ex.close {
                    return Ok(());
                }
            }
            // Everything replayed: wait for the client to go.
            let _ = sock.read(&mut buf).await;
            Ok(())
        });
        Replay { port, task }
    }

    /// The replay's verdict: did the client send what the real session sent?
    pub async fn verdict(self) -> Result<(), String> {
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .map_err(|_| "replay still running".to_string())?
            .unwrap()
    }
}

/// Whether a message is a response (for assertions).
pub fn is_response(m: &Message) -> bool {
    m.kind == Kind::Response
}
