//! Debian's kamailio as a SIP registrar with digest auth for tests: `tests/kamailio/registrar.cfg`
//! on a free port of 127.0.0.1, with static credentials given on its command line, in-memory
//! locations, its runtime files in a temporary directory and its log on stderr.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{PeerLog, WAIT, free_port};

/// The registrar's configuration, in the source tree.
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kamailio/registrar.cfg");

/// The digest realm the registrar challenges with.
pub const REALM: &str = "hub.test";

/// The smallest Expires it accepts; below that it answers 423.
pub const MIN_EXPIRES: u32 = 60;

/// A running kamailio registrar; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Kamailio {
    child: Child,
    /// Its UDP and TCP port on 127.0.0.1.
    pub port: u16,
    /// Holds the runtime dir and pid file until the process is gone.
    _dir: tempfile::TempDir,
    log: PeerLog,
}

impl Kamailio {
    /// Starts the registrar with these `(user, password)` pairs and waits until it answers
    /// OPTIONS on its UDP port.
    pub fn start(users: &[(&str, &str)]) -> Kamailio {
        Self::start_with(users, MIN_EXPIRES)
    }

    /// [`Kamailio::start`] with another shortest registration it accepts (`423` below it).
    pub fn start_with(users: &[(&str, &str)], min_expires: u32) -> Kamailio {
        Self::start_full(users, min_expires, 3600, 300)
    }

    /// A registrar that grants at most `max_expires` seconds (so refreshes come fast) and whose
    /// nonces expire after `nonce_expire` seconds (a request with an older one gets `401` with
    /// `stale=true`).
    pub fn start_with_nonces(users: &[(&str, &str)], max_expires: u32, nonce_expire: u32) -> Kamailio {
        Self::start_full(users, 1, max_expires, nonce_expire)
    }

    fn start_full(users: &[(&str, &str)], min_expires: u32, max_expires: u32, nonce_expire: u32) -> Kamailio {
        assert!(
            Path::new("/usr/sbin/kamailio").exists(),
            "Debian's kamailio is not installed (scripts/test installs it)"
        );
        for (user, password) in users {
            let bad = |s: &str| s.is_empty() || s.contains([';', ':', '"', '\\']);
            assert!(!bad(user) && !bad(password), "user and password must be non-empty, without ; : \" \\");
        }
        let users = users.iter().map(|(u, p)| format!("{u}:{p}")).collect::<Vec<_>>().join(";");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("kamailio")
            .args(["-f", CONFIG, "-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path())
            .args(["-l", &format!("udp:127.0.0.1:{port}"), "-l", &format!("tcp:127.0.0.1:{port}")])
            .args(["-A", &format!("USERS=\"{users}\""), "-A", &format!("MIN_EXPIRES={min_expires}")])
            .args(["-A", &format!("REALM=\"{REALM}\""), "-A", &format!("NONCE_EXPIRE={nonce_expire}")])
            .args(["-A", &format!("MAX_EXPIRES={max_expires}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kamailio");
        let log = PeerLog::capture("kamailio", &mut child);
        let kamailio = Kamailio { child, port, _dir: dir, log };
        kamailio.wait_for_log("Listening on");
        let deadline = Instant::now() + WAIT;
        let mut n = 0;
        while !options_answered(port, n) {
            n += 1;
            assert!(Instant::now() < deadline, "kamailio never answered OPTIONS\n{}", kamailio.log_text());
        }
        kamailio
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Everything it logged so far, one line per entry, under a header for failure messages.
    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Waits (bounded by [`WAIT`]) until a log line containing `needle` appears; returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.log.wait_for(needle)
    }
}

/// Sends one OPTIONS over UDP and waits briefly for its 200.
fn options_answered(port: u16, n: u32) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let local = sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: probe-{n}-{}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        local.port()
    );
    if sock.send_to(req.as_bytes(), ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    matches!(sock.recv(&mut buf), Ok(len) if buf[..len].starts_with(b"SIP/2.0 200"))
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM lets the main process stop its worker children; SIGKILL would orphan them.
        super::terminate(&mut self.child, Duration::from_secs(5));
    }
}
