//! The admin API under `/api/v1/`: users, groups, memberships, clients.
//! Callers send an sso access token whose audience includes `sso`, for a
//! user in the admin group; a group's own admins may also manage its
//! members (as in LAIN). Same operations as the `sso` subcommands.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::authorize::{check_login, Login};
use super::Shared;
use crate::domain::{ClientKind, NewClient, Role};
use crate::error::AdminError;
use crate::secret::Secret;
use crate::AppState;

/// The audience an access token needs for the admin API.
pub const ADMIN_AUDIENCE: &str = "sso";

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}/password", put(set_password))
        .route("/api/v1/users/{name}/disable", post(disable))
        .route("/api/v1/users/{name}/enable", post(enable))
        .route("/api/v1/groups", get(list_groups).post(add_group))
        .route("/api/v1/groups/{name}", axum::routing::delete(remove_group))
        .route(
            "/api/v1/groups/{name}/members/{user}",
            put(set_member).delete(remove_member),
        )
        .route("/api/v1/clients", get(list_clients).post(add_client))
        .route("/api/v1/clients/{id}", axum::routing::delete(remove_client))
}

/// An admin API failure: a status and a JSON body saying what to do.
#[derive(Debug)]
pub(super) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(error = %self.1, "admin API request failed");
        }
        let msg = if self.0.is_server_error() {
            "sso hit an internal error; retry, and tell the operator if it persists".to_owned()
        } else {
            self.1
        };
        let mut r = (self.0, Json(json!({ "error": msg }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        r
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let status = match &e {
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<crate::error::StoreError> for ApiError {
    fn from(e: crate::error::StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

/// The calling user, after checking the token.
async fn caller(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let unauth = |m: &str| ApiError(StatusCode::UNAUTHORIZED, m.to_owned());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauth("send an sso access token as `Authorization: Bearer TOKEN`"))?;
    let claims = super::misc::check_access_token(st, token.trim())
        .await
        .map_err(|e| unauth(&e.description()))?;
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == ADMIN_AUDIENCE,
        serde_json::Value::Array(v) => v.iter().any(|a| a == ADMIN_AUDIENCE),
        _ => false,
    };
    if !aud_ok {
        return Err(unauth(
            "the token's audience is not `sso`; use a client registered with --audience sso",
        ));
    }
    let user = claims["sub"].as_str().unwrap_or_default().to_owned();
    match st.db.get_user(&user).await? {
        Some(u) if !u.disabled => Ok(user),
        _ => Err(unauth("the user is disabled or removed")),
    }
}

async fn is_admin(st: &AppState, user: &str) -> Result<bool, ApiError> {
    Ok(st.db.user_groups(user).await?.contains(&st.cfg.admin_group))
}

async fn require_admin(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let user = caller(st, headers).await?;
    if is_admin(st, &user).await? {
        Ok(user)
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "only members of the `{}` group may do this",
                st.cfg.admin_group
            ),
        ))
    }
}

fn created(v: serde_json::Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Parses a JSON body, answering 400 with the serde message.
fn body<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn list_users(State(st): State<Shared>, h: HeaderMap) -> ApiResult {
    require_admin(&st, &h).await?;
    Ok(Json(st.db.list_users().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    full_name: String,
    password: String,
}

async fn add_user(State(st): State<Shared>, h: HeaderMap, b: axum::body::Bytes) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    let u: NewUser = body(&b)?;
    let user = st
        .db
        .add_user(
            &st.cfg.password_hash,
            &u.name,
            &u.email,
            &u.full_name,
            &Secret::new(u.password),
        )
        .await?;
    tracing::info!(by, user = %user.name, "user added");
    Ok(created(serde_json::to_value(user).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Password {
    password: String,
    /// Required when users change their own password, so a stolen access
    /// token cannot take the account over.
    #[serde(default)]
    current_password: Option<String>,
}

async fn set_password(
    State(st): State<Shared>,
    addr: super::ClientAddr,
    h: HeaderMap,
    Path(name): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let by = caller(&st, &h).await?;
    if by != name && !is_admin(&st, &by).await? {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "you may change only your own password".into(),
        ));
    }
    let p: Password = body(&b)?;
    if by == name {
        let Some(current) = p.current_password.filter(|c| !c.is_empty()) else {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "send your current password as `current_password` to change your own password"
                    .into(),
            ));
        };
        match check_login(&st, addr, &name, Secret::new(current)).await? {
            Login::Ok => {}
            Login::Failed => {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "current_password is wrong".into(),
                ))
            }
            Login::Locked(_) | Login::Busy => {
                return Err(ApiError(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many password attempts; try again later".into(),
                ))
            }
        }
    }
    st.db
        .set_password(&st.cfg.password_hash, &name, &Secret::new(p.password))
        .await?;
    tracing::info!(by, user = %name, "password changed");
    Ok(done())
}

async fn disable(State(st): State<Shared>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    if is_admin(&st, &name).await? {
        let mut others = false;
        for u in st.db.list_users().await? {
            if u.name != name && !u.disabled && is_admin(&st, &u.name).await? {
                others = true;
                break;
            }
        }
        if !others {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "{name:?} is the last enabled member of `{}`; make someone else an admin first",
                    st.cfg.admin_group
                ),
            ));
        }
    }
    st.db.set_disabled(&name, true).await?;
    tracing::info!(by, user = %name, "user disabled");
    Ok(done())
}

async fn enable(State(st): State<Shared>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    st.db.set_disabled(&name, false).await?;
    tracing::info!(by, user = %name, "user enabled");
    Ok(done())
}

async fn list_groups(State(st): State<Shared>, h: HeaderMap) -> ApiResult {
    caller(&st, &h).await?;
    Ok(Json(st.db.list_groups().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parent: Option<String>,
}

async fn add_group(State(st): State<Shared>, h: HeaderMap, b: axum::body::Bytes) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    let g: NewGroup = body(&b)?;
    st.db
        .add_group(&g.name, &g.description, g.parent.as_deref())
        .await?;
    tracing::info!(by, group = %g.name, "group added");
    Ok(created(json!({ "name": g.name })))
}

async fn remove_group(
    State(st): State<Shared>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    st.db.remove_group(&name).await?;
    tracing::info!(by, group = %name, "group removed");
    Ok(done())
}

/// Admins of the cluster, and admins of the group itself.
async fn require_group_admin(
    st: &AppState,
    h: &HeaderMap,
    group: &str,
) -> Result<String, ApiError> {
    let by = caller(st, h).await?;
    let own = st
        .db
        .list_groups()
        .await?
        .into_iter()
        .find(|g| g.name == group)
        .is_some_and(|g| {
            g.members
                .iter()
                .any(|m| m.user == by && m.role == Role::Admin)
        });
    if own || is_admin(st, &by).await? {
        Ok(by)
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "only admins of group `{group}` or of `{}` may change its members",
                st.cfg.admin_group
            ),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Membership {
    #[serde(default = "normal")]
    role: Role,
}

fn normal() -> Role {
    Role::Normal
}

async fn set_member(
    State(st): State<Shared>,
    h: HeaderMap,
    Path((group, user)): Path<(String, String)>,
    b: axum::body::Bytes,
) -> ApiResult {
    let by = require_group_admin(&st, &h, &group).await?;
    let m: Membership = if b.is_empty() {
        Membership { role: Role::Normal }
    } else {
        body(&b)?
    };
    st.db.set_member(&group, &user, m.role).await?;
    tracing::info!(by, group, user, role = m.role.as_str(), "member set");
    Ok(done())
}

async fn remove_member(
    State(st): State<Shared>,
    h: HeaderMap,
    Path((group, user)): Path<(String, String)>,
) -> ApiResult {
    let by = require_group_admin(&st, &h, &group).await?;
    st.db.remove_member(&group, &user).await?;
    tracing::info!(by, group, user, "member removed");
    Ok(done())
}

async fn list_clients(State(st): State<Shared>, h: HeaderMap) -> ApiResult {
    require_admin(&st, &h).await?;
    Ok(Json(st.db.list_clients().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClientBody {
    client_id: String,
    kind: ClientKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    audience: Option<String>,
}

async fn add_client(State(st): State<Shared>, h: HeaderMap, b: axum::body::Bytes) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    let c: NewClientBody = body(&b)?;
    let secret = st
        .db
        .add_client(&NewClient {
            name: c.name.unwrap_or_else(|| c.client_id.clone()),
            client_id: c.client_id.clone(),
            kind: c.kind,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            grant_types: c.grant_types,
            audience: c.audience,
        })
        .await?;
    tracing::info!(by, client = %c.client_id, "client added");
    let mut r = created(
        json!({ "client_id": c.client_id, "client_secret": secret.as_ref().map(Secret::expose) }),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

async fn remove_client(
    State(st): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let by = require_admin(&st, &h).await?;
    st.db.remove_client(&id).await?;
    tracing::info!(by, client = %id, "client removed");
    Ok(done())
}
