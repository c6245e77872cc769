//! The node monitor: run by the leader only. It follows the registrations
//! under `/lain/nodes/` (list-then-watch), pings every node's Docker engine
//! each `ping_interval`, all concurrently and each bounded by
//! `ping_timeout`, and keeps `/lain/observed-nodes/{node}` up to date
//! through the leader's fenced writes.
//!
//! etcd writes stay low: a node's observed value is written when its
//! liveness (or version, or message) changes, and otherwise only to move
//! `last_seen_ms` forward once it is [`LAST_SEEN_REFRESH`] stale. Changes
//! of one round go out in a few transactions, not one write per node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use lain_store::{
    unix_millis, InvalidEntry, KeyPrefix, Leadership, Liveness, NodeKey, NodeRegistration,
    ObservedNode, ObservedNodeKey, Store, StoreError, StoreKey, Transaction, WatchEvent,
};
use tokio::task::{Id, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::config::Config;
use crate::docker::{describe, DockerError, Engine};
use crate::liveness::{needs_write, NodeHealth, PingOutcome};
use crate::metrics::{Metrics, NodeCounts};

/// How stale a stored `last_seen_ms` of a live node may get before it is
/// rewritten: the bound on etcd writes for nodes that do not change.
pub const LAST_SEEN_REFRESH: Duration = Duration::from_secs(10);

/// Operations per etcd transaction; etcd's default limit is 128.
const TXN_OPS: usize = 64;

/// How the monitor pings and judges nodes.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub lost_after_misses: u32,
    pub last_seen_refresh: Duration,
}

impl MonitorSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            ping_interval: config.ping_interval(),
            ping_timeout: config.ping_timeout(),
            lost_after_misses: config.lost_after_misses,
            last_seen_refresh: LAST_SEEN_REFRESH,
        }
    }
}

/// Why the monitor stopped. It runs until its leadership ends, so every
/// end is an error.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Leadership is gone (a fenced write was refused, the lease or the
    /// candidate key was lost): stop acting and campaign again.
    #[error("stopped monitoring nodes: {0}")]
    Leadership(#[source] StoreError),
    #[error("the watch of node registrations ended unexpectedly (a bug to report); the monitor restarts with the next term")]
    WatchEnded,
}

fn ends_leadership(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotLeader { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::CandidacyLost { .. }
    )
}

/// One registered node being monitored.
#[derive(Debug)]
struct Tracked {
    registration: NodeRegistration,
    /// Bumped when the endpoint changes, so that a ping of the old endpoint
    /// still in flight is not counted for the new one.
    generation: u64,
    engine: Option<Engine>,
    health: NodeHealth,
}

/// What a ping task hands back.
struct PingResult {
    node: String,
    generation: u64,
    outcome: PingOutcome,
    engine: Option<Engine>,
}

/// Monitors nodes while `leadership` lasts. Returns only when it must
/// stop; the caller also stops it (drops it) the moment leadership is lost.
pub async fn run(
    store: &Store,
    leadership: &Leadership,
    settings: &MonitorSettings,
    metrics: &Metrics,
) -> MonitorError {
    let mut monitor = Monitor {
        leadership,
        settings,
        metrics,
        tracked: BTreeMap::new(),
        written: HashMap::new(),
        invalid: BTreeSet::new(),
        synced: false,
        next_generation: 0,
        in_flight: HashMap::new(),
        dirty: false,
    };
    // Watch first, so that no registration change after the observed
    // listing is missed; the watch buffers meanwhile.
    let mut registrations = store.watch(&KeyPrefix::<NodeKey>::all());
    monitor.load_written(store).await;
    let mut tick = tokio::time::interval(settings.ping_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pings: JoinSet<PingResult> = JoinSet::new();
    // A liveness change is written shortly after it is seen, batched with
    // others that arrive meanwhile: waiting for every in-flight ping would
    // stall writes for as long as rounds overlap (slow engines).
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let flushed = tokio::select! {
            event = registrations.next() => match event {
                Some(event) => {
                    monitor.apply(event);
                    flush_at = None;
                    monitor.flush().await
                }
                None => return MonitorError::WatchEnded,
            },
            _ = tick.tick(), if monitor.synced => {
                monitor.count_instances();
                let r = if monitor.dirty {
                    flush_at = None;
                    monitor.flush().await
                } else {
                    Ok(())
                };
                monitor.start_pings(&mut pings);
                r
            }
            () = sleep_until_or_never(flush_at), if flush_at.is_some() => {
                flush_at = None;
                monitor.flush().await
            }
            Some(done) = pings.join_next_with_id(), if !pings.is_empty() => {
                monitor.finish_ping(done);
                if pings.is_empty() {
                    flush_at = None;
                    monitor.flush().await
                } else {
                    if monitor.dirty && flush_at.is_none() {
                        flush_at = Some(tokio::time::Instant::now() + FLUSH_BATCH);
                    }
                    Ok(())
                }
            }
        };
        if let Err(e) = flushed {
            return MonitorError::Leadership(e);
        }
    }
}

/// How long a seen liveness change may wait for others to batch with.
const FLUSH_BATCH: Duration = Duration::from_millis(50);

async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Monitor<'a> {
    leadership: &'a Leadership,
    settings: &'a MonitorSettings,
    metrics: &'a Metrics,
    tracked: BTreeMap<String, Tracked>,
    /// What etcd holds under `/lain/observed-nodes/`, as far as this term
    /// knows; `None` for a value that cannot be read (it gets rewritten).
    written: HashMap<String, Option<ObservedNode>>,
    /// Keys of registrations that cannot be read.
    invalid: BTreeSet<String>,
    /// Whether the registrations have been listed: until then nothing is
    /// pinged and no observed key is deleted as an orphan.
    synced: bool,
    /// A liveness changed since the last flush.
    dirty: bool,
    next_generation: u64,
    in_flight: HashMap<Id, String>,
}

impl Monitor<'_> {
    /// Reads the observed nodes a previous term left, retrying until etcd
    /// answers (the caller stops this when leadership ends).
    async fn load_written(&mut self, store: &Store) {
        let mut delay = Duration::from_millis(100);
        let listing = loop {
            match store.list(&KeyPrefix::<ObservedNodeKey>::all()).await {
                Ok(listing) => break listing,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list observed nodes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        for entry in listing.items {
            self.written
                .insert(entry.key.node().to_owned(), Some(entry.value));
        }
        for bad in listing.invalid {
            // deployd is the only writer here: a bad value is rewritten (or
            // deleted with its node); a bad key cannot even be named.
            match ObservedNodeKey::parse(&bad.key) {
                Ok(key) => {
                    tracing::warn!(key = %bad.key, error = %bad.error, "unreadable observed node; it will be rewritten or removed");
                    self.written.insert(key.node().to_owned(), None);
                }
                Err(_) => {
                    tracing::warn!(key = %bad.key, error = %bad.error, "unreadable observed-node key; ignored");
                }
            }
        }
    }

    fn apply(&mut self, event: WatchEvent<NodeKey>) {
        match event {
            WatchEvent::Reset { items, invalid, .. } => {
                let listed: BTreeSet<String> =
                    items.iter().map(|e| e.key.node().to_owned()).collect();
                self.tracked.retain(|name, _| listed.contains(name));
                for entry in items {
                    self.upsert(entry.key.node(), entry.value);
                }
                self.invalid.clear();
                for bad in invalid {
                    self.skip_invalid(bad);
                }
                self.synced = true;
            }
            WatchEvent::Put(entry) => {
                self.invalid.remove(&entry.key.path());
                self.upsert(entry.key.node(), entry.value);
            }
            WatchEvent::Delete { key, .. } => {
                self.invalid.remove(&key.path());
                if self.tracked.remove(key.node()).is_some() {
                    tracing::info!(node = key.node(), "node unregistered; no longer monitored");
                }
            }
            WatchEvent::Invalid(bad) => self.skip_invalid(bad),
        }
        self.metrics
            .set_invalid_registrations(self.invalid.len() as u64);
    }

    /// An unreadable registration counts as no registration: without a
    /// readable endpoint the node cannot be pinged, and acting on a value
    /// this build does not understand would be guessing.
    fn skip_invalid(&mut self, bad: InvalidEntry) {
        tracing::warn!(
            key = %bad.key,
            error = %bad.error,
            "skipping an unreadable node registration; fix it with the node-management tools (`etcdctl get {}` shows it)",
            bad.key
        );
        if let Ok(key) = NodeKey::parse(&bad.key) {
            self.tracked.remove(key.node());
        }
        self.invalid.insert(bad.key);
    }

    fn upsert(&mut self, node: &str, registration: NodeRegistration) {
        if let Some(t) = self.tracked.get_mut(node) {
            if t.registration.docker != registration.docker {
                tracing::info!(node, endpoint = %describe(&registration.docker), "node's Docker endpoint changed");
                t.engine = None;
                t.generation = self.next_generation;
                self.next_generation += 1;
            }
            t.registration = registration;
            return;
        }
        let health = match self.written.get(node) {
            Some(Some(stored)) => NodeHealth::resume(stored, self.settings.lost_after_misses),
            _ => NodeHealth::new(),
        };
        tracing::info!(node, endpoint = %describe(&registration.docker), "monitoring node");
        self.tracked.insert(
            node.to_owned(),
            Tracked {
                registration,
                generation: self.next_generation,
                engine: None,
                health,
            },
        );
        self.next_generation += 1;
    }

    /// Starts one ping per node that has none in flight.
    fn start_pings(&mut self, pings: &mut JoinSet<PingResult>) {
        let busy: BTreeSet<&String> = self.in_flight.values().collect();
        let timeout = self.settings.ping_timeout;
        let mut started = Vec::new();
        for (name, t) in &self.tracked {
            if busy.contains(name) {
                continue;
            }
            let engine = match &t.engine {
                Some(e) => Ok(e.clone()),
                None => Engine::connect(&t.registration.docker, timeout),
            };
            let want_version = t.health.wants_version();
            let node = name.clone();
            let generation = t.generation;
            let handle = pings.spawn(ping(
                node.clone(),
                generation,
                engine,
                want_version,
                timeout,
            ));
            started.push((handle.id(), node));
        }
        self.in_flight.extend(started);
    }

    fn finish_ping(&mut self, done: Result<(Id, PingResult), tokio::task::JoinError>) {
        let result = match done {
            Ok((id, result)) => {
                self.in_flight.remove(&id);
                result
            }
            Err(e) => {
                // Only a panic gets here (the set is never aborted while
                // the monitor runs); the node is pinged again next round.
                let node = self.in_flight.remove(&e.id());
                tracing::error!(?node, error = %e, "a ping task failed");
                return;
            }
        };
        let answered = matches!(result.outcome, PingOutcome::Answered { .. });
        self.metrics.ping(answered);
        let Some(t) = self.tracked.get_mut(&result.node) else {
            return;
        };
        if t.generation != result.generation {
            return;
        }
        match result.outcome {
            // Rebuild the client after a miss, so that a restarted engine
            // or renewed TLS files are picked up within a term.
            PingOutcome::Missed { .. } => t.engine = None,
            PingOutcome::Answered { .. } if t.engine.is_none() => t.engine = result.engine,
            PingOutcome::Answered { .. } => {}
        }
        let error = match &result.outcome {
            PingOutcome::Missed { error } => Some(error.clone()),
            PingOutcome::Answered { .. } => None,
        };
        let Some(change) = t.health.record(
            result.outcome,
            unix_millis(),
            self.settings.lost_after_misses,
        ) else {
            return;
        };
        self.dirty = true;
        let node = result.node.as_str();
        let from = change.from.map_or("unknown", liveness_name);
        let to = liveness_name(change.to);
        match change.to {
            Liveness::Alive => tracing::info!(node, from, to, "node is alive"),
            _ => tracing::warn!(
                node,
                from,
                to,
                misses = t.health.misses(),
                error = error.as_deref().unwrap_or(""),
                "node missed pings"
            ),
        }
    }

    /// Takes the reconciler's instance count of each node into its
    /// observed value (written with the next flush when it changed).
    fn count_instances(&mut self) {
        for (name, t) in self.tracked.iter_mut() {
            if t.health.set_instances(self.metrics.node_instances(name)) {
                self.dirty = true;
            }
        }
    }

    /// Writes every observed-node change (and deletes the observed keys of
    /// unregistered nodes) through the leadership's fenced commits. A
    /// failed commit is retried with the next flush, since what to write is
    /// derived afresh from what is known to be stored; only the loss of
    /// leadership is an error.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if !self.synced {
            return Ok(());
        }
        self.dirty = false;
        let refresh =
            u64::try_from(self.settings.last_seen_refresh.as_millis()).unwrap_or(u64::MAX);
        let mut changes: Vec<(String, Option<ObservedNode>)> = Vec::new();
        for (name, t) in &self.tracked {
            let Some(desired) = t.health.observed() else {
                continue;
            };
            let stored = self.written.get(name).and_then(Option::as_ref);
            if needs_write(&desired, stored, refresh) {
                changes.push((name.clone(), Some(desired)));
            }
        }
        for name in self.written.keys() {
            if !self.tracked.contains_key(name) {
                changes.push((name.clone(), None));
            }
        }
        for chunk in changes.chunks(TXN_OPS) {
            let mut txn = Transaction::new();
            for (name, value) in chunk {
                let key = match ObservedNodeKey::new(name) {
                    Ok(key) => key,
                    // Names come from parsed keys; this cannot happen.
                    Err(e) => {
                        tracing::error!(node = %name, error = %e, "cannot name an observed-node key");
                        continue;
                    }
                };
                match value {
                    Some(v) => {
                        if let Err(e) = txn.put(&key, v) {
                            tracing::error!(node = %name, error = %e, "cannot encode an observed node");
                        }
                    }
                    None => {
                        txn.delete(&key);
                    }
                }
            }
            if txn.is_empty() {
                continue;
            }
            match self.leadership.commit(txn).await {
                Ok(_) => {
                    self.metrics.observed_written(chunk.len() as u64);
                    for (name, value) in chunk {
                        match value {
                            Some(v) => {
                                self.written.insert(name.clone(), Some(v.clone()));
                            }
                            None => {
                                self.written.remove(name);
                                tracing::info!(node = %name, "removed the observed state of an unregistered node");
                            }
                        }
                    }
                }
                Err(e) if ends_leadership(&e) => return Err(e),
                Err(e) => {
                    self.metrics.observed_write_failed();
                    tracing::warn!(error = %e, "cannot write observed nodes; retrying with the next round");
                    // Flush again on the next tick even if nothing changes.
                    self.dirty = true;
                    break;
                }
            }
        }
        self.metrics.set_nodes(self.counts());
        Ok(())
    }

    fn counts(&self) -> NodeCounts {
        let mut c = NodeCounts::default();
        for t in self.tracked.values() {
            match t.health.liveness() {
                Some(Liveness::Alive) => c.alive += 1,
                Some(Liveness::Suspect) => c.suspect += 1,
                Some(Liveness::Lost) => c.lost += 1,
                Some(Liveness::Unknown) | None => {}
            }
        }
        c
    }
}

fn liveness_name(l: Liveness) -> &'static str {
    match l {
        Liveness::Alive => "alive",
        Liveness::Suspect => "suspect",
        Liveness::Lost => "lost",
        Liveness::Unknown => "unknown",
    }
}

/// One ping of one engine, all within `timeout` (the version is asked for
/// only with the time the ping left).
async fn ping(
    node: String,
    generation: u64,
    engine: Result<Engine, DockerError>,
    want_version: bool,
    timeout: Duration,
) -> PingResult {
    let started = Instant::now();
    let engine = match engine {
        Ok(engine) => engine,
        Err(e) => {
            return PingResult {
                node,
                generation,
                outcome: PingOutcome::Missed {
                    error: e.to_string(),
                },
                engine: None,
            }
        }
    };
    let outcome = match engine.ping(timeout).await {
        Ok(()) => {
            let left = timeout.saturating_sub(started.elapsed());
            let version = if want_version && !left.is_zero() {
                engine.version(left).await.ok().flatten()
            } else {
                None
            };
            PingOutcome::Answered { version }
        }
        Err(e) => PingOutcome::Missed {
            error: e.to_string(),
        },
    };
    PingResult {
        node,
        generation,
        outcome,
        engine: Some(engine),
    }
}
