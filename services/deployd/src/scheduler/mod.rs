//! The scheduler: a pure function from nodes (capacity, usage, labels,
//! status) and placement requests to placements and, for every instance
//! that did not fit, a reason that names the binding constraint.
//!
//! Rules, in order of strength:
//! 1. Only ready nodes take instances: never cordoned, draining, suspect,
//!    lost or unknown ones.
//! 2. A proc's `constraint:` filters must hold on the node's labels
//!    ([`filter`]); a malformed filter fails the proc with a clear error.
//! 3. The instance's CPU and memory must fit in what the node has free:
//!    capacity minus usage minus what this run placed.
//! 4. A stateful instance with a home (the node holding its volumes) goes
//!    there or nowhere, and the reason says why it was not moved.
//! 5. Among the nodes left: fewest instances of the same proc (spread),
//!    then most free memory, most free CPU, smallest name.
//!
//! Placed instances are kept where they are: only pending ones are placed.
//! The result depends only on the input, not its order, so every deployd
//! replica computes the same placements. See `docs/reference/scheduler.md`.

mod convert;
pub mod filter;
mod place;
pub mod reason;
mod scale;
pub mod types;
pub mod units;

#[cfg(test)]
mod tests;

pub use filter::{Filter, FilterError, FilterSet};
pub use place::{check_filters, schedule, InputError};
pub use reason::{Best, Context, NodeCounts, Reason};
pub use scale::{instances_to_add, instances_to_remove};
pub use types::{
    Node, NodeStatus, PendingInstance, PlacedInstance, Placement, ProcRequest, Resources, Schedule,
    Unplaced,
};
