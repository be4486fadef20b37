//! The browser app: served from the configured `webapp/` directory, or from a copy built into
//! the binary when that directory is missing (the hub started from elsewhere), so a person
//! never meets an empty page.

use std::path::Path;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use tower_http::services::ServeDir;

/// Files built into the binary: (path, content type, content).
const EMBEDDED: &[(&str, &str, &str)] = &[
    ("/index.html", "text/html; charset=utf-8", include_str!("../../../webapp/index.html")),
    ("/hub.css", "text/css; charset=utf-8", include_str!("../../../webapp/hub.css")),
    ("/app.js", "text/javascript; charset=utf-8", include_str!("../../../webapp/app.js")),
    ("/phone.js", "text/javascript; charset=utf-8", include_str!("../../../webapp/phone.js")),
    ("/voicemail.js", "text/javascript; charset=utf-8", include_str!("../../../webapp/voicemail.js")),
];

/// A service for everything no API route matched.
pub(super) fn service(dir: &Path) -> Router {
    if dir.join("index.html").is_file() {
        return Router::new().fallback_service(ServeDir::new(dir).append_index_html_on_directories(true));
    }
    tracing::warn!(dir = %dir.display(), "webapp directory not found; serving the built-in copy");
    let mut router = Router::new();
    for (path, content_type, body) in EMBEDDED {
        let (content_type, body) = (*content_type, *body);
        router = router.route(path, get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }));
        if *path == "/index.html" {
            router = router.route("/", get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }));
        }
    }
    router
}
