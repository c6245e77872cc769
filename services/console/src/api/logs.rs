//! An instance's logs, proxied from deployd's operational API (a
//! maintainer or an admin: logs can hold sensitive data), and an app's
//! events, read from etcd (`/lain/events/{app}/`, any caller).
//!
//! Logs: console picks a deployd replica from etcd (the election leader,
//! then the other candidates: any replica serves logs), authenticates with
//! a client-credentials token from sso ([`crate::deployd`]) and streams
//! deployd's answer through as it comes (chunked; NDJSON with `Accept:
//! application/x-ndjson`). When the client goes away the body is dropped,
//! and with it the connection to deployd, which drops the engine's.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use lain_store::EventKey;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{store_error, Api, Ctx};
use crate::deployd::{base_url, replicas, DeploydClient};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(logs))
        .routes(routes!(events))
}

/// Bound of getting deployd's answer started (deployd bounds its own
/// preparation by 30 s).
pub const DEPLOYD_ANSWER_TIMEOUT: Duration = Duration::from_secs(35);

/// The query of the logs route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The instance: its number (`1`: the running, newest record of that
    /// number) or its record id (`1-7`: instance 1 of generation 7).
    pub instance: String,
    /// `true` streams until the container stops or the client goes
    /// (default `false`).
    pub follow: Option<String>,
    /// The last N lines, 0 to 10000 (default 100).
    pub tail: Option<String>,
    /// `true` prefixes each line with the engine's RFC 3339 time (NDJSON:
    /// a `time` field).
    pub timestamps: Option<String>,
}

fn dependency(status: StatusCode, code: &'static str, message: String, hint: &str) -> ApiError {
    ApiError::Dependency {
        status,
        code,
        message,
        hint: hint.to_owned(),
    }
}

/// An instance's output (stdout and stderr), streamed from deployd. A
/// maintainer of the app or an admin.
#[utoipa::path(get, path = "/api/v1/apps/{app}/procs/{proc}/logs", tag = "logs",
    params(("app" = String, Path, description = "app name"),
        ("proc" = String, Path, description = "proc name"), LogsQuery),
    responses((status = 200, content_type = "text/plain", body = String,
            description = "the output as written; `application/x-ndjson` (one \
                `{\"stream\",\"line\",\"time\"?}` per message) when asked for with `Accept`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn logs(
    State(api): State<Api>,
    ctx: Ctx,
    Path((app, proc)): Path<(String, String)>,
    q: Result<Query<LogsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    api.may_change(caller, &app).await?;
    let Query(q) = q?;
    if q.instance.is_empty() {
        return Err(ApiError::invalid(
            "instance is empty",
            "give ?instance=N (the instance number, e.g. 1) or its record id (e.g. 1-7)",
        ));
    }
    let client = api.deployd()?.clone();
    let store = api.store()?;
    let candidates = replicas(store).await.map_err(store_error)?;
    let token = client.token().await.map_err(|e| {
        dependency(
            StatusCode::BAD_GATEWAY,
            "deployd_token_unavailable",
            e.to_string(),
            "check that sso is up and that console's [deployd] client_id and client_secret_file match an sso client with the client_credentials grant",
        )
    })?;
    let mut tried = Vec::new();
    for replica in candidates {
        let Some(address) = replica.address.as_deref() else {
            continue;
        };
        let base = base_url(address);
        let mut url = match reqwest::Url::parse(&base) {
            Ok(u) => u,
            Err(e) => {
                tried.push(format!("{} at {address:?}: not a URL ({e})", replica.id));
                continue;
            }
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "api",
                "v1",
                "apps",
                app.as_str(),
                "procs",
                proc.as_str(),
                "instances",
                q.instance.as_str(),
                "logs",
            ]);
        }
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in [
                ("follow", &q.follow),
                ("tail", &q.tail),
                ("timestamps", &q.timestamps),
            ] {
                if let Some(v) = value {
                    pairs.append_pair(name, v);
                }
            }
        }
        let mut req = client.http().get(url).bearer_auth(token.as_str());
        if let Some(accept) = headers.get(ACCEPT) {
            req = req.header(ACCEPT, accept.clone());
        }
        let answer = match tokio::time::timeout(DEPLOYD_ANSWER_TIMEOUT, req.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tried.push(format!("{} at {address}: {e}", replica.id));
                continue;
            }
            Err(_) => {
                tried.push(format!(
                    "{} at {address}: no answer within {DEPLOYD_ANSWER_TIMEOUT:?}",
                    replica.id
                ));
                continue;
            }
        };
        return relay(&client, &replica.id, answer).await;
    }
    Err(dependency(
        StatusCode::BAD_GATEWAY,
        "deployd_unreachable",
        if tried.is_empty() {
            "no deployd replica advertises an address in etcd (/lain/election/deployd/): is deployd running?".to_owned()
        } else {
            format!("cannot reach deployd: {}", tried.join("; "))
        },
        "check that deployd runs and that console can connect to the address it listens on, then retry",
    ))
}

/// deployd's answer, streamed through; an error answer as console's.
async fn relay(
    client: &DeploydClient,
    replica: &str,
    answer: reqwest::Response,
) -> Result<Response, ApiError> {
    let status = answer.status();
    if status == StatusCode::OK {
        let content_type = answer
            .headers()
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("text/plain; charset=utf-8"));
        let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, content_type);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        return Ok(response);
    }
    #[derive(Deserialize)]
    struct DeploydError {
        #[serde(default)]
        error_description: String,
    }
    let text = answer.text().await.unwrap_or_default();
    let description = serde_json::from_str::<DeploydError>(&text)
        .map(|e| e.error_description)
        .unwrap_or_else(|_| text.chars().take(300).collect());
    Err(match status {
        StatusCode::BAD_REQUEST => ApiError::invalid(
            description,
            "give instance (a number or a record id such as 1-7), tail (0 to 10000), follow and timestamps (true or false)",
        ),
        StatusCode::NOT_FOUND => ApiError::not_found(
            description,
            "`GET /api/v1/apps/{app}/status` lists the instances",
        ),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            client.forget_token().await;
            dependency(
                StatusCode::BAD_GATEWAY,
                "deployd_refused",
                format!("deployd {replica} refused console's token ({status}): {description}"),
                &format!(
                    "list `client:{}` in deployd's [auth] allowed_clients and give that sso client the audience deployd expects (default `deployd`)",
                    client.client_id()
                ),
            )
        }
        StatusCode::BAD_GATEWAY => dependency(
            StatusCode::BAD_GATEWAY,
            "node_unreachable",
            description,
            "check the node's engine; the instance's status shows where it runs",
        ),
        StatusCode::SERVICE_UNAVAILABLE => dependency(
            StatusCode::SERVICE_UNAVAILABLE,
            "deployd_unavailable",
            format!("deployd {replica} cannot serve logs now: {description}"),
            "retry shortly; if it persists, check deployd's [auth] section and its etcd connection",
        ),
        _ => dependency(
            StatusCode::BAD_GATEWAY,
            "deployd_failed",
            format!("deployd {replica} answered {status}: {description}"),
            "retry; if it persists, check deployd's log",
        ),
    })
}

// ---------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events at or after this time (unix milliseconds).
    pub since_ms: Option<u64>,
    /// Only this proc's events.
    pub proc: Option<String>,
}

/// One event of an app, as deployd wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// The event key's last segment (unique, time-ordered): for
    /// de-duplication when polling with `since_ms`.
    pub id: String,
    /// `rollout_started`, `rollout_succeeded`, `rollout_failed`,
    /// `rolled_back`, `crash_loop`, `rescheduled`, `unschedulable`,
    /// `node_lost`, `node_recovered`, `portal_failed`, `backup_failed`,
    /// `backup_restored` or `other`.
    pub kind: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    pub message: String,
    pub proc: Option<String>,
    pub instance: Option<String>,
    pub generation: Option<u64>,
    /// Unix milliseconds.
    pub at_ms: u64,
}

/// An app's recent events (deployd keeps them an hour), oldest first.
/// Any caller.
#[utoipa::path(get, path = "/api/v1/apps/{app}/events", tag = "logs",
    params(("app" = String, Path, description = "app name"), EventsQuery),
    responses((status = 200, body = [EventView]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn events(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    ctx.caller()?;
    let Query(q) = q?;
    let store = api.store()?;
    api.db().apps().get(&app).await?;
    let prefix = EventKey::of_app(&app).map_err(|e| store_error(e.into()))?;
    let listing = store.list(&prefix).await.map_err(store_error)?;
    let since = q.since_ms.unwrap_or(0);
    let mut events: Vec<EventView> = listing
        .items
        .into_iter()
        .filter(|e| e.value.at_ms >= since)
        .filter(|e| q.proc.is_none() || e.value.proc == q.proc)
        .map(|e| EventView {
            id: e.key.event().to_owned(),
            kind: super::enum_name(&e.value.kind),
            severity: super::enum_name(&e.value.severity),
            message: e.value.message,
            proc: e.value.proc,
            instance: e.value.instance,
            generation: e.value.generation,
            at_ms: e.value.at_ms,
        })
        .collect();
    events.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    Ok(Json(events))
}
