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
    /// Desired procs that could not be read, with why: their instances are
    /// left alone until the value is fixed.
    pub invalid: HashMap<ProcId, String>,
    pub rollouts: HashMap<ProcId, ProcRollout>,
    pub records: HashMap<ProcId, BTreeMap<String, Record>>,
    pub nodes: BTreeMap<String, NodeRegistration>,
    pub liveness: HashMap<String, ObservedNode>,
    pub routers: HashMap<String, RouterStatus>,
    /// Nodes whose containers are known (listed since they came alive).
    pub inventory: HashMap<String, Inventory>,
}

impl State {
    /// How the planner sees a node.
    pub fn node_view(&self, node: &str) -> NodeView {
        if !self.nodes.contains_key(node) {
            return NodeView::Gone;
        }
        match self.liveness.get(node).map(|o| o.liveness) {
            Some(Liveness::Alive) => NodeView::Alive,
            Some(Liveness::Lost) => NodeView::Lost,
            _ => NodeView::Doubtful,
        }
    }

    /// Alive and its containers listed: safe to act on.
    pub fn actionable(&self, node: &str) -> bool {
        self.node_view(node) == NodeView::Alive && self.inventory.contains_key(node)
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
        for inv in self.inventory.values() {
            for c in inv.containers.values() {
                all.push((c.app.clone(), c.proc.clone()));
            }
        }
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
            && !self.inventory.values().any(|inv| {
                inv.containers
                    .values()
                    .any(|c| c.app == id.0 && c.proc == id.1)
            })
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
        let mut out = Vec::new();
        for (node, inv) in &self.inventory {
            for c in inv.containers.values() {
                if c.app == id.0 && c.proc == id.1 {
                    out.push((node.clone(), c.clone()));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        out
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
