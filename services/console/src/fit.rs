//! Whether a deploy can fit on the cluster, checked before desired state
//! is written, so that a deploy that cannot run is refused with an error
//! naming the resource instead of leaving instances pending.
//!
//! The view mirrors deployd's scheduler (services/deployd/src/scheduler):
//! a node takes instances when deployd sees it `alive` and it is neither
//! cordoned nor draining; what a node has free is its registered capacity
//! less the resources of the instance records (`/lain/observed/`) placed
//! on it, each reserving its desired proc's `cpu_millis` and
//! `memory_bytes`. Records of the procs a deploy replaces do not count
//! (their instances are replaced one at a time). The check is necessary,
//! not sufficient: every instance must fit the node with the most free of
//! that resource, and the instances together must fit the free total of
//! the ready nodes. Placement filters and spreading are deployd's.

use std::collections::{BTreeMap, BTreeSet};

use lain_store::{
    Capacity, DesiredKey, DesiredProc, KeyPrefix, Liveness, NodeKey, ObservedKey, ObservedNodeKey,
    Store, StoreError,
};

/// A ready node and what it has free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFree {
    pub name: String,
    pub free: Capacity,
}

/// Why a deploy cannot fit; the message names the resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    #[error("no node is ready to take instances of {app} ({nodes} registered; a node must be alive, not cordoned and not draining)")]
    NoReadyNode { app: String, nodes: usize },
    #[error("no node has {need} free {resource} for an instance of proc {proc}; the largest free is {node} with {free}")]
    Instance {
        proc: String,
        resource: &'static str,
        need: String,
        node: String,
        free: String,
    },
    #[error("the procs need {need} {resource} in total ({detail}), but the ready nodes have {free} free together")]
    Total {
        resource: &'static str,
        need: String,
        free: String,
        detail: String,
    },
}

impl FitError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            FitError::NoReadyNode { .. } => {
                "check `lain node list`: add a node, uncordon one, or wait for deployd to see the nodes alive"
            }
            _ => "lower num_instances, memory or cpu in lain.yaml (or `lain scale`), free capacity by scaling other apps down, or add a node",
        }
    }
}

/// A byte count as lain.yaml writes memory: `512m`, `2g`, `1.5g`.
pub fn fmt_memory(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        if bytes.is_multiple_of(GIB) {
            format!("{}g", bytes / GIB)
        } else {
            let g = format!("{:.2}", bytes as f64 / GIB as f64);
            format!("{}g", g.trim_end_matches('0').trim_end_matches('.'))
        }
    } else if bytes.is_multiple_of(MIB) || bytes >= MIB {
        format!("{}m", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Thousandths of a core as cores: `2 CPU`, `0.5 CPU`.
pub fn fmt_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{} CPU", millis / 1000)
    } else {
        let c = format!("{:.3}", millis as f64 / 1000.0);
        format!("{} CPU", c.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Checks that `procs` (the procs a deploy writes) can fit on `ready`.
pub fn check(
    app: &str,
    registered: usize,
    ready: &[NodeFree],
    procs: &[DesiredProc],
) -> Result<(), FitError> {
    let wanted: Vec<&DesiredProc> = procs.iter().filter(|p| p.instances > 0).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    if ready.is_empty() {
        return Err(FitError::NoReadyNode {
            app: app.to_owned(),
            nodes: registered,
        });
    }
    type Get = fn(&Capacity) -> u64;
    type Fmt = fn(u64) -> String;
    let resources: [(&'static str, Get, Fmt); 2] = [
        ("memory", |c| c.memory_bytes, fmt_memory),
        ("cpu", |c| c.cpu_millis, fmt_cpu),
    ];
    for (resource, get, fmt) in resources {
        let largest = ready
            .iter()
            .max_by_key(|n| (get(&n.free), std::cmp::Reverse(n.name.clone())))
            .expect("not empty");
        for p in &wanted {
            let need = get(&Capacity {
                cpu_millis: p.cpu_millis,
                memory_bytes: p.memory_bytes,
            });
            if need > get(&largest.free) {
                return Err(FitError::Instance {
                    proc: p.proc.clone(),
                    resource,
                    need: fmt(need),
                    node: largest.name.clone(),
                    free: fmt(get(&largest.free)),
                });
            }
        }
        let total_free: u64 = ready
            .iter()
            .map(|n| get(&n.free))
            .fold(0, u64::saturating_add);
        let mut detail = Vec::new();
        let mut need: u64 = 0;
        for p in &wanted {
            let each = get(&Capacity {
                cpu_millis: p.cpu_millis,
                memory_bytes: p.memory_bytes,
            });
            if each > 0 {
                need = need.saturating_add(each.saturating_mul(u64::from(p.instances)));
                detail.push(format!("{}: {} x {}", p.proc, p.instances, fmt(each)));
            }
        }
        if need > total_free {
            return Err(FitError::Total {
                resource,
                need: fmt(need),
                free: fmt(total_free),
                detail: detail.join(", "),
            });
        }
    }
    Ok(())
}

/// What the instance records reserve on each node (each record counts
/// its proc's desired CPU and memory), leaving out those `skip(app, proc)`
/// names; records of procs no longer desired count nothing.
fn used_by<'a>(
    desired: &'a [lain_store::Entry<DesiredKey>],
    records: &'a [lain_store::Entry<ObservedKey>],
    skip: impl Fn(&str, &str) -> bool,
) -> BTreeMap<&'a str, Capacity> {
    let each: BTreeMap<(&str, &str), Capacity> = desired
        .iter()
        .map(|e| {
            (
                (e.key.app(), e.key.proc()),
                Capacity {
                    cpu_millis: e.value.cpu_millis,
                    memory_bytes: e.value.memory_bytes,
                },
            )
        })
        .collect();
    let mut used: BTreeMap<&str, Capacity> = BTreeMap::new();
    for r in records {
        if skip(r.key.app(), r.key.proc()) {
            continue;
        }
        let Some(c) = each.get(&(r.key.app(), r.key.proc())) else {
            continue;
        };
        let u = used.entry(r.value.node.as_str()).or_insert(Capacity {
            cpu_millis: 0,
            memory_bytes: 0,
        });
        u.cpu_millis = u.cpu_millis.saturating_add(c.cpu_millis);
        u.memory_bytes = u.memory_bytes.saturating_add(c.memory_bytes);
    }
    used
}

/// What the instances on each node reserve, by node name (the cluster
/// page's "used of capacity").
pub async fn node_usage(store: &Store) -> Result<BTreeMap<String, Capacity>, StoreError> {
    let desired = store.list(&KeyPrefix::<DesiredKey>::all()).await?;
    let records = store.list(&KeyPrefix::<ObservedKey>::all()).await?;
    Ok(used_by(&desired.items, &records.items, |_, _| false)
        .into_iter()
        .map(|(n, c)| (n.to_owned(), c))
        .collect())
}

/// The ready nodes and what each has free, from etcd. The instance
/// records of `app`'s proc `replaced` (of every proc of `app` for `None`)
/// do not count. Also returns how many nodes are registered.
pub async fn free_nodes(
    store: &Store,
    app: &str,
    replaced: Option<&str>,
) -> Result<(usize, Vec<NodeFree>), StoreError> {
    let nodes = store.list(&KeyPrefix::<NodeKey>::all()).await?;
    let observed_nodes = store.list(&KeyPrefix::<ObservedNodeKey>::all()).await?;
    let desired = store.list(&KeyPrefix::<DesiredKey>::all()).await?;
    let records = store.list(&KeyPrefix::<ObservedKey>::all()).await?;
    let alive: BTreeSet<&str> = observed_nodes
        .items
        .iter()
        .filter(|e| e.value.liveness == Liveness::Alive)
        .map(|e| e.key.node())
        .collect();
    let used = used_by(&desired.items, &records.items, |a, p| {
        a == app && replaced.is_none_or(|r| r == p)
    });
    let ready = nodes
        .items
        .iter()
        .filter(|e| e.value.schedulable && !e.value.draining && alive.contains(e.key.node()))
        .map(|e| {
            let u = used.get(e.key.node()).copied().unwrap_or(Capacity {
                cpu_millis: 0,
                memory_bytes: 0,
            });
            NodeFree {
                name: e.key.node().to_owned(),
                free: Capacity {
                    cpu_millis: e.value.capacity.cpu_millis.saturating_sub(u.cpu_millis),
                    memory_bytes: e.value.capacity.memory_bytes.saturating_sub(u.memory_bytes),
                },
            }
        })
        .collect();
    Ok((nodes.items.len(), ready))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lain_store::ProcType;

    fn proc(name: &str, instances: u32, cpu_millis: u64, memory_bytes: u64) -> DesiredProc {
        DesiredProc {
            app: "a".into(),
            proc: name.into(),
            proc_type: ProcType::Web,
            release: "r".into(),
            image: "i".into(),
            instances,
            cmd: vec![],
            entrypoint: vec![],
            user: None,
            workdir: None,
            cpu_millis,
            memory_bytes,
            env: Default::default(),
            secrets: vec![],
            port: None,
            healthcheck: None,
            mountpoints: vec![],
            https_only: false,
            volumes: vec![],
            labels: Default::default(),
            kill_timeout_secs: 10,
            setup_time_secs: 0,
            stateful: false,
            filters: vec![],
            services: vec![],
            backups: vec![],
            restore: None,
            portal: None,
            generation: 0,
        }
    }

    fn node(name: &str, cpu_millis: u64, memory_bytes: u64) -> NodeFree {
        NodeFree {
            name: name.into(),
            free: Capacity {
                cpu_millis,
                memory_bytes,
            },
        }
    }

    const G: u64 = 1 << 30;

    #[test]
    fn an_instance_larger_than_every_node_names_the_largest() {
        let nodes = [node("node-1", 4000, G), node("node-3", 4000, G + G / 2)];
        let e = check("a", 2, &nodes, &[proc("web", 1, 0, 2 * G)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no node has 2g free memory for an instance of proc web; the largest free is node-3 with 1.5g"
        );
        let e = check("a", 2, &nodes, &[proc("web", 1, 8000, 1 << 20)]).unwrap_err();
        assert!(e.to_string().contains("8 CPU free cpu"), "{e}");
    }

    #[test]
    fn the_total_must_fit_the_free_total() {
        let nodes = [node("n1", 0, G), node("n2", 0, G)];
        assert!(check("a", 2, &nodes, &[proc("web", 4, 0, G / 2)]).is_ok());
        let e = check("a", 2, &nodes, &[proc("web", 5, 0, G / 2)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("2.5g memory in total (web: 5 x 512m)"),
            "{e}"
        );
        assert!(check("a", 2, &nodes, &[proc("web", 0, 0, 4 * G)]).is_ok());
        let e = check("a", 3, &[], &[proc("web", 1, 0, 1)]).unwrap_err();
        assert!(matches!(e, FitError::NoReadyNode { nodes: 3, .. }));
    }
}
