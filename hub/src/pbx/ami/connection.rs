//! One AMI TCP connection: reads the greeting, writes actions, reads messages.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::AmiError;
use super::frame::{Decoder, Message};

/// A connected (not necessarily logged-in) manager connection.
pub struct Connection {
    stream: TcpStream,
    decoder: Decoder,
    greeting: String,
}

impl Connection {
    /// Connects and reads the greeting, each within `timeout`.
    pub async fn open(host: &str, port: u16, timeout: Duration) -> Result<Self, AmiError> {
        let addr = format!("{host}:{port}");
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| AmiError::Timeout(format!("connecting to {addr}")))?
            .map_err(|e| AmiError::Connect(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Self { stream, decoder: Decoder::server(), greeting: String::new() };
        let deadline = tokio::time::Instant::now() + timeout;
        while conn.decoder.greeting().is_none() {
            // Reading for the greeting also drives the decoder past it.
            if conn.decoder.next_message()?.is_some() {
                break;
            }
            if conn.decoder.greeting().is_some() {
                break;
            }
            conn.fill(deadline, "the greeting").await?;
        }
        conn.greeting = conn.decoder.greeting().unwrap_or_default().to_string();
        Ok(conn)
    }

    /// `Asterisk Call Manager/11.0.0`.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Writes one action.
    pub async fn send(&mut self, headers: &[(&str, &str)]) -> Result<(), AmiError> {
        let bytes = Message::encode_action(headers);
        self.stream.write_all(&bytes).await.map_err(|e| AmiError::Closed(format!("write: {e}")))
    }

    /// Writes several encoded actions in one go (pipelining).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), AmiError> {
        self.stream.write_all(bytes).await.map_err(|e| AmiError::Closed(format!("write: {e}")))
    }

    /// The next message, waiting until `deadline`; `Ok(None)` when the server closed.
    pub async fn read(&mut self, deadline: tokio::time::Instant, what: &str) -> Result<Option<Message>, AmiError> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(Some(m));
            }
            if !self.fill(deadline, what).await? {
                return Ok(None);
            }
        }
    }

    /// Reads more bytes; `false` on end of stream.
    async fn fill(&mut self, deadline: tokio::time::Instant, what: &str) -> Result<bool, AmiError> {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
            .await
            .map_err(|_| AmiError::Timeout(format!("waiting for {what}")))?
            .map_err(|e| AmiError::Closed(format!("read: {e}")))?;
        if n == 0 {
            return Ok(false);
        }
        self.decoder.feed(&buf[..n]);
        Ok(true)
    }
}
