//! Debian's baresip (`baresip-core`) as a headless SIP phone for tests: a generated config in
//! a temporary directory, SIP over UDP on a free port of 127.0.0.1, no audio device (a sine
//! source, PCMU/PCMA only) and one account.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{PeerLog, free_port};

/// A running baresip; stopped on drop.
pub struct Baresip {
    child: Child,
    /// Its SIP port (UDP) on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
    log: PeerLog,
}

impl Baresip {
    /// Starts baresip with one account line, in baresip's `accounts` syntax, e.g.
    /// `<sip:alice@127.0.0.1:5060;transport=udp>;auth_pass=secret;regint=600`.
    /// Returns once it logs "baresip is ready" (bounded by `WAIT`).
    pub fn start(account: &str) -> Baresip {
        assert!(
            Path::new("/usr/bin/baresip").exists(),
            "Debian's baresip-core is not installed (scripts/test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{port}\n\
             sip_transports\t\tudp\n\
             net_interface\t\t127.0.0.1\n\
             audio_source\t\tausine,440\n\
             audio_player\t\taufile,/dev/null\n\
             audio_alert\t\taufile,/dev/null\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\tausine.so\n\
             module\t\t\taufile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n"
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("accounts"), format!("{account}\n")).unwrap();
        let mut child = Command::new("baresip")
            .arg("-4")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start baresip");
        let log = PeerLog::capture("baresip", &mut child);
        let baresip = Baresip { child, port, _dir: dir, log };
        baresip.wait_for_log("baresip is ready");
        baresip
    }

    /// Everything it logged so far, under a header for failure messages.
    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Waits (bounded by `WAIT`) until a log line containing `needle` appears; returns it.
    /// baresip's stdout is a pipe here, so it may arrive late: prefer the peer's log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.log.wait_for(needle)
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        // SIGTERM: baresip unregisters and exits; SIGKILL if it takes too long.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
