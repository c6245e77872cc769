//! The scheduler's input and output.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::reason::Reason;

/// CPU and memory, of a node or of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Thousandths of a core; for an instance, 0 means no CPU reservation.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Resources {
    pub const ZERO: Resources = Resources::new(0, 0);

    pub const fn new(cpu_millis: u64, memory_bytes: u64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
        }
    }

    /// Whether `self` fits into `free`.
    pub fn fits_in(self, free: Resources) -> bool {
        self.cpu_millis <= free.cpu_millis && self.memory_bytes <= free.memory_bytes
    }

    /// `self - other`, floored at zero: a node whose usage exceeds its
    /// capacity (capacity lowered under running instances) has nothing free.
    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources::new(
            self.cpu_millis.saturating_sub(other.cpu_millis),
            self.memory_bytes.saturating_sub(other.memory_bytes),
        )
    }

    pub fn saturating_add(self, other: Resources) -> Resources {
        Resources::new(
            self.cpu_millis.saturating_add(other.cpu_millis),
            self.memory_bytes.saturating_add(other.memory_bytes),
        )
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} memory and {}",
            super::units::memory(self.memory_bytes),
            super::units::cpu(self.cpu_millis)
        )
    }
}

/// Whether a node takes new instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    /// Alive and schedulable.
    Ready,
    /// `lain node cordon`: running instances stay, new ones go elsewhere.
    Cordoned,
    /// `lain node drain`: its instances are being moved away.
    Draining,
    /// Missed health pings, not yet declared lost.
    Suspect,
    /// Declared lost by deployd.
    Lost,
    /// deployd has not seen its Docker engine answer yet.
    Unknown,
}

impl NodeStatus {
    /// Only ready nodes get new instances; a suspect or unknown node might
    /// be dead, and an instance placed there would not start.
    pub fn is_schedulable(self) -> bool {
        self == NodeStatus::Ready
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "ready",
            NodeStatus::Cordoned => "cordoned",
            NodeStatus::Draining => "draining",
            NodeStatus::Suspect => "suspect",
            NodeStatus::Lost => "lost",
            NodeStatus::Unknown => "not yet seen alive",
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique; ties between equally good nodes go to the smallest name.
    pub name: String,
    /// Matched by `constraint:` filters.
    pub labels: BTreeMap<String, String>,
    pub capacity: Resources,
    /// What the instances already on the node reserve, the placed instances
    /// of every [`ProcRequest`] included: the scheduler does not add them again.
    pub used: Resources,
    pub status: NodeStatus,
}

impl Node {
    /// A ready node with nothing on it and no labels.
    pub fn new(name: impl Into<String>, capacity: Resources) -> Self {
        Node {
            name: name.into(),
            labels: BTreeMap::new(),
            capacity,
            used: Resources::ZERO,
            status: NodeStatus::Ready,
        }
    }

    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn with_used(mut self, used: Resources) -> Self {
        self.used = used;
        self
    }

    pub fn with_status(mut self, status: NodeStatus) -> Self {
        self.status = status;
        self
    }

    /// Capacity minus usage.
    pub fn free(&self) -> Resources {
        self.capacity.saturating_sub(self.used)
    }
}

/// An instance that already runs (or is being started) on a node. It stays
/// where it is; it counts toward the spread of its proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedInstance {
    pub instance: u32,
    pub node: String,
}

/// An instance that needs a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInstance {
    pub instance: u32,
    /// For a stateful proc: the node that holds the instance's volumes,
    /// where it must run. Ignored for other procs.
    pub home: Option<String>,
}

impl PendingInstance {
    pub fn new(instance: u32) -> Self {
        PendingInstance {
            instance,
            home: None,
        }
    }

    pub fn with_home(instance: u32, home: impl Into<String>) -> Self {
        PendingInstance {
            instance,
            home: Some(home.into()),
        }
    }
}

/// The instances of one proc to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRequest {
    pub app: String,
    pub proc: String,
    /// What each instance reserves.
    pub resources: Resources,
    /// lain.yaml filter strings, e.g. `constraint:zone==a`.
    pub filters: Vec<String>,
    /// Stateful instances with a home stay on it.
    pub stateful: bool,
    /// Instances already on nodes: kept, counted for spread.
    pub placed: Vec<PlacedInstance>,
    /// Instances to place.
    pub pending: Vec<PendingInstance>,
}

impl ProcRequest {
    /// A stateless request without filters or placed instances.
    pub fn new(app: impl Into<String>, proc: impl Into<String>, resources: Resources) -> Self {
        ProcRequest {
            app: app.into(),
            proc: proc.into(),
            resources,
            filters: Vec::new(),
            stateful: false,
            placed: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Adds pending instances `numbers` without homes.
    pub fn with_pending(mut self, numbers: impl IntoIterator<Item = u32>) -> Self {
        self.pending
            .extend(numbers.into_iter().map(PendingInstance::new));
        self
    }

    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filters.push(filter.into());
        self
    }

    pub fn with_placed(mut self, instance: u32, node: impl Into<String>) -> Self {
        self.placed.push(PlacedInstance {
            instance,
            node: node.into(),
        });
        self
    }
}

/// One instance put on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Placement {
    /// Index into the requests passed to [`schedule`](super::schedule).
    pub request: usize,
    pub instance: u32,
    /// Index into the nodes passed to [`schedule`](super::schedule).
    pub node: usize,
}

/// One instance left without a node, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    /// Index into the requests passed to [`schedule`](super::schedule).
    pub request: usize,
    pub instance: u32,
    /// Shared by the instances of a proc that failed for the same reason.
    pub reason: Arc<Reason>,
}

/// The scheduler's answer: every pending instance is in exactly one of
/// `placements` and `unplaced`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// In decision order: stateful instances pinned to their home first,
    /// then procs by (app, proc), instances by number.
    pub placements: Vec<Placement>,
    pub unplaced: Vec<Unplaced>,
}

impl Schedule {
    /// `(app, proc, instance, node name)` of every placement.
    pub fn named<'a>(
        &'a self,
        nodes: &'a [Node],
        requests: &'a [ProcRequest],
    ) -> impl Iterator<Item = (&'a str, &'a str, u32, &'a str)> + 'a {
        self.placements.iter().filter_map(move |p| {
            let r = requests.get(p.request)?;
            let n = nodes.get(p.node)?;
            Some((r.app.as_str(), r.proc.as_str(), p.instance, n.name.as_str()))
        })
    }
}
