//! Sign-in and sessions (L2, over `store` and `directory`).
//!
//! ```text
//!  /auth/login ──► Oidc::begin (state, nonce, PKCE kept in Attempts) ──► provider
//!  /auth/callback ◄── code + state ── provider
//!     Attempts::take(state) ─► Oidc::finish (token, ID token checks, userinfo)
//!     ─► claims::profile ─► signin::upsert (directory) ─► Sessions::create ─► cookie
//! ```
//!
//! With no issuer configured, a demo sign-in (a typed name, no authentication) replaces the
//! provider; the config refuses that on anything but a loopback address.

mod attempt;
mod claims;
mod error;
mod oidc;
mod session;
mod signin;

use std::sync::Arc;

use crate::config::AuthConfig;
use crate::directory::Directory;
use crate::model::{NewAuditEntry, SessionToken, User, UserId};
use crate::store::Store;

pub use attempt::{AttemptRefusal, Attempts};
pub use claims::{Profile, profile};
pub use error::SignInError;
pub use session::{ClientInfo, Sessions, short_id};

/// How people sign in on this hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Through the organisation's OpenID Connect provider.
    Oidc,
    /// Demo: a typed name, no authentication (loopback only).
    Demo,
}

/// What the provider sent back to `/auth/callback`.
#[derive(Clone, Debug, Default)]
pub struct Callback {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error` (e.g. `access_denied` when the person cancelled).
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

/// The sign-in service. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    directory: Directory,
    config: AuthConfig,
    oidc: Option<oidc::Oidc>,
    attempts: Attempts,
    sessions: Sessions,
}

impl Auth {
    /// Sign-in for `config`; `origin` is where the hub is reached (for the default
    /// redirect URL `<origin>/auth/callback`).
    pub fn new(store: Arc<dyn Store>, directory: Directory, config: &AuthConfig, origin: &str) -> Result<Self, String> {
        let oidc = match &config.issuer {
            Some(issuer) => {
                let redirect = config.redirect_url.clone().unwrap_or_else(|| format!("{origin}/auth/callback"));
                Some(oidc::Oidc::new(config, issuer, &redirect)?)
            }
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                sessions: Sessions::new(store.clone(), config.session_lifetime),
                attempts: Attempts::new(config.signin_timeout),
                store,
                directory,
                config: config.clone(),
                oidc,
            }),
        })
    }

    /// How people sign in here.
    pub fn mode(&self) -> Mode {
        if self.inner.oidc.is_some() { Mode::Oidc } else { Mode::Demo }
    }

    /// The sessions service.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Pending sign-in attempts (for periodic purging).
    pub fn attempts(&self) -> &Attempts {
        &self.inner.attempts
    }

    /// Starts a provider sign-in; returns the URL to redirect the person to.
    #[tracing::instrument(skip_all, fields(ip = client.ip.as_deref().unwrap_or("-")))]
    pub async fn begin(&self, client: &ClientInfo) -> Result<String, SignInError> {
        let oidc = self.inner.oidc.as_ref().ok_or(SignInError::NotAvailable)?;
        let result = oidc.begin(&self.inner.attempts).await;
        if let Err(e) = &result {
            self.failed(e, client).await;
        }
        result
    }

    /// Completes a provider sign-in: verifies everything, creates or updates the user,
    /// starts a session. Every failure is logged and audited with its reason.
    #[tracing::instrument(skip_all, fields(ip = client.ip.as_deref().unwrap_or("-")))]
    pub async fn finish(&self, callback: Callback, client: &ClientInfo) -> Result<(User, SessionToken), SignInError> {
        let result = self.finish_inner(callback, client).await;
        match &result {
            Ok((user, _)) => self.signed_in(user, "oidc", client).await,
            Err(e) => self.failed(e, client).await,
        }
        result
    }

    async fn finish_inner(&self, callback: Callback, client: &ClientInfo) -> Result<(User, SessionToken), SignInError> {
        let oidc = self.inner.oidc.as_ref().ok_or(SignInError::NotAvailable)?;
        let state = callback.state.ok_or_else(|| SignInError::MalformedCallback("no state".into()))?;
        let attempt = self.inner.attempts.take(&state).map_err(|r| match r {
            AttemptRefusal::Unknown => SignInError::UnknownAttempt,
            AttemptRefusal::Expired => SignInError::ExpiredAttempt,
        })?;
        if let Some(error) = callback.error {
            let detail = match callback.error_description {
                Some(d) => format!("{error}: {d}"),
                None => error.clone(),
            };
            return Err(if error == "access_denied" {
                SignInError::Cancelled(detail)
            } else {
                SignInError::ProviderError(detail)
            });
        }
        let code = callback.code.ok_or_else(|| SignInError::MalformedCallback("no code".into()))?;
        let claims = oidc.finish(&code, attempt).await?;
        let profile = profile(&claims, &self.inner.config.claims).map_err(SignInError::InvalidIdToken)?;
        for ignored in &profile.ignored {
            tracing::warn!(subject = %profile.subject, reason = %ignored, "identity-provider claim ignored");
        }
        let user = self.upsert(profile).await?;
        let (token, _) = self.inner.sessions.create(&user.id, client).await?;
        Ok((user, token))
    }

    /// Demo sign-in: finds or creates the user named `name`; no authentication at all.
    #[tracing::instrument(skip_all, fields(ip = client.ip.as_deref().unwrap_or("-")))]
    pub async fn demo_sign_in(&self, name: &str, client: &ClientInfo) -> Result<(User, SessionToken), SignInError> {
        let result = async {
            if self.mode() != Mode::Demo {
                return Err(SignInError::NotAvailable);
            }
            let user = self.demo_user(name).await?;
            let (token, _) = self.inner.sessions.create(&user.id, client).await?;
            Ok((user, token))
        }
        .await;
        match &result {
            Ok((user, _)) => self.signed_in(user, "demo", client).await,
            Err(e) => self.failed(e, client).await,
        }
        result
    }

    /// Ends the session a token opens (sign out on this device).
    pub async fn sign_out(&self, token: &SessionToken, client: &ClientInfo) -> Result<(), SignInError> {
        if let Some((session, user)) = self.inner.store.session_with_user(&token.id()).await? {
            self.inner.sessions.end(&session.id).await?;
            self.audit(
                Some(&user.id),
                &user.username,
                client,
                "session.logout",
                format!("session={}", short_id(&session.id)),
            )
            .await;
        }
        Ok(())
    }

    /// Ends every session of a user (sign out everywhere).
    pub async fn sign_out_everywhere(&self, user: &User, actor: &str, client: &ClientInfo) -> Result<u64, SignInError> {
        let ended = self.inner.sessions.end_all(&user.id).await?;
        self.audit(Some(&user.id), actor, client, "session.logout_all", format!("sessions_ended={ended}")).await;
        Ok(ended)
    }

    /// Ends one session of `user`, named by its short id; whether it was found.
    pub async fn end_session(&self, user: &User, short: &str, client: &ClientInfo) -> Result<bool, SignInError> {
        let sessions = self.inner.sessions.list(&user.id).await?;
        let matches: Vec<_> =
            sessions.iter().filter(|s| short.len() >= 8 && s.id.as_str().starts_with(short)).collect();
        let [session] = matches.as_slice() else { return Ok(false) };
        let ended = self.inner.sessions.end(&session.id).await?;
        self.audit(Some(&user.id), &user.username, client, "session.end", format!("session={}", short_id(&session.id)))
            .await;
        Ok(ended)
    }

    async fn signed_in(&self, user: &User, method: &str, client: &ClientInfo) {
        tracing::info!(user = %user.username, method, "signed in");
        self.audit(Some(&user.id), &user.username, client, "session.login", format!("method={method}")).await;
    }

    async fn failed(&self, e: &SignInError, client: &ClientInfo) {
        tracing::warn!(kind = e.kind(), reason = %e, "sign-in failed");
        self.audit(None, "anonymous", client, "session.login_failed", format!("{}: {e}", e.kind())).await;
    }

    async fn audit(&self, user: Option<&UserId>, actor: &str, client: &ClientInfo, action: &str, detail: String) {
        let entry = NewAuditEntry {
            user_id: user.cloned(),
            actor: actor.to_string(),
            ip: client.ip.clone(),
            action: action.to_string(),
            detail,
        };
        if let Err(e) = self.inner.store.audit(entry).await {
            tracing::error!(error = %e, action, "audit log write failed");
        }
    }
}
