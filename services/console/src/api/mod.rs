//! console's public API under `/api/v1/`: JSON, described by the OpenAPI
//! document at `/api/v1/openapi.json` that is generated from these
//! handlers (utoipa; docs/decisions/0006-openapi.md).
//!
//! Every route needs `Authorization: Bearer <sso access token>` except
//! `/healthz`, `/metrics`, the OpenAPI document and the discovery document
//! (`/.well-known/oauth-protected-resource`). The caller is the
//! token's `sub` (`client:ID` for a daemon's client-credentials token); it
//! is an admin when the token's groups claim holds the configured admin
//! group. A mutation on an app needs a maintainer of the app or an admin;
//! creating an app needs any caller, who becomes its owner. Every mutation
//! is written to the audit log: allowed, denied (401/403) or failed.
//!
//! Each group of routes lives in its own module and returns an
//! [`OpenApiRouter`]; `api_routes` merges them. Adding a group (deploy,
//! undeploy, scale, rollback): a module `api/NAME.rs` with
//! `pub(super) fn routes() -> OpenApiRouter<Api>` built with
//! `routes!(...)` from `#[utoipa::path]` handlers, one more
//! `.merge(NAME::routes())` in `api_routes`, and in each mutating handler
//! `Audited::new(&api, &ctx, "deploy").app(..).run(async { let caller =
//! ctx.caller()?; api.may_change(caller, &app).await?; ...; Ok((answer,
//! detail)) })` (take the body as `Result<Json<T>, JsonRejection>` and
//! unwrap it with `body` after the checks). etcd (a `Store` writing as
//! `Component::Console`) is connected in the background ([`Api::connect_etcd`]);
//! [`Api::store`] answers 503 `etcd_unavailable` until it is. tests/api.rs
//! lists every route the document must have.

pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod backups;
pub(crate) mod certs;
pub(crate) mod cluster;
pub(crate) mod deploy;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod nodes;
pub(crate) mod registry;
pub(crate) mod releases;
pub(crate) mod secrets;
pub(crate) mod status;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lain_auth::{AuthError, Claims, Verifier, VerifierConfig};
use lain_store::secret::SecretsKey;
use lain_store::{Component, Store, StoreError, StoreOptions};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::db::{AuditResult, Db, NewAuditEntry};
use crate::error::{ApiError, ErrorBody};

pub use deploy::{DeployOutcome, DeployRequest, DeploymentView, RollbackRequest, ScaleRequest};
pub use metrics::Metrics;
pub use nodes::{DockerSpec, DockerTlsSpec, PutNode, RegisteredNode};
pub use status::{AppStatus, DesiredView, InstanceStatus, ProcStatus, RolloutView};

/// Largest request body accepted (a release's lain.yaml is at most
/// 256 KiB, a secret value 64 KiB).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    verifier: Verifier,
    admin_group: String,
    groups_claim: String,
    spec: lain_spec::ParseOptions,
    metrics: Metrics,
    openapi_json: String,
    etcd: Vec<String>,
    store: OnceLock<Store>,
    /// sso's issuer (cluster status checks it answers).
    issuer: String,
    registry: Option<String>,
    /// deployd's API client, when `[deployd]` is configured.
    deployd: OnceLock<Arc<crate::deployd::DeploydClient>>,
    /// The registry token signer, when `[registry_auth]` is configured.
    registry_signer: OnceLock<Arc<crate::registry::TokenSigner>>,
    /// The web console, when `[web]` is configured.
    web: OnceLock<Arc<crate::web::Web>>,
    /// Cancelled when console begins to stop: long streams end then, so
    /// that the graceful drain does not wait for them.
    stopping: CancellationToken,
    /// `/.well-known/oauth-protected-resource`, fixed by the config.
    discovery_json: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("db", &self.inner.db)
            .field("admin_group", &self.inner.admin_group)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Sets the API up from the config and an open database. Nothing is
    /// fetched from sso yet.
    pub fn new(config: &Config, db: Db) -> Result<Api, AuthError> {
        let verifier = Verifier::new(VerifierConfig::new(
            config.auth.issuer.clone(),
            config.auth.audience.clone(),
        ))?;
        Ok(Api {
            inner: Arc::new(Inner {
                db,
                verifier,
                admin_group: config.auth.admin_group.clone(),
                groups_claim: config.auth.groups_claim.clone(),
                spec: config.spec_options(),
                metrics: Metrics::default(),
                openapi_json: serde_json::to_string_pretty(&openapi())
                    .unwrap_or_else(|_| "{}".into()),
                etcd: config.etcd.clone(),
                store: OnceLock::new(),
                issuer: config.auth.issuer.clone(),
                registry: config.registry.clone(),
                deployd: OnceLock::new(),
                registry_signer: OnceLock::new(),
                web: OnceLock::new(),
                stopping: CancellationToken::new(),
                discovery_json: serde_json::to_string_pretty(&discovery(config))
                    .unwrap_or_else(|_| "{}".into()),
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Connects to the configured etcd, retrying with backoff (1 s
    /// doubling to 30 s) until it answers; returns at once without
    /// endpoints. Never fails: console serves everything but the routes
    /// that need etcd meanwhile.
    pub async fn connect_etcd(&self) {
        if self.inner.etcd.is_empty() {
            tracing::warn!("no etcd endpoints configured; deploy, scale, rollback and status answer 503 until `etcd` is set");
            return;
        }
        let options = StoreOptions {
            writer: Some(Component::Console),
            ..StoreOptions::default()
        };
        let mut delay = Duration::from_secs(1);
        loop {
            match Store::connect_with(&self.inner.etcd, options.clone()).await {
                Ok(store) => {
                    let _ = self.inner.store.set(store);
                    tracing::info!("connected to etcd");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to etcd yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Uses `store` instead of connecting (embedding, tests).
    pub fn with_store(self, store: Store) -> Api {
        let _ = self.inner.store.set(store.as_writer(Component::Console));
        self
    }

    /// Calls deployd's API with `client` (set once, at start).
    pub fn with_deployd(self, client: crate::deployd::DeploydClient) -> Api {
        let _ = self.inner.deployd.set(Arc::new(client));
        self
    }

    /// Signs registry tokens with `signer` (set once, at start).
    pub fn with_registry_signer(self, signer: crate::registry::TokenSigner) -> Api {
        let _ = self.inner.registry_signer.set(Arc::new(signer));
        self
    }

    /// The registry token signer, or 503 `registry_auth_not_configured`.
    pub(crate) fn registry_signer(&self) -> Result<&Arc<crate::registry::TokenSigner>, ApiError> {
        self.inner.registry_signer.get().ok_or_else(|| ApiError::Dependency {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "registry_auth_not_configured",
            message: "console is not configured as the registry's token server".into(),
            hint: "add a [registry_auth] section (key_file, cert_file) to console's config and point the registry's auth.token at console; then restart console".into(),
        })
    }

    /// deployd's API client, or 503 `deployd_not_configured`.
    pub(crate) fn deployd(&self) -> Result<&Arc<crate::deployd::DeploydClient>, ApiError> {
        self.inner.deployd.get().ok_or_else(|| ApiError::Dependency {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "deployd_not_configured",
            message: "console is not configured to call deployd".into(),
            hint: "add a [deployd] section (client_id, client_secret_file) to console's config: an sso client with the client_credentials grant and audience `deployd`, listed in deployd's [auth] allowed_clients as `client:ID`; then restart console".into(),
        })
    }

    /// The etcd connection, or 503 `etcd_unavailable`.
    pub(crate) fn store(&self) -> Result<&Store, ApiError> {
        self.inner.store.get().ok_or_else(|| {
            let hint = if self.inner.etcd.is_empty() {
                "console has no `etcd` endpoints in its config; set them and restart it"
            } else {
                "console is still connecting to etcd; check that etcd is up, then retry"
            };
            ApiError::EtcdUnavailable {
                message: "console is not connected to etcd".into(),
                hint: hint.into(),
            }
        })
    }

    /// The cluster secrets key, the database's (one copy in memory).
    pub(crate) fn secrets_key(&self) -> &SecretsKey {
        self.inner.db.secrets_key()
    }

    /// Cancelled when console begins to stop (long streams end on it).
    pub fn stopping(&self) -> CancellationToken {
        self.inner.stopping.clone()
    }

    /// Serves the web console with `web` (set once, at start).
    pub fn with_web(self, web: crate::web::Web) -> Api {
        let _ = self.inner.web.set(Arc::new(web));
        self
    }

    /// The web console's settings, or 503 `web_not_configured`.
    pub(crate) fn web(&self) -> Result<&Arc<crate::web::Web>, ApiError> {
        self.inner.web.get().ok_or_else(|| ApiError::Dependency {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "web_not_configured",
            message: "the web console is not configured on this console".into(),
            hint: "add a [web] section (client_id, client_secret_file) to console's config: an sso confidential client with the authorization_code and refresh_token grants, audience console, and redirect URI {public_url}/ui/callback; then restart console. The CLI (`lain`) works without it".into(),
        })
    }

    /// The whole HTTP surface but `/healthz` (lain_service adds it).
    pub fn router(&self) -> Router {
        let (api, _) = api_routes().split_for_parts();
        Router::new()
            .merge(api)
            .merge(crate::web::router(self))
            .route("/", get(crate::web::root))
            .route("/api/v1/openapi.json", get(openapi_json))
            .route(DISCOVERY_PATH, get(discovery_json))
            .route("/metrics", get(metrics::render))
            .fallback(|| async {
                ApiError::not_found(
                    "no such route",
                    "the routes are listed in /api/v1/openapi.json",
                )
            })
            .method_not_allowed_fallback(|| async {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    Json(ErrorBody {
                        code: "method_not_allowed".into(),
                        message: "this route does not take this method".into(),
                        hint: "the methods of each route are listed in /api/v1/openapi.json".into(),
                        diagnostics: Vec::new(),
                    }),
                )
            })
            // The limit inside `observe`, so that its 413 is turned into JSON.
            .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
            .layer(middleware::from_fn_with_state(self.clone(), observe))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .with_state(self.clone())
    }

    /// Writes an audit entry; a failure to write it is logged (and
    /// counted), never hidden.
    async fn record(&self, entry: NewAuditEntry) {
        if let Err(e) = self.db().audit().record(&entry).await {
            self.metrics().audit_failed();
            tracing::error!(error = %e, action = %entry.action, actor = %entry.actor, "cannot write the audit log");
        }
    }
}

/// The OpenAPI document of every `/api/v1` route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = api_routes().split_for_parts();
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lain console",
        description = "The app registry and public API of a lain cluster. Every route needs \
            `Authorization: Bearer <sso access token>`; errors are `ErrorBody`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(whoami))
        .merge(apps::routes())
        .merge(releases::routes())
        .merge(secrets::routes())
        .merge(audit::routes())
        .merge(deploy::routes())
        .merge(status::routes())
        .merge(logs::routes())
        .merge(cluster::routes())
        .merge(registry::routes())
        .merge(nodes::routes())
        .merge(certs::routes())
        .merge(backups::routes())
}

/// An etcd failure as an API error: 503 while etcd cannot be reached,
/// 500 otherwise.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    if let StoreError::Key(k) = &e {
        return ApiError::invalid(
            format!("invalid name: {k}"),
            "names are 1 to 253 letters, digits, '.', '_' and '-', starting with a letter or digit",
        );
    }
    if e.is_transient() {
        ApiError::EtcdUnavailable {
            message: format!("etcd is not answering: {e}"),
            hint: "check that etcd is up, then retry".into(),
        }
    } else {
        ApiError::Internal(format!("etcd: {e}"))
    }
}

/// Where the CLI finds the cluster's settings (RFC 9728).
pub const DISCOVERY_PATH: &str = "/.well-known/oauth-protected-resource";

/// RFC 9728 OAuth 2.0 Protected Resource Metadata, with what `lain login`
/// needs besides (the CLI's sso client, the registry, the cluster domain),
/// so that a URL is all a user has to give the CLI. Public: it holds
/// nothing that is not already told to every caller.
pub fn discovery(config: &Config) -> serde_json::Value {
    serde_json::json!({
        "resource": config.public_url(),
        "authorization_servers": [config.auth.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "lain console",
        "lain_cli_client_id": config.auth.cli_client_id,
        "lain_registry": config.registry,
        "lain_registry_service": config.registry_auth.as_ref().map(|r| r.service.clone()),
        "lain_cluster_domain": config.cluster_domain,
    })
}

async fn discovery_json(State(api): State<Api>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        api.inner.discovery_json.clone(),
    )
        .into_response()
}

async fn openapi_json(State(api): State<Api>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        api.inner.openapi_json.clone(),
    )
        .into_response()
}

/// Counts requests by route and status, and turns the framework's own
/// non-JSON refusals (413 from the body limit) into the JSON error shape.
async fn observe(State(api): State<Api>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let _inflight = api.metrics().enter();
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let response = if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        ApiError::TooLarge(format!(
            "the body is larger than the {BODY_LIMIT} bytes console accepts"
        ))
        .into_response()
    } else {
        response
    };
    let status = response.status().as_u16();
    api.metrics().request(method.as_str(), &route, status);
    // The route template, never the path: paths carry caller input.
    tracing::debug!(%method, %route, status, ?request_id, "request");
    response
}

// ---------------------------------------------------------------------
// Callers
// ---------------------------------------------------------------------

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's `sub`: a user name, or `client:ID` for a daemon.
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    pub admin: bool,
}

impl Caller {
    /// Ok for an admin; otherwise 403 saying the caller may not `what`
    /// (e.g. "manage nodes").
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.admin {
            return Ok(());
        }
        Err(ApiError::forbidden(
            format!("`{}` may not {what}: that needs an admin", self.subject),
            "ask a member of the admin group to do it",
        ))
    }

    /// True for a daemon (sso's client-credentials tokens).
    pub fn is_daemon(&self) -> bool {
        self.subject.starts_with("client:")
    }
}

/// Every request's context: the caller (or why there is none) and the
/// request id. Never rejects: a handler decides when to ask for the
/// caller, so that refusals of mutations are audited too.
#[derive(Debug)]
pub struct Ctx {
    pub caller: Result<Caller, AuthError>,
    pub request_id: Option<String>,
    /// The call comes from the web console (audited with `"via": "web"`).
    pub via_web: bool,
}

impl FromRequestParts<Api> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Ctx, Self::Rejection> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let caller = match api.verifier().verify_headers(&parts.headers).await {
            Ok(claims) => Ok(api.caller_of(&claims)),
            Err(e) => {
                tracing::debug!(error = %e, "bearer token refused");
                api.metrics().auth_failed();
                Err(e)
            }
        };
        Ok(Ctx {
            caller,
            request_id,
            via_web: false,
        })
    }
}

impl Api {
    pub(crate) fn caller_of(&self, claims: &Claims) -> Caller {
        let groups: Vec<String> = match claims.get(&self.inner.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let admin = groups.iter().any(|g| g == &self.inner.admin_group);
        Caller {
            subject: claims.sub.clone(),
            username: claims.username().to_owned(),
            groups,
            admin,
        }
    }

    /// Ok when `caller` may change app `app`: an admin, or one of its
    /// maintainers. A non-admin gets 403 also for an app that does not
    /// exist, so that names do not leak.
    pub(crate) async fn may_change(&self, caller: &Caller, app: &str) -> Result<(), ApiError> {
        if caller.admin
            || self
                .db()
                .maintainers()
                .is_maintainer(app, &caller.subject)
                .await?
        {
            return Ok(());
        }
        Err(ApiError::forbidden(
            format!("`{}` does not maintain app `{app}`", caller.subject),
            "ask an owner of the app to add you (`lain maintainer add`), or an admin",
        ))
    }
}

impl Ctx {
    /// The caller, or 401.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller
            .as_ref()
            .map_err(|e| ApiError::Unauthenticated(e.clone()))
    }

    /// Who the audit log names: the subject, or why there is none.
    fn actor(&self) -> String {
        match &self.caller {
            Ok(c) => c.subject.clone(),
            Err(AuthError::MissingCredentials) | Err(AuthError::NotBearer { .. }) => {
                "anonymous".to_owned()
            }
            Err(_) => "invalid-token".to_owned(),
        }
    }
}

/// One audited mutation: runs it, then records who did what to which app
/// and how it ended (`ok`, `denied` for 401/403, `error` otherwise).
pub struct Audited<'a> {
    api: &'a Api,
    ctx: &'a Ctx,
    action: &'static str,
    app: Option<String>,
    target: Option<String>,
}

impl<'a> Audited<'a> {
    pub fn new(api: &'a Api, ctx: &'a Ctx, action: &'static str) -> Self {
        Audited {
            api,
            ctx,
            action,
            app: None,
            target: None,
        }
    }

    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Runs `op` and audits its outcome; `op` returns its answer and the
    /// audit detail (never a secret value).
    pub async fn run<T>(
        self,
        op: impl std::future::Future<Output = Result<(T, serde_json::Value), ApiError>>,
    ) -> Result<T, ApiError> {
        let action = self.action;
        self.run_with(async move { (action, op.await) }).await
    }

    /// Audits `e`, a refusal made before the operation's handler was
    /// reached (a web form failing its checks), and returns it.
    pub async fn refused(self, e: ApiError) -> ApiError {
        match self
            .run(async { Err::<((), serde_json::Value), _>(e) })
            .await
        {
            Err(e) => e,
            Ok(()) => ApiError::Internal("a refusal was audited as a success".into()),
        }
    }

    /// [`Audited::run`] for an operation that learns its action as it
    /// goes (e.g. `node.add` or `node.update`): `op` also returns the
    /// action to record.
    pub async fn run_with<T>(
        mut self,
        op: impl std::future::Future<Output = (&'static str, Result<(T, serde_json::Value), ApiError>)>,
    ) -> Result<T, ApiError> {
        let (action, outcome) = op.await;
        self.action = action;
        let (result, mut detail) = match &outcome {
            Ok((_, detail)) => (AuditResult::Ok, detail.clone()),
            Err(e) => (
                if e.is_denial() {
                    AuditResult::Denied
                } else {
                    AuditResult::Error
                },
                serde_json::json!({ "status": e.status().as_u16(), "code": e.code() }),
            ),
        };
        if let (true, serde_json::Value::Object(o)) = (self.ctx.via_web, &mut detail) {
            o.insert("via".into(), "web".into());
        }
        tracing::info!(
            actor = %self.ctx.actor(),
            action = self.action,
            // Caller input, so Debug-quoted (escapes newlines).
            app = ?self.app,
            target = ?self.target,
            result = %result,
            request_id = ?self.ctx.request_id,
            "audit"
        );
        self.api
            .record(NewAuditEntry {
                actor: self.ctx.actor(),
                action: self.action.to_owned(),
                app: self.app,
                target: self.target,
                detail,
                result,
                request_id: self.ctx.request_id.clone(),
            })
            .await;
        outcome.map(|(t, _)| t)
    }
}

// ---------------------------------------------------------------------
// whoami
// ---------------------------------------------------------------------

/// Who the caller is, as console sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The token's subject: a user name, or `client:ID` for a daemon.
    pub subject: String,
    pub username: String,
    /// `user` or `daemon`.
    pub kind: String,
    /// True when the caller is in the admin group.
    pub admin: bool,
    pub groups: Vec<String>,
    /// The apps the caller maintains.
    pub maintains: Vec<String>,
}

/// Who the caller is: subject, kind, admin, groups and maintained apps.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub(crate) async fn whoami(State(api): State<Api>, ctx: Ctx) -> Result<Json<WhoAmI>, ApiError> {
    let c = ctx.caller()?;
    let maintains = api
        .db()
        .apps()
        .list_maintained_by(&c.subject)
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();
    Ok(Json(WhoAmI {
        subject: c.subject.clone(),
        username: c.username.clone(),
        kind: if c.is_daemon() { "daemon" } else { "user" }.into(),
        admin: c.admin,
        groups: c.groups.clone(),
        maintains,
    }))
}

/// The name a serde enum is stored under (`running`, `rolled_back`), as
/// the API shows it; `unknown` for anything that is not a plain name.
pub(crate) fn enum_name<T: Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// Parses a JSON body taken as `Result<Json<T>, JsonRejection>`, after the
/// caller has been checked.
pub(crate) fn body<T>(
    b: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(ApiError::from)
}

/// Server-Sent Events from `rx`, kept alive, never buffered by a proxy
/// (nginx honours `X-Accel-Buffering`).
pub(crate) fn sse(rx: tokio::sync::mpsc::Receiver<axum::response::sse::Event>) -> Response {
    use axum::response::sse::{KeepAlive, Sse};
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    (
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

/// How often sso's keys are re-read in the background.
pub const KEY_REFRESH: Duration = Duration::from_secs(300);
