//! Building scheduler input from the etcd values of `lain-store`.

use lain_store::{Capacity, DesiredProc, Liveness, NodeRegistration, ObservedNode};

use super::types::{Node, NodeStatus, PendingInstance, PlacedInstance, ProcRequest, Resources};

impl From<Capacity> for Resources {
    fn from(c: Capacity) -> Self {
        Resources::new(c.cpu_millis, c.memory_bytes)
    }
}

impl Resources {
    /// What each instance of a desired proc reserves.
    pub fn of_desired(d: &DesiredProc) -> Self {
        Resources::new(d.cpu_millis, d.memory_bytes)
    }
}

impl NodeStatus {
    /// A node's status from its registration (cordon, drain) and deployd's
    /// view of its liveness. Lost or doubtful liveness wins over the
    /// registration; a node deployd has not observed yet is `Unknown`,
    /// since an instance placed on an engine nobody has reached may never
    /// start.
    pub fn of(registration: &NodeRegistration, observed: Option<&ObservedNode>) -> Self {
        match observed.map(|o| o.liveness) {
            Some(Liveness::Lost) => NodeStatus::Lost,
            Some(Liveness::Suspect) => NodeStatus::Suspect,
            Some(Liveness::Unknown) | None => NodeStatus::Unknown,
            Some(Liveness::Alive) if registration.draining => NodeStatus::Draining,
            Some(Liveness::Alive) if !registration.schedulable => NodeStatus::Cordoned,
            Some(Liveness::Alive) => NodeStatus::Ready,
        }
    }
}

impl Node {
    /// A node from `/lain/nodes/{name}` and `/lain/observed-nodes/{name}`;
    /// `used` is the sum of the resources of the instances on it.
    pub fn from_registration(
        name: impl Into<String>,
        registration: &NodeRegistration,
        observed: Option<&ObservedNode>,
        used: Resources,
    ) -> Self {
        Node {
            name: name.into(),
            labels: registration.labels.clone(),
            capacity: registration.capacity.into(),
            used,
            status: NodeStatus::of(registration, observed),
        }
    }
}

impl ProcRequest {
    /// A request for a desired proc: its resources, filters and
    /// statefulness, with the instances already placed and those to place.
    pub fn from_desired(
        d: &DesiredProc,
        placed: Vec<PlacedInstance>,
        pending: Vec<PendingInstance>,
    ) -> Self {
        ProcRequest {
            app: d.app.clone(),
            proc: d.proc.clone(),
            resources: Resources::of_desired(d),
            filters: d.filters.clone(),
            // Instances with volumes go back to the node holding them.
            stateful: crate::reconcile::spec::pinned(d),
            placed,
            pending,
        }
    }
}
