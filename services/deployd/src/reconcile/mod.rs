//! The reconciler: makes the containers on the nodes match the desired
//! procs in etcd, and records what it sees under `/lain/observed/`.
//!
//! In the manner of kube-runtime controllers:
//! - list-then-watch of desired procs, node registrations, node liveness
//!   and router progress; each change wakes the procs it concerns;
//! - per node, a list of deployd's containers kept current by the
//!   engine's event stream (and re-listed now and then), whose events wake
//!   the proc of the container;
//! - per proc, one worker ([`worker`]): triggers coalesce, work for one
//!   proc never runs twice at once, errors back off;
//! - each round is level-triggered: [`plan`] (pure) decides which
//!   instances should exist, [`sync`] makes each node match.
//!
//! Only the leader runs it, and every write is fenced by its leadership.
//! The instance records are written before the containers exist and carry
//! the container's deterministic name, so a leader that dies at any point
//! leaves nothing its successor cannot adopt or remove.
//!
//! - [`spec`]: the spec hash and the names derived from a desired proc.
//! - [`portals`]: the portal containers of the services clients use, one
//!   per client app on each node where it runs.

pub mod plan;
pub mod portals;
pub mod spec;
pub mod state;
pub mod sync;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lain_store::secret::SecretsKey;
use lain_store::{
    DesiredKey, DockerEndpoint, FencedWriter, KeyPrefix, Lease, NodeKey, ObservedKey,
    ObservedNodeKey, RolloutKey, RouterKey, Store, StoreError, StoreKey, Transaction, Watch,
    WatchEvent,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::plan::{PlannedEvent, Policy, Record};
use self::state::{ProcId, State};
use self::sync::NodeAccess;
use crate::config::Config;
use crate::docker::Engine;
use crate::metrics::Metrics;
use crate::runtime::{LainContainer, RuntimeTimeouts};

/// How long events stay in etcd (they hang on a lease granted for this
/// long, renewed by a fresh lease every [`EVENT_LEASE_ROTATE`]).
pub const EVENT_TTL: Duration = Duration::from_secs(3600);
pub const EVENT_LEASE_ROTATE: Duration = Duration::from_secs(600);
/// Bounds on desired values deployd accepts (lain.yaml allows far less:
/// these only keep a bad write from hurting the cluster).
pub const MAX_INSTANCES: u32 = 1000;
pub const MAX_KILL_TIMEOUT_SECS: u32 = 600;
pub const MAX_SETUP_TIME_SECS: u32 = 3600;

/// A node's containers are listed again this often, besides events.
pub const RELIST_INTERVAL: Duration = Duration::from_secs(15);

/// The reconciler's tunables, from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: Policy,
    pub health_interval: Duration,
    pub unhealthy_after_failures: u32,
    pub restart_backoff: Duration,
    pub restart_backoff_max: Duration,
    pub crash_loop_restarts: u32,
    pub crash_loop_window: Duration,
    /// Bound of one engine call (not pulls or stops).
    pub call_timeout: Duration,
    pub secrets_key_file: Option<std::path::PathBuf>,
    pub retired_secrets_key_files: Vec<std::path::PathBuf>,
    pub registry_auth: Option<crate::config::RegistryAuthConfig>,
    /// Volume backups: run while leading, and restores before creates.
    pub backup: Option<Arc<crate::backup::BackupService>>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            policy: Policy {
                health_timeout_ms: c.health_timeout_secs.saturating_mul(1000),
                ..Policy::default()
            },
            health_interval: Duration::from_millis(c.health_interval_ms),
            unhealthy_after_failures: c.unhealthy_after_failures,
            restart_backoff: Duration::from_millis(c.restart_backoff_ms),
            restart_backoff_max: Duration::from_millis(c.restart_backoff_max_ms),
            crash_loop_restarts: c.crash_loop_restarts,
            crash_loop_window: Duration::from_secs(c.crash_loop_window_secs),
            call_timeout: Duration::from_secs(10),
            secrets_key_file: c.secrets_key_file.clone(),
            retired_secrets_key_files: c.retired_secrets_key_files.clone(),
            registry_auth: c.registry_auth.clone(),
            backup: None,
        }
    }
}

type CreateResults = HashMap<(ProcId, String), Option<(String, Box<sync::Outcome>)>>;

/// Where a record's background create stands.
pub enum CreateStatus {
    Idle,
    Running,
    /// Finished on this node, with this outcome.
    Done(String, Box<sync::Outcome>),
}

/// Errors that end the reconciler (the leader then steps down and
/// campaigns again).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("etcd: {0}")]
    Store(#[from] StoreError),
    #[error("a watch on {0} ended")]
    WatchEnded(&'static str),
}

struct WorkerHandle {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

/// What the reconciler's tasks share.
pub struct Ctx {
    pub writer: FencedWriter,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub secrets_key: Option<SecretsKey>,
    /// deployd's sso client for registry pulls (`[registry_auth]`).
    pub registry: Option<lain_auth::ClientCredentials>,
    pub http: reqwest::Client,
    /// When this leader started reconciling (unix ms).
    pub leading_since_ms: u64,
    /// Set when the leader stops: no worker may start after that.
    closed: std::sync::atomic::AtomicBool,
    /// Set once desired procs, nodes, liveness and routers have all been
    /// listed: no worker plans on a partial view.
    ready: std::sync::atomic::AtomicBool,
    /// Procs with instances that could not be placed: woken when capacity
    /// may have changed.
    pub unplaced: Mutex<std::collections::HashSet<ProcId>>,
    /// Placement is serialized so that procs placing at once never count
    /// the same free capacity twice.
    pub placing: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    engines: Mutex<HashMap<String, (DockerEndpoint, Engine)>>,
    workers: Mutex<HashMap<ProcId, WorkerHandle>>,
    inventories: Mutex<HashMap<String, (DockerEndpoint, JoinHandle<()>)>>,
    /// Containers being stopped in the background, and their tasks: a stop
    /// waits up to the kill timeout, which must not hold up a rollout.
    stops: Mutex<(std::collections::HashSet<String>, tokio::task::JoinSet<()>)>,
    /// Creates run in the background too (a pull can take minutes): per
    /// `(proc, slot)`, `None` while running, then the node it ran on and
    /// its outcome, taken by the proc's next round.
    creates: Mutex<(CreateResults, tokio::task::JoinSet<()>)>,
    events_lease: tokio::sync::Mutex<Option<(Lease, Instant)>>,
    /// Wakes the portal controller ([`portals`]).
    pub portals: Arc<Notify>,
    portals_task: Mutex<Option<JoinHandle<()>>>,
    backup_task: Mutex<Option<JoinHandle<()>>>,
}

/// Locks the set of procs waiting for capacity.
pub fn lock_set(
    m: &Mutex<std::collections::HashSet<ProcId>>,
) -> MutexGuard<'_, std::collections::HashSet<ProcId>> {
    lock(m)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked holder leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A client for a node's engine, reused while its endpoint is the same.
    pub fn access(
        &self,
        node: &str,
        endpoint: &DockerEndpoint,
        address: &str,
    ) -> Result<NodeAccess, crate::docker::DockerError> {
        let mut engines = lock(&self.engines);
        if let Some((e, engine)) = engines.get(node) {
            if e == endpoint {
                return Ok(NodeAccess {
                    engine: engine.clone(),
                    address: address.to_owned(),
                });
            }
        }
        let engine =
            Engine::connect(endpoint, self.settings.call_timeout)?.with_timeouts(RuntimeTimeouts {
                call: self.settings.call_timeout,
                ..RuntimeTimeouts::default()
            });
        engines.insert(node.to_owned(), (endpoint.clone(), engine.clone()));
        Ok(NodeAccess {
            engine,
            address: address.to_owned(),
        })
    }

    /// Portals follow their clients' containers: a change to one wakes
    /// the portal controller.
    pub fn remember_container(&self, node: &str, c: LainContainer) {
        let mut state = self.state();
        if state.uses_portals(&c.app) {
            self.portals.notify_one();
        }
        state.put_container(node, c);
    }

    pub fn forget_container(&self, node: &str, id: &str) {
        let mut state = self.state();
        if let Some(app) = state.remove_container(node, id) {
            if state.uses_portals(&app) {
                self.portals.notify_one();
            }
        }
    }

    /// Whether the leader stopped reconciling (or lost its leadership).
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst) || !self.writer.is_leader()
    }

    /// Whether a background stop of `container` is under way.
    pub fn is_stopping(&self, container: &str) -> bool {
        lock(&self.stops).0.contains(container)
    }

    /// Stops and removes a container in the background, then wakes the
    /// proc. Does nothing if a stop of it is already under way.
    pub fn stop_in_background(
        self: &Arc<Self>,
        id: &ProcId,
        node: &str,
        access: NodeAccess,
        container: &str,
        kill_timeout: Duration,
    ) {
        if self.is_closed() {
            return;
        }
        let mut stops = lock(&self.stops);
        while stops.1.try_join_next().is_some() {}
        if !stops.0.insert(container.to_owned()) {
            return;
        }
        let ctx = self.clone();
        let (id, node, container) = (id.clone(), node.to_owned(), container.to_owned());
        stops.1.spawn(async move {
            match sync::stop_and_remove(&access, &container, kill_timeout).await {
                Ok(()) => ctx.forget_container(&node, &container),
                Err(e) => {
                    tracing::warn!(node = %node, container = %container, error = %e, "cannot stop a container; retrying on the next round (if it persists, remove it on the node with `docker rm -f` and check dockerd's log)")
                }
            }
            lock(&ctx.stops).0.remove(&container);
            ctx.wake(&id);
        });
    }

    /// Where a record's background create stands.
    pub fn create_status(&self, id: &ProcId, slot: &str) -> CreateStatus {
        let mut creates = lock(&self.creates);
        let key = (id.clone(), slot.to_owned());
        match creates.0.get(&key) {
            None => CreateStatus::Idle,
            Some(None) => CreateStatus::Running,
            Some(Some(_)) => match creates.0.remove(&key) {
                Some(Some((node, outcome))) => CreateStatus::Done(node, outcome),
                _ => CreateStatus::Idle,
            },
        }
    }

    /// Drops finished creates of records that no longer exist.
    pub fn forget_creates(&self, id: &ProcId, live: &[&str]) {
        lock(&self.creates)
            .0
            .retain(|(p, slot), v| p != id || v.is_none() || live.contains(&slot.as_str()));
    }

    /// Runs [`sync::create`] for a record in the background; its outcome
    /// is picked up by the proc's next round.
    pub fn create_in_background(
        self: &Arc<Self>,
        id: &ProcId,
        node: NodeAccess,
        record: Record,
        found: Option<LainContainer>,
        target: lain_store::DesiredProc,
    ) {
        if self.is_closed() {
            return;
        }
        let mut creates = lock(&self.creates);
        while creates.1.try_join_next().is_some() {}
        let key = (id.clone(), record.slot.clone());
        if creates.0.contains_key(&key) {
            return;
        }
        creates.0.insert(key.clone(), None);
        let ctx = self.clone();
        creates.1.spawn(async move {
            let outcome = sync::create(&ctx, &node, &record, found.as_ref(), &target).await;
            lock(&ctx.creates).0.insert(
                key.clone(),
                Some((record.obs.node.clone(), Box::new(outcome))),
            );
            ctx.wake(&key.0);
        });
    }

    /// Wakes a proc's worker, starting one if it has none.
    pub fn wake(self: &Arc<Self>, id: &ProcId) {
        if self.is_closed() || !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut workers = lock(&self.workers);
        if let Some(w) = workers.get(id) {
            if !w.task.is_finished() {
                w.notify.notify_one();
                return;
            }
        }
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(worker::run(self.clone(), id.clone(), notify.clone()));
        workers.insert(id.clone(), WorkerHandle { notify, task });
    }

    pub fn wake_all(self: &Arc<Self>) {
        let all = self.state().all_procs();
        for id in &all {
            self.wake(id);
        }
    }

    /// Wakes the procs with instances on `nodes`, and those waiting for
    /// capacity.
    pub fn wake_nodes(self: &Arc<Self>, nodes: &[String]) {
        let mut procs: Vec<ProcId> = {
            let state = self.state();
            nodes.iter().flat_map(|n| state.procs_on(n)).collect()
        };
        procs.extend(lock(&self.unplaced).iter().cloned());
        procs.sort();
        procs.dedup();
        for id in &procs {
            self.wake(id);
        }
    }

    /// Called by a worker that found nothing left of its proc: true if it
    /// may end (nothing arrived meanwhile).
    pub fn retire_worker(&self, id: &ProcId) -> bool {
        let mut workers = lock(&self.workers);
        if !self.state().is_empty(id) {
            return false;
        }
        workers.remove(id);
        true
    }

    /// Records an event on an app (leased: events expire after about an
    /// hour). Failures are logged, never fatal.
    pub async fn event(
        &self,
        app: &str,
        proc: Option<&str>,
        e: PlannedEvent,
        generation: Option<u64>,
    ) {
        match e.severity {
            lain_store::Severity::Error => {
                tracing::warn!(app, proc, kind = ?e.kind, "{}", e.message)
            }
            _ => tracing::info!(app, proc, kind = ?e.kind, "{}", e.message),
        }
        let (key, value) = worker::event_value(app, proc, &e, generation);
        let Ok(key) = key else { return };
        let lease = match self.event_lease().await {
            Ok(l) => l,
            Err(err) => {
                tracing::warn!(error = %err, "cannot grant the events lease; event not recorded");
                return;
            }
        };
        let mut txn = Transaction::new();
        if txn.put_with_lease(&key, &value, lease).is_err() {
            return;
        }
        if let Err(err) = self.writer.commit(txn).await {
            tracing::warn!(error = %err, "cannot record an event");
        }
    }

    async fn event_lease(&self) -> Result<lain_store::LeaseId, StoreError> {
        let mut current = self.events_lease.lock().await;
        if let Some((lease, at)) = current.as_ref() {
            if at.elapsed() < EVENT_LEASE_ROTATE {
                return Ok(lease.id());
            }
        }
        let lease = self.writer.store().grant_lease(EVENT_TTL).await?;
        // Not renewed: the events on it expire with it.
        lease.stop_keep_alive();
        let id = lease.id();
        *current = Some((lease, Instant::now()));
        Ok(id)
    }
}

/// Aborts every task of the reconciler when the leader stops it.
struct Shutdown(Arc<Ctx>);

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, w) in lock(&self.0.workers).drain() {
            w.task.abort();
        }
        for (_, (_, t)) in lock(&self.0.inventories).drain() {
            t.abort();
        }
        if let Some(t) = lock(&self.0.portals_task).take() {
            t.abort();
        }
        if let Some(t) = lock(&self.0.backup_task).take() {
            t.abort();
        }
        lock(&self.0.stops).1.abort_all();
        lock(&self.0.creates).1.abort_all();
    }
}

/// Runs the reconciler while leading. Returns only on an error that needs
/// a fresh start (the caller steps down); dropping the future stops every
/// task it started.
pub async fn run(
    store: &Store,
    writer: FencedWriter,
    settings: Settings,
    metrics: Arc<Metrics>,
) -> Result<(), ReconcileError> {
    let secrets_key = match &settings.secrets_key_file {
        Some(path) => {
            match SecretsKey::load_with_retired(path, &settings.retired_secrets_key_files) {
                Ok(k) => Some(k),
                // A bad retired key must not cost the current one: what
                // the current key sealed still opens.
                Err(e) => match SecretsKey::load(path) {
                    Ok(k) => {
                        tracing::error!(error = %e, "cannot load a retired secrets key; only secrets sealed under the current key open");
                        Some(k)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load the secrets key; procs with secrets will not start");
                        None
                    }
                },
            }
        }
        None => None,
    };
    let registry = settings.registry_auth.as_ref().and_then(|r| {
        match lain_service::read_private_file(&r.client_secret_file, "client_secret_file", 4096) {
            Ok(raw) => {
                let secret = zeroize::Zeroizing::new(String::from_utf8_lossy(&raw).trim().to_owned());
                Some(lain_auth::ClientCredentials::new(r.issuer.clone(), r.client_id.clone(), secret))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read [registry_auth] client_secret_file; pulls are anonymous");
                None
            }
        }
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // No idle connections kept: with one address per instance they
        // would cost a socket per probed instance.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let ctx = Arc::new(Ctx {
        writer,
        settings,
        metrics,
        secrets_key,
        registry,
        http,
        leading_since_ms: lain_store::unix_millis(),
        closed: Default::default(),
        ready: Default::default(),
        unplaced: Mutex::new(Default::default()),
        placing: tokio::sync::Mutex::new(()),
        state: Mutex::new(State::default()),
        engines: Mutex::new(HashMap::new()),
        workers: Mutex::new(HashMap::new()),
        inventories: Mutex::new(HashMap::new()),
        stops: Mutex::new(Default::default()),
        creates: Mutex::new(Default::default()),
        events_lease: tokio::sync::Mutex::new(None),
        portals: Arc::new(Notify::new()),
        portals_task: Mutex::new(None),
        backup_task: Mutex::new(None),
    });
    let _shutdown = Shutdown(ctx.clone());

    // What deployd itself wrote: the instance records and rollouts.
    let observed = store.list(&KeyPrefix::<ObservedKey>::all()).await?;
    let rollouts = store.list(&KeyPrefix::<RolloutKey>::all()).await?;
    {
        let mut state = ctx.state();
        for e in observed.items {
            let id = (e.key.app().to_owned(), e.key.proc().to_owned());
            let slot = e.key.instance().to_owned();
            state.records.entry(id).or_default().insert(
                slot.clone(),
                Record {
                    slot,
                    obs: e.value,
                    rev: e.mod_revision,
                },
            );
        }
        for bad in observed.invalid {
            tracing::warn!(key = %bad.key, error = %bad.error, "ignoring an unreadable instance record");
        }
        for e in rollouts.items {
            state
                .rollouts
                .insert((e.key.app().to_owned(), e.key.proc().to_owned()), e.value);
        }
    }
    tracing::info!(
        procs = ctx.state().records.len(),
        "reconciler started; loaded instance records"
    );

    let mut desired: Watch<DesiredKey> = store.watch(&KeyPrefix::all());
    let mut nodes: Watch<NodeKey> = store.watch(&KeyPrefix::all());
    let mut liveness: Watch<ObservedNodeKey> = store.watch(&KeyPrefix::all());
    let mut routers: Watch<RouterKey> = store.watch(&KeyPrefix::all());
    let mut gauges = tokio::time::interval(Duration::from_secs(1));
    // Nothing acts until all four inputs have been listed once.
    let mut listed = [false; 4];
    loop {
        let was_ready = listed.iter().all(|l| *l);
        tokio::select! {
            ev = desired.next() => {
                let ev = ev.ok_or(ReconcileError::WatchEnded("/lain/desired/"))?;
                listed[0] |= matches!(ev, WatchEvent::Reset { .. });
                on_desired(&ctx, ev);
            }
            ev = nodes.next() => {
                let ev = ev.ok_or(ReconcileError::WatchEnded("/lain/nodes/"))?;
                listed[1] |= matches!(ev, WatchEvent::Reset { .. });
                on_nodes(&ctx, ev);
            }
            ev = liveness.next() => {
                let ev = ev.ok_or(ReconcileError::WatchEnded("/lain/observed-nodes/"))?;
                listed[2] |= matches!(ev, WatchEvent::Reset { .. });
                on_liveness(&ctx, ev);
            }
            ev = routers.next() => {
                let ev = ev.ok_or(ReconcileError::WatchEnded("/lain/routers/"))?;
                listed[3] |= matches!(ev, WatchEvent::Reset { .. });
                on_routers(&ctx, ev);
            }
            _ = gauges.tick() => {
                let state = ctx.state();
                ctx.metrics.set_instances(
                    state
                        .records
                        .values()
                        .flat_map(|r| r.values())
                        .map(|r| (r.obs.node.as_str(), r.obs.state)),
                );
            }
        }
        if !was_ready && listed.iter().all(|l| *l) {
            ctx.ready.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!("desired procs, nodes, liveness and routers listed: reconciling");
            sync_inventories(&ctx);
            ctx.wake_all();
            *lock(&ctx.portals_task) = Some(tokio::spawn(portals::run(ctx.clone())));
            if let Some(b) = ctx.settings.backup.clone() {
                *lock(&ctx.backup_task) = Some(tokio::spawn(crate::backup::run(ctx.clone(), b)));
            }
        }
    }
}

fn proc_id(app: &str, proc: &str) -> ProcId {
    (app.to_owned(), proc.to_owned())
}

fn on_desired(ctx: &Arc<Ctx>, ev: WatchEvent<DesiredKey>) {
    let mut wake = Vec::new();
    {
        let mut state = ctx.state();
        match ev {
            WatchEvent::Reset { items, invalid, .. } => {
                wake.extend(state.desired.keys().cloned());
                wake.extend(state.invalid.keys().cloned());
                state.desired.clear();
                state.portals.clear();
                state.invalid.clear();
                for e in items {
                    let id = proc_id(e.key.app(), e.key.proc());
                    check_and_insert(&mut state, id.clone(), e.value);
                    wake.push(id);
                }
                for bad in invalid {
                    if let Some(id) = invalid_id(&bad) {
                        state.invalid.insert(id.clone(), invalid_message(&bad));
                        wake.push(id);
                    }
                }
            }
            WatchEvent::Put(e) => {
                let id = proc_id(e.key.app(), e.key.proc());
                state.invalid.remove(&id);
                check_and_insert(&mut state, id.clone(), e.value);
                wake.push(id);
            }
            WatchEvent::Delete { key, .. } => {
                let id = proc_id(key.app(), key.proc());
                state.desired.remove(&id);
                state.portals.remove(&id);
                state.invalid.remove(&id);
                wake.push(id);
            }
            WatchEvent::Invalid(bad) => {
                if let Some(id) = invalid_id(&bad) {
                    // Keep the last good value's instances running as they are.
                    state.invalid.insert(id.clone(), invalid_message(&bad));
                    wake.push(id);
                }
            }
        }
    }
    for id in wake {
        ctx.wake(&id);
    }
    ctx.portals.notify_one();
}

/// Stores a desired proc, or marks it invalid if deployd cannot run it.
fn check_and_insert(state: &mut State, id: ProcId, d: lain_store::DesiredProc) {
    let problem = if d.app != id.0 || d.proc != id.1 {
        Some(format!(
            "desired proc at /lain/desired/{}/{} names {}/{}; console must write matching keys",
            id.0, id.1, d.app, d.proc
        ))
    } else if let Err(e) = crate::scheduler::check_filters(&d.filters) {
        Some(format!(
            "desired proc {}/{} has an invalid filter: {e}",
            id.0, id.1
        ))
    } else if d.image.trim().is_empty() {
        Some(format!("desired proc {}/{} has no image", id.0, id.1))
    } else if d.instances > MAX_INSTANCES {
        Some(format!(
            "desired proc {}/{} asks for {} instances; at most {MAX_INSTANCES} per proc are allowed",
            id.0, id.1, d.instances
        ))
    } else if d.kill_timeout_secs > MAX_KILL_TIMEOUT_SECS {
        Some(format!(
            "desired proc {}/{} has kill_timeout {} s; at most {MAX_KILL_TIMEOUT_SECS} s is allowed",
            id.0, id.1, d.kill_timeout_secs
        ))
    } else if d.setup_time_secs > MAX_SETUP_TIME_SECS {
        Some(format!(
            "desired proc {}/{} has setup_time {} s; at most {MAX_SETUP_TIME_SECS} s is allowed",
            id.0, id.1, d.setup_time_secs
        ))
    } else if let Some(lain_store::HealthCheck::Http { path }) = &d.healthcheck {
        let bad = !path.starts_with('/')
            || path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '\\' | '#'));
        bad.then(|| {
            format!(
                "desired proc {}/{} has health check path {path:?}; it must be an absolute path such as /healthz",
                id.0, id.1
            )
        })
    } else if (d.proc_type == lain_store::ProcType::Portal) != d.portal.is_some() {
        Some(format!(
            "desired proc {}/{} is a portal without what it fronts, or names a portal spec on a {:?} proc; deploy the app again with this console",
            id.0, id.1, d.proc_type
        ))
    } else if d.proc_type == lain_store::ProcType::Unknown {
        Some(format!(
            "desired proc {}/{} has a proc type this deployd does not know; upgrade deployd",
            id.0, id.1
        ))
    } else {
        None
    };
    match problem {
        Some(p) => {
            state.desired.remove(&id);
            state.portals.remove(&id);
            state.invalid.insert(id, p);
        }
        None if d.portal.is_some() => {
            state.invalid.remove(&id);
            state.desired.remove(&id);
            state.portals.insert(id, d);
        }
        None => {
            state.invalid.remove(&id);
            state.portals.remove(&id);
            state.desired.insert(id, d);
        }
    }
}

fn invalid_id(bad: &lain_store::InvalidEntry) -> Option<ProcId> {
    let key = DesiredKey::parse(&bad.key).ok()?;
    Some((key.app().to_owned(), key.proc().to_owned()))
}

fn invalid_message(bad: &lain_store::InvalidEntry) -> String {
    format!(
        "desired proc {} cannot be read ({}); its instances are left as they are until console writes a valid value",
        bad.key, bad.error
    )
}

fn on_nodes(ctx: &Arc<Ctx>, ev: WatchEvent<NodeKey>) {
    let mut touched: Vec<String> = Vec::new();
    {
        let mut state = ctx.state();
        match ev {
            WatchEvent::Reset { items, invalid, .. } => {
                touched.extend(state.nodes.keys().cloned());
                let previous = std::mem::take(&mut state.nodes);
                state.unreadable_nodes.clear();
                for e in items {
                    touched.push(e.key.node().to_owned());
                    state.nodes.insert(e.key.node().to_owned(), e.value);
                }
                for bad in invalid {
                    if let Ok(key) = NodeKey::parse(&bad.key) {
                        unreadable(&mut state, &previous, key.node(), &bad);
                        touched.push(key.node().to_owned());
                    }
                }
            }
            WatchEvent::Put(e) => {
                let node = e.key.node().to_owned();
                state.unreadable_nodes.remove(&node);
                state.nodes.insert(node.clone(), e.value);
                touched.push(node);
            }
            WatchEvent::Delete { key, .. } => {
                state.nodes.remove(key.node());
                state.unreadable_nodes.remove(key.node());
                touched.push(key.node().to_owned());
            }
            WatchEvent::Invalid(bad) => {
                if let Ok(key) = NodeKey::parse(&bad.key) {
                    let previous = state.nodes.clone();
                    unreadable(&mut state, &previous, key.node(), &bad);
                    touched.push(key.node().to_owned());
                }
            }
        }
    }
    sync_inventories(ctx);
    ctx.wake_nodes(&touched);
}

/// A registration that cannot be read: keep the last good one and leave
/// the node alone (its instances neither move nor get touched).
fn unreadable(
    state: &mut State,
    previous: &std::collections::BTreeMap<String, lain_store::NodeRegistration>,
    node: &str,
    bad: &lain_store::InvalidEntry,
) {
    tracing::warn!(
        key = %bad.key,
        error = %bad.error,
        "node registration cannot be read; its instances are left as they are until node management rewrites it (lain node add)"
    );
    if let Some(reg) = previous.get(node) {
        state.nodes.insert(node.to_owned(), reg.clone());
        state.unreadable_nodes.insert(node.to_owned());
    }
}

fn on_liveness(ctx: &Arc<Ctx>, ev: WatchEvent<ObservedNodeKey>) {
    let mut changed = Vec::new();
    {
        let mut state = ctx.state();
        match ev {
            WatchEvent::Reset { items, .. } => {
                changed.extend(state.liveness.keys().cloned());
                state.liveness.clear();
                for e in items {
                    changed.push(e.key.node().to_owned());
                    state.liveness.insert(e.key.node().to_owned(), e.value);
                }
            }
            WatchEvent::Put(e) => {
                let node = e.key.node().to_owned();
                let before = state.liveness.get(&node).map(|o| o.liveness);
                if before != Some(e.value.liveness) {
                    changed.push(node.clone());
                }
                state.liveness.insert(node, e.value);
            }
            WatchEvent::Delete { key, .. } => {
                state.liveness.remove(key.node());
                changed.push(key.node().to_owned());
            }
            WatchEvent::Invalid(_) => {}
        }
    }
    if changed.is_empty() {
        return;
    }
    sync_inventories(ctx);
    // The procs on those nodes, and those waiting for room anywhere.
    ctx.wake_nodes(&changed);
}

fn on_routers(ctx: &Arc<Ctx>, ev: WatchEvent<RouterKey>) {
    {
        let mut state = ctx.state();
        match ev {
            WatchEvent::Reset { items, .. } => {
                state.routers.clear();
                for e in items {
                    state.routers.insert(e.key.router().to_owned(), e.value);
                }
            }
            WatchEvent::Put(e) => {
                state.routers.insert(e.key.router().to_owned(), e.value);
            }
            WatchEvent::Delete { key, .. } => {
                state.routers.remove(key.router());
            }
            WatchEvent::Invalid(_) => {}
        }
    }
    // Only procs waiting on routers care: those draining, or with a ready
    // replacement beside an old version.
    let waiting: Vec<ProcId> = ctx
        .state()
        .records
        .iter()
        .filter(|(_, rs)| {
            let draining = rs
                .values()
                .any(|r| r.obs.state == lain_store::InstanceState::Draining);
            let mut specs = rs.values().map(|r| r.obs.spec.as_str());
            let first = specs.next();
            draining || specs.any(|s| Some(s) != first)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in waiting {
        ctx.wake(&id);
    }
}

/// Keeps one inventory task per alive node, with its current endpoint.
fn sync_inventories(ctx: &Arc<Ctx>) {
    let wanted: HashMap<String, DockerEndpoint> = {
        let state = ctx.state();
        state
            .nodes
            .iter()
            .filter(|(n, _)| state.node_view(n).is_up())
            .map(|(n, reg)| (n.clone(), reg.docker.clone()))
            .collect()
    };
    let mut tasks = lock(&ctx.inventories);
    let stale: Vec<String> = tasks
        .iter()
        .filter(|(n, (e, t))| wanted.get(*n) != Some(e) || t.is_finished())
        .map(|(n, _)| n.clone())
        .collect();
    for n in stale {
        if let Some((_, t)) = tasks.remove(&n) {
            t.abort();
        }
        ctx.state().drop_inventory(&n);
    }
    for (n, endpoint) in wanted {
        if tasks.contains_key(&n) {
            continue;
        }
        let task = tokio::spawn(inventory(ctx.clone(), n.clone(), endpoint.clone()));
        tasks.insert(n, (endpoint, task));
    }
}

/// Lists a node's containers and follows its events, waking the procs
/// whose containers change. Runs while the node is alive.
async fn inventory(ctx: Arc<Ctx>, node: String, endpoint: DockerEndpoint) {
    let mut delay = Duration::from_millis(200);
    let mut first = true;
    loop {
        // The workers' cached client for the node (not a new one per
        // relist).
        let engine = match ctx.access(&node, &endpoint, "") {
            Ok(a) => a.engine,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cannot set up a client for the node; check the docker endpoint and TLS files in its registration (/lain/nodes/{node}, `lain node add`)");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        // Subscribe first, then list: nothing falls between the two.
        let mut events = Box::pin(engine.events());
        let listed = match engine.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cannot list the node's containers; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if first {
            first = false;
            // Volume transfers (copies, backups, restores) need the node
            // listed, so none of this leader's runs yet: a helper left
            // now is a dead leader's, and would block its volume.
            match engine.gc_volume_helpers(Duration::ZERO).await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(node = %node, helpers = ?gone, "removed volume helpers left by an earlier leader")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "cannot remove leftover volume helpers")
                }
            }
        }
        let listed_at = Instant::now();
        let changed = ctx.state().set_inventory(&node, listed);
        for id in &changed {
            ctx.wake(id);
        }
        let relist = tokio::time::sleep(RELIST_INTERVAL);
        tokio::pin!(relist);
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) => {
                        let fresh = if ev.action == "destroy" { Ok(None) } else { engine.inspect(&ev.id).await };
                        match fresh {
                            Ok(Some(c)) => ctx.remember_container(&node, c),
                            Ok(None) => ctx.forget_container(&node, &ev.id),
                            Err(_) => {}
                        }
                        if !ev.app.is_empty() {
                            ctx.wake(&(ev.app.clone(), ev.proc.clone()));
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(node = %node, error = %e, "event stream failed; listing again");
                        break;
                    }
                    None => break,
                },
                () = &mut relist => break,
            }
        }
        // A stream that fails at once must not turn into a hot loop.
        if listed_at.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        } else {
            delay = Duration::from_millis(200);
        }
    }
}
