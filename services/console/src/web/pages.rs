//! The read-only pages. Each reads through the API's own handlers with
//! the signed-in user's [`Ctx`](crate::api::Ctx), so what a user may see
//! here is what the API lets them read; forms are shown only to those the
//! API would let act.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::Json;
use serde::Deserialize;

use super::auth::Session;
use super::history::{self, Chart};
use super::view::{self, seg, Badge, Layout, Page, WebError};
use crate::api::{self, Api, AppStatus, Caller};
use crate::db::now_ms;
use crate::error::ApiError;

/// An app's health at a glance, and a one-line summary, from its status.
pub fn app_health(s: &AppStatus) -> (Badge, String) {
    let mut want = 0u32;
    let mut healthy = 0usize;
    let mut phases = Vec::new();
    for p in &s.procs {
        let Some(d) = &p.desired else { continue };
        want += d.instances;
        // A scale keeps the instances it does not add or remove, so their
        // generation is older: count every healthy one, up to what is wanted.
        healthy += p
            .instances
            .iter()
            .filter(|i| i.state == "running" && i.health == "healthy")
            .count()
            .min(d.instances as usize);
        if let Some(r) = &p.rollout {
            phases.push(r.phase.as_str());
        }
    }
    let word = if s.procs.is_empty() {
        "not_deployed"
    } else if let Some(p) = ["failed", "rolled_back"]
        .into_iter()
        .find(|p| phases.contains(p))
    {
        p
    } else if phases.contains(&"progressing") {
        "rolling_out"
    } else if healthy >= want as usize {
        "healthy"
    } else {
        "degraded"
    };
    (
        Badge::of(word),
        format!("{healthy} of {want} instances healthy"),
    )
}

/// Whether `caller` may change `app` (the API's rule); a refusal is
/// `false`, a failure to find out is an error, never "read-only".
async fn may_act(api: &Api, caller: &Caller, app: &str) -> Result<bool, ApiError> {
    match api.may_change(caller, app).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_denial() => Ok(false),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------
// Apps
// ---------------------------------------------------------------------

pub struct AppRow {
    pub name: String,
    pub apptype: String,
    pub badge: Badge,
    pub summary: String,
    pub release: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub l: Layout,
    pub rows: Vec<AppRow>,
    pub all: bool,
}

/// `GET /ui/`: the apps the user maintains, or every app for an admin,
/// each with its health (one read of the cluster's state for all).
pub async fn apps(s: Session) -> Result<Page<AppsPage>, WebError> {
    let apps = if s.caller.admin {
        let Json(all) = api::apps::list_apps(s.state(), s.ctx()).await?;
        all.into_iter()
            .map(|a| (a.name, a.apptype))
            .collect::<Vec<_>>()
    } else {
        // What `whoami` lists as maintained, with each app's type.
        s.api
            .db()
            .apps()
            .list_maintained_by(&s.caller.subject)
            .await?
            .into_iter()
            .map(|a| (a.name, a.apptype.to_string()))
            .collect()
    };
    let statuses = match s.api.store() {
        Ok(store) => Some(api::status::collect_all(store).await?),
        Err(_) => None,
    };
    let rows = apps
        .into_iter()
        .map(|(name, apptype)| {
            let (badge, summary, release) = match &statuses {
                Some(all) => {
                    let st = all.get(&name).cloned().unwrap_or_else(|| AppStatus {
                        app: name.clone(),
                        procs: Vec::new(),
                    });
                    let (badge, summary) = app_health(&st);
                    let release = st.running_release().unwrap_or("–").to_owned();
                    (badge, summary, release)
                }
                None => (Badge::of("unknown"), "etcd unavailable".into(), "–".into()),
            };
            AppRow {
                name,
                apptype,
                badge,
                summary,
                release,
            }
        })
        .collect();
    Ok(Page(AppsPage {
        l: s.layout("Apps", "apps"),
        rows,
        all: s.caller.admin,
    }))
}

// ---------------------------------------------------------------------
// One app
// ---------------------------------------------------------------------

pub struct InstanceRow {
    pub id: String,
    pub number: u32,
    pub generation: u64,
    pub node: String,
    pub state: String,
    pub health: String,
    pub badge: Badge,
    pub restarts: u32,
    pub age: String,
    pub message: String,
}

pub struct ProcView {
    pub name: String,
    pub release: String,
    pub desired: Option<u32>,
    pub resources: String,
    pub phase: Option<Badge>,
    pub message: String,
    pub instances: Vec<InstanceRow>,
}

/// The instance tables, alone: what the live stream sends.
#[derive(Template)]
#[template(path = "_procs.html")]
pub struct ProcsFragment {
    pub procs: Vec<ProcView>,
}

pub fn procs_fragment(status: &AppStatus) -> ProcsFragment {
    ProcsFragment {
        procs: procs_view(status),
    }
}

fn procs_view(s: &AppStatus) -> Vec<ProcView> {
    let now = now_ms();
    s.procs
        .iter()
        .map(|p| ProcView {
            name: p.proc.clone(),
            release: p
                .desired
                .as_ref()
                .map(|d| d.release.clone())
                .unwrap_or_else(|| "– (being removed)".into()),
            desired: p.desired.as_ref().map(|d| d.instances),
            resources: p
                .desired
                .as_ref()
                .map(|d| match d.cpu_millis {
                    0 => format!("{} memory", view::size(d.memory_bytes)),
                    c => format!(
                        "{} CPU, {} memory",
                        view::cores(c),
                        view::size(d.memory_bytes)
                    ),
                })
                .unwrap_or_default(),
            phase: p.rollout.as_ref().map(|r| Badge::of(&r.phase)),
            message: p
                .rollout
                .as_ref()
                .and_then(|r| r.message.clone())
                .unwrap_or_default(),
            instances: p
                .instances
                .iter()
                .map(|i| InstanceRow {
                    id: i.id.clone(),
                    number: i.number,
                    generation: i.generation,
                    node: i.node.clone(),
                    state: i.state.clone(),
                    health: i.health.clone(),
                    // A running instance is as healthy as its check says.
                    badge: Badge::of(if i.state == "running" {
                        &i.health
                    } else {
                        &i.state
                    }),
                    restarts: i.restarts,
                    age: i
                        .started_at_ms
                        .map(|t| view::age(t as i64, now))
                        .unwrap_or_else(|| "–".into()),
                    message: i.message.clone().unwrap_or_default(),
                })
                .collect(),
        })
        .collect()
}

pub struct DeploymentRow {
    pub id: i64,
    pub kind: String,
    pub change: String,
    pub by: String,
    pub started: String,
    pub badge: Badge,
    pub error: String,
}

fn deployment_row(d: &api::DeploymentView) -> DeploymentRow {
    let procs = d
        .procs
        .as_ref()
        .map(|p| format!(" ({})", p.join(", ")))
        .unwrap_or_default();
    let change = match (&d.from_release, &d.to_release) {
        (Some(a), Some(b)) if a != b => format!("{a} → {b}{procs}"),
        (_, Some(b)) => format!("{b}{procs}"),
        (Some(a), None) => format!("{a} → none{procs}"),
        (None, None) => procs,
    };
    DeploymentRow {
        id: d.id,
        kind: d.kind.clone(),
        change,
        by: d.requested_by.clone(),
        started: view::when(d.started_at),
        badge: Badge::of(&d.state),
        error: d.error.clone().unwrap_or_default(),
    }
}

pub struct EventRow {
    pub at: String,
    pub severity: String,
    pub kind: String,
    pub what: String,
    pub message: String,
}

pub struct SecretRow {
    pub name: String,
    pub version: i64,
    pub by: String,
    pub at: String,
}

pub struct MaintainerRow {
    pub subject: String,
    /// The subject as a URL path segment.
    pub subject_url: String,
    pub role: String,
    pub added: String,
}

#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage {
    pub l: Layout,
    pub app: String,
    pub apptype: String,
    pub can_change: bool,
    pub badge: Badge,
    pub summary: String,
    pub procs: Vec<ProcView>,
    pub max_instances: u32,
    pub etcd_error: String,
    pub deployments: Vec<DeploymentRow>,
    /// The events, or why they cannot be read.
    pub events: Result<Vec<EventRow>, String>,
    pub secrets: Option<Vec<SecretRow>>,
    pub maintainers: Vec<MaintainerRow>,
    pub charts: Vec<Chart>,
    pub chart_w: f64,
    pub chart_h: f64,
}

/// The app's status, or an empty one and why it cannot be read (the page
/// still shows what the database knows).
async fn status_or_why(s: &Session, app: &str) -> Result<(AppStatus, String), WebError> {
    match api::status::status(s.state(), s.ctx(), Path(app.to_owned())).await {
        Ok(Json(st)) => Ok((st, String::new())),
        Err(e @ (ApiError::EtcdUnavailable { .. } | ApiError::Internal(_))) => Ok((
            AppStatus {
                app: app.to_owned(),
                procs: Vec::new(),
            },
            format!("{e} ({})", e.hint()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /ui/apps/{app}`.
pub async fn app(s: Session, Path(app): Path<String>) -> Result<Page<AppPage>, WebError> {
    let Json(a) = api::apps::show_app(s.state(), s.ctx(), Path(app.clone())).await?;
    let Json(maintainers) =
        api::apps::list_maintainers(s.state(), s.ctx(), Path(app.clone())).await?;
    // The API's rule (`may_change`), from the list just read.
    let can_change = s.caller.admin || maintainers.iter().any(|m| m.subject == s.caller.subject);
    let (status, etcd_error) = status_or_why(&s, &app).await?;
    let (badge, summary) = app_health(&status);
    let Json(deployments) = api::deploy::list_deployments(
        s.state(),
        s.ctx(),
        Path(app.clone()),
        Ok(Query(api::deploy::DeploymentsQuery {
            limit: Some(10),
            before: None,
        })),
    )
    .await?;
    let events = api::logs::events(
        s.state(),
        s.ctx(),
        Path(app.clone()),
        Ok(Query(api::logs::EventsQuery {
            since_ms: None,
            proc: None,
        })),
    )
    .await
    .map(|Json(ev)| {
        ev.iter()
            .rev()
            .take(20)
            .map(|e| EventRow {
                at: view::when(e.at_ms as i64),
                severity: e.severity.clone(),
                kind: e.kind.clone(),
                what: match (&e.proc, &e.instance) {
                    (Some(p), Some(i)) => format!("{p} #{i}"),
                    (Some(p), None) => p.clone(),
                    _ => String::new(),
                },
                message: e.message.clone(),
            })
            .collect()
    })
    .map_err(|e| format!("{e} ({})", e.hint()));
    let secrets = if can_change {
        let Json(list) = api::secrets::list_secrets(s.state(), s.ctx(), Path(app.clone())).await?;
        Some(
            list.into_iter()
                .map(|x| SecretRow {
                    name: x.name,
                    version: x.version,
                    by: x.updated_by,
                    at: view::when(x.updated_at),
                })
                .collect(),
        )
    } else {
        None
    };
    let charts = match s.api.web() {
        Ok(w) => history::charts(&w.history.samples(&app)),
        Err(_) => Vec::new(),
    };
    Ok(Page(AppPage {
        l: s.layout(app.clone(), "apps"),
        apptype: a.apptype,
        can_change,
        badge,
        summary,
        procs: procs_view(&status),
        max_instances: api::deploy::MAX_INSTANCES,
        etcd_error,
        deployments: deployments.iter().map(deployment_row).collect(),
        events,
        secrets,
        maintainers: maintainers
            .into_iter()
            .map(|m| MaintainerRow {
                subject_url: seg(&m.subject),
                subject: m.subject,
                role: m.role,
                added: view::when(m.added_at),
            })
            .collect(),
        charts,
        chart_w: history::W,
        chart_h: history::H,
        app,
    }))
}

// ---------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------

pub struct ReleaseRow {
    pub version: String,
    pub image: String,
    pub by: String,
    pub at: String,
    pub running: bool,
    /// A deployment of it exists that a rollback may return to.
    pub restorable: bool,
}

#[derive(Template)]
#[template(path = "releases.html")]
pub struct ReleasesPage {
    pub l: Layout,
    pub app: String,
    pub can_change: bool,
    pub rows: Vec<ReleaseRow>,
}

/// `GET /ui/apps/{app}/releases`: with deploy and rollback buttons.
pub async fn releases(s: Session, Path(app): Path<String>) -> Result<Page<ReleasesPage>, WebError> {
    let Json(list) = api::releases::list_releases(
        s.state(),
        s.ctx(),
        Path(app.clone()),
        Ok(Query(api::releases::ListQuery { limit: Some(100) })),
    )
    .await?;
    let can_change = may_act(&s.api, &s.caller, &app).await?;
    let (status, _) = status_or_why(&s, &app).await?;
    let Json(history) = api::deploy::list_deployments(
        s.state(),
        s.ctx(),
        Path(app.clone()),
        Ok(Query(api::deploy::DeploymentsQuery {
            limit: Some(1000),
            before: None,
        })),
    )
    .await?;
    let rows = list
        .into_iter()
        .map(|r| ReleaseRow {
            running: status.running_release() == Some(r.version.as_str()),
            restorable: history
                .iter()
                .any(|d| d.restorable && d.to_release.as_deref() == Some(r.version.as_str())),
            version: r.version,
            image: r.image,
            by: r.pushed_by,
            at: view::when(r.pushed_at),
        })
        .collect();
    Ok(Page(ReleasesPage {
        l: s.layout(format!("{app}: releases"), "apps"),
        app,
        can_change,
        rows,
    }))
}

// ---------------------------------------------------------------------
// One deployment
// ---------------------------------------------------------------------

#[derive(Template)]
#[template(path = "deployment.html")]
pub struct DeploymentPage {
    pub l: Layout,
    pub app: String,
    pub d: DeploymentRow,
    pub state: String,
    pub finished: String,
    pub generation: String,
    /// Names and versions, for those who may change the app.
    pub secrets: Option<Vec<(String, i64)>>,
    pub procs: Vec<ProcView>,
    pub summary: String,
}

/// `GET /ui/apps/{app}/deployments/{id}`: its outcome, followed live
/// until it is done, and the app's instances.
pub async fn deployment(
    s: Session,
    Path((app, id)): Path<(String, i64)>,
) -> Result<Page<DeploymentPage>, WebError> {
    let view = api::DeploymentView::from(&api::deploy::get_deployment(&s.api, &app, id).await?);
    // As on the app page: secrets, even by name, only for who may change it.
    let secrets = may_act(&s.api, &s.caller, &app)
        .await?
        .then(|| view.secrets.clone().into_iter().collect());
    let (status, _) = status_or_why(&s, &app).await?;
    Ok(Page(DeploymentPage {
        l: s.layout(format!("{app}: deployment {id}"), "apps"),
        state: view.state.clone(),
        finished: view
            .finished_at
            .map(view::when)
            .unwrap_or_else(|| "–".into()),
        generation: view
            .generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "–".into()),
        secrets,
        d: deployment_row(&view),
        procs: procs_view(&status),
        summary: app_health(&status).1,
        app,
    }))
}

// ---------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct LogsParams {
    instance: Option<String>,
}

#[derive(Template)]
#[template(path = "logs.html")]
pub struct LogsPage {
    pub l: Layout,
    pub app: String,
    pub proc_name: String,
    /// (value, label, selected)
    pub instances: Vec<(String, String, bool)>,
    pub stream: String,
}

/// `GET /ui/apps/{app}/procs/{proc}/logs`: one instance's output, live.
/// Maintainers and admins, as the API's logs.
pub async fn logs(
    s: Session,
    Path((app, proc_name)): Path<(String, String)>,
    q: Result<Query<LogsParams>, QueryRejection>,
) -> Result<Page<LogsPage>, WebError> {
    let Query(q) = q.map_err(ApiError::from)?;
    s.api.may_change(&s.caller, &app).await?;
    let Json(status) = api::status::status(s.state(), s.ctx(), Path(app.clone())).await?;
    let Some(p) = status.procs.iter().find(|p| p.proc == proc_name) else {
        return Err(ApiError::not_found(
            format!("app `{app}` has no proc `{proc_name}` running"),
            "pick a proc on the app's page",
        )
        .into());
    };
    let mut numbers: Vec<String> = p.instances.iter().map(|i| i.number.to_string()).collect();
    numbers.dedup();
    let chosen = q
        .instance
        .filter(|i| numbers.contains(i))
        .or_else(|| numbers.first().cloned())
        .unwrap_or_else(|| "1".into());
    let stream = format!(
        "/ui/apps/{}/procs/{}/logs/stream?instance={}",
        seg(&app),
        seg(&proc_name),
        seg(&chosen)
    );
    Ok(Page(LogsPage {
        l: s.layout(format!("{app}: {proc_name} logs"), "apps"),
        instances: numbers
            .iter()
            .map(|n| (n.clone(), format!("instance {n}"), *n == chosen))
            .collect(),
        stream,
        app,
        proc_name,
    }))
}

// ---------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------

pub struct NodeRow {
    pub name: String,
    pub address: String,
    pub badge: Badge,
    pub last_seen: String,
    pub cpu: String,
    pub cpu_pct: u32,
    pub memory: String,
    pub memory_pct: u32,
    pub instances: u32,
    pub flags: String,
    pub schedulable: bool,
    pub draining: bool,
}

pub struct PartRow {
    pub name: String,
    pub badge: Badge,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "cluster.html")]
pub struct ClusterPage {
    pub l: Layout,
    pub nodes: Vec<NodeRow>,
    pub parts: Vec<PartRow>,
    pub admin: bool,
}

/// `GET /ui/cluster`: nodes with capacity used and liveness; cordon and
/// drain for admins; the control plane's parts.
pub async fn cluster(s: Session) -> Result<Page<ClusterPage>, WebError> {
    let Json(nodes) = api::nodes::list_nodes(s.state(), s.ctx()).await?;
    // Instances read on the nodes' capacity; `None` when etcd cannot say.
    let usage = match s.api.store() {
        Ok(st) => crate::fit::node_usage(st).await.ok(),
        Err(_) => None,
    };
    let now = now_ms();
    let rows = nodes
        .into_iter()
        .map(|n| {
            let used = usage.as_ref().map(|u| {
                u.get(&n.name).copied().unwrap_or(lain_store::Capacity {
                    cpu_millis: 0,
                    memory_bytes: 0,
                })
            });
            let of = |used: Option<u64>, total: u64, show: fn(u64) -> String| match used {
                Some(u) => (
                    format!("{} of {}", show(u), show(total)),
                    view::percent(u, total),
                ),
                None => (format!("? of {}", show(total)), 0),
            };
            let (cpu, cpu_pct) = of(used.map(|u| u.cpu_millis), n.cpu_millis, |c| {
                format!("{} cores", view::cores(c))
            });
            let (memory, memory_pct) = of(used.map(|u| u.memory_bytes), n.memory_bytes, view::size);
            NodeRow {
                badge: Badge::of(&n.liveness),
                last_seen: n
                    .last_seen_ms
                    .map(|t| format!("{} ago", view::age(t as i64, now)))
                    .unwrap_or_else(|| "never".into()),
                cpu,
                cpu_pct,
                memory,
                memory_pct,
                instances: n.instances,
                flags: match (n.schedulable, n.draining) {
                    (_, true) => "draining".into(),
                    (false, false) => "cordoned".into(),
                    (true, false) => "schedulable".into(),
                },
                schedulable: n.schedulable,
                draining: n.draining,
                name: n.name,
                address: n.address,
            }
        })
        .collect();
    let Json(c) = api::cluster::cluster_status(s.state(), s.ctx()).await?;
    let reach = |ok: bool| Badge::of(if ok { "reachable" } else { "unreachable" });
    let mut parts = vec![
        PartRow {
            name: "etcd".into(),
            badge: reach(c.etcd.reachable),
            detail: c.etcd.error.clone().unwrap_or_else(|| {
                format!(
                    "{} members, {} healthy",
                    c.etcd.members.len(),
                    c.etcd.members.iter().filter(|m| m.healthy).count()
                )
            }),
        },
        PartRow {
            name: "sso".into(),
            badge: reach(c.sso.reachable),
            detail: c.sso.error.clone().unwrap_or_else(|| c.sso.issuer.clone()),
        },
        PartRow {
            name: "deployd".into(),
            badge: Badge::of(if c.deployd.leader.is_some() {
                "ok"
            } else {
                "no_leader"
            }),
            detail: format!(
                "{} replicas{}",
                c.deployd.candidates.len(),
                c.deployd
                    .leader
                    .as_ref()
                    .map(|l| format!(", leader {}", l.id))
                    .unwrap_or_default()
            ),
        },
    ];
    for r in &c.routers {
        parts.push(PartRow {
            name: format!("router {}", r.id),
            badge: Badge::of(if r.error.is_none() {
                "serving"
            } else {
                "error"
            }),
            detail: r.error.clone().unwrap_or_else(|| {
                format!(
                    "{} upstreams, applied {} ago",
                    r.upstreams,
                    view::duration(r.age_ms as i64)
                )
            }),
        });
    }
    Ok(Page(ClusterPage {
        l: s.layout("Cluster", "cluster"),
        nodes: rows,
        parts,
        admin: s.caller.admin,
    }))
}

// ---------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    app: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    before: Option<i64>,
}

pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub app: String,
    pub target: String,
    pub badge: Badge,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub l: Layout,
    pub app: String,
    pub actor: String,
    pub action: String,
    pub result: String,
    pub rows: Vec<AuditRow>,
    pub next: Option<String>,
}

const AUDIT_PAGE: u32 = 50;

/// `GET /ui/audit`: the audit log, filtered. Admins see all of it; a
/// maintainer the entries of an app it maintains (as the API).
pub async fn audit(
    s: Session,
    q: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Page<AuditPage>, WebError> {
    let Query(f) = q.map_err(ApiError::from)?;
    let filter = |v: &str| Some(v.to_owned());
    let Json(list) = api::audit::list_audit(
        s.state(),
        s.ctx(),
        Ok(Query(api::audit::AuditParams {
            app: filter(&f.app),
            actor: filter(&f.actor),
            action: filter(&f.action),
            result: filter(&f.result),
            before: f.before,
            limit: Some(AUDIT_PAGE),
        })),
    )
    .await?;
    let next = (list.len() == AUDIT_PAGE as usize)
        .then(|| list.last().map(|e| e.id))
        .flatten()
        .map(|before| {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("app", &f.app)
                .append_pair("actor", &f.actor)
                .append_pair("action", &f.action)
                .append_pair("result", &f.result)
                .append_pair("before", &before.to_string())
                .finish();
            format!("/ui/audit?{query}")
        });
    let rows = list
        .into_iter()
        .map(|e| AuditRow {
            id: e.id,
            at: view::when(e.at),
            badge: Badge::of(&e.result),
            actor: e.actor,
            action: e.action,
            app: e.app.unwrap_or_default(),
            target: e.target.unwrap_or_default(),
            detail: e.detail.to_string(),
        })
        .collect();
    Ok(Page(AuditPage {
        l: s.layout("Audit log", "audit"),
        app: f.app,
        actor: f.actor,
        action: f.action,
        result: f.result,
        rows,
        next,
    }))
}
