//! dockerd nodes in network namespaces: the acceptance test of the kit
//! (two nodes, each serving its own name on its own address), fault
//! controls (kill, crash, restart, cut, heal), and cleanup during a panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lain_testkit::docker::Footprint;
use lain_testkit::process::run_timeout;
use lain_testkit::sys::{link_names, netns_names};
use lain_testkit::{http, import_base_image_all, DockerNodes, Node, NodesOptions, BASE_IMAGE};

/// Runs busybox httpd on `node`, published on the node's address, serving
/// `body` at `/`.
fn serve(node: &Node, body: &str) {
    node.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--stop-timeout",
        "1",
        "-p",
        &format!("{}:8080:8080", node.addr()),
        BASE_IMAGE,
        "sh",
        "-c",
        &format!("echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"),
    ])
    .unwrap_or_else(|e| panic!("web container on {}: {e}", node.name()));
}

fn get(addr: Ipv4Addr) -> Option<(u16, String)> {
    http::get(SocketAddr::from((addr, 8080)), "test", "/")
}

fn wait_for(addr: Ipv4Addr, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(addr) {
            Some((200, body)) if body.trim() == want => return,
            other if Instant::now() > deadline => {
                panic!("{addr}:8080 did not serve {want:?} within 20 s; last answer: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn assert_gone(names: &[String], bridge: &str, footprints: &[Footprint]) {
    let links = link_names();
    let spaces = netns_names();
    let ip_netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let ip_netns = String::from_utf8_lossy(&ip_netns.stdout);
    for n in names {
        assert!(
            !spaces.contains(n) && !ip_netns.contains(n.as_str()),
            "namespace {n} remains"
        );
        assert!(!links.contains(n), "veth {n} remains");
    }
    assert!(
        !links.contains(&bridge.to_owned()),
        "bridge {bridge} remains"
    );
    for fp in footprints {
        assert!(
            fp.processes().is_empty(),
            "left running: {:?}",
            fp.processes()
        );
        assert!(fp.mounts().is_empty(), "left mounted: {:?}", fp.mounts());
        assert!(!fp.run_dir.exists(), "{} remains", fp.run_dir.display());
    }
}

/// The acceptance test.
#[test]
fn two_nodes_each_serve_their_own_name_on_their_own_address() {
    let t = Instant::now();
    let nodes = DockerNodes::start(2, NodesOptions::default()).expect("2 nodes start");
    eprintln!("2 nodes ready in {:?}", t.elapsed());
    let ids = import_base_image_all(&nodes).expect("base image imports on every node");
    assert_eq!(ids.len(), 2);

    let addrs: Vec<Ipv4Addr> = nodes.nodes().iter().map(Node::addr).collect();
    assert_ne!(addrs[0], addrs[1]);
    for node in nodes.nodes() {
        serve(node, node.name());
    }
    for node in nodes.nodes() {
        wait_for(node.addr(), node.name());
    }
    // The nodes reach each other too (node 0 fetches node 1's page).
    // (Bounded by run_timeout: Debian's busybox 1.35 `wget -T` segfaults.)
    let url = format!("http://{}:8080/", addrs[1]);
    let fetched = run_timeout(
        nodes
            .node(0)
            .command("/bin/busybox")
            .args(["wget", "-q", "-O", "-", &url]),
        Duration::from_secs(10),
    )
    .expect("node 0 fetches from node 1");
    assert_eq!(fetched.trim(), nodes.node(1).name());
    // And each answers the API over TCP on its own address.
    for node in nodes.nodes() {
        let tcp = node.tcp_host().expect("tcp enabled by default");
        let out = run_timeout(
            std::process::Command::new("docker").args(["--host", &tcp, "ps", "-q"]),
            Duration::from_secs(20),
        )
        .expect("docker over tcp");
        assert_eq!(out.lines().count(), 1, "one container on {}", node.name());
    }

    let names: Vec<String> = nodes.nodes().iter().map(|n| n.name().to_owned()).collect();
    let bridge = nodes.network().bridge().to_owned();
    let footprints: Vec<Footprint> = nodes
        .nodes()
        .iter()
        .map(|n| n.engine().footprint())
        .collect();
    let t = Instant::now();
    drop(nodes);
    eprintln!("2 nodes stopped and removed in {:?}", t.elapsed());
    assert_gone(&names, &bridge, &footprints);
    // (No probe of the old addresses: with the bridge gone they would be
    // routed off the host.)
}

#[test]
fn a_node_can_be_killed_cut_healed_crashed_and_restarted() {
    let mut nodes = DockerNodes::start(1, NodesOptions::default()).expect("node starts");
    import_base_image_all(&nodes).expect("import");
    let name = nodes.node(0).name().to_owned();
    let addr = nodes.node(0).addr();
    serve(nodes.node(0), &name);
    wait_for(addr, &name);

    // Engine killed: API gone, container keeps serving.
    nodes.node_mut(0).kill();
    assert!(!nodes.node(0).engine().ping());
    wait_for(addr, &name);
    nodes.node_mut(0).restart().expect("restart after kill");
    assert!(nodes.node(0).engine().ping());
    nodes
        .node(0)
        .docker(&["start", "web"])
        .expect("web starts again");
    wait_for(addr, &name);

    // Network cut: address and TCP API unreachable, unix socket fine.
    nodes.node(0).cut().expect("cut");
    assert!(get(addr).is_none(), "a cut node still serves");
    let tcp = nodes.node(0).tcp_host().expect("tcp");
    let over_tcp = run_timeout(
        std::process::Command::new("docker").args(["--host", &tcp, "version"]),
        Duration::from_secs(2),
    );
    assert!(over_tcp.is_err(), "the TCP API answers while cut");
    assert!(
        nodes.node(0).docker(&["ps"]).is_ok(),
        "the unix socket works while cut"
    );
    nodes.node(0).heal().expect("heal");
    wait_for(addr, &name);

    // Crash: everything on the node dies; it comes back empty-handed.
    let fp = nodes.node(0).engine().footprint();
    nodes.node_mut(0).crash();
    assert!(
        fp.processes().is_empty(),
        "after crash: {:?}",
        fp.processes()
    );
    assert!(get(addr).is_none(), "a crashed node still serves");
    nodes.node_mut(0).restart().expect("restart after crash");
    let running = nodes.node(0).docker(&["ps", "-q"]).expect("ps");
    assert!(
        running.trim().is_empty(),
        "nothing runs after a crash: {running}"
    );
    nodes
        .node(0)
        .docker(&["start", "web"])
        .expect("web starts again");
    wait_for(addr, &name);
}

/// What a test learns about its nodes before it panics.
struct Seen {
    names: Vec<String>,
    bridge: String,
    footprints: Vec<Footprint>,
    dirs: Vec<PathBuf>,
}

#[test]
fn a_panicking_test_still_removes_its_nodes() {
    let seen: Mutex<Option<Seen>> = Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let nodes = DockerNodes::start(2, NodesOptions::default()).expect("nodes start");
        let all = nodes.nodes();
        *seen.lock().expect("lock") = Some(Seen {
            names: all.iter().map(|n| n.name().to_owned()).collect(),
            bridge: nodes.network().bridge().to_owned(),
            footprints: all.iter().map(|n| n.engine().footprint()).collect(),
            dirs: all
                .iter()
                .map(|n| n.engine().dir().path().to_owned())
                .collect(),
        });
        panic!("deliberate panic while holding 2 nodes");
    });
    assert!(outcome.is_err());
    let seen = seen.lock().expect("lock").take().expect("nodes started");
    assert_gone(&seen.names, &seen.bridge, &seen.footprints);
    // A panicking test keeps its servers' dirs for reading; this panic was
    // deliberate, so remove them.
    for d in seen.dirs {
        assert!(
            d.join("dockerd.log").exists(),
            "log kept in {}",
            d.display()
        );
        std::fs::remove_dir_all(&d).expect("remove kept dir");
    }
}
