//! deployd's operational API: instance logs and app events, for console
//! (`lain logs`, `lain events`).
//!
//! Internal and authenticated: every `/api/v1/...` route needs
//! `Authorization: Bearer <token>`, an sso access token (client
//! credentials) verified by [`lain_auth`] (RS256 against sso's published
//! keys; `iss`, `aud`, `exp`), whose subject is listed in the config's
//! `[auth] allowed_clients`. Without `[auth]` the routes answer 503: the
//! API is never served unauthenticated. `/healthz` and `/metrics` are not
//! part of it.
//!
//! - `GET /api/v1/apps/{app}/procs/{proc}/instances/{instance}/logs`
//!   `?follow=&tail=&timestamps=`: the container's output, streamed.
//! - `GET /api/v1/apps/{app}/events?since_ms=&proc=`: the app's events.
//! - `GET /api/v1/apps/{app}/backups?proc=&instance=`: the app's volume
//!   backups, newest first (read from the backup target: any replica).
//! - `POST /api/v1/apps/{app}/backups` `{"proc","instance","path"}`: a
//!   backup of that volume now (the leader only: others answer 503
//!   `not_leader`); 200 with the backup once stored, 202 when it takes
//!   longer than [`RUN_WAIT`] (it goes on; the list shows it when done).
//!
//! Reads come from etcd (`/lain/observed/`, `/lain/nodes/`,
//! `/lain/events/`), so any replica serves them, leader or not. The API
//! keeps its own etcd connection, made in the background: until it is up
//! the routes answer 503.
//!
//! Errors are [`ApiError`]s: JSON `{"error": CODE, "error_description":
//! TEXT}` with a status per variant; only 5xx are logged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures::StreamExt;
use lain_auth::{AuthError, Claims, Verifier, VerifierConfig};
use lain_store::{
    Component, EventKey, EventKind, KeyError, Name, NodeKey, ObservedInstance, ObservedKey,
    Severity, Store, StoreError, StoreOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::backup::{BackupError, BackupService, BackupView};
use crate::config::{AuthConfig, Config};
use crate::docker::Engine;
use crate::runtime::{LogChunk, LogStream, RuntimeError, RuntimeTimeouts};

/// Lines sent when `tail` is not given.
pub const DEFAULT_TAIL: u64 = 100;
/// Largest `tail` accepted.
pub const MAX_TAIL: u64 = 10_000;
/// Largest request body (a backup request is a few hundred bytes).
pub const BODY_LIMIT: usize = 16 * 1024;
/// How long a backup request waits for the backup before answering 202.
pub const RUN_WAIT: Duration = Duration::from_secs(25);
/// Bound of everything before a response starts (etcd reads, the engine
/// connection and inspect); a followed log stream itself is unbounded.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of each engine call made for a request (inspect; between two
/// log messages when not following).
pub const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

const NDJSON: &str = "application/x-ndjson";
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Log streams open right now, in this process.
static OPEN_LOG_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// How many log streams this process is serving right now (each holds a
/// connection to a node's engine until the client or the container goes).
pub fn open_log_streams() -> usize {
    OPEN_LOG_STREAMS.load(Ordering::Relaxed)
}

/// Why a request was refused or failed. Each variant has one status
/// ([`ApiError::status`]) and a message that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// deployd has no `[auth]` section: the API is off.
    #[error("deployd's operational API is off because its config has no [auth] section: add [auth] with sso's issuer and allowed_clients (e.g. [\"client:console\"]) and restart deployd")]
    AuthNotConfigured,
    /// No, a malformed or an invalid bearer token (or sso's keys cannot
    /// be had): as [`AuthError::status`] says.
    #[error(transparent)]
    Unauthenticated(AuthError),
    /// A valid token whose subject is not allowed.
    #[error("token subject {subject:?} may not use deployd's API: add it to [auth] allowed_clients in deployd's config, or call with a client that is listed there")]
    Forbidden { subject: String },
    /// A bad path segment or query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// No such instance, container or route.
    #[error("{0}")]
    NotFound(String),
    /// etcd cannot be read (not connected yet, down, timing out).
    #[error("cannot read etcd: {0}; check that etcd is up and reachable from deployd, then retry")]
    EtcdUnavailable(String),
    /// The instance's node cannot be reached or its engine fails.
    #[error("node {node} is unreachable: {detail}")]
    NodeUnreachable { node: String, detail: String },
    /// The request took longer than [`HANDLER_TIMEOUT`].
    #[error("{0} took longer than {HANDLER_TIMEOUT:?}; retry, and check etcd and the node if it persists")]
    Timeout(&'static str),
    /// Something this replica cannot serve now (503 with `code`):
    /// backups off, or a backup asked of a replica that does not lead.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The request conflicts with what runs (409): the volume is busy,
    /// the instance is not running.
    #[error("{0}")]
    Conflict(String),
    /// A backup's `pre_run` failed (422): the app's command, not deployd.
    #[error("{0}")]
    PreRunFailed(String),
    /// A backup failed on the node or the target (502).
    #[error("{0}")]
    BackupFailed(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::AuthNotConfigured | ApiError::EtcdUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unauthenticated(e) => e.status(),
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NodeUnreachable { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreRunFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BackupFailed(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::AuthNotConfigured => "auth_not_configured",
            ApiError::Unauthenticated(_) => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::EtcdUnavailable(_) => "etcd_unavailable",
            ApiError::NodeUnreachable { .. } => "node_unreachable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unavailable { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::PreRunFailed(_) => "pre_run_failed",
            ApiError::BackupFailed(_) => "backup_failed",
        }
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        let message = e.to_string();
        match e {
            BackupError::Off => ApiError::Unavailable {
                code: "backups_not_configured",
                message,
            },
            BackupError::NotLeader => ApiError::Unavailable {
                code: "not_leader",
                message,
            },
            BackupError::NotFound(_) => ApiError::NotFound(message),
            BackupError::NotRunning(_) | BackupError::Busy(_) => ApiError::Conflict(message),
            BackupError::PreRun { .. } => ApiError::PreRunFailed(message),
            BackupError::Failed(_) => ApiError::BackupFailed(message),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        ApiError::BadRequest(format!("{e}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::EtcdUnavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "API request failed");
        }
        let mut response = match self {
            // RFC 6750 body and WWW-Authenticate challenge.
            ApiError::Unauthenticated(e) => return e.into_response(),
            e => (
                status,
                Json(serde_json::json!({
                    "error": e.code(),
                    "error_description": e.to_string(),
                })),
            )
                .into_response(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// The API's state: the verifier, the allowed subjects and the etcd
/// connection once made. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Option<Auth>,
    etcd: Vec<String>,
    store: OnceLock<Store>,
    /// Volume backups (set at start; off without `[backup]`).
    backups: OnceLock<Arc<BackupService>>,
    /// Turns true when deployd stops: open log streams end then, so that
    /// a followed stream never holds up the shutdown.
    stop: watch::Receiver<bool>,
}

struct Auth {
    verifier: Verifier,
    allowed: Vec<String>,
}

impl Auth {
    /// Subjects are not secrets (tokens are checked by signature), so a
    /// plain comparison is fine.
    fn allows(&self, subject: &str) -> bool {
        self.allowed.iter().any(|a| a == subject)
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("auth", &self.inner.auth.as_ref().map(|a| &a.allowed))
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Api {
    /// Sets the API up from the config; warns when it will refuse
    /// everyone. Nothing is contacted yet (see [`Api::connect`]). Open log
    /// streams end when `stop` turns true (or its sender is dropped).
    pub fn from_config(config: &Config, stop: watch::Receiver<bool>) -> Result<Api, AuthError> {
        let auth = match config.auth() {
            None => {
                tracing::warn!("no [auth] section in the config: the operational API (/api/v1/...) answers 503; add [auth] to serve logs and events");
                None
            }
            Some(a) => Some(Self::auth(a)?),
        };
        Ok(Api {
            inner: Arc::new(Inner {
                auth,
                etcd: config.etcd.clone(),
                store: OnceLock::new(),
                backups: OnceLock::new(),
                stop,
            }),
        })
    }

    /// Serves backups through `backups` (set once, at start).
    pub fn with_backups(self, backups: Arc<BackupService>) -> Api {
        let _ = self.inner.backups.set(backups);
        self
    }

    fn backups(&self) -> Result<&Arc<BackupService>, ApiError> {
        match self.inner.backups.get() {
            Some(b) if b.is_on() => Ok(b),
            _ => Err(BackupError::Off.into()),
        }
    }

    fn auth(a: &AuthConfig) -> Result<Auth, AuthError> {
        if a.allowed_clients.is_empty() {
            tracing::warn!("[auth] allowed_clients is empty: every API call is refused with 403; list the callers, e.g. [\"client:console\"]");
        }
        let verifier = Verifier::new(VerifierConfig::new(a.issuer.clone(), a.audience.clone()))?;
        Ok(Auth {
            verifier,
            allowed: a.allowed_clients.clone(),
        })
    }

    /// True once the API's etcd connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.store.get().is_some()
    }

    /// Connects the API to etcd, retrying with backoff, and loads sso's
    /// keys once; returns when both are done or `stop` turns true. Does
    /// nothing when the API is off.
    pub async fn connect(&self, stop: watch::Receiver<bool>) {
        let Some(auth) = &self.inner.auth else {
            return;
        };
        let warm = async {
            match auth.verifier.refresh().await {
                Ok(n) => tracing::info!(keys = n, "loaded sso's signing keys"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load sso's signing keys yet; API calls are refused until sso answers")
                }
            }
        };
        let etcd = async {
            let options = StoreOptions {
                // Reads only; a stray write could only land in deployd's
                // own prefixes.
                writer: Some(Component::Deployd),
                ..StoreOptions::default()
            };
            let mut delay = RETRY_MIN;
            loop {
                match Store::connect_with(&self.inner.etcd, options.clone()).await {
                    Ok(store) => {
                        let _ = self.inner.store.set(store);
                        tracing::debug!("operational API connected to etcd");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "operational API cannot connect to etcd yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        };
        let mut stop = stop;
        tokio::select! {
            _ = async { tokio::join!(warm, etcd) } => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    fn store(&self) -> Result<&Store, ApiError> {
        self.inner.store.get().ok_or_else(|| {
            ApiError::EtcdUnavailable("deployd has not connected to etcd yet".into())
        })
    }

    /// The `/api/v1/...` routes, authenticated, with body and time limits.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/api/v1/apps/{app}/procs/{proc}/instances/{instance}/logs",
                get(logs),
            )
            .route("/api/v1/apps/{app}/events", get(events))
            .route(
                "/api/v1/apps/{app}/backups",
                get(list_backups).post(run_backup),
            )
            .route_layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                HANDLER_TIMEOUT + Duration::from_secs(5),
            ))
            .with_state(self.clone())
    }
}

/// Lets a request through only with a valid token of an allowed subject.
async fn authenticate(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    let Some(auth) = &api.inner.auth else {
        return ApiError::AuthNotConfigured.into_response();
    };
    let claims = match auth.verifier.verify_headers(request.headers()).await {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(error = %e, "API call refused");
            return ApiError::Unauthenticated(e).into_response();
        }
    };
    if !auth.allows(&claims.sub) {
        tracing::info!(subject = %claims.sub, path = %request.uri().path(), "API call by a subject not in allowed_clients refused");
        return ApiError::Forbidden {
            subject: claims.sub,
        }
        .into_response();
    }
    request.extensions_mut().insert(claims);
    next.run(request).await
}

// ---------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------

/// The query of the logs route, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    pub follow: Option<String>,
    pub tail: Option<String>,
    pub timestamps: Option<String>,
}

/// The checked options of a logs request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsOptions {
    pub follow: bool,
    pub tail: u64,
    pub timestamps: bool,
}

impl LogsOptions {
    pub fn parse(q: &LogsQuery) -> Result<LogsOptions, ApiError> {
        Ok(LogsOptions {
            follow: parse_bool("follow", q.follow.as_deref())?,
            timestamps: parse_bool("timestamps", q.timestamps.as_deref())?,
            tail: match q.tail.as_deref() {
                None => DEFAULT_TAIL,
                Some(t) => match t.parse::<u64>() {
                    Ok(n) if n <= MAX_TAIL => n,
                    Ok(_) => {
                        return Err(ApiError::BadRequest(format!(
                            "tail={t} is too large: ask for at most {MAX_TAIL} lines"
                        )))
                    }
                    Err(_) => {
                        return Err(ApiError::BadRequest(format!(
                            "tail={:?} is not a number: give the number of last lines, 0 to {MAX_TAIL} (default {DEFAULT_TAIL})",
                            short(t)
                        )))
                    }
                },
            },
        })
    }
}

fn parse_bool(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(ApiError::BadRequest(format!(
            "{name}={:?} is not a boolean: use {name}=true or {name}=false",
            short(v)
        ))),
    }
}

/// A client value quoted in a message, shortened.
fn short(v: &str) -> String {
    const MAX: usize = 64;
    let mut s: String = v.chars().take(MAX).collect();
    if v.chars().count() > MAX {
        s.push('…');
    }
    s
}

/// How log output is written to the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// The container's output as it came, stdout and stderr interleaved.
    Text,
    /// One JSON object per log message:
    /// `{"stream":"stdout"|"stderr","line":"...","time":"..."}`.
    Ndjson,
}

impl LogFormat {
    /// NDJSON when `Accept` lists `application/x-ndjson`, text otherwise.
    pub fn from_headers(headers: &HeaderMap) -> LogFormat {
        let ndjson = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(NDJSON))
            });
        if ndjson {
            LogFormat::Ndjson
        } else {
            LogFormat::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            LogFormat::Text => "text/plain; charset=utf-8",
            LogFormat::Ndjson => NDJSON,
        }
    }

    /// The bytes written for one chunk of output. With `timestamps`, the
    /// engine's RFC 3339 prefix becomes the `time` field in NDJSON.
    pub fn encode(self, chunk: &LogChunk, timestamps: bool) -> Bytes {
        let text = String::from_utf8_lossy(&chunk.bytes);
        match self {
            LogFormat::Text => match text {
                std::borrow::Cow::Borrowed(_) => chunk.bytes.clone(),
                std::borrow::Cow::Owned(s) => Bytes::from(s),
            },
            LogFormat::Ndjson => {
                let mut line = text.strip_suffix('\n').unwrap_or(&text);
                line = line.strip_suffix('\r').unwrap_or(line);
                let mut time = None;
                if timestamps {
                    if let Some((t, rest)) = line.split_once(' ') {
                        time = Some(t);
                        line = rest;
                    }
                }
                let record = LogRecord {
                    stream: match chunk.stream {
                        LogStream::Stdout => "stdout",
                        LogStream::Stderr => "stderr",
                    },
                    line,
                    time,
                };
                let mut out = serde_json::to_vec(&record).unwrap_or_default();
                out.push(b'\n');
                Bytes::from(out)
            }
        }
    }
}

#[derive(Serialize)]
struct LogRecord<'a> {
    stream: &'static str,
    line: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
}

/// The newest record with a container among those of instance `number`,
/// running ones first.
pub fn pick_instance(
    records: &[(ObservedKey, ObservedInstance)],
    number: u32,
) -> Option<&(ObservedKey, ObservedInstance)> {
    records
        .iter()
        .filter(|(_, o)| o.instance == number && o.container_id.is_some())
        .max_by_key(|(k, o)| {
            (
                o.state == lain_store::InstanceState::Running,
                o.generation,
                o.started_at_ms,
                o.updated_at_ms,
                k.instance().to_owned(),
            )
        })
}

/// Finds the instance named by `instance`: its key segment (`1-7`), or
/// its number (`1`).
async fn find_instance(
    store: &Store,
    app: &str,
    proc: &str,
    instance: &str,
) -> Result<(ObservedKey, ObservedInstance), ApiError> {
    let key = ObservedKey::new(app, proc, instance)?;
    let is_number = !instance.is_empty() && instance.bytes().all(|b| b.is_ascii_digit());
    if let (true, Ok(number)) = (is_number, instance.parse::<u32>()) {
        let listing = store.list(&ObservedKey::of_proc(app, proc)?).await?;
        let records: Vec<(ObservedKey, ObservedInstance)> = listing
            .items
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        if let Some(found) = pick_instance(&records, number) {
            return Ok(found.clone());
        }
        return Err(
            match records.iter().find(|(_, o)| o.instance == number) {
                Some((k, o)) => ApiError::NotFound(format!(
                    "instance {} of {app}/{proc} has no container yet (state {:?}); retry once it is created",
                    k.instance(),
                    o.state
                )),
                None => ApiError::NotFound(format!(
                    "{app}/{proc} has no instance {number}; `lain ps` lists the instances"
                )),
            },
        );
    }
    match store.get(&key).await? {
        Some(e) => Ok((e.key, e.value)),
        None => Err(ApiError::NotFound(format!(
            "{app}/{proc} has no instance {instance}; `lain ps` lists the instances (give the number, e.g. 1, or the full name, e.g. 1-7)"
        ))),
    }
}

fn unreachable(node: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::NodeUnreachable {
        node: node.to_owned(),
        detail: e.to_string(),
    }
}

async fn logs(
    State(api): State<Api>,
    Extension(claims): Extension<Claims>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((app, proc, instance)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; the parameters are follow, tail and timestamps",
            e.body_text()
        ))
    })?;
    let options = LogsOptions::parse(&query)?;
    let format = LogFormat::from_headers(&headers);
    let store = api.store()?;
    let prepare = async {
        let (key, obs) = find_instance(store, &app, &proc, &instance).await?;
        let container = obs.container_id.clone().ok_or_else(|| {
            ApiError::NotFound(format!(
                "instance {} of {app}/{proc} has no container yet (state {:?}); retry once it is created",
                key.instance(),
                obs.state
            ))
        })?;
        let node_key = NodeKey::new(&obs.node).map_err(|e| unreachable(&obs.node, e))?;
        let registration = store
            .get(&node_key)
            .await?
            .ok_or_else(|| {
                unreachable(
                    &obs.node,
                    "it has no registration under /lain/nodes/ (was it removed?)",
                )
            })?
            .value;
        let engine = Engine::connect(&registration.docker, ENGINE_CALL_TIMEOUT)
            .map_err(|e| unreachable(&obs.node, e))?
            .with_timeouts(RuntimeTimeouts {
                call: ENGINE_CALL_TIMEOUT,
                ..RuntimeTimeouts::default()
            });
        match engine.inspect(&container).await {
            Ok(Some(c)) if c.app == app && c.proc == proc => {}
            Ok(_) => {
                return Err(ApiError::NotFound(format!(
                    "container {} of instance {} of {app}/{proc} no longer exists on node {}",
                    short(&container),
                    key.instance(),
                    obs.node
                )))
            }
            Err(e) => return Err(unreachable(&obs.node, e)),
        }
        Ok((key, obs.node, container, engine))
    };
    let (key, node, container, engine) = tokio::time::timeout(HANDLER_TIMEOUT, prepare)
        .await
        .map_err(|_| ApiError::Timeout("finding the instance and its node"))??;
    tracing::info!(subject = %claims.sub, app = %app, proc = %proc, instance = %key.instance(), node = %node, follow = options.follow, tail = options.tail, "streaming logs");
    let chunks = engine.logs(
        &container,
        options.follow,
        Some(options.tail),
        options.timestamps,
    );
    let body = log_body(
        chunks,
        format,
        options.timestamps,
        node,
        api.inner.stop.clone(),
    );
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// Counts an open log stream while it lives.
struct StreamGuard;

impl StreamGuard {
    fn new() -> StreamGuard {
        OPEN_LOG_STREAMS.fetch_add(1, Ordering::Relaxed);
        StreamGuard
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        OPEN_LOG_STREAMS.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!("log stream closed");
    }
}

/// Turns true when `stop` does; never when its sender is gone without.
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The response body: the engine's stream, encoded. Dropped (and with it
/// the engine connection) when the client goes away; ends when the
/// container's output ends. A failure mid-stream, or deployd stopping,
/// ends an NDJSON body with an `{"error": ...}` record and aborts a text
/// body (the client sees an incomplete response, not a clean end).
fn log_body(
    chunks: impl futures::Stream<Item = Result<LogChunk, RuntimeError>> + Send + 'static,
    format: LogFormat,
    timestamps: bool,
    node: String,
    stop: watch::Receiver<bool>,
) -> Body {
    let state = Some((
        Box::pin(chunks),
        Box::pin(stopped(stop)),
        StreamGuard::new(),
    ));
    let stream = futures::stream::unfold(state, move |state| {
        let node = node.clone();
        async move {
            let (mut chunks, mut stop, guard) = state?;
            let next = tokio::select! {
                next = chunks.next() => next,
                () = &mut stop => {
                    tracing::debug!(node = %node, "deployd stops: ending a log stream");
                    return Some((failure(format, "deployd is shutting down; reconnect to another replica or retry".into()), None));
                }
            };
            match next {
                None => None,
                Some(Ok(chunk)) => Some((
                    Ok(format.encode(&chunk, timestamps)),
                    Some((chunks, stop, guard)),
                )),
                Some(Err(e)) => {
                    tracing::warn!(node = %node, error = %e, "log stream failed");
                    let text = format!("log stream from node {node} failed: {e}");
                    Some((failure(format, text), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// The last item of a log body that cannot go on.
fn failure(format: LogFormat, text: String) -> Result<Bytes, std::io::Error> {
    match format {
        LogFormat::Ndjson => {
            let mut out =
                serde_json::to_vec(&serde_json::json!({ "error": text })).unwrap_or_default();
            out.push(b'\n');
            Ok(Bytes::from(out))
        }
        LogFormat::Text => Err(std::io::Error::other(text)),
    }
}

// ---------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------

/// The query of the events route, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub since_ms: Option<String>,
    pub proc: Option<String>,
}

/// One event as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// The event's key segment (time-ordered, unique): for de-duplication.
    pub id: String,
    pub kind: EventKind,
    pub severity: Severity,
    pub message: String,
    pub proc: Option<String>,
    pub instance: Option<String>,
    pub generation: Option<u64>,
    pub at_ms: u64,
}

/// Events at or after `since_ms`, of `proc` if given, oldest first.
pub fn select_events(
    mut events: Vec<EventView>,
    since_ms: u64,
    proc: Option<&str>,
) -> Vec<EventView> {
    events.retain(|e| e.at_ms >= since_ms && proc.is_none_or(|p| e.proc.as_deref() == Some(p)));
    events.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    events
}

async fn events(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let Path(app) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; the parameters are since_ms and proc",
            e.body_text()
        ))
    })?;
    let prefix = EventKey::of_app(&app)?;
    let since_ms = match query.since_ms.as_deref() {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "since_ms={:?} is not a number: give unix milliseconds",
                short(s)
            ))
        })?,
    };
    let proc = match query.proc.as_deref() {
        None => None,
        Some(p) => Some(Name::parse("proc name", p)?),
    };
    let store = api.store()?;
    let listing = tokio::time::timeout(HANDLER_TIMEOUT, store.list(&prefix))
        .await
        .map_err(|_| ApiError::Timeout("listing events"))??;
    if !listing.invalid.is_empty() {
        tracing::debug!(app = %app, skipped = listing.invalid.len(), "unreadable events skipped");
    }
    let views = listing
        .items
        .into_iter()
        .map(|e| EventView {
            id: e.key.event().to_owned(),
            kind: e.value.kind,
            severity: e.value.severity,
            message: e.value.message,
            proc: e.value.proc,
            instance: e.value.instance,
            generation: e.value.generation,
            at_ms: e.value.at_ms,
        })
        .collect();
    Ok(Json(select_events(
        views,
        since_ms,
        proc.as_ref().map(Name::as_str),
    )))
}

// ---------------------------------------------------------------------
// Backups
// ---------------------------------------------------------------------

/// The query of the backup list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsQuery {
    pub proc: Option<String>,
    pub instance: Option<String>,
}

/// What `POST /api/v1/apps/{app}/backups` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    pub proc: String,
    /// The instance number (1-based).
    pub instance: u32,
    /// The volume's directory in the container, as in lain.yaml.
    pub path: String,
}

/// The longest volume path accepted.
const MAX_PATH: usize = 4096;

fn check_path(path: &str) -> Result<(), ApiError> {
    if !path.starts_with('/') || path.len() > MAX_PATH || path.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "path {:?} is not a volume path: give the absolute directory as in lain.yaml's volumes, e.g. /data",
            short(path)
        )));
    }
    Ok(())
}

fn parse_instance(value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "instance={:?} is not an instance number: give 1, 2, ...",
            short(value)
        ))),
    }
}

async fn list_backups(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BackupsQuery>, QueryRejection>,
) -> Result<Json<Vec<BackupView>>, ApiError> {
    let Path(app) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; the parameters are proc and instance",
            e.body_text()
        ))
    })?;
    Name::parse("app name", &app)?;
    let proc = match query.proc {
        Some(p) => Some(Name::parse("proc name", &p)?.as_str().to_owned()),
        None => None,
    };
    let instance = query.instance.as_deref().map(parse_instance).transpose()?;
    let backups = api.backups()?;
    let metas = tokio::time::timeout(
        HANDLER_TIMEOUT,
        backups.list(&app, &crate::backup::filter(proc, instance)),
    )
    .await
    .map_err(|_| ApiError::Timeout("listing backups"))??;
    Ok(Json(metas.iter().map(BackupView::from).collect()))
}

async fn run_backup(
    State(api): State<Api>,
    Extension(claims): Extension<Claims>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(app) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Json(b) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; send {{\"proc\": \"worker\", \"instance\": 1, \"path\": \"/data\"}}",
            e.body_text()
        ))
    })?;
    Name::parse("app name", &app)?;
    Name::parse("proc name", &b.proc)?;
    if b.instance == 0 {
        return Err(ApiError::BadRequest(
            "instance 0 does not exist: instances are numbered from 1".into(),
        ));
    }
    check_path(&b.path)?;
    let backups = api.backups()?;
    let rx = backups.request(&app, &b.proc, b.instance, &b.path)?;
    tracing::info!(subject = %claims.sub, app = %app, proc = %b.proc, instance = b.instance, path = %b.path, "backup requested");
    match tokio::time::timeout(RUN_WAIT, rx).await {
        Ok(Ok(Ok(meta))) => Ok(Json(BackupView::from(&meta)).into_response()),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(_)) => Err(ApiError::Unavailable {
            code: "not_leader",
            message: "the backup was cut short: this replica stopped leading; retry (the new leader takes it)".into(),
        }),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "state": "running",
                "message": format!("the backup of {} of instance {} of {app}/{} is still running after {RUN_WAIT:?}; it goes on, and the backup list shows it once stored (a failure shows in the app's events)", b.path, b.instance, b.proc),
            })),
        )
            .into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lain_store::{Health, InstanceState};

    fn q(follow: Option<&str>, tail: Option<&str>, ts: Option<&str>) -> LogsQuery {
        LogsQuery {
            follow: follow.map(str::to_owned),
            tail: tail.map(str::to_owned),
            timestamps: ts.map(str::to_owned),
        }
    }

    #[test]
    fn logs_options_defaults_and_limits() {
        assert_eq!(
            LogsOptions::parse(&LogsQuery::default()).unwrap(),
            LogsOptions {
                follow: false,
                tail: DEFAULT_TAIL,
                timestamps: false
            }
        );
        let o = LogsOptions::parse(&q(Some("true"), Some("0"), Some("1"))).unwrap();
        assert!(o.follow && o.timestamps);
        assert_eq!(o.tail, 0);
        assert_eq!(
            LogsOptions::parse(&q(None, Some("10000"), None))
                .unwrap()
                .tail,
            MAX_TAIL
        );
        for (query, want) in [
            (q(Some("yes"), None, None), "follow=true"),
            (q(None, None, Some("TRUE")), "timestamps=true"),
            (q(None, Some("10001"), None), "at most 10000"),
            (q(None, Some("-1"), None), "not a number"),
            (q(None, Some("all"), None), "not a number"),
            (q(None, Some(""), None), "not a number"),
        ] {
            let e = LogsOptions::parse(&query).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
        let long = "x".repeat(10_000);
        let e = LogsOptions::parse(&q(None, Some(&long), None)).unwrap_err();
        assert!(e.to_string().len() < 300, "the value is shortened: {e}");
    }

    #[test]
    fn errors_map_to_statuses_and_codes() {
        let cases = [
            (ApiError::AuthNotConfigured, 503, "auth_not_configured"),
            (
                ApiError::Unauthenticated(AuthError::MissingCredentials),
                401,
                "unauthorized",
            ),
            (
                ApiError::Unauthenticated(AuthError::BadSignature),
                401,
                "unauthorized",
            ),
            (
                ApiError::Forbidden {
                    subject: "client:x".into(),
                },
                403,
                "forbidden",
            ),
            (ApiError::BadRequest("x".into()), 400, "invalid_request"),
            (ApiError::NotFound("x".into()), 404, "not_found"),
            (
                ApiError::EtcdUnavailable("x".into()),
                503,
                "etcd_unavailable",
            ),
            (
                ApiError::NodeUnreachable {
                    node: "n1".into(),
                    detail: "refused".into(),
                },
                502,
                "node_unreachable",
            ),
            (ApiError::Timeout("x"), 504, "timeout"),
            (BackupError::Off.into(), 503, "backups_not_configured"),
            (BackupError::NotLeader.into(), 503, "not_leader"),
            (BackupError::NotFound("x".into()).into(), 404, "not_found"),
            (BackupError::Busy("x".into()).into(), 409, "conflict"),
            (BackupError::NotRunning("x".into()).into(), 409, "conflict"),
            (
                BackupError::PreRun {
                    what: "x".into(),
                    detail: "y".into(),
                }
                .into(),
                422,
                "pre_run_failed",
            ),
            (BackupError::Failed("x".into()).into(), 502, "backup_failed"),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
            assert_eq!(e.code(), code);
            let r = e.into_response();
            assert_eq!(r.status().as_u16(), status);
        }
        let r = ApiError::Unauthenticated(AuthError::BadSignature).into_response();
        assert!(r
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().contains("invalid_token")));
        let r = ApiError::AuthNotConfigured.into_response();
        assert_eq!(r.headers().get(RETRY_AFTER).unwrap(), "5");
        let e = ApiError::NodeUnreachable {
            node: "node-7".into(),
            detail: "x".into(),
        };
        assert!(e.to_string().contains("node-7"));
    }

    #[test]
    fn backup_inputs_are_checked() {
        assert!(check_path("/data").is_ok());
        for bad in ["data", "", "/a\nb"] {
            assert_eq!(
                check_path(bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
        assert!(check_path(&format!("/{}", "a".repeat(MAX_PATH))).is_err());
        assert_eq!(parse_instance("2").unwrap(), 2);
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_instance(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_names_are_bad_requests() {
        for (app, proc, inst) in [
            ("..", "web", "1"),
            ("a/b", "web", "1"),
            ("app", "", "1"),
            ("app", "web", "1 2"),
            ("app", "web", "-1"),
        ] {
            let e: ApiError = ObservedKey::new(app, proc, inst).unwrap_err().into();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{app}/{proc}/{inst}");
        }
    }

    fn obs(
        instance: u32,
        generation: u64,
        state: InstanceState,
        cid: Option<&str>,
    ) -> ObservedInstance {
        ObservedInstance {
            node: "n1".into(),
            container_id: cid.map(str::to_owned),
            generation,
            release: String::new(),
            image: String::new(),
            state,
            health: Health::Unknown,
            address: None,
            restarts: 0,
            started_at_ms: None,
            updated_at_ms: 0,
            message: None,
            instance,
            spec: String::new(),
            recent_restarts_ms: Vec::new(),
            volumes_from: None,
        }
    }

    #[test]
    fn an_instance_number_picks_the_newest_running_record() {
        let rec =
            |slot: &str, o: ObservedInstance| (ObservedKey::new("a", "web", slot).unwrap(), o);
        let records = vec![
            rec("1-6", obs(1, 6, InstanceState::Running, Some("old"))),
            rec("1-7", obs(1, 7, InstanceState::Starting, Some("new"))),
            rec("1-8", obs(1, 8, InstanceState::Pending, None)),
            rec("2-7", obs(2, 7, InstanceState::Exited, Some("two"))),
        ];
        let pick = |n| pick_instance(&records, n).map(|(k, _)| k.instance().to_owned());
        // Running beats newer but not running; no container is never picked.
        assert_eq!(pick(1).as_deref(), Some("1-6"));
        // Without a running one, an exited container still has logs.
        assert_eq!(pick(2).as_deref(), Some("2-7"));
        assert_eq!(pick(3), None);
        let mut records = records;
        records[1].1.state = InstanceState::Running;
        let pick = |n| pick_instance(&records, n).map(|(k, _)| k.instance().to_owned());
        assert_eq!(pick(1).as_deref(), Some("1-7"));
    }

    #[test]
    fn accept_selects_the_format() {
        let mut h = HeaderMap::new();
        assert_eq!(LogFormat::from_headers(&h), LogFormat::Text);
        h.insert(
            ACCEPT,
            HeaderValue::from_static("text/plain, Application/X-NDJSON; q=0.9"),
        );
        assert_eq!(LogFormat::from_headers(&h), LogFormat::Ndjson);
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(LogFormat::from_headers(&h), LogFormat::Text);
    }

    #[test]
    fn chunks_encode_as_text_or_ndjson() {
        let chunk = |stream, s: &str| LogChunk {
            stream,
            bytes: Bytes::from(s.to_owned()),
        };
        let out = chunk(LogStream::Stderr, "boom \"x\"\n");
        assert_eq!(LogFormat::Text.encode(&out, false), "boom \"x\"\n");
        let v: serde_json::Value =
            serde_json::from_slice(&LogFormat::Ndjson.encode(&out, false)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"stream": "stderr", "line": "boom \"x\""})
        );
        let ts = chunk(
            LogStream::Stdout,
            "2026-11-22T01:02:03.000000001Z hello world\n",
        );
        let line = LogFormat::Ndjson.encode(&ts, true);
        assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"stream": "stdout", "line": "hello world", "time": "2026-11-22T01:02:03.000000001Z"})
        );
        // Invalid UTF-8 is replaced, never passed on as is.
        let bad = LogChunk {
            stream: LogStream::Stdout,
            bytes: Bytes::from_static(b"a\xffb\n"),
        };
        assert_eq!(LogFormat::Text.encode(&bad, false), "a\u{fffd}b\n");
    }

    #[test]
    fn events_are_filtered_and_sorted_oldest_first() {
        let ev = |id: &str, at_ms, proc: Option<&str>| EventView {
            id: id.into(),
            kind: EventKind::CrashLoop,
            severity: Severity::Error,
            message: id.into(),
            proc: proc.map(str::to_owned),
            instance: None,
            generation: None,
            at_ms,
        };
        let all = vec![
            ev("c", 30, Some("web")),
            ev("a", 10, Some("worker")),
            ev("b", 30, None),
            ev("d", 20, Some("web")),
        ];
        let ids = |v: Vec<EventView>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(
            ids(select_events(all.clone(), 0, None)),
            ["a", "d", "b", "c"]
        );
        assert_eq!(ids(select_events(all.clone(), 20, None)), ["d", "b", "c"]);
        assert_eq!(ids(select_events(all, 0, Some("web"))), ["d", "c"]);
    }
}
