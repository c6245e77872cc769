//! Test networks: one bridge in the root namespace and N network
//! namespaces wired to it with veth pairs, so several "hosts" (dockerd
//! nodes) can run on one machine, each with its own address.
//!
//! Scheme, for a network with id `{P}-{N}` (owner pid and per-process
//! counter, base 36; see [`crate::sys`]):
//!
//! | object | name | address |
//! |---|---|---|
//! | bridge (root ns) | `lkt{P}-{N}` | `10.X.Y.1/24` |
//! | namespace i | `lkt{P}-{N}-{i}` (`/run/netns/...`) | |
//! | veth, bridge end (root ns) | `lkt{P}-{N}-{i}` | |
//! | veth, namespace end | `eth0` | `10.X.Y.(i+2)/24`, default route via `10.X.Y.1` |
//!
//! `X.Y` is derived from pid and counter and checked against every route and
//! address on the host before use. Root namespace ↔ node and node ↔ node
//! traffic is switched by the bridge, never routed, so the host's
//! `net.ipv4.ip_forward` is left alone.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::sys::{self, ip, PREFIX};
use crate::{KitError, Result};

/// Serializes subnet choice within this process; across processes a
/// collision is detected after the address is added (and retried).
static ALLOC: Mutex<()> = Mutex::new(());

/// One network namespace of a [`TestNetwork`].
#[derive(Debug, Clone)]
pub struct Netns {
    name: String,
    path: PathBuf,
    addr: Ipv4Addr,
    index: usize,
}

impl Netns {
    /// The namespace name (`ip netns list`); also the name of the veth end
    /// on the bridge.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, for `nsenter --net=PATH`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This namespace's address on the test network (`10.X.Y.(i+2)`).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// The veth end on the bridge (root namespace).
    pub fn veth(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace. Uses `nsenter
    /// --net` rather than `ip netns exec`: the latter remounts /sys in a new
    /// mount namespace, which hides the cgroup mounts dockerd needs.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path.display()))
            .arg(program);
        cmd
    }

    /// Cuts the namespace off the network by setting its bridge-side veth
    /// down: its address stops answering until [`Netns::heal`].
    pub fn cut(&self) -> Result<()> {
        ip(&["link", "set", &self.name, "down"]).map(drop)
    }

    /// Reconnects a namespace cut with [`Netns::cut`].
    pub fn heal(&self) -> Result<()> {
        ip(&["link", "set", &self.name, "up"]).map(drop)
    }
}

/// A bridge with `n` namespaces attached; all removed on drop.
#[derive(Debug)]
pub struct TestNetwork {
    id: String,
    bridge: String,
    net: [u8; 3],
    namespaces: Vec<Netns>,
    bridge_made: bool,
}

impl TestNetwork {
    /// Creates the bridge and `namespaces` namespaces (0 is allowed: a bare
    /// bridge, e.g. for a root-namespace dockerd). Removes stale kit objects
    /// of dead test processes first. Needs root.
    pub fn create(namespaces: usize) -> Result<Self> {
        if namespaces > 200 {
            return Err(KitError::Command {
                cmd: "create test network".into(),
                detail: format!("{namespaces} namespaces asked, at most 200 fit a /24"),
            });
        }
        cleanup_stale();
        let id = sys::unique_id();
        let bridge = format!("{PREFIX}{id}");
        let last = format!(
            "{bridge}-{}",
            sys::base36(namespaces.saturating_sub(1) as u64)
        );
        if last.len() > sys::IFNAME_MAX {
            return Err(KitError::Command {
                cmd: "create test network".into(),
                detail: format!("interface name {last} exceeds {} chars", sys::IFNAME_MAX),
            });
        }
        // From here on `Drop` undoes whatever part was made.
        let mut net = Self {
            id,
            bridge,
            net: [10, 0, 0],
            namespaces: Vec::new(),
            bridge_made: false,
        };
        net.make_bridge()?;
        for i in 0..namespaces {
            net.add_namespace(i)?;
        }
        Ok(net)
    }

    fn make_bridge(&mut self) -> Result<()> {
        let _guard = ALLOC.lock().unwrap_or_else(|p| p.into_inner());
        let counter =
            u64::from_str_radix(self.id.rsplit('-').next().unwrap_or("0"), 36).unwrap_or(0);
        let seed = (u64::from(std::process::id()) << 20) ^ counter;
        ip(&["link", "add", &self.bridge, "type", "bridge"])?;
        self.bridge_made = true;
        for attempt in 0..64u64 {
            let v = splitmix(seed.wrapping_add(attempt.wrapping_mul(0x9E37_79B9)));
            // 10.16.0.0-10.239.255.0: away from the low 10.0.x ranges that
            // hosts and VPNs like to use.
            let net = [10, 16 + (v % 224) as u8, (v >> 8) as u8];
            if used_prefixes()
                .iter()
                .any(|&(a, len)| overlaps(net, a, len))
            {
                continue;
            }
            let cidr = format!("{}.{}.{}.1/24", net[0], net[1], net[2]);
            ip(&["addr", "add", &cidr, "dev", &self.bridge])?;
            // Another process may have picked the same /24 at the same
            // moment: if anyone else holds an address in it, back off.
            if foreign_addr_in(net, &self.bridge) {
                let _ = ip(&["addr", "del", &cidr, "dev", &self.bridge]);
                continue;
            }
            self.net = net;
            ip(&["link", "set", &self.bridge, "up"])?;
            return Ok(());
        }
        Err(KitError::Command {
            cmd: "choose a test subnet".into(),
            detail: "64 candidate 10.X.Y.0/24 subnets all collide with host routes; \
                     remove stale `lkt*` bridges (`ip -br link`) or free some 10/8 space"
                .into(),
        })
    }

    fn add_namespace(&mut self, i: usize) -> Result<()> {
        let name = format!("{}-{}", self.bridge, sys::base36(i as u64));
        let path = PathBuf::from(format!("/run/netns/{name}"));
        let addr = Ipv4Addr::new(self.net[0], self.net[1], self.net[2], (i + 2) as u8);
        ip(&["netns", "add", &name])?;
        self.namespaces.push(Netns {
            name: name.clone(),
            path,
            addr,
            index: i,
        });
        // The namespace end is created directly inside the namespace, so
        // it never needs a (length-limited) temporary name in the root one.
        ip(&[
            "link", "add", &name, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ])?;
        ip(&["link", "set", &name, "master", &self.bridge])?;
        ip(&["link", "set", &name, "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &name, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &name,
            "route",
            "add",
            "default",
            "via",
            &self.bridge_addr().to_string(),
        ])?;
        Ok(())
    }

    /// `{pid}-{n}`: the id shared by this network's names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bridge's interface name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The root namespace's address on this network (`10.X.Y.1`): bind a
    /// server here (e.g. a registry) to make it reachable from the nodes.
    pub fn bridge_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], 1)
    }

    /// The network in CIDR form, `10.X.Y.0/24`.
    pub fn subnet(&self) -> String {
        format!("{}.{}.{}.0/24", self.net[0], self.net[1], self.net[2])
    }

    pub fn namespaces(&self) -> &[Netns] {
        &self.namespaces
    }

    /// Namespace `i`; panics (a test bug) when out of range.
    pub fn ns(&self, i: usize) -> &Netns {
        self.namespaces.get(i).unwrap_or_else(|| {
            panic!(
                "test network has {} namespaces, not {}",
                self.namespaces.len(),
                i + 1
            )
        })
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        // Callers stop the processes inside first (DockerNodes does); any
        // that survived would keep a namespace and its veth alive, so kill
        // them rather than leak.
        for ns in &self.namespaces {
            let stragglers = sys::processes_in_netns(&ns.path);
            if !stragglers.is_empty() {
                eprintln!(
                    "lain-testkit: killing {stragglers:?} still in namespace {}",
                    ns.name
                );
                sys::kill_trees(&stragglers, Duration::from_secs(10));
            }
            if let Err(e) = ip(&["netns", "del", &ns.name]) {
                eprintln!("lain-testkit: {e}");
            }
            // Deleting the namespace normally takes the veth pair with it;
            // delete explicitly in case something still pins the namespace.
            if sys::link_names().contains(&ns.name) {
                let _ = ip(&["link", "del", &ns.name]);
            }
        }
        if self.bridge_made {
            if let Err(e) = ip(&["link", "del", &self.bridge]) {
                eprintln!("lain-testkit: {e}");
            }
        }
    }
}

/// Removes kit namespaces, veths, bridges and dockerd runtime dirs whose
/// owner process is dead (left by a test binary killed with SIGKILL), and
/// kills processes still running in or for them. Objects of live owners
/// are never touched. Called whenever a network or dockerd is created;
/// returns what was removed.
pub fn cleanup_stale() -> Vec<String> {
    let stale = |name: &str| sys::owner_of(name).is_some_and(|pid| !sys::pid_alive(pid));
    let mut removed = crate::docker::cleanup_stale_engines();
    for name in sys::netns_names() {
        if !name.starts_with(PREFIX) || !stale(&name) {
            continue;
        }
        let path = PathBuf::from(format!("/run/netns/{name}"));
        let procs = sys::processes_in_netns(&path);
        if !procs.is_empty() {
            sys::kill_trees(&procs, Duration::from_secs(10));
        }
        if ip(&["netns", "del", &name]).is_ok() {
            removed.push(format!("netns {name}"));
        }
    }
    for name in sys::link_names() {
        if !name.starts_with(PREFIX) || !stale(&name) {
            continue;
        }
        if ip(&["link", "del", &name]).is_ok() {
            removed.push(format!("link {name}"));
        }
    }
    if !removed.is_empty() {
        eprintln!("lain-testkit: removed stale leftovers of dead test runs: {removed:?}");
    }
    removed
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Every IPv4 prefix the host routes or holds an address in.
fn used_prefixes() -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    let routes = ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default();
    let addrs = ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
    let words = routes
        .lines()
        .flat_map(|l| {
            // "10.1.2.0/24 dev ..." or "local 10.1.2.1 dev ..." etc.
            let mut w = l.split_whitespace();
            let first = w.next().unwrap_or("");
            let target = match first {
                "local" | "broadcast" | "unicast" | "blackhole" | "unreachable" | "prohibit"
                | "throw" | "nat" | "anycast" | "multicast" => w.next().unwrap_or(""),
                other => other,
            };
            std::iter::once(target.to_owned())
        })
        .chain(addrs.lines().filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "inet")?;
            w.next().map(str::to_owned)
        }))
        .collect::<Vec<_>>();
    for w in words {
        if w == "default" {
            continue;
        }
        let (a, len) = w.split_once('/').unwrap_or((&w, "32"));
        if let (Ok(a), Ok(len)) = (a.parse::<Ipv4Addr>(), len.parse::<u8>()) {
            out.push((a, len.min(32)));
        }
    }
    out
}

/// Whether `10.X.Y.0/24` overlaps `addr/len`.
fn overlaps(net: [u8; 3], addr: Ipv4Addr, len: u8) -> bool {
    let ours = u32::from(Ipv4Addr::new(net[0], net[1], net[2], 0));
    let theirs = u32::from(addr);
    let shorter = len.min(24);
    let mask = if shorter == 0 {
        0
    } else {
        u32::MAX << (32 - shorter)
    };
    ours & mask == theirs & mask
}

/// Whether an interface other than `ours` has an address in `10.X.Y.0/24`.
fn foreign_addr_in(net: [u8; 3], ours: &str) -> bool {
    let addrs = ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
    addrs.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let dev = w.get(1).copied().unwrap_or("");
        let inet = w
            .iter()
            .position(|x| *x == "inet")
            .and_then(|i| w.get(i + 1))
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        dev != ours && inet.is_some_and(|a| overlaps(net, a, 24))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_checks_both_directions() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(overlaps([10, 20, 30], a("10.0.0.0"), 8));
        assert!(overlaps([10, 20, 30], a("10.20.30.7"), 32));
        assert!(!overlaps([10, 20, 30], a("10.20.31.0"), 24));
        assert!(!overlaps([10, 20, 30], a("192.0.2.0"), 24));
        assert!(overlaps([10, 20, 30], a("0.0.0.0"), 0));
    }
}
