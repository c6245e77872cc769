//! Actions: every change is a `GET` that shows what will happen and asks
//! for confirmation (checking authorization first, so a non-maintainer
//! sees 403, not a form), then a `POST` that calls the API's own handler.
//! The API authorizes and audits it; a post refused before (not from
//! console's pages, a malformed form, a wrong form token) is audited here
//! under the action it tried. Deploy, scale and rollback then show their
//! deployment, live; the others a result page.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::auth::Session;
use super::view::{seg, Layout, Message, Page, WebError};
use crate::api::{self, Audited, Ctx, DeployOutcome, DeployRequest, RollbackRequest, ScaleRequest};
use crate::error::ApiError;

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct Confirm {
    pub l: Layout,
    pub heading: String,
    /// What will change, line by line.
    pub lines: Vec<String>,
    pub warning: String,
    /// Where the form posts.
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub button: String,
    pub danger: bool,
    pub back: String,
    pub back_label: String,
}

fn app_url(app: &str) -> String {
    format!("/ui/apps/{}", seg(app))
}

/// A posted form: its token, and what it names for the audit log.
trait Posted {
    fn csrf(&self) -> &str;
    fn target(&self) -> Option<&str> {
        None
    }
}

/// The checks of every POST, in order: it comes from console's own pages,
/// its form reads, its token is this session's. A refusal is audited as
/// `action` on `app` and `target` (the path's, else the form's).
async fn checked<T: Posted>(
    s: &Session,
    form: Result<Form<T>, FormRejection>,
    action: &'static str,
    app: Option<&str>,
    target: Option<&str>,
) -> Result<(Ctx, T), WebError> {
    let ctx = s.ctx();
    let form = s.check_origin().and_then(|()| {
        form.map(|Form(f)| f).map_err(|r| {
            ApiError::invalid(
                format!("the form is malformed: {}", r.body_text()),
                "reload the page and fill the form in again",
            )
        })
    });
    let refused = match form {
        Ok(f) => match s.check_csrf(f.csrf()) {
            Ok(()) => return Ok((ctx, f)),
            Err(e) => (e, target.or(f.target()).map(str::to_owned)),
        },
        Err(e) => (e, target.map(str::to_owned)),
    };
    let mut audit = Audited::new(&s.api, &ctx, action);
    if let Some(app) = app {
        audit = audit.app(app);
    }
    if let Some(t) = refused.1 {
        audit = audit.target(t);
    }
    Err(audit.refused(refused.0).await.into())
}

/// Where a deploy, scale or rollback is followed.
fn to_deployment(app: &str, out: DeployOutcome) -> Response {
    Redirect::to(&format!(
        "{}/deployments/{}",
        app_url(app),
        out.deployment.id
    ))
    .into_response()
}

/// A result page.
fn done(s: &Session, heading: &str, text: String, back: (String, String)) -> Response {
    Page(Message {
        l: s.layout(heading, ""),
        heading: heading.into(),
        text,
        hint: String::new(),
        links: vec![back],
        status_role: true,
    })
    .into_response()
}

/// The start of an app action's confirmation page: its query, read, and
/// the caller allowed to change the app (403 page otherwise).
async fn confirm_query<T>(
    s: &Session,
    app: &str,
    q: Result<Query<T>, QueryRejection>,
) -> Result<T, WebError> {
    let Query(q) = q.map_err(ApiError::from)?;
    s.api.may_change(&s.caller, app).await?;
    Ok(q)
}

/// The release the app runs now, from the API's status.
async fn running(s: &Session, app: &str) -> Result<String, WebError> {
    let Json(status) = api::status::status(s.state(), s.ctx(), Path(app.to_owned())).await?;
    Ok(status.running_release().unwrap_or("nothing").to_owned())
}

// ---------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ScaleParams {
    #[serde(default)]
    instances: String,
    #[serde(default)]
    csrf: String,
}

impl Posted for ScaleParams {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The form's number (the API checks its range).
fn instances_of(s: &str) -> Result<u32, ApiError> {
    s.trim().parse::<u32>().map_err(|_| {
        ApiError::invalid(
            format!(
                "instances {:?} is not a whole number",
                s.chars().take(16).collect::<String>()
            ),
            "give a whole number of instances, e.g. 3",
        )
    })
}

/// `GET /ui/apps/{app}/procs/{proc}/scale?instances=N`.
pub async fn scale_confirm(
    s: Session,
    Path((app, proc_name)): Path<(String, String)>,
    q: Result<Query<ScaleParams>, QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let q = confirm_query(&s, &app, q).await?;
    let n = instances_of(&q.instances)?;
    let Json(status) = api::status::status(s.state(), s.ctx(), Path(app.clone())).await?;
    let now = status
        .procs
        .iter()
        .find(|p| p.proc == proc_name)
        .and_then(|p| p.desired.as_ref())
        .ok_or_else(|| {
            ApiError::not_found(
                format!("proc `{proc_name}` of app `{app}` is not deployed"),
                "deploy the app first",
            )
        })?;
    Ok(Page(Confirm {
        l: s.layout(format!("Scale {app} {proc_name}?"), "apps"),
        heading: format!("Scale {proc_name} of {app}?"),
        lines: vec![
            format!("{proc_name}: {} → {n} instances", now.instances),
            format!(
                "release {} stays; image, env and secrets as deployed",
                now.release
            ),
        ],
        warning: if n == 0 {
            "0 instances stops the proc: it serves nothing until scaled up again.".into()
        } else {
            String::new()
        },
        action: format!("{}/procs/{}/scale", app_url(&app), seg(&proc_name)),
        fields: vec![("instances".into(), n.to_string())],
        button: format!("Scale to {n}"),
        danger: n == 0,
        back: app_url(&app),
        back_label: app.clone(),
    }))
}

/// `POST /ui/apps/{app}/procs/{proc}/scale`.
pub async fn scale(
    s: Session,
    Path((app, proc_name)): Path<(String, String)>,
    form: Result<Form<ScaleParams>, FormRejection>,
) -> Result<Response, WebError> {
    let (ctx, f) = checked(&s, form, "scale", Some(&app), Some(&proc_name)).await?;
    let instances = match instances_of(&f.instances) {
        Ok(n) => n,
        Err(e) => {
            let audit = Audited::new(&s.api, &ctx, "scale")
                .app(&app)
                .target(&proc_name);
            return Err(audit.refused(e).await.into());
        }
    };
    let Json(out) = api::deploy::scale(
        s.state(),
        ctx,
        Path((app.clone(), proc_name)),
        Ok(Json(ScaleRequest {
            instances: Some(instances),
            cpu: None,
            memory: None,
        })),
    )
    .await?;
    Ok(to_deployment(&app, out))
}

// ---------------------------------------------------------------------
// Deploy and roll back
// ---------------------------------------------------------------------

#[derive(Deserialize)]
pub struct DeployParams {
    #[serde(default)]
    version: String,
    #[serde(default)]
    csrf: String,
}

impl Posted for DeployParams {
    fn csrf(&self) -> &str {
        &self.csrf
    }
    fn target(&self) -> Option<&str> {
        Some(&self.version)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
    }
}

/// `GET /ui/apps/{app}/deploy?version=V`.
pub async fn deploy_confirm(
    s: Session,
    Path(app): Path<String>,
    q: Result<Query<DeployParams>, QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let version = confirm_query(&s, &app, q).await?.version;
    if version.is_empty() {
        return Err(
            ApiError::invalid("no release named", "pick a release on the releases page").into(),
        );
    }
    let Json(r) =
        api::releases::show_release(s.state(), s.ctx(), Path((app.clone(), version.clone())))
            .await?;
    let now = running(&s, &app).await?;
    Ok(Page(Confirm {
        l: s.layout(format!("Deploy {app}?"), "apps"),
        heading: format!("Deploy {version} of {app}?"),
        lines: vec![
            format!("running now: {now}"),
            format!("to deploy: {version} ({}), every proc", r.release.image),
            "procs the release no longer has are removed; instances are replaced one by one, each waiting for health".into(),
        ],
        warning: String::new(),
        action: format!("{}/deploy", app_url(&app)),
        fields: vec![("version".into(), version.clone())],
        button: format!("Deploy {version}"),
        danger: false,
        back: format!("{}/releases", app_url(&app)),
        back_label: format!("{app}: releases"),
    }))
}

/// `POST /ui/apps/{app}/deploy`.
pub async fn deploy(
    s: Session,
    Path(app): Path<String>,
    form: Result<Form<DeployParams>, FormRejection>,
) -> Result<Response, WebError> {
    let (ctx, f) = checked(&s, form, "deploy", Some(&app), None).await?;
    let Json(out) = api::deploy::deploy(
        s.state(),
        ctx,
        Path(app.clone()),
        Ok(Json(DeployRequest {
            version: (!f.version.is_empty()).then_some(f.version),
            proc: None,
        })),
    )
    .await?;
    Ok(to_deployment(&app, out))
}

#[derive(Deserialize)]
pub struct RollbackParams {
    #[serde(default)]
    to: String,
    #[serde(default)]
    csrf: String,
}

impl Posted for RollbackParams {
    fn csrf(&self) -> &str {
        &self.csrf
    }
    fn target(&self) -> Option<&str> {
        Some(&self.to).filter(|t| !t.is_empty()).map(String::as_str)
    }
}

/// `GET /ui/apps/{app}/rollback?to=V`.
pub async fn rollback_confirm(
    s: Session,
    Path(app): Path<String>,
    q: Result<Query<RollbackParams>, QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let to = confirm_query(&s, &app, q).await?.to;
    let now = running(&s, &app).await?;
    let target = if to.is_empty() {
        "the release deployed before this one".to_owned()
    } else {
        to.clone()
    };
    Ok(Page(Confirm {
        l: s.layout(format!("Roll {app} back?"), "apps"),
        heading: format!("Roll {app} back to {target}?"),
        lines: vec![
            format!("running now: {now}"),
            format!(
                "back to: {target}, with the numbers, env and secret versions it was deployed with"
            ),
        ],
        warning: String::new(),
        action: format!("{}/rollback", app_url(&app)),
        fields: vec![("to".into(), to.clone())],
        button: "Roll back".into(),
        danger: false,
        back: format!("{}/releases", app_url(&app)),
        back_label: format!("{app}: releases"),
    }))
}

/// `POST /ui/apps/{app}/rollback`.
pub async fn rollback(
    s: Session,
    Path(app): Path<String>,
    form: Result<Form<RollbackParams>, FormRejection>,
) -> Result<Response, WebError> {
    let (ctx, f) = checked(&s, form, "rollback", Some(&app), None).await?;
    let Json(out) = api::deploy::rollback(
        s.state(),
        ctx,
        Path(app.clone()),
        Ok(Json(RollbackRequest {
            to: (!f.to.is_empty()).then_some(f.to),
        })),
    )
    .await?;
    Ok(to_deployment(&app, out))
}

// ---------------------------------------------------------------------
// Maintainers
// ---------------------------------------------------------------------

#[derive(Deserialize)]
pub struct MaintainerParams {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf: String,
}

impl Posted for MaintainerParams {
    fn csrf(&self) -> &str {
        &self.csrf
    }
    fn target(&self) -> Option<&str> {
        Some(self.subject.as_str())
    }
}

/// `GET /ui/apps/{app}/maintainers?subject=S&role=R`.
pub async fn maintainer_add_confirm(
    s: Session,
    Path(app): Path<String>,
    q: Result<Query<MaintainerParams>, QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let q = confirm_query(&s, &app, q).await?;
    let subject = q.subject.trim().to_owned();
    if subject.is_empty() {
        return Err(ApiError::invalid("no user named", "give the sso user name to add").into());
    }
    let role = if q.role == "owner" {
        "owner"
    } else {
        "maintainer"
    };
    Ok(Page(Confirm {
        l: s.layout(format!("Add a maintainer to {app}?"), "apps"),
        heading: format!("Add {subject} to {app}?"),
        lines: vec![format!(
            "{subject} becomes {} of {app}: they may deploy, scale and roll it back, read its logs and its secrets' names, and add or remove its maintainers{}",
            if role == "owner" { "an owner" } else { "a maintainer" },
            if role == "owner" { "; the last owner cannot be removed" } else { "" }
        )],
        warning: String::new(),
        action: format!("{}/maintainers", app_url(&app)),
        fields: vec![
            ("subject".into(), subject.clone()),
            ("role".into(), role.into()),
        ],
        button: format!("Add {subject}"),
        danger: false,
        back: app_url(&app),
        back_label: app.clone(),
    }))
}

/// `POST /ui/apps/{app}/maintainers`.
pub async fn maintainer_add(
    s: Session,
    Path(app): Path<String>,
    form: Result<Form<MaintainerParams>, FormRejection>,
) -> Result<Response, WebError> {
    let (ctx, f) = checked(&s, form, "maintainer.add", Some(&app), None).await?;
    let Json(m) = api::apps::add_maintainer(
        s.state(),
        ctx,
        Path(app.clone()),
        Ok(Json(api::apps::PutMaintainer {
            subject: f.subject.trim().to_owned(),
            role: (!f.role.is_empty()).then_some(f.role),
        })),
    )
    .await?;
    Ok(done(
        &s,
        "Maintainer added",
        format!("{} is now {} of {app}.", m.subject, m.role),
        (app_url(&app), format!("Back to {app}")),
    ))
}

/// `GET /ui/apps/{app}/maintainers/{subject}/remove`.
pub async fn maintainer_remove_confirm(
    s: Session,
    Path((app, subject)): Path<(String, String)>,
) -> Result<Page<Confirm>, WebError> {
    s.api.may_change(&s.caller, &app).await?;
    Ok(Page(Confirm {
        l: s.layout(format!("Remove a maintainer of {app}?"), "apps"),
        heading: format!("Remove {subject} from {app}?"),
        lines: vec![format!(
            "{subject} no longer maintains {app}: they see it read-only"
        )],
        warning: if subject == s.caller.subject {
            "This is you: you lose the right to change this app.".into()
        } else {
            String::new()
        },
        action: format!("{}/maintainers/{}/remove", app_url(&app), seg(&subject)),
        fields: Vec::new(),
        button: format!("Remove {subject}"),
        danger: true,
        back: app_url(&app),
        back_label: app.clone(),
    }))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl Posted for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/apps/{app}/maintainers/{subject}/remove`.
pub async fn maintainer_remove(
    s: Session,
    Path((app, subject)): Path<(String, String)>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, WebError> {
    let (ctx, _) = checked(&s, form, "maintainer.remove", Some(&app), Some(&subject)).await?;
    api::apps::remove_maintainer(s.state(), ctx, Path((app.clone(), subject.clone()))).await?;
    Ok(done(
        &s,
        "Maintainer removed",
        format!("{subject} no longer maintains {app}."),
        (app_url(&app), format!("Back to {app}")),
    ))
}

// ---------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------

/// What a node flag does: (audit action, verb, what happens).
fn node_flag(flag: &str) -> Result<(&'static str, &'static str, &'static str), ApiError> {
    Ok(match flag {
        "cordon" => ("node.cordon", "Cordon", "no new instance is placed on it; what runs there stays"),
        "uncordon" => ("node.uncordon", "Uncordon", "new instances may be placed on it again"),
        "drain" => ("node.drain", "Drain", "it is cordoned and deployd moves its instances to other nodes, one by one, each waiting for health"),
        _ => {
            return Err(ApiError::not_found(
                format!("no node action {:?}", flag.chars().take(16).collect::<String>()),
                "the actions are cordon, uncordon and drain",
            ))
        }
    })
}

/// `GET /ui/nodes/{name}/{cordon|uncordon|drain}`. Admins.
pub async fn node_confirm(
    s: Session,
    Path((name, flag)): Path<(String, String)>,
) -> Result<Page<Confirm>, WebError> {
    let (_, verb, what) = node_flag(&flag)?;
    s.caller.require_admin("manage nodes")?;
    Ok(Page(Confirm {
        l: s.layout(format!("{verb} {name}?"), "cluster"),
        heading: format!("{verb} node {name}?"),
        lines: vec![format!("{name}: {what}")],
        warning: if flag == "drain" {
            "Draining takes the node out of service until it is uncordoned.".into()
        } else {
            String::new()
        },
        action: format!("/ui/nodes/{}/{flag}", seg(&name)),
        fields: Vec::new(),
        button: verb.into(),
        danger: flag == "drain",
        back: "/ui/cluster".into(),
        back_label: "Cluster".into(),
    }))
}

/// `POST /ui/nodes/{name}/{cordon|uncordon|drain}`.
pub async fn node(
    s: Session,
    Path((name, flag)): Path<(String, String)>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, WebError> {
    let (action, verb, what) = node_flag(&flag)?;
    let (ctx, _) = checked(&s, form, action, None, Some(&name)).await?;
    let call = match flag.as_str() {
        "cordon" => api::nodes::cordon_node(s.state(), ctx, Path(name.clone())).await,
        "uncordon" => api::nodes::uncordon_node(s.state(), ctx, Path(name.clone())).await,
        // The web console drains as the CLI does by default: instances
        // with volumes stay.
        _ => {
            api::nodes::drain_node(
                s.state(),
                ctx,
                Path(name.clone()),
                Ok(axum::extract::Query(Default::default())),
            )
            .await
        }
    };
    let Json(n) = call?;
    Ok(done(
        &s,
        &format!("{verb}: done"),
        format!(
            "{}: {what}. Now {}.",
            n.name,
            match (n.schedulable, n.draining) {
                (_, true) => "draining",
                (false, _) => "cordoned",
                _ => "schedulable",
            }
        ),
        ("/ui/cluster".into(), "Back to the cluster".into()),
    ))
}
