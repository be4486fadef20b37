//! The Asterisk Manager Interface (AMI).
//!
//! ```text
//!  frame.rs       bytes ⇄ messages (pure; tested on every real Asterisk 22 transcript)
//!  connection.rs  one TCP connection: greeting, write an action, read the next message
//!  client.rs      a logged-in session: login (plain or MD5 challenge), actions matched to
//!                 their answers by ActionID, event lists, Command output, logoff
//! ```

pub mod client;
pub mod connection;
pub mod frame;

pub use client::{AmiError, Auth, Session};
pub use connection::Connection;
pub use frame::{Decoder, FrameError, Kind, Message};
