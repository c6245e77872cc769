//! The rollout planner: a pure function from one proc's desired state, its
//! rollout record and its observed instance records to the record changes
//! that move it one step closer to the desired state.
//!
//! It decides *which instances should exist*: what to place (scale up,
//! replacements during a rollout, rescheduling off a lost node), what to
//! drain and stop (scale down, old versions, duplicates), when a rollout
//! has converged, failed or must roll back. Making Docker match the
//! records (create, start, restart, probe, stop) is [`super::sync`]'s job.
//!
//! Level-triggered: the plan depends only on its input, never on what was
//! planned before, so running it again after a crash or on a new leader
//! picks up where the last one stopped.

use std::collections::BTreeMap;

use lain_store::{
    DesiredProc, EventKind, Health, InstanceState, ObservedInstance, ProcRollout, ProcType,
    RolloutPhase, Severity,
};

use super::spec::{slot, spec_hash};

/// An observed instance record with the etcd revision it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The key's last segment, `{instance}-{generation}`.
    pub slot: String,
    pub obs: ObservedInstance,
    /// The record's mod revision: routers that applied this revision have
    /// seen its state.
    pub rev: i64,
}

impl Record {
    /// Healthy and routable.
    pub fn ready(&self) -> bool {
        self.obs.state == InstanceState::Running && self.obs.health == Health::Healthy
    }
}

/// A node as the planner needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeView {
    /// Answering pings: its containers can be acted on.
    Alive,
    /// Alive, but its registration says to move instances away: they are
    /// replaced elsewhere like an old version (pinned ones stay).
    Draining,
    /// Draining with volumes: every instance moves, those with volumes
    /// with their data.
    Evacuating,
    /// Suspect or not yet observed: wait, act on nothing there.
    Doubtful,
    /// Declared lost: its instances are rescheduled (stateful ones wait).
    Lost,
    /// No longer registered: like lost.
    Gone,
}

impl NodeView {
    /// Answering, with or without a drain: its containers can be acted on.
    pub fn is_up(self) -> bool {
        matches!(
            self,
            NodeView::Alive | NodeView::Draining | NodeView::Evacuating
        )
    }
}

/// Tunables of rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long after `setup_time` a new instance may take to become
    /// healthy before its rollout fails.
    pub health_timeout_ms: u64,
    /// Replacement instances started at once during a rollout.
    pub max_surge: usize,
    /// How long a drained instance waits for routers that do not confirm
    /// (a router stuck on a rejected config) before it is stopped anyway.
    pub drain_timeout_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            health_timeout_ms: 60_000,
            max_surge: 1,
            drain_timeout_ms: 30_000,
        }
    }
}

/// Everything the planner looks at for one proc.
pub struct Input<'a> {
    pub desired: Option<&'a DesiredProc>,
    pub rollout: Option<&'a ProcRollout>,
    pub records: &'a [Record],
    pub node: &'a dyn Fn(&str) -> NodeView,
    /// The lowest revision applied by the live routers; `None` if no
    /// router runs (nothing to wait for).
    pub routers_applied: Option<i64>,
    pub now_ms: u64,
    /// When this leader started acting: time before it (a dead leader, an
    /// election) does not count against a new instance's deadline.
    pub leading_since_ms: u64,
    pub policy: Policy,
}

/// What the proc should run: the desired proc, or after a failed rollout
/// the last good one at the desired scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub desired: DesiredProc,
    pub spec: String,
    /// True while a failed spec is held back and the last good one runs.
    pub rolled_back: bool,
}

/// An instance that needs a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceRequest {
    pub instance: u32,
    /// The key segment to write: a fresh one, or that of the lost
    /// instance being moved.
    pub slot: String,
    /// Stateful: the node holding its volumes.
    pub home: Option<String>,
    /// Set when an instance moves off a lost node: its record is kept and
    /// rewritten (restarts and history carry over).
    pub moves: Option<ObservedInstance>,
    /// The node whose copy of the instance's volumes its new node gets
    /// first (a drain with volumes).
    pub volumes_from: Option<String>,
}

/// An event to record on the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub kind: EventKind,
    pub severity: Severity,
    pub message: String,
    pub instance: Option<u32>,
}

/// The changes one planning step asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub target: Option<Target>,
    /// Records to write (new states).
    pub puts: Vec<(String, ObservedInstance)>,
    /// Records to delete.
    pub deletes: Vec<String>,
    pub place: Vec<PlaceRequest>,
    /// A new rollout record to write.
    pub rollout: Option<ProcRollout>,
    /// Delete the rollout record (the proc is gone and so are its instances).
    pub forget_rollout: bool,
    pub events: Vec<PlannedEvent>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.deletes.is_empty()
            && self.place.is_empty()
            && self.rollout.is_none()
            && !self.forget_rollout
            && self.events.is_empty()
    }
}

/// The target of a proc: the desired proc, unless its spec already failed
/// at this generation and there is a different last good spec.
pub fn target(desired: Option<&DesiredProc>, rollout: Option<&ProcRollout>) -> Option<Target> {
    let d = desired?;
    let spec = spec_hash(d);
    if let Some(r) = rollout {
        if r.failed_spec.as_deref() == Some(spec.as_str()) && r.generation == d.generation {
            if let Some(good) = &r.last_good {
                let good_spec = spec_hash(good);
                if good_spec != spec {
                    let mut t = good.clone();
                    // The scale and routing of today, the containers of then.
                    t.instances = d.instances;
                    t.generation = d.generation;
                    t.mountpoints = d.mountpoints.clone();
                    t.https_only = d.https_only;
                    return Some(Target {
                        desired: t,
                        spec: good_spec,
                        rolled_back: true,
                    });
                }
            }
        }
    }
    Some(Target {
        desired: d.clone(),
        spec,
        rolled_back: false,
    })
}

/// Whether webrouter routes the proc, so that changes wait for routers.
fn routed(d: Option<&DesiredProc>) -> bool {
    d.is_some_and(|d| d.proc_type == ProcType::Web && !d.mountpoints.is_empty())
}

/// One planning step for one proc.
pub fn plan(input: &Input<'_>) -> Plan {
    let mut plan = Plan {
        target: target(input.desired, input.rollout),
        ..Plan::default()
    };
    let t = plan.target.clone();
    let want = t.as_ref().map_or(0, |t| t.desired.instances);
    let spec = t.as_ref().map(|t| t.spec.as_str());
    let stateful = t.as_ref().is_some_and(|t| t.desired.stateful);
    // A plain drain leaves pinned instances (`--with-volumes` moves the
    // data). Only `stateful` ones also wait for a lost node instead of
    // starting afresh elsewhere.
    let pinned = t.as_ref().is_some_and(|t| super::spec::pinned(&t.desired));
    let routed = routed(input.desired);
    let seen = |r: &Record| !routed || input.routers_applied.is_none_or(|a| a >= r.rev);
    let now = input.now_ms;

    // Records being stopped are sync's business; the rest are active.
    let active: Vec<&Record> = input
        .records
        .iter()
        .filter(|r| r.obs.state != InstanceState::Stopping)
        .collect();

    // Lost nodes first: move, park or forget their instances.
    let mut on_live_nodes = Vec::new();
    let mut moving: BTreeMap<u32, ()> = BTreeMap::new();
    for r in active {
        match (input.node)(&r.obs.node) {
            NodeView::Alive | NodeView::Doubtful | NodeView::Draining | NodeView::Evacuating => {
                on_live_nodes.push(r)
            }
            NodeView::Lost | NodeView::Gone => {
                let current = spec == Some(r.obs.spec.as_str());
                let wanted = current && r.obs.instance >= 1 && r.obs.instance <= want;
                if wanted && stateful {
                    if r.obs.state != InstanceState::Lost {
                        let mut obs = r.obs.clone();
                        obs.state = InstanceState::Lost;
                        obs.health = Health::Unknown;
                        obs.updated_at_ms = now;
                        obs.message = Some(format!(
                            "node {} is lost; a stateful instance waits for the node that holds its volumes (bring it back, or scale down and up to start afresh elsewhere)",
                            r.obs.node
                        ));
                        plan.puts.push((r.slot.clone(), obs));
                    }
                    // A parked stateful instance still holds its number.
                    moving.insert(r.obs.instance, ());
                } else if wanted && !moving.contains_key(&r.obs.instance) {
                    moving.insert(r.obs.instance, ());
                    plan.place.push(PlaceRequest {
                        instance: r.obs.instance,
                        slot: r.slot.clone(),
                        home: None,
                        moves: Some(r.obs.clone()),
                        volumes_from: None,
                    });
                } else {
                    // Replaced by the rollout (or unwanted): its container,
                    // if the node returns, is removed as an orphan.
                    plan.deletes.push(r.slot.clone());
                }
            }
        }
    }

    // The rest, by version and number.
    let mut current: BTreeMap<u32, Vec<&Record>> = BTreeMap::new();
    let mut old: Vec<&Record> = Vec::new();
    for r in &on_live_nodes {
        let evacuate = match (input.node)(&r.obs.node) {
            NodeView::Draining => !pinned,
            NodeView::Evacuating => true,
            _ => false,
        };
        if spec == Some(r.obs.spec.as_str()) && r.obs.instance >= 1 && !evacuate {
            current.entry(r.obs.instance).or_default().push(r);
        } else {
            old.push(r);
        }
    }

    let mut retire: Vec<&Record> = Vec::new();
    let mut keep: BTreeMap<u32, &Record> = BTreeMap::new();
    for (n, mut rs) in current {
        // Best first: ready, then running, then the lowest slot.
        rs.sort_by_key(|r| {
            (
                !r.ready(),
                r.obs.state != InstanceState::Running,
                r.slot.clone(),
            )
        });
        let mut rs = rs.into_iter();
        if let Some(best) = rs.next() {
            if n <= want {
                keep.insert(n, best);
            } else {
                retire.push(best);
            }
        }
        retire.extend(rs);
    }

    let mut old_by_n: BTreeMap<u32, Vec<&Record>> = BTreeMap::new();
    for r in old {
        old_by_n.entry(r.obs.instance).or_default().push(r);
    }

    // Replacements in flight: current instances not ready yet that stand
    // in for an old one.
    let mut surging = keep
        .iter()
        .filter(|(n, r)| !r.ready() && old_by_n.contains_key(n))
        .count();

    if let Some(t) = &t {
        // A crash-looped instance gets a fresh start on a new deploy.
        for r in keep.values() {
            if r.obs.state == InstanceState::Failed && t.desired.generation > r.obs.generation {
                let mut obs = r.obs.clone();
                obs.state = InstanceState::Pending;
                obs.health = Health::Unknown;
                obs.generation = t.desired.generation;
                obs.recent_restarts_ms.clear();
                obs.updated_at_ms = now;
                obs.message = Some("restarting after a new deploy".into());
                plan.puts.push((r.slot.clone(), obs));
            }
        }
        let taken: std::collections::HashSet<&str> =
            input.records.iter().map(|r| r.slot.as_str()).collect();
        // Once per round, not per instance.
        let (homes, recorded): (BTreeMap<u32, String>, std::collections::HashSet<u32>) = if pinned {
            (
                homes(input),
                input.records.iter().map(|r| r.obs.instance).collect(),
            )
        } else {
            Default::default()
        };
        for n in 1..=want {
            if keep.contains_key(&n) || moving.contains_key(&n) {
                continue;
            }
            let olds = old_by_n.get(&n).map(Vec::as_slice).unwrap_or(&[]);
            if pinned {
                // Stop first: two versions must not share the volumes. The
                // successor waits until no record of `n` is left, and goes
                // to the node that holds them.
                if !olds.is_empty() {
                    retire.extend(olds.iter().copied());
                    continue;
                }
                if recorded.contains(&n) {
                    continue;
                }
            }
            let mut home = homes.get(&n).cloned();
            let mut volumes_from = None;
            match home.as_deref().map(|h| (input.node)(h)) {
                // Its volumes' node is being emptied: anywhere else, data
                // copied first.
                Some(NodeView::Evacuating) => volumes_from = home.take(),
                // Not stateful, and its volumes' node is gone: afresh
                // elsewhere, as when the node was lost under it.
                Some(NodeView::Lost | NodeView::Gone) if !stateful => home = None,
                _ => {}
            }
            if !olds.is_empty() {
                if surging >= input.policy.max_surge {
                    continue;
                }
                surging += 1;
            }
            plan.place.push(PlaceRequest {
                instance: n,
                slot: fresh_slot(n, t.desired.generation, &taken),
                home,
                moves: None,
                volumes_from,
            });
        }
    }

    // Old versions go once their replacement is ready and routed; one
    // being drained whose replacement fell over serves again.
    for (n, olds) in &old_by_n {
        // A router that never confirms (stuck on a rejected config) holds
        // a rollout up for the drain timeout at most.
        let replaced = keep.get(n).is_some_and(|r| {
            r.ready() && (seen(r) || now > r.obs.updated_at_ms + input.policy.drain_timeout_ms)
        });
        if *n > want || *n == 0 || replaced || t.is_none() || (pinned && t.is_some()) {
            retire.extend(olds.iter().copied());
        } else if !keep.get(n).is_some_and(|r| r.ready()) {
            for r in olds
                .iter()
                .filter(|r| r.obs.state == InstanceState::Draining)
            {
                let mut obs = r.obs.clone();
                obs.state = InstanceState::Running;
                obs.updated_at_ms = now;
                obs.message = Some("serving again: its replacement is not healthy".into());
                plan.puts.push((r.slot.clone(), obs));
            }
        }
    }

    retire.sort_by(|a, b| {
        b.obs
            .instance
            .cmp(&a.obs.instance)
            .then(a.slot.cmp(&b.slot))
    });
    retire.dedup_by(|a, b| a.slot == b.slot);
    for r in retire {
        let serving = r.ready() && routed;
        let drain_expired = now > r.obs.updated_at_ms + input.policy.drain_timeout_ms;
        let next = match r.obs.state {
            InstanceState::Draining if seen(r) => Some(InstanceState::Stopping),
            InstanceState::Draining if drain_expired => {
                plan.events.push(PlannedEvent {
                    kind: EventKind::Other,
                    severity: Severity::Warning,
                    message: format!(
                        "instance {} was stopped although not every router confirmed it stopped routing to it within {} s; check the routers' status (lain cluster status) for a rejected configuration",
                        r.obs.instance,
                        input.policy.drain_timeout_ms / 1000
                    ),
                    instance: Some(r.obs.instance),
                });
                Some(InstanceState::Stopping)
            }
            InstanceState::Draining => None,
            _ if serving => Some(InstanceState::Draining),
            _ => Some(InstanceState::Stopping),
        };
        if let Some(state) = next {
            let mut obs = r.obs.clone();
            obs.state = state;
            obs.updated_at_ms = now;
            obs.message = Some(
                match state {
                    InstanceState::Draining => {
                        "draining: waiting for routers to stop sending traffic"
                    }
                    _ => "stopping",
                }
                .into(),
            );
            plan.puts.push((r.slot.clone(), obs));
        }
    }

    rollout_status(input, &mut plan, &keep, &old_by_n);
    if pinned {
        remember_homes(input, &mut plan, want);
    }
    plan
}

/// Keeps the rollout's record of where stateful instances live current.
fn remember_homes(input: &Input<'_>, plan: &mut Plan, want: u32) {
    let mut homes = homes(input);
    homes.retain(|n, _| *n >= 1 && *n <= want);
    let current = plan.rollout.as_ref().or(input.rollout).map(|r| &r.homes);
    if current == Some(&homes) {
        return;
    }
    let (Some(d), Some(t)) = (input.desired, plan.target.as_ref()) else {
        return;
    };
    let mut r = plan
        .rollout
        .clone()
        .or_else(|| input.rollout.cloned())
        .unwrap_or(ProcRollout {
            generation: d.generation,
            spec: t.spec.clone(),
            phase: RolloutPhase::Progressing,
            last_good: None,
            failed_spec: None,
            message: None,
            updated_at_ms: input.now_ms,
            homes: BTreeMap::new(),
        });
    r.homes = homes;
    plan.rollout = Some(r);
}

/// A slot for instance `n` at `generation` that no record uses.
fn fresh_slot(n: u32, generation: u64, taken: &std::collections::HashSet<&str>) -> String {
    let base = slot(n, generation);
    if !taken.contains(base.as_str()) {
        return base;
    }
    (1..)
        .map(|i| format!("{base}.{i}"))
        .find(|s| !taken.contains(s.as_str()))
        .unwrap_or(base)
}

/// Where each pinned instance keeps its volumes: the node of its records
/// (any state), else the one remembered in the rollout. A record whose
/// volumes are still to be copied from another node (`volumes_from`) has
/// its data there, so that its successor copies them too if it is
/// replaced before the copy.
fn homes(input: &Input<'_>) -> BTreeMap<u32, String> {
    let mut homes = input.rollout.map(|r| r.homes.clone()).unwrap_or_default();
    for r in input.records {
        if r.obs.instance >= 1 {
            let home = r.obs.volumes_from.as_ref().unwrap_or(&r.obs.node);
            homes.insert(r.obs.instance, home.clone());
        }
    }
    homes
}

/// Converged, progressing, failed or rolled back: the rollout record and
/// its events.
fn rollout_status(
    input: &Input<'_>,
    plan: &mut Plan,
    keep: &BTreeMap<u32, &Record>,
    old_by_n: &BTreeMap<u32, Vec<&Record>>,
) {
    let now = input.now_ms;
    let Some(t) = plan.target.clone() else {
        if input.records.is_empty() && input.rollout.is_some() {
            plan.forget_rollout = true;
        }
        return;
    };
    let Some(d) = input.desired else { return };
    let prev = input.rollout;
    let desired_spec = spec_hash(d);

    let same = |r: &ProcRollout| r.generation == d.generation && r.spec == t.spec;
    // Failure: a new instance that never became healthy in time. Once a
    // rollout converged, a crash is the restart policy's business.
    let in_rollout = prev.is_none_or(|r| !(same(r) && r.phase == RolloutPhase::Converged));
    if !t.rolled_back && in_rollout {
        let failing = keep.values().find(|r| {
            // Only instances made for this generation can fail it; a
            // crash-looped one of an older generation is restarted by it.
            if r.obs.generation < d.generation {
                return false;
            }
            let never_ready = matches!(
                r.obs.state,
                InstanceState::Pending
                    | InstanceState::Creating
                    | InstanceState::Starting
                    | InstanceState::Exited
            ) || (r.obs.state == InstanceState::Running
                && r.obs.health != Health::Healthy);
            let since = r
                .obs
                .started_at_ms
                .unwrap_or(r.obs.updated_at_ms)
                .max(input.leading_since_ms);
            let deadline = since
                + u64::from(t.desired.setup_time_secs) * 1000
                + input.policy.health_timeout_ms;
            r.obs.state == InstanceState::Failed || (never_ready && now > deadline)
        });
        if let Some(bad) = failing {
            let why = if bad.obs.state == InstanceState::Failed {
                format!(
                    "instance {} keeps crashing{}",
                    bad.obs.instance,
                    bad.obs
                        .message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            } else {
                format!(
                    "instance {} did not become healthy within {} s{}",
                    bad.obs.instance,
                    (u64::from(t.desired.setup_time_secs) * 1000 + input.policy.health_timeout_ms)
                        / 1000,
                    bad.obs
                        .message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            };
            let good = prev
                .and_then(|r| r.last_good.as_ref())
                .filter(|g| spec_hash(g) != t.spec);
            if let Some(good) = good {
                plan.rollout = Some(ProcRollout {
                    generation: d.generation,
                    spec: t.spec.clone(),
                    phase: RolloutPhase::RolledBack,
                    last_good: Some(good.clone()),
                    failed_spec: Some(t.spec.clone()),
                    message: Some(format!(
                        "release {} failed: {why}; rolled back to release {}",
                        d.release, good.release
                    )),
                    updated_at_ms: now,
                    homes: prev.map(|r| r.homes.clone()).unwrap_or_default(),
                });
                plan.events.push(PlannedEvent {
                    kind: EventKind::RolloutFailed,
                    severity: Severity::Error,
                    message: format!("rollout of release {} failed: {why}", d.release),
                    instance: Some(bad.obs.instance),
                });
                plan.events.push(PlannedEvent {
                    kind: EventKind::RolledBack,
                    severity: Severity::Warning,
                    message: format!(
                        "rolled back to release {}; the previous instances kept serving. Fix the release and deploy again",
                        good.release
                    ),
                    instance: None,
                });
                // Nothing else this step: the next one plans for the old spec.
                plan.place.clear();
                return;
            }
            let already = prev.is_some_and(|r| {
                r.phase == RolloutPhase::Failed && r.generation == d.generation && r.spec == t.spec
            });
            if !already {
                plan.rollout = Some(ProcRollout {
                    generation: d.generation,
                    spec: t.spec.clone(),
                    phase: RolloutPhase::Failed,
                    last_good: prev.and_then(|r| r.last_good.clone()),
                    failed_spec: None,
                    message: Some(format!(
                        "release {} failed: {why}; there is no earlier release to return to",
                        d.release
                    )),
                    updated_at_ms: now,
                    homes: prev.map(|r| r.homes.clone()).unwrap_or_default(),
                });
                plan.events.push(PlannedEvent {
                    kind: EventKind::RolloutFailed,
                    severity: Severity::Error,
                    message: format!(
                        "rollout of release {} failed: {why}; fix the release and deploy again",
                        d.release
                    ),
                    instance: Some(bad.obs.instance),
                });
            }
            return;
        }
    }

    let want = t.desired.instances;
    let all_ready = (1..=want).all(|n| keep.get(&n).is_some_and(|r| r.ready()));
    let leftovers = !old_by_n.is_empty()
        || input.records.iter().any(|r| {
            r.obs.instance > want
                || r.obs.state == InstanceState::Stopping
                || r.obs.state == InstanceState::Draining
        })
        || !plan.deletes.is_empty()
        || !plan.place.is_empty();
    let converged = all_ready && !leftovers;

    if converged {
        let phase = if t.rolled_back {
            RolloutPhase::RolledBack
        } else {
            RolloutPhase::Converged
        };
        if prev.is_some_and(|r| same(r) && r.phase == phase) {
            return;
        }
        let was_progressing = prev.is_none_or(|r| r.phase == RolloutPhase::Progressing);
        plan.rollout = Some(ProcRollout {
            generation: d.generation,
            spec: t.spec.clone(),
            phase,
            last_good: if t.rolled_back {
                prev.and_then(|r| r.last_good.clone())
            } else {
                Some(d.clone())
            },
            failed_spec: if t.rolled_back {
                Some(desired_spec)
            } else {
                None
            },
            message: if t.rolled_back {
                prev.and_then(|r| r.message.clone())
            } else {
                None
            },
            updated_at_ms: now,
            homes: prev.map(|r| r.homes.clone()).unwrap_or_default(),
        });
        if !t.rolled_back && was_progressing {
            plan.events.push(PlannedEvent {
                kind: EventKind::RolloutSucceeded,
                severity: Severity::Info,
                message: format!(
                    "release {} runs on {want} healthy instance{}",
                    d.release,
                    if want == 1 { "" } else { "s" }
                ),
                instance: None,
            });
        }
        return;
    }

    if t.rolled_back {
        return;
    }
    let stuck_failed = prev.is_some_and(|r| same(r) && r.phase == RolloutPhase::Failed);
    let progressing = prev.is_some_and(|r| same(r) && r.phase == RolloutPhase::Progressing);
    if stuck_failed || progressing {
        return;
    }
    let new_spec = prev.is_none_or(|r| r.spec != t.spec);
    plan.rollout = Some(ProcRollout {
        generation: d.generation,
        spec: t.spec.clone(),
        phase: RolloutPhase::Progressing,
        last_good: prev.and_then(|r| r.last_good.clone()),
        failed_spec: None,
        message: None,
        updated_at_ms: now,
        homes: prev.map(|r| r.homes.clone()).unwrap_or_default(),
    });
    if new_spec {
        plan.events.push(PlannedEvent {
            kind: EventKind::RolloutStarted,
            severity: Severity::Info,
            message: format!(
                "rolling out release {} to {want} instance{}",
                d.release,
                if want == 1 { "" } else { "s" }
            ),
            instance: None,
        });
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
