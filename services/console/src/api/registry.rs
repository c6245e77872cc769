//! The registry's token server (Docker Distribution token auth): the
//! registry sends clients here for a token naming what they may do.
//! Credentials are an sso access token, as a bearer token or as the
//! password of HTTP Basic (`docker login -u NAME --password-stdin` with
//! the token), so that Docker engines can use it unchanged.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lain_auth::AuthError;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Api, Caller, Ctx};
use crate::db::{AuditResult, NewAuditEntry};
use crate::error::{ApiError, ErrorBody};
use crate::registry::{grant, Access, IssuedToken, Rights, Scope};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(registry_token))
}

/// At most this many scopes per request (Docker asks for one or two).
const MAX_SCOPES: usize = 16;

/// A token for the cluster registry. Each `scope`
/// (`repository:APP:pull,push`) is granted as far as the caller may:
/// push for the app's maintainers and admins, pull also for daemons,
/// delete and `registry:catalog:*` for admins. What is not allowed is left
/// out of the token (the registry then refuses it), as the protocol asks;
/// push requests are audited either way.
#[utoipa::path(get, path = "/api/v1/registry/token", tag = "registry",
    params(
        ("service" = Option<String>, Query, description = "the registry's service name; must be the configured one"),
        ("scope" = Option<Vec<String>>, Query, description = "`TYPE:NAME:ACTIONS`, repeatable"),
        ("account" = Option<String>, Query, description = "ignored: the token says who the caller is"),
    ),
    responses((status = 200, body = IssuedToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn registry_token(
    State(api): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<IssuedToken>, ApiError> {
    let ctx = Ctx {
        caller: authenticate(&api, &headers).await,
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        via_web: false,
    };
    let caller = ctx.caller()?;
    let signer = api.registry_signer()?;
    let mut scopes = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "service" if v != signer.service() => return Err(ApiError::invalid(
                format!(
                    "this console issues tokens for the registry service `{}`, not `{}`",
                    signer.service(),
                    crate::db::validate::short(&v)
                ),
                "set the registry's auth.token.service to the service in console's [registry_auth]",
            )),
            // OAuth2 style: several scopes in one value, space-separated.
            "scope" => scopes.extend(v.split(' ').filter_map(Scope::parse)),
            _ => {}
        }
    }
    if scopes.len() > MAX_SCOPES {
        return Err(ApiError::invalid(
            format!(
                "{} scopes asked; at most {MAX_SCOPES} are served at once",
                scopes.len()
            ),
            "ask for fewer scopes per token",
        ));
    }
    let mut access: Vec<Access> = Vec::new();
    for scope in &scopes {
        let maintainer = match scope.app() {
            Some(app) if !caller.admin => {
                api.db()
                    .maintainers()
                    .is_maintainer(app, &caller.subject)
                    .await?
            }
            _ => false,
        };
        let rights = Rights {
            admin: caller.admin,
            daemon: caller.is_daemon(),
            maintainer,
        };
        let actions = grant(scope, rights);
        if scope.actions.iter().any(|a| a != "pull") {
            audit(&api, &ctx, caller, scope, &actions).await;
        }
        if !actions.is_empty() {
            access.push(Access {
                kind: scope.kind.clone(),
                name: scope.name.clone(),
                actions,
            });
        }
    }
    let token = signer
        .sign(&caller.subject, access)
        .map_err(|e| ApiError::Internal(format!("cannot sign a registry token: {e}")))?;
    Ok(Json(token))
}

/// The caller from `Authorization: Bearer TOKEN` or `Basic` with the
/// token as the password (the user name is ignored).
async fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Caller, AuthError> {
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim().to_owned());
    let claims = match basic {
        Some(encoded) => {
            let bad = || AuthError::InvalidAuthorizationHeader {
                reason: "Basic credentials are not base64 of `user:token`",
            };
            let decoded = zeroize::Zeroizing::new(B64.decode(encoded).map_err(|_| bad())?);
            let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
            let (_, token) = text.split_once(':').ok_or_else(bad)?;
            api.verifier().verify(token).await
        }
        None => api.verifier().verify_headers(headers).await,
    };
    claims.map(|c| api.caller_of(&c)).inspect_err(|e| {
        tracing::debug!(error = %e, "registry token request refused");
        api.metrics().auth_failed();
    })
}

async fn audit(api: &Api, ctx: &Ctx, caller: &Caller, scope: &Scope, granted: &[String]) {
    let all = scope.actions.iter().all(|a| granted.contains(a));
    let result = if all {
        AuditResult::Ok
    } else {
        AuditResult::Denied
    };
    tracing::info!(actor = %caller.subject, action = "registry.token", repository = ?scope.name,
        asked = ?scope.actions, granted = ?granted, result = %result, "audit");
    api.record(NewAuditEntry {
        actor: caller.subject.clone(),
        action: "registry.token".to_owned(),
        app: scope.app().map(str::to_owned),
        target: Some(scope.name.clone()),
        detail: json!({ "asked": scope.actions, "granted": granted }),
        result,
        request_id: ctx.request_id.clone(),
    })
    .await;
}
