//! App secrets: set (the value is the raw request body), list (names and
//! versions only), remove. No route ever returns a value.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::{Api, Audited, Ctx};
use crate::db::SecretInfo;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .routes(routes!(set_secret, remove_secret))
}

/// A secret as listed: its name and current version, never its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub app: String,
    pub name: String,
    /// The current version (1, 2, ...).
    pub version: i64,
    pub updated_by: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl From<SecretInfo> for SecretView {
    fn from(s: SecretInfo) -> Self {
        SecretView {
            app: s.app,
            name: s.name,
            version: s.version,
            updated_by: s.updated_by,
            updated_at: s.updated_at,
        }
    }
}

/// Sets a secret to the request body, taken verbatim as bytes (any
/// content type; at most 64 KiB), as a new version. Maintainers and admins.
#[utoipa::path(put, path = "/api/v1/apps/{app}/secrets/{name}", tag = "secrets",
    params(("app" = String, Path, description = "app name"),
        ("name" = String, Path, description = "secret name, `[A-Za-z0-9_.-]{1,128}`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the value, raw bytes"),
    responses((status = 200, body = SecretView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn set_secret(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, name)): Path<(String, String)>,
    value: Result<Bytes, BytesRejection>,
) -> Result<Json<SecretView>, ApiError> {
    Audited::new(&api, &ctx, "secret.set")
        .app(app.clone())
        .target(name.clone())
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            // `Bytes` cannot be wiped; copy once into a buffer that is.
            let value = Zeroizing::new(value?.to_vec());
            let info = api
                .db()
                .secrets()
                .set(&app, &name, &value, &caller.subject)
                .await?;
            let detail = json!({ "version": info.version });
            Ok((Json(info.into()), detail))
        })
        .await
}

/// Lists an app's secrets: names and versions only. Maintainers and admins.
#[utoipa::path(get, path = "/api/v1/apps/{app}/secrets", tag = "secrets",
    params(("app" = String, Path, description = "app name")),
    responses((status = 200, body = [SecretView]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_secrets(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
) -> Result<Json<Vec<SecretView>>, ApiError> {
    let caller = ctx.caller()?;
    api.may_change(caller, &app).await?;
    api.db().apps().get(&app).await?;
    let list = api.db().secrets().list(&app).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Removes a secret from the app (its sealed versions stay for rollbacks
/// until the app is deleted). Maintainers and admins.
#[utoipa::path(delete, path = "/api/v1/apps/{app}/secrets/{name}", tag = "secrets",
    params(("app" = String, Path, description = "app name"),
        ("name" = String, Path, description = "secret name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove_secret(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    Audited::new(&api, &ctx, "secret.remove")
        .app(app.clone())
        .target(name.clone())
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            api.db()
                .secrets()
                .remove(&app, &name, &caller.subject)
                .await?;
            Ok((StatusCode::NO_CONTENT, json!({})))
        })
        .await
}
