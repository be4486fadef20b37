//! Ids, value types and records shared by every module (L0: no I/O, std/serde only).
//!
//! Keeping these at the bottom of the layering lets `store`, `directory`, `calls` and the
//! adapters name a user or a session without importing each other.

/// Implements `as_str`, `Display` and `FromStr` for a fieldless enum from one table, so the
/// names used in storage, JSON and the CLI cannot drift apart.
macro_rules! str_enum {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// The lowercase name used in storage, JSON and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($ty),
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

mod audit;
mod call_record;
mod ids;
mod mailbox;
mod provisioning;
mod secret;
mod session;
mod sip_account;
mod time;
mod user;

pub use audit::{AuditEntry, NewAuditEntry};
pub use call_record::{CallOutcome, CallPath, CallRecord};
pub use ids::{CallId, Extension, ExtensionError, MessageId, RecordId, SessionId, SessionToken, UserId};
pub use mailbox::{MailboxMessage, NewMailboxMessage};
pub use provisioning::{ProvisionRecord, ProvisionStatus, ReloadRecord};
pub use secret::{REDACTED, Secret};
pub use session::Session;
pub use sip_account::SipAccount;
pub use time::Timestamp;
pub use user::{NewUser, Number, NumberKind, NumberSource, User, UserUpdate, search_tokens};
