//! Node registrations: the backend of `lain node add|list|cordon|drain|rm`.
//!
//! `/lain/nodes/{node}` has one writer, the node-management path, so
//! every write here goes through `store.as_writer(Component::NodeManagement)`
//! with keys built by lain-store. Listing: any caller; every mutation:
//! admins only, audited (`node.add`, `node.update`, `node.cordon`,
//! `node.uncordon`, `node.drain`, `node.remove`; target = the node).
//! Flag changes and removals are compare-and-swaps on the key's mod
//! revision, retried once on a race and then answered 409, so a
//! concurrent change is never silently overwritten.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use lain_store::{
    unix_millis, Capacity, Component, DockerEndpoint, DockerTls, KeyPrefix, Name, NodeKey,
    NodeRegistration, ObservedKey, ObservedNode, ObservedNodeKey, Revision, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{body, store_error, Api, Audited, Ctx};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes))
        .routes(routes!(put_node, remove_node))
        .routes(routes!(cordon_node))
        .routes(routes!(uncordon_node))
        .routes(routes!(drain_node))
}

/// Most labels a node may carry (a registration is one etcd value).
pub const MAX_LABELS: usize = 64;
/// Longest label value, socket path or TLS file path accepted.
pub const MAX_VALUE_LEN: usize = 1024;

// ---------------------------------------------------------------------
// Reading: shared with cluster status
// ---------------------------------------------------------------------

/// A registered node with what deployd observes of it.
#[derive(Debug, Clone)]
pub(super) struct JoinedNode {
    pub name: String,
    pub registration: NodeRegistration,
    /// None while deployd has not observed the node.
    pub observed: Option<ObservedNode>,
}

/// Every registered node (sorted by name) joined with
/// `/lain/observed-nodes/`, and the newer of the two reads' revisions.
pub(super) async fn read_nodes(store: &Store) -> Result<(Revision, Vec<JoinedNode>), StoreError> {
    let (node_keys, observed_keys) = (
        KeyPrefix::<NodeKey>::all(),
        KeyPrefix::<ObservedNodeKey>::all(),
    );
    let (nodes, observed) = tokio::try_join!(store.list(&node_keys), store.list(&observed_keys))?;
    let revision = nodes.revision.max(observed.revision);
    let mut observed: HashMap<String, ObservedNode> = observed
        .items
        .into_iter()
        .map(|e| (e.key.node().to_owned(), e.value))
        .collect();
    let mut joined: Vec<JoinedNode> = nodes
        .items
        .into_iter()
        .map(|e| {
            let name = e.key.node().to_owned();
            JoinedNode {
                observed: observed.remove(&name),
                name,
                registration: e.value,
            }
        })
        .collect();
    joined.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((revision, joined))
}

// ---------------------------------------------------------------------
// Views and bodies
// ---------------------------------------------------------------------

/// How deployd reaches a node's Docker engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DockerSpec {
    /// A unix socket on the deployd host: an absolute path.
    Unix { socket: String },
    /// A TCP endpoint `host:port` (`[v6]:port` for IPv6), with TLS in
    /// production.
    Tcp {
        address: String,
        #[serde(default)]
        tls: Option<DockerTlsSpec>,
    },
}

/// Absolute paths, on the deployd host, of the TLS material for a
/// Docker endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerTlsSpec {
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
}

impl From<DockerEndpoint> for DockerSpec {
    fn from(d: DockerEndpoint) -> Self {
        match d {
            DockerEndpoint::Unix { socket } => DockerSpec::Unix { socket },
            DockerEndpoint::Tcp { address, tls } => DockerSpec::Tcp {
                address,
                tls: tls.map(|t| DockerTlsSpec {
                    ca_cert: t.ca_cert,
                    client_cert: t.client_cert,
                    client_key: t.client_key,
                }),
            },
        }
    }
}

/// A registered node, as `GET /api/v1/nodes` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredNode {
    pub name: String,
    pub docker: DockerSpec,
    /// Where containers' published ports are reached.
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// Thousandths of a CPU core.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// False when cordoned (or draining): no new instances go there.
    pub schedulable: bool,
    /// True while deployd moves the node's instances away.
    pub draining: bool,
    /// Draining with volumes: instances with volumes move too, data first.
    pub drain_volumes: bool,
    /// Unix milliseconds of the first registration.
    pub registered_at_ms: u64,
    /// `alive`, `suspect`, `lost`, or `unknown` while deployd has not
    /// observed it.
    pub liveness: String,
    pub last_seen_ms: Option<u64>,
    /// Instances deployd runs on it (0 while unobserved).
    pub instances: u32,
}

impl RegisteredNode {
    fn new(name: String, r: NodeRegistration, o: Option<&ObservedNode>) -> Self {
        RegisteredNode {
            name,
            docker: r.docker.into(),
            address: r.address,
            labels: r.labels,
            cpu_millis: r.capacity.cpu_millis,
            memory_bytes: r.capacity.memory_bytes,
            schedulable: r.schedulable,
            draining: r.draining,
            drain_volumes: r.drain_volumes,
            registered_at_ms: r.registered_at_ms,
            liveness: o.map_or_else(|| "unknown".to_owned(), |o| super::enum_name(&o.liveness)),
            last_seen_ms: o.map(|o| o.last_seen_ms),
            instances: o.map_or(0, |o| o.instances),
        }
    }
}

/// What `PUT /api/v1/nodes/{name}` takes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutNode {
    pub docker: DockerSpec,
    /// The node's host name or IP address.
    pub address: String,
    /// Labels that `constraint:` filters match (keys follow the node name
    /// rules).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Thousandths of a CPU core; more than 0.
    pub cpu_millis: u64,
    /// More than 0.
    pub memory_bytes: u64,
    /// Registers a new node cordoned: nothing is placed on it until it is
    /// uncordoned (an operator's check that it is ready). Ignored on an
    /// update, which keeps the node's scheduling flags.
    #[serde(default)]
    pub cordoned: bool,
}

// ---------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------

fn invalid(message: String, hint: &str) -> ApiError {
    ApiError::invalid(message, hint)
}

const NAME_HINT: &str =
    "node names are 1 to 253 letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. the host name)";

fn node_key(name: &str) -> Result<NodeKey, ApiError> {
    NodeKey::new(name).map_err(|e| invalid(format!("invalid node name: {e}"), NAME_HINT))
}

/// Why `host` is neither an IP address nor a DNS host name.
fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("is empty".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    if host.len() > 253 {
        return Some(format!(
            "is {} characters long; at most 253 are allowed",
            host.len()
        ));
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Some(format!("has an empty or over-long label in {host:?}"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "contains {c:?}; a host name has letters, digits, '-' and '.'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!(
                "has a label starting or ending with '-' in {host:?}"
            ));
        }
    }
    None
}

/// Why `addr` is not `host:port` (`[v6]:port`).
fn host_port_problem(addr: &str) -> Option<String> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let Some((v6, port)) = rest.split_once("]:") else {
            return Some("an IPv6 address is written `[addr]:port`".into());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Some(format!("{v6:?} is not an IPv6 address"));
        }
        (None, port)
    } else {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Some("has no `:port`".into());
        };
        if host.contains(':') {
            return Some("an IPv6 address is written `[addr]:port`".into());
        }
        (Some(host), port)
    };
    if let Some(p) = host.and_then(host_problem) {
        return Some(format!("its host {p}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

/// Why `path` is not an absolute path deployd can open.
fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("is not an absolute path".into());
    }
    if path.len() > MAX_VALUE_LEN {
        return Some(format!("is longer than {MAX_VALUE_LEN} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Some("contains a control character".into());
    }
    if path.split('/').any(|s| s == "..") {
        return Some("contains `..`".into());
    }
    None
}

/// Checks a body completely, before anything is written.
fn validate(
    b: PutNode,
) -> Result<(DockerEndpoint, String, BTreeMap<String, String>, Capacity), ApiError> {
    let docker = match b.docker {
        DockerSpec::Unix { socket } => {
            if let Some(p) = path_problem(&socket) {
                return Err(invalid(
                    format!("docker socket {socket:?} {p}"),
                    "give the engine's socket as an absolute path, e.g. /var/run/docker.sock",
                ));
            }
            DockerEndpoint::Unix { socket }
        }
        DockerSpec::Tcp { address, tls } => {
            if let Some(p) = host_port_problem(&address) {
                return Err(invalid(
                    format!("docker address {address:?}: {p}"),
                    "give the engine's TCP endpoint as host:port, e.g. 10.0.0.5:2376",
                ));
            }
            let tls = match tls {
                None => None,
                Some(t) => {
                    for (what, path) in [
                        ("ca_cert", &t.ca_cert),
                        ("client_cert", &t.client_cert),
                        ("client_key", &t.client_key),
                    ] {
                        if let Some(p) = path_problem(path) {
                            return Err(invalid(
                                format!("docker tls {what} {path:?} {p}"),
                                "give the absolute paths, on deployd's hosts, of the CA certificate, client certificate and client key",
                            ));
                        }
                    }
                    Some(DockerTls {
                        ca_cert: t.ca_cert,
                        client_cert: t.client_cert,
                        client_key: t.client_key,
                    })
                }
            };
            DockerEndpoint::Tcp { address, tls }
        }
    };
    if let Some(p) = host_problem(&b.address) {
        return Err(invalid(
            format!("address {:?} {p}", b.address),
            "give the node's IP address or host name, where containers' published ports are reached",
        ));
    }
    if b.labels.len() > MAX_LABELS {
        return Err(invalid(
            format!(
                "{} labels; at most {MAX_LABELS} are allowed",
                b.labels.len()
            ),
            "keep the labels that constraint filters need",
        ));
    }
    for (k, v) in &b.labels {
        if let Err(e) = Name::parse("label key", k) {
            return Err(invalid(
                e.to_string(),
                "label keys are 1 to 253 letters, digits, '.', '_' and '-', starting with a letter or digit",
            ));
        }
        if v.len() > MAX_VALUE_LEN || v.chars().any(char::is_control) {
            return Err(invalid(
                format!("label {k:?} has a value longer than {MAX_VALUE_LEN} bytes or with a control character"),
                "give a short printable value",
            ));
        }
    }
    if b.cpu_millis == 0 || b.memory_bytes == 0 {
        return Err(invalid(
            format!(
                "capacity cpu_millis {} and memory_bytes {} must both be more than 0",
                b.cpu_millis, b.memory_bytes
            ),
            "give what the node offers to instances: cpu_millis (1000 = one core) and memory_bytes",
        ));
    }
    let capacity = Capacity {
        cpu_millis: b.cpu_millis,
        memory_bytes: b.memory_bytes,
    };
    Ok((docker, b.address, b.labels, capacity))
}

/// The node-management writer on console's etcd connection (503 until
/// console is connected).
fn writer(api: &Api) -> Result<Store, ApiError> {
    Ok(api.store()?.as_writer(Component::NodeManagement))
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(
        format!("no node `{name}` is registered"),
        "`lain node list` shows the registered nodes",
    )
}

fn raced(name: &str) -> ApiError {
    ApiError::conflict(
        format!("node `{name}` was changed by someone else at the same time; nothing was written"),
        "check it with `lain node list` and retry",
    )
}

// ---------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------

/// Lists every registered node with what deployd observes of it.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = [RegisteredNode]), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list_nodes(
    State(api): State<Api>,
    ctx: Ctx,
) -> Result<Json<Vec<RegisteredNode>>, ApiError> {
    ctx.caller()?;
    let (_, nodes) = read_nodes(api.store()?).await.map_err(store_error)?;
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| RegisteredNode::new(n.name, n.registration, n.observed.as_ref()))
            .collect(),
    ))
}

/// The answer to a node mutation: the node as now registered.
async fn view(store: &Store, key: &NodeKey, r: NodeRegistration) -> RegisteredNode {
    // The observation is a courtesy in this answer; etcd failing here
    // must not turn a done write into an error.
    let observed = match ObservedNodeKey::new(key.node()) {
        Ok(k) => store.get(&k).await.ok().flatten().map(|e| e.value),
        Err(_) => None,
    };
    RegisteredNode::new(key.node().to_owned(), r, observed.as_ref())
}

/// Registers a node (201), or updates its endpoint, address, labels and
/// capacity (200, keeping schedulable, draining and registered_at_ms).
/// Admins only.
#[utoipa::path(put, path = "/api/v1/nodes/{name}", tag = "nodes", request_body = PutNode,
    params(("name" = String, Path, description = "node name")),
    responses((status = 200, body = RegisteredNode), (status = 201, body = RegisteredNode),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn put_node(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Json<PutNode>, JsonRejection>,
) -> Result<(StatusCode, Json<RegisteredNode>), ApiError> {
    Audited::new(&api, &ctx, "node.add")
        .target(name.clone())
        .run_with(async {
            let outcome = async {
                let caller = ctx.caller()?;
                caller.require_admin("manage nodes")?;
                let key = node_key(&name)?;
                let b = body(b)?;
                let cordoned = b.cordoned;
                let (docker, address, labels, capacity) = validate(b)?;
                let store = writer(&api)?;
                // Read, then write conditionally; one retry after a race
                // (e.g. two `lain node add` at once).
                for attempt in 0..2 {
                    let current = store.get(&key).await.map_err(store_error)?;
                    let (action, status, expected, registration) = match current {
                        None => (
                            "node.add",
                            StatusCode::CREATED,
                            0,
                            NodeRegistration {
                                docker: docker.clone(),
                                address: address.clone(),
                                labels: labels.clone(),
                                capacity,
                                schedulable: !cordoned,
                                draining: false,
                                drain_volumes: false,
                                registered_at_ms: unix_millis(),
                            },
                        ),
                        Some(e) => (
                            "node.update",
                            StatusCode::OK,
                            e.mod_revision,
                            NodeRegistration {
                                docker: docker.clone(),
                                address: address.clone(),
                                labels: labels.clone(),
                                capacity,
                                ..e.value
                            },
                        ),
                    };
                    match store.put_if(&key, &registration, expected).await {
                        Ok(revision) => {
                            let detail = json!({
                                "address": registration.address,
                                "cpu_millis": capacity.cpu_millis,
                                "memory_bytes": capacity.memory_bytes,
                                "revision": revision,
                            });
                            let view = view(&store, &key, registration).await;
                            return Ok((action, (status, Json(view)), detail));
                        }
                        Err(StoreError::Conflict { .. }) if attempt == 0 => continue,
                        Err(StoreError::Conflict { .. }) => break,
                        Err(e) => return Err(store_error(e)),
                    }
                }
                Err(raced(&name))
            }
            .await;
            match outcome {
                Ok((action, answer, detail)) => (action, Ok((answer, detail))),
                Err(e) => ("node.add", Err(e)),
            }
        })
        .await
}

/// A flag change: cordon, uncordon or drain.
async fn set_flags(
    api: &Api,
    ctx: &Ctx,
    action: &'static str,
    name: String,
    change: impl Fn(&mut NodeRegistration),
) -> Result<Json<RegisteredNode>, ApiError> {
    Audited::new(api, ctx, action)
        .target(name.clone())
        .run(async {
            let caller = ctx.caller()?;
            caller.require_admin("manage nodes")?;
            let key = node_key(&name)?;
            let store = writer(api)?;
            for attempt in 0..2 {
                let Some(entry) = store.get(&key).await.map_err(store_error)? else {
                    return Err(unknown(&name));
                };
                let mut registration = entry.value;
                change(&mut registration);
                match store.put_if(&key, &registration, entry.mod_revision).await {
                    Ok(revision) => {
                        let detail = json!({
                            "schedulable": registration.schedulable,
                            "draining": registration.draining,
                            "drain_volumes": registration.drain_volumes,
                            "revision": revision,
                        });
                        return Ok((Json(view(&store, &key, registration).await), detail));
                    }
                    Err(StoreError::Conflict { .. }) if attempt == 0 => continue,
                    Err(StoreError::Conflict { .. }) => break,
                    Err(e) => return Err(store_error(e)),
                }
            }
            Err(raced(&name))
        })
        .await
}

/// Cordons a node: running instances stay, new ones go elsewhere.
/// Admins only.
#[utoipa::path(post, path = "/api/v1/nodes/{name}/cordon", tag = "nodes",
    params(("name" = String, Path, description = "node name")),
    responses((status = 200, body = RegisteredNode), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn cordon_node(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<RegisteredNode>, ApiError> {
    set_flags(&api, &ctx, "node.cordon", name, |r| r.schedulable = false).await
}

/// Makes a node schedulable again and ends a drain. Admins only.
#[utoipa::path(post, path = "/api/v1/nodes/{name}/uncordon", tag = "nodes",
    params(("name" = String, Path, description = "node name")),
    responses((status = 200, body = RegisteredNode), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn uncordon_node(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<RegisteredNode>, ApiError> {
    set_flags(&api, &ctx, "node.uncordon", name, |r| {
        r.schedulable = true;
        r.draining = false;
        r.drain_volumes = false;
    })
    .await
}

/// How a drain treats instances with volumes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DrainOptions {
    /// Move instances with volumes too, their data copied to their new
    /// node first. Without it they stay on the node.
    #[serde(default)]
    with_volumes: bool,
}

/// Drains a node: cordoned, and deployd moves its instances away (those
/// with volumes only with `with_volumes`, data first). Admins only.
#[utoipa::path(post, path = "/api/v1/nodes/{name}/drain", tag = "nodes",
    params(("name" = String, Path, description = "node name"), DrainOptions),
    responses((status = 200, body = RegisteredNode), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn drain_node(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
    q: Result<Query<DrainOptions>, QueryRejection>,
) -> Result<Json<RegisteredNode>, ApiError> {
    let Query(q) = q?;
    set_flags(&api, &ctx, "node.drain", name, move |r| {
        r.schedulable = false;
        r.draining = true;
        r.drain_volumes = q.with_volumes;
    })
    .await
}

/// Removes a node's registration. Refused (409) while deployd observes
/// any instance on it: drain it first. Admins only.
#[utoipa::path(delete, path = "/api/v1/nodes/{name}", tag = "nodes",
    params(("name" = String, Path, description = "node name")),
    responses((status = 204), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn remove_node(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    Audited::new(&api, &ctx, "node.remove")
        .target(name.clone())
        .run(async {
            let caller = ctx.caller()?;
            caller.require_admin("manage nodes")?;
            let key = node_key(&name)?;
            let store = writer(&api)?;
            let Some(entry) = store.get(&key).await.map_err(store_error)? else {
                return Err(unknown(&name));
            };
            let instances = store
                .list(&KeyPrefix::<ObservedKey>::all())
                .await
                .map_err(store_error)?;
            let on_node: Vec<String> = instances
                .items
                .iter()
                .filter(|e| e.value.node == name)
                .map(|e| format!("{}/{}/{}", e.key.app(), e.key.proc(), e.key.instance()))
                .collect();
            if !on_node.is_empty() {
                let shown: Vec<&str> = on_node.iter().take(5).map(String::as_str).collect();
                return Err(ApiError::conflict(
                    format!(
                        "node `{name}` still has {} instance(s): {}{}",
                        on_node.len(),
                        shown.join(", "),
                        if on_node.len() > shown.len() { ", ..." } else { "" }
                    ),
                    format!("drain it first (`lain node drain {name}`) and wait until its instances are gone"),
                ));
            }
            // Conditional on the registration as read: a node changed
            // meanwhile (e.g. uncordoned) is not removed behind its back.
            match store.delete_if(&key, entry.mod_revision).await {
                Ok(revision) => Ok((StatusCode::NO_CONTENT, json!({ "revision": revision }))),
                Err(StoreError::Conflict { .. }) => Err(raced(&name)),
                Err(e) => Err(store_error(e)),
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_endpoints() {
        for ok in ["10.0.0.5", "::1", "node-1", "node-1.lain.local", "a"] {
            assert_eq!(host_problem(ok), None, "{ok}");
        }
        for bad in ["", "a b", "-a", "a..b", "a/b", "a:1", "ä"] {
            assert!(host_problem(bad).is_some(), "{bad}");
        }
        for ok in ["10.0.0.5:2376", "node-1:2375", "[::1]:2376"] {
            assert_eq!(host_port_problem(ok), None, "{ok}");
        }
        for bad in [
            "10.0.0.5",
            "node:0",
            "node:65536",
            "::1:2376",
            "[::1]",
            "[x]:1",
            ":2376",
            "a b:1",
        ] {
            assert!(host_port_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(path_problem("/var/run/docker.sock"), None);
        for bad in ["var/run/docker.sock", "", "/a/../b", "/a\n"] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
    }
}
