//! The session cookie and the key that encrypts it.
//!
//! The cookie holds the session token, encrypted and authenticated (AES-GCM via
//! `PrivateCookieJar`) with a key kept in the data directory, so it survives restarts and
//! cannot be read or forged by the browser or anyone who copies it from there.

use std::path::Path;

use axum_extra::extract::cookie::{Cookie, Key, SameSite};

use crate::model::{SessionToken, Timestamp};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hub_session";

/// Why the cookie key cannot be loaded or created.
#[derive(Debug, thiserror::Error)]
#[error("cookie key {path}: {reason}")]
pub struct CookieKeyError {
    path: String,
    reason: String,
}

/// Loads `<data_dir>/cookie.key` (64 random bytes), creating it on first start.
pub fn load_or_create_key(data_dir: &Path) -> Result<Key, CookieKeyError> {
    let path = data_dir.join("cookie.key");
    let err = |reason: String| CookieKeyError { path: path.display().to_string(), reason };
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 64 => return Ok(Key::from(&bytes)),
        Ok(bytes) => {
            return Err(err(format!(
                "has {} bytes, expected 64; delete it to make a new one (signs everybody out)",
                bytes.len()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let bytes: [u8; 64] = rand::random();
    crate::files::write_atomic(&path, &bytes, 0o600).map_err(|e| err(e.to_string()))?;
    Ok(Key::from(&bytes))
}

/// The cookie for a new session: `HttpOnly`, `Secure`, `SameSite=Lax`, gone when the
/// session expires.
pub fn session_cookie(token: &SessionToken, expires_at: Timestamp) -> Cookie<'static> {
    let seconds = (expires_at.as_millis() - Timestamp::now().as_millis()).max(0) / 1000;
    Cookie::build((SESSION_COOKIE, token.expose().to_string()))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(seconds))
        .build()
}

/// A cookie that removes the session cookie.
pub fn removal() -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, "")).path("/").build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(dir.path()).unwrap();
        let b = load_or_create_key(dir.path()).unwrap();
        assert_eq!(a.master(), b.master());
        std::fs::write(dir.path().join("cookie.key"), b"short").unwrap();
        let e = load_or_create_key(dir.path()).unwrap_err().to_string();
        assert!(e.contains("has 5 bytes, expected 64"), "{e}");
    }

    #[test]
    fn cookie_attributes() {
        let token = SessionToken::generate();
        let c = session_cookie(&token, Timestamp::now().plus(std::time::Duration::from_secs(3600)));
        let text = c.to_string();
        for want in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=3599"] {
            assert!(
                text.contains(want) || (want == "Max-Age=3599" && text.contains("Max-Age=3600")),
                "{want} missing: {text}"
            );
        }
    }
}
