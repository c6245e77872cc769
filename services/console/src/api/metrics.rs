//! console's `/metrics`, in the Prometheus text format, rendered by hand
//! (like deployd's): requests by method, route and status, requests in
//! flight, refused tokens, failed audit writes, and the number of apps.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::Api;

/// Counters shared by the middleware and the handlers.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    in_flight: AtomicU64,
    auth_failures: AtomicU64,
    audit_failures: AtomicU64,
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn enter(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.inner.clone())
    }

    /// One answered request. `route` is the matched route template (or
    /// `unmatched`), so the label set stays bounded.
    pub fn request(&self, method: &str, route: &str, status: u16) {
        // Methods are caller input: only the standard ones get a label.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        let mut map = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry((method.to_owned(), route.to_owned(), status))
            .or_insert(0) += 1;
    }

    pub fn auth_failed(&self) {
        self.inner.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn audit_failed(&self) {
        self.inner.audit_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, apps: Option<usize>) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "# HELP console_http_requests_total HTTP requests answered, by method, route and status.");
        let _ = writeln!(out, "# TYPE console_http_requests_total counter");
        {
            let map = self
                .inner
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for ((method, route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "console_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    route.replace('\\', "\\\\").replace('"', "\\\"")
                );
            }
        }
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP console_http_requests_in_flight HTTP requests being handled."
        );
        let _ = writeln!(out, "# TYPE console_http_requests_in_flight gauge");
        let _ = writeln!(
            out,
            "console_http_requests_in_flight {}",
            get(&self.inner.in_flight)
        );
        let _ = writeln!(out, "# HELP console_auth_failures_total Requests whose bearer token was missing or refused.");
        let _ = writeln!(out, "# TYPE console_auth_failures_total counter");
        let _ = writeln!(
            out,
            "console_auth_failures_total {}",
            get(&self.inner.auth_failures)
        );
        let _ = writeln!(
            out,
            "# HELP console_audit_write_failures_total Audit entries that could not be written."
        );
        let _ = writeln!(out, "# TYPE console_audit_write_failures_total counter");
        let _ = writeln!(
            out,
            "console_audit_write_failures_total {}",
            get(&self.inner.audit_failures)
        );
        let _ = writeln!(out, "# HELP console_up 1 while console serves; console_database_up 1 when its database answered this scrape.");
        let _ = writeln!(out, "# TYPE console_up gauge");
        let _ = writeln!(out, "console_up 1");
        let _ = writeln!(out, "# TYPE console_database_up gauge");
        let _ = writeln!(out, "console_database_up {}", u8::from(apps.is_some()));
        if let Some(n) = apps {
            let _ = writeln!(out, "# HELP console_apps Apps registered.");
            let _ = writeln!(out, "# TYPE console_apps gauge");
            let _ = writeln!(out, "console_apps {n}");
        }
        out
    }
}

pub(super) async fn render(State(api): State<Api>) -> Response {
    let apps = match api.db().apps().list().await {
        Ok(a) => Some(a.len()),
        Err(e) => {
            tracing::warn!(error = %e, "/metrics cannot count apps");
            None
        }
    };
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        api.metrics().render(apps),
    )
        .into_response()
}
