//! Storage behind narrow role traits (L1: sees only `model` and `config`).
//!
//! ```text
//!             Store (one handle, Arc<dyn Store>)
//!   ┌────────────┬─────────┬────────────┬─────────┬─────────┬────────┐
//!   Directory    Session   SipAccount   Provisioning   Mailbox   CallLog   Audit  ← role traits
//!   └────────────┴─────────┴─────┬──────┴─────────┴─────────┴────────┘
//!                    sqlite.rs (default)  |  mongo.rs (feature "mongodb")
//! ```
//!
//! Callers depend on the role they need; `app.rs` alone picks a backend with [`open`].
//! Both backends pass the same suite in `conformance.rs`: uniqueness is enforced by the
//! database itself (unique constraints / unique indexes), never by a read-then-write check,
//! so concurrent writers cannot slip a duplicate extension past it.

#[cfg(test)]
mod conformance;
mod error;
#[cfg(feature = "mongodb")]
mod mongo;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Backend, StoreConfig};
use crate::model::{
    AuditEntry, CallRecord, Extension, MailboxMessage, MessageId, NewAuditEntry, NewMailboxMessage, NewUser, Number,
    NumberSource, ProvisionRecord, ReloadRecord, Session, SessionId, SipAccount, Timestamp, User, UserId, UserUpdate,
};

#[cfg(test)]
pub(crate) use conformance::run_conformance_suite;
pub use error::{Result, StoreError, Unique};
#[cfg(feature = "mongodb")]
pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

/// Which users a listing returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Only users with a word of their name, username or e-mail starting with this
    /// (case-insensitive).
    pub name_prefix: Option<String>,
    /// Include disabled users.
    pub include_disabled: bool,
    /// At most this many (all when `None`).
    pub limit: Option<usize>,
}

/// Users and their numbers.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates a user with a fresh id. Fails with [`StoreError::Conflict`] when the username,
    /// subject or extension is taken.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    /// A user by id.
    async fn user(&self, id: &UserId) -> Result<Option<User>>;
    /// A user by username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// A user by IdP subject.
    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>>;
    /// A user by extension.
    async fn user_by_extension(&self, extension: &Extension) -> Result<Option<User>>;
    /// Users sorted by display name (case-insensitive), then id.
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>>;
    /// Changes profile fields; conflicts as in [`DirectoryStore::create_user`].
    async fn update_user(&self, id: &UserId, update: &UserUpdate) -> Result<User>;
    /// Replaces the user's numbers from `source`, leaving other sources' numbers alone.
    async fn set_numbers(&self, id: &UserId, source: NumberSource, numbers: &[Number]) -> Result<User>;
    /// Extensions in use within `first..=last`, ascending: for handing out the next free one.
    async fn extensions_in_range(&self, first: u32, last: u32) -> Result<Vec<u32>>;
    /// How many users exist (disabled included).
    async fn count_users(&self) -> Result<u64>;
}

/// Signed-in sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// A session by id, expired or not.
    async fn session(&self, id: &SessionId) -> Result<Option<Session>>;
    /// A session and its user in one lookup: the check every signed-in request makes.
    async fn session_with_user(&self, id: &SessionId) -> Result<Option<(Session, User)>>;
    /// A user's sessions, oldest first.
    async fn sessions_of(&self, user: &UserId) -> Result<Vec<Session>>;
    /// Ends one session; whether it existed.
    async fn delete_session(&self, id: &SessionId) -> Result<bool>;
    /// Ends all of a user's sessions; how many there were.
    async fn delete_sessions_of(&self, user: &UserId) -> Result<u64>;
    /// Deletes sessions that expired before `now`; how many.
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64>;
}

/// Per-user SIP credentials.
#[async_trait]
pub trait SipAccountStore: Send + Sync {
    /// Creates or replaces the user's account. Fails with a conflict when the SIP username
    /// belongs to another user.
    async fn put_sip_account(&self, account: &SipAccount) -> Result<()>;
    /// Creates or replaces many accounts, all or none where the backend has transactions
    /// (the first provisioning of thousands of users); conflicts as in `put_sip_account`.
    async fn put_sip_accounts(&self, accounts: &[SipAccount]) -> Result<()> {
        for a in accounts {
            self.put_sip_account(a).await?;
        }
        Ok(())
    }
    /// The user's account.
    async fn sip_account(&self, user: &UserId) -> Result<Option<SipAccount>>;
    /// An account by SIP username.
    async fn sip_account_by_username(&self, username: &str) -> Result<Option<SipAccount>>;
    /// Every account, by username.
    async fn sip_accounts(&self) -> Result<Vec<SipAccount>>;
    /// Removes the user's account; whether it existed.
    async fn delete_sip_account(&self, user: &UserId) -> Result<bool>;
}

/// Per-user provisioning state on Asterisk and the last reload: what makes pending work
/// survive a hub restart or an Asterisk outage.
#[async_trait]
pub trait ProvisioningStore: Send + Sync {
    /// Every user's record, by endpoint name.
    async fn provision_records(&self) -> Result<Vec<ProvisionRecord>>;
    /// Creates or replaces these records: in one transaction where the backend has them
    /// (SQLite); each record is written whole either way, and rewriting one is harmless.
    async fn put_provision_records(&self, records: &[ProvisionRecord]) -> Result<()>;
    /// The last reload, if any.
    async fn last_reload(&self) -> Result<Option<ReloadRecord>>;
    /// Replaces the last reload.
    async fn put_reload(&self, reload: &ReloadRecord) -> Result<()>;
}

/// Voicemail metadata.
#[async_trait]
pub trait MailboxStore: Send + Sync {
    /// Stores a new unread message.
    async fn add_message(&self, message: NewMailboxMessage) -> Result<MailboxMessage>;
    /// A message by id (any owner: callers check ownership).
    async fn message(&self, id: &MessageId) -> Result<Option<MailboxMessage>>;
    /// The owner's messages, newest first: those in the trash when `trashed`, else the rest.
    async fn messages(&self, owner: &UserId, trashed: bool) -> Result<Vec<MailboxMessage>>;
    /// Marks a message read or unread; whether it existed.
    async fn set_read(&self, id: &MessageId, read: bool) -> Result<bool>;
    /// Moves a message to the trash (`Some(time)`) or restores it (`None`).
    async fn set_trashed(&self, id: &MessageId, at: Option<Timestamp>) -> Result<bool>;
    /// Deletes a message's record for good.
    async fn delete_message(&self, id: &MessageId) -> Result<bool>;
    /// Messages trashed before `before`, for purging with their files.
    async fn trashed_before(&self, before: Timestamp) -> Result<Vec<MailboxMessage>>;
    /// Unread messages not in the trash.
    async fn unread_count(&self, owner: &UserId) -> Result<u64>;
}

/// Call detail records.
#[async_trait]
pub trait CallLogStore: Send + Sync {
    /// Stores a finished call.
    async fn add_call_record(&self, record: &CallRecord) -> Result<()>;
    /// Newest first; only calls where `party` is caller or callee when given.
    async fn call_records(&self, party: Option<&str>, limit: usize) -> Result<Vec<CallRecord>>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry stamped now.
    async fn audit(&self, entry: NewAuditEntry) -> Result<AuditEntry>;
    /// Newest first; only the user's when given.
    async fn audit_entries(&self, user: Option<&UserId>, limit: usize) -> Result<Vec<AuditEntry>>;
}

/// Every role, from one backend.
#[async_trait]
pub trait Store:
    DirectoryStore + SessionStore + SipAccountStore + ProvisioningStore + MailboxStore + CallLogStore + AuditStore
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
    /// `sqlite` or `mongodb`, for status output.
    fn backend_name(&self) -> &'static str;
    /// Flushes and closes connections; later calls fail.
    async fn close(&self);
}

/// Opens the backend the config selects, creating or migrating its schema.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    match config.backend() {
        Backend::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path, config.max_connections).await?)),
        #[cfg(feature = "mongodb")]
        Backend::Mongo { url, database } => Ok(Arc::new(MongoStore::open(&url, &database).await?)),
        #[cfg(not(feature = "mongodb"))]
        Backend::Mongo { .. } => Err(StoreError::Open {
            location: "mongodb".into(),
            reason: "this hub was built without the \"mongodb\" feature".into(),
        }),
    }
}
