//! Deploy, undeploy, scale and rollback (console writes desired state to
//! etcd), and the deployment history.
//!
//! Each mutation: the caller must maintain the app (or be an admin); the
//! desired procs are computed and checked (lain.yaml, secrets, whether
//! they fit the ready nodes) before anything is written; then one etcd
//! transaction writes them ([`crate::deploy::apply`]), and a deployment
//! row records what was written (the desired procs and the secret
//! versions they use), so that a rollback restores image, env and secrets
//! together. A refused or failed call leaves etcd as it was.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use lain_store::{DesiredKey, DesiredProc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{body, store_error, Api, Audited, Caller, Ctx};
use crate::db::{
    DbError, Deployment, DeploymentKind, DeploymentQuery, DeploymentSnapshot, DeploymentState,
    DeploymentUpdate, NewDeployment, ProcSelection,
};
use crate::deploy::{self as writer, DeployError, Scope, SecretValue};
use crate::desired::{desired_procs, DesiredError, ReleaseRef};
use crate::error::{split_hint, ApiError, ErrorBody};
use crate::fit;
use crate::services;

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(deploy))
        .routes(routes!(undeploy))
        .routes(routes!(scale))
        .routes(routes!(rollback))
        .routes(routes!(list_deployments))
        .routes(routes!(deployment_events))
}

/// What `POST /api/v1/apps/{app}/deploy` takes (`{}` deploys every proc
/// of the latest release).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The release to deploy; default the latest registered.
    #[serde(default)]
    pub version: Option<String>,
    /// Deploy only this proc (e.g. `web`, `worker.queue`); the others stay
    /// as they are. Default every proc, and procs the release no longer
    /// has are removed.
    #[serde(default)]
    pub proc: Option<String>,
}

/// The most instances a proc may be scaled to.
pub const MAX_INSTANCES: u32 = 1000;

/// What `POST /api/v1/apps/{app}/procs/{proc}/scale` takes; at least one
/// field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// Instances, 0 to 1000.
    #[serde(default)]
    pub instances: Option<u32>,
    /// Whole CPU cores reserved per instance, 0 to 256.
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Memory per instance as in lain.yaml: `[1-9][0-9]*[mMgG]`, 4m to 1024g.
    #[serde(default)]
    pub memory: Option<String>,
}

/// What `POST /api/v1/apps/{app}/rollback` takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The release to return to; default the release of the last
    /// deployment (not failed) of another release than the one running.
    #[serde(default)]
    pub to: Option<String>,
}

/// A deployment as listed (its desired-state snapshot left out).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentView {
    pub id: i64,
    pub app: String,
    /// `deploy`, `rollback`, `scale`, `undeploy` or `restore` (a backup written back).
    pub kind: String,
    pub from_release: Option<String>,
    pub to_release: Option<String>,
    /// The procs it touched; absent for all of them.
    pub procs: Option<Vec<String>>,
    pub requested_by: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `pending`, `progressing`, `succeeded`, `failed` or `rolled_back`.
    pub state: String,
    pub error: Option<String>,
    /// The generation of the desired state it wrote.
    pub generation: Option<i64>,
    /// The secret versions its procs use, by name (never values).
    pub secrets: BTreeMap<String, i64>,
    /// A rollback may return to it (`lain rollback --to` its release).
    pub restorable: bool,
}

impl From<&Deployment> for DeploymentView {
    fn from(d: &Deployment) -> Self {
        DeploymentView {
            id: d.id,
            app: d.app.clone(),
            kind: d.kind.to_string(),
            from_release: d.from_release.clone(),
            to_release: d.to_release.clone(),
            procs: match &d.procs {
                ProcSelection::All => None,
                ProcSelection::Only(p) => Some(p.clone()),
            },
            requested_by: d.requested_by.clone(),
            started_at: d.started_at,
            finished_at: d.finished_at,
            state: d.state.to_string(),
            error: d.error.clone(),
            generation: d.generation,
            secrets: d.snapshot.secrets.clone(),
            restorable: d.restorable(),
        }
    }
}

/// What a deploy, undeploy, scale or rollback did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployOutcome {
    pub deployment: DeploymentView,
    /// Procs written to etcd.
    pub written: Vec<String>,
    /// Procs removed from etcd.
    pub removed: Vec<String>,
    /// lain.yaml's warnings (deploy only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsQuery {
    /// At most this many (default 100, at most 1000), newest first.
    pub limit: Option<u32>,
    /// Only deployments with a lower id (the next page).
    pub before: Option<i64>,
}

fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::Conflict { .. } => {
            let (m, h) = split_hint(e.to_string(), "try again");
            ApiError::conflict(m, h)
        }
        DeployError::Store(s) => store_error(s),
        DeployError::SecretMissing { .. } | DeployError::Seal { .. } => {
            ApiError::Internal(e.to_string())
        }
    }
}

fn desired_error(e: DesiredError) -> ApiError {
    let code = "undeployable";
    let hint = match &e {
        DesiredError::UnknownProc { .. } => "name one of the release's procs".to_owned(),
        DesiredError::ResourceApp { .. } => "deploy the apps that use the resource".to_owned(),
        DesiredError::PortalScope { .. } => {
            "deploy or scale the service's proc and its clients instead".to_owned()
        }
        _ => String::new(),
    };
    let (message, h) = split_hint(
        e.to_string(),
        "fix lain.yaml, push a new release and deploy it",
    );
    ApiError::Unprocessable {
        code,
        message,
        hint: if hint.is_empty() { h } else { hint },
    }
}

/// A client's instance of a resource, ready to write.
struct Instance {
    name: String,
    release: crate::db::Release,
    procs: Vec<DesiredProc>,
    warnings: Vec<String>,
}

/// `client`'s instance of resource `res` (`resource.RES.CLIENT`): the
/// resource's latest release rendered with the client's parameters.
/// Reads only: [`write_instance`] writes it.
async fn prepare_instance(
    api: &Api,
    client: &str,
    res: &str,
    u: &lain_spec::UseResource,
) -> Result<Instance, ApiError> {
    let unusable = |message: String, hint: &str| ApiError::Unprocessable {
        code: "undeployable",
        message,
        hint: hint.to_owned(),
    };
    let resource = match api.db().apps().get(res).await {
        Ok(a) => a,
        Err(DbError::NotFound { .. }) => {
            return Err(unusable(
                format!("use_resources names {res}, which is not registered"),
                "register and push the resource app, or remove it from use_resources",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if resource.apptype != crate::db::AppType::Resource {
        return Err(unusable(
            format!(
                "use_resources names {res}, which is an app, not a resource (apptype: resource)"
            ),
            "use it through use_services, or name a resource",
        ));
    }
    let Some(release) = api.db().releases().latest(res).await? else {
        return Err(unusable(
            format!("resource {res} has no release to instantiate"),
            "push a release of the resource first (`lain build && lain push` in its repository)",
        ));
    };
    let name = lain_spec::instance_name(res, client);
    let parsed = lain_spec::instantiate(
        &release.lain_yaml,
        "lain.yaml",
        res,
        client,
        &u.params,
        &api.inner.spec,
    )
    .map_err(|d| ApiError::InvalidLainYaml(d.iter().map(ToString::to_string).collect()))?;
    let secrets: BTreeMap<String, u64> = match api.db().secrets().list(&name).await {
        Ok(list) => list
            .into_iter()
            .map(|s| (s.name, s.version as u64))
            .collect(),
        Err(DbError::NotFound { .. }) => BTreeMap::new(),
        Err(e) => return Err(e.into()),
    };
    let procs = desired_procs(
        &parsed.conf,
        ReleaseRef {
            version: &release.version,
            image: &release.image,
        },
        None,
        &secrets,
        0,
    )
    .map_err(desired_error)?;
    let procs = with_services(api, &name, &parsed.conf, procs, &BTreeMap::new()).await?;
    Ok(Instance {
        name,
        release,
        procs,
        warnings: parsed.warnings.iter().map(ToString::to_string).collect(),
    })
}

/// Writes an instance: the app (created on first use, owned by the
/// caller), its release (the resource's, under the instance's name) and
/// its desired procs, unless it already runs exactly these.
async fn write_instance(api: &Api, caller: &Caller, i: Instance) -> Result<(), ApiError> {
    match api
        .db()
        .apps()
        .create(&crate::db::NewApp {
            name: i.name.clone(),
            apptype: crate::db::AppType::App,
            giturl: None,
            created_by: caller.subject.clone(),
        })
        .await
    {
        // Made by an earlier deploy of the client.
        Ok(_) | Err(DbError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    api.db()
        .releases()
        .register(&crate::db::NewRelease {
            app: i.name.clone(),
            version: i.release.version.clone(),
            image: i.release.image.clone(),
            digest: i.release.digest.clone(),
            lain_yaml: i.release.lain_yaml.clone(),
            pushed_by: caller.subject.clone(),
        })
        .await?;
    let now = current(api, &i.name).await?;
    // The same procs with the same values, whatever their generation.
    let key = |p: &DesiredProc| {
        let mut p = p.clone();
        p.generation = 0;
        (p.proc.clone(), p)
    };
    if now.iter().map(key).collect::<BTreeMap<_, _>>()
        == i.procs.iter().map(key).collect::<BTreeMap<_, _>>()
    {
        return Ok(());
    }
    let from_release = running_release(api, &i.name, &now).await;
    Write {
        app: &i.name,
        caller,
        kind: DeploymentKind::Deploy,
        from_release,
        to_release: Some(i.release.version.clone()),
        scope: Scope::All,
        procs: i.procs,
    }
    .run(api)
    .await?;
    Ok(())
}

/// `procs` with the portals of the services the app uses, each checked
/// against the service app's deployed portals and their `allow_clients`.
async fn with_services(
    api: &Api,
    app: &str,
    conf: &lain_spec::LainConf,
    mut procs: Vec<DesiredProc>,
    // Apps about to be written (a client's resource instances): their
    // procs as they will be, not as etcd has them.
    pending: &BTreeMap<String, Vec<DesiredProc>>,
) -> Result<Vec<DesiredProc>, ApiError> {
    let wanted = services::wanted(conf);
    if wanted.is_empty() {
        return Ok(procs);
    }
    let mut apps = services::ServiceApps::new();
    for (name, _) in &wanted {
        if apps.contains_key(name) {
            continue;
        }
        if let Some(p) = pending.get(name) {
            apps.insert(name.clone(), Some(p.clone()));
            continue;
        }
        let found = match api.db().apps().get(name).await {
            Ok(_) => Some(current(api, name).await?),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        apps.insert(name.clone(), found);
    }
    let uses = services::resolve(app, &wanted, &apps).map_err(|errs| ApiError::Unprocessable {
        code: "undeployable",
        message: errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        hint: "fix use_services (or the service app) and deploy again".into(),
    })?;
    for p in procs.iter_mut().filter(|p| p.portal.is_none()) {
        p.services = uses.clone();
    }
    Ok(procs)
}

/// The app's desired procs in etcd now.
async fn current(api: &Api, app: &str) -> Result<Vec<DesiredProc>, ApiError> {
    let store = api.store()?;
    let prefix = DesiredKey::of_app(app).map_err(|e| store_error(e.into()))?;
    let listing = store.list(&prefix).await.map_err(store_error)?;
    Ok(listing.items.into_iter().map(|e| e.value).collect())
}

/// The registered release the app's desired procs run now, if any.
async fn running_release(api: &Api, app: &str, procs: &[DesiredProc]) -> Option<String> {
    let release = procs.first()?.release.clone();
    api.db().releases().get(app, &release).await.ok()?;
    Some(release)
}

/// Refuses procs that cannot fit the ready nodes (422 `cannot_fit`).
async fn check_fit(
    api: &Api,
    app: &str,
    procs: &[DesiredProc],
    replaced: Option<&str>,
) -> Result<(), ApiError> {
    let store = api.store()?;
    let (registered, ready) = fit::free_nodes(store, app, replaced)
        .await
        .map_err(store_error)?;
    fit::check(app, registered, &ready, procs).map_err(|e| ApiError::Unprocessable {
        code: "cannot_fit",
        hint: e.hint().to_owned(),
        message: e.to_string(),
    })
}

/// The values of exactly the secret versions `procs` name.
async fn secret_values(
    api: &Api,
    app: &str,
    procs: &[DesiredProc],
) -> Result<Vec<SecretValue>, ApiError> {
    let wanted: BTreeSet<(String, u64)> = procs
        .iter()
        .flat_map(|p| p.secrets.iter().map(|r| (r.name.clone(), r.version)))
        .collect();
    let mut out = Vec::with_capacity(wanted.len());
    for (name, version) in wanted {
        let value = api
            .db()
            .secrets()
            .get_value(app, &name, version as i64)
            .await
            .map_err(|e| match e {
                DbError::NotFound { .. } => ApiError::Unprocessable {
                    code: "undeployable",
                    message: format!("secret {name} version {version} of app {app} does not exist"),
                    hint: format!("set it with `lain secret set {app} {name}` and deploy again"),
                },
                e => ApiError::from(e),
            })?;
        out.push(SecretValue {
            name,
            version,
            value,
        });
    }
    Ok(out)
}

/// One write of desired state and its deployment row.
pub(crate) struct Write<'a> {
    pub(crate) app: &'a str,
    pub(crate) caller: &'a Caller,
    pub(crate) kind: DeploymentKind,
    pub(crate) from_release: Option<String>,
    pub(crate) to_release: Option<String>,
    pub(crate) scope: Scope,
    pub(crate) procs: Vec<DesiredProc>,
}

impl Write<'_> {
    /// Checks the fit, writes etcd in one transaction, records the
    /// deployment (`progressing`, with its generation and snapshot).
    pub(crate) async fn run(self, api: &Api) -> Result<DeployOutcome, ApiError> {
        let replaced = match &self.scope {
            Scope::All => None,
            Scope::One(p) => Some(p.as_str()),
        };
        // A restore runs the same instances again: nothing new to fit
        // (and the backup is wanted most when the cluster is short).
        if self.kind != DeploymentKind::Restore {
            check_fit(api, self.app, &self.procs, replaced).await?;
        }
        let secrets = secret_values(api, self.app, &self.procs).await?;
        // The deployment is recorded before etcd changes, so that a write
        // that fails leaves a failed row, and a row that cannot be written
        // leaves etcd as it was.
        let current = current(api, self.app).await?;
        let whole = writer::merged(&current, &self.procs, &self.scope);
        let mut used: BTreeMap<String, i64> = BTreeMap::new();
        let mut desired = serde_json::Map::new();
        for p in &whole {
            for r in &p.secrets {
                let v = used.entry(r.name.clone()).or_insert(0);
                *v = (*v).max(r.version as i64);
            }
            desired.insert(
                p.proc.clone(),
                serde_json::to_value(p).map_err(|e| ApiError::Internal(e.to_string()))?,
            );
        }
        let d = api
            .db()
            .deployments()
            .create(&NewDeployment {
                app: self.app.to_owned(),
                kind: self.kind,
                from_release: self.from_release,
                to_release: self.to_release,
                procs: match &self.scope {
                    Scope::All => ProcSelection::All,
                    Scope::One(p) => ProcSelection::Only(vec![p.clone()]),
                },
                requested_by: self.caller.subject.clone(),
                generation: None,
                snapshot: DeploymentSnapshot {
                    desired: serde_json::Value::Object(desired),
                    secrets: used,
                },
            })
            .await?;
        let store = api.store()?;
        let floor = api.db().deployments().max_generation(self.app).await?;
        let applied = writer::apply(
            store,
            api.secrets_key(),
            self.app,
            self.procs,
            &self.scope,
            &secrets,
            floor,
        )
        .await;
        drop(secrets);
        let (state, error, generation) = match &applied {
            Ok(a) => (
                DeploymentState::Progressing,
                None,
                Some(a.generation as i64),
            ),
            Err(e) => (DeploymentState::Failed, Some(e.to_string()), None),
        };
        let d = api
            .db()
            .deployments()
            .update(
                d.id,
                &DeploymentUpdate {
                    state,
                    error,
                    generation,
                },
            )
            .await?;
        let applied = applied.map_err(deploy_error)?;
        Ok(DeployOutcome {
            deployment: (&d).into(),
            written: applied.procs,
            removed: applied.removed,
            warnings: Vec::new(),
        })
    }
}

fn outcome_detail(o: &DeployOutcome) -> serde_json::Value {
    json!({
        "deployment": o.deployment.id,
        "from_release": o.deployment.from_release,
        "to_release": o.deployment.to_release,
        "generation": o.deployment.generation,
        "written": o.written,
        "removed": o.removed,
        "secrets": o.deployment.secrets,
    })
}

/// Deploys a release: every proc (procs it no longer has are removed) or
/// one. Refused with 422 when lain.yaml does not validate, a secret it
/// names is not set, or it cannot fit the ready nodes; etcd is then left
/// as it was. Maintainers and admins.
#[utoipa::path(post, path = "/api/v1/apps/{app}/deploy", tag = "deployments",
    params(("app" = String, Path, description = "app name")),
    request_body = DeployRequest,
    responses((status = 200, body = DeployOutcome, description = "desired state written"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "another deploy raced this one"),
        (status = 422, body = ErrorBody, description = "`cannot_fit` or `undeployable`"),
        (status = 503, body = ErrorBody, description = "etcd unavailable")))]
pub(crate) async fn deploy(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    b: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<Json<DeployOutcome>, ApiError> {
    let mut audit = Audited::new(&api, &ctx, "deploy").app(app.clone());
    if let Ok(Json(DeployRequest {
        version: Some(v), ..
    })) = &b
    {
        audit = audit.target(v.clone());
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            api.store()?;
            let registered = api.db().apps().get(&app).await?;
            if registered.apptype == crate::db::AppType::Resource {
                return Err(desired_error(DesiredError::ResourceApp { app: app.clone() }));
            }
            if let Some((res, client)) = lain_spec::parse_instance_name(&app) {
                return Err(ApiError::Unprocessable {
                    code: "undeployable",
                    message: format!(
                        "app {app} is the instance of resource {res} for {client}; it is deployed with its client"
                    ),
                    hint: format!("deploy {client} (`lain deploy` in its repository)"),
                });
            }
            let release = match &b.version {
                Some(v) => api.db().releases().get(&app, v).await?,
                None => api.db().releases().latest(&app).await?.ok_or_else(|| {
                    ApiError::not_found(
                        format!("app `{app}` has no release"),
                        "build and push one first (`lain build && lain push`)",
                    )
                })?,
            };
            let parsed = lain_spec::parse("lain.yaml", &release.lain_yaml, &api.inner.spec)
                .map_err(|d| {
                    ApiError::InvalidLainYaml(d.iter().map(ToString::to_string).collect())
                })?;
            let secrets: BTreeMap<String, u64> = api
                .db()
                .secrets()
                .list(&app)
                .await?
                .into_iter()
                .map(|s| (s.name, s.version as u64))
                .collect();
            let procs = desired_procs(
                &parsed.conf,
                ReleaseRef {
                    version: &release.version,
                    image: &release.image,
                },
                b.proc.as_deref(),
                &secrets,
                0,
            )
            .map_err(desired_error)?;
            let mut warnings: Vec<String> =
                parsed.warnings.iter().map(ToString::to_string).collect();
            // Everything is checked before anything is written: the
            // instances, then the client's services (the instances'
            // portals as they will be).
            let mut instances = Vec::new();
            for (res, u) in &parsed.conf.use_resources {
                instances.push(prepare_instance(&api, &app, res, u).await?);
            }
            let pending: BTreeMap<String, Vec<DesiredProc>> = instances
                .iter()
                .map(|i| (i.name.clone(), i.procs.clone()))
                .collect();
            let procs = with_services(&api, &app, &parsed.conf, procs, &pending).await?;
            for i in instances {
                warnings.extend(i.warnings.iter().cloned());
                write_instance(&api, caller, i).await?;
            }
            let now = current(&api, &app).await?;
            let from_release = running_release(&api, &app, &now).await;
            let mut out = Write {
                app: &app,
                caller,
                kind: DeploymentKind::Deploy,
                from_release,
                to_release: Some(release.version.clone()),
                scope: match &b.proc {
                    Some(p) => Scope::One(p.clone()),
                    None => Scope::All,
                },
                procs,
            }
            .run(&api)
            .await?;
            out.warnings = warnings;
            let detail = outcome_detail(&out);
            Ok((Json(out), detail))
        })
        .await
}

/// Removes every desired proc of the app from etcd (deployd then stops
/// its instances); secrets and releases stay. Maintainers and admins.
#[utoipa::path(post, path = "/api/v1/apps/{app}/undeploy", tag = "deployments",
    params(("app" = String, Path, description = "app name")),
    responses((status = 200, body = DeployOutcome), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn undeploy(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<DeployOutcome>, ApiError> {
    Audited::new(&api, &ctx, "undeploy")
        .app(app.clone())
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let store = api.store()?;
            api.db().apps().get(&app).await?;
            let now = current(&api, &app).await?;
            let from_release = running_release(&api, &app, &now).await;
            let removed = writer::undeploy(store, &app).await.map_err(deploy_error)?;
            let d = api
                .db()
                .deployments()
                .create(&NewDeployment {
                    app: app.clone(),
                    kind: DeploymentKind::Undeploy,
                    from_release,
                    to_release: None,
                    procs: ProcSelection::All,
                    requested_by: caller.subject.clone(),
                    generation: None,
                    snapshot: DeploymentSnapshot {
                        desired: json!({}),
                        secrets: BTreeMap::new(),
                    },
                })
                .await?;
            // Console's part is done once the keys are gone; deployd stops
            // the instances.
            let d = api
                .db()
                .deployments()
                .update(
                    d.id,
                    &DeploymentUpdate {
                        state: DeploymentState::Succeeded,
                        error: None,
                        generation: None,
                    },
                )
                .await?;
            let out = DeployOutcome {
                deployment: (&d).into(),
                written: Vec::new(),
                removed,
                warnings: Vec::new(),
            };
            let detail = outcome_detail(&out);
            Ok((Json(out), detail))
        })
        .await
}

/// Parses lain.yaml's memory form, `[1-9][0-9]*[mMgG]`.
fn parse_memory(s: &str) -> Option<u64> {
    let (digits, unit) = s.split_at(s.len().checked_sub(1)?);
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// Changes one proc's instances, CPU or memory: its desired value in etcd
/// is rewritten with the new numbers and a new generation, image, env and
/// secrets as deployed. Maintainers and admins.
#[utoipa::path(post, path = "/api/v1/apps/{app}/procs/{proc}/scale", tag = "deployments",
    params(("app" = String, Path, description = "app name"),
        ("proc" = String, Path, description = "proc name, e.g. `web`")),
    request_body = ScaleRequest,
    responses((status = 200, body = DeployOutcome), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn scale(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, proc)): Path<(String, String)>,
    b: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<DeployOutcome>, ApiError> {
    Audited::new(&api, &ctx, "scale")
        .app(app.clone())
        .target(proc.clone())
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            if b.instances.is_none() && b.cpu.is_none() && b.memory.is_none() {
                return Err(ApiError::invalid(
                    "nothing to scale: give instances, cpu or memory",
                    "e.g. {\"instances\": 3}",
                ));
            }
            if b.instances.is_some_and(|n| n > MAX_INSTANCES) {
                return Err(ApiError::invalid(
                    "instances must be 0 to 1000",
                    "ask for at most 1000 instances",
                ));
            }
            if b.cpu.is_some_and(|c| c > 256) {
                return Err(ApiError::invalid(
                    "cpu must be 0 to 256 whole cores",
                    "give whole cores, e.g. {\"cpu\": 2}",
                ));
            }
            let memory = match &b.memory {
                None => None,
                Some(m) => match parse_memory(m) {
                    Some(bytes) if (4 << 20..=1024 << 30).contains(&bytes) => Some(bytes),
                    _ => return Err(ApiError::invalid(
                        format!(
                            "memory {:?} is not valid",
                            m.chars().take(32).collect::<String>()
                        ),
                        "give memory as in lain.yaml, from 4m to 1024g, e.g. \"256m\" or \"2g\"",
                    )),
                },
            };
            let store = api.store()?;
            api.db().apps().get(&app).await?;
            let key = DesiredKey::new(&app, &proc).map_err(|e| store_error(e.into()))?;
            let Some(entry) = store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(
                    format!("proc `{proc}` of app `{app}` is not deployed"),
                    "deploy the app first (`lain deploy`); `lain ps` lists its procs",
                ));
            };
            let mut p = entry.value;
            if p.portal.is_some() && b.instances.is_some() {
                return Err(desired_error(DesiredError::PortalScope {
                    proc: proc.clone(),
                }));
            }
            if let Some(n) = b.instances {
                p.instances = n;
            }
            if let Some(c) = b.cpu {
                p.cpu_millis = u64::from(c) * 1000;
            }
            if let Some(m) = memory {
                p.memory_bytes = m;
            }
            let now = current(&api, &app).await?;
            let release = Some(p.release.clone());
            let from_release = running_release(&api, &app, &now).await;
            let out = Write {
                app: &app,
                caller,
                kind: DeploymentKind::Scale,
                from_release,
                to_release: release,
                scope: Scope::One(proc.clone()),
                procs: vec![p],
            }
            .run(&api)
            .await?;
            let mut detail = outcome_detail(&out);
            detail["scale"] = json!({"instances": b.instances, "cpu": b.cpu, "memory": b.memory});
            Ok((Json(out), detail))
        })
        .await
}

/// Returns the app to an earlier deployment: its desired procs (image,
/// env, numbers) and the secret versions they used, together, re-sealed
/// into etcd when missing. Default: the last deployment (not failed) of
/// another release than the one running. Maintainers and admins.
#[utoipa::path(post, path = "/api/v1/apps/{app}/rollback", tag = "deployments",
    params(("app" = String, Path, description = "app name")),
    request_body = RollbackRequest,
    responses((status = 200, body = DeployOutcome), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no deployment to return to"),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn rollback(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    b: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Json<DeployOutcome>, ApiError> {
    let mut audit = Audited::new(&api, &ctx, "rollback").app(app.clone());
    if let Ok(Json(RollbackRequest { to: Some(v) })) = &b {
        audit = audit.target(v.clone());
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            api.store()?;
            api.db().apps().get(&app).await?;
            let now = current(&api, &app).await?;
            let running = now.first().map(|p| p.release.clone());
            let history = api
                .db()
                .deployments()
                .list(
                    &app,
                    &DeploymentQuery {
                        limit: 1000,
                        ..Default::default()
                    },
                )
                .await?;
            let target = history.iter().find(|d| {
                d.restorable()
                    && match &b.to {
                        Some(v) => d.to_release.as_deref() == Some(v.as_str()),
                        None => d.to_release != running,
                    }
            });
            let Some(target) = target else {
                return Err(match &b.to {
                    Some(v) => ApiError::not_found(
                        format!("app `{app}` has no deployment of release `{v}` to return to"),
                        format!("deploy that release instead (`lain deploy -v {v}`)"),
                    ),
                    None => ApiError::not_found(
                        format!("app `{app}` has no earlier release deployed to return to"),
                        "`lain deployments` lists what was deployed",
                    ),
                });
            };
            let mut procs = Vec::new();
            for (name, v) in target.snapshot.desired.as_object().into_iter().flatten() {
                let p: DesiredProc = serde_json::from_value(v.clone()).map_err(|e| {
                    ApiError::Internal(format!(
                        "deployment {} has an unreadable snapshot of proc {name}: {e}",
                        target.id
                    ))
                })?;
                procs.push(p);
            }
            let from_release = running_release(&api, &app, &now).await;
            let mut out = Write {
                app: &app,
                caller,
                kind: DeploymentKind::Rollback,
                from_release,
                to_release: target.to_release.clone(),
                scope: Scope::All,
                procs,
            }
            .run(&api)
            .await?;
            out.warnings = Vec::new();
            let mut detail = outcome_detail(&out);
            detail["restored_deployment"] = json!(target.id);
            Ok((Json(out), detail))
        })
        .await
}

/// Lists an app's deployments, newest first. Any caller.
#[utoipa::path(get, path = "/api/v1/apps/{app}/deployments", tag = "deployments",
    params(("app" = String, Path, description = "app name"), DeploymentsQuery),
    responses((status = 200, body = [DeploymentView]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_deployments(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    q: Result<Query<DeploymentsQuery>, QueryRejection>,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    ctx.caller()?;
    let Query(q) = q?;
    api.db().apps().get(&app).await?;
    let list = api
        .db()
        .deployments()
        .list(
            &app,
            &DeploymentQuery {
                state: None,
                before: q.before,
                limit: q.limit.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(list.iter().map(Into::into).collect()))
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn memory_is_read_as_in_lain_yaml() {
        assert_eq!(parse_memory("256m"), Some(256 << 20));
        assert_eq!(parse_memory("2G"), Some(2 << 30));
        for bad in ["", "m", "0m", "01m", "12", "1k", "-1m", "1.5g"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }
}

/// Deployment `id` of app `app`, or 404.
pub(crate) async fn get_deployment(api: &Api, app: &str, id: i64) -> Result<Deployment, ApiError> {
    match api.db().deployments().get(id).await {
        Ok(d) if d.app == app => Ok(d),
        Ok(_) | Err(DbError::NotFound { .. }) => Err(ApiError::not_found(
            format!("app `{app}` has no deployment {id}"),
            format!("`GET /api/v1/apps/{app}/deployments` lists them"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// How often a deployment stream looks again without an etcd change (the
/// deployment row may be finished by another console).
const EVENTS_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Follows a deployment as Server-Sent Events: `deployment` (the
/// `DeploymentView`) first, then `status` (the app's `AppStatus`) on every
/// change of its instances (`/lain/observed/{app}/`) or rollouts, and
/// `done` (`{"state", "error"}`) when the rollout of its generation
/// converged, rolled back or failed; the stream then ends. An undeploy,
/// or a deployment already finished, gives `deployment` and `done` at
/// once. A deployment that a newer one superseded never ends by itself.
/// Any caller.
#[utoipa::path(get, path = "/api/v1/apps/{app}/deployments/{id}/events", tag = "deployments",
    params(("app" = String, Path, description = "app name"),
        ("id" = i64, Path, description = "deployment id")),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "`event: deployment|status|done`, `data:` JSON"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn deployment_events(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, id)): Path<(String, i64)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::sse::Event;
    use lain_store::{ObservedKey, RolloutKey};

    ctx.caller()?;
    let store = api.store()?.clone();
    let d = get_deployment(&api, &app, id).await?;
    let event =
        |name: &str, data: serde_json::Value| Event::default().event(name).data(data.to_string());
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    let stopping = api.stopping();
    tokio::spawn(async move {
        let view = DeploymentView::from(&d);
        if tx.send(event("deployment", json!(view))).await.is_err() {
            return;
        }
        let done = |state: String, error: Option<String>| {
            event("done", json!({ "state": state, "error": error }))
        };
        let generation = match d.generation {
            Some(g) if !d.state.is_final() => g as u64,
            _ => {
                let _ = tx.send(done(d.state.to_string(), d.error.clone())).await;
                return;
            }
        };
        let prefix = match ObservedKey::of_app(&app) {
            Ok(p) => p,
            Err(_) => return,
        };
        let mut observed = store.watch(&prefix);
        let Ok(rollout_prefix) = RolloutKey::of_app(&app) else {
            return;
        };
        let mut rollouts = store.watch(&rollout_prefix);
        let mut last: Option<String> = None;
        loop {
            let changed = tokio::select! {
                _ = tx.closed() => return,
                _ = stopping.cancelled() => return,
                e = observed.next() => match e { Some(_) => true, None => return },
                e = rollouts.next() => match e { Some(_) => true, None => return },
                _ = tokio::time::sleep(EVENTS_RECHECK) => false,
            };
            if changed {
                if let Ok(status) = super::status::collect(&store, &app).await {
                    let text = json!(status);
                    let rendered = text.to_string();
                    // Only what changed for the watcher.
                    if last.as_deref() != Some(rendered.as_str()) {
                        last = Some(rendered);
                        if tx.send(event("status", text)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let outcome = crate::track::AppRollouts::read(&store, &app)
                .await
                .map(|r| r.outcome(generation));
            match outcome {
                Ok(Some((state, error))) => {
                    let _ = tx.send(done(state.to_string(), error)).await;
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "deployment events: cannot read the rollout"),
            }
        }
    });
    Ok(super::sse(rx))
}
