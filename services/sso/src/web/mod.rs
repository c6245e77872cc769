//! The HTTP side: router, request helpers shared by the endpoints.

mod admin;
mod authorize;
mod device;
mod misc;
mod token;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::domain::{Client, ClientKind};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::AppState;

pub(crate) type Shared = Arc<AppState>;

/// Largest request body accepted (forms and token requests are small).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The routes (without `/healthz`, which `lain_service` adds).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(misc::discovery))
        .route("/jwks", get(misc::jwks))
        .route(
            "/authorize",
            get(authorize::get_authorize).post(authorize::post_authorize),
        )
        .route("/token", post(token::token))
        .route("/userinfo", get(misc::userinfo).post(misc::userinfo))
        .route("/revoke", post(misc::revoke))
        .route("/logout", get(misc::logout).post(misc::logout))
        .route("/device_authorization", post(device::device_authorization))
        .route("/device", get(device::get_device).post(device::post_device))
        .route("/metrics", get(misc::metrics))
        .merge(admin::routes())
        // Also bounds every body to BODY_LIMIT (413 as OAuth JSON).
        .layer(axum::middleware::from_fn(reject_nul))
        .with_state(state)
}

/// Answers 413 with an OAuth JSON error (also before reading a body whose
/// `Content-Length` is already too large).
fn too_large() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        axum::Json(serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("the request body is over {BODY_LIMIT} bytes"),
        })),
    )
        .into_response()
}

/// Refuses requests carrying a NUL character (raw, `%00` or JSON
/// `\u0000`) in the query or body: PostgreSQL cannot store one, and no
/// field needs it. Bodies over [`BODY_LIMIT`] get 413.
async fn reject_nul(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let has_nul = |b: &[u8]| {
        b.contains(&0)
            || b.windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"))
            || b.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
    };
    let bad = || {
        OAuthError::InvalidRequest("the request contains a NUL character; remove it".into())
            .into_response()
    };
    if has_nul(req.uri().to_string().as_bytes()) {
        return bad();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    // Reads at most BODY_LIMIT bytes, whatever the body claims.
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if has_nul(&bytes) {
        return bad();
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Form or query parameters. A parameter given twice is an error (RFC
/// 6749 §3.1), and an empty value counts as absent.
#[derive(Default)]
pub(crate) struct Params(HashMap<String, String>);

/// Parameters whose values are secrets (or let someone act as the user):
/// never printed.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "current_password",
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "device_code",
    "user_code",
    "token",
    "id_token_hint",
    "csrf",
    "assertion",
    "client_assertion",
];

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        let mut m = f.debug_map();
        for k in keys {
            if SECRET_PARAMS.contains(&k.as_str()) {
                m.entry(k, &"***");
            } else {
                m.entry(k, &self.0[k]);
            }
        }
        m.finish()
    }
}

impl Params {
    pub fn parse(s: &[u8]) -> Result<Self, OAuthError> {
        let mut m = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(s) {
            if m.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter `{k}` is given more than once; give it once"
                )));
            }
        }
        Ok(Self(m))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn require(&self, k: &str) -> Result<&str, OAuthError> {
        self.get(k)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("missing parameter `{k}`")))
    }
}

/// The client's address: the TCP peer, or the last `X-Forwarded-For`
/// entry when `trust_forwarded_for` is set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<Shared> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        if st.cfg.trust_forwarded_for {
            let fwd = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok());
            if fwd.is_some() {
                return Ok(ClientAddr(fwd));
            }
        }
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A cookie's value from the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value.
pub(crate) fn set_cookie(st: &AppState, name: &str, value: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if st.secure_cookies { "; Secure" } else { "" }
    )
}

/// Authenticates the client of a token, revocation or device request:
/// HTTP Basic or `client_id`/`client_secret` in the body for confidential
/// clients, `client_id` alone for public ones.
pub(crate) async fn authenticate_client(
    st: &AppState,
    headers: &HeaderMap,
    p: &Params,
) -> Result<Client, OAuthError> {
    let mut basic: Option<(String, String)> = None;
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(b) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        {
            let dec = STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let (id, secret) = dec
                .split_once(':')
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let unesc = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            };
            basic = Some((unesc(id), unesc(secret)));
        }
    }
    let body_secret = p.get("client_secret").map(Secret::new);
    let (id, secret) = match basic {
        Some((id, s)) => {
            // An empty Basic password is how some libraries send a public
            // client's id.
            let s = (!s.is_empty()).then(|| Secret::new(s));
            if body_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method: Basic or client_secret, not both".into(),
                ));
            }
            if p.get("client_id").is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the Basic credentials".into(),
                ));
            }
            (id, s)
        }
        None => (
            p.get("client_id")
                .ok_or_else(|| OAuthError::InvalidClient("no client credentials: send client_id (and client_secret for confidential clients)".into()))?
                .to_owned(),
            body_secret,
        ),
    };
    let unknown = || {
        OAuthError::InvalidClient(
            "client authentication failed: unknown client or wrong secret".into(),
        )
    };
    let client = st.db.get_client(&id).await?.ok_or_else(unknown)?;
    match (client.kind, secret) {
        (ClientKind::Confidential, Some(s)) if client.secret_matches(&s) => Ok(client),
        (ClientKind::Confidential, _) => Err(unknown()),
        (ClientKind::Public, None) => Ok(client),
        (ClientKind::Public, Some(_)) => Err(OAuthError::InvalidClient(
            "this client is public and has no secret; send client_id only".into(),
        )),
    }
}

/// Scopes sso knows. Other scopes are refused with `invalid_scope`.
pub(crate) const SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];

/// Checks and normalises a scope string (space separated, deduplicated).
pub(crate) fn check_scope(scope: Option<&str>) -> Result<String, OAuthError> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&s) {
            return Err(OAuthError::InvalidScope(format!(
                "unknown scope `{s}`; supported: {}",
                SCOPES.join(" ")
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::Params;

    #[test]
    fn params_debug_redacts_secrets() {
        let p = Params::parse(
            b"grant_type=password&username=alice&password=hunter22&client_secret=s3cr3t&code=abc123",
        )
        .unwrap();
        let d = format!("{p:?}");
        for secret in ["hunter22", "s3cr3t", "abc123"] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("alice") && d.contains("password"), "{d}");
    }
}
