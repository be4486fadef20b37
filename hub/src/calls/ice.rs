//! ICE servers for browsers: STUN as configured, TURN with short-lived per-user credentials
//! in the TURN REST scheme (coturn `use-auth-secret`): username `<expiry>:<user>`, password
//! base64(HMAC-SHA1(shared secret, username)).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;

use crate::config::MediaConfig;
use crate::model::{Timestamp, UserId};

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The servers for `user` at `now`, and when their TURN credentials expire.
pub fn servers_for(media: &MediaConfig, user: &UserId, now: SystemTime) -> (Vec<IceServer>, Timestamp) {
    let expires = now + media.turn_ttl;
    let mut servers = Vec::new();
    if !media.stun_urls.is_empty() {
        servers.push(IceServer { urls: media.stun_urls.clone(), username: None, credential: None });
    }
    if !media.turn_urls.is_empty() && !media.turn_secret.is_empty() {
        let expiry = expires.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let username = format!("{expiry}:{user}");
        servers.push(IceServer {
            urls: media.turn_urls.clone(),
            credential: Some(turn_password(media.turn_secret.expose(), &username)),
            username: Some(username),
        });
    }
    (servers, Timestamp::from(expires))
}

/// base64(HMAC-SHA1(secret, username)).
pub fn turn_password(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;

    #[test]
    fn turn_rest_credentials() {
        // Reference value computed with: printf '1700000000:alice' | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(turn_password("secret", "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
        let media = MediaConfig {
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn_urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            turn_secret: Secret::new("secret"),
            turn_ttl: Duration::from_secs(600),
            ..Default::default()
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (servers, expires) = servers_for(&media, &UserId::from_string("alice"), now);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].username.as_deref(), Some("1700000600:alice"));
        assert_eq!(servers[1].credential.as_deref(), Some(turn_password("secret", "1700000600:alice").as_str()));
        assert_eq!(expires.as_millis(), 1_700_000_600_000);
        let (none, _) = servers_for(&MediaConfig::default(), &UserId::from_string("a"), now);
        assert!(none.is_empty());
    }
}
