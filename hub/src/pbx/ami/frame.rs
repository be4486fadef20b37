//! AMI framing: `Key: Value\r\n` lines ended by an empty line, after a one-line greeting.
//!
//! What real Asterisk 22 sends, and what this decoder therefore accepts:
//! - the greeting (`Asterisk Call Manager/11.0.0`) is one CRLF-ended line with no blank
//!   line after it;
//! - a message ends at the first empty line; messages arrive split across reads and several
//!   in one read, so decoding works on a buffer;
//! - a line splits at its first `": "` only (values contain `": "`: `Output:` lines,
//!   `UserEvent` headers); a colon without the space is accepted too;
//! - some values end in a bare LF (`Message: Unable to retrieve endpoint 9999\n`), so lines
//!   split on CRLF and a trailing LF is dropped from the value;
//! - keys are case-insensitive for look-ups; order and repeats are kept (`Output:` lines).
//!
//! A message longer than [`MAX_MESSAGE`] is an error rather than an ever-growing buffer.

use std::fmt;

/// The longest message accepted (a full `PJSIPShowEndpoint` answer is a few KiB; large
/// `Command` outputs can reach tens of KiB).
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// What a message is, from its first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Response: …`: the answer to an action (or the start of an event list).
    Response,
    /// `Event: …`: an event, possibly an item of an event list (then it has an `ActionID`).
    Event,
    /// Anything else (an action, when parsing what a client sent).
    Other,
}

/// One AMI message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Its kind.
    pub kind: Kind,
    /// Headers in wire order; keys as sent.
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// The first value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`Output` lines of a `Command` answer).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// `Response:` or `Event:` value.
    pub fn name(&self) -> Option<&str> {
        match self.kind {
            Kind::Response => self.get("Response"),
            Kind::Event => self.get("Event"),
            Kind::Other => self.headers.first().map(|(_, v)| v.as_str()),
        }
    }

    /// The `ActionID`, when the message has one.
    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// Encodes an action: `Key: Value\r\n` lines and the empty line. Values must not hold
    /// line breaks (they would end the message early); they are replaced by spaces.
    pub fn encode_action(headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * headers.len());
        for (k, v) in headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            for c in v.chars() {
                let c = if c == '\r' || c == '\n' { ' ' } else { c };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Secrets never reach a log through `Debug`.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (k, v) in &self.headers {
            let secret = ["Secret", "Key", "Password"].iter().any(|s| k.eq_ignore_ascii_case(s));
            list.entry(&format_args!("{k}: {}", if secret { "[redacted]" } else { v }));
        }
        list.finish()
    }
}

/// Why bytes are not AMI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first line is not an Asterisk Call Manager greeting.
    #[error("not an Asterisk manager: greeting {0:?}")]
    BadGreeting(String),
    /// A message grew past [`MAX_MESSAGE`] without ending.
    #[error("message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    /// A message is not valid UTF-8.
    #[error("message is not UTF-8")]
    NotUtf8,
}

/// Incremental decoder: feed it bytes as they arrive, take messages out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    greeting: Option<String>,
    expect_greeting: bool,
}

impl Decoder {
    /// A decoder for what a server sends (greeting first).
    pub fn server() -> Self {
        Self { expect_greeting: true, ..Self::default() }
    }

    /// A decoder for what a client sends (no greeting).
    pub fn client() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The greeting, once read (`Asterisk Call Manager/11.0.0`).
    pub fn greeting(&self) -> Option<&str> {
        self.greeting.as_deref()
    }

    /// Bytes buffered but not yet a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, if the buffer holds one.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.expect_greeting && self.greeting.is_none() {
            let Some(end) = find(&self.buf, b"\r\n") else {
                return if self.buf.len() > 1024 { Err(FrameError::TooLong) } else { Ok(None) };
            };
            let line = String::from_utf8(self.buf[..end].to_vec()).map_err(|_| FrameError::NotUtf8)?;
            if !line.starts_with("Asterisk Call Manager/") {
                return Err(FrameError::BadGreeting(line));
            }
            self.buf.drain(..end + 2);
            self.greeting = Some(line);
        }
        loop {
            // Stray empty lines between messages carry nothing.
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                return if self.buf.len() > MAX_MESSAGE { Err(FrameError::TooLong) } else { Ok(None) };
            };
            let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
            let text = std::str::from_utf8(&raw[..end]).map_err(|_| FrameError::NotUtf8)?;
            if let Some(msg) = parse(text) {
                return Ok(Some(msg));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one message's text (without its terminating empty line).
fn parse(text: &str) -> Option<Message> {
    let mut headers = Vec::new();
    for line in text.split("\r\n") {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (key, value) = match line.split_once(": ") {
            Some((k, v)) => (k, v),
            None => match line.split_once(':') {
                Some((k, v)) => (k, v),
                None => continue, // a line without a colon carries nothing usable
            },
        };
        let value = value.strip_suffix('\n').unwrap_or(value);
        headers.push((key.trim().to_string(), value.to_string()));
    }
    let (first, _) = headers.first()?;
    let kind = if first.eq_ignore_ascii_case("Response") {
        Kind::Response
    } else if first.eq_ignore_ascii_case("Event") {
        Kind::Event
    } else {
        Kind::Other
    };
    Some(Message { kind, headers })
}

#[cfg(test)]
mod tests;
