//! Counters and gauges served on `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use lain_store::unix_millis;

/// The router's metrics; plain atomics, read at scrape time.
#[derive(Debug, Default)]
pub struct Metrics {
    pub generation: AtomicU64,
    pub reloads: AtomicU64,
    /// Configurations nginx refused (`nginx -t`) or reloads that never
    /// went live; the previous configuration kept serving each time.
    pub reload_failures: AtomicU64,
    /// Applies that could not read etcd.
    pub etcd_failures: AtomicU64,
    pub nginx_restarts: AtomicU64,
    pub nginx_up: AtomicU64,
    pub upstreams: AtomicU64,
    pub domains: AtomicU64,
    pub render_warnings: AtomicU64,
    pub applied_revision: AtomicI64,
    /// When nginx last started serving a changed configuration.
    pub last_change_ms: AtomicU64,
    /// The last render, in microseconds.
    pub render_micros: AtomicU64,
    /// Certificates from etcd currently not served (or not in their
    /// latest version) because they do not open or are malformed.
    pub certificate_errors: AtomicU64,
    /// Times a certificate from etcd was found not to open or malformed.
    pub certificate_failures: AtomicU64,
    /// Events written under `/lain/router-events/{router}/`.
    pub events: AtomicU64,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "webrouter_config_generation",
            "gauge",
            "Generation of the nginx configuration being served.",
            g(&self.generation).to_string(),
        );
        metric(
            "webrouter_reloads_total",
            "counter",
            "nginx reloads that went live.",
            g(&self.reloads).to_string(),
        );
        metric(
            "webrouter_reload_failures_total",
            "counter",
            "Configurations refused by nginx -t or reloads that did not go live; the previous configuration kept serving.",
            g(&self.reload_failures).to_string(),
        );
        metric(
            "webrouter_etcd_failures_total",
            "counter",
            "Applies that could not read etcd (retried).",
            g(&self.etcd_failures).to_string(),
        );
        metric(
            "webrouter_nginx_restarts_total",
            "counter",
            "Times the supervisor restarted nginx after it died.",
            g(&self.nginx_restarts).to_string(),
        );
        metric(
            "webrouter_nginx_up",
            "gauge",
            "1 while the nginx master runs.",
            g(&self.nginx_up).to_string(),
        );
        metric(
            "webrouter_upstreams",
            "gauge",
            "Upstreams (procs with a healthy instance) in the served configuration.",
            g(&self.upstreams).to_string(),
        );
        metric(
            "webrouter_domains",
            "gauge",
            "Routed domains in the served configuration.",
            g(&self.domains).to_string(),
        );
        metric(
            "webrouter_render_warnings",
            "gauge",
            "Mountpoints, addresses or certificates left out of the last render.",
            g(&self.render_warnings).to_string(),
        );
        metric(
            "webrouter_applied_revision",
            "gauge",
            "etcd revision the served configuration reflects.",
            self.applied_revision.load(Ordering::Relaxed).to_string(),
        );
        let last = g(&self.last_change_ms);
        let since = if last == 0 {
            "NaN".to_owned()
        } else {
            format!("{:.3}", unix_millis().saturating_sub(last) as f64 / 1000.0)
        };
        metric(
            "webrouter_seconds_since_last_applied_change",
            "gauge",
            "Seconds since nginx started serving a changed configuration.",
            since,
        );
        metric(
            "webrouter_render_seconds",
            "gauge",
            "Duration of the last render.",
            format!("{:.6}", g(&self.render_micros) as f64 / 1e6),
        );
        metric(
            "webrouter_certificate_errors",
            "gauge",
            "Certificates in etcd not served (or not in their latest version) because they do not open or are malformed.",
            g(&self.certificate_errors).to_string(),
        );
        metric(
            "webrouter_certificate_failures_total",
            "counter",
            "Certificates from etcd found not to open or malformed.",
            g(&self.certificate_failures).to_string(),
        );
        metric(
            "webrouter_events_total",
            "counter",
            "Events written under /lain/router-events/{router}/.",
            g(&self.events).to_string(),
        );
        out
    }
}
