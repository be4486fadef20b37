//! Server-side sessions: one per signed-in device, fixed expiry, checked on every request.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::model::{Session, SessionId, SessionToken, Timestamp, User, UserId};
use crate::store::{Store, StoreError};

/// Who is signing in, as far as the network tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client address.
    pub ip: Option<String>,
    /// `User-Agent`, trimmed to a sane length.
    pub user_agent: Option<String>,
}

/// Creates, checks and ends sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    lifetime: Duration,
}

impl Sessions {
    /// Sessions in `store` that last `lifetime` from sign-in.
    pub fn new(store: Arc<dyn Store>, lifetime: Duration) -> Self {
        Self { store, lifetime }
    }

    /// How long a new session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Starts a session for `user`; the token goes into the cookie, only its hash is stored.
    pub async fn create(&self, user: &UserId, client: &ClientInfo) -> Result<(SessionToken, Session), StoreError> {
        let token = SessionToken::generate();
        let now = Timestamp::now();
        let session = Session {
            id: token.id(),
            user_id: user.clone(),
            created_at: now,
            expires_at: now.plus(self.lifetime),
            user_agent: client.user_agent.as_ref().map(|ua| ua.chars().take(256).collect()),
            ip: client.ip.clone(),
        };
        self.store.create_session(&session).await?;
        Ok((token, session))
    }

    /// The session and user a token opens, if it is known, not expired, and its user is not
    /// disabled. Never extends the expiry.
    pub async fn check(&self, token: &SessionToken) -> Result<Option<(Session, User)>, StoreError> {
        let Some((session, user)) = self.store.session_with_user(&token.id()).await? else {
            return Ok(None);
        };
        if !session.is_live(Timestamp::now()) {
            self.store.delete_session(&session.id).await?;
            return Ok(None);
        }
        if user.disabled {
            return Ok(None);
        }
        Ok(Some((session, user)))
    }

    /// Ends one session; whether it existed.
    pub async fn end(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.store.delete_session(id).await
    }

    /// Ends every session of a user; how many there were.
    pub async fn end_all(&self, user: &UserId) -> Result<u64, StoreError> {
        self.store.delete_sessions_of(user).await
    }

    /// A user's live sessions, oldest first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        let now = Timestamp::now();
        Ok(self.store.sessions_of(user).await?.into_iter().filter(|s| s.is_live(now)).collect())
    }

    /// Deletes expired sessions; how many.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired_sessions(Timestamp::now()).await
    }

    /// Purges expired sessions every `every` until `cancel` fires.
    pub fn spawn_purger(&self, every: Duration, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let sessions = self.clone();
        crate::periodic::spawn_purger(every, cancel, "expired sessions", move || {
            let sessions = sessions.clone();
            async move { sessions.purge_expired().await }
        })
    }
}

/// The short form of a session id shown to people and used to end one device's session.
pub fn short_id(id: &SessionId) -> &str {
    &id.as_str()[..id.as_str().len().min(16)]
}
