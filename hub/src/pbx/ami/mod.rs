//! The Asterisk Manager Interface (AMI).
//!
//! ```text
//!  frame.rs       bytes ⇄ messages (pure; tested on every real Asterisk 22 transcript)
//!  connection.rs  one TCP connection: greeting, write an action, read the next message
//!  client.rs      a logged-in session: login (plain or MD5 challenge), actions matched to
//!                 their answers by ActionID, event lists, Command output, logoff; on an
//!                 events-on session, the event stream and a keepalive Ping
//! ```

pub mod client;
pub mod connection;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod frame;

pub use client::{AmiError, Auth, Session};
pub use connection::Connection;
pub use frame::{Decoder, FrameError, Kind, Message};
