//! HTTP request metrics in the Prometheus text format, without a metrics framework: a few
//! counters behind one mutex are all `/metrics` needs, and the lock is held for a map
//! update only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds (seconds) of the request-duration histogram buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Counters shared by the middleware and the `/metrics` handler.
#[derive(Clone, Default)]
pub struct HttpMetrics {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// (route, method, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route → histogram.
    durations: BTreeMap<String, Histogram>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HttpMetrics {
    /// Counts one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.requests.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        let h = inner.durations.entry(route.to_string()).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The exposition text.
    pub fn render(&self, uptime: Duration, store_backend: &str) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "# HELP hub_build_info Build of the running hub (always 1).");
        let _ = writeln!(out, "# TYPE hub_build_info gauge");
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        let _ = writeln!(
            out,
            "hub_build_info{{version=\"{}\",profile=\"{profile}\",store=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION")),
            escape(store_backend)
        );
        let _ = writeln!(out, "# HELP hub_uptime_seconds Seconds since the hub started.");
        let _ = writeln!(out, "# TYPE hub_uptime_seconds gauge");
        let _ = writeln!(out, "hub_uptime_seconds {:.3}", uptime.as_secs_f64());
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP hub_http_requests_total HTTP requests by route, method and status.");
        let _ = writeln!(out, "# TYPE hub_http_requests_total counter");
        for ((route, method, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "hub_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(out, "# HELP hub_http_request_duration_seconds Time to produce a response, by route.");
        let _ = writeln!(out, "# TYPE hub_http_request_duration_seconds histogram");
        for (route, h) in &inner.durations {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ =
                    writeln!(out, "hub_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}");
            }
            let _ =
                writeln!(out, "hub_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "hub_http_request_duration_seconds_sum{{route=\"{route}\"}} {:.6}", h.sum);
            let _ = writeln!(out, "hub_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out
    }
}

/// Label values escaped as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware: times the request and counts it under its route pattern (never the raw
/// path, so a scan of random URLs cannot blow up the label set).
pub(super) async fn record(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "static".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.observe(&route, &method, response.status().as_u16(), start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = HttpMetrics::default();
        m.observe("/healthz", "GET", 200, Duration::from_millis(2));
        m.observe("/healthz", "GET", 200, Duration::from_millis(30));
        m.observe("/rea\"dyz", "GET", 503, Duration::from_millis(1));
        let text = m.render(Duration::from_secs(5), "sqlite");
        assert!(text.contains("hub_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("route=\"/rea\\\"dyz\""), "labels are escaped: {text}");
        assert!(
            text.contains("hub_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0025\"} 1"),
            "{text}"
        );
        assert!(text.contains("hub_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("hub_http_request_duration_seconds_count{route=\"/healthz\"} 2"), "{text}");
        assert!(text.contains("hub_uptime_seconds 5.000"), "{text}");
        assert!(text.contains("store=\"sqlite\"} 1"), "{text}");
    }
}
