//! Text-to-speech for `say(text)`: Debian's `espeak-ng` writes a WAV once per distinct text
//! (and voice); the file is cached, so a menu read to a thousand callers is synthesised once
//! and then shared through the media engine's prompt cache like any other prompt.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Longest text `say` accepts.
pub const MAX_TEXT: usize = 2000;
/// How long `espeak-ng` may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Why there is no speech.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// `espeak-ng` is not installed.
    #[error("say() needs text-to-speech: install Debian's espeak-ng (apt-get install espeak-ng)")]
    NotInstalled,
    /// Empty or too long.
    #[error("say() takes 1 to {MAX_TEXT} characters, not {0}")]
    BadText(usize),
    /// `espeak-ng` failed or took too long.
    #[error("espeak-ng failed: {0}")]
    Failed(String),
}

/// Speech files under `cache_dir`, made by `program` (normally `espeak-ng`).
#[derive(Clone, Debug)]
pub struct Tts {
    cache_dir: PathBuf,
    program: PathBuf,
}

impl Tts {
    /// Speech cached in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        Self { cache_dir, program: PathBuf::from("espeak-ng") }
    }

    /// The WAV file saying `text`, synthesised now if it is not cached yet.
    pub fn speak(&self, text: &str) -> Result<PathBuf, TtsError> {
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > MAX_TEXT {
            return Err(TtsError::BadText(chars));
        }
        let digest = Sha256::digest(text.as_bytes());
        let name = format!("say-{}.wav", hex::encode(&digest[..12]));
        let path = self.cache_dir.join(&name);
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| TtsError::Failed(e.to_string()))?;
        let partial = self.cache_dir.join(format!(".{name}.{}.partial", std::process::id()));
        let result = self
            .synthesise(text, &partial)
            .and_then(|()| std::fs::rename(&partial, &path).map_err(|e| TtsError::Failed(e.to_string())));
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result.map(|()| path)
    }

    fn synthesise(&self, text: &str, out: &Path) -> Result<(), TtsError> {
        let mut child = Command::new(&self.program)
            .arg("-w")
            .arg(out)
            .arg("--")
            .arg(text)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TtsError::NotInstalled,
                _ => TtsError::Failed(e.to_string()),
            })?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return Err(TtsError::Failed(format!("{status}: {}", err.trim())));
                }
                Ok(None) if started.elapsed() > DEADLINE => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TtsError::Failed(format!("no speech after {DEADLINE:?}")));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(TtsError::Failed(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_a_clear_error_and_bad_text_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tts = Tts { cache_dir: dir.path().into(), program: "/nonexistent/espeak-ng".into() };
        assert!(matches!(tts.speak("hello"), Err(TtsError::NotInstalled)));
        assert!(matches!(tts.speak("  "), Err(TtsError::BadText(2))));
        assert!(matches!(tts.speak(&"a".repeat(MAX_TEXT + 1)), Err(TtsError::BadText(_))));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing half-written is left");
    }

    #[test]
    fn speech_is_made_once_per_text_when_espeak_ng_is_installed() {
        if Command::new("espeak-ng").arg("--version").output().is_err() {
            eprintln!("skipped: espeak-ng is not installed (scripts/test installs it)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tts = Tts::new(dir.path().into());
        let a = tts.speak("Press one for the directory.").unwrap();
        let bytes = std::fs::read(&a).unwrap();
        assert!(bytes.starts_with(b"RIFF") && bytes.len() > 8000, "a WAV with speech in it");
        let modified = std::fs::metadata(&a).unwrap().modified().unwrap();
        assert_eq!(tts.speak("Press one for the directory.").unwrap(), a);
        assert_eq!(std::fs::metadata(&a).unwrap().modified().unwrap(), modified, "cached, not made again");
        assert_ne!(tts.speak("Press two.").unwrap(), a);
    }
}
