//! Asterisk (L2): the Asterisk Manager Interface (codec, connection, command session), the
//! read side a sysadmin uses (`hub pbx endpoints|contacts|channels`), provisioning (SIP
//! accounts, config rendered from templates, one coalesced reload, verification), and the
//! live SIP presence of every endpoint, kept current by a long-lived AMI event link.
//!
//! ```text
//!  ami/               the protocol: frames, one connection, a logged-in session
//!  asterisk.rs        listings as plain rows (endpoints, contacts, channels) and actions
//!  accounts.rs        generated SIP usernames and secrets, rotation
//!  provision.rs       store → render → write → one reload → verify → record
//!  provision_loop.rs  coalescing, retry while Asterisk is down, resync
//!  presence.rs        SipPresence: per endpoint, registered contacts and device state
//!  link.rs            EventLink: events-on session that seeds and updates SipPresence, reconnects
//! ```

pub mod accounts;
pub mod ami;
pub mod asterisk;
pub mod link;
pub mod presence;
pub mod provision;
pub mod provision_loop;

pub use link::{EventLink, LinkHandle, LinkOptions, LinkStatus};
pub use presence::{ContactStatus, DeviceState, EndpointPresence, SipPresence};
