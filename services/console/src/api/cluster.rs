//! The cluster at a glance: console itself, sso, the registry, etcd,
//! deployd's election, the webrouters and the nodes. Any caller;
//! read-only. Each part is checked on its own: etcd or sso being down
//! shows in the answer (still 200) instead of failing it.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use lain_store::{unix_millis, KeyPrefix, RouterKey, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Api, Ctx};
use crate::deployd::replicas;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(cluster_status))
}

/// Bound of each check (sso's discovery document, each etcd read).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    pub console: ConsoleView,
    pub sso: SsoView,
    /// The cluster registry, `host:port`, as configured (not checked).
    pub registry: Option<String>,
    pub etcd: EtcdView,
    pub deployd: DeploydView,
    /// Every webrouter that published what it applied, by id.
    pub routers: Vec<RouterView>,
    /// Every registered node, by name.
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleView {
    pub version: String,
    /// Whether console is configured to call deployd (logs).
    pub deployd_configured: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SsoView {
    pub issuer: String,
    /// sso's discovery document answered.
    pub reachable: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EtcdView {
    /// console is connected and etcd answered a read.
    pub reachable: bool,
    /// etcd's revision at that read.
    pub revision: Option<i64>,
    pub error: Option<String>,
    /// Every member, each asked for its status on its own client URL.
    pub members: Vec<EtcdMemberView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EtcdMemberView {
    pub name: String,
    pub client_urls: Vec<String>,
    /// It answered within the check's bound.
    pub healthy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploydView {
    /// The replica that leads (runs the reconciler), if any.
    pub leader: Option<CandidateView>,
    /// Every replica campaigning, leader first.
    pub candidates: Vec<CandidateView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CandidateView {
    pub id: String,
    /// Where it serves its API (`host:port`).
    pub address: Option<String>,
    pub started_at_ms: u64,
    pub leader: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouterView {
    pub id: String,
    /// The etcd revision the running nginx configuration reflects.
    pub applied_revision: i64,
    pub applied_at_ms: u64,
    /// Milliseconds since it last applied a configuration.
    pub age_ms: u64,
    pub upstreams: u32,
    pub address: Option<String>,
    /// The last render or reload error (the previous configuration serves).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub name: String,
    pub address: String,
    /// `alive`, `suspect`, `lost`, or `unknown` while deployd has not
    /// observed it.
    pub liveness: String,
    pub last_seen_ms: Option<u64>,
    pub schedulable: bool,
    pub draining: bool,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Instances deployd runs on it.
    pub instances: u32,
    pub docker_version: Option<String>,
    pub message: Option<String>,
}

/// The state of the cluster's parts. Any caller; 200 even when a part is
/// down (it says so).
#[utoipa::path(get, path = "/api/v1/cluster/status", tag = "cluster",
    responses((status = 200, body = ClusterStatus), (status = 401, body = ErrorBody)))]
pub(crate) async fn cluster_status(
    State(api): State<Api>,
    ctx: Ctx,
) -> Result<Json<ClusterStatus>, ApiError> {
    ctx.caller()?;
    let members = async {
        match api.store() {
            Ok(store) => store
                .members(CHECK_TIMEOUT)
                .await
                .map(|ms| {
                    ms.into_iter()
                        .map(|m| EtcdMemberView {
                            name: m.name,
                            client_urls: m.client_urls,
                            healthy: m.healthy,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    };
    let (sso, etcd, members) = tokio::join!(
        check_sso(&api.inner.issuer),
        async {
            match api.store() {
                Ok(store) => match tokio::time::timeout(CHECK_TIMEOUT, read_etcd(store)).await {
                    Ok(Ok(parts)) => Ok(parts),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                },
                Err(e) => Err(format!("{e}: {}", e.hint())),
            }
        },
        members
    );
    let (etcd, deployd, routers, nodes) = match etcd {
        Ok((revision, deployd, routers, nodes)) => (
            EtcdView {
                reachable: true,
                revision: Some(revision),
                error: None,
                members,
            },
            deployd,
            routers,
            nodes,
        ),
        Err(error) => (
            EtcdView {
                reachable: false,
                revision: None,
                error: Some(error),
                members,
            },
            DeploydView {
                leader: None,
                candidates: Vec::new(),
            },
            Vec::new(),
            Vec::new(),
        ),
    };
    Ok(Json(ClusterStatus {
        console: ConsoleView {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            deployd_configured: api.inner.deployd.get().is_some(),
        },
        sso,
        registry: api.inner.registry.clone(),
        etcd,
        deployd,
        routers,
        nodes,
    }))
}

async fn check_sso(issuer: &str) -> SsoView {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let result = async {
        let client = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("{url}: {e}"))?;
        Ok::<(), String>(())
    }
    .await;
    SsoView {
        issuer: issuer.to_owned(),
        reachable: result.is_ok(),
        error: result.err(),
    }
}

type EtcdParts = (i64, DeploydView, Vec<RouterView>, Vec<NodeView>);

async fn read_etcd(store: &Store) -> Result<EtcdParts, lain_store::StoreError> {
    let router_keys = KeyPrefix::<RouterKey>::all();
    let (candidates, routers, (nodes_revision, nodes)) = tokio::try_join!(
        replicas(store),
        store.list(&router_keys),
        super::nodes::read_nodes(store),
    )?;
    // The newest of the reads' revisions.
    let revision = routers.revision.max(nodes_revision);
    let candidates: Vec<CandidateView> = candidates
        .into_iter()
        .map(|r| CandidateView {
            id: r.id,
            address: r.address,
            started_at_ms: r.started_at_ms,
            leader: r.leader,
        })
        .collect();
    let now = unix_millis();
    let mut routers: Vec<RouterView> = routers
        .items
        .into_iter()
        .map(|e| RouterView {
            id: e.key.router().to_owned(),
            applied_revision: e.value.applied_revision,
            applied_at_ms: e.value.applied_at_ms,
            age_ms: now.saturating_sub(e.value.applied_at_ms),
            upstreams: e.value.upstreams,
            address: e.value.address,
            error: e.value.error,
        })
        .collect();
    routers.sort_by(|a, b| a.id.cmp(&b.id));
    // Sorted by name already.
    let nodes: Vec<NodeView> = nodes
        .into_iter()
        .map(|n| {
            let (name, r, o) = (n.name, n.registration, n.observed.as_ref());
            NodeView {
                liveness: o.map_or_else(|| "unknown".to_owned(), |o| super::enum_name(&o.liveness)),
                last_seen_ms: o.map(|o| o.last_seen_ms),
                instances: o.map_or(0, |o| o.instances),
                docker_version: o.and_then(|o| o.docker_version.clone()),
                message: o.and_then(|o| o.message.clone()),
                name,
                address: r.address,
                schedulable: r.schedulable,
                draining: r.draining,
                cpu_millis: r.capacity.cpu_millis,
                memory_bytes: r.capacity.memory_bytes,
            }
        })
        .collect();
    let leader = candidates.iter().find(|c| c.leader).cloned();
    Ok((revision, DeploydView { leader, candidates }, routers, nodes))
}
