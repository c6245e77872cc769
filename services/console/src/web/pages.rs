//! The read-only pages. Each reads through the API's own handlers with
//! the signed-in user's [`Ctx`](crate::api::Ctx), so what a user may see
//! here is what the API lets them read; forms are shown only to those the
//! API would let act.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use super::auth::{Signed, WebReq};
use super::history::{self, Chart};
use super::view::{self, Layout, Page, WebError};
use crate::api::{self, Api, AppStatus};
use crate::db::now_ms;
use crate::error::ApiError;

/// A status badge: its CSS class and its words (never colour alone).
#[derive(Debug, Clone)]
pub struct Badge {
    pub class: &'static str,
    pub label: String,
}

impl Badge {
    fn new(class: &'static str, label: impl Into<String>) -> Badge {
        Badge {
            class,
            label: label.into(),
        }
    }
}

/// An app's health at a glance, from its status.
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
    let summary = format!("{healthy} of {want} instances healthy");
    let badge = if s.procs.is_empty() {
        Badge::new("muted", "– not deployed")
    } else if phases.contains(&"failed") {
        Badge::new("bad", "✗ failed")
    } else if phases.contains(&"rolled_back") {
        Badge::new("warn", "↶ rolled back")
    } else if phases.contains(&"progressing") {
        Badge::new("info", "… rolling out")
    } else if healthy >= want as usize {
        Badge::new("ok", "✓ healthy")
    } else {
        Badge::new("warn", "! degraded")
    };
    (badge, summary)
}

fn state_badge(state: &str, health: &str) -> Badge {
    match (state, health) {
        ("running", "healthy") => Badge::new("ok", "✓ healthy"),
        ("running", "unhealthy") => Badge::new("bad", "! unhealthy"),
        ("running", _) | ("starting" | "creating" | "pending", _) => {
            Badge::new("info", "… starting")
        }
        ("failed" | "lost" | "exited", _) => Badge::new("bad", format!("✗ {state}")),
        (s, _) => Badge::new("muted", s.to_owned()),
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
/// each with its health.
pub async fn apps(State(api): State<Api>, req: WebReq) -> Result<Page<AppsPage>, WebError> {
    let s = req.signed()?;
    let ctx = req.ctx(s);
    let apps: Vec<(String, String)> = if s.caller.admin {
        let Json(all) = api::apps::list_apps(State(api.clone()), ctx).await?;
        all.into_iter().map(|a| (a.name, a.apptype)).collect()
    } else {
        let Json(me) = api::whoami(State(api.clone()), ctx).await?;
        let mut out = Vec::new();
        for name in me.maintains {
            let Json(a) = api::apps::show_app(State(api.clone()), req.ctx(s), Path(name)).await?;
            out.push((a.name, a.apptype));
        }
        out
    };
    let store = api.store().ok();
    let mut rows = Vec::with_capacity(apps.len());
    for (name, apptype) in apps {
        let status = match store {
            Some(st) => api::status::collect(st, &name).await.ok(),
            None => None,
        };
        let (badge, summary, release) = match &status {
            Some(st) => {
                let (b, sum) = app_health(st);
                let rel = st
                    .procs
                    .iter()
                    .find_map(|p| p.desired.as_ref().map(|d| d.release.clone()))
                    .unwrap_or_else(|| "–".into());
                (b, sum, rel)
            }
            None => (
                Badge::new("muted", "? unknown"),
                "etcd unavailable".into(),
                "–".into(),
            ),
        };
        rows.push(AppRow {
            name,
            apptype,
            badge,
            summary,
            release,
        });
    }
    Ok(Page(AppsPage {
        l: req.layout(s, "Apps", "apps"),
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

/// The procs table, alone: what the live stream sends.
#[derive(Template)]
#[template(path = "_procs.html")]
pub struct ProcsFragment {
    pub app: String,
    pub can_change: bool,
    pub procs: Vec<ProcView>,
    pub summary: String,
}

pub fn procs_view(s: &AppStatus) -> Vec<ProcView> {
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
            phase: p.rollout.as_ref().map(|r| match r.phase.as_str() {
                "converged" => Badge::new("ok", "✓ converged"),
                "progressing" => Badge::new("info", "… progressing"),
                "rolled_back" => Badge::new("warn", "↶ rolled back"),
                other => Badge::new("bad", format!("✗ {other}")),
            }),
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
                    badge: state_badge(&i.state, &i.health),
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

fn deployment_badge(state: &str) -> Badge {
    match state {
        "succeeded" => Badge::new("ok", "✓ succeeded"),
        "progressing" | "pending" => Badge::new("info", format!("… {state}")),
        "rolled_back" => Badge::new("warn", "↶ rolled back"),
        other => Badge::new("bad", format!("✗ {other}")),
    }
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
        badge: deployment_badge(&d.state),
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
    pub etcd_error: String,
    pub deployments: Vec<DeploymentRow>,
    pub events: Vec<EventRow>,
    pub secrets: Option<Vec<SecretRow>>,
    pub maintainers: Vec<MaintainerRow>,
    pub charts: Vec<Chart>,
    pub chart_w: f64,
    pub chart_h: f64,
}

/// `GET /ui/apps/{app}`.
pub async fn app(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
) -> Result<Page<AppPage>, WebError> {
    let s = req.signed()?;
    let Json(a) = api::apps::show_app(State(api.clone()), req.ctx(s), Path(app.clone())).await?;
    let can_change = api.may_change(&s.caller, &app).await.is_ok();
    let (status, etcd_error) =
        match api::status::status(State(api.clone()), req.ctx(s), Path(app.clone())).await {
            Ok(Json(st)) => (st, String::new()),
            Err(e) => (
                AppStatus {
                    app: app.clone(),
                    procs: Vec::new(),
                },
                format!("{e} ({})", e.hint()),
            ),
        };
    let (badge, summary) = app_health(&status);
    let Json(deployments) = api::deploy::list_deployments(
        State(api.clone()),
        req.ctx(s),
        Path(app.clone()),
        Ok(Query(api::deploy::DeploymentsQuery {
            limit: Some(10),
            before: None,
        })),
    )
    .await?;
    let events = match api::logs::events(
        State(api.clone()),
        req.ctx(s),
        Path(app.clone()),
        Ok(Query(api::logs::EventsQuery {
            since_ms: None,
            proc: None,
        })),
    )
    .await
    {
        Ok(Json(ev)) => ev
            .iter()
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
            .collect(),
        Err(_) => Vec::new(),
    };
    let secrets = if can_change {
        let Json(list) =
            api::secrets::list_secrets(State(api.clone()), req.ctx(s), Path(app.clone())).await?;
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
    let Json(maintainers) =
        api::apps::list_maintainers(State(api.clone()), req.ctx(s), Path(app.clone())).await?;
    let charts = match api.web() {
        Ok(w) => history::charts(&w.history.samples(&app)),
        Err(_) => Vec::new(),
    };
    Ok(Page(AppPage {
        l: req.layout(s, app.clone(), "apps"),
        apptype: a.apptype,
        can_change,
        badge,
        summary,
        procs: procs_view(&status),
        etcd_error,
        deployments: deployments.iter().map(deployment_row).collect(),
        events,
        secrets,
        maintainers: maintainers
            .into_iter()
            .map(|m| MaintainerRow {
                subject_url: urlenc(&m.subject),
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
    /// A deployment of it exists to roll back to.
    pub deployed_before: bool,
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
pub async fn releases(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
) -> Result<Page<ReleasesPage>, WebError> {
    let s = req.signed()?;
    let Json(list) = api::releases::list_releases(
        State(api.clone()),
        req.ctx(s),
        Path(app.clone()),
        Ok(Query(api::releases::ListQuery { limit: Some(100) })),
    )
    .await?;
    let can_change = api.may_change(&s.caller, &app).await.is_ok();
    let running = match api.store() {
        Ok(st) => api::status::collect(st, &app).await.ok().and_then(|st| {
            st.procs
                .iter()
                .find_map(|p| p.desired.as_ref().map(|d| d.release.clone()))
        }),
        Err(_) => None,
    };
    let Json(history) = api::deploy::list_deployments(
        State(api.clone()),
        req.ctx(s),
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
            running: running.as_deref() == Some(r.version.as_str()),
            deployed_before: history.iter().any(|d| {
                d.to_release.as_deref() == Some(r.version.as_str())
                    && d.kind != "undeploy"
                    && d.state != "failed"
                    && d.state != "rolled_back"
            }),
            version: r.version,
            image: r.image,
            by: r.pushed_by,
            at: view::when(r.pushed_at),
        })
        .collect();
    Ok(Page(ReleasesPage {
        l: req.layout(s, format!("{app}: releases"), "apps"),
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
    pub can_change: bool,
    pub d: DeploymentRow,
    pub state: String,
    pub finished: String,
    pub generation: String,
    pub secrets: Vec<(String, i64)>,
    pub live: bool,
    pub procs: Vec<ProcView>,
    pub summary: String,
}

/// `GET /ui/apps/{app}/deployments/{id}`: its outcome, followed live
/// until it is done.
pub async fn deployment(
    State(api): State<Api>,
    req: WebReq,
    Path((app, id)): Path<(String, String)>,
) -> Result<Page<DeploymentPage>, WebError> {
    let s = req.signed()?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::not_found(
            format!("app `{app}` has no deployment {id:?}"),
            "pick one from the app's page",
        )
    })?;
    let d = match api.db().deployments().get(id).await {
        Ok(d) if d.app == app => d,
        Ok(_) | Err(crate::db::DbError::NotFound { .. }) => {
            return Err(ApiError::not_found(
                format!("app `{app}` has no deployment {id}"),
                "pick one from the app's page",
            )
            .into())
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let view = api::DeploymentView::from(&d);
    let can_change = api.may_change(&s.caller, &app).await.is_ok();
    let status = match api.store() {
        Ok(st) => api::status::collect(st, &app).await.ok(),
        Err(_) => None,
    };
    let (procs, summary) = match &status {
        Some(st) => (procs_view(st), app_health(st).1),
        None => (Vec::new(), String::new()),
    };
    Ok(Page(DeploymentPage {
        l: req.layout(s, format!("{app}: deployment {id}"), "apps"),
        can_change,
        state: view.state.clone(),
        finished: view
            .finished_at
            .map(view::when)
            .unwrap_or_else(|| "–".into()),
        generation: view
            .generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "–".into()),
        secrets: view.secrets.clone().into_iter().collect(),
        live: !d.state.is_final() && view.generation.is_some(),
        d: deployment_row(&view),
        procs,
        summary,
        app,
    }))
}

// ---------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------

#[derive(Deserialize)]
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
    State(api): State<Api>,
    req: WebReq,
    Path((app, proc_name)): Path<(String, String)>,
    q: Result<Query<LogsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Page<LogsPage>, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    api.may_change(&s.caller, &app).await?;
    let Json(status) =
        api::status::status(State(api.clone()), req.ctx(s), Path(app.clone())).await?;
    let Some(p) = status.procs.iter().find(|p| p.proc == proc_name) else {
        return Err(ApiError::not_found(
            format!("app `{app}` has no proc `{proc_name}` running"),
            "pick a proc on the app's page",
        )
        .into());
    };
    let mut numbers: Vec<u32> = p.instances.iter().map(|i| i.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let chosen = q
        .and_then(|Query(q)| q.instance)
        .filter(|i| numbers.iter().any(|n| n.to_string() == *i))
        .or_else(|| numbers.first().map(u32::to_string))
        .unwrap_or_else(|| "1".into());
    let stream = format!(
        "/ui/apps/{}/procs/{}/logs/stream?instance={}",
        urlenc(&app),
        urlenc(&proc_name),
        urlenc(&chosen)
    );
    Ok(Page(LogsPage {
        l: req.layout(s, format!("{app}: {proc_name} logs"), "apps"),
        instances: numbers
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    format!("instance {n}"),
                    n.to_string() == chosen,
                )
            })
            .collect(),
        stream,
        app,
        proc_name,
    }))
}

pub fn urlenc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
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
pub async fn cluster(State(api): State<Api>, req: WebReq) -> Result<Page<ClusterPage>, WebError> {
    let s = req.signed()?;
    let Json(nodes) = api::nodes::list_nodes(State(api.clone()), req.ctx(s)).await?;
    let usage = match api.store() {
        Ok(st) => crate::fit::node_usage(st).await.unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let now = now_ms();
    let rows = nodes
        .into_iter()
        .map(|n| {
            let used = usage.get(&n.name).copied().unwrap_or(lain_store::Capacity {
                cpu_millis: 0,
                memory_bytes: 0,
            });
            NodeRow {
                badge: match n.liveness.as_str() {
                    "alive" => Badge::new("ok", "✓ alive"),
                    "suspect" => Badge::new("warn", "? suspect"),
                    "lost" => Badge::new("bad", "✗ lost"),
                    other => Badge::new("muted", other.to_owned()),
                },
                last_seen: n
                    .last_seen_ms
                    .map(|t| format!("{} ago", view::age(t as i64, now)))
                    .unwrap_or_else(|| "never".into()),
                cpu: format!(
                    "{} of {} cores",
                    view::cores(used.cpu_millis),
                    view::cores(n.cpu_millis)
                ),
                cpu_pct: view::percent(used.cpu_millis, n.cpu_millis),
                memory: format!(
                    "{} of {}",
                    view::size(used.memory_bytes),
                    view::size(n.memory_bytes)
                ),
                memory_pct: view::percent(used.memory_bytes, n.memory_bytes),
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
    let Json(c) = api::cluster::cluster_status(State(api.clone()), req.ctx(s)).await?;
    let ok = |b: bool, yes: &str, no: &str| {
        if b {
            Badge::new("ok", format!("✓ {yes}"))
        } else {
            Badge::new("bad", format!("✗ {no}"))
        }
    };
    let mut parts = vec![
        PartRow {
            name: "etcd".into(),
            badge: ok(c.etcd.reachable, "reachable", "unreachable"),
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
            badge: ok(c.sso.reachable, "reachable", "unreachable"),
            detail: c.sso.error.clone().unwrap_or_else(|| c.sso.issuer.clone()),
        },
        PartRow {
            name: "deployd".into(),
            badge: ok(c.deployd.leader.is_some(), "leader elected", "no leader"),
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
            badge: match &r.error {
                None => Badge::new("ok", "✓ serving"),
                Some(_) => Badge::new("warn", "! last change failed"),
            },
            detail: r.error.clone().unwrap_or_else(|| {
                format!(
                    "{} upstreams, applied {} ago",
                    r.upstreams,
                    view::age(0, r.age_ms as i64)
                )
            }),
        });
    }
    Ok(Page(ClusterPage {
        l: req.layout(s, "Cluster", "cluster"),
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
    State(api): State<Api>,
    req: WebReq,
    q: Result<Query<AuditFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Page<AuditPage>, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    let f = q.map(|Query(q)| q).unwrap_or_default();
    let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let Json(list) = api::audit::list_audit(
        State(api.clone()),
        req.ctx(s),
        Ok(Query(api::audit::AuditParams {
            app: opt(&f.app),
            actor: opt(&f.actor),
            action: opt(&f.action),
            result: opt(&f.result),
            before: f.before,
            limit: Some(AUDIT_PAGE),
        })),
    )
    .await?;
    let next = (list.len() == AUDIT_PAGE as usize)
        .then(|| list.last().map(|e| e.id))
        .flatten()
        .map(|before| {
            format!(
                "/ui/audit?app={}&actor={}&action={}&result={}&before={before}",
                urlenc(f.app.trim()),
                urlenc(f.actor.trim()),
                urlenc(f.action.trim()),
                urlenc(f.result.trim())
            )
        });
    let rows = list
        .into_iter()
        .map(|e| AuditRow {
            id: e.id,
            at: view::when(e.at),
            badge: match e.result.as_str() {
                "ok" => Badge::new("ok", "✓ ok"),
                "denied" => Badge::new("warn", "⊘ denied"),
                other => Badge::new("bad", format!("✗ {other}")),
            },
            actor: e.actor,
            action: e.action,
            app: e.app.unwrap_or_default(),
            target: e.target.unwrap_or_default(),
            detail: e.detail.to_string(),
        })
        .collect();
    Ok(Page(AuditPage {
        l: req.layout(s, "Audit log", "audit"),
        app: f.app,
        actor: f.actor,
        action: f.action,
        result: f.result,
        rows,
        next,
    }))
}

/// The signed-in user's view of an app's procs, for the live stream.
pub async fn procs_fragment(api: &Api, s: &Signed, status: &AppStatus) -> ProcsFragment {
    ProcsFragment {
        app: status.app.clone(),
        can_change: api.may_change(&s.caller, &status.app).await.is_ok(),
        procs: procs_view(status),
        summary: app_health(status).1,
    }
}
