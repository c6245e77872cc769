//! Releases: registered by `lain push`, listed, shown.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{body, Api, Audited, Ctx};
use crate::db::{AppType, NewRelease, Release};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(register_release, list_releases))
        .routes(routes!(show_release))
}

/// A release as listed (without its lain.yaml).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseSummary {
    pub app: String,
    /// `<commit unix time>-<40 hex sha>`.
    pub version: String,
    pub image: String,
    /// `sha256:<64 hex>`.
    pub digest: String,
    pub pushed_by: String,
    /// Unix milliseconds.
    pub pushed_at: i64,
}

impl From<&Release> for ReleaseSummary {
    fn from(r: &Release) -> Self {
        ReleaseSummary {
            app: r.app.clone(),
            version: r.version.clone(),
            image: r.image.clone(),
            digest: r.digest.clone(),
            pushed_by: r.pushed_by.clone(),
            pushed_at: r.pushed_at,
        }
    }
}

/// A release with its lain.yaml.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    #[serde(flatten)]
    pub release: ReleaseSummary,
    pub lain_yaml: String,
}

/// What registering a release did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub release: ReleaseSummary,
    /// False when this exact release was registered before (nothing changed).
    pub created: bool,
    /// lain.yaml's warnings, `file:line:col: warning: message`.
    pub warnings: Vec<String>,
}

/// What `POST /api/v1/apps/{app}/releases` takes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRelease {
    /// `<commit unix time>-<40 hex sha>`.
    pub version: String,
    /// The release image, e.g. `registry.lain.local:5000/hello:release-<version>`.
    pub image: String,
    /// The image's digest, `sha256:<64 hex>`.
    pub digest: String,
    /// The app's lain.yaml, validated here.
    pub lain_yaml: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many (default 100, at most 1000), newest first.
    pub limit: Option<u32>,
}

/// Registers a release (`lain push`). Its lain.yaml must validate and name
/// this app; registering the same release again changes nothing.
#[utoipa::path(post, path = "/api/v1/apps/{app}/releases", tag = "releases",
    params(("app" = String, Path, description = "app name")),
    request_body = RegisterRelease,
    responses((status = 201, body = Registered, description = "registered"),
        (status = 200, body = Registered, description = "registered before, unchanged"),
        (status = 400, body = ErrorBody, description = "invalid fields or lain.yaml (`diagnostics` name file:line:col)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register_release(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    b: Result<Json<RegisterRelease>, JsonRejection>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let mut audit = Audited::new(&api, &ctx, "release.register").app(app.clone());
    if let Ok(Json(b)) = &b {
        audit = audit.target(b.version.clone());
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            let validated = match lain_spec::parse("lain.yaml", &b.lain_yaml, &api.inner.spec) {
                Ok(v) => v,
                // A resource's lain.yaml is a template: it must render,
                // with its defaults, into a valid app for some client.
                Err(_) if api.db().apps().get(&app).await?.apptype == AppType::Resource => {
                    lain_spec::instantiate(
                        &b.lain_yaml,
                        "lain.yaml",
                        &app,
                        "client",
                        &Default::default(),
                        &api.inner.spec,
                    )
                    .map_err(|d| {
                        ApiError::InvalidLainYaml(d.iter().map(ToString::to_string).collect())
                    })
                    .map(|mut v| {
                        v.conf.appname = app.clone();
                        v
                    })?
                }
                Err(d) => {
                    return Err(ApiError::InvalidLainYaml(
                        d.iter().map(ToString::to_string).collect(),
                    ))
                }
            };
            if validated.conf.appname != app {
                return Err(ApiError::invalid(
                    format!(
                        "lain.yaml's appname is `{}`, but the release is pushed to app `{app}`",
                        validated.conf.appname
                    ),
                    "push from the app's own repository, or create an app of that name",
                ));
            }
            let r = api
                .db()
                .releases()
                .register(&NewRelease {
                    app: app.clone(),
                    version: b.version,
                    image: b.image,
                    digest: b.digest,
                    lain_yaml: b.lain_yaml,
                    pushed_by: caller.subject.clone(),
                })
                .await?;
            let status = if r.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let detail = json!({
                "image": r.release.image,
                "digest": r.release.digest,
                "created": r.created,
            });
            let out = Registered {
                release: (&r.release).into(),
                created: r.created,
                warnings: validated.warnings.iter().map(ToString::to_string).collect(),
            };
            Ok(((status, Json(out)), detail))
        })
        .await
}

/// Lists an app's releases, newest first (without their lain.yaml).
#[utoipa::path(get, path = "/api/v1/apps/{app}/releases", tag = "releases",
    params(("app" = String, Path, description = "app name"), ListQuery),
    responses((status = 200, body = [ReleaseSummary]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_releases(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<ReleaseSummary>>, ApiError> {
    ctx.caller()?;
    let Query(q) = q?;
    api.db().apps().get(&app).await?;
    let list = api.db().releases().list(&app, q.limit.unwrap_or(0)).await?;
    Ok(Json(list.iter().map(Into::into).collect()))
}

/// Shows one release with its lain.yaml.
#[utoipa::path(get, path = "/api/v1/apps/{app}/releases/{version}", tag = "releases",
    params(("app" = String, Path, description = "app name"),
        ("version" = String, Path, description = "release version")),
    responses((status = 200, body = ReleaseView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn show_release(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, version)): Path<(String, String)>,
) -> Result<Json<ReleaseView>, ApiError> {
    ctx.caller()?;
    let r = api.db().releases().get(&app, &version).await?;
    Ok(Json(ReleaseView {
        release: (&r).into(),
        lain_yaml: r.lain_yaml,
    }))
}
