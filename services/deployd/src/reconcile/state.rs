//! What the leader knows: desired procs, rollouts and instance records
//! from etcd, nodes and their liveness, router progress, and the
//! containers each reachable node runs.

use std::collections::{BTreeMap, HashMap};

use lain_store::{
    DesiredProc, Liveness, NodeRegistration, ObservedNode, ProcRollout, RouterStatus,
};

use super::plan::{NodeView, Record};
use crate::runtime::LainContainer;
use crate::scheduler::{self, PlacedInstance, Resources};

/// `(app, proc)`.
pub type ProcId = (String, String);

/// The containers of one node, once listed.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub containers: HashMap<String, LainContainer>,
}

#[derive(Debug, Default)]
pub struct State {
    pub desired: HashMap<ProcId, DesiredProc>,
    /// Desired portal procs: run per client node by [`super::portals`],
    /// never by the per-proc workers.
    pub portals: HashMap<ProcId, DesiredProc>,
    /// Desired procs that could not be read, with why: their instances are
    /// left alone until the value is fixed.
    pub invalid: HashMap<ProcId, String>,
    pub rollouts: HashMap<ProcId, ProcRollout>,
    pub records: HashMap<ProcId, BTreeMap<String, Record>>,
    pub nodes: BTreeMap<String, NodeRegistration>,
    /// Nodes whose registration could not be read: their last good one is
    /// kept, and they are treated as doubtful (nothing moves on or off).
    pub unreadable_nodes: std::collections::BTreeSet<String>,
    pub liveness: HashMap<String, ObservedNode>,
    pub routers: HashMap<String, RouterStatus>,
    /// Nodes whose containers are known (listed since they came alive).
    /// Change it only through the `*_container(s)` methods, which keep
    /// `by_proc` in step.
    pub inventory: HashMap<String, Inventory>,
    /// `(node, container id)` of each proc's containers.
    by_proc: HashMap<ProcId, std::collections::BTreeSet<(String, String)>>,
}

impl State {
    /// How the planner sees a node.
    pub fn node_view(&self, node: &str) -> NodeView {
        let Some(reg) = self.nodes.get(node) else {
            return NodeView::Gone;
        };
        if self.unreadable_nodes.contains(node) {
            return NodeView::Doubtful;
        }
        match self.liveness.get(node).map(|o| o.liveness) {
            Some(Liveness::Alive) if reg.draining && reg.drain_volumes => NodeView::Evacuating,
            Some(Liveness::Alive) if reg.draining => NodeView::Draining,
            Some(Liveness::Alive) => NodeView::Alive,
            Some(Liveness::Lost) => NodeView::Lost,
            _ => NodeView::Doubtful,
        }
    }

    /// Alive and its containers listed: safe to act on.
    pub fn actionable(&self, node: &str) -> bool {
        self.node_view(node).is_up() && self.inventory.contains_key(node)
    }

    /// Records a container as it is now.
    pub fn put_container(&mut self, node: &str, c: LainContainer) {
        let Some(inv) = self.inventory.get_mut(node) else {
            return;
        };
        self.by_proc
            .entry((c.app.clone(), c.proc.clone()))
            .or_default()
            .insert((node.to_owned(), c.id.clone()));
        inv.containers.insert(c.id.clone(), c);
    }

    /// Whether the containers of `app` have portals to follow them.
    pub fn uses_portals(&self, app: &str) -> bool {
        self.desired
            .iter()
            .any(|((a, _), d)| a == app && !d.services.is_empty())
    }

    /// Whether proc `id` serves a portal, whose backends follow its
    /// instance records.
    pub fn feeds_portals(&self, id: &ProcId) -> bool {
        self.portals.iter().any(|((app, _), p)| {
            *app == id.0 && p.portal.as_ref().is_some_and(|s| s.service_proc == id.1)
        })
    }

    /// Forgets a container that is gone; returns its app.
    pub fn remove_container(&mut self, node: &str, id: &str) -> Option<String> {
        let c = self
            .inventory
            .get_mut(node)
            .and_then(|inv| inv.containers.remove(id))?;
        let app = c.app.clone();
        let pid = (c.app, c.proc);
        if let Some(set) = self.by_proc.get_mut(&pid) {
            set.remove(&(node.to_owned(), id.to_owned()));
            if set.is_empty() {
                self.by_proc.remove(&pid);
            }
        }
        Some(app)
    }

    /// Replaces a node's whole inventory with a fresh listing; returns the
    /// procs whose containers changed (appeared, vanished or changed state).
    pub fn set_inventory(&mut self, node: &str, listed: Vec<LainContainer>) -> Vec<ProcId> {
        let old = self.drop_inventory(node);
        let mut changed: Vec<ProcId> = Vec::new();
        let fresh: HashMap<String, LainContainer> =
            listed.into_iter().map(|c| (c.id.clone(), c)).collect();
        for (id, c) in &old {
            if fresh.get(id).is_none_or(|f| f.state != c.state) {
                changed.push((c.app.clone(), c.proc.clone()));
            }
        }
        for (id, c) in &fresh {
            if !old.contains_key(id) {
                changed.push((c.app.clone(), c.proc.clone()));
            }
        }
        self.inventory.insert(node.to_owned(), Inventory::default());
        for c in fresh.into_values() {
            self.put_container(node, c);
        }
        changed.sort();
        changed.dedup();
        changed
    }

    /// Forgets a node's inventory (it is no longer alive); returns it.
    pub fn drop_inventory(&mut self, node: &str) -> HashMap<String, LainContainer> {
        let Some(inv) = self.inventory.remove(node) else {
            return HashMap::new();
        };
        for c in inv.containers.values() {
            let pid = (c.app.clone(), c.proc.clone());
            if let Some(set) = self.by_proc.get_mut(&pid) {
                set.remove(&(node.to_owned(), c.id.clone()));
                if set.is_empty() {
                    self.by_proc.remove(&pid);
                }
            }
        }
        inv.containers
    }

    /// The lowest revision the live routers have applied.
    pub fn routers_applied(&self) -> Option<i64> {
        self.routers.values().map(|r| r.applied_revision).min()
    }

    /// Every procs that has anything: desired, records, a rollout or
    /// containers.
    pub fn all_procs(&self) -> Vec<ProcId> {
        let mut all: Vec<ProcId> = self
            .desired
            .keys()
            .chain(self.invalid.keys())
            .chain(self.records.keys())
            .chain(self.rollouts.keys())
            .cloned()
            .collect();
        all.extend(self.by_proc.keys().cloned());
        all.sort();
        all.dedup();
        all
    }

    /// Whether nothing at all is left of a proc.
    pub fn is_empty(&self, id: &ProcId) -> bool {
        !self.desired.contains_key(id)
            && !self.invalid.contains_key(id)
            && self.records.get(id).is_none_or(BTreeMap::is_empty)
            && !self.rollouts.contains_key(id)
            && !self.by_proc.contains_key(id)
    }

    /// The procs with an instance on `node`.
    pub fn procs_on(&self, node: &str) -> Vec<ProcId> {
        let mut out: Vec<ProcId> = self
            .records
            .iter()
            .filter(|(_, rs)| rs.values().any(|r| r.obs.node == node))
            .map(|(id, _)| id.clone())
            .collect();
        if let Some(inv) = self.inventory.get(node) {
            out.extend(
                inv.containers
                    .values()
                    .map(|c| (c.app.clone(), c.proc.clone())),
            );
        }
        out.sort();
        out.dedup();
        out
    }

    /// `(node, container)` of every known container of a proc.
    pub fn containers_of(&self, id: &ProcId) -> Vec<(String, LainContainer)> {
        let Some(set) = self.by_proc.get(id) else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|(node, cid)| {
                let c = self.inventory.get(node)?.containers.get(cid)?;
                Some((node.clone(), c.clone()))
            })
            .collect()
    }

    /// The scheduler's view of every node: what the records of all procs
    /// reserve on it.
    pub fn scheduler_nodes(&self) -> Vec<scheduler::Node> {
        let mut used: HashMap<&str, Resources> = HashMap::new();
        for (id, records) in &self.records {
            let Some(d) = self.desired.get(id) else {
                continue;
            };
            let each = Resources::of_desired(d);
            for r in records.values() {
                let u = used.entry(r.obs.node.as_str()).or_insert(Resources::ZERO);
                *u = u.saturating_add(each);
            }
        }
        self.nodes
            .iter()
            .map(|(name, reg)| {
                let mut node = scheduler::Node::from_registration(
                    name.clone(),
                    reg,
                    self.liveness.get(name),
                    used.get(name.as_str()).copied().unwrap_or(Resources::ZERO),
                );
                // Not listed yet: placing there could start a duplicate.
                if node.status == scheduler::NodeStatus::Ready && !self.inventory.contains_key(name)
                {
                    node.status = scheduler::NodeStatus::Unknown;
                }
                node
            })
            .collect()
    }

    /// The placed instances of a proc, for spread.
    pub fn placed_of(&self, id: &ProcId) -> Vec<PlacedInstance> {
        self.records
            .get(id)
            .map(|rs| {
                rs.values()
                    .filter(|r| {
                        matches!(
                            self.node_view(&r.obs.node),
                            NodeView::Alive | NodeView::Doubtful
                        )
                    })
                    .map(|r| PlacedInstance {
                        instance: r.obs.instance,
                        node: r.obs.node.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
