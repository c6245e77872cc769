//! Reading the audit log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Api, Ctx};
use crate::db::{AuditEntry, AuditQuery, AuditResult};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The caller's subject, `anonymous` (no token) or `invalid-token`.
    pub actor: String,
    /// e.g. `app.create`, `secret.set`.
    pub action: String,
    pub app: Option<String>,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// `ok`, `denied` or `error`.
    pub result: String,
    pub request_id: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            app: e.app,
            target: e.target,
            detail: e.detail,
            result: e.result.to_string(),
            request_id: e.request_id,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries naming this app (required unless the caller is an admin).
    pub app: Option<String>,
    /// Only entries by this actor.
    pub actor: Option<String>,
    /// Only entries of this action (e.g. `scale`, `node.cordon`).
    pub action: Option<String>,
    /// Only entries with this result: `ok`, `denied` or `error`.
    pub result: Option<String>,
    /// Only entries with a smaller id (the next page).
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// The audit log, newest first. Admins see everything; a maintainer sees
/// the entries of an app it maintains (`app` is then required). Empty
/// filters are ignored.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = [AuditView]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_audit(
    State(api): State<Api>,
    ctx: Ctx,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let caller = ctx.caller()?;
    let Query(q) = q?;
    // An empty filter (a form's empty field) is no filter.
    let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (app, actor, action) = (given(q.app), given(q.actor), given(q.action));
    let result = match given(q.result).as_deref() {
        None => None,
        Some(r) => Some(r.parse::<AuditResult>().map_err(|_| {
            ApiError::invalid(
                format!(
                    "result {:?} is not one of ok, denied, error",
                    r.chars().take(32).collect::<String>()
                ),
                "give ?result=ok, ?result=denied or ?result=error",
            )
        })?),
    };
    if !caller.admin {
        match &app {
            None => {
                return Err(ApiError::forbidden(
                    "only admins may read the whole audit log",
                    "add `?app=NAME` for an app you maintain",
                ))
            }
            Some(app) => api.may_change(caller, app).await?,
        }
    }
    let list = api
        .db()
        .audit()
        .list(&AuditQuery {
            app,
            actor,
            action,
            result,
            before: q.before,
            limit: q.limit.unwrap_or(0),
        })
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
