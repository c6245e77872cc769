//! `/token`: authorization_code, refresh_token, client_credentials and the
//! device grant; and the token minting they share.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{authenticate_client, check_scope, Params, Shared};
use crate::domain::{Client, ClientKind, DEVICE_GRANT};
use crate::error::OAuthError;
use crate::grants::{Grant, RefreshUse};
use crate::metrics::Metrics;
use crate::secret::{pkce_s256_matches, random_id};
use crate::{now, AppState};

pub(super) async fn token(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&st, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            Metrics::inc(&st.metrics.token_errors);
            e.into_response()
        }
    }
}

async fn token_inner(
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let p = Params::parse(body)?;
    let grant_type = p.require("grant_type")?.to_owned();
    if !matches!(
        grant_type.as_str(),
        "authorization_code" | "refresh_token" | "client_credentials" | DEVICE_GRANT
    ) {
        return Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type `{grant_type}` is not supported; use authorization_code, refresh_token, client_credentials or {DEVICE_GRANT}"
        )));
    }
    let client = authenticate_client(st, headers, &p).await?;
    if !client.allows(&grant_type) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "client `{}` may not use grant_type `{grant_type}`; an operator can allow it with `sso client add --grant`",
            client.client_id
        )));
    }
    match grant_type.as_str() {
        "authorization_code" => authorization_code(st, &client, &p).await,
        "refresh_token" => refresh(st, &client, &p).await,
        "client_credentials" => client_credentials(st, &client, &p).await,
        _ => device_code(st, &client, &p).await,
    }
}

async fn authorization_code(
    st: &AppState,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    let code = p.require("code")?;
    let redirect_uri = p.get("redirect_uri");
    let bad = || {
        OAuthError::InvalidGrant(
            "the authorization code is invalid, expired or already used; start the login again"
                .into(),
        )
    };
    let (c, used) = st
        .db
        .find_code(code, &client.client_id)
        .await?
        .ok_or_else(bad)?;
    if used {
        return Err(code_reused(st, client, &c.grant).await);
    }
    // Every check before the code is marked used: a bad request changes
    // nothing, and PKCE verifiers cannot be guessed.
    if c.expires_at <= now() || c.grant.revoked {
        return Err(bad());
    }
    // RFC 6749 §4.1.3: required, and identical, when /authorize had one.
    match (c.redirect_uri.as_str(), redirect_uri) {
        ("", None) => {}
        ("", Some(u)) if client.redirect_uris.iter().any(|r| r == u) => {}
        ("", Some(_)) => {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri is not registered for this client".into(),
            ))
        }
        (_, None) => {
            return Err(OAuthError::InvalidRequest(
                "missing parameter `redirect_uri`: /authorize had one; send the same".into(),
            ))
        }
        (stored, Some(u)) if stored == u => {}
        _ => {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri differs from the one given to /authorize".into(),
            ))
        }
    }
    match (&c.code_challenge, p.get("code_verifier")) {
        (Some(ch), Some(v)) => {
            if !valid_verifier(v) {
                return Err(OAuthError::InvalidRequest(
                    "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]".into(),
                ));
            }
            if !pkce_s256_matches(v, ch) {
                return Err(OAuthError::InvalidGrant(
                    "code_verifier does not match the code_challenge".into(),
                ));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::InvalidGrant(
                "missing code_verifier (PKCE)".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(OAuthError::InvalidGrant(
                "code_verifier given but /authorize had no code_challenge".into(),
            ))
        }
        (None, None) => {}
    }
    if !st.db.mark_code_used(code).await? {
        return Err(code_reused(st, client, &c.grant).await);
    }
    Metrics::inc(&st.metrics.tokens_authorization_code);
    issue(
        st,
        client,
        Some(&c.grant),
        &c.grant.scope,
        c.nonce.as_deref(),
    )
    .await
}

/// RFC 6749 §4.1.2: a replayed code revokes the tokens it gave.
async fn code_reused(st: &AppState, client: &Client, grant: &Grant) -> OAuthError {
    if let Err(e) = st.db.revoke_grant(&grant.id).await {
        return e.into();
    }
    Metrics::inc(&st.metrics.refresh_reuse);
    tracing::warn!(client = %client.client_id, user = %grant.user_name, "authorization code reused; its grant is revoked");
    OAuthError::InvalidGrant(
        "the authorization code was already used; the tokens it gave are revoked".into(),
    )
}

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn refresh(st: &AppState, client: &Client, p: &Params) -> Result<Response, OAuthError> {
    let token = p.require("refresh_token")?;
    let bad = || {
        OAuthError::InvalidGrant(
            "the refresh token is invalid, expired or revoked; log in again".into(),
        )
    };
    // Check the client and the scope before using the token, so neither
    // another client nor a bad request can burn it.
    let known = match st.db.refresh_grant(token).await? {
        Some(g) if g.client_id == client.client_id => g,
        _ => return Err(bad()),
    };
    let scope = match p.get("scope") {
        None => known.scope.clone(),
        Some(s) => {
            let s = check_scope(Some(s))?;
            let granted: Vec<&str> = known.scope.split(' ').collect();
            if let Some(extra) = s.split(' ').find(|x| !granted.contains(x)) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope `{extra}` was not granted to this refresh token"
                )));
            }
            s
        }
    };
    let grant = match st.db.use_refresh(token).await? {
        RefreshUse::Invalid => return Err(bad()),
        RefreshUse::Reused(g) => {
            Metrics::inc(&st.metrics.refresh_reuse);
            tracing::warn!(client = %client.client_id, user = %g.user_name, "refresh token reused; its grant is revoked");
            return Err(OAuthError::InvalidGrant(
                "the refresh token was already used; every token of this login is revoked, log in again".into(),
            ));
        }
        RefreshUse::Ok(g) => g,
    };
    Metrics::inc(&st.metrics.tokens_refresh);
    issue(st, client, Some(&grant), &scope, None).await
}

async fn client_credentials(
    st: &AppState,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::UnauthorizedClient(
            "client_credentials needs a confidential client".into(),
        ));
    }
    let scope = check_scope(p.get("scope"))?;
    if scope
        .split(' ')
        .any(|s| s == "openid" || s == "offline_access")
    {
        return Err(OAuthError::InvalidScope(
            "client_credentials tokens have no user: drop `openid` and `offline_access`".into(),
        ));
    }
    Metrics::inc(&st.metrics.tokens_client_credentials);
    issue(st, client, None, &scope, None).await
}

async fn device_code(st: &AppState, client: &Client, p: &Params) -> Result<Response, OAuthError> {
    let code = p.require("device_code")?;
    let bad =
        || OAuthError::InvalidGrant("unknown device_code; start the device login again".into());
    let d = st.db.device_by_code(code).await?.ok_or_else(bad)?;
    if d.client_id != client.client_id {
        return Err(bad());
    }
    let t = now();
    if d.expires_at <= t {
        return Err(OAuthError::ExpiredToken(
            "the device code has expired; start the device login again".into(),
        ));
    }
    match d.status.as_str() {
        "pending" => {
            if d.last_poll_at.is_some_and(|l| t - l < d.interval_secs) {
                st.db
                    .device_polled(&d.device_code_hash, d.interval_secs + 5)
                    .await?;
                Err(OAuthError::SlowDown)
            } else {
                st.db
                    .device_polled(&d.device_code_hash, d.interval_secs)
                    .await?;
                Err(OAuthError::AuthorizationPending)
            }
        }
        "denied" => Err(OAuthError::AccessDenied(
            "the user denied the device login".into(),
        )),
        "approved" => {
            if !st.db.device_consume(&d.device_code_hash).await? {
                return Err(bad());
            }
            let user = d.user_name.clone().ok_or_else(bad)?;
            let grant = st
                .db
                .create_grant(
                    &client.client_id,
                    &user,
                    &d.scope,
                    d.auth_time.unwrap_or(t),
                    t + st.grant_min_secs(),
                )
                .await?;
            Metrics::inc(&st.metrics.tokens_device);
            issue(st, client, Some(&grant), &d.scope, None).await
        }
        _ => Err(OAuthError::InvalidGrant(
            "the device code was already used; start the device login again".into(),
        )),
    }
}

/// Mints the token response: an access token always, an ID token for the
/// `openid` scope, a refresh token when the client may refresh.
pub(crate) async fn issue(
    st: &AppState,
    client: &Client,
    grant: Option<&Grant>,
    scope: &str,
    nonce: Option<&str>,
) -> Result<Response, OAuthError> {
    let t = now();
    let tc = &st.cfg.tokens;
    let mut user_claims = serde_json::Map::new();
    let (sub, groups) = match grant {
        Some(g) => {
            let user = st.db.get_user(&g.user_name).await?;
            let Some(user) = user.filter(|u| !u.disabled) else {
                st.db.revoke_grant(&g.id).await?;
                return Err(OAuthError::InvalidGrant(
                    "the user is disabled or removed".into(),
                ));
            };
            let groups = st.db.user_groups(&user.name).await?;
            user_claims.insert("preferred_username".into(), json!(user.name));
            if !user.full_name.is_empty() {
                user_claims.insert("name".into(), json!(user.full_name));
            }
            if !user.email.is_empty() {
                user_claims.insert("email".into(), json!(user.email));
            }
            (user.name, groups)
        }
        // Never a user name: `:` is not allowed in those.
        None => (format!("client:{}", client.client_id), Vec::new()),
    };
    let mut at = json!({
        "iss": st.issuer,
        "sub": sub,
        "aud": client.audience,
        "client_id": client.client_id,
        "iat": t,
        "nbf": t,
        "exp": t + tc.access_token_secs as i64,
        "jti": random_id(),
        "scope": scope,
        "groups": groups,
    });
    if let Some(g) = grant {
        at["sid"] = json!(g.id);
        at["auth_time"] = json!(g.auth_time);
        for (k, v) in &user_claims {
            at[k] = v.clone();
        }
    }
    let access_token = st.keys.sign("at+jwt", &at)?;
    let mut resp = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": tc.access_token_secs,
        "scope": scope,
    });
    if let Some(g) = grant {
        let scopes: Vec<&str> = scope.split(' ').collect();
        if scopes.contains(&"openid") {
            let mut id = json!({
                "iss": st.issuer,
                "sub": sub,
                "aud": client.client_id,
                "azp": client.client_id,
                "iat": t,
                "exp": t + tc.id_token_secs as i64,
                "auth_time": g.auth_time,
                "sid": g.id,
                "groups": groups,
                "at_hash": at_hash(&access_token),
            });
            if let Some(n) = nonce {
                id["nonce"] = json!(n);
            }
            for (k, v) in &user_claims {
                id[k] = v.clone();
            }
            resp["id_token"] = Value::String(st.keys.sign("JWT", &id)?);
        }
        if client.allows("refresh_token") {
            let rt = st
                .db
                .create_refresh(&g.id, t + tc.refresh_token_secs as i64)
                .await?;
            resp["refresh_token"] = Value::String(rt);
        }
    }
    let mut r = Json(resp).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// OIDC `at_hash`: the left half of SHA-256 of the access token.
fn at_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}
