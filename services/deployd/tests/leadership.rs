//! Two real `deployd` binaries against one etcd and one namespace node:
//! exactly one leads; a frozen leader (SIGSTOP, as in a long pause) is
//! replaced within about the lease TTL, and when it thaws its stale view
//! never lands in etcd; a killed leader (SIGKILL) is replaced the same
//! way, and the new leader keeps tracking the node's liveness.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{metric, node_admin, observed, register, wait_until};
use lain_store::{Liveness, Store};
use lain_testkit::daemon::Daemon;
use lain_testkit::{DockerNodes, Etcd, NodesOptions};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_deployd");
const TTL_SECS: u64 = 3;
/// Lease TTL plus the campaign's reaction and slack for 2 shared cores.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(TTL_SECS + 3);

fn spawn(etcd: &Etcd, id: &str) -> Daemon {
    let config = format!(
        "listen = \"{{listen}}\"\netcd = [\"{}\"]\nid = \"{id}\"\nping_interval_ms = 1000\nlost_after_misses = 3\nlease_ttl_secs = {TTL_SECS}\n",
        etcd.endpoint()
    );
    Daemon::spawn(&format!("deployd-{id}"), BIN, &config).expect("deployd starts")
}

fn leads(addr: SocketAddr) -> bool {
    metric(addr, "deployd_is_leader") == Some(1)
}

fn writes(addr: SocketAddr) -> u64 {
    metric(addr, "deployd_observed_node_writes_total").expect("writes metric")
}

#[test]
fn one_leader_and_fenced_takeover() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let etcd = Etcd::start().expect("start etcd");
    let mut nodes = DockerNodes::start(1, NodesOptions::default()).expect("start node");
    let name = nodes.node(0).name().to_owned();
    let reader = rt.block_on(async {
        let admin = node_admin(&etcd.endpoint()).await;
        register(&admin, nodes.node(0)).await;
        Store::connect(&[etcd.endpoint()]).await.expect("connect")
    });
    let liveness = |reader: &Store| rt.block_on(observed(reader, &name)).map(|o| o.liveness);

    let mut a = spawn(&etcd, "a");
    wait_until("A to lead", Duration::from_secs(10), || leads(a.addr));
    wait_until("A to mark the node alive", Duration::from_secs(10), || {
        liveness(&reader) == Some(Liveness::Alive)
    });
    let mut b = spawn(&etcd, "b");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(leads(a.addr) && !leads(b.addr), "exactly one leader");
    assert_eq!(writes(b.addr), 0, "a follower wrote observed nodes");
    let leader = rt
        .block_on(async { reader.election("deployd").unwrap().leader().await })
        .expect("read leader")
        .expect("a leader");
    assert_eq!(leader.candidate.id, "a");

    // A freezes (a long GC or VM pause): its lease lapses, B takes over.
    a.proc.signal(Signal::SIGSTOP).expect("SIGSTOP A");
    let took = wait_until("B to take over from a frozen A", TAKEOVER_LIMIT, || {
        leads(b.addr)
    });
    eprintln!("MEASURED: takeover from a frozen leader in {took:?} (lease TTL {TTL_SECS} s)");

    // B sees the node die.
    nodes.node_mut(0).kill();
    let started = Instant::now();
    wait_until("B to mark the node lost", Duration::from_secs(6), || {
        liveness(&reader) == Some(Liveness::Lost)
    });
    eprintln!(
        "MEASURED: new leader detected the dead node in {:?}",
        started.elapsed()
    );
    assert!(writes(b.addr) > 0);

    // A thaws believing the node alive and that it leads; whatever it
    // tries, its fenced writes are refused: the node stays lost.
    a.proc.signal(Signal::SIGCONT).expect("SIGCONT A");
    let thawed = Instant::now();
    while thawed.elapsed() < Duration::from_millis(2500) {
        assert_eq!(
            liveness(&reader),
            Some(Liveness::Lost),
            "a stale write of the deposed leader landed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until(
        "A to know it no longer leads",
        Duration::from_secs(3),
        || metric(a.addr, "deployd_is_leader") == Some(0),
    );
    assert!(leads(b.addr), "B lost its leadership to a thawed A");
    let log = std::fs::read_to_string(a.proc.log()).expect("A's log");
    eprintln!(
        "A after thawing:\n{}",
        log.lines().rev().take(8).collect::<Vec<_>>().join("\n")
    );
    // A notices either locally (its lease ran out while frozen) or because
    // etcd refused its first fenced write after thawing; both are fine, the
    // second is the fencing doing its job.
    assert!(
        log.contains("leadership lost") || log.contains("not the leader"),
        "A did not notice:\n{log}"
    );

    // B is killed outright: A, campaigning again, takes over and keeps
    // tracking the node.
    b.proc.kill();
    let took = wait_until("A to take over from a killed B", TAKEOVER_LIMIT, || {
        leads(a.addr)
    });
    eprintln!("MEASURED: takeover from a killed leader in {took:?} (lease TTL {TTL_SECS} s)");
    nodes.node_mut(0).restart().expect("restart node");
    let took = wait_until(
        "A to mark the node alive again",
        Duration::from_secs(5),
        || liveness(&reader) == Some(Liveness::Alive),
    );
    eprintln!("MEASURED: restarted node alive under the new leader in {took:?}");

    a.proc.signal(Signal::SIGTERM).expect("SIGTERM A");
    let status = a.proc.wait_exit(Duration::from_secs(10)).expect("A exits");
    assert!(status.success(), "A exited with {status}");
}
