//! Debian's baresip (`baresip-core`) as a headless SIP phone for tests: a generated config in
//! a temporary directory, SIP over UDP on a free port of 127.0.0.1, no audio device (a tone
//! file as source, PCMU/PCMA only) and one account.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        Self::start_with(account, &[])
    }

    /// Like [`Baresip::start`], then runs each of `commands` (baresip's `-e`, e.g.
    /// `/dial sip:800@127.0.0.1:5070`) once ready.
    pub fn start_with(account: &str, commands: &[&str]) -> Baresip {
        Self::start_configured(account, commands, "")
    }

    /// Like [`Baresip::start_with`], with `extra` lines appended to its config (e.g.
    /// `sip_transports udp,tls` and `sip_cafile PATH` for SIP over TLS).
    pub fn start_configured(account: &str, commands: &[&str], extra: &str) -> Baresip {
        assert!(
            Path::new("/usr/bin/baresip").exists(),
            "Debian's baresip-core is not installed (scripts/test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // What it sends in a call: 30 s of a 440 Hz tone at 8 kHz (baresip's sine source only
        // runs at 48 kHz, which G.711 cannot carry without a resampler module).
        let tone = dir.path().join("tone.wav");
        write_tone(&tone, 30);
        let tone = tone.display();
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{port}\n\
             sip_transports\t\tudp\n\
             net_interface\t\t127.0.0.1\n\
             audio_source\t\taufile,{tone}\n\
             audio_player\t\taufile,/dev/null\n\
             audio_alert\t\taufile,/dev/null\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n"
        );
        let config = if extra.contains("sip_transports") {
            config.replace("sip_transports\t\tudp\n", "") + extra
        } else {
            config + extra
        };
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("accounts"), format!("{account}\n")).unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-4").arg("-f").arg(dir.path());
        for c in commands {
            cmd.arg("-e").arg(c);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start baresip");
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
        super::terminate(&mut self.child, Duration::from_secs(3));
    }
}

/// A 16-bit mono 8 kHz WAV of a 440 Hz tone lasting `secs`.
fn write_tone(path: &Path, secs: u32) {
    let samples = 8000 * secs;
    let mut wav = Vec::with_capacity(44 + samples as usize * 2);
    let data_len = samples * 2;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let v = (f64::from(n) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0;
        wav.extend_from_slice(&(v as i16).to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}
