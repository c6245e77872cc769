//! Discovery, JWKS, userinfo, revocation, end session, metrics.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::authorize::{csrf_ok, csrf_token, redirect_with, SESSION_COOKIE};
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
        "prompt_values_supported": ["none", "login", "select_account"],
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
        .verify_access(token, &st.issuer)
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
    let scopes: Vec<&str> = claims["scope"].as_str().unwrap_or("").split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(OAuthError::InsufficientScope(
            "/userinfo needs an access token with the `openid` scope".into(),
        ));
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    let user = st
        .db
        .get_user(sub)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::InvalidToken("the user is disabled or removed".into()))?;
    // Profile claims with the `profile` scope, the address with `email`.
    let mut out = json!({
        "sub": user.name,
        "groups": st.db.user_groups(&user.name).await?,
    });
    if scopes.contains(&"profile") {
        out["preferred_username"] = json!(user.name);
        if !user.full_name.is_empty() {
            out["name"] = json!(user.full_name);
        }
    }
    if scopes.contains(&"email") && !user.email.is_empty() {
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

/// The claims of an `id_token_hint`: an ID token of this sso (not an
/// access token), expired or not.
fn id_token_hint(st: &AppState, hint: &str) -> Option<Value> {
    use base64::Engine;
    let typ = hint
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|h| h["typ"].as_str().map(str::to_ascii_lowercase));
    if matches!(typ.as_deref(), Some("at+jwt" | "application/at+jwt")) {
        return None;
    }
    match st.keys.verify(hint, &st.issuer) {
        Ok(c) => Some(c),
        Err(JwtError::Expired) => st.keys.verify_ignoring_expiry(hint, &st.issuer).ok(),
        Err(_) => None,
    }
}

/// OIDC RP-initiated logout. A GET (or a POST from elsewhere) shows a
/// confirmation page whose form (CSRF protected) ends the browser session;
/// then sso returns to a registered `post_logout_redirect_uri` or shows a
/// page. A valid `id_token_hint` for the signed-in user skips the
/// confirmation, and so does having no session (nothing to end).
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
    let session_id = cookie(&headers, SESSION_COOKIE);
    let session = match &session_id {
        Some(id) => st.db.session(id).await.ok().flatten(),
        None => None,
    };
    let hint = p.get("id_token_hint").and_then(|h| id_token_hint(&st, h));
    let client_id = match &hint {
        Some(c) => c["aud"].as_str().map(str::to_owned),
        None => p.get("client_id").map(str::to_owned),
    };
    let client = match &client_id {
        Some(id) => st.db.get_client(id).await.ok().flatten(),
        None => None,
    };
    let target = p.get("post_logout_redirect_uri");
    let registered = match (target, &client) {
        (Some(u), Some(c)) => c.post_logout_redirect_uris.iter().any(|r| r == u),
        _ => false,
    };
    let confirmed =
        method == Method::POST && p.get("confirm") == Some("yes") && csrf_ok(&st, &headers, &p);
    let hint_for_session = match (&hint, &session) {
        (Some(h), Some((user, _))) => h["sub"].as_str() == Some(user.as_str()),
        _ => false,
    };
    if !confirmed && session.is_some() && !hint_for_session {
        let (csrf, set) = csrf_token(&st, &headers);
        let mut fields: Vec<(&str, &str)> = vec![("csrf", &csrf), ("confirm", "yes")];
        if let Some(c) = &client_id {
            fields.push(("client_id", c));
        }
        for k in ["post_logout_redirect_uri", "state"] {
            if let Some(v) = p.get(k) {
                fields.push((k, v));
            }
        }
        let who = session.as_ref().map(|s| s.0.as_str()).unwrap_or_default();
        let body = format!(
            "<p>Sign out of sso as <b>{}</b>? Every application that relies on this sign-in will ask you to sign in again.</p>\
             <form method=\"post\" action=\"/logout\">{}<button type=\"submit\">Sign out</button></form>",
            html::esc(who),
            html::hidden(&fields),
        );
        let targets: Vec<&str> = target.filter(|_| registered).into_iter().collect();
        let mut r = html::page_with_targets(StatusCode::OK, "Sign out", &body, &targets);
        if let Some(c) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        return r;
    }
    if let Some(id) = &session_id {
        if let Err(e) = st.db.delete_session(id).await {
            tracing::error!(error = %e, "cannot delete session");
            return html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "sso is unavailable",
                "sso cannot write its database; retry in a moment.",
            );
        }
    }
    let clear = set_cookie(&st, SESSION_COOKIE, "", 0);
    let mut resp = match target {
        None => html::message(StatusCode::OK, "Signed out", "You are signed out of sso."),
        Some(uri) if registered => {
            let mut pairs = Vec::new();
            if let Some(s) = p.get("state") {
                pairs.push(("state", s));
            }
            redirect_with(uri, &pairs)
        }
        Some(_) => html::message(
            StatusCode::BAD_REQUEST,
            "Signed out",
            "You are signed out, but the application's post_logout_redirect_uri is not registered for it (or no valid id_token_hint or client_id was given), so sso does not send you back.",
        ),
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
