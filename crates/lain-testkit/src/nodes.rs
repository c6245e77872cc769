//! Several Docker "hosts" on one machine: one [`TestNetwork`] and a
//! `dockerd` inside each of its namespaces, each with its own address, data
//! root, exec root and API socket.
//!
//! Inside its namespace a node's dockerd runs with its defaults: its own
//! `docker0` (172.17.0.0/16, private to the namespace), its own iptables,
//! `ip_forward` on in its namespace only. So `-p ADDR:PORT:PORT` on the
//! node's address works and is reachable from the test and the other nodes.
//!
//! Each node answers the Docker API on two endpoints:
//! * [`Node::docker_host`]: a unix socket in the root filesystem. It does not
//!   go through the network, so it keeps working while the node is
//!   [cut](Node::cut) off; use it for setup and inspection.
//! * [`Node::tcp_host`]: `tcp://ADDR:2375`, plain HTTP, reachable only over
//!   the test network. A component under test that should see the node go
//!   away when its network is cut must use this one.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::docker::Dockerd;
use crate::netns::{Netns, TestNetwork};
use crate::{KitError, Result};

/// Port of the node's plain-TCP Docker API on its test network address.
pub const DOCKER_TCP_PORT: u16 = 2375;

/// Options for [`DockerNodes::start`].
#[derive(Debug, Clone)]
pub struct NodesOptions {
    /// Extra `--insecure-registry` entries (`ADDR:PORT` or CIDR).
    pub insecure_registries: Vec<String>,
    /// Allow plain-HTTP registries anywhere on the test network's subnet,
    /// so a [`crate::Registry`] on the bridge address works without knowing
    /// its port in advance. Default: true.
    pub trust_network: bool,
    /// Serve the API on `tcp://ADDR:2375` as well. Default: true.
    pub tcp: bool,
    /// Extra `dockerd` arguments for every node.
    pub args: Vec<String>,
}

impl Default for NodesOptions {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            trust_network: true,
            tcp: true,
            args: Vec::new(),
        }
    }
}

impl NodesOptions {
    pub fn insecure_registry(mut self, addr: impl Into<String>) -> Self {
        self.insecure_registries.push(addr.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// One dockerd in its own network namespace.
#[derive(Debug)]
pub struct Node {
    ns: Netns,
    tcp: bool,
    engine: Dockerd,
}

impl Node {
    /// The node's name: its namespace name, e.g. `lkt1a2b-0-1`. Unique on
    /// the host while the test runs.
    pub fn name(&self) -> &str {
        self.ns.name()
    }

    pub fn index(&self) -> usize {
        self.ns.index()
    }

    /// The node's address on the test network.
    pub fn addr(&self) -> Ipv4Addr {
        self.ns.addr()
    }

    /// `unix:///run/lkt/.../sock` (see the module docs).
    pub fn docker_host(&self) -> String {
        self.engine.docker_host()
    }

    /// `tcp://ADDR:2375`, when enabled (see the module docs).
    pub fn tcp_host(&self) -> Option<String> {
        self.tcp
            .then(|| format!("tcp://{}:{DOCKER_TCP_PORT}", self.ns.addr()))
    }

    /// The node's namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn engine(&self) -> &Dockerd {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Dockerd {
        &mut self.engine
    }

    /// Runs `docker ARGS` against this node over its unix socket.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        self.engine.docker(args)
    }

    /// A command running `program` inside the node's namespace.
    pub fn command(&self, program: &str) -> Command {
        self.ns.command(program)
    }

    /// SIGKILLs the node's dockerd ([`Dockerd::kill`]): the engine is gone,
    /// its containers keep running until [`Node::restart`].
    pub fn kill(&mut self) {
        self.engine.kill();
    }

    /// Kills everything of the node, containers included ([`Dockerd::crash`]).
    pub fn crash(&mut self) {
        self.engine.crash();
    }

    /// Graceful stop ([`Dockerd::stop`]).
    pub fn stop(&mut self) {
        self.engine.stop();
    }

    /// Starts the node's dockerd again on the same data and address.
    pub fn restart(&mut self) -> Result<()> {
        self.engine.restart()
    }

    pub fn is_running(&mut self) -> bool {
        self.engine.is_running()
    }

    /// Cuts the node off the network (its veth goes down): its address and
    /// TCP API stop answering; the unix socket still works.
    pub fn cut(&self) -> Result<()> {
        self.ns.cut()
    }

    /// Reconnects a node after [`Node::cut`].
    pub fn heal(&self) -> Result<()> {
        self.ns.heal()
    }
}

/// `n` dockerd nodes on one test network; all stopped and the network
/// removed on drop, even while a test unwinds.
#[derive(Debug)]
pub struct DockerNodes {
    // Nodes go first (in Drop, in parallel), then the network.
    nodes: Vec<Node>,
    net: TestNetwork,
}

impl DockerNodes {
    /// Creates a network with `n` namespaces and starts a dockerd in each,
    /// in parallel.
    pub fn start(n: usize, opts: NodesOptions) -> Result<Self> {
        let net = TestNetwork::create(n)?;
        let mut registries = opts.insecure_registries.clone();
        if opts.trust_network {
            registries.push(net.subnet());
        }
        let launched: Vec<Result<Dockerd>> = std::thread::scope(|s| {
            let handles: Vec<_> = net
                .namespaces()
                .iter()
                .map(|ns| {
                    let mut args = vec![];
                    if opts.tcp {
                        // --tls=false says plain TCP is intended; without it
                        // dockerd 20.10 sleeps 15 s to warn about it.
                        args.push("--tls=false".to_owned());
                        args.push(format!("--host=tcp://{}:{DOCKER_TCP_PORT}", ns.addr()));
                    }
                    args.extend(
                        registries
                            .iter()
                            .map(|r| format!("--insecure-registry={r}")),
                    );
                    args.extend(opts.args.iter().cloned());
                    let label = format!("node-{}", ns.index());
                    let path = ns.path().to_owned();
                    s.spawn(move || Dockerd::launch(&label, Some(path), args, None))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(KitError::Command {
                            cmd: "start node dockerd".into(),
                            detail: "the starting thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut nodes = Vec::with_capacity(n);
        let mut first_err = None;
        for (ns, r) in net.namespaces().iter().zip(launched) {
            match r {
                Ok(engine) => nodes.push(Node {
                    ns: ns.clone(),
                    tcp: opts.tcp,
                    engine,
                }),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let all = Self { nodes, net };
        match first_err {
            // Dropping `all` stops the nodes that did start.
            Some(e) => Err(e),
            None => Ok(all),
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// Node `i`; panics (a test bug) when out of range.
    pub fn node(&self, i: usize) -> &Node {
        let n = self.nodes.len();
        self.nodes
            .get(i)
            .unwrap_or_else(|| panic!("{n} nodes started, no node {i}"))
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        let n = self.nodes.len();
        self.nodes
            .get_mut(i)
            .unwrap_or_else(|| panic!("{n} nodes started, no node {i}"))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn network(&self) -> &TestNetwork {
        &self.net
    }

    /// The root namespace's address on the nodes' network: bind servers
    /// the nodes must reach (a registry) here.
    pub fn bridge_addr(&self) -> Ipv4Addr {
        self.net.bridge_addr()
    }
}

impl Drop for DockerNodes {
    fn drop(&mut self) {
        // Stopping takes a second or more per node; do them side by side.
        // The drops themselves stay on this thread: a ServerDir keeps its
        // logs only when it sees the test thread panicking.
        std::thread::scope(|s| {
            for node in &mut self.nodes {
                s.spawn(move || node.engine.tear_down());
            }
        });
        self.nodes.clear();
    }
}
