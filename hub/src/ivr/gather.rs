//! `gather(#{…})`: collect digits the way callers expect from a menu. Play the prompt (a digit
//! stops it), then read digits until `max_digits`, the terminator or an inter-digit timeout;
//! when nothing was entered, play the prompt again, `retries` times.

use std::time::Duration;

use super::io::{CallIo, IoError};

/// What to say before reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// Nothing: just read.
    None,
    /// A prompt file.
    File(String),
    /// Text-to-speech.
    Say(String),
}

/// `gather`'s options, with the defaults documented in docs/ivr.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatherOptions {
    /// Played (with barge-in) before each attempt.
    pub prompt: Prompt,
    /// Stop after this many digits.
    pub max_digits: usize,
    /// Wait for the first digit after the prompt, and between digits.
    pub timeout: Duration,
    /// A digit that ends the input early and is not part of it.
    pub terminator: Option<char>,
    /// Extra attempts when nothing was entered.
    pub retries: u32,
}

impl Default for GatherOptions {
    fn default() -> Self {
        Self { prompt: Prompt::None, max_digits: 1, timeout: Duration::from_secs(5), terminator: Some('#'), retries: 2 }
    }
}

/// Runs `gather` on `io`; `remaining` bounds each wait by the call's time left. Returns the
/// digits, or "" when every attempt timed out.
pub fn gather(
    io: &mut dyn CallIo,
    options: &GatherOptions,
    remaining: &dyn Fn() -> Duration,
) -> Result<String, IoError> {
    for _attempt in 0..=options.retries {
        match &options.prompt {
            Prompt::None => None,
            Prompt::File(f) => io.play(f, true)?,
            Prompt::Say(t) => io.say(t, true)?,
        };
        // A barge-in digit stays unread, so the first read returns it at once.
        let mut digits = String::new();
        while digits.len() < options.max_digits {
            match io.read_digit(options.timeout.min(remaining()))? {
                None => break,
                Some(d) if Some(d) == options.terminator => break,
                Some(d) => digits.push(d),
            }
        }
        if !digits.is_empty() {
            return Ok(digits);
        }
    }
    Ok(String::new())
}
