//! Node liveness against real engines: three dockerd nodes in network
//! namespaces registered in a real etcd, deployd run in-process. Killing a
//! node's dockerd or cutting its link makes it `lost` after ~3 missed
//! pings; bringing it back makes it `alive`. An unreadable registration is
//! skipped without blinding deployd to the others, and an unregistered
//! node's observed state is removed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{node_admin, observed, register, wait_liveness};
use deployd::{Config, Metrics};
use lain_service::LogFormat;
use lain_store::{DockerEndpoint, Liveness, NodeKey, Store};
use lain_testkit::{DockerNodes, Etcd, NodesOptions};
use tokio::task::block_in_place;

/// The bound the design sets on detecting a dead node (3 pings of 1 s and
/// the writes that follow, with slack for 2 shared cores).
const DETECT_LIMIT: Duration = Duration::from_secs(6);
const RECOVER_LIMIT: Duration = Duration::from_secs(5);

fn pings(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("deployd_node_pings_total "))
        .and_then(|v| v.parse().ok())
        .expect("pings metric")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_go_lost_and_come_back() {
    lain_service::init_tracing(LogFormat::Text);
    let etcd = block_in_place(|| Etcd::start().expect("start etcd"));
    let mut nodes =
        block_in_place(|| DockerNodes::start(3, NodesOptions::default()).expect("start nodes"));
    let admin = node_admin(&etcd.endpoint()).await;
    for node in nodes.nodes() {
        register(&admin, node).await;
    }
    // A registration no build can read: skipped, never a crash.
    etcd.etcdctl(&["put", "/lain/nodes/garbage-node", "garbage"])
        .expect("put garbage");
    let reader = Store::connect(&[etcd.endpoint()]).await.expect("connect");

    let config = Config::parse(
        std::path::Path::new("liveness.toml"),
        &format!(
            "listen = \"127.0.0.1:0\"\netcd = [\"{}\"]\nid = \"deployd-liveness\"\n",
            etcd.endpoint()
        ),
    )
    .expect("config");
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let deployd = tokio::spawn(deployd::run_on(
        config,
        listener,
        metrics.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let names: Vec<String> = nodes.nodes().iter().map(|n| n.name().to_owned()).collect();
    for name in &names {
        let (took, _) =
            wait_liveness(&reader, name, Liveness::Alive, Duration::from_secs(10)).await;
        eprintln!("node {name} alive after {took:?}");
        let o = observed(&reader, name).await.unwrap();
        assert!(
            o.docker_version.is_some(),
            "no engine version recorded: {o:?}"
        );
    }
    assert!(metrics.is_leader());
    assert!(
        observed(&reader, "garbage-node").await.is_none(),
        "an unreadable registration got an observed state"
    );
    let text = metrics.render();
    assert!(
        text.lines()
            .any(|l| l == "deployd_node_registrations_invalid 1"),
        "{text}"
    );

    // dockerd killed: refused connections, lost after three misses.
    block_in_place(|| nodes.node_mut(0).kill());
    let (took, seen) = wait_liveness(&reader, &names[0], Liveness::Lost, DETECT_LIMIT).await;
    eprintln!("MEASURED: killed dockerd detected as lost in {took:?} (seen {seen:?})");
    assert!(
        seen.contains(&Liveness::Suspect),
        "no suspect step: {seen:?}"
    );
    let lost = observed(&reader, &names[0]).await.unwrap();
    assert!(
        lost.message
            .as_deref()
            .unwrap_or("")
            .contains("3 consecutive"),
        "{lost:?}"
    );
    for name in &names[1..] {
        assert_eq!(
            observed(&reader, name).await.unwrap().liveness,
            Liveness::Alive
        );
    }

    block_in_place(|| nodes.node_mut(0).restart().expect("restart node 0"));
    let (took, _) = wait_liveness(&reader, &names[0], Liveness::Alive, RECOVER_LIMIT).await;
    eprintln!("MEASURED: restarted dockerd alive again {took:?} after it was ready");

    // Link cut: packets vanish, pings time out, lost after three misses.
    block_in_place(|| nodes.node(1).cut().expect("cut node 1"));
    let (took, seen) = wait_liveness(&reader, &names[1], Liveness::Lost, DETECT_LIMIT).await;
    eprintln!("MEASURED: cut link detected as lost in {took:?} (seen {seen:?})");
    assert_eq!(
        observed(&reader, &names[0]).await.unwrap().liveness,
        Liveness::Alive
    );
    block_in_place(|| nodes.node(1).heal().expect("heal node 1"));
    let (took, _) = wait_liveness(&reader, &names[1], Liveness::Alive, RECOVER_LIMIT).await;
    eprintln!("MEASURED: healed link alive again in {took:?}");

    // The same engine over its unix socket: the endpoint change takes a
    // new client, and a cut link no longer matters to it.
    let mut over_unix = common::registration(nodes.node(2));
    over_unix.docker = DockerEndpoint::Unix {
        socket: nodes
            .node(2)
            .docker_host()
            .trim_start_matches("unix://")
            .to_owned(),
    };
    admin
        .put(&NodeKey::new(&names[2]).unwrap(), &over_unix)
        .await
        .expect("re-register over unix");
    let pings_before = pings(&metrics);
    block_in_place(|| nodes.node(2).cut().expect("cut node 2"));
    let started = std::time::Instant::now();
    while pings(&metrics) < pings_before + 9 {
        assert!(started.elapsed() < Duration::from_secs(5), "pings stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        observed(&reader, &names[2]).await.unwrap().liveness,
        Liveness::Alive,
        "a node reached over its unix socket went down with its link"
    );
    block_in_place(|| nodes.node(2).heal().expect("heal node 2"));

    // Unregistering a node removes its observed state.
    admin
        .delete(&NodeKey::new(&names[2]).unwrap())
        .await
        .expect("unregister");
    let started = std::time::Instant::now();
    while observed(&reader, &names[2]).await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "observed state of an unregistered node stays"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Writes only on change (plus a last_seen refresh every 10 s): 3
    // initial, 3 per outage, 1 delete, a few refreshes.
    let text = metrics.render();
    let writes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("deployd_observed_node_writes_total "))
        .and_then(|v| v.parse().ok())
        .expect("writes metric");
    eprintln!("observed-node writes during the test: {writes}");
    assert!(writes <= 30, "too many etcd writes: {writes}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), deployd)
        .await
        .expect("deployd stops within 5 s")
        .expect("deployd task")
        .expect("deployd ran cleanly");
}
