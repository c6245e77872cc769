//! Volume backups (lain.yaml's `backup_full` / `backup_increment`):
//! listing them and taking one now, through deployd's operational API,
//! and restoring one, which console does itself by writing the proc's
//! desired state with `restore` set as a new deployment (kind `restore`).
//! deployd then rolls the proc out and, before the named instance's new
//! container is created, writes the backup into its volume (see
//! deployd's `backup` module). Maintainers and admins; the mutations are
//! audited (`backup.run`, `backup.restore`).
//!
//! A restore is checked before anything is written: the proc is
//! deployed, the instance exists, the path is one of its volumes, and
//! deployd lists the backup for exactly that volume. A refused restore
//! changes nothing.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lain_store::{DesiredKey, RestoreRequest as StoreRestore};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deploy::Write;
use super::{body, store_error, Api, Audited, Ctx, DeployOutcome};
use crate::db::DeploymentKind;
use crate::deploy::Scope;
use crate::deployd::{base_url, replicas};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list_backups, run_backup))
        .routes(routes!(restore_backup))
}

/// Bound of a list answer from deployd (it bounds its own work by 30 s).
const LIST_TIMEOUT: Duration = Duration::from_secs(35);
/// Bound of a backup request: deployd answers within 25 s (202 if the
/// backup takes longer).
const RUN_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest backup id accepted (ids are 25 characters).
const MAX_BACKUP_ID: usize = 64;

/// One backup of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupView {
    /// `YYYYMMDDTHHMMSSZ-xxxxxxxx`: sorts by time; give it to a restore.
    pub id: String,
    pub proc: String,
    /// The instance number.
    pub instance: u32,
    /// The volume's directory in the container.
    pub path: String,
    /// What was stored: `full` or `increment`.
    pub mode: String,
    /// What was asked for (an increment with nothing to build on is
    /// stored full, and `note` says why).
    pub requested_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    /// When retention deletes it (unix ms); absent: kept until deleted by
    /// hand.
    #[serde(default)]
    pub expire_at_ms: Option<u64>,
    /// Bytes of the stored archive.
    pub size: u64,
    /// Entries in the volume at the backup.
    pub files: u64,
    /// Bytes of file content in the volume at the backup.
    pub volume_bytes: u64,
    /// The full backup an increment builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// The query of the backup list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BackupsQuery {
    /// Only this proc's backups.
    pub proc: Option<String>,
    /// Only this instance's (needs `proc`).
    pub instance: Option<u32>,
}

/// What `POST /api/v1/apps/{app}/backups` takes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBackupRequest {
    /// The proc, e.g. `worker.db`.
    pub proc: String,
    /// The instance number (1-based).
    pub instance: u32,
    /// The volume's directory, as in lain.yaml's `volumes`.
    pub path: String,
}

/// What a backup request did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunBackupOutcome {
    /// `stored`, or `running` when it takes longer than deployd waits
    /// (it goes on: the list shows it once stored, the app's events a
    /// failure).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What `POST /api/v1/apps/{app}/backups/restore` takes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackupRequest {
    pub proc: String,
    /// The instance whose volume gets the backup.
    pub instance: u32,
    /// The volume's directory, as in lain.yaml's `volumes`.
    pub path: String,
    /// The backup's id, as listed.
    pub backup: String,
}

fn dependency(status: StatusCode, code: &'static str, message: String, hint: &str) -> ApiError {
    ApiError::Dependency {
        status,
        code,
        message,
        hint: hint.to_owned(),
    }
}

/// Names as etcd keys take them, checked before anything is asked.
fn check_name(what: &str, value: &str) -> Result<(), ApiError> {
    lain_store::Name::parse("name", value)
        .map(|_| ())
        .map_err(|_| {
            ApiError::invalid(
                format!(
                    "{what} {:?} is not a valid name",
                    value.chars().take(64).collect::<String>()
                ),
                format!("give the {what} as `lain ps` shows it, e.g. worker"),
            )
        })
}

fn check_path(path: &str) -> Result<(), ApiError> {
    if !path.starts_with('/') || path.len() > 4096 || path.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            format!(
                "path {:?} is not a volume path",
                path.chars().take(64).collect::<String>()
            ),
            "give the volume's absolute directory as in lain.yaml, e.g. /data",
        ));
    }
    Ok(())
}

fn check_instance(instance: u32) -> Result<(), ApiError> {
    if instance == 0 {
        return Err(ApiError::invalid(
            "instance 0 does not exist",
            "instances are numbered from 1 (`lain ps` lists them)",
        ));
    }
    Ok(())
}

/// deployd's answer: its status and body.
struct Answer {
    replica: String,
    status: StatusCode,
    body: String,
}

/// Calls deployd's `/api/v1/apps/{app}/backups` on the leader first, then
/// the other replicas (a replica that does not lead answers a backup
/// request with 503 `not_leader`: the next one is tried).
async fn call_deployd(
    api: &Api,
    app: &str,
    method: Method,
    query: &[(&str, String)],
    payload: Option<&Value>,
    timeout: Duration,
) -> Result<Answer, ApiError> {
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
    let mut not_leader = None;
    for replica in candidates {
        let Some(address) = replica.address.as_deref() else {
            continue;
        };
        let mut url = match reqwest::Url::parse(&base_url(address)) {
            Ok(u) => u,
            Err(e) => {
                tried.push(format!("{} at {address:?}: not a URL ({e})", replica.id));
                continue;
            }
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["api", "v1", "apps", app, "backups"]);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let mut req = client
            .http()
            .request(method.clone(), url)
            .bearer_auth(token.as_str());
        if let Some(p) = payload {
            req = req.json(p);
        }
        let answer = match tokio::time::timeout(timeout, async {
            let r = req.send().await?;
            let status = r.status();
            r.text().await.map(|t| (status, t))
        })
        .await
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tried.push(format!("{} at {address}: {}", replica.id, e.without_url()));
                continue;
            }
            Err(_) => {
                tried.push(format!(
                    "{} at {address}: no answer within {timeout:?}",
                    replica.id
                ));
                continue;
            }
        };
        let answer = Answer {
            replica: replica.id.clone(),
            status: answer.0,
            body: answer.1,
        };
        if answer.status == StatusCode::SERVICE_UNAVAILABLE && error_of(&answer).0 == "not_leader" {
            not_leader = Some(answer);
            continue;
        }
        return Ok(answer);
    }
    if let Some(answer) = not_leader {
        return Ok(answer);
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

/// deployd's error code and description.
fn error_of(a: &Answer) -> (String, String) {
    #[derive(Deserialize)]
    struct DeploydError {
        #[serde(default)]
        error: String,
        #[serde(default)]
        error_description: String,
    }
    match serde_json::from_str::<DeploydError>(&a.body) {
        Ok(e) => (e.error, e.error_description),
        Err(_) => (String::new(), a.body.chars().take(300).collect()),
    }
}

/// A deployd answer that is not a success, as console's error.
async fn refusal(api: &Api, a: Answer) -> ApiError {
    let (code, description) = error_of(&a);
    let replica = a.replica;
    match (a.status, code.as_str()) {
        (StatusCode::BAD_REQUEST, _) => ApiError::invalid(
            description,
            "give proc (a name), instance (a number from 1) and path (the volume's directory, e.g. /data)",
        ),
        (StatusCode::NOT_FOUND, _) => ApiError::not_found(
            description,
            "`lain ps` lists the procs and instances; lain.yaml's volumes the paths",
        ),
        (StatusCode::CONFLICT, _) => ApiError::conflict(
            description,
            "retry once the instance runs and no other backup or restore of the volume is under way",
        ),
        (StatusCode::UNPROCESSABLE_ENTITY, _) => ApiError::Unprocessable {
            code: "pre_run_failed",
            message: description,
            hint: "fix the volume's pre_run in lain.yaml (or what it needs in the container), deploy, and retry".into(),
        },
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
            let client_id = api
                .deployd()
                .map(|c| c.client_id().to_owned())
                .unwrap_or_default();
            if let Ok(c) = api.deployd() {
                c.forget_token().await;
            }
            dependency(
                StatusCode::BAD_GATEWAY,
                "deployd_refused",
                format!("deployd {replica} refused console's token ({}): {description}", a.status),
                &format!(
                    "list `client:{client_id}` in deployd's [auth] allowed_clients and give that sso client the audience deployd expects (default `deployd`)"
                ),
            )
        }
        (StatusCode::SERVICE_UNAVAILABLE, "backups_not_configured") => dependency(
            StatusCode::SERVICE_UNAVAILABLE,
            "backups_not_configured",
            description,
            "ask the cluster's operators to add a [backup] section (a target) to deployd's config and restart deployd",
        ),
        (StatusCode::SERVICE_UNAVAILABLE, _) => dependency(
            StatusCode::SERVICE_UNAVAILABLE,
            "deployd_unavailable",
            format!("deployd {replica} cannot serve this now: {description}"),
            "retry shortly; if it persists, check deployd's log and its etcd connection",
        ),
        (StatusCode::BAD_GATEWAY, _) => dependency(
            StatusCode::BAD_GATEWAY,
            "backup_failed",
            description,
            "see `lain events` for the app; check the node and the backup target, then retry",
        ),
        (status, _) => dependency(
            StatusCode::BAD_GATEWAY,
            "deployd_failed",
            format!("deployd {replica} answered {status}: {description}"),
            "retry; if it persists, check deployd's log",
        ),
    }
}

/// deployd's backup list of the app (optionally one proc or instance).
async fn fetch(
    api: &Api,
    app: &str,
    proc: Option<&str>,
    instance: Option<u32>,
) -> Result<Vec<BackupView>, ApiError> {
    let mut query = Vec::new();
    if let Some(p) = proc {
        query.push(("proc", p.to_owned()));
    }
    if let Some(n) = instance {
        query.push(("instance", n.to_string()));
    }
    let a = call_deployd(api, app, Method::GET, &query, None, LIST_TIMEOUT).await?;
    if a.status != StatusCode::OK {
        return Err(refusal(api, a).await);
    }
    serde_json::from_str(&a.body).map_err(|e| {
        dependency(
            StatusCode::BAD_GATEWAY,
            "deployd_failed",
            format!(
                "deployd {} answered a backup list console cannot read: {e}",
                a.replica
            ),
            "deployd and console may be of different versions; upgrade them together",
        )
    })
}

/// An app's volume backups, newest first, as the backup target holds
/// them (read through deployd). Maintainers of the app and admins.
#[utoipa::path(get, path = "/api/v1/apps/{app}/backups", tag = "backups",
    params(("app" = String, Path, description = "app name"), BackupsQuery),
    responses((status = 200, body = [BackupView]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "deployd unreachable or the target failing"),
        (status = 503, body = ErrorBody, description = "backups off in deployd, or deployd not configured")))]
pub(crate) async fn list_backups(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    q: Result<Query<BackupsQuery>, QueryRejection>,
) -> Result<Json<Vec<BackupView>>, ApiError> {
    let caller = ctx.caller()?;
    api.may_change(caller, &app).await?;
    let Query(q) = q?;
    api.db().apps().get(&app).await?;
    if let Some(p) = &q.proc {
        check_name("proc", p)?;
    }
    if let Some(n) = q.instance {
        check_instance(n)?;
        if q.proc.is_none() {
            return Err(ApiError::invalid(
                "instance needs proc",
                "give ?proc=NAME&instance=N (instance numbers are per proc)",
            ));
        }
    }
    Ok(Json(
        fetch(&api, &app, q.proc.as_deref(), q.instance).await?,
    ))
}

/// Takes a full backup of one instance's volume now (with the volume's
/// pre_run and post_run), through deployd's leader. 200 once stored; 202
/// when it takes longer (it goes on). Maintainers and admins; audited.
#[utoipa::path(post, path = "/api/v1/apps/{app}/backups", tag = "backups",
    params(("app" = String, Path, description = "app name")),
    request_body = RunBackupRequest,
    responses((status = 200, body = RunBackupOutcome, description = "stored"),
        (status = 202, body = RunBackupOutcome, description = "still running"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such proc, instance or volume"),
        (status = 409, body = ErrorBody, description = "the instance is not running, or the volume is busy"),
        (status = 422, body = ErrorBody, description = "`pre_run_failed`"),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn run_backup(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    b: Result<Json<RunBackupRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let mut audit = Audited::new(&api, &ctx, "backup.run").app(app.clone());
    if let Ok(Json(r)) = &b {
        audit = audit.target(format!("{}/{}:{}", r.proc, r.instance, r.path));
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            check_name("proc", &b.proc)?;
            check_instance(b.instance)?;
            check_path(&b.path)?;
            api.db().apps().get(&app).await?;
            let payload = json!({"proc": b.proc, "instance": b.instance, "path": b.path});
            let a = call_deployd(&api, &app, Method::POST, &[], Some(&payload), RUN_TIMEOUT)
                .await?;
            let detail = json!({"proc": b.proc, "instance": b.instance, "path": b.path});
            match a.status {
                StatusCode::OK => {
                    let backup: BackupView = serde_json::from_str(&a.body).map_err(|e| {
                        dependency(
                            StatusCode::BAD_GATEWAY,
                            "deployd_failed",
                            format!("deployd {} answered a backup console cannot read: {e}", a.replica),
                            "deployd and console may be of different versions; upgrade them together",
                        )
                    })?;
                    let mut detail = detail;
                    detail["backup"] = json!(backup.id);
                    let out = RunBackupOutcome {
                        state: "stored".into(),
                        backup: Some(backup),
                        message: None,
                    };
                    Ok(((StatusCode::OK, Json(out)).into_response(), detail))
                }
                StatusCode::ACCEPTED => {
                    let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
                    let out = RunBackupOutcome {
                        state: "running".into(),
                        backup: None,
                        message: v["message"].as_str().map(str::to_owned),
                    };
                    Ok(((StatusCode::ACCEPTED, Json(out)).into_response(), detail))
                }
                _ => Err(refusal(&api, a).await),
            }
        })
        .await
}

/// Restores a backup into one instance's volume: the proc's desired
/// state is written again with `restore` set, as a new deployment (kind
/// `restore`) that rolls the proc out; before that instance's new
/// container starts, deployd empties the volume and writes the backup
/// into it. Follow it like a deploy (`/deployments/{id}/events`). The
/// proc, instance, volume and backup are checked first; a refusal
/// changes nothing. Maintainers and admins; audited.
#[utoipa::path(post, path = "/api/v1/apps/{app}/backups/restore", tag = "backups",
    params(("app" = String, Path, description = "app name")),
    request_body = RestoreBackupRequest,
    responses((status = 200, body = DeployOutcome, description = "desired state written; the rollout restores"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such proc, instance, volume or backup"),
        (status = 409, body = ErrorBody, description = "another deploy raced this one"),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn restore_backup(
    State(api): State<Api>,
    ctx: Ctx,
    Path(app): Path<String>,
    b: Result<Json<RestoreBackupRequest>, JsonRejection>,
) -> Result<Json<DeployOutcome>, ApiError> {
    let mut audit = Audited::new(&api, &ctx, "backup.restore").app(app.clone());
    if let Ok(Json(r)) = &b {
        audit = audit.target(format!("{}/{}:{}@{}", r.proc, r.instance, r.path, r.backup));
    }
    audit
        .run(async {
            let caller = ctx.caller()?;
            api.may_change(caller, &app).await?;
            let b = body(b)?;
            check_name("proc", &b.proc)?;
            check_instance(b.instance)?;
            check_path(&b.path)?;
            if b.backup.is_empty()
                || b.backup.len() > MAX_BACKUP_ID
                || !b.backup.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(ApiError::invalid(
                    format!(
                        "backup {:?} is not a backup id",
                        b.backup.chars().take(64).collect::<String>()
                    ),
                    format!("give an id as `lain backup list {app}` shows it, e.g. 20240315T030000Z-1a2b3c4d"),
                ));
            }
            let store = api.store()?;
            api.db().apps().get(&app).await?;
            let key = DesiredKey::new(&app, &b.proc).map_err(|e| store_error(e.into()))?;
            let Some(entry) = store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(
                    format!("proc `{}` of app `{app}` is not deployed", b.proc),
                    "deploy the app first (`lain deploy`); `lain ps` lists its procs",
                ));
            };
            let mut p = entry.value;
            if b.instance > p.instances {
                return Err(ApiError::not_found(
                    format!(
                        "{app}/{} has {} instance(s); there is no instance {}",
                        b.proc, p.instances, b.instance
                    ),
                    "give an instance `lain ps` lists (scale the proc up first to restore into a new one)",
                ));
            }
            if !p.volumes.contains(&b.path) {
                return Err(ApiError::not_found(
                    format!(
                        "{} is not a volume of {app}/{}; its volumes are: {}",
                        b.path,
                        b.proc,
                        if p.volumes.is_empty() {
                            "none".to_owned()
                        } else {
                            p.volumes.join(", ")
                        }
                    ),
                    "give one of the proc's volumes, as in lain.yaml",
                ));
            }
            let listed = fetch(&api, &app, Some(&b.proc), Some(b.instance)).await?;
            let Some(found) = listed
                .iter()
                .find(|v| v.id == b.backup && v.path == b.path)
            else {
                return Err(ApiError::not_found(
                    format!(
                        "there is no backup {} of {} of instance {} of {app}/{}",
                        b.backup, b.path, b.instance, b.proc
                    ),
                    format!(
                        "`lain backup list {app} --proc {} --instance {}` lists its backups",
                        b.proc, b.instance
                    ),
                ));
            };
            let request = format!(
                "restore-{}-{:08x}",
                lain_store::unix_millis(),
                rand::random::<u32>()
            );
            p.restore = Some(StoreRestore {
                instance: b.instance,
                path: b.path.clone(),
                backup: b.backup.clone(),
                request: request.clone(),
            });
            // Written as a scale is: one proc, a deployment of its own.
            let release = Some(p.release.clone());
            let out = Write {
                app: &app,
                caller,
                kind: DeploymentKind::Restore,
                from_release: release.clone(),
                to_release: release,
                scope: Scope::One(p.proc.clone()),
                procs: vec![p],
            }
            .run(&api)
            .await?;
            let detail = json!({
                "deployment": out.deployment.id,
                "generation": out.deployment.generation,
                "proc": b.proc,
                "instance": b.instance,
                "path": b.path,
                "backup": b.backup,
                "backup_created_at_ms": found.created_at_ms,
                "request": request,
            });
            Ok((Json(out), detail))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked_before_anything_is_asked() {
        assert!(check_name("proc", "worker.db").is_ok());
        for bad in ["", "a/b", "..", "a b"] {
            let e = check_name("proc", bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert!(check_path("/data").is_ok());
        for bad in ["data", "", "/a\nb"] {
            assert_eq!(
                check_path(bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST
            );
        }
        assert!(check_instance(1).is_ok());
        assert_eq!(
            check_instance(0).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn deployd_errors_are_read() {
        let a = Answer {
            replica: "d1".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: r#"{"error":"not_leader","error_description":"ask the leader"}"#.into(),
        };
        assert_eq!(
            error_of(&a),
            ("not_leader".to_owned(), "ask the leader".to_owned())
        );
        let a = Answer {
            body: "plain text".into(),
            ..a
        };
        assert_eq!(error_of(&a), (String::new(), "plain text".to_owned()));
    }
}
