//! One proc's worker: plans, writes the plan, syncs the containers, and
//! waits for the next trigger. A proc has at most one worker, so its work
//! never runs twice at once, and triggers that arrive while it works
//! coalesce into one more round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use lain_store::{
    unix_millis, DesiredProc, Event, EventKey, Health, InstanceState, ObservedInstance,
    ObservedKey, RolloutKey, StoreError, Transaction,
};
use tokio::sync::Notify;

use super::plan::{self, Input, NodeView, Plan, PlannedEvent, Record};
use super::state::ProcId;
use super::sync::{self, Outcome, ProbeState};
use super::{CreateStatus, Ctx};
use crate::runtime::LainContainer;
use crate::scheduler::{self, PendingInstance, ProcRequest};

/// Rounds in a row without a pause before the worker yields for a moment.
const MAX_BURST: u32 = 50;
const ERROR_BACKOFF_MIN: Duration = Duration::from_millis(200);
const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a round asks for next.
enum Next {
    /// Something changed: plan again at once.
    Again,
    /// Settled for now: wait for a trigger or this long.
    Wait(Duration),
    /// Nothing is left of the proc.
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("etcd: {0}")]
    Store(#[from] StoreError),
}

/// Worker-local memory: probe state and what was last reported.
#[derive(Default)]
struct Local {
    probes: HashMap<String, ProbeState>,
    /// The last unschedulable or invalid-spec message, not to repeat it.
    last_problem: Option<String>,
}

/// Runs a proc's worker until nothing is left of the proc or the leader
/// stops (the task is aborted).
pub async fn run(ctx: Arc<Ctx>, id: ProcId, notify: Arc<Notify>) {
    let mut local = Local::default();
    let mut backoff = ERROR_BACKOFF_MIN;
    let mut burst = 0;
    loop {
        if ctx.is_closed() {
            return;
        }
        let started = Instant::now();
        let result = round(&ctx, &id, &mut local).await;
        ctx.metrics.reconciled(started.elapsed(), result.is_err());
        match result {
            Ok(Next::Again) => {
                backoff = ERROR_BACKOFF_MIN;
                burst += 1;
                if burst >= MAX_BURST {
                    burst = 0;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(Next::Wait(d)) => {
                backoff = ERROR_BACKOFF_MIN;
                burst = 0;
                tokio::select! {
                    () = notify.notified() => {}
                    () = tokio::time::sleep(d) => {}
                }
            }
            Ok(Next::Done) => {
                if ctx.retire_worker(&id) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(app = %id.0, proc = %id.1, error = %e, retry_in = ?backoff, "reconcile failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ERROR_BACKOFF_MAX);
            }
        }
    }
}

/// A snapshot of what the worker needs, taken under the state lock.
struct Snapshot {
    desired: Option<DesiredProc>,
    invalid: Option<String>,
    rollout: Option<lain_store::ProcRollout>,
    records: Vec<Record>,
    views: HashMap<String, NodeView>,
    actionable: HashMap<String, NodeAccessInfo>,
    routers_applied: Option<i64>,
    containers: Vec<(String, LainContainer)>,
    empty: bool,
}

#[derive(Clone)]
struct NodeAccessInfo {
    endpoint: lain_store::DockerEndpoint,
    address: String,
}

fn snapshot(ctx: &Ctx, id: &ProcId) -> Snapshot {
    let state = ctx.state();
    let records: Vec<Record> = state
        .records
        .get(id)
        .map(|rs| rs.values().cloned().collect())
        .unwrap_or_default();
    let containers = state.containers_of(id);
    let mut views = HashMap::new();
    let mut actionable = HashMap::new();
    // The homes remembered for instances with volumes too: a home whose
    // records are gone may be a node being emptied with its volumes.
    let homes: Vec<String> = state
        .rollouts
        .get(id)
        .map(|r| r.homes.values().cloned().collect())
        .unwrap_or_default();
    let nodes = records
        .iter()
        .map(|r| r.obs.node.clone())
        .chain(containers.iter().map(|(n, _)| n.clone()))
        .chain(homes);
    for n in nodes {
        views.insert(n.clone(), state.node_view(&n));
        if state.actionable(&n) {
            if let Some(reg) = state.nodes.get(&n) {
                actionable.insert(
                    n.clone(),
                    NodeAccessInfo {
                        endpoint: reg.docker.clone(),
                        address: reg.address.clone(),
                    },
                );
            }
        }
    }
    Snapshot {
        desired: state.desired.get(id).cloned(),
        invalid: state.invalid.get(id).cloned(),
        rollout: state.rollouts.get(id).cloned(),
        records,
        views,
        actionable,
        routers_applied: state.routers_applied(),
        containers,
        empty: state.is_empty(id),
    }
}

async fn round(ctx: &Arc<Ctx>, id: &ProcId, local: &mut Local) -> Result<Next, RoundError> {
    let snap = snapshot(ctx, id);
    if snap.empty {
        return Ok(Next::Done);
    }
    if let Some(problem) = &snap.invalid {
        // Bad input: leave the running instances alone and say why, once.
        if local.last_problem.as_deref() != Some(problem.as_str()) {
            local.last_problem = Some(problem.clone());
            ctx.event(
                &id.0,
                Some(&id.1),
                PlannedEvent {
                    kind: lain_store::EventKind::Other,
                    severity: lain_store::Severity::Error,
                    message: problem.clone(),
                    instance: None,
                },
                None,
            )
            .await;
        }
        return Ok(Next::Wait(Duration::from_secs(30)));
    }
    let target = plan::target(snap.desired.as_ref(), snap.rollout.as_ref());

    // 1. Adopt containers that run for no record (etcd lost it), remove
    // the ones nobody wants.
    if adopt_or_remove_orphans(ctx, id, &snap, target.as_ref()).await? {
        return Ok(Next::Again);
    }

    // 2. Plan which instances should exist.
    let node = |n: &str| snap.views.get(n).copied().unwrap_or(NodeView::Gone);
    let planned = plan::plan(&Input {
        desired: snap.desired.as_ref(),
        rollout: snap.rollout.as_ref(),
        records: &snap.records,
        node: &node,
        routers_applied: snap.routers_applied,
        now_ms: unix_millis(),
        leading_since_ms: ctx.leading_since_ms,
        policy: ctx.settings.policy,
    });
    if !planned.is_empty() {
        tracing::debug!(
            app = %id.0,
            proc = %id.1,
            puts = planned.puts.len(),
            deletes = planned.deletes.len(),
            place = planned.place.len(),
            rollout = ?planned.rollout.as_ref().map(|r| r.phase),
            "applying a plan"
        );
        for (slot, obs) in &planned.puts {
            log_change(
                id,
                slot,
                snap.records
                    .iter()
                    .find(|r| &r.slot == slot)
                    .map(|r| &r.obs),
                Some(obs),
            );
        }
        if apply(ctx, id, planned, local).await? {
            return Ok(Next::Again);
        }
        // Nothing could be written (instances that fit nowhere): keep the
        // others going, and look again in a while or when capacity changes.
        return match sync_records(ctx, id, &snap, target.as_ref(), local).await? {
            Next::Wait(d) => Ok(Next::Wait(d.min(UNPLACED_RETRY))),
            other => Ok(other),
        };
    }

    // 3. Make each node match its records.
    sync_records(ctx, id, &snap, target.as_ref(), local).await
}

/// How often a proc with instances that fit nowhere tries again (it is
/// also woken when nodes change).
const UNPLACED_RETRY: Duration = Duration::from_secs(5);

/// Writes a plan: placements (through the scheduler), record changes, the
/// rollout record and events.
async fn apply(
    ctx: &Arc<Ctx>,
    id: &ProcId,
    plan: Plan,
    local: &mut Local,
) -> Result<bool, RoundError> {
    // Placements are serialized across procs, from reading the free
    // capacity until the new records are in the state.
    let _placing = if plan.place.is_empty() {
        None
    } else {
        Some(ctx.placing.lock().await)
    };
    let now = unix_millis();
    let mut txn = Transaction::new();
    let mut written: Vec<(String, Option<ObservedInstance>)> = Vec::new();
    for (slot, obs) in &plan.puts {
        txn.put(&observed_key(id, slot)?, obs)?;
        written.push((slot.clone(), Some(obs.clone())));
    }
    for slot in &plan.deletes {
        txn.delete(&observed_key(id, slot)?);
        written.push((slot.clone(), None));
    }
    let mut events = plan.events.clone();
    if let (Some(target), false) = (plan.target.as_ref(), plan.place.is_empty()) {
        let (placed, unplaced) = place(ctx, id, &target.desired, &plan.place);
        for (req, node) in placed {
            let obs = match &req.moves {
                Some(prev) => {
                    events.push(PlannedEvent {
                        kind: lain_store::EventKind::Rescheduled,
                        severity: lain_store::Severity::Warning,
                        message: format!(
                            "instance {} moved from lost node {} to {node}",
                            req.instance, prev.node
                        ),
                        instance: Some(req.instance),
                    });
                    ObservedInstance {
                        node: node.clone(),
                        container_id: None,
                        state: InstanceState::Pending,
                        health: Health::Unknown,
                        address: None,
                        started_at_ms: None,
                        updated_at_ms: now,
                        message: Some(format!("moved from lost node {}", prev.node)),
                        ..prev.clone()
                    }
                }
                None => ObservedInstance {
                    node: node.clone(),
                    container_id: None,
                    generation: target.desired.generation,
                    release: target.desired.release.clone(),
                    image: target.desired.image.clone(),
                    state: InstanceState::Pending,
                    health: Health::Unknown,
                    address: None,
                    restarts: 0,
                    started_at_ms: None,
                    updated_at_ms: now,
                    message: None,
                    instance: req.instance,
                    spec: target.spec.clone(),
                    recent_restarts_ms: Vec::new(),
                    volumes_from: None,
                },
            };
            let mut obs = obs;
            if let Some(from) = req.volumes_from.as_ref().filter(|from| **from != node) {
                events.push(PlannedEvent {
                    kind: lain_store::EventKind::Rescheduled,
                    severity: lain_store::Severity::Info,
                    message: format!(
                        "instance {} moves from draining node {from} to {node}, its volumes copied first",
                        req.instance
                    ),
                    instance: Some(req.instance),
                });
                obs.volumes_from = Some(from.clone());
                obs.message = Some(format!("copying its volumes from node {from}"));
            }
            txn.put(&observed_key(id, &req.slot)?, &obs)?;
            written.push((req.slot.clone(), Some(obs)));
        }
        if unplaced.is_some() {
            crate::reconcile::lock_set(&ctx.unplaced).insert(id.clone());
        } else {
            crate::reconcile::lock_set(&ctx.unplaced).remove(id);
        }
        if let Some(why) = unplaced {
            if local.last_problem.as_deref() != Some(why.as_str()) {
                local.last_problem = Some(why.clone());
                events.push(PlannedEvent {
                    kind: lain_store::EventKind::Unschedulable,
                    severity: lain_store::Severity::Warning,
                    message: why,
                    instance: None,
                });
            }
        } else {
            local.last_problem = None;
        }
    }
    let rollout_key = RolloutKey::new(&id.0, &id.1).map_err(StoreError::from)?;
    if let Some(r) = &plan.rollout {
        txn.put(&rollout_key, r)?;
    }
    if plan.forget_rollout {
        txn.delete(&rollout_key);
    }
    let wrote = !txn.is_empty();
    let rev = if txn.is_empty() {
        None
    } else {
        Some(ctx.writer.commit(txn).await?)
    };
    {
        let mut state = ctx.state();
        if let Some(rev) = rev {
            remember_written(ctx, &mut state, id, written, rev);
        }
        if let Some(r) = plan.rollout {
            state.rollouts.insert(id.clone(), r);
        }
        if plan.forget_rollout {
            state.rollouts.remove(id);
        }
    }
    let generation = plan.target.as_ref().map(|t| t.desired.generation);
    for e in events {
        ctx.event(&id.0, Some(&id.1), e, generation).await;
    }
    Ok(wrote)
}

/// Records committed at `rev` (`None`: deleted) into the leader's state.
/// Records what a round wrote; a service's records wake the portals
/// that carry its backends.
fn remember_written(
    ctx: &Ctx,
    state: &mut super::state::State,
    id: &ProcId,
    written: Vec<(String, Option<ObservedInstance>)>,
    rev: i64,
) {
    if state.feeds_portals(id) {
        ctx.portals.notify_one();
    }
    let records = state.records.entry(id.clone()).or_default();
    for (slot, obs) in written {
        match obs {
            Some(obs) => {
                records.insert(slot.clone(), Record { slot, obs, rev });
            }
            None => {
                records.remove(&slot);
            }
        }
    }
    if records.is_empty() {
        state.records.remove(id);
    }
}

fn observed_key(id: &ProcId, slot: &str) -> Result<ObservedKey, StoreError> {
    ObservedKey::new(&id.0, &id.1, slot).map_err(StoreError::from)
}

/// Runs the scheduler for a proc's pending instances against every node's
/// usage. Returns the placements and, if some did not fit, why.
fn place(
    ctx: &Ctx,
    id: &ProcId,
    d: &DesiredProc,
    requests: &[plan::PlaceRequest],
) -> (Vec<(plan::PlaceRequest, String)>, Option<String>) {
    let state = ctx.state();
    let nodes = state.scheduler_nodes();
    // Placed instances count for spread only; give them numbers that
    // cannot clash with the pending ones (old and new versions of an
    // instance number coexist during a rollout).
    let placed = state
        .placed_of(id)
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.instance = u32::MAX - i as u32;
            p
        })
        .collect();
    drop(state);
    let pending = requests
        .iter()
        .map(|r| match &r.home {
            Some(h) => PendingInstance::with_home(r.instance, h.clone()),
            None => PendingInstance::new(r.instance),
        })
        .collect();
    let request = ProcRequest::from_desired(d, placed, pending);
    let schedule = match scheduler::schedule(&nodes, std::slice::from_ref(&request)) {
        Ok(s) => s,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("cannot schedule {}/{}: {e}", id.0, id.1)),
            )
        }
    };
    let mut out = Vec::new();
    for p in &schedule.placements {
        if let (Some(req), Some(node)) = (
            requests.iter().find(|r| r.instance == p.instance),
            nodes.get(p.node),
        ) {
            out.push((req.clone(), node.name.clone()));
        }
    }
    let why = schedule.unplaced.first().map(|u| {
        format!(
            "{} instance{} of {}/{} cannot be placed: {}",
            schedule.unplaced.len(),
            if schedule.unplaced.len() == 1 {
                ""
            } else {
                "s"
            },
            id.0,
            id.1,
            u.reason
        )
    });
    (out, why)
}

/// Containers on reachable nodes that no record accounts for: adopted
/// when they run the target spec for an instance that has no record,
/// removed otherwise. True if anything changed.
async fn adopt_or_remove_orphans(
    ctx: &Arc<Ctx>,
    id: &ProcId,
    snap: &Snapshot,
    target: Option<&plan::Target>,
) -> Result<bool, RoundError> {
    let mut changed = false;
    let mut adopted: Vec<u32> = Vec::new();
    for (node, c) in &snap.containers {
        let Some(info) = snap.actionable.get(node) else {
            continue;
        };
        let owner = snap
            .records
            .iter()
            .find(|r| r.obs.node == *node && r.slot == c.slot);
        let ours =
            owner.is_some_and(|r| r.obs.container_id.as_deref().is_none_or(|cid| cid == c.id));
        if ours {
            continue;
        }
        let wanted = owner.is_none()
            && c.state == crate::runtime::ContainerState::Running
            && target.is_some_and(|t| {
                t.spec == c.spec_hash && c.instance >= 1 && c.instance <= t.desired.instances
            })
            && !snap.records.iter().any(|r| r.obs.instance == c.instance)
            && !adopted.contains(&c.instance);
        if let (true, Some(t)) = (wanted, target) {
            adopted.push(c.instance);
            let obs = ObservedInstance {
                node: node.clone(),
                container_id: Some(c.id.clone()),
                generation: c.generation,
                release: t.desired.release.clone(),
                image: t.desired.image.clone(),
                state: InstanceState::Starting,
                health: Health::Starting,
                address: None,
                restarts: 0,
                started_at_ms: c.started_at_ms,
                updated_at_ms: unix_millis(),
                message: Some("adopted a running container".into()),
                instance: c.instance,
                spec: c.spec_hash.clone(),
                recent_restarts_ms: Vec::new(),
                volumes_from: None,
            };
            let rev = ctx.writer.put(&observed_key(id, &c.slot)?, &obs).await?;
            ctx.state().records.entry(id.clone()).or_default().insert(
                c.slot.clone(),
                Record {
                    slot: c.slot.clone(),
                    obs,
                    rev,
                },
            );
            tracing::info!(app = %id.0, proc = %id.1, slot = %c.slot, node = %node, "adopted container");
            changed = true;
            continue;
        }
        let access = match ctx.access(node, &info.endpoint, &info.address) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cannot set up a client to remove a stale container; check the node's docker endpoint and TLS files in its registration");
                continue;
            }
        };
        if !ctx.is_stopping(&c.id) {
            tracing::info!(app = %id.0, proc = %id.1, slot = %c.slot, node = %node, container = %c.id, "removing a container no instance owns");
            ctx.stop_in_background(id, node, access, &c.id, Duration::from_secs(2));
        }
    }
    Ok(changed)
}

/// Syncs every record of the proc concurrently and writes what changed.
async fn sync_records(
    ctx: &Arc<Ctx>,
    id: &ProcId,
    snap: &Snapshot,
    target_spec: Option<&plan::Target>,
    local: &mut Local,
) -> Result<Next, RoundError> {
    let target = target_spec.map(|t| &t.desired);
    let by_slot: BTreeMap<(&str, &str), &LainContainer> = snap
        .containers
        .iter()
        .map(|(n, c)| ((n.as_str(), c.slot.as_str()), c))
        .collect();
    let mut probes: Vec<ProbeState> = snap
        .records
        .iter()
        .map(|r| local.probes.remove(&r.slot).unwrap_or_default())
        .collect();
    let futures = snap
        .records
        .iter()
        .zip(probes.iter_mut())
        .map(|(r, probe)| {
            let found = by_slot
                .get(&(r.obs.node.as_str(), r.slot.as_str()))
                .copied();
            let view = snap
                .views
                .get(&r.obs.node)
                .copied()
                .unwrap_or(NodeView::Gone);
            let info = snap.actionable.get(&r.obs.node).cloned();
            sync_one(ctx, id, r, found, view, info, target_spec, probe)
        });
    let outcomes: Vec<Outcome> = join_all(futures).await;
    for (r, probe) in snap.records.iter().zip(probes) {
        local.probes.insert(r.slot.clone(), probe);
    }
    local
        .probes
        .retain(|slot, _| snap.records.iter().any(|r| &r.slot == slot));
    let live: Vec<&str> = snap.records.iter().map(|r| r.slot.as_str()).collect();
    ctx.forget_creates(id, &live);

    let mut txn = Transaction::new();
    let mut written: Vec<(String, Option<ObservedInstance>)> = Vec::new();
    let mut wait = Duration::from_secs(5);
    let mut events = Vec::new();
    for (r, out) in snap.records.iter().zip(outcomes) {
        if let Some(d) = out.again_in {
            wait = wait.min(d);
        }
        match out.container {
            Some(Ok(c)) => ctx.remember_container(&r.obs.node, c),
            Some(Err(gone)) => ctx.forget_container(&r.obs.node, &gone),
            None => {}
        }
        if out.delete {
            log_change(id, &r.slot, Some(&r.obs), None);
            txn.delete(&observed_key(id, &r.slot)?);
            written.push((r.slot.clone(), None));
        } else if let Some(obs) = out.put {
            log_change(id, &r.slot, Some(&r.obs), Some(&obs));
            txn.put(&observed_key(id, &r.slot)?, &obs)?;
            written.push((r.slot.clone(), Some(obs)));
        }
        if let Some(e) = out.event {
            events.push(e);
        }
    }
    if txn.is_empty() {
        let settling = snap.records.iter().any(|r| {
            !matches!(
                r.obs.state,
                InstanceState::Running | InstanceState::Failed | InstanceState::Lost
            )
        });
        if settling {
            wait = wait.min(Duration::from_millis(500));
        }
        return Ok(Next::Wait(wait));
    }
    let moved = written.iter().any(|(slot, obs)| {
        let before = snap
            .records
            .iter()
            .find(|r| &r.slot == slot)
            .map(|r| (r.obs.state, r.obs.health));
        before != obs.as_ref().map(|o| (o.state, o.health))
    });
    let rev = ctx.writer.commit(txn).await?;
    remember_written(ctx, &mut ctx.state(), id, written, rev);
    let generation = target.map(|d| d.generation);
    for e in events {
        ctx.event(&id.0, Some(&id.1), e, generation).await;
    }
    // Only a change of state can change the plan; a message update waits
    // for its own retry time.
    Ok(if moved { Next::Again } else { Next::Wait(wait) })
}

#[allow(clippy::too_many_arguments)]
async fn sync_one(
    ctx: &Arc<Ctx>,
    id: &ProcId,
    r: &Record,
    found: Option<&LainContainer>,
    view: NodeView,
    info: Option<NodeAccessInfo>,
    target: Option<&plan::Target>,
    probe: &mut ProbeState,
) -> Outcome {
    // The spec hash was computed once per round, with the target.
    let current_spec = target.is_some_and(|t| t.spec == r.obs.spec);
    let target = target.map(|t| &t.desired);
    let mut out = Outcome::default();
    // The container the record names, if it is the one found.
    let found = found.filter(|c| r.obs.container_id.as_deref().is_none_or(|id| id == c.id));
    if r.obs.state == InstanceState::Stopping && matches!(view, NodeView::Lost | NodeView::Gone) {
        // Its node is gone; the container, if the node returns, is an orphan.
        out.delete = true;
        return out;
    }
    let Some(info) = info else {
        // Not reachable or not listed yet: wait.
        out.again_in = Some(Duration::from_secs(1));
        return out;
    };
    let node = match ctx.access(&r.obs.node, &info.endpoint, &info.address) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(node = %r.obs.node, error = %e, "cannot set up a client for the node; check the docker endpoint and TLS files in its registration (`lain node add`)");
            out.again_in = Some(Duration::from_secs(2));
            return out;
        }
    };
    let kill_timeout = Duration::from_secs(u64::from(target.map_or(10, |d| d.kill_timeout_secs)));
    match r.obs.state {
        InstanceState::Stopping => {
            let container = found
                .map(|c| c.id.clone())
                .or_else(|| r.obs.container_id.clone());
            match container {
                Some(cid) if ctx.is_stopping(&cid) => {
                    out.again_in = Some(Duration::from_millis(500));
                }
                Some(cid) if found.is_some() => {
                    ctx.stop_in_background(id, &r.obs.node, node, &cid, kill_timeout);
                    out.again_in = Some(Duration::from_millis(500));
                }
                Some(cid) => {
                    // Not in the inventory: ask the engine whether it is gone.
                    match node.engine.inspect(&cid).await {
                        Ok(None) => out.delete = true,
                        Ok(Some(c)) => {
                            out.container = Some(Ok(c));
                            out.again_in = Some(Duration::from_millis(50));
                        }
                        Err(e) => {
                            tracing::debug!(container = %cid, error = %e, "cannot inspect a container");
                            out.again_in = Some(Duration::from_secs(1));
                        }
                    }
                }
                None => out.delete = true,
            }
            out
        }
        InstanceState::Pending | InstanceState::Creating => {
            // Only the target spec is ever created; a pending record of
            // another spec is retired by the planner.
            let Some(d) = target.filter(|_| current_spec) else {
                out.again_in = Some(Duration::from_secs(1));
                return out;
            };
            // In the background, so that a long pull holds up nothing else
            // of the proc (probes, restarts, reacting to a lost node).
            match ctx.create_status(id, &r.slot) {
                CreateStatus::Running => {
                    out.again_in = Some(Duration::from_millis(300));
                    out
                }
                // Made for this record as it still is: apply it.
                CreateStatus::Done(on, outcome) if on == r.obs.node => *outcome,
                // Stale (the record moved meanwhile): whatever it made is
                // an orphan now; start afresh.
                CreateStatus::Done(..) | CreateStatus::Idle => {
                    ctx.create_in_background(id, node, r.clone(), found.cloned(), d.clone());
                    out.again_in = Some(Duration::from_millis(300));
                    out
                }
            }
        }
        InstanceState::Failed => out,
        _ => {
            let c = match found {
                Some(c) => c.clone(),
                None => {
                    // Not in the inventory: ask the engine before deciding
                    // that it is gone.
                    let looked = match &r.obs.container_id {
                        Some(cid) => node.engine.inspect(cid).await,
                        None => Ok(None),
                    };
                    match looked {
                        Ok(Some(c)) => {
                            out.container = Some(Ok(c));
                            out.again_in = Some(Duration::from_millis(50));
                            return out;
                        }
                        Ok(None) => {
                            let mut next = r.obs.clone();
                            next.state = if r.obs.state == InstanceState::Draining {
                                InstanceState::Stopping
                            } else {
                                InstanceState::Pending
                            };
                            next.health = Health::Unknown;
                            next.container_id = None;
                            next.address = None;
                            next.updated_at_ms = unix_millis();
                            next.message =
                                Some("its container disappeared; creating it again".into());
                            out.put = Some(next);
                            return out;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot inspect a container");
                            out.again_in = Some(Duration::from_secs(1));
                            return out;
                        }
                    }
                }
            };
            sync::keep_running(ctx, &node, r, &c, target, probe).await
        }
    }
}

/// One line per instance state change, for operators following a
/// rollout in the log.
fn log_change(
    id: &ProcId,
    slot: &str,
    before: Option<&ObservedInstance>,
    after: Option<&ObservedInstance>,
) {
    let state = |o: Option<&ObservedInstance>| o.map(|o| format!("{:?}/{:?}", o.state, o.health));
    let (b, a) = (state(before), state(after));
    if b == a {
        return;
    }
    tracing::info!(
        app = %id.0,
        proc = %id.1,
        instance = %slot,
        node = after.or(before).map(|o| o.node.as_str()).unwrap_or(""),
        from = b.as_deref().unwrap_or("none"),
        to = a.as_deref().unwrap_or("gone"),
        message = after.and_then(|o| o.message.as_deref()).unwrap_or(""),
        "instance changed"
    );
}

/// An event on the app, attached to the events lease.
pub fn event_value(
    app: &str,
    proc: Option<&str>,
    e: &PlannedEvent,
    generation: Option<u64>,
) -> (Result<EventKey, lain_store::KeyError>, Event) {
    (
        EventKey::generate(app),
        Event {
            app: app.to_owned(),
            proc: proc.map(str::to_owned),
            instance: e.instance.map(|n| n.to_string()),
            kind: e.kind,
            severity: e.severity,
            message: e.message.clone(),
            generation,
            at_ms: unix_millis(),
        },
    )
}
