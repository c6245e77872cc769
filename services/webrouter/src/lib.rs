//! webrouter: keeps a real nginx serving exactly the healthy instances of
//! every web proc, as etcd describes them.
//!
//! - [`render`]: a pure function from routing state to nginx config text.
//! - [`apply`]: generation directories, `nginx -t`, atomic swap, reload.
//! - [`nginx`]: `nginx -t`, confirmed reloads and the process supervisor.
//! - [`certs`]: certificates from etcd (private keys sealed under the
//!   cluster secrets key) and, as a fallback, from a directory.
//! - [`metrics`]: what `/metrics` serves.
//!
//! [`run`] ties them together. Watches on the desired procs, the observed
//! instances and the cluster config only signal that something changed;
//! each apply then reads one consistent picture (the etcd revision first,
//! then the keys), so the revision the router publishes under
//! `/lain/routers/{id}` is one whose every earlier write the served
//! configuration reflects. Several routers need no coordination: each
//! renders the same text from the same state.
//!
//! A refused configuration, a certificate that does not open and the
//! recovery from either are also written as events under
//! `/lain/router-events/{id}/`, leased on the router's lease.

pub mod apply;
pub mod certs;
pub mod config;
pub mod metrics;
pub mod nginx;
pub mod render;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use lain_store::secret::{SecretError, SecretsKey};
use lain_store::{
    unix_millis, CertKey, ClusterConfigKey, Component, DesiredKey, KeyError, KeyPrefix, Lease,
    ObservedKey, RouterEvent, RouterEventKey, RouterEventKind, RouterKey, RouterStatus, Severity,
    Store, StoreError, StoreKey, StoreOptions, WatchEvent,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{sleep, Instant};

use crate::apply::{Applied, Applier, ApplyError};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::nginx::{NginxCtl, NginxError};
use crate::render::{render, CertPair, MainOptions, RenderOptions, RouteState};

/// Errors that stop webrouter.
#[derive(Debug, thiserror::Error)]
pub enum WebrouterError {
    #[error("router_id {id:?} cannot be an etcd key segment: {source}")]
    RouterId {
        id: String,
        #[source]
        source: KeyError,
    },
    #[error("cannot load secrets_key_file: {0}")]
    SecretsKey(#[source] SecretError),
    #[error("cannot prepare the state dir: {0}")]
    StateDir(#[source] ApplyError),
    #[error("cannot install the first nginx configuration: {0}")]
    Install(#[source] ApplyError),
    #[error(transparent)]
    Serve(#[from] lain_service::ServeError),
}

/// Runs the router until `shutdown` completes: serves `/metrics` (and
/// `/healthz`), supervises nginx and keeps its config in step with etcd.
/// On shutdown it stops nginx and revokes its status lease.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebrouterError> {
    let key = RouterKey::new(&config.router_id).map_err(|source| WebrouterError::RouterId {
        id: config.router_id.clone(),
        source,
    })?;
    let secrets_key = config
        .secrets_key_file
        .as_deref()
        .map(|k| SecretsKey::load_with_retired(k, &config.retired_secrets_key_files))
        .transpose()
        .map_err(WebrouterError::SecretsKey)?;
    if let Some(k) = &secrets_key {
        tracing::info!(key_id = k.id(), "certificates come from etcd");
    }
    let metrics = Arc::new(Metrics::default());
    let ctl = Arc::new(NginxCtl::new(
        config.nginx_binary.clone(),
        config.state_dir.clone(),
        config.status_listen,
    ));
    let mut applier = Applier::open(MainOptions {
        state_dir: config.state_dir.clone(),
        status_listen: config.status_listen,
        worker_processes: config.worker_processes,
        worker_shutdown_timeout_secs: config.worker_shutdown_timeout_secs,
        user: config.nginx_user.clone(),
    })
    .map_err(WebrouterError::StateDir)?;
    let render_opts = RenderOptions {
        state_dir: config.state_dir.clone(),
        http_listen: config.http_listen,
        https_listen: config.https_listen,
        map_routing_min_procs: config.map_routing_min_procs,
    };
    let certs = Arc::new(Mutex::new(read_certs(&config)));
    if !applier.has_current() {
        // Until etcd answers, nginx serves only the 404 default server.
        let empty = render(&RouteState::default(), &render_opts);
        applier
            .install(&empty, &ctl)
            .await
            .map_err(WebrouterError::Install)?;
    }
    metrics.generation.store(applier.live(), Ordering::Relaxed);

    let listener = TcpListener::bind(config.listen).await.map_err(|source| {
        lain_service::ServeError::Bind {
            addr: config.listen,
            source,
        }
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let admin = {
        let m = metrics.clone();
        let router = axum::Router::new().route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
            }),
        );
        let mut rx = stop_rx.clone();
        tokio::spawn(lain_service::serve_on(
            "webrouter",
            listener,
            router,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ))
    };
    let supervisor = tokio::spawn(ctl.clone().supervise(metrics.clone(), stop_rx.clone()));

    let mut control = Control {
        config,
        key,
        ctl,
        applier,
        metrics,
        render_opts,
        certs,
        secrets_key,
        etcd_certs: Arc::new(Mutex::new(CertView::default())),
        publisher: None,
        applied: None,
        last_warnings: Vec::new(),
        last_reported: None,
    };
    tokio::select! {
        () = shutdown => {}
        () = control.run() => {}
    }
    tracing::info!("stopping nginx and withdrawing this router's status");
    stop_tx.send_replace(true);
    if let Some(p) = control.publisher.take() {
        if let Some(lease) = p.lease {
            let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke()).await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), supervisor).await;
    match tokio::time::timeout(Duration::from_secs(5), admin).await {
        Ok(Ok(r)) => r?,
        _ => tracing::warn!("admin listener did not stop in time"),
    }
    Ok(())
}

fn read_certs(config: &Config) -> BTreeMap<String, CertPair> {
    let Some(dir) = &config.certs_dir else {
        return BTreeMap::new();
    };
    let (certs, warnings) = certs::load_dir(dir);
    for w in warnings {
        tracing::warn!("{w}");
    }
    certs
}

/// The certificates from etcd as the renderer takes them.
#[derive(Debug, Clone, Default, PartialEq)]
struct CertView {
    served: BTreeMap<String, CertPair>,
    errors: Vec<String>,
}

/// Events kept per router; older ones are deleted.
const MAX_EVENTS: usize = 50;

/// Longest event message (nginx's error text can be long).
const MAX_EVENT_MESSAGE: usize = 1000;

/// Publishes this router's status under its leased key.
struct Publisher {
    store: Store,
    lease: Option<Lease>,
    last: Option<RouterStatus>,
}

impl Publisher {
    async fn publish(
        &mut self,
        key: &RouterKey,
        ttl: Duration,
        status: RouterStatus,
    ) -> Result<(), StoreError> {
        let lease = match self.lease.take() {
            Some(l) if !l.is_lost() => l,
            _ => self.store.grant_lease(ttl).await?,
        };
        let id = lease.id();
        self.lease = Some(lease);
        self.store.put_with_lease(key, &status, id).await?;
        self.last = Some(status);
        Ok(())
    }

    /// Writes an event under `/lain/router-events/{router}/`, on the same
    /// lease as the status, and keeps only the newest [`MAX_EVENTS`].
    async fn event(&mut self, ttl: Duration, event: RouterEvent) -> Result<(), StoreError> {
        let lease = match self.lease.take() {
            Some(l) if !l.is_lost() => l,
            _ => self.store.grant_lease(ttl).await?,
        };
        let id = lease.id();
        self.lease = Some(lease);
        let key = RouterEventKey::generate(&event.router)?;
        self.store.put_with_lease(&key, &event, id).await?;
        let listing = self
            .store
            .list(&RouterEventKey::of_router(&event.router)?)
            .await?;
        let mut keys: Vec<RouterEventKey> = listing.items.into_iter().map(|e| e.key).collect();
        keys.sort();
        let excess = keys.len().saturating_sub(MAX_EVENTS);
        for old in &keys[..excess] {
            self.store.delete(old).await?;
        }
        Ok(())
    }
}

/// Truncates `text` to `max` characters, marking the cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max).collect::<String>() + "…"
    }
}

/// What the served configuration reflects.
#[derive(Debug, Clone)]
struct AppliedState {
    revision: i64,
    hash: String,
    upstreams: u32,
}

/// Why an apply did not finish.
enum Failure {
    /// etcd could not be read or written: retry soon.
    Etcd(StoreError),
    /// nginx refused the configuration (`nginx -t`): wait for the next
    /// change, as the same state renders the same refused text.
    Refused,
    /// The configuration was not applied for a reason that may pass
    /// (nginx not running, a reload that did not go live in time, a
    /// signal or write that failed): retry with backoff.
    Transient,
}

impl Failure {
    fn of(e: &ApplyError) -> Self {
        match e {
            ApplyError::Nginx(NginxError::Invalid { .. }) => Self::Refused,
            _ => Self::Transient,
        }
    }
}

/// First delay before retrying a transient apply failure; doubles on each
/// further failure up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The delay before the next retry after `failures` consecutive transient
/// failures (1 for the first).
fn retry_delay(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    RETRY_MIN.saturating_mul(1 << shift).min(RETRY_MAX)
}

struct Control {
    config: Config,
    key: RouterKey,
    ctl: Arc<NginxCtl>,
    applier: Applier,
    metrics: Arc<Metrics>,
    render_opts: RenderOptions,
    certs: Arc<Mutex<BTreeMap<String, CertPair>>>,
    /// Set when certificates come from etcd.
    secrets_key: Option<SecretsKey>,
    etcd_certs: Arc<Mutex<CertView>>,
    publisher: Option<Publisher>,
    applied: Option<AppliedState>,
    last_warnings: Vec<String>,
    /// The error last reported as an event (`None`: healthy).
    last_reported: Option<(RouterEventKind, String)>,
}

impl Control {
    async fn run(&mut self) {
        if !self.ctl.wait_answering(Duration::from_secs(20)).await {
            tracing::error!("nginx does not answer yet; applying anyway once etcd answers");
        }
        let options = StoreOptions {
            writer: Some(Component::Webrouter),
            ..StoreOptions::default()
        };
        let store = loop {
            match Store::connect_with(&self.config.etcd, options.clone()).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach etcd; nginx keeps serving the last configuration; retrying");
                    sleep(Duration::from_secs(1)).await;
                }
            }
        };
        self.publisher = Some(Publisher {
            store: store.clone(),
            lease: None,
            last: None,
        });
        let (bump_tx, mut bump_rx) = watch::channel(0u64);
        let bump_tx = Arc::new(bump_tx);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(forward(
            store.clone(),
            KeyPrefix::<DesiredKey>::all(),
            bump_tx.clone(),
        ));
        tasks.spawn(forward(
            store.clone(),
            KeyPrefix::<ObservedKey>::all(),
            bump_tx.clone(),
        ));
        tasks.spawn(forward(
            store.clone(),
            KeyPrefix::<ClusterConfigKey>::all(),
            bump_tx.clone(),
        ));
        if let Some(key) = self.secrets_key.clone() {
            tasks.spawn(watch_certs(
                store.clone(),
                key,
                self.etcd_certs.clone(),
                self.metrics.clone(),
                bump_tx.clone(),
            ));
        }
        if let Some(dir) = self.config.certs_dir.clone() {
            let certs = self.certs.clone();
            let bump = bump_tx.clone();
            let every = self.config.certs_poll();
            tasks.spawn(async move {
                loop {
                    sleep(every).await;
                    let (fresh, _) = certs::load_dir(&dir);
                    let changed = match certs.lock() {
                        Ok(mut held) if *held != fresh => {
                            *held = fresh;
                            true
                        }
                        _ => false,
                    };
                    if changed {
                        tracing::info!(dir = %dir.display(), "certificates changed");
                        bump.send_modify(|n| *n += 1);
                    }
                }
            });
        }

        let debounce = self.config.debounce();
        let mut pending = true;
        let mut retry_at = Instant::now();
        // Consecutive transient failures, for the backoff.
        let mut failures = 0u32;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            if pending && Instant::now() >= retry_at {
                match self.apply_once().await {
                    Ok(()) | Err(Failure::Refused) => {
                        pending = false;
                        failures = 0;
                    }
                    Err(Failure::Etcd(e)) => {
                        self.metrics.etcd_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "cannot read or publish state in etcd; nginx keeps serving; retrying");
                        retry_at = Instant::now() + Duration::from_secs(1);
                    }
                    Err(Failure::Transient) => {
                        failures = failures.saturating_add(1);
                        let delay = retry_delay(failures);
                        tracing::warn!(
                            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                            "the configuration did not go live; retrying"
                        );
                        retry_at = Instant::now() + delay;
                    }
                }
            }
            // Wake for a pending retry too, not only for a change or tick.
            let retry = async {
                if pending {
                    tokio::time::sleep_until(retry_at).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = retry => {}
                r = bump_rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    // Let a burst of changes land, then apply them together.
                    if !debounce.is_zero() {
                        sleep(debounce).await;
                    }
                    bump_rx.borrow_and_update();
                    pending = true;
                }
                _ = tick.tick() => {
                    // A lost lease (etcd down longer than its TTL) took the
                    // status key with it; put it back.
                    let lost = self
                        .publisher
                        .as_ref()
                        .is_some_and(|p| p.lease.as_ref().is_some_and(Lease::is_lost));
                    if lost {
                        pending = true;
                    }
                }
            }
        }
    }

    /// Reads the state, renders, applies and publishes.
    async fn apply_once(&mut self) -> Result<(), Failure> {
        let Some(publisher) = self.publisher.as_mut() else {
            return Ok(());
        };
        let store = publisher.store.clone();
        // Read the revision first: everything read after it reflects at
        // least every write up to it, so it is safe to publish.
        let revision = store.current_revision().await.map_err(Failure::Etcd)?;
        let cluster = store
            .get(&ClusterConfigKey)
            .await
            .map_err(Failure::Etcd)?
            .map(|e| e.value);
        let desired = store
            .list(&KeyPrefix::<DesiredKey>::all())
            .await
            .map_err(Failure::Etcd)?;
        let observed = store
            .list(&KeyPrefix::<ObservedKey>::all())
            .await
            .map_err(Failure::Etcd)?;
        let mut warnings: Vec<String> = desired
            .invalid
            .iter()
            .map(|i| format!("{}: {}; ignored", i.key, i.error))
            .chain(
                observed
                    .invalid
                    .iter()
                    .map(|i| format!("{}: {}; ignored", i.key, i.error)),
            )
            .collect();
        let state = RouteState {
            cluster,
            procs: desired
                .items
                .into_iter()
                .map(|e| ((e.key.app().to_owned(), e.key.proc().to_owned()), e.value))
                .collect(),
            instances: observed
                .items
                .into_iter()
                .map(|e| {
                    let k = &e.key;
                    (
                        (
                            k.app().to_owned(),
                            k.proc().to_owned(),
                            k.instance().to_owned(),
                        ),
                        e.value,
                    )
                })
                .collect(),
            certs: self.certs.lock().map(|c| c.clone()).unwrap_or_default(),
        };
        let mut state = state;
        let cert_errors = match self.etcd_certs.lock() {
            Ok(view) => {
                // etcd's certificates win over the directory's.
                state.certs.extend(view.served.clone());
                view.errors.clone()
            }
            Err(_) => Vec::new(),
        };
        let started = Instant::now();
        let rendered = render(&state, &self.render_opts);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics.render_micros.store(micros, Ordering::Relaxed);
        warnings.extend(rendered.warnings.iter().cloned());
        self.metrics
            .render_warnings
            .store(warnings.len() as u64, Ordering::Relaxed);
        if warnings != self.last_warnings {
            for w in &warnings {
                tracing::warn!("render: {w}");
            }
            self.last_warnings = warnings;
        }

        let ttl = self.config.lease_ttl();
        let address = self.config.advertise_address.clone();
        let result = self.applier.apply(&rendered, &self.ctl).await;
        // Also after a reload that was not confirmed in time but went live.
        self.metrics
            .generation
            .store(self.applier.live(), Ordering::Relaxed);
        match result {
            Ok(outcome) => {
                if let Applied::Reloaded { generation } = outcome {
                    tracing::info!(
                        generation,
                        revision,
                        upstreams = rendered.upstreams,
                        domains = rendered.domains,
                        "nginx serves a new configuration"
                    );
                    self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                    self.metrics.generation.store(generation, Ordering::Relaxed);
                    self.metrics
                        .last_change_ms
                        .store(unix_millis(), Ordering::Relaxed);
                }
                self.metrics
                    .upstreams
                    .store(rendered.upstreams as u64, Ordering::Relaxed);
                self.metrics
                    .domains
                    .store(rendered.domains as u64, Ordering::Relaxed);
                self.metrics
                    .applied_revision
                    .store(revision, Ordering::Relaxed);
                let applied = AppliedState {
                    revision,
                    hash: rendered.hash.clone(),
                    upstreams: u32::try_from(rendered.upstreams).unwrap_or(u32::MAX),
                };
                self.applied = Some(applied.clone());
                let error = (!cert_errors.is_empty()).then(|| cert_errors.join("; "));
                let status = RouterStatus {
                    applied_revision: applied.revision,
                    applied_at_ms: unix_millis(),
                    config_hash: Some(applied.hash),
                    upstreams: applied.upstreams,
                    address,
                    error: error.clone(),
                };
                publisher
                    .publish(&self.key, ttl, status)
                    .await
                    .map_err(Failure::Etcd)?;
                let now = error.map(|e| (RouterEventKind::CertificateRejected, e));
                report(
                    publisher,
                    &mut self.last_reported,
                    &self.metrics,
                    &self.key,
                    ttl,
                    now,
                    revision,
                )
                .await;
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, revision, "configuration not applied; the previous one keeps serving");
                let prev = self.applied.clone();
                let mut error = e.to_string();
                for c in &cert_errors {
                    error.push_str("; ");
                    error.push_str(c);
                }
                let status = RouterStatus {
                    applied_revision: prev.as_ref().map_or(0, |a| a.revision),
                    applied_at_ms: unix_millis(),
                    config_hash: prev.as_ref().map(|a| a.hash.clone()),
                    upstreams: prev.as_ref().map_or(0, |a| a.upstreams),
                    address,
                    error: Some(error),
                };
                if let Err(e) = publisher.publish(&self.key, ttl, status).await {
                    tracing::warn!(error = %e, "cannot publish the failure in etcd");
                }
                report(
                    publisher,
                    &mut self.last_reported,
                    &self.metrics,
                    &self.key,
                    ttl,
                    Some((RouterEventKind::ConfigRejected, e.to_string())),
                    revision,
                )
                .await;
                Err(Failure::of(&e))
            }
        }
    }
}

/// Writes an event when the router's trouble changes: a new refusal or
/// certificate error (`now`), or recovery from one (`now` is `None`).
async fn report(
    publisher: &mut Publisher,
    last: &mut Option<(RouterEventKind, String)>,
    metrics: &Metrics,
    key: &RouterKey,
    ttl: Duration,
    now: Option<(RouterEventKind, String)>,
    revision: i64,
) {
    if *last == now {
        return;
    }
    let (kind, severity, message) = match &now {
        Some((kind, message)) => (*kind, Severity::Error, truncate(message, MAX_EVENT_MESSAGE)),
        None => (
            RouterEventKind::ConfigRecovered,
            Severity::Info,
            format!("the configuration for etcd revision {revision} applied cleanly"),
        ),
    };
    let event = RouterEvent {
        router: key.router().to_owned(),
        kind,
        severity,
        message,
        revision: Some(revision),
        at_ms: unix_millis(),
    };
    match publisher.event(ttl, event).await {
        Ok(()) => {
            metrics.events.fetch_add(1, Ordering::Relaxed);
            *last = now;
        }
        // Retried with the next apply, as `last` is unchanged.
        Err(e) => tracing::warn!(error = %e, "cannot write the router event in etcd"),
    }
}

/// Follows `/lain/certs/`, opens each certificate with the secrets key and
/// hands the result to the apply loop (bumping it on a change).
async fn watch_certs(
    store: Store,
    key: SecretsKey,
    shared: Arc<Mutex<CertView>>,
    metrics: Arc<Metrics>,
    bump: Arc<watch::Sender<u64>>,
) {
    let mut opened = certs::EtcdCerts::new(key);
    let mut current: BTreeMap<String, (Option<CertKey>, certs::Stored)> = BTreeMap::new();
    let mut w = store.watch(&KeyPrefix::<CertKey>::all());
    while let Some(event) = w.next().await {
        let invalid = |i: lain_store::InvalidEntry| {
            let k = CertKey::parse(&i.key).ok();
            // Not the decoder's detail: serde quotes offending values,
            // which in a mis-written certificate could be a plain key.
            let why = match &i.error {
                lain_store::EntryError::Key(e) => format!("bad key: {e}"),
                lain_store::EntryError::Decode(e @ lain_store::DecodeError::TooNew { .. }) => {
                    e.to_string()
                }
                lain_store::EntryError::Decode(_) => {
                    "the value is not a valid TlsCertificate (inspect it with etcdctl)".to_owned()
                }
            };
            (i.key, (k, Err(why)))
        };
        match event {
            WatchEvent::Reset {
                items,
                invalid: bad,
                ..
            } => {
                current.clear();
                for e in items {
                    current.insert(e.key.path(), (Some(e.key), Ok(e.value)));
                }
                current.extend(bad.into_iter().map(invalid));
            }
            WatchEvent::Put(e) => {
                current.insert(e.key.path(), (Some(e.key), Ok(e.value)));
            }
            WatchEvent::Delete { key, .. } => {
                current.remove(&key.path());
            }
            WatchEvent::Invalid(i) => {
                let (path, v) = invalid(i);
                current.insert(path, v);
            }
        }
        let fresh = opened.update(&current);
        for e in &fresh {
            tracing::error!("{e}");
        }
        metrics
            .certificate_failures
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        let view = CertView {
            served: opened.served(),
            errors: opened.errors(),
        };
        metrics
            .certificate_errors
            .store(view.errors.len() as u64, Ordering::Relaxed);
        let changed = match shared.lock() {
            Ok(mut held) if *held != view => {
                *held = view;
                true
            }
            _ => false,
        };
        if changed {
            bump.send_modify(|n| *n += 1);
        }
    }
}

/// Turns every event of a watch into a bump of `tx`. The watch itself
/// reconnects after etcd restarts and re-lists after compaction.
async fn forward<K: StoreKey>(store: Store, prefix: KeyPrefix<K>, tx: Arc<watch::Sender<u64>>) {
    let mut w = store.watch(&prefix);
    while w.next().await.is_some() {
        tx.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_back_off_to_a_bound() {
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(2), Duration::from_millis(400));
        assert_eq!(retry_delay(5), Duration::from_millis(3200));
        assert_eq!(retry_delay(6), Duration::from_secs(5));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn only_an_invalid_configuration_waits_for_the_next_change() {
        let invalid = ApplyError::Nginx(NginxError::Invalid {
            message: "x".into(),
        });
        assert!(matches!(Failure::of(&invalid), Failure::Refused));
        for e in [
            NginxError::NotRunning,
            NginxError::ReloadTimeout {
                generation: 2,
                secs: 10,
            },
            NginxError::TestTimeout { secs: 20 },
            NginxError::Signal {
                pid: 1,
                detail: "x".into(),
            },
        ] {
            assert!(matches!(
                Failure::of(&ApplyError::Nginx(e)),
                Failure::Transient
            ));
        }
        let io = ApplyError::Io {
            path: "x".into(),
            source: std::io::Error::other("x"),
        };
        assert!(matches!(Failure::of(&io), Failure::Transient));
    }
}
