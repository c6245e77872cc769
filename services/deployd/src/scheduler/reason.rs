//! Why an instance was not placed, worded for `lain ps` and events: each
//! message names the constraint that binds, in lain.yaml's units.

use std::fmt;

use super::filter::FilterError;
use super::types::{NodeStatus, Resources};
use super::units;

/// A node that came closest, with what it has free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Best {
    pub node: String,
    pub free: Resources,
}

/// How many nodes are out of scheduling, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub cordoned: usize,
    pub draining: usize,
    pub suspect: usize,
    pub lost: usize,
    pub unknown: usize,
}

impl NodeCounts {
    pub fn total(&self) -> usize {
        self.cordoned + self.draining + self.suspect + self.lost + self.unknown
    }

    pub(crate) fn count(&mut self, status: NodeStatus) {
        match status {
            NodeStatus::Ready => {}
            NodeStatus::Cordoned => self.cordoned += 1,
            NodeStatus::Draining => self.draining += 1,
            NodeStatus::Suspect => self.suspect += 1,
            NodeStatus::Lost => self.lost += 1,
            NodeStatus::Unknown => self.unknown += 1,
        }
    }
}

impl fmt::Display for NodeCounts {
    /// `2 lost, 1 cordoned`: only the non-zero counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.lost, "lost"),
            (self.suspect, "suspect"),
            (self.unknown, "not yet seen alive"),
            (self.cordoned, "cordoned"),
            (self.draining, "draining"),
        ];
        let mut first = true;
        for (n, what) in parts {
            if n == 0 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{n} {what}")?;
        }
        Ok(())
    }
}

/// The nodes left out before resources were even compared, so that a
/// "no node has 2g free" message does not hide that most nodes were never
/// candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    pub unavailable: NodeCounts,
    /// Ready nodes that the proc's filters exclude.
    pub filtered_out: usize,
}

impl fmt::Display for Context {
    /// Empty, or ` (not counted: 2 lost, 1 cordoned; filters excluded 4 nodes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unavailable = self.unavailable.total() > 0;
        if !unavailable && self.filtered_out == 0 {
            return Ok(());
        }
        f.write_str(" (")?;
        if unavailable {
            write!(f, "not counted: {}", self.unavailable)?;
        }
        if self.filtered_out > 0 {
            if unavailable {
                f.write_str("; ")?;
            }
            write!(
                f,
                "filters excluded {} {}",
                self.filtered_out,
                plural(self.filtered_out, "node", "nodes")
            )?;
        }
        f.write_str(")")
    }
}

/// Why an instance has no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The proc's filters cannot be honoured; none of its instances is placed.
    InvalidFilter(FilterError),
    /// The same instance number is pending twice; the first one is placed.
    DuplicateInstance,
    /// The instance is both pending and placed; it stays where it is.
    AlreadyPlaced {
        node: String,
    },
    NoNodes,
    /// Every node is lost, cordoned, draining, suspect or unknown.
    NoReadyNodes(NodeCounts),
    /// The filters exclude every ready node.
    FilteredOut {
        filters: String,
        ready: usize,
        unavailable: NodeCounts,
    },
    /// Memory binds: no candidate has enough free.
    Memory {
        need: u64,
        largest: Best,
        context: Context,
    },
    /// CPU binds: no candidate has enough free.
    Cpu {
        need: u64,
        largest: Best,
        context: Context,
    },
    /// Some candidates have the memory and some the CPU, none both.
    MemoryAndCpu {
        need: Resources,
        most_memory: Best,
        most_cpu: Best,
        context: Context,
    },
    /// Stateful: the node with the instance's volumes is not registered.
    HomeNotRegistered {
        node: String,
    },
    /// Stateful: the node with the instance's volumes takes no instances.
    HomeUnavailable {
        node: String,
        status: NodeStatus,
    },
    /// Stateful: the proc's filters exclude the node with its volumes.
    HomeFilteredOut {
        node: String,
        filters: String,
    },
    /// Stateful: the node with the instance's volumes is too full.
    HomeFull {
        node: String,
        need: Resources,
        free: Resources,
    },
}

impl Reason {
    /// Whether the instance waits for its home node (stateful pinning)
    /// rather than for capacity anywhere.
    pub fn is_pinned(&self) -> bool {
        matches!(
            self,
            Reason::HomeNotRegistered { .. }
                | Reason::HomeUnavailable { .. }
                | Reason::HomeFilteredOut { .. }
                | Reason::HomeFull { .. }
        )
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

const NOT_MOVED: &str = "a stateful instance is not moved off the node that holds its volumes";

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidFilter(e) => write!(f, "invalid filter: {e}"),
            Reason::DuplicateInstance => {
                f.write_str("the instance number is pending twice in one request")
            }
            Reason::AlreadyPlaced { node } => {
                write!(f, "the instance is already placed on {node}")
            }
            Reason::NoNodes => f.write_str("no nodes are registered"),
            Reason::NoReadyNodes(counts) => {
                let total = counts.total();
                write!(
                    f,
                    "all {total} {} unavailable ({counts})",
                    plural(total, "node is", "nodes are")
                )
            }
            Reason::FilteredOut {
                filters,
                ready,
                unavailable,
            } => {
                write!(
                    f,
                    "filters `{filters}` exclude all {ready} ready {}",
                    plural(*ready, "node", "nodes")
                )?;
                if unavailable.total() > 0 {
                    write!(f, " (not counted: {unavailable})")?;
                }
                Ok(())
            }
            Reason::Memory {
                need,
                largest,
                context,
            } => write!(
                f,
                "no node has {} free memory; largest free is {} with {}{context}",
                units::memory(*need),
                largest.node,
                units::memory(largest.free.memory_bytes)
            ),
            Reason::Cpu {
                need,
                largest,
                context,
            } => write!(
                f,
                "no node has {} free; largest free is {} with {}{context}",
                units::cpu(*need),
                largest.node,
                units::cpu(largest.free.cpu_millis)
            ),
            Reason::MemoryAndCpu {
                need,
                most_memory,
                most_cpu,
                context,
            } => write!(
                f,
                "no node has both {} free memory and {} free; {} has the most memory free ({}) \
                 but {}, {} the most cpu free ({}) but {} memory{context}",
                units::memory(need.memory_bytes),
                units::cpu(need.cpu_millis),
                most_memory.node,
                units::memory(most_memory.free.memory_bytes),
                units::cpu(most_memory.free.cpu_millis),
                most_cpu.node,
                units::cpu(most_cpu.free.cpu_millis),
                units::memory(most_cpu.free.memory_bytes),
            ),
            Reason::HomeNotRegistered { node } => write!(
                f,
                "not moved: its volumes are on {node}, which is not registered; {NOT_MOVED}"
            ),
            Reason::HomeUnavailable { node, status } => write!(
                f,
                "not moved: its volumes are on {node}, which is {status}; {NOT_MOVED}"
            ),
            Reason::HomeFilteredOut { node, filters } => write!(
                f,
                "not moved: its volumes are on {node}, which filters `{filters}` exclude; \
                 {NOT_MOVED}"
            ),
            Reason::HomeFull { node, need, free } => write!(
                f,
                "not moved: its volumes are on {node}, which has {free} free but it needs \
                 {need}; {NOT_MOVED}"
            ),
        }
    }
}
