//! Discovery, JWKS, userinfo, revocation, end session, metrics.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::authorize::{redirect_with, SESSION_COOKIE};
use super::{authenticate_client, cookie, set_cookie, Params, Shared, SCOPES};
use crate::error::OAuthError;
use crate::html;
use crate::keys::JwtError;
use crate::metrics::Metrics;
use crate::AppState;

pub(super) async fn discovery(State(st): State<Shared>) -> Response {
    let i = &st.issuer;
    let mut r = Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "revocation_endpoint": format!("{i}/revoke"),
        "end_session_endpoint": format!("{i}/logout"),
        "device_authorization_endpoint": format!("{i}/device_authorization"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": crate::domain::GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "at_hash", "preferred_username", "name", "email", "groups"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

pub(super) async fn jwks(State(st): State<Shared>) -> Result<Response, OAuthError> {
    let v = st.keys.jwks()?;
    let mut r = Json((*v).clone()).into_response();
    // Short cache: a rotated-in key must reach verifiers soon.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(r)
}

/// Verifies an access token and its grant; returns its claims.
pub(crate) async fn check_access_token(st: &AppState, token: &str) -> Result<Value, OAuthError> {
    let claims = st
        .keys
        .verify(token, &st.issuer)
        .map_err(|e| OAuthError::InvalidToken(format!("{e}; get a new token")))?;
    let Some(sid) = claims["sid"].as_str() else {
        return Err(OAuthError::InvalidToken(
            "this token has no user (client credentials)".into(),
        ));
    };
    match st.db.get_grant(sid).await? {
        Some(g) if !g.revoked => Ok(claims),
        _ => Err(OAuthError::InvalidToken(
            "the token was revoked; log in again".into(),
        )),
    }
}

pub(super) async fn userinfo(
    State(st): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            OAuthError::InvalidToken(
                "send the access token as `Authorization: Bearer TOKEN`".into(),
            )
        })?;
    let claims = check_access_token(&st, token.trim()).await?;
    let sub = claims["sub"].as_str().unwrap_or_default();
    let user = st
        .db
        .get_user(sub)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::InvalidToken("the user is disabled or removed".into()))?;
    let mut out = json!({
        "sub": user.name,
        "preferred_username": user.name,
        "groups": st.db.user_groups(&user.name).await?,
    });
    if !user.full_name.is_empty() {
        out["name"] = json!(user.full_name);
    }
    if !user.email.is_empty() {
        out["email"] = json!(user.email);
    }
    let mut r = Json(out).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// RFC 7009. Revoking a refresh token or an access token revokes the
/// whole grant. Unknown tokens are not an error.
pub(super) async fn revoke(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let p = Params::parse(&body)?;
    let client = authenticate_client(&st, &headers, &p).await?;
    let token = p.require("token")?;
    let grant = match st.db.refresh_grant(token).await? {
        Some(g) => Some(g),
        None => match st.keys.verify(token, &st.issuer) {
            Ok(c) => match c["sid"].as_str() {
                Some(sid) => st.db.get_grant(sid).await?,
                None => None,
            },
            Err(_) => None,
        },
    };
    if let Some(g) = grant {
        if g.client_id == client.client_id {
            st.db.revoke_grant(&g.id).await?;
            Metrics::inc(&st.metrics.revocations);
            tracing::info!(client = %client.client_id, user = %g.user_name, "grant revoked");
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// OIDC RP-initiated logout: ends the browser session, then returns to a
/// registered `post_logout_redirect_uri` or shows a page.
pub(super) async fn logout(
    State(st): State<Shared>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let src = if method == Method::POST {
        body.to_vec()
    } else {
        q.unwrap_or_default().into_bytes()
    };
    let p = match Params::parse(&src) {
        Ok(p) => p,
        Err(e) => {
            return html::message(
                StatusCode::BAD_REQUEST,
                "Invalid sign-out request",
                &e.to_string(),
            )
        }
    };
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = st.db.delete_session(&id).await {
            tracing::error!(error = %e, "cannot delete session");
            return html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "sso is unavailable",
                "sso cannot write its database; retry in a moment.",
            );
        }
    }
    let clear = set_cookie(&st, SESSION_COOKIE, "", 0);
    let mut resp = match p.get("post_logout_redirect_uri") {
        None => html::message(StatusCode::OK, "Signed out", "You are signed out of sso."),
        Some(uri) => {
            let client_id = match p.get("id_token_hint") {
                Some(h) => match st.keys.verify(h, &st.issuer) {
                    Ok(c) => c["aud"].as_str().map(str::to_owned),
                    Err(JwtError::Expired) => st
                        .keys
                        .verify_ignoring_expiry(h, &st.issuer)
                        .ok()
                        .and_then(|c| c["aud"].as_str().map(str::to_owned)),
                    Err(_) => None,
                },
                None => p.get("client_id").map(str::to_owned),
            };
            let client = match &client_id {
                Some(id) => st.db.get_client(id).await.ok().flatten(),
                None => None,
            };
            match client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                    let mut pairs = Vec::new();
                    if let Some(s) = p.get("state") {
                        pairs.push(("state", s));
                    }
                    redirect_with(uri, &pairs)
                }
                _ => html::message(
                    StatusCode::BAD_REQUEST,
                    "Signed out",
                    "You are signed out, but the application's post_logout_redirect_uri is not registered for it (or no valid id_token_hint or client_id was given), so sso does not send you back.",
                ),
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(super) async fn metrics(State(st): State<Shared>) -> Response {
    let keys = st
        .keys
        .jwks()
        .map(|j| j["keys"].as_array().map_or(0, Vec::len) as i64)
        .unwrap_or(0);
    let body = st
        .metrics
        .render(&[("sso_published_signing_keys", "Keys in the JWKS.", keys)]);
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
