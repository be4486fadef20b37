//! The serving hub's local control socket for calls: `<data_dir>/sip.sock` (Unix, mode 0600).
//!
//! `hub sip calls|hangup|transfer` run in another process and need the live state, not a file
//! that may be stale: each connects, writes one JSON request line, reads one JSON answer line.
//! The socket is only reachable by the hub's own user (file mode), like Asterisk's
//! `asterisk.ctl`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::call_table::{CallCommand, CallTable, CallView};
use super::calls::CallService;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "sip.sock";

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No hub is serving (no socket, or nobody listening on it).
    #[error("no serving hub answers on {path} (is `hub serve` running with SIP enabled?)")]
    NotServing {
        /// The socket path.
        path: PathBuf,
    },
    /// Reading or writing the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The hub answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The answer was not what this version expects.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// List the live calls.
    Calls,
    /// Hang up a call.
    Hangup {
        /// The call's id.
        id: u64,
    },
    /// Blind-transfer a call to an extension.
    Transfer {
        /// The call's id.
        id: u64,
        /// The extension.
        to: String,
    },
    /// Place a call to an extension through the registrar (the echo answers on the hub's side).
    Dial {
        /// The extension.
        to: String,
    },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Answer {
    Calls { calls: Vec<CallView> },
    Dialled { id: u64 },
    Done,
    Error { message: String },
}

/// Serves the socket in `data_dir` until `shutdown`, then removes it.
pub fn serve(
    data_dir: &Path,
    service: Arc<CallService>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = data_dir.join(SOCKET);
    // A socket left by a hub that crashed: nobody listens, so it can go.
    if std::os::unix::net::UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = UnixListener::bind(&path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &service)).await;
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn answer(stream: UnixStream, service: &Arc<CallService>) -> std::io::Result<()> {
    let table = service.table().as_ref();
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    read_line(read, &mut line, REQUEST_LIMIT).await?;
    let valid_extension =
        |to: &str| !to.is_empty() && to.chars().all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c));
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => Answer::Error { message: format!("bad request: {e}") },
        Ok(Request::Calls) => Answer::Calls { calls: table.list() },
        Ok(Request::Hangup { id }) => {
            command(table, id, CallCommand::Hangup { reason: "hung up by an operator".into() })
        }
        Ok(Request::Transfer { id, to }) => {
            if valid_extension(&to) {
                command(table, id, CallCommand::Transfer { target: to })
            } else {
                Answer::Error { message: format!("{to:?} is not an extension") }
            }
        }
        Ok(Request::Dial { to }) if !valid_extension(&to) => {
            Answer::Error { message: format!("{to:?} is not an extension") }
        }
        Ok(Request::Dial { to }) => match service.dial(&to) {
            Ok(id) => Answer::Dialled { id },
            Err(e) => Answer::Error { message: e.to_string() },
        },
    };
    let mut bytes = serde_json::to_vec(&answer).unwrap_or_default();
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

fn command(table: &CallTable, id: u64, command: CallCommand) -> Answer {
    if table.command(id, command) { Answer::Done } else { Answer::Error { message: format!("no call {id}") } }
}

/// One line of at most `limit` bytes.
async fn read_line<R: tokio::io::AsyncRead + Unpin>(read: R, line: &mut String, limit: u64) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    BufReader::new(read.take(limit)).read_line(line).await
}

/// A request is one short line.
const REQUEST_LIMIT: u64 = 64 * 1024;
/// An answer lists every live call (about 600 bytes each): room for far more than any limit.
const ANSWER_LIMIT: u64 = 256 * 1024 * 1024;

async fn call(data_dir: &Path, request: &Request) -> Result<Answer, ControlError> {
    let path = data_dir.join(SOCKET);
    let stream = UnixStream::connect(&path).await.map_err(|_| ControlError::NotServing { path: path.clone() })?;
    let io = |source| ControlError::Io { path: path.clone(), source };
    let (read, mut write) = stream.into_split();
    let mut bytes = serde_json::to_vec(request).map_err(|e| ControlError::Protocol(e.to_string()))?;
    bytes.push(b'\n');
    write.write_all(&bytes).await.map_err(io)?;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), read_line(read, &mut line, ANSWER_LIMIT))
        .await
        .map_err(|_| ControlError::Protocol("no answer within 10 s".into()))?
        .map_err(io)?;
    match serde_json::from_str::<Answer>(&line) {
        Ok(Answer::Error { message }) => Err(ControlError::Refused(message)),
        Ok(a) => Ok(a),
        Err(e) => Err(ControlError::Protocol(format!("{e}: {line:?}"))),
    }
}

/// The serving hub's live calls.
pub async fn calls(data_dir: &Path) -> Result<Vec<CallView>, ControlError> {
    match call(data_dir, &Request::Calls).await? {
        Answer::Calls { calls } => Ok(calls),
        other => Err(ControlError::Protocol(format!("{other:?}"))),
    }
}

/// Asks the serving hub to place a call; the new call's id.
pub async fn dial(data_dir: &Path, to: &str) -> Result<u64, ControlError> {
    match call(data_dir, &Request::Dial { to: to.to_owned() }).await? {
        Answer::Dialled { id } => Ok(id),
        other => Err(ControlError::Protocol(format!("{other:?}"))),
    }
}

/// Asks the serving hub to hang up or transfer a call.
pub async fn act(data_dir: &Path, request: &Request) -> Result<(), ControlError> {
    match call(data_dir, request).await? {
        Answer::Done => Ok(()),
        other => Err(ControlError::Protocol(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::media_port::{CallInfo, LegEvents, MediaApp, MediaError, MediaLeg};
    use crate::sip::sdp::AudioCodec;

    struct NoMedia;

    impl MediaApp for NoMedia {
        fn codecs(&self) -> &[AudioCodec] {
            &[AudioCodec::Pcmu]
        }

        fn open(&self, _: &CallInfo, _: LegEvents) -> Result<Box<dyn MediaLeg>, MediaError> {
            Err(MediaError::Refused("no media in this test".into()))
        }
    }

    #[tokio::test]
    async fn list_hangup_and_errors_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(CallTable::new(5000));
        let endpoint = rsipstack::EndpointBuilder::new().build();
        let layer = Arc::new(rsipstack::dialog::dialog_layer::DialogLayer::new(endpoint.inner.clone()));
        let settings = crate::sip::calls::CallSettings {
            ring: Duration::ZERO,
            rtp_timeout: Duration::ZERO,
            contact_user: "hub".into(),
            transfer_domain: None,
            listen: "127.0.0.1:5070".parse().unwrap(),
            outbound: None,
        };
        let service = Arc::new(CallService::new(layer, table.clone(), Arc::new(NoMedia), settings));
        let stop = CancellationToken::new();
        let task = serve(dir.path(), service, stop.clone()).unwrap();
        assert!(calls(dir.path()).await.unwrap().is_empty());
        let err = act(dir.path(), &Request::Hangup { id: 7 }).await.unwrap_err();
        assert_eq!(err.to_string(), "no call 7");
        let err = act(dir.path(), &Request::Transfer { id: 1, to: "1 2".into() }).await.unwrap_err();
        assert!(err.to_string().contains("not an extension"), "{err}");
        // A listing far larger than a request may be (thousands of calls) arrives whole.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..3000 {
            let view = CallView {
                id: 0,
                call_id: "x".repeat(60),
                from: "<sip:caller@192.0.2.1>;tag=abcdef".into(),
                to: "800".into(),
                peer: "192.0.2.1:5060".parse().unwrap(),
                state: crate::sip::call_table::CallState::Up,
                started_at: crate::model::Timestamp::now(),
                answered_at: None,
                codec: Some("PCMU".into()),
                local_rtp: None,
                remote_rtp: None,
                media: Default::default(),
                transfer: None,
            };
            table.admit(view, tx.clone()).unwrap();
        }
        assert_eq!(calls(dir.path()).await.unwrap().len(), 3000);
        let err = dial(dir.path(), "201").await.unwrap_err();
        assert!(err.to_string().contains("no registrar is configured"), "{err}");
        stop.cancel();
        task.await.unwrap();
        assert!(!dir.path().join(SOCKET).exists(), "the socket is removed on stop");
        assert!(matches!(calls(dir.path()).await, Err(ControlError::NotServing { .. })));
    }
}
