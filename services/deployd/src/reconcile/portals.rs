//! Portals: how a client reaches a service it uses.
//!
//! A service app's portal proc is not run by count. On every node where a
//! client app (one whose procs list the portal in `services`) has a
//! container, one portal container per (client app, portal) runs the
//! portal's image and command on the *client's* network, under the names
//! console resolved (`{service}.{app}.lain`, and the bare service name).
//! So the client's containers reach it by name, and nothing else on the
//! node can. The portal reaches the service's instances at their
//! published addresses, which deployd writes into
//! [`BACKENDS_FILE`] inside it, one `host:port` per line, whenever they
//! change (and before it starts).
//!
//! Level-triggered like the rest of the reconciler: each round computes
//! the portal containers that should exist from desired procs, instance
//! records and container inventories, lists the portal containers of the
//! nodes concerned, and creates, restarts, refreshes or removes them. A
//! round runs when a desired proc or a container changes, and at least
//! every [`RESYNC`]. `allow_clients` is checked here as well as by
//! console, so a service that drops a client takes its route away.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lain_store::{DesiredProc, DockerEndpoint};
use sha2::{Digest, Sha256};

use super::spec::{network_name, spec_hash};
use super::sync::{self, Made, NodeAccess, Slot};
use super::Ctx;
use crate::runtime::{ContainerState, PortalContainer, RuntimeError};

/// Where a portal finds the service's instances.
pub const BACKENDS_FILE: &str = "/lain/portal/backends";
/// A round runs at least this often (restarts, new client nodes).
pub const RESYNC: Duration = Duration::from_secs(5);
/// Rounds are at least this far apart, however often they are woken.
const MIN_GAP: Duration = Duration::from_millis(500);
/// Every node is listed for stray portals this often; between sweeps only
/// the nodes known to hold or want one are.
const SWEEP: Duration = Duration::from_secs(60);
/// Restarts of one portal container inside [`RESTART_WINDOW`] before it is
/// left stopped until the window passes.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(120);

/// One portal container that should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub node: String,
    pub client: String,
    /// The service app and its portal proc.
    pub app: String,
    pub proc: String,
    pub aliases: BTreeSet<String>,
    /// The service instances' published addresses, sorted.
    pub backends: Vec<String>,
    /// The container's identity: the portal's spec, the client and the
    /// names; a change replaces the container.
    pub hash: String,
}

/// The container name of a portal: one per client app and portal on a
/// node.
pub fn container_name(client: &str, app: &str, proc: &str) -> String {
    format!("lain-portal.{client}.{app}.{proc}")
}

/// The backends file's contents.
pub fn backends_file(backends: &[String]) -> String {
    backends.iter().map(|b| format!("{b}\n")).collect()
}

/// Why a client gets no portal (for the log and the client's events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub client: String,
    pub app: String,
    pub proc: String,
    pub why: String,
}

/// What a round works from.
#[derive(Debug, Default)]
pub struct Wants {
    /// The portal containers that should run.
    pub wanted: Vec<Wanted>,
    /// The uses that get no portal, with why.
    pub refused: Vec<Refused>,
    /// Client apps, and portal procs `(app, proc)`, whose desired value
    /// cannot be read: their portal containers are left as they are, as
    /// the workers leave such procs' instances.
    pub held_clients: BTreeSet<String>,
    pub held_portals: BTreeSet<(String, String)>,
}

impl Wants {
    fn holds(&self, c: &PortalContainer) -> bool {
        self.held_clients.contains(&c.client)
            || self.held_portals.contains(&(c.app.clone(), c.proc.clone()))
    }
}

/// What the portal containers should be, from the leader's state.
pub fn wanted(state: &super::state::State) -> Wants {
    let mut out: BTreeMap<(String, String, String, String), Wanted> = BTreeMap::new();
    let mut refused = BTreeMap::new();
    let held_clients: BTreeSet<String> = state.invalid.keys().map(|(a, _)| a.clone()).collect();
    let held_portals: BTreeSet<(String, String)> = state.invalid.keys().cloned().collect();
    for (id, d) in &state.desired {
        if d.services.is_empty() {
            continue;
        }
        let nodes: BTreeSet<String> = state
            .containers_of(id)
            .into_iter()
            .filter(|(_, c)| !matches!(c.state, ContainerState::Dead | ContainerState::Removing))
            .map(|(n, _)| n)
            .filter(|n| state.actionable(n))
            .collect();
        for u in &d.services {
            let refuse = |why: String| Refused {
                client: d.app.clone(),
                app: u.app.clone(),
                proc: u.portal.clone(),
                why,
            };
            let Some(p) = state.portals.get(&(u.app.clone(), u.portal.clone())) else {
                if held_portals.contains(&(u.app.clone(), u.portal.clone())) {
                    continue;
                }
                let r = refuse(format!(
                    "app {} has no deployed portal {}; deploy {} (with its portal) for {} to reach service {}",
                    u.app, u.portal, u.app, d.app, u.service
                ));
                refused.insert((r.client.clone(), r.app.clone(), r.proc.clone()), r);
                continue;
            };
            // Always there: check_and_insert keeps portals with a spec.
            let Some(spec) = p.portal.as_ref() else {
                continue;
            };
            if !spec.allows(&d.app) {
                let r = refuse(format!(
                    "portal {} of {} does not allow client {} (allow_clients: {}); it gets no route to service {}",
                    u.portal,
                    u.app,
                    d.app,
                    spec.allow_clients.join(", "),
                    u.service
                ));
                refused.insert((r.client.clone(), r.app.clone(), r.proc.clone()), r);
                continue;
            }
            let backends: Vec<String> = state
                .records
                .get(&(u.app.clone(), spec.service_proc.clone()))
                .map(|rs| {
                    let mut v: Vec<String> = rs
                        .values()
                        .filter(|r| r.ready())
                        .filter_map(|r| r.obs.address.clone())
                        .collect();
                    v.sort();
                    v.dedup();
                    v
                })
                .unwrap_or_default();
            for node in &nodes {
                let w = out
                    .entry((node.clone(), d.app.clone(), u.app.clone(), u.portal.clone()))
                    .or_insert_with(|| Wanted {
                        node: node.clone(),
                        client: d.app.clone(),
                        app: u.app.clone(),
                        proc: u.portal.clone(),
                        aliases: BTreeSet::new(),
                        backends: backends.clone(),
                        hash: String::new(),
                    });
                w.aliases.extend(u.aliases.iter().cloned());
            }
        }
    }
    let mut list: Vec<Wanted> = out.into_values().collect();
    for w in &mut list {
        if let Some(p) = state.portals.get(&(w.app.clone(), w.proc.clone())) {
            w.hash = identity(p, &w.client, &w.aliases);
        }
    }
    Wants {
        wanted: list,
        refused: refused.into_values().collect(),
        held_clients,
        held_portals,
    }
}

/// The hash naming what a portal container runs.
fn identity(p: &DesiredProc, client: &str, aliases: &BTreeSet<String>) -> String {
    let mut h = Sha256::new();
    h.update(spec_hash(p).as_bytes());
    h.update([0]);
    h.update(client.as_bytes());
    for a in aliases {
        h.update([0]);
        h.update(a.as_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the controller remembers between rounds.
#[derive(Default)]
struct Local {
    /// Backends last written into each container, by container id.
    written: HashMap<String, Vec<String>>,
    /// Recent restarts by container name.
    restarts: HashMap<String, Vec<Instant>>,
    /// Nodes that held or wanted a portal at the last round.
    nodes: BTreeSet<String>,
    last_sweep: Option<Instant>,
    /// Refusals already logged, so each is said once.
    refused: BTreeSet<(String, String, String)>,
    /// The last failure recorded per portal container name, so a portal
    /// that keeps failing the same way is one event, not one per round.
    failed: HashMap<String, String>,
}

/// Runs portal rounds until the reconciler stops (it aborts this task).
pub async fn run(ctx: Arc<Ctx>) {
    let mut local = Local::default();
    loop {
        let started = Instant::now();
        round(&ctx, &mut local).await;
        tokio::time::sleep(MIN_GAP.saturating_sub(started.elapsed())).await;
        let _ = tokio::time::timeout(RESYNC, ctx.portals.notified()).await;
        if ctx.is_closed() {
            return;
        }
    }
}

async fn round(ctx: &Arc<Ctx>, local: &mut Local) {
    let (wants, nodes) = {
        let state = ctx.state();
        let nodes: BTreeMap<String, (DockerEndpoint, String)> = state
            .nodes
            .iter()
            .filter(|(n, _)| state.actionable(n))
            .map(|(n, reg)| (n.clone(), (reg.docker.clone(), reg.address.clone())))
            .collect();
        (wanted(&state), nodes)
    };
    let refused = &wants.refused;
    let seen: BTreeSet<(String, String, String)> = refused
        .iter()
        .map(|r| (r.client.clone(), r.app.clone(), r.proc.clone()))
        .collect();
    for r in refused {
        if !local
            .refused
            .contains(&(r.client.clone(), r.app.clone(), r.proc.clone()))
        {
            ctx.event(
                &r.client,
                None,
                super::plan::PlannedEvent {
                    kind: lain_store::EventKind::PortalFailed,
                    severity: lain_store::Severity::Warning,
                    message: r.why.clone(),
                    instance: None,
                },
                None,
            )
            .await;
        }
    }
    local.refused = seen;

    let sweep = local.last_sweep.is_none_or(|t| t.elapsed() >= SWEEP);
    let mut by_node: BTreeMap<&str, Vec<&Wanted>> = BTreeMap::new();
    for w in &wants.wanted {
        by_node.entry(w.node.as_str()).or_default().push(w);
    }
    let visit: BTreeSet<String> = if sweep {
        local.last_sweep = Some(Instant::now());
        nodes.keys().cloned().collect()
    } else {
        by_node
            .keys()
            .map(|n| n.to_string())
            .chain(local.nodes.iter().cloned())
            .filter(|n| nodes.contains_key(n))
            .collect()
    };
    let mut holding = BTreeSet::new();
    let mut live_ids = BTreeSet::new();
    for node in &visit {
        let Some((endpoint, address)) = nodes.get(node) else {
            continue;
        };
        let access = match ctx.access(node, endpoint, address) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "portals: cannot reach the node's engine");
                holding.insert(node.clone());
                continue;
            }
        };
        let want = by_node.get(node.as_str()).cloned().unwrap_or_default();
        match sync_node(ctx, local, node, &access, &want, &wants).await {
            Ok(ids) => {
                if !ids.is_empty() || !want.is_empty() {
                    holding.insert(node.clone());
                }
                live_ids.extend(ids);
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "portals: cannot list the node's portal containers");
                holding.insert(node.clone());
            }
        }
    }
    // Nodes not visited keep what they had.
    for n in &local.nodes {
        if !visit.contains(n) {
            holding.insert(n.clone());
        }
    }
    local.nodes = holding;
    if sweep {
        local.written.retain(|id, _| live_ids.contains(id));
    }
    // Forget what no longer matters, so these maps stay as small as the
    // portals that run.
    let names: BTreeSet<String> = wants
        .wanted
        .iter()
        .map(|w| container_name(&w.client, &w.app, &w.proc))
        .collect();
    local.failed.retain(|name, _| names.contains(name));
    local.restarts.retain(|_, recent| {
        recent.retain(|t| t.elapsed() < RESTART_WINDOW);
        !recent.is_empty()
    });
}

/// Makes one node's portal containers match `want`; returns the ids of
/// the portal containers left on it.
async fn sync_node(
    ctx: &Arc<Ctx>,
    local: &mut Local,
    node: &str,
    access: &NodeAccess,
    want: &[&Wanted],
    wants: &Wants,
) -> Result<Vec<String>, RuntimeError> {
    let existing = access.engine.list_portals().await?;
    let mut by_name: HashMap<&str, &PortalContainer> =
        existing.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut live = Vec::new();
    for w in want {
        let name = container_name(&w.client, &w.app, &w.proc);
        let found = by_name.remove(name.as_str());
        let result = match found {
            Some(c) if c.spec_hash == w.hash => keep(ctx, local, access, c, w).await,
            Some(c) => {
                tracing::info!(node, portal = %name, "portal spec changed; replacing its container");
                remove(ctx, local, access, c).await;
                create(ctx, local, node, access, w, &name).await
            }
            None => create(ctx, local, node, access, w, &name).await,
        };
        match result {
            Ok(id) => {
                local.failed.remove(&name);
                live.push(id)
            }
            Err(e) if local.failed.get(&name) == Some(&e) => {
                tracing::debug!(node, portal = %name, error = %e, "portal still not running");
            }
            Err(e) => {
                tracing::warn!(node, portal = %name, error = %e, "portal not running");
                local.failed.insert(name.clone(), e.clone());
                ctx.event(
                    &w.client,
                    None,
                    super::plan::PlannedEvent {
                        kind: lain_store::EventKind::PortalFailed,
                        severity: lain_store::Severity::Warning,
                        message: format!(
                            "portal {} of {} on node {node} is not running: {e}",
                            w.proc, w.app
                        ),
                        instance: None,
                    },
                    None,
                )
                .await;
            }
        }
    }
    // No client left for these on the node (unless unreadable desired
    // values hide whether there is).
    for c in by_name.into_values().filter(|c| !wants.holds(c)) {
        tracing::info!(node, portal = %c.name, "no client left on the node; removing the portal");
        remove(ctx, local, access, c).await;
    }
    Ok(live)
}

async fn remove(ctx: &Arc<Ctx>, local: &mut Local, access: &NodeAccess, c: &PortalContainer) {
    let timeout = ctx
        .state()
        .portals
        .get(&(c.app.clone(), c.proc.clone()))
        .map(|p| p.kill_timeout_secs)
        .unwrap_or(10);
    if c.state == ContainerState::Running {
        if let Err(e) = access
            .engine
            .stop(&c.id, Duration::from_secs(u64::from(timeout)))
            .await
        {
            tracing::warn!(portal = %c.name, error = %e, "cannot stop a portal container");
        }
    }
    if let Err(e) = access.engine.remove(&c.id).await {
        tracing::warn!(portal = %c.name, error = %e, "cannot remove a portal container");
    }
    local.written.remove(&c.id);
}

/// Keeps an existing container current: backends written, running.
async fn keep(
    ctx: &Arc<Ctx>,
    local: &mut Local,
    access: &NodeAccess,
    c: &PortalContainer,
    w: &Wanted,
) -> Result<String, String> {
    if local.written.get(&c.id) != Some(&w.backends) {
        write_backends(access, &c.id, &w.backends).await?;
        local.written.insert(c.id.clone(), w.backends.clone());
    }
    if c.state != ContainerState::Running {
        let recent = local.restarts.entry(c.name.clone()).or_default();
        recent.retain(|t| t.elapsed() < RESTART_WINDOW);
        if recent.len() >= MAX_RESTARTS {
            return Err(format!(
                "it exited {MAX_RESTARTS} times in {} s; it is started again when that window passes (see its logs with `docker logs {}` on the node)",
                RESTART_WINDOW.as_secs(),
                c.name
            ));
        }
        recent.push(Instant::now());
        start(ctx, access, &c.id, w).await?;
    }
    Ok(c.id.clone())
}

async fn write_backends(access: &NodeAccess, id: &str, backends: &[String]) -> Result<(), String> {
    access
        .engine
        .put_file(id, BACKENDS_FILE, backends_file(backends).as_bytes(), 0o644)
        .await
        .map_err(|e| format!("cannot write {BACKENDS_FILE}: {e}"))
}

/// The portal's desired proc, or why it is gone.
fn portal_of(ctx: &Ctx, w: &Wanted) -> Result<DesiredProc, String> {
    ctx.state()
        .portals
        .get(&(w.app.clone(), w.proc.clone()))
        .cloned()
        .ok_or_else(|| format!("portal {} of {} is no longer deployed", w.proc, w.app))
}

/// The container spec of a portal, with its secrets.
async fn portal_spec(
    ctx: &Ctx,
    access: &NodeAccess,
    w: &Wanted,
    name: &str,
) -> Result<crate::runtime::ContainerSpec, String> {
    let p = portal_of(ctx, w)?;
    let slot = format!("portal-{}", w.client);
    let mut spec = sync::spec_for(
        ctx,
        access,
        &p,
        Slot {
            instance: 0,
            slot: &slot,
            generation: p.generation,
            spec_hash: &w.hash,
        },
    )
    .await?;
    spec.name = name.to_owned();
    // Reached over the client's network only: nothing is published.
    spec.port = None;
    // A portal keeps no data: it can run on any node a client does.
    spec.volumes.clear();
    spec.network = network_name(&w.client);
    spec.aliases = w.aliases.iter().cloned().collect();
    spec.portal_client = Some(w.client.clone());
    let service = p
        .portal
        .as_ref()
        .map(|s| s.service.clone())
        .unwrap_or_default();
    spec.env.extend([
        ("LAIN_CLIENT_APP".to_owned(), w.client.clone()),
        ("LAIN_SERVICE".to_owned(), service),
        (
            "LAIN_PORTAL_BACKENDS_FILE".to_owned(),
            BACKENDS_FILE.to_owned(),
        ),
    ]);
    Ok(spec)
}

async fn create(
    ctx: &Arc<Ctx>,
    local: &mut Local,
    node: &str,
    access: &NodeAccess,
    w: &Wanted,
    name: &str,
) -> Result<String, String> {
    let spec = portal_spec(ctx, access, w, name).await?;
    let engine = &access.engine;
    let mut conflicts = 0;
    let id = loop {
        match sync::create_pulling(ctx, engine, node, &spec).await? {
            Made::Id(id) => break id,
            Made::Conflict if conflicts < 2 => {
                conflicts += 1;
                // Left by a round that failed half-way: replace it, if it
                // is this very portal.
                let stale = engine
                    .list_portals()
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|c| {
                        c.name == name && c.client == w.client && c.app == w.app && c.proc == w.proc
                    });
                match stale {
                    Some(c) => remove(ctx, local, access, &c).await,
                    None => {
                        return Err(format!(
                            "a container named {name} exists on node {node} and is not this portal; remove it there with `docker rm -f {name}`"
                        ))
                    }
                }
            }
            Made::Conflict => {
                return Err(format!(
                    "the name {name} stays taken on node {node}; remove it there with `docker rm -f {name}`"
                ))
            }
        }
    };
    write_backends(access, &id, &w.backends).await?;
    local.written.insert(id.clone(), w.backends.clone());
    if let Err(e) = sync::start_spec(engine, &id, &spec).await {
        return Err(e.to_string());
    }
    tracing::info!(node, portal = %name, client = %w.client, backends = w.backends.len(), "portal started");
    Ok(id)
}

async fn start(ctx: &Ctx, access: &NodeAccess, id: &str, w: &Wanted) -> Result<(), String> {
    let name = container_name(&w.client, &w.app, &w.proc);
    let spec = portal_spec(ctx, access, w, &name).await?;
    sync::start_spec(&access.engine, id, &spec)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert_eq!(
            container_name("web-app", "echo", "portal.portal-echo"),
            "lain-portal.web-app.echo.portal.portal-echo"
        );
        assert_eq!(backends_file(&[]), "");
        assert_eq!(
            backends_file(&["10.0.0.2:32768".into(), "10.0.0.3:32769".into()]),
            "10.0.0.2:32768\n10.0.0.3:32769\n"
        );
    }

    use crate::reconcile::plan::Record;
    use crate::reconcile::state::State;
    use lain_store::{
        Capacity, DockerEndpoint, Health, InstanceState, Liveness, NodeRegistration,
        ObservedInstance, ObservedNode, PortalSpec, ProcType, ServiceUse,
    };

    fn proc(app: &str, proc: &str) -> DesiredProc {
        let mut d = crate::reconcile::spec::tests::desired();
        d.app = app.into();
        d.proc = proc.into();
        d
    }

    fn container(app: &str, proc: &str, n: u32) -> crate::runtime::LainContainer {
        crate::runtime::LainContainer {
            id: format!("{app}-{proc}-{n}"),
            name: format!("lain.{app}.{proc}.{n}-1"),
            app: app.into(),
            proc: proc.into(),
            instance: n,
            slot: format!("{n}-1"),
            generation: 1,
            spec_hash: "h".into(),
            state: ContainerState::Running,
            exit_code: None,
            started_at_ms: None,
            finished_at_ms: None,
            host_port: None,
            oom_killed: false,
            secrets: false,
        }
    }

    /// Two alive nodes; `svc` serves `echo` through a portal that lets
    /// `client` in; `client` runs on n1 and n2, `other` on n1.
    fn cluster() -> State {
        let mut state = State::default();
        for n in ["n1", "n2"] {
            state.nodes.insert(
                n.into(),
                NodeRegistration {
                    docker: DockerEndpoint::Unix {
                        socket: "/run/docker.sock".into(),
                    },
                    address: "10.0.0.1".into(),
                    labels: Default::default(),
                    capacity: Capacity {
                        cpu_millis: 1000,
                        memory_bytes: 1 << 30,
                    },
                    schedulable: true,
                    draining: false,
                    drain_volumes: false,
                    registered_at_ms: 0,
                },
            );
            state.liveness.insert(
                n.into(),
                ObservedNode {
                    liveness: Liveness::Alive,
                    last_seen_ms: 0,
                    since_ms: 0,
                    docker_version: None,
                    instances: 0,
                    message: None,
                },
            );
        }
        let mut portal = proc("svc", "portal.portal-echo");
        portal.proc_type = ProcType::Portal;
        portal.portal = Some(PortalSpec {
            service: "echo".into(),
            service_proc: "worker.echo".into(),
            allow_clients: vec!["client".into()],
        });
        state
            .portals
            .insert(("svc".into(), portal.proc.clone()), portal);
        let uses = vec![ServiceUse {
            app: "svc".into(),
            portal: "portal.portal-echo".into(),
            service: "echo".into(),
            aliases: vec!["echo.svc.lain".into(), "echo".into()],
        }];
        for app in ["client", "other"] {
            let mut d = proc(app, "worker");
            d.services = uses.clone();
            state.desired.insert((app.into(), "worker".into()), d);
        }
        state.set_inventory(
            "n1",
            vec![
                container("client", "worker", 1),
                container("other", "worker", 1),
            ],
        );
        state.set_inventory("n2", vec![container("client", "worker", 2)]);
        let ready = |n: u32, addr: &str| Record {
            slot: format!("{n}-1"),
            obs: ObservedInstance {
                node: "n1".into(),
                container_id: None,
                generation: 1,
                release: "1".into(),
                image: "i".into(),
                state: InstanceState::Running,
                health: Health::Healthy,
                address: Some(addr.into()),
                restarts: 0,
                started_at_ms: None,
                updated_at_ms: 0,
                message: None,
                instance: n,
                spec: "h".into(),
                recent_restarts_ms: vec![],
                volumes_from: None,
            },
            rev: 1,
        };
        state.records.insert(
            ("svc".into(), "worker.echo".into()),
            [("1-1".to_owned(), ready(1, "10.0.0.1:32000"))].into(),
        );
        state
    }

    fn placed(w: &Wants) -> Vec<(String, String)> {
        w.wanted
            .iter()
            .map(|w| (w.node.clone(), w.client.clone()))
            .collect()
    }

    #[test]
    fn a_portal_per_client_node_with_the_services_backends() {
        let state = cluster();
        let w = wanted(&state);
        assert_eq!(
            placed(&w),
            [
                ("n1".to_owned(), "client".to_owned()),
                ("n2".into(), "client".into())
            ]
        );
        assert_eq!(w.wanted[0].backends, ["10.0.0.1:32000"]);
        assert!(w.wanted[0].aliases.contains("echo.svc.lain"));
        assert_eq!(w.refused.len(), 1, "{:?}", w.refused);
        assert_eq!(w.refused[0].client, "other");
        assert!(w.refused[0].why.contains("does not allow client other"));
    }

    #[test]
    fn the_last_client_leaving_a_node_takes_its_portal_away() {
        let mut state = cluster();
        state.set_inventory("n2", vec![]);
        assert_eq!(
            placed(&wanted(&state)),
            [("n1".to_owned(), "client".to_owned())]
        );
        state
            .desired
            .remove(&("client".to_owned(), "worker".to_owned()));
        assert!(wanted(&state).wanted.is_empty());
    }

    #[test]
    fn unreadable_desired_values_hold_their_portals() {
        let mut state = cluster();
        // The client's desired value cannot be read: its portals stay.
        state
            .desired
            .remove(&("client".to_owned(), "worker".to_owned()));
        state
            .invalid
            .insert(("client".into(), "worker".into()), "bad".into());
        let w = wanted(&state);
        let held = PortalContainer {
            id: "p".into(),
            name: container_name("client", "svc", "portal.portal-echo"),
            app: "svc".into(),
            proc: "portal.portal-echo".into(),
            client: "client".into(),
            spec_hash: "h".into(),
            state: ContainerState::Running,
        };
        assert!(w.holds(&held));
        // Nor is a portal whose value cannot be read refused to anyone.
        let mut state = cluster();
        state
            .portals
            .remove(&("svc".to_owned(), "portal.portal-echo".to_owned()));
        state
            .invalid
            .insert(("svc".into(), "portal.portal-echo".into()), "bad".into());
        let w = wanted(&state);
        assert!(w.wanted.is_empty() && w.refused.is_empty(), "{w:?}");
        assert!(w.holds(&held));
    }
}
