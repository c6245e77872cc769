//! deployd's `/metrics`, in the Prometheus text format. A handful of
//! atomics rendered by hand: no registry crate needed for this few.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lain_store::InstanceState;

/// Counters and gauges shared by the monitor and the HTTP handler.
#[derive(Debug, Default)]
pub struct Metrics {
    is_leader: AtomicU64,
    leader_terms: AtomicU64,
    nodes_alive: AtomicU64,
    nodes_suspect: AtomicU64,
    nodes_lost: AtomicU64,
    registrations_invalid: AtomicU64,
    pings: AtomicU64,
    pings_failed: AtomicU64,
    observed_writes: AtomicU64,
    observed_write_errors: AtomicU64,
    reconciles: AtomicU64,
    reconcile_errors: AtomicU64,
    reconcile_micros: AtomicU64,
    /// Instances by state, in [`INSTANCE_STATES`] order.
    instances: [AtomicU64; INSTANCE_STATES.len()],
    /// Instances per node (leader only): not rendered (one series per
    /// node), but shared with the monitor, which publishes each node's
    /// count in its observed value (`lain node list`).
    node_instances: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    backups: AtomicU64,
    backups_failed: AtomicU64,
    backup_bytes: AtomicU64,
    restores: AtomicU64,
    restores_failed: AtomicU64,
}

/// The instance states `/metrics` counts, as labelled.
pub const INSTANCE_STATES: [(InstanceState, &str); 10] = [
    (InstanceState::Pending, "pending"),
    (InstanceState::Creating, "creating"),
    (InstanceState::Starting, "starting"),
    (InstanceState::Running, "running"),
    (InstanceState::Draining, "draining"),
    (InstanceState::Stopping, "stopping"),
    (InstanceState::Exited, "exited"),
    (InstanceState::Failed, "failed"),
    (InstanceState::Lost, "lost"),
    (InstanceState::Unknown, "unknown"),
];

/// Node counts by liveness, as this replica's monitor sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub alive: u64,
    pub suspect: u64,
    pub lost: u64,
}

impl Metrics {
    pub fn set_leader(&self, leading: bool) {
        self.is_leader.store(u64::from(leading), Ordering::Relaxed);
        if leading {
            self.leader_terms.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed) == 1
    }

    pub fn set_nodes(&self, counts: NodeCounts) {
        self.nodes_alive.store(counts.alive, Ordering::Relaxed);
        self.nodes_suspect.store(counts.suspect, Ordering::Relaxed);
        self.nodes_lost.store(counts.lost, Ordering::Relaxed);
    }

    pub fn set_invalid_registrations(&self, n: u64) {
        self.registrations_invalid.store(n, Ordering::Relaxed);
    }

    pub fn ping(&self, answered: bool) {
        self.pings.fetch_add(1, Ordering::Relaxed);
        if !answered {
            self.pings_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `keys` observed-node keys written or deleted in one commit.
    pub fn observed_written(&self, keys: u64) {
        self.observed_writes.fetch_add(keys, Ordering::Relaxed);
    }

    pub fn observed_write_failed(&self) {
        self.observed_write_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One reconcile round of one proc.
    pub fn reconciled(&self, took: Duration, failed: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        self.reconcile_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if failed {
            self.reconcile_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The node and state of every instance deployd manages (leader only).
    pub fn set_instances<'a>(&self, instances: impl Iterator<Item = (&'a str, InstanceState)>) {
        let mut counts = [0u64; INSTANCE_STATES.len()];
        let mut per_node: std::collections::HashMap<String, u32> = Default::default();
        for (node, s) in instances {
            match per_node.get_mut(node) {
                Some(n) => *n += 1,
                None => {
                    per_node.insert(node.to_owned(), 1);
                }
            }
            let i = INSTANCE_STATES
                .iter()
                .position(|(k, _)| *k == s)
                .unwrap_or(INSTANCE_STATES.len() - 1);
            counts[i] += 1;
        }
        for (slot, n) in self.instances.iter().zip(counts) {
            slot.store(n, Ordering::Relaxed);
        }
        *self
            .node_instances
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = per_node;
    }

    /// One volume backup ended: stored (with its archive's size) or not.
    pub fn backup(&self, stored_bytes: Option<u64>) {
        match stored_bytes {
            Some(b) => {
                self.backups.fetch_add(1, Ordering::Relaxed);
                self.backup_bytes.fetch_add(b, Ordering::Relaxed);
            }
            None => {
                self.backups_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One restore into a volume ended.
    pub fn restore(&self, ok: bool) {
        if ok {
            self.restores.fetch_add(1, Ordering::Relaxed);
        } else {
            self.restores_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many instances deployd last counted on `node`.
    pub fn node_instances(&self, node: &str) -> u32 {
        self.node_instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .copied()
            .unwrap_or(0)
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(1536);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "deployd_is_leader",
            "gauge",
            "1 while this replica leads the deployd election.",
            &[("", get(&self.is_leader))],
        );
        metric(
            "deployd_leader_terms_total",
            "counter",
            "Times this replica won the election.",
            &[("", get(&self.leader_terms))],
        );
        metric(
            "deployd_nodes",
            "gauge",
            "Registered nodes by liveness, as monitored by this replica (0 unless leader).",
            &[
                ("{liveness=\"alive\"}", get(&self.nodes_alive)),
                ("{liveness=\"suspect\"}", get(&self.nodes_suspect)),
                ("{liveness=\"lost\"}", get(&self.nodes_lost)),
            ],
        );
        metric(
            "deployd_node_registrations_invalid",
            "gauge",
            "Node registrations that cannot be read and are skipped.",
            &[("", get(&self.registrations_invalid))],
        );
        metric(
            "deployd_node_pings_total",
            "counter",
            "Pings sent to node Docker engines.",
            &[("", get(&self.pings))],
        );
        metric(
            "deployd_node_pings_failed_total",
            "counter",
            "Pings that got no answer in time.",
            &[("", get(&self.pings_failed))],
        );
        metric(
            "deployd_observed_node_writes_total",
            "counter",
            "Observed-node keys written or deleted in etcd.",
            &[("", get(&self.observed_writes))],
        );
        metric(
            "deployd_observed_node_write_errors_total",
            "counter",
            "Failed commits of observed-node changes (retried on the next round).",
            &[("", get(&self.observed_write_errors))],
        );
        metric(
            "deployd_reconciles_total",
            "counter",
            "Reconcile rounds of a proc.",
            &[("", get(&self.reconciles))],
        );
        metric(
            "deployd_reconcile_errors_total",
            "counter",
            "Reconcile rounds that failed (retried with backoff).",
            &[("", get(&self.reconcile_errors))],
        );
        metric(
            "deployd_reconcile_seconds_total",
            "counter",
            "Time spent in reconcile rounds; divide by deployd_reconciles_total for the mean latency.",
            &[],
        );
        let _ = writeln!(
            out,
            "deployd_reconcile_seconds_total {:.6}",
            get(&self.reconcile_micros) as f64 / 1e6
        );
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "deployd_backups_total",
            "counter",
            "Volume backups by outcome (leader only).",
            &[
                ("{result=\"stored\"}", get(&self.backups)),
                ("{result=\"failed\"}", get(&self.backups_failed)),
            ],
        );
        metric(
            "deployd_backup_bytes_total",
            "counter",
            "Bytes of backup archives stored.",
            &[("", get(&self.backup_bytes))],
        );
        metric(
            "deployd_restores_total",
            "counter",
            "Restores of a backup into an instance's volume, by outcome.",
            &[
                ("{result=\"restored\"}", get(&self.restores)),
                ("{result=\"failed\"}", get(&self.restores_failed)),
            ],
        );
        let labels: Vec<String> = INSTANCE_STATES
            .iter()
            .map(|(_, name)| format!("{{state=\"{name}\"}}"))
            .collect();
        let samples: Vec<(&str, u64)> = labels
            .iter()
            .zip(&self.instances)
            .map(|(l, v)| (l.as_str(), get(v)))
            .collect();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "deployd_instances",
            "gauge",
            "Instances by state (0 unless leader).",
            &samples,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_help_and_type() {
        let m = Metrics::default();
        m.set_leader(true);
        m.set_nodes(NodeCounts {
            alive: 2,
            suspect: 0,
            lost: 1,
        });
        m.ping(true);
        m.ping(false);
        let text = m.render();
        for line in [
            "deployd_is_leader 1",
            "deployd_leader_terms_total 1",
            "deployd_nodes{liveness=\"alive\"} 2",
            "deployd_nodes{liveness=\"lost\"} 1",
            "deployd_node_pings_total 2",
            "deployd_node_pings_failed_total 1",
            "# TYPE deployd_nodes gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
