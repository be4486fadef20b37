//! Why a sign-in failed: one readable sentence for the person, one precise reason for the
//! log and the audit trail (never a token or secret).

use crate::directory::DirectoryError;
use crate::store::StoreError;

/// A failed sign-in or sign-in step.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The identity provider cannot be reached or its discovery document is unusable.
    #[error("identity provider unreachable: {0}")]
    ProviderUnreachable(String),
    /// The provider's metadata names another issuer than configured.
    #[error("identity provider issuer mismatch: {0}")]
    UnknownIssuer(String),
    /// The person cancelled or refused at the provider.
    #[error("sign-in cancelled at the identity provider ({0})")]
    Cancelled(String),
    /// The provider answered the callback with another error.
    #[error("identity provider error: {0}")]
    ProviderError(String),
    /// The callback's `state` was never issued, was tampered with, or was already used.
    #[error("unknown or already used sign-in attempt (state)")]
    UnknownAttempt,
    /// The callback came after the sign-in timeout.
    #[error("sign-in attempt expired")]
    ExpiredAttempt,
    /// The callback lacks its parameters.
    #[error("malformed callback: {0}")]
    MalformedCallback(String),
    /// The provider refused to exchange the code (replayed or forged code, PKCE mismatch).
    #[error("token request refused: {0}")]
    TokenRejected(String),
    /// The ID token failed a check: signature, algorithm, issuer, audience, expiry, nonce.
    #[error("ID token rejected: {0}")]
    InvalidIdToken(String),
    /// Userinfo failed or belongs to another subject.
    #[error("userinfo rejected: {0}")]
    UserInfo(String),
    /// The account is disabled in the directory.
    #[error("user {0} is disabled")]
    Disabled(String),
    /// This sign-in method is not offered (demo sign-in with a provider configured, or the
    /// other way round).
    #[error("this sign-in method is not available")]
    NotAvailable,
    /// The demo sign-in name is unusable.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The directory refused the user (e.g. no free extension).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SignInError {
    /// What the person sees: plain words, no internals.
    pub fn public_message(&self) -> &'static str {
        match self {
            SignInError::ProviderUnreachable(_) => {
                "The sign-in service of your organisation cannot be reached right now. Please try again in a moment."
            }
            SignInError::UnknownIssuer(_) => {
                "The sign-in service answered as a different service than the hub expects. Please tell your administrator."
            }
            SignInError::Cancelled(_) => "Sign-in was cancelled. You can try again whenever you like.",
            SignInError::ProviderError(_) => "The sign-in service reported a problem. Please try again.",
            SignInError::UnknownAttempt | SignInError::MalformedCallback(_) => {
                "This sign-in link is not valid any more (it may have been used already). Please start again."
            }
            SignInError::ExpiredAttempt => "Signing in took too long, so the attempt expired. Please start again.",
            SignInError::TokenRejected(_) | SignInError::InvalidIdToken(_) | SignInError::UserInfo(_) => {
                "The sign-in could not be verified, so the hub did not sign you in. Please try again."
            }
            SignInError::Disabled(_) => "Your account is disabled on this hub. Please contact your administrator.",
            SignInError::NotAvailable => "This way of signing in is not available on this hub.",
            SignInError::InvalidName(_) => "Please enter your name (letters, digits and spaces).",
            SignInError::Directory(_) => {
                "Your account could not be set up on the hub. Please contact your administrator."
            }
            SignInError::Store(_) => {
                "The hub could not complete the sign-in because of an internal problem. Please try again."
            }
        }
    }

    /// A short machine-friendly kind for logs, metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            SignInError::ProviderUnreachable(_) => "provider_unreachable",
            SignInError::UnknownIssuer(_) => "unknown_issuer",
            SignInError::Cancelled(_) => "cancelled",
            SignInError::ProviderError(_) => "provider_error",
            SignInError::UnknownAttempt => "unknown_state",
            SignInError::ExpiredAttempt => "expired_attempt",
            SignInError::MalformedCallback(_) => "malformed_callback",
            SignInError::TokenRejected(_) => "token_rejected",
            SignInError::InvalidIdToken(_) => "invalid_id_token",
            SignInError::UserInfo(_) => "userinfo_rejected",
            SignInError::Disabled(_) => "user_disabled",
            SignInError::NotAvailable => "not_available",
            SignInError::InvalidName(_) => "invalid_name",
            SignInError::Directory(_) => "directory",
            SignInError::Store(_) => "store",
        }
    }

    /// Whether trying again may help (the page then offers "Try again").
    pub fn retryable(&self) -> bool {
        !matches!(self, SignInError::Disabled(_) | SignInError::UnknownIssuer(_) | SignInError::NotAvailable)
    }
}

/// The error and all its causes, for a log line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
