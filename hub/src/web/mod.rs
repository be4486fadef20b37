//! HTTPS adapter (L5): routes, TLS, metrics. Handlers stay thin and call the domain API
//! (`directory`, `store`) that the CLI uses too.
//!
//! ```text
//!  request → security headers → trace span → metrics (route, method, status, duration)
//!          → same-origin guard (writes, WebSocket upgrades)
//!          → /healthz /readyz /metrics /api/status
//!            /auth/login /auth/callback /auth/demo /logout   (sign-in; rate limited per address)
//!            /api/me …  /api/directory                       (SignedIn: cookie → session → user)
//!            /api/voicemail …                                  (SignedIn, owner only; see docs/voicemail.md)
//!            /ws                                               (signaling WebSocket, one per tab)
//!            webapp/ (static, embedded fallback)
//! ```

mod auth_routes;
mod client;
pub mod cookies;
mod directory;
mod error;
mod health;
mod me;
mod metrics;
mod origin;
mod pages;
mod ratelimit;
mod server;
mod signed_in;
mod static_files;
pub mod tls;
mod voicemail;
pub mod ws;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{delete, get, post};
use axum_extra::extract::cookie::Key;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Auth;
use crate::calls::Calls;
use crate::config::{CallsConfig, MediaConfig};
use crate::store::Store;

pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use origin::OriginPolicy;
pub use ratelimit::RateLimiter;
pub use server::{ServeError, serve};
pub use signed_in::SignedIn;

/// What handlers share. Cheap to clone: every field is a handle or small config.
#[derive(Clone)]
pub struct WebState {
    /// The store, for readiness checks and directory look-ups.
    pub store: Arc<dyn Store>,
    /// Sign-in and sessions.
    pub auth: Auth,
    /// Browser calls.
    pub calls: Calls,
    /// Encrypts the session cookie.
    pub cookie_key: Key,
    /// Limits sign-in attempts per client address.
    pub limiter: RateLimiter,
    /// Which origin may send writes and open WebSockets.
    pub origin: OriginPolicy,
    /// STUN/TURN settings handed to browsers.
    pub media: Arc<MediaConfig>,
    /// Ring timeout and signaling limits.
    pub calls_config: Arc<CallsConfig>,
    /// Browser SIP registration settings.
    pub sip: Arc<SipWebSettings>,
    /// Fires when the hub stops: long-lived connections (WebSockets) close at once instead
    /// of holding the shutdown up.
    pub shutdown: CancellationToken,
    /// Request counters for `/metrics`.
    pub metrics: HttpMetrics,
    /// When the hub started, for uptime.
    pub started: Instant,
    /// The mailboxes; `None` until [`WebState::with_voicemail`] hands them over, and then
    /// every `/api/voicemail` endpoint answers 503.
    pub voicemail: Option<crate::voicemail::Voicemail>,
}

/// The domain services the web layer adapts.
pub struct Services {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Sign-in and sessions.
    pub auth: Auth,
    /// Browser calls.
    pub calls: Calls,
    /// The hub's stop signal.
    pub shutdown: CancellationToken,
}

/// Web-only settings.
pub struct Settings {
    /// Cookie encryption key.
    pub cookie_key: Key,
    /// Sign-in rate limiter.
    pub limiter: RateLimiter,
    /// Same-origin policy.
    pub origin: OriginPolicy,
    /// ICE servers.
    pub media: MediaConfig,
    /// Call limits.
    pub calls: CallsConfig,
    /// What browsers need to register to Asterisk.
    pub sip: SipWebSettings,
}

/// Where browsers register to Asterisk (`GET /api/me/sip`).
#[derive(Clone, Debug, Default)]
pub struct SipWebSettings {
    /// `wss://pbx:8089/ws`; `None`: no Asterisk configured.
    pub wss_url: Option<String>,
    /// The realm Asterisk challenges with.
    pub realm: String,
    /// Per-endpoint reachability from Asterisk's events; `None`: no Asterisk configured.
    pub presence: Option<crate::pbx::SipPresence>,
}

impl WebState {
    /// State for a hub that started now.
    pub fn new(services: Services, settings: Settings) -> Self {
        Self {
            store: services.store,
            auth: services.auth,
            calls: services.calls,
            cookie_key: settings.cookie_key,
            limiter: settings.limiter,
            origin: settings.origin,
            media: Arc::new(settings.media),
            calls_config: Arc::new(settings.calls),
            sip: Arc::new(settings.sip),
            shutdown: services.shutdown,
            metrics: HttpMetrics::default(),
            started: Instant::now(),
            voicemail: None,
        }
    }

    /// The same state serving the mailboxes (`/api/voicemail`, the unread count in the
    /// signaling `welcome`).
    pub fn with_voicemail(mut self, voicemail: crate::voicemail::Voicemail) -> Self {
        self.voicemail = Some(voicemail);
        self
    }
}

/// The whole HTTP application, ready to serve or to test with `oneshot`.
pub fn router(state: WebState, webapp_dir: &Path) -> Router {
    let metrics = state.metrics.clone();
    let origin = state.origin.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/status", get(health::status))
        .route("/auth/login", get(auth_routes::login))
        .route("/auth/callback", get(auth_routes::callback))
        .route("/auth/demo", get(auth_routes::demo_form).post(auth_routes::demo_submit))
        .route("/logout", post(auth_routes::logout))
        .route("/api/me", get(me::me))
        .route("/api/me/sessions/{id}", delete(me::end_session))
        .route("/api/me/logout-all", post(me::logout_all))
        .route("/api/me/sip", get(me::sip))
        .route("/api/directory", get(directory::search))
        .merge(voicemail::routes())
        .route("/ws", get(ws::upgrade))
        .fallback_service(static_files::service(webapp_dir))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(origin, origin::same_origin))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::record))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
            let route =
                req.extensions().get::<axum::extract::MatchedPath>().map_or("static", |p| p.as_str()).to_string();
            tracing::info_span!("http", method = %req.method(), route, path = %req.uri().path())
        }))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' wss:; media-src 'self' blob:; img-src 'self' data:; \
                 frame-ancestors 'none'",
            ),
        ))
}

#[cfg(test)]
mod tests;
