//! Apps and their maintainers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{body, Api, Audited, Ctx};
use crate::db::{
    App, AppType, DeploymentKind, DeploymentQuery, DeploymentState, Maintainer, NewApp, Role,
};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(create_app, list_apps))
        .routes(routes!(show_app, delete_app))
        .routes(routes!(list_maintainers, add_maintainer))
        .routes(routes!(remove_maintainer))
}

/// An app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    pub name: String,
    /// `app` or `resource`.
    pub apptype: String,
    pub giturl: Option<String>,
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<App> for AppView {
    fn from(a: App) -> Self {
        AppView {
            name: a.name,
            apptype: a.apptype.to_string(),
            giturl: a.giturl,
            created_by: a.created_by,
            created_at: a.created_at,
        }
    }
}

/// What `POST /api/v1/apps` takes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// lain.yaml's `appname`: `[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*`.
    pub name: String,
    /// `app` (default) or `resource`.
    #[serde(default)]
    pub apptype: Option<String>,
    #[serde(default)]
    pub giturl: Option<String>,
}

/// A maintainer of an app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaintainerView {
    pub app: String,
    /// An sso subject: a user name or `client:ID`.
    pub subject: String,
    /// `owner` or `maintainer`.
    pub role: String,
    pub added_by: String,
    /// Unix milliseconds.
    pub added_at: i64,
}

impl From<Maintainer> for MaintainerView {
    fn from(m: Maintainer) -> Self {
        MaintainerView {
            app: m.app,
            subject: m.subject,
            role: m.role.to_string(),
            added_by: m.added_by,
            added_at: m.added_at,
        }
    }
}

/// What `PUT /api/v1/apps/{app}/maintainers` takes: adds `subject`, or
/// changes its role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMaintainer {
    pub subject: String,
    /// `owner` or `maintainer` (default).
    #[serde(default)]
    pub role: Option<String>,
}

fn parse<T: std::str::FromStr<Err = String>>(what: &str, s: &str) -> Result<T, ApiError> {
    s.parse::<T>().map_err(|e| {
        ApiError::invalid(
            format!("invalid {what}: {e}"),
            format!("give a valid {what}"),
        )
    })
}

/// Creates an app; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 201, body = AppView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_app(
    State(api): State<Api>,
    ctx: Ctx,
    b: Result<Json<CreateApp>, JsonRejection>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let name = b.as_ref().ok().map(|Json(b)| b.name.clone());
    let mut audit = Audited::new(&api, &ctx, "app.create");
    if let Some(n) = &name {
        audit = audit.app(n.clone());
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            let b = body(b)?;
            if let Some((res, client)) = lain_spec::parse_instance_name(&b.name) {
                return Err(ApiError::invalid(
                    format!("`{}` names the instance of resource {res} for {client}; instances are made by deploying their client", b.name),
                    format!("deploy {client} with {res} under use_resources"),
                ));
            }
            let apptype = match &b.apptype {
                None => AppType::App,
                Some(t) => parse::<AppType>("apptype", t)?,
            };
            let app = api
                .db()
                .apps()
                .create(&NewApp {
                    name: b.name,
                    apptype,
                    giturl: b.giturl,
                    created_by: caller.subject.clone(),
                })
                .await?;
            let detail = json!({ "apptype": app.apptype.as_str() });
            Ok(((StatusCode::CREATED, Json(app.into())), detail))
        })
        .await
}

/// Lists every app.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps",
    responses((status = 200, body = [AppView]), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_apps(
    State(api): State<Api>,
    ctx: Ctx,
) -> Result<Json<Vec<AppView>>, ApiError> {
    ctx.caller()?;
    let apps = api.db().apps().list().await?;
    Ok(Json(apps.into_iter().map(Into::into).collect()))
}

/// Shows one app.
#[utoipa::path(get, path = "/api/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "app name")),
    responses((status = 200, body = AppView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn show_app(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    ctx.caller()?;
    Ok(Json(api.db().apps().get(&app).await?.into()))
}

/// Deletes an app with its maintainers, releases, deployments and
/// secrets (the audit log keeps its entries). Refused (409) while the app
/// has procs deployed: undeploy it first.
#[utoipa::path(delete, path = "/api/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "app name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_app(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    Audited::new(&api, &ctx, "app.delete")
        .app(app.clone())
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            api.db().apps().get(&app).await?;
            let last = api
                .db()
                .deployments()
                .list(
                    &app,
                    &DeploymentQuery {
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?;
            if let Some(d) = last.first() {
                let undeployed =
                    d.kind == DeploymentKind::Undeploy && d.state == DeploymentState::Succeeded;
                if !undeployed {
                    return Err(ApiError::conflict(
                        format!("app `{app}` may have procs deployed (deployment {} is a {} that is {})", d.id, d.kind, d.state),
                        format!("run `lain undeploy {app}` first, then delete it"),
                    ));
                }
            }
            api.db().apps().delete(&app).await?;
            Ok((StatusCode::NO_CONTENT, json!({})))
        })
        .await
}

/// Lists an app's maintainers.
#[utoipa::path(get, path = "/api/v1/apps/{app}/maintainers", tag = "maintainers",
    params(("app" = String, Path, description = "app name")),
    responses((status = 200, body = [MaintainerView]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn list_maintainers(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<Vec<MaintainerView>>, ApiError> {
    ctx.caller()?;
    api.db().apps().get(&app).await?;
    let list = api.db().maintainers().list(&app).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Adds a maintainer to an app, or changes its role.
#[utoipa::path(put, path = "/api/v1/apps/{app}/maintainers", tag = "maintainers",
    params(("app" = String, Path, description = "app name")),
    request_body = PutMaintainer,
    responses((status = 200, body = MaintainerView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn add_maintainer(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    b: Result<Json<PutMaintainer>, JsonRejection>,
) -> Result<Json<MaintainerView>, ApiError> {
    let mut audit = Audited::new(&api, &ctx, "maintainer.add").app(app.clone());
    if let Ok(Json(b)) = &b {
        audit = audit.target(b.subject.clone());
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            let role = match &b.role {
                None => Role::Maintainer,
                Some(r) => parse::<Role>("role", r)?,
            };
            let m = api
                .db()
                .maintainers()
                .add(&app, &b.subject, role, &caller.subject)
                .await?;
            let detail = json!({ "role": m.role.as_str() });
            Ok((Json(m.into()), detail))
        })
        .await
}

/// Removes a maintainer from an app (never its last owner).
#[utoipa::path(delete, path = "/api/v1/apps/{app}/maintainers/{subject}", tag = "maintainers",
    params(("app" = String, Path, description = "app name"),
        ("subject" = String, Path, description = "the maintainer's sso subject")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn remove_maintainer(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, subject)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    Audited::new(&api, &ctx, "maintainer.remove")
        .app(app.clone())
        .target(subject.clone())
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            api.db().maintainers().remove(&app, &subject).await?;
            Ok((StatusCode::NO_CONTENT, json!({})))
        })
        .await
}
