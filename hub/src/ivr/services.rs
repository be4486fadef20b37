//! [`Services`] for real calls: HTTP to allowed hosts, the directory and the mailboxes, each
//! step run on the runtime from the script's thread with its own time limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::io::{CallerInfo, Person, RecordedMessage, Services};
use crate::model::{Extension, NewMailboxMessage, User, UserId};
use crate::store::{Store, UserQuery};

/// Largest HTTP answer a script may read.
const MAX_BODY: usize = 1024 * 1024;
/// Most people `directory_search` returns.
const MAX_PEOPLE: usize = 20;

/// The hub's services for scripts.
pub struct HubServices {
    runtime: Handle,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    allow: Vec<String>,
    timeout: Duration,
    recordings_dir: PathBuf,
    deposited: Arc<dyn Fn(UserId) + Send + Sync>,
}

impl HubServices {
    /// Services over `store`; HTTP only to `allow` (host names; `*.example.org` for a domain's
    /// hosts), each request within `timeout`; deposited messages are filed under
    /// `recordings_dir/voicemail/<user id>/`; `deposited` is told whose mailbox changed (their
    /// open tabs update the unread counter).
    pub fn new(
        runtime: Handle,
        store: Arc<dyn Store>,
        allow: Vec<String>,
        timeout: Duration,
        recordings_dir: PathBuf,
        deposited: Arc<dyn Fn(UserId) + Send + Sync>,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hub-ivr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { runtime, store, http, allow, timeout, recordings_dir, deposited })
    }

    /// The URL, when its scheme is HTTP(S) and its host is allowed.
    fn allowed(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{url:?}: only http and https URLs are allowed"));
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        if host_allowed(&host, &self.allow) { Ok(parsed) } else { Err(format!("{host:?} is not in [ivr] http_allow")) }
    }

    fn request(&self, request: reqwest::RequestBuilder) -> Result<serde_json::Value, String> {
        let timeout = self.timeout;
        self.runtime.block_on(async move {
            let fetch = async {
                let mut response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_BODY {
                        return Err(format!("the answer is larger than {MAX_BODY} bytes"));
                    }
                }
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))
            };
            tokio::time::timeout(timeout, fetch).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
        })
    }

    fn store<T>(&self, step: impl Future<Output = crate::store::Result<T>>) -> Result<T, String> {
        let timeout = self.timeout;
        self.runtime.block_on(async move {
            match tokio::time::timeout(timeout, step).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("the directory did not answer within {timeout:?}")),
            }
        })
    }

    /// The user `reference` names: an extension or a user id.
    fn find_user(&self, reference: &str) -> Result<Option<User>, String> {
        if let Ok(ext) = Extension::new(reference)
            && let Some(u) = self.store(self.store.user_by_extension(&ext))?
        {
            return Ok(Some(u));
        }
        self.store(self.store.user(&UserId::from_string(reference)))
    }
}

/// Whether `host` is in `allow` (exact, or under a `*.domain` entry).
fn host_allowed(host: &str, allow: &[String]) -> bool {
    allow.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == a,
        }
    })
}

fn person(u: User) -> Person {
    Person {
        id: u.id.to_string(),
        name: u.display_name,
        extension: u.extension.map(|e| e.to_string()),
        numbers: u.numbers.into_iter().map(|n| n.number).collect(),
    }
}

/// The MIME type of a recording, from the extension the engine gave it.
fn media_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("opus" | "ogg") => "audio/ogg",
        Some("webm") => "audio/webm",
        _ => "audio/wav",
    }
}

impl Services for HubServices {
    fn http_get(&self, url: &str) -> Result<serde_json::Value, String> {
        let url = self.allowed(url)?;
        self.request(self.http.get(url))
    }

    fn http_post(&self, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let url = self.allowed(url)?;
        self.request(self.http.post(url).json(body))
    }

    fn directory_search(&self, query: &str) -> Result<Vec<Person>, String> {
        let query =
            UserQuery { name_prefix: Some(query.trim().to_string()), include_disabled: false, limit: Some(MAX_PEOPLE) };
        Ok(self.store(self.store.list_users(&query))?.into_iter().map(person).collect())
    }

    fn user_by_extension(&self, extension: &str) -> Result<Option<Person>, String> {
        let Ok(ext) = Extension::new(extension) else { return Ok(None) };
        Ok(self.store(self.store.user_by_extension(&ext))?.filter(|u| !u.disabled).map(person))
    }

    fn voicemail_deposit(&self, user: &str, message: &RecordedMessage, caller: &CallerInfo) -> Result<(), String> {
        let owner = self.find_user(user)?.filter(|u| !u.disabled).ok_or_else(|| format!("no mailbox for {user:?}"))?;
        let file = message.path.file_name().ok_or("the recording has no file name")?;
        let relative = Path::new("voicemail").join(owner.id.as_str()).join(file);
        let target = self.recordings_dir.join(&relative);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::rename(&message.path, &target).map_err(|e| format!("cannot file the message: {e}"))?;
        let from = match (caller.name.trim(), caller.number.trim()) {
            ("", number) => number.to_string(),
            (name, "") => name.to_string(),
            (name, number) => format!("{name} <{number}>"),
        };
        let new = NewMailboxMessage {
            owner: owner.id.clone(),
            from,
            duration_ms: message.duration_ms,
            media_type: media_type(&target).to_string(),
            path: relative.to_string_lossy().into_owned(),
        };
        let stored = self.store(self.store.add_message(new));
        if stored.is_err() {
            // Keep the audio where it was, so nothing is lost and the deposit can be retried.
            let _ = std::fs::rename(&target, &message.path);
        }
        let stored = stored?;
        tracing::info!(owner = %owner.id, message_id = %stored.id, duration_ms = stored.duration_ms, "voicemail deposited");
        (self.deposited)(owner.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_are_reached() {
        let allow = vec!["api.example.org".to_string(), "*.corp.example".to_string()];
        assert!(host_allowed("api.example.org", &allow));
        assert!(host_allowed("hours.corp.example", &allow));
        assert!(!host_allowed("corp.example", &allow));
        assert!(!host_allowed("evil-api.example.org", &allow));
        assert!(!host_allowed("api.example.org.evil.net", &allow));
        assert!(!host_allowed("anything", &[]));
    }
}
