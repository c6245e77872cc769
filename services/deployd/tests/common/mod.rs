//! Helpers shared by deployd's integration tests: registering namespace
//! nodes as the node-management writer, reading observed nodes, polling
//! `/metrics`, and bounded waits.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lain_store::{
    unix_millis, Capacity, Component, DockerEndpoint, Liveness, NodeKey, NodeRegistration,
    ObservedNode, ObservedNodeKey, Store,
};
use lain_testkit::{http, Node};

/// Connects a store that writes as node management, as `lain node add`
/// does through console.
pub async fn node_admin(endpoint: &str) -> Store {
    tokio::time::timeout(Duration::from_secs(10), Store::connect(&[endpoint]))
        .await
        .expect("connect to etcd in time")
        .expect("connect to etcd")
        .as_writer(Component::NodeManagement)
}

/// The registration of a namespace node, reached over its TCP API (so that
/// a cut is visible to deployd).
pub fn registration(node: &Node) -> NodeRegistration {
    let host = node.tcp_host().expect("nodes serve TCP by default");
    NodeRegistration {
        docker: DockerEndpoint::Tcp {
            address: host.trim_start_matches("tcp://").to_owned(),
            tls: None,
        },
        address: node.addr().to_string(),
        labels: Default::default(),
        capacity: Capacity {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
        },
        schedulable: true,
        draining: false,
        drain_volumes: false,
        registered_at_ms: unix_millis(),
    }
}

pub async fn register(admin: &Store, node: &Node) {
    admin
        .put(&NodeKey::new(node.name()).unwrap(), &registration(node))
        .await
        .expect("register node");
}

pub async fn observed(store: &Store, node: &str) -> Option<ObservedNode> {
    store
        .get(&ObservedNodeKey::new(node).unwrap())
        .await
        .expect("read observed node")
        .map(|e| e.value)
}

/// Polls the observed node every 50 ms until its liveness is `want`, for
/// at most `limit`; returns how long it took and every liveness seen on
/// the way.
pub async fn wait_liveness(
    store: &Store,
    node: &str,
    want: Liveness,
    limit: Duration,
) -> (Duration, Vec<Liveness>) {
    let started = Instant::now();
    let mut seen: Vec<Liveness> = Vec::new();
    loop {
        let now = observed(store, node).await.map(|o| o.liveness);
        if let Some(l) = now {
            if seen.last() != Some(&l) {
                seen.push(l);
            }
            if l == want {
                return (started.elapsed(), seen);
            }
        }
        assert!(
            started.elapsed() < limit,
            "node {node} not {want:?} within {limit:?}; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of an unlabelled sample in deployd's `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let (code, body) = http::get(addr, "127.0.0.1", "/metrics")?;
    if code != 200 {
        return None;
    }
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `check` every 50 ms until it holds, for at most `limit`; returns
/// how long it took.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}
