//! Benchmark: the session check every signed-in request makes (encrypted cookie → session →
//! user) on SQLite with 10,000 live sessions.
//!
//! Run: `cargo bench -p hub-tests --bench sessions`. Reports the store lookup alone and the
//! whole extractor (cookie decryption included), p50/p99 over 20,000 random checks.

mod report;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::Request;
use axum_extra::extract::cookie::Key;
use hub::auth::{Auth, ClientInfo};
use hub::config::Config;
use hub::directory::Directory;
use hub::model::{NewUser, SessionToken};
use hub::store::{SqliteStore, Store};
use hub::web::{OriginPolicy, RateLimiter, Services, Settings, SignedIn, WebState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USERS: usize = 2_000;
const SESSIONS_PER_USER: usize = 5;
const CHECKS: usize = 20_000;

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Session check, SQLite, {} live sessions ({USERS} users × {SESSIONS_PER_USER} devices), {cores} cores",
        USERS * SESSIONS_PER_USER
    );
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("bench.db"), 8).await.unwrap());
    let config = Config::default();
    let directory = Directory::new(store.clone(), config.pbx.extension_range);
    let auth = Auth::new(store.clone(), directory, &config.auth, "https://hub.test").unwrap();
    let client = ClientInfo { ip: Some("127.0.0.1".into()), user_agent: Some("bench".into()) };
    let mut tokens: Vec<SessionToken> = Vec::with_capacity(USERS * SESSIONS_PER_USER);
    for i in 0..USERS {
        let user = store
            .create_user(NewUser {
                username: format!("user{i}"),
                display_name: format!("User {i}"),
                subject: Some(format!("sub{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        for _ in 0..SESSIONS_PER_USER {
            tokens.push(auth.sessions().create(&user.id, &client).await.unwrap().0);
        }
    }
    let mut rng = StdRng::seed_from_u64(7);
    // Warm up: pages in memory, pool connections open, statements prepared.
    for token in tokens.iter().take(2_000) {
        auth.sessions().check(token).await.unwrap();
    }

    let mut samples = Vec::with_capacity(CHECKS);
    for _ in 0..CHECKS {
        let token = &tokens[rng.random_range(0..tokens.len())];
        let t = Instant::now();
        let found = auth.sessions().check(token).await.unwrap();
        samples.push(t.elapsed());
        assert!(found.is_some());
    }
    report::latency("store lookup (Sessions::check)       ", &mut samples);

    let key = Key::generate();
    let (calls, _) =
        hub::calls::Calls::start(config.calls.clone(), store.clone(), tokio_util::sync::CancellationToken::new());
    let services = Services {
        store: store.clone(),
        auth: auth.clone(),
        calls,
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    let settings = Settings {
        cookie_key: key.clone(),
        limiter: RateLimiter::new(30),
        origin: OriginPolicy { fixed: None },
        media: config.media.clone(),
        calls: config.calls.clone(),
        sip: hub::web::SipWebSettings::default(),
    };
    let state = WebState::new(services, settings);
    let mut samples = Vec::with_capacity(CHECKS);
    for _ in 0..CHECKS {
        let token = &tokens[rng.random_range(0..tokens.len())];
        let header = encrypted_cookie(&key, token);
        let (mut parts, ()) = Request::get("/api/me").header("cookie", header).body(()).unwrap().into_parts();
        let t = Instant::now();
        let signed_in = SignedIn::from_request_parts(&mut parts, &state).await;
        samples.push(t.elapsed());
        assert!(signed_in.is_ok());
    }
    report::latency("cookie → user (decrypt + check)      ", &mut samples);
    store.close().await;
}

/// The `Cookie` header a browser sends back for `token`.
fn encrypted_cookie(key: &Key, token: &SessionToken) -> String {
    let mut jar = cookie::CookieJar::new();
    jar.private_mut(key).add(cookie::Cookie::new(hub::web::cookies::SESSION_COOKIE, token.expose().to_string()));
    let c = jar.get(hub::web::cookies::SESSION_COOKIE).unwrap();
    format!("{}={}", c.name(), c.value())
}
