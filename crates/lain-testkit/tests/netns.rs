//! Test networks: addressing, reachability, cut/heal, removal on drop, and
//! the removal of leftovers of a test process that died without cleaning up.

use std::process::{Command, Stdio};
use std::time::Duration;

use lain_testkit::process::run_timeout;
use lain_testkit::sys::{base36, link_names, netns_names, PREFIX, RUN_DIR};
use lain_testkit::{cleanup_stale, TestNetwork};

/// One ICMP echo to `addr` with busybox (iputils `ping` may be missing),
/// run by `busybox` (a command for /bin/busybox, maybe inside a namespace).
fn ping(mut busybox: Command, addr: impl ToString) -> bool {
    busybox
        .args(["ping", "-c", "1", "-W", "2", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn here() -> Command {
    Command::new("/bin/busybox")
}

#[test]
fn namespaces_get_addresses_and_reach_each_other() {
    let net = TestNetwork::create(3).expect("network");
    let gw = net.bridge_addr();
    let [a, x, y, one] = gw.octets();
    assert_eq!((a, one), (10, 1));
    assert_eq!(net.subnet(), format!("10.{x}.{y}.0/24"));
    for (i, ns) in net.namespaces().iter().enumerate() {
        assert_eq!(ns.addr().octets(), [10, x, y, i as u8 + 2]);
        assert!(
            ns.name().starts_with(PREFIX) && ns.name().len() <= 15,
            "{}",
            ns.name()
        );
        assert!(ping(here(), ns.addr()), "root cannot reach {}", ns.addr());
    }
    let busybox_in = |i: usize| net.ns(i).command("/bin/busybox");
    assert!(
        ping(busybox_in(0), net.ns(2).addr()),
        "ns0 cannot reach ns2"
    );
    assert!(ping(busybox_in(1), gw), "ns1 cannot reach the bridge");

    // Cut and heal namespace 1.
    let target = net.ns(1).addr();
    net.ns(1).cut().expect("cut");
    assert!(!ping(here(), target), "a cut namespace still answers");
    assert!(
        !ping(busybox_in(0), target),
        "a cut namespace still answers ns0"
    );
    net.ns(1).heal().expect("heal");
    assert!(
        (0..20).any(|_| ping(here(), target)),
        "a healed namespace does not answer"
    );

    let names: Vec<String> = net
        .namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    let bridge = net.bridge().to_owned();
    drop(net);
    let links = link_names();
    let spaces = netns_names();
    for n in &names {
        assert!(!spaces.contains(n), "namespace {n} remains");
        assert!(!links.contains(n), "veth {n} remains");
    }
    assert!(!links.contains(&bridge), "bridge {bridge} remains");
}

#[test]
fn two_networks_get_different_subnets() {
    let a = TestNetwork::create(1).expect("network a");
    let b = TestNetwork::create(1).expect("network b");
    assert_ne!(a.subnet(), b.subnet());
    assert_ne!(a.bridge(), b.bridge());
}

#[test]
fn leftovers_of_a_dead_test_process_are_removed() {
    // A stand-in owner that lives while the leftovers are made (so that no
    // concurrent cleanup, from this binary or another, takes them half-made)
    // and is then killed, as a test binary would be.
    let mut owner = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn owner");
    let dead = owner.id();
    let tag = format!("{PREFIX}{}-zz", base36(u64::from(dead)));
    let ns = format!("{tag}-0");
    let ip = |args: &[&str]| {
        run_timeout(Command::new("ip").args(args), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    ip(&["link", "add", &tag, "type", "bridge"]);
    ip(&["netns", "add", &ns]);
    ip(&[
        "link", "add", &ns, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    // A process left running inside the namespace, as a dockerd would be.
    let mut stray = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["sleep", "600"])
        .spawn()
        .expect("spawn stray");
    // And a dockerd runtime dir whose exec root a stray process names.
    let run = std::path::Path::new(RUN_DIR).join(format!("{}-zz", base36(u64::from(dead))));
    std::fs::create_dir_all(run.join("exec")).expect("runtime dir");
    // (`$0` names the exec root; `; true` keeps sh from exec'ing sleep.)
    let mut stray2 = Command::new("sh")
        .args(["-c", "sleep 601; true", &format!("{}/exec", run.display())])
        .spawn()
        .expect("spawn stray 2");
    std::thread::sleep(Duration::from_millis(200));

    owner.kill().expect("kill owner");
    owner.wait().expect("reap owner");
    let removed = cleanup_stale();
    eprintln!("removed: {removed:?}");
    assert!(
        exits_soon(&mut stray),
        "the process in the stale namespace lives on"
    );
    assert!(
        exits_soon(&mut stray2),
        "the process of the stale runtime dir lives on"
    );
    assert!(!netns_names().contains(&ns));
    assert!(!link_names().contains(&tag));
    assert!(!link_names().contains(&ns));
    assert!(!run.exists(), "{} remains", run.display());
}

/// Reaps `child` if it exits within 10 s; kills it (and fails) otherwise.
fn exits_soon(child: &mut std::process::Child) -> bool {
    for _ in 0..200 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
