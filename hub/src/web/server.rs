//! Serving the router over HTTPS on an already-bound listener, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener failed.
    #[error("HTTPS server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and gives
/// requests in flight up to `grace` to finish before closing them.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let on_signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down: draining requests");
        on_signal.graceful_shutdown(Some(grace));
    });
    axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(tls))?
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await?;
    Ok(())
}
