//! An app's status, read from etcd: per proc what console asked for
//! (`/lain/desired/`) and where deployd's rollout stands
//! (`/lain/rollouts/`), per instance what deployd observes
//! (`/lain/observed/`). Read-only; any caller.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use lain_store::{DesiredKey, Entry, KeyPrefix, ObservedKey, RolloutKey, StoreKey, WatchEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{store_error, Api, Ctx};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(status))
}

/// An app's procs and instances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppStatus {
    pub app: String,
    /// Every proc that is desired or still has instances, by name.
    pub procs: Vec<ProcStatus>,
}

/// One proc.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcStatus {
    pub proc: String,
    /// What console asked for; absent once the proc was removed (its
    /// instances are being stopped).
    pub desired: Option<DesiredView>,
    /// deployd's rollout of the proc, once it acted on it.
    pub rollout: Option<RolloutView>,
    /// The instance records, by number then generation.
    pub instances: Vec<InstanceStatus>,
}

/// A proc's desired state (no env or secrets).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DesiredView {
    pub release: String,
    pub image: String,
    pub instances: u32,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub generation: u64,
}

/// Where deployd stands in rolling a proc out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    /// The desired generation it acted on last.
    pub generation: u64,
    /// `progressing`, `converged`, `rolled_back` or `failed`.
    pub phase: String,
    pub message: Option<String>,
    /// Unix milliseconds.
    pub updated_at_ms: u64,
}

/// One instance as deployd observes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceStatus {
    /// The record's id, `{number}-{generation}`.
    pub id: String,
    /// `LAIN_INSTANCE`, 1-based.
    pub number: u32,
    pub generation: u64,
    pub release: String,
    pub node: String,
    /// `pending`, `starting`, `running`, `draining`, `stopping`, `exited`,
    /// `failed`, `lost`, ...
    pub state: String,
    /// `starting`, `healthy`, `unhealthy` or `unknown`.
    pub health: String,
    /// `ip:port` routers send traffic to.
    pub address: Option<String>,
    pub restarts: u32,
    pub message: Option<String>,
    /// When its container started (unix milliseconds), once it did.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
}

/// An app's procs (desired state and rollout) and instances, from etcd.
/// Any caller.
#[utoipa::path(get, path = "/api/v1/apps/{app}/status", tag = "deployments",
    params(("app" = String, Path, description = "app name")),
    responses((status = 200, body = AppStatus), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn status(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<AppStatus>, ApiError> {
    ctx.caller()?;
    let store = api.store()?;
    api.db().apps().get(&app).await?;
    Ok(Json(collect(store, &app).await?))
}

/// The status of `proc`, made empty on first use.
fn entry<'a>(procs: &'a mut BTreeMap<String, ProcStatus>, proc: &str) -> &'a mut ProcStatus {
    procs.entry(proc.to_owned()).or_insert_with(|| ProcStatus {
        proc: proc.to_owned(),
        desired: None,
        rollout: None,
        instances: Vec::new(),
    })
}

/// An app's status from etcd: three range reads.
pub(crate) async fn collect(store: &lain_store::Store, app: &str) -> Result<AppStatus, ApiError> {
    let desired = store
        .list(&DesiredKey::of_app(app).map_err(|e| store_error(e.into()))?)
        .await
        .map_err(store_error)?;
    let observed = store
        .list(&ObservedKey::of_app(app).map_err(|e| store_error(e.into()))?)
        .await
        .map_err(store_error)?;
    // One range read for all rollouts, not one read per proc.
    let rollouts = store
        .list(&RolloutKey::of_app(app).map_err(|e| store_error(e.into()))?)
        .await
        .map_err(store_error)?;
    Ok(assemble(
        app,
        &desired.items,
        &observed.items,
        &rollouts.items,
    ))
}

/// Every app's status, by app: three range reads for the whole cluster
/// (the web console's apps list), not three per app.
pub(crate) async fn collect_all(
    store: &lain_store::Store,
) -> Result<BTreeMap<String, AppStatus>, ApiError> {
    let (d, o, r) = (
        KeyPrefix::<DesiredKey>::all(),
        KeyPrefix::<ObservedKey>::all(),
        KeyPrefix::<RolloutKey>::all(),
    );
    let (desired, observed, rollouts) =
        tokio::try_join!(store.list(&d), store.list(&o), store.list(&r)).map_err(store_error)?;
    let apps: std::collections::BTreeSet<&str> = desired
        .items
        .iter()
        .map(|e| e.key.app())
        .chain(observed.items.iter().map(|e| e.key.app()))
        .collect();
    Ok(apps
        .into_iter()
        .map(|app| {
            let of = |k: &str| k == app;
            let status = assemble(
                app,
                desired.items.iter().filter(|e| of(e.key.app())),
                observed.items.iter().filter(|e| of(e.key.app())),
                rollouts.items.iter().filter(|e| of(e.key.app())),
            );
            (app.to_owned(), status)
        })
        .collect())
}

/// An app's status from its desired, observed and rollout entries.
pub(crate) fn assemble<'a>(
    app: &str,
    desired: impl IntoIterator<Item = &'a Entry<DesiredKey>>,
    observed: impl IntoIterator<Item = &'a Entry<ObservedKey>>,
    rollouts: impl IntoIterator<Item = &'a Entry<RolloutKey>>,
) -> AppStatus {
    let mut procs: BTreeMap<String, ProcStatus> = BTreeMap::new();
    for e in desired {
        let d = &e.value;
        entry(&mut procs, e.key.proc()).desired = Some(DesiredView {
            release: d.release.clone(),
            image: d.image.clone(),
            instances: d.instances,
            cpu_millis: d.cpu_millis,
            memory_bytes: d.memory_bytes,
            generation: d.generation,
        });
    }
    for e in observed {
        let o = &e.value;
        entry(&mut procs, e.key.proc())
            .instances
            .push(InstanceStatus {
                id: e.key.instance().to_owned(),
                number: o.instance,
                generation: o.generation,
                release: o.release.clone(),
                node: o.node.clone(),
                state: super::enum_name(&o.state),
                health: super::enum_name(&o.health),
                address: o.address.clone(),
                restarts: o.restarts,
                message: o.message.clone(),
                started_at_ms: o.started_at_ms,
            });
    }
    // Rollouts only of procs that have a desired value or instances.
    for e in rollouts {
        if let Some(p) = procs.get_mut(e.key.proc()) {
            let r = &e.value;
            p.rollout = Some(RolloutView {
                generation: r.generation,
                phase: super::enum_name(&r.phase),
                message: r.message.clone(),
                updated_at_ms: r.updated_at_ms,
            });
        }
    }
    for p in procs.values_mut() {
        p.instances.sort_by_key(|i| (i.number, i.generation));
    }
    AppStatus {
        app: app.to_owned(),
        procs: procs.into_values().collect(),
    }
}

impl AppStatus {
    /// The release the app's desired procs run, if any is deployed.
    pub fn running_release(&self) -> Option<&str> {
        self.procs
            .iter()
            .find_map(|p| p.desired.as_ref().map(|d| d.release.as_str()))
    }
}

/// A copy of one watched prefix, kept current from its watch's events
/// (the web console's live pages read nothing else after the first
/// snapshot).
pub(crate) struct Mirror<K: StoreKey> {
    items: BTreeMap<String, Entry<K>>,
}

impl<K: StoreKey> Default for Mirror<K> {
    fn default() -> Self {
        Mirror {
            items: BTreeMap::new(),
        }
    }
}

impl<K: StoreKey> Mirror<K> {
    pub(crate) fn apply(&mut self, event: WatchEvent<K>) {
        match event {
            WatchEvent::Reset { items, .. } => {
                self.items = items.into_iter().map(|e| (e.key.path(), e)).collect();
            }
            WatchEvent::Put(e) => {
                self.items.insert(e.key.path(), e);
            }
            WatchEvent::Delete { key, .. } => {
                self.items.remove(&key.path());
            }
            WatchEvent::Invalid(i) => {
                self.items.remove(&i.key);
            }
        }
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry<K>> {
        self.items.values()
    }
}
