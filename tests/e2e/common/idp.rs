//! The real OpenID provider (`oidc-provider` from npm, see tests/js/oidc-provider.mjs) and a
//! scripted person who signs in through its own login and consent pages.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Hub, WAIT};

/// The client the hub is registered as.
pub const CLIENT_ID: &str = "hub";
/// Its secret.
pub const CLIENT_SECRET: &str = "hub-test-secret";

/// A running provider.
pub struct Idp {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

impl Idp {
    /// Starts the provider on an ephemeral port and waits for its ready line.
    pub fn start() -> Idp {
        let dir = js_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "tests/js/node_modules is missing: run `npm ci` in tests/js (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg("oidc-provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node (is Node.js installed?)");
        let (log, rx) = super::capture_output(&mut child);
        let deadline = Instant::now() + WAIT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let Some(issuer) = v["issuer"].as_str()
                    {
                        return Idp { child, issuer: issuer.to_string(), log };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("OpenID provider did not start\n--- provider log ---\n{}", log.lock().unwrap().join("\n"));
                }
            }
        }
    }

    /// The provider's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    async fn post(&self, path: &str, body: serde_json::Value) {
        let res = reqwest::Client::new().post(format!("{}{path}", self.issuer)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 204, "{path}: {}", self.log());
    }

    /// Registers the hub (as started) as the provider's client.
    pub async fn register(&self, hub: &Hub) {
        let redirect = hub.url("/auth/callback");
        let clients = serde_json::json!({ "clients": [{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }]});
        self.post("/__test/setup", clients).await;
    }

    /// Makes the token endpoint hand out a misbehaving ID token (`None`: behave again).
    pub async fn set_id_token_mode(&self, mode: Option<&str>) {
        self.post("/__test/mode", serde_json::json!({ "id_token": mode })).await;
    }

    /// The hub environment that points it at this provider.
    pub fn hub_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HUB_AUTH__ISSUER", self.issuer.clone()),
            ("HUB_AUTH__CLIENT_ID", CLIENT_ID.into()),
            ("HUB_AUTH__CLIENT_SECRET", CLIENT_SECRET.into()),
        ]
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser-like HTTP client: its own cookie jar, trusts the hub's certificate, follows no
/// redirects by itself (the tests look at every hop).
pub fn browser(hub: &Hub) -> reqwest::Client {
    let pem = std::fs::read(hub.dir.join("data/tls/cert.pem")).expect("hub certificate");
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .user_agent("hub-e2e (X11; Linux x86_64) Chrome/156.0")
        .timeout(WAIT)
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response, base: &str) -> Option<String> {
    let loc = res.headers().get(reqwest::header::LOCATION)?.to_str().ok()?.to_string();
    Some(if loc.starts_with('/') { format!("{base}{loc}") } else { loc })
}

fn origin_of(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => url[..after + i].to_string(),
        None => url.to_string(),
    }
}

/// A form on a provider page: where it posts and its fields.
struct HtmlForm {
    action: String,
    fields: Vec<(String, String)>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

fn first_form(html: &str) -> Option<HtmlForm> {
    let start = html.find("<form")?;
    let end = html[start..].find("</form>").map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let open = &form[..form.find('>')?];
    let action = attr(open, "action")?;
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let tag = &rest[i..tag_end];
        if let Some(name) = attr(tag, "name") {
            fields.push((name, attr(tag, "value").unwrap_or_default()));
        }
        rest = &rest[tag_end..];
    }
    Some(HtmlForm { action, fields })
}

/// What the person does at the provider.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AtProvider {
    /// Signs in and consents.
    SignIn,
    /// Clicks "Cancel" on the login page.
    Cancel,
}

/// Starts at the hub's `/auth/login` and goes through the provider's pages as `account`
/// until the provider sends the browser back to the hub; returns that callback URL without
/// visiting it, so tests can use, replay or tamper with it.
pub async fn to_callback(browser: &reqwest::Client, hub: &Hub, account: &str, what: AtProvider) -> String {
    let hub_origin = origin_of(&hub.url("/"));
    let res = browser.get(hub.url("/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), 303, "/auth/login should redirect to the provider");
    let mut url = location(&res, &hub_origin).unwrap();
    for _ in 0..20 {
        if url.starts_with(&hub_origin) {
            return url;
        }
        let base = origin_of(&url);
        let res = browser.get(&url).send().await.unwrap();
        if let Some(next) = location(&res, &base) {
            url = next;
            continue;
        }
        let status = res.status();
        let html = res.text().await.unwrap();
        assert_eq!(status, 200, "provider page {url}: {html}");
        if what == AtProvider::Cancel && html.contains("/abort\"") {
            let start = html.find("href=\"").expect("cancel link") + 6;
            let href = &html[start..start + html[start..].find('"').unwrap()];
            url = if href.starts_with('/') { format!("{base}{href}") } else { href.to_string() };
            continue;
        }
        let form = first_form(&html).unwrap_or_else(|| panic!("no form on provider page {url}: {html}"));
        let mut fields = form.fields;
        for (name, value) in fields.iter_mut() {
            match name.as_str() {
                "login" => *value = account.to_string(),
                "password" => *value = "any password".to_string(),
                _ => {}
            }
        }
        let action = if form.action.starts_with('/') { format!("{base}{}", form.action) } else { form.action };
        let res = browser.post(&action).form(&fields).send().await.unwrap();
        url = location(&res, &base).unwrap_or_else(|| panic!("form {action} did not redirect ({})", res.status()));
    }
    panic!("the provider never sent the browser back to the hub (last {url})");
}

/// The whole sign-in: provider pages, then the hub's callback. Returns the callback's response.
pub async fn sign_in(browser: &reqwest::Client, hub: &Hub, account: &str) -> reqwest::Response {
    let callback = to_callback(browser, hub, account, AtProvider::SignIn).await;
    browser.get(callback).send().await.unwrap()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Waits a short, bounded time for nothing in particular: only for time-based behaviour
/// (session expiry) that cannot be observed any other way.
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}
