//! The directory: users, their extensions and numbers (L2, over `store`).
//!
//! This is the domain API that both adapters use: `hub users …` and the web app call the
//! same functions, so they validate and audit the same way. Every change is written to the
//! audit log with the actor that made it.

mod extensions;
mod users;

use std::sync::Arc;

use crate::config::ExtensionRange;
use crate::model::{Extension, NewAuditEntry, User, UserId, UserUpdate};
use crate::store::{Store, StoreError, UserQuery};

pub use users::{AddUser, parse_number};

/// Result of a directory call.
pub type Result<T> = std::result::Result<T, DirectoryError>;

/// What can go wrong in the directory.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No user matches the reference a person gave.
    #[error("no user {0:?} (looked up by username, extension and id)")]
    NotFound(String),
    /// A value a person gave is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Every extension of the configured range is taken.
    #[error("no free extension left in pbx.extension_range {0}: widen the range or free an extension")]
    RangeExhausted(ExtensionRange),
    /// Storage failed or refused (conflicts included).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is acting, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// `cli`, `web:<username>`, `idp`…
    pub name: String,
    /// Client address for network actions.
    pub ip: Option<String>,
}

impl Actor {
    /// A sysadmin at the command line.
    pub fn cli() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Self { name: format!("cli:{who}"), ip: None }
    }
}

/// Cheap-to-clone handle over the store for directory operations.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    range: ExtensionRange,
    /// Serialises extension hand-out within this process, so concurrent sign-ups don't all
    /// pick the same "next free" number; other processes (the CLI next to a running hub)
    /// are settled by the store's unique constraint and a retry.
    assigning: Arc<tokio::sync::Mutex<()>>,
    /// Ticks on every change to a user that Asterisk provisioning depends on.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Directory {
    /// A directory over `store`, handing out extensions from `range`.
    pub fn new(store: Arc<dyn Store>, range: ExtensionRange) -> Self {
        Self { store, range, assigning: Arc::default(), changes: Arc::new(tokio::sync::watch::channel(0).0) }
    }

    /// Tells watchers (the provisioning loop) that `user` changed.
    pub fn changed(&self, user: &UserId) {
        tracing::debug!(user = %user, "user changed");
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that ticks whenever a user changed in this process.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Finds a user by what a person would type: username, extension or id.
    pub async fn find(&self, reference: &str) -> Result<User> {
        let reference = reference.trim();
        if let Some(u) = self.store.user_by_username(reference).await? {
            return Ok(u);
        }
        if let Ok(ext) = Extension::new(reference)
            && let Some(u) = self.store.user_by_extension(&ext).await?
        {
            return Ok(u);
        }
        if let Some(u) = self.store.user(&UserId::from_string(reference)).await? {
            return Ok(u);
        }
        Err(DirectoryError::NotFound(reference.to_string()))
    }

    /// Users matching `query`, by name.
    pub async fn list(&self, query: &UserQuery) -> Result<Vec<User>> {
        Ok(self.store.list_users(query).await?)
    }

    /// Creates a user after validating every field; assigns the next free extension of the
    /// configured range when none is given.
    pub async fn add_user(&self, request: AddUser, actor: &Actor) -> Result<User> {
        self.create(request.validate()?, actor).await
    }

    /// Stores an already validated user (from the identity provider), assigning the next
    /// free extension when it has none, and audits it.
    pub async fn create(&self, new: crate::model::NewUser, actor: &Actor) -> Result<User> {
        let user = match new.extension {
            Some(_) => self.store.create_user(new).await?,
            None => self.create_with_free_extension(new).await?,
        };
        let detail = format!("username={} extension={}", user.username, ext_str(&user));
        self.audit(actor, &user.id, "user.create", detail).await;
        self.changed(&user.id);
        Ok(user)
    }

    /// Disables or re-enables a user. Disabling ends every session of the user at once.
    /// Returns the user and how many sessions were ended.
    pub async fn set_disabled(&self, reference: &str, disabled: bool, actor: &Actor) -> Result<(User, u64)> {
        let user = self.find(reference).await?;
        let user =
            self.store.update_user(&user.id, &UserUpdate { disabled: Some(disabled), ..Default::default() }).await?;
        let ended = if disabled { self.store.delete_sessions_of(&user.id).await? } else { 0 };
        let action = if disabled { "user.disable" } else { "user.enable" };
        self.audit(actor, &user.id, action, format!("sessions_ended={ended}")).await;
        self.changed(&user.id);
        Ok((user, ended))
    }

    /// Records an audit entry about `user`; a failure to audit is logged, never hidden, but
    /// does not undo the action it describes.
    pub async fn audit(&self, actor: &Actor, user: &UserId, action: &str, detail: String) {
        let entry = NewAuditEntry {
            user_id: Some(user.clone()),
            actor: actor.name.clone(),
            ip: actor.ip.clone(),
            action: action.into(),
            detail,
        };
        if let Err(e) = self.store.audit(entry).await {
            tracing::error!(error = %e, action, user = %user, "audit log write failed");
        }
    }
}

fn ext_str(u: &User) -> String {
    u.extension.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

#[cfg(test)]
mod tests;
