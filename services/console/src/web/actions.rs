//! Actions: every change is a `GET` that shows what will happen and asks
//! for confirmation (checking authorization first, so a non-maintainer
//! sees 403, not a form), then a `POST` with the session's CSRF token that
//! calls the API's own handler. The API authorizes and audits it; a form
//! refused by the CSRF or Origin check is audited here as `denied`.
//! Deploy, scale and rollback then show their deployment, live; the
//! others a result page.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::auth::{Signed, WebReq};
use super::pages::urlenc;
use super::view::{Layout, Message, Page, WebError};
use crate::api::{self, Api, Audited, Ctx, DeployRequest, RollbackRequest, ScaleRequest};
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
    format!("/ui/apps/{}", urlenc(app))
}

/// A form post that failed before reaching the API (its CSRF token or
/// origin): audited as denied under the action it tried.
async fn refuse(
    api: &Api,
    ctx: &Ctx,
    action: &'static str,
    app: Option<&str>,
    target: Option<&str>,
    e: ApiError,
) -> WebError {
    let mut a = Audited::new(api, ctx, action);
    if let Some(app) = app {
        a = a.app(app);
    }
    if let Some(t) = target {
        a = a.target(t);
    }
    match a.run(async { Err::<((), serde_json::Value), _>(e) }).await {
        Err(e) => e.into(),
        Ok(()) => WebError::not_found("no such action", "reload the page"),
    }
}

/// The common start of every POST: the session, its context, and the
/// form (a malformed one is a 400 page, and changes nothing).
async fn post_checks<T>(
    api: &Api,
    req: &WebReq,
    form: Result<Form<T>, FormRejection>,
    csrf: impl Fn(&T) -> &str,
    action: &'static str,
    app: Option<&str>,
    target: Option<&str>,
) -> Result<(Signed, Ctx, T), WebError> {
    let s = req.signed()?.clone();
    let ctx = req.ctx(&s);
    let form = match form {
        Ok(Form(f)) => f,
        Err(r) => {
            let e = ApiError::invalid(
                format!("the form is malformed: {}", r.body_text()),
                "reload the page and fill the form in again",
            );
            return Err(refuse(api, &ctx, action, app, target, e).await);
        }
    };
    if let Err(e) = req.check_post(&s, csrf(&form)) {
        return Err(refuse(api, &ctx, action, app, target, e).await);
    }
    Ok((s, ctx, form))
}

fn see_other(to: &str) -> Response {
    axum::response::Redirect::to(to).into_response()
}

fn done(req: &WebReq, s: &Signed, heading: &str, text: String, back: (String, String)) -> Response {
    Page(Message {
        l: req.layout(s, heading, ""),
        heading: heading.into(),
        text,
        hint: String::new(),
        request_id: req.request_id.clone(),
        links: vec![back],
        status_role: true,
    })
    .into_response()
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

fn instances_of(s: &str) -> Result<u32, ApiError> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= 1000)
        .ok_or_else(|| {
            ApiError::invalid(
                format!(
                    "instances {:?} is not a number from 0 to 1000",
                    s.chars().take(16).collect::<String>()
                ),
                "give a whole number of instances, e.g. 3",
            )
        })
}

/// `GET /ui/apps/{app}/procs/{proc}/scale?instances=N`.
pub async fn scale_confirm(
    State(api): State<Api>,
    req: WebReq,
    Path((app, proc_name)): Path<(String, String)>,
    q: Result<Query<ScaleParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    api.may_change(&s.caller, &app).await?;
    let n = instances_of(q.as_ref().map(|q| q.instances.as_str()).unwrap_or(""))?;
    let Json(status) =
        api::status::status(State(api.clone()), req.ctx(s), Path(app.clone())).await?;
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
    let mut lines = vec![format!("{proc_name}: {} → {n} instances", now.instances)];
    lines.push(format!(
        "release {} stays; image, env and secrets as deployed",
        now.release
    ));
    Ok(Page(Confirm {
        l: req.layout(s, format!("Scale {app} {proc_name}?"), "apps"),
        heading: format!("Scale {proc_name} of {app}?"),
        lines,
        warning: if n == 0 {
            "0 instances stops the proc: it serves nothing until scaled up again.".into()
        } else {
            String::new()
        },
        action: format!("{}/procs/{}/scale", app_url(&app), urlenc(&proc_name)),
        fields: vec![("instances".into(), n.to_string())],
        button: format!("Scale to {n}"),
        danger: n == 0,
        back: app_url(&app),
        back_label: app.clone(),
    }))
}

/// `POST /ui/apps/{app}/procs/{proc}/scale`.
pub async fn scale(
    State(api): State<Api>,
    req: WebReq,
    Path((app, proc_name)): Path<(String, String)>,
    form: Result<Form<ScaleParams>, FormRejection>,
) -> Result<Response, WebError> {
    let (_, ctx, f) = post_checks(
        &api,
        &req,
        form,
        |f| &f.csrf,
        "scale",
        Some(&app),
        Some(&proc_name),
    )
    .await?;
    let n = match instances_of(&f.instances) {
        Ok(n) => n,
        Err(e) => return Err(refuse(&api, &ctx, "scale", Some(&app), Some(&proc_name), e).await),
    };
    let Json(out) = api::deploy::scale(
        State(api.clone()),
        ctx,
        Path((app.clone(), proc_name)),
        Ok(Json(ScaleRequest {
            instances: Some(n),
            cpu: None,
            memory: None,
        })),
    )
    .await?;
    Ok(see_other(&format!(
        "{}/deployments/{}",
        app_url(&app),
        out.deployment.id
    )))
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

async fn running(api: &Api, req: &WebReq, s: &Signed, app: &str) -> Result<String, WebError> {
    let Json(status) =
        api::status::status(State(api.clone()), req.ctx(s), Path(app.to_owned())).await?;
    Ok(status
        .procs
        .iter()
        .find_map(|p| p.desired.as_ref().map(|d| d.release.clone()))
        .unwrap_or_else(|| "nothing".into()))
}

/// `GET /ui/apps/{app}/deploy?version=V`.
pub async fn deploy_confirm(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
    q: Result<Query<DeployParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    api.may_change(&s.caller, &app).await?;
    let version = q.map(|Query(q)| q.version).unwrap_or_default();
    if version.is_empty() {
        return Err(
            ApiError::invalid("no release named", "pick a release on the releases page").into(),
        );
    }
    let r = api
        .db()
        .releases()
        .get(&app, &version)
        .await
        .map_err(ApiError::from)?;
    let now = running(&api, &req, s, &app).await?;
    Ok(Page(Confirm {
        l: req.layout(s, format!("Deploy {app}?"), "apps"),
        heading: format!("Deploy {version} of {app}?"),
        lines: vec![
            format!("running now: {now}"),
            format!("to deploy: {version} ({}), every proc", r.image),
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
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
    form: Result<Form<DeployParams>, FormRejection>,
) -> Result<Response, WebError> {
    let target = form.as_ref().ok().map(|f| f.version.clone());
    let (_, ctx, f) = post_checks(
        &api,
        &req,
        form,
        |f| &f.csrf,
        "deploy",
        Some(&app),
        target.as_deref(),
    )
    .await?;
    let Json(out) = api::deploy::deploy(
        State(api.clone()),
        ctx,
        Path(app.clone()),
        Ok(Json(DeployRequest {
            version: (!f.version.is_empty()).then_some(f.version),
            proc: None,
        })),
    )
    .await?;
    Ok(see_other(&format!(
        "{}/deployments/{}",
        app_url(&app),
        out.deployment.id
    )))
}

#[derive(Deserialize)]
pub struct RollbackParams {
    #[serde(default)]
    to: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /ui/apps/{app}/rollback?to=V`.
pub async fn rollback_confirm(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
    q: Result<Query<RollbackParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    api.may_change(&s.caller, &app).await?;
    let to = q.map(|Query(q)| q.to).unwrap_or_default();
    let now = running(&api, &req, s, &app).await?;
    let target = if to.is_empty() {
        "the release deployed before this one".to_owned()
    } else {
        to.clone()
    };
    Ok(Page(Confirm {
        l: req.layout(s, format!("Roll {app} back?"), "apps"),
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
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
    form: Result<Form<RollbackParams>, FormRejection>,
) -> Result<Response, WebError> {
    let target = form
        .as_ref()
        .ok()
        .map(|f| f.to.clone())
        .filter(|t| !t.is_empty());
    let (_, ctx, f) = post_checks(
        &api,
        &req,
        form,
        |f| &f.csrf,
        "rollback",
        Some(&app),
        target.as_deref(),
    )
    .await?;
    let Json(out) = api::deploy::rollback(
        State(api.clone()),
        ctx,
        Path(app.clone()),
        Ok(Json(RollbackRequest {
            to: (!f.to.is_empty()).then_some(f.to),
        })),
    )
    .await?;
    Ok(see_other(&format!(
        "{}/deployments/{}",
        app_url(&app),
        out.deployment.id
    )))
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

/// `GET /ui/apps/{app}/maintainers?subject=S&role=R`.
pub async fn maintainer_add_confirm(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
    q: Result<Query<MaintainerParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Page<Confirm>, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    api.may_change(&s.caller, &app).await?;
    let (subject, role) = q
        .map(|Query(q)| (q.subject.trim().to_owned(), q.role))
        .unwrap_or_default();
    if subject.is_empty() {
        return Err(ApiError::invalid("no user named", "give the sso user name to add").into());
    }
    let role = if role == "owner" {
        "owner"
    } else {
        "maintainer"
    };
    Ok(Page(Confirm {
        l: req.layout(s, format!("Add a maintainer to {app}?"), "apps"),
        heading: format!("Add {subject} to {app}?"),
        lines: vec![format!(
            "{subject} becomes {} of {app}: they may deploy, scale, roll back and read its logs and secrets' names{}",
            if role == "owner" { "an owner" } else { "a maintainer" },
            if role == "owner" { ", and manage its maintainers" } else { "" }
        )],
        warning: String::new(),
        action: format!("{}/maintainers", app_url(&app)),
        fields: vec![("subject".into(), subject.clone()), ("role".into(), role.into())],
        button: format!("Add {subject}"),
        danger: false,
        back: app_url(&app),
        back_label: app.clone(),
    }))
}

/// `POST /ui/apps/{app}/maintainers`.
pub async fn maintainer_add(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
    form: Result<Form<MaintainerParams>, FormRejection>,
) -> Result<Response, WebError> {
    let target = form.as_ref().ok().map(|f| f.subject.clone());
    let (s, ctx, f) = post_checks(
        &api,
        &req,
        form,
        |f| &f.csrf,
        "maintainer.add",
        Some(&app),
        target.as_deref(),
    )
    .await?;
    let Json(m) = api::apps::add_maintainer(
        State(api.clone()),
        ctx,
        Path(app.clone()),
        Ok(Json(api::apps::PutMaintainer {
            subject: f.subject.trim().to_owned(),
            role: (!f.role.is_empty()).then_some(f.role),
        })),
    )
    .await?;
    Ok(done(
        &req,
        &s,
        "Maintainer added",
        format!("{} is now {} of {app}.", m.subject, m.role),
        (app_url(&app), format!("Back to {app}")),
    ))
}

/// `GET /ui/apps/{app}/maintainers/{subject}/remove`.
pub async fn maintainer_remove_confirm(
    State(api): State<Api>,
    req: WebReq,
    Path((app, subject)): Path<(String, String)>,
) -> Result<Page<Confirm>, WebError> {
    let s = req.signed()?;
    api.may_change(&s.caller, &app).await?;
    Ok(Page(Confirm {
        l: req.layout(s, format!("Remove a maintainer of {app}?"), "apps"),
        heading: format!("Remove {subject} from {app}?"),
        lines: vec![format!(
            "{subject} no longer maintains {app}: they see it read-only"
        )],
        warning: if subject == s.caller.subject {
            "This is you: you lose the right to change this app.".into()
        } else {
            String::new()
        },
        action: format!("{}/maintainers/{}/remove", app_url(&app), urlenc(&subject)),
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

/// `POST /ui/apps/{app}/maintainers/{subject}/remove`.
pub async fn maintainer_remove(
    State(api): State<Api>,
    req: WebReq,
    Path((app, subject)): Path<(String, String)>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, WebError> {
    let (s, ctx, _) = post_checks(
        &api,
        &req,
        form,
        |f| &f.csrf,
        "maintainer.remove",
        Some(&app),
        Some(&subject),
    )
    .await?;
    api::apps::remove_maintainer(
        State(api.clone()),
        ctx,
        Path((app.clone(), subject.clone())),
    )
    .await?;
    Ok(done(
        &req,
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
    State(_api): State<Api>,
    req: WebReq,
    Path((name, flag)): Path<(String, String)>,
) -> Result<Page<Confirm>, WebError> {
    let s = req.signed()?;
    let (_, verb, what) = node_flag(&flag)?;
    s.caller.require_admin("manage nodes")?;
    Ok(Page(Confirm {
        l: req.layout(s, format!("{verb} {name}?"), "cluster"),
        heading: format!("{verb} node {name}?"),
        lines: vec![format!("{name}: {what}")],
        warning: if flag == "drain" {
            "Draining takes the node out of service until it is uncordoned.".into()
        } else {
            String::new()
        },
        action: format!("/ui/nodes/{}/{flag}", urlenc(&name)),
        fields: Vec::new(),
        button: verb.into(),
        danger: flag == "drain",
        back: "/ui/cluster".into(),
        back_label: "Cluster".into(),
    }))
}

/// `POST /ui/nodes/{name}/{cordon|uncordon|drain}`.
pub async fn node(
    State(api): State<Api>,
    req: WebReq,
    Path((name, flag)): Path<(String, String)>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, WebError> {
    let (action, verb, what) = node_flag(&flag)?;
    let (s, ctx, _) = post_checks(&api, &req, form, |f| &f.csrf, action, None, Some(&name)).await?;
    let call = match flag.as_str() {
        "cordon" => api::nodes::cordon_node(State(api.clone()), ctx, Path(name.clone())).await,
        "uncordon" => api::nodes::uncordon_node(State(api.clone()), ctx, Path(name.clone())).await,
        _ => api::nodes::drain_node(State(api.clone()), ctx, Path(name.clone())).await,
    };
    let Json(n) = call?;
    Ok(done(
        &req,
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
