//! Debian's coturn as the TURN server for tests, in the TURN REST (`use-auth-secret`) mode.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{WAIT, free_port};

/// The shared secret the hub and coturn use.
pub const SECRET: &str = "turn-e2e-secret";

/// A running turnserver.
pub struct Turn {
    child: Child,
    /// Its UDP/TCP port on 127.0.0.1.
    pub port: u16,
    log: std::path::PathBuf,
}

/// Answers a STUN Binding request: the server is up.
fn stun_answers(port: u16) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    req.extend_from_slice(&rand::random::<[u8; 12]>());
    if sock.send_to(&req, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv(&mut buf), Ok(n) if n >= 20 && buf[0] == 0x01 && buf[1] == 0x01)
}

impl Turn {
    /// Starts coturn with relay ports near a free port and waits until it answers STUN.
    pub fn start(dir: &std::path::Path) -> Turn {
        assert!(
            std::path::Path::new("/usr/bin/turnserver").exists(),
            "Debian's coturn is not installed (scripts/test installs it)"
        );
        let port = free_port();
        let relay = free_port();
        let log = dir.join("turnserver.log");
        let child = Command::new("turnserver")
            .args([
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={}", relay.saturating_sub(20).max(1025)),
                &format!("--max-port={}", relay.saturating_add(20)),
                "--use-auth-secret",
                &format!("--static-auth-secret={SECRET}"),
                "--realm=hub.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--no-stdout-log",
                &format!("--log-file={}", log.display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver");
        let mut turn = Turn { child, port, log };
        let deadline = Instant::now() + WAIT;
        while !stun_answers(port) {
            if let Ok(Some(status)) = turn.child.try_wait() {
                panic!("turnserver exited ({status})\n{}", turn.log());
            }
            assert!(Instant::now() < deadline, "turnserver never answered STUN\n{}", turn.log());
        }
        turn
    }

    /// coturn's log (it names its file with a date suffix; every match is read).
    pub fn log(&self) -> String {
        let dir = self.log.parent().unwrap();
        let mut out = String::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("turnserver") {
                out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        out
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
