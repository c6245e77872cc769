//! Signing in to the web console through sso, and the session after.
//!
//! * `GET /ui/login`: a sealed, short-lived login cookie holds `state`,
//!   `nonce`, the PKCE verifier and where to return; the browser goes to
//!   sso's authorization endpoint (code flow, S256).
//! * `GET /ui/callback`: `state` (constant time) and `iss` (RFC 9207) are
//!   checked, the code is redeemed with the client's secret and the
//!   verifier, the access token is verified as the API verifies bearer
//!   tokens and the ID token (signature, audience, `nonce`, `sub`). A
//!   session row stores the tokens sealed with the cluster secrets key;
//!   the cookie holds 256 random bits, the row only their SHA-256.
//! * Every request re-verifies the session's access token and takes the
//!   caller from it, like the API does, refreshing it shortly before it
//!   expires (one request at a time: sso's refresh tokens are single-use).
//! * `POST /ui/logout`: the row goes, the refresh token is revoked at sso,
//!   and the browser is sent to sso's end-session endpoint.
//! * Every POST carries a CSRF token derived from the session cookie, and
//!   its `Origin` (or `Referer`) must be console's public URL.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use lain_auth::{Verifier, VerifierConfig};
use lain_store::secret::{open, seal};
use lain_store::SealedSecret;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::history::History;
use super::view::{self, Layout, Message, Page, WebError};
use crate::api::{Api, Caller, Ctx};
use crate::config::{Config, WebConfig};
use crate::db::{now_ms, WebSession};
use crate::error::ApiError;

/// A login must finish within this time.
const LOGIN_SECS: i64 = 600;
/// Refresh the access token when it has less than this left.
const REFRESH_BEFORE_SECS: i64 = 60;
/// How long one request holds the claim to refresh.
const REFRESH_CLAIM_SECS: i64 = 15;
/// `last_seen_at` is written at most this often.
const TOUCH_EVERY_SECS: i64 = 60;

/// The web console's settings and its sso client.
pub struct Web {
    client_id: String,
    client_secret: Zeroizing<String>,
    /// console's public URL, without a trailing `/`.
    public_url: String,
    /// `scheme://host[:port]` of `public_url`: what `Origin` must be.
    origin: String,
    /// Cookies get `Secure` and the `__Host-` prefix (public_url is https).
    secure: bool,
    session_secs: i64,
    idle_secs: i64,
    issuer: String,
    /// `scheme://host[:port]` of sso (sign-out posts a form that ends there).
    sso_origin: String,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
    /// Checks ID tokens: sso's keys, audience = this client, `typ` JWT.
    id_tokens: Verifier,
    pub(crate) history: Arc<History>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("client_id", &self.client_id)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// sso's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
}

/// What sso's token endpoint answers.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// What a session row holds, sealed.
#[derive(Serialize, Deserialize)]
struct Tokens {
    access: String,
    #[serde(default)]
    refresh: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

impl Drop for Tokens {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.access.zeroize();
        if let Some(r) = &mut self.refresh {
            r.zeroize();
        }
    }
}

/// What the login cookie holds, sealed.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    exp: i64,
}

impl Web {
    /// Reads the client secret and sets the client up (nothing is fetched
    /// from sso yet).
    pub fn load(config: &Config, w: &WebConfig) -> anyhow::Result<Web> {
        let client_secret = crate::deployd::load_secret(&w.client_secret_file)?;
        let public_url = config.public_url();
        let origin = origin_of(&public_url);
        let id_tokens = Verifier::new(
            VerifierConfig::new(config.auth.issuer.clone(), w.client_id.clone())
                .with_token_type("JWT"),
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Web {
            client_id: w.client_id.clone(),
            client_secret,
            secure: public_url.starts_with("https://"),
            public_url,
            origin,
            session_secs: w.session_secs as i64,
            idle_secs: w.idle_secs as i64,
            issuer: config.auth.issuer.clone(),
            sso_origin: origin_of(&config.auth.issuer),
            http,
            endpoints: OnceCell::new(),
            id_tokens,
            history: Arc::new(History::default()),
        })
    }

    pub(crate) fn sso_origin(&self) -> &str {
        &self.sso_origin
    }

    fn session_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-lain_console"
        } else {
            "lain_console"
        }
    }

    fn login_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-lain_console_login"
        } else {
            "lain_console_login"
        }
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let c = cookie::Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(cookie::SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build();
        HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn redirect_uri(&self) -> String {
        format!("{}/ui/callback", self.public_url)
    }

    async fn endpoints(&self) -> Result<&Endpoints, ApiError> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let r = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| {
                        sso_unreachable(format!("cannot read sso's discovery document: {e}"))
                    })?;
                r.json::<Endpoints>().await.map_err(|e| {
                    sso_unreachable(format!(
                        "sso's discovery document is not what console expects: {e}"
                    ))
                })
            })
            .await
    }

    /// Calls sso's token endpoint with the client's secret.
    async fn token_call(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, TokenCallError> {
        let ep = self.endpoints().await.map_err(TokenCallError::Other)?;
        let r = self
            .http
            .post(&ep.token_endpoint)
            .basic_auth(&self.client_id, Some(self.client_secret.as_str()))
            .form(form)
            .send()
            .await
            .map_err(|e| {
                TokenCallError::Other(sso_unreachable(format!(
                    "cannot reach sso's token endpoint: {e}"
                )))
            })?;
        let status = r.status();
        if status.is_success() {
            return r.json().await.map_err(|e| {
                TokenCallError::Other(sso_unreachable(format!(
                    "sso's token answer is unreadable: {e}"
                )))
            });
        }
        #[derive(Deserialize)]
        struct OAuthErr {
            error: String,
        }
        let e = r
            .json::<OAuthErr>()
            .await
            .map(|e| e.error)
            .unwrap_or_default();
        if e == "invalid_grant" {
            Err(TokenCallError::InvalidGrant)
        } else {
            Err(TokenCallError::Other(sso_unreachable(format!(
                "sso refused the token request: {status} {}",
                e.chars().take(64).collect::<String>()
            ))))
        }
    }

    fn seal_tokens(&self, api: &Api, id_hash: &str, t: &Tokens) -> Result<String, ApiError> {
        let plain =
            Zeroizing::new(serde_json::to_vec(t).map_err(|e| ApiError::Internal(e.to_string()))?);
        let sealed = seal(api.secrets_key(), &plain, &session_aad(id_hash))
            .map_err(|e| ApiError::Internal(format!("cannot seal the session: {e}")))?;
        serde_json::to_string(&sealed).map_err(|e| ApiError::Internal(e.to_string()))
    }

    fn open_tokens(&self, api: &Api, id_hash: &str, sealed: &str) -> Option<Tokens> {
        let sealed: SealedSecret = serde_json::from_str(sealed).ok()?;
        let plain = open(api.secrets_key(), &sealed, &session_aad(id_hash)).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

enum TokenCallError {
    /// sso says the code or refresh token is no longer good.
    InvalidGrant,
    Other(ApiError),
}

fn sso_unreachable(message: String) -> ApiError {
    ApiError::Dependency {
        status: StatusCode::BAD_GATEWAY,
        code: "sso_unavailable",
        message,
        hint: "check that sso is up and that console's [web] client_id and client_secret_file match an sso client with the authorization_code grant; then sign in again".into(),
    }
}

fn session_aad(id_hash: &str) -> String {
    format!("lain-console/web-session/{id_hash}")
}

const LOGIN_AAD: &str = "lain-console/web-login";

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{host}")
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    B64URL.encode(b)
}

fn sha256_b64(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    B64URL.encode(h.finalize())
}

fn now_secs() -> i64 {
    now_ms() / 1000
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A cookie's value from the request.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Where a login may return to: a path of the web console, never another
/// site (no open redirect).
fn safe_return(to: Option<&str>) -> String {
    match to {
        Some(t)
            if t.starts_with("/ui/")
                && !t.starts_with("/ui//")
                && !t.contains('\\')
                && t.len() <= 2048
                && !t.chars().any(char::is_control) =>
        {
            t.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Signed {
    pub caller: Caller,
    /// The form token of this session.
    pub csrf: String,
    id_hash: String,
    /// Unix seconds when the access token expires (SSE streams end then).
    pub access_exp: i64,
}

/// What every web handler gets: the session (if any), the request id and
/// what the CSRF and Origin checks need. Never rejects.
pub struct WebReq {
    pub web: Result<super::Shared, WebError>,
    pub session: Result<Option<Signed>, WebError>,
    pub request_id: Option<String>,
    /// Path and query, for returning after a login.
    pub here: String,
    headers: HeaderMap,
}

impl FromRequestParts<Api> for WebReq {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<WebReq, Self::Rejection> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/ui/".into());
        let web = api.web().cloned().map_err(WebError::from);
        let session = match &web {
            Ok(w) => resolve(api, w, &parts.headers)
                .await
                .map_err(WebError::from),
            Err(_) => Ok(None),
        };
        Ok(WebReq {
            web,
            session,
            request_id,
            here,
            headers: parts.headers.clone(),
        })
    }
}

impl WebReq {
    /// The signed-in user, or a redirect to the login (back here after).
    pub fn signed(&self) -> Result<&Signed, WebError> {
        self.web.clone()?;
        match &self.session {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(WebError::Login(self.here.clone())),
            Err(e) => Err(e.clone()),
        }
    }

    /// The API's request context for the signed-in user.
    pub fn ctx(&self, s: &Signed) -> Ctx {
        Ctx {
            caller: Ok(s.caller.clone()),
            request_id: self.request_id.clone(),
            via_web: true,
        }
    }

    /// The page frame for the signed-in user.
    pub fn layout(&self, s: &Signed, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            user: Some(s.caller.username.clone()),
            admin: s.caller.admin,
            csrf: s.csrf.clone(),
            asset_v: super::asset_version(),
        }
    }

    /// Checks a form post: its CSRF token is this session's, it comes
    /// from console's own pages (`Origin`, else `Referer`), and not from
    /// another site (`Sec-Fetch-Site`).
    pub fn check_post(&self, s: &Signed, csrf: &str) -> Result<(), ApiError> {
        let refuse = |why: &str| {
            Err(ApiError::forbidden(
                format!("the form was refused: {why}"),
                "reload console's page and submit the form again",
            ))
        };
        if !ct_eq(&s.csrf, csrf) {
            return refuse("its form token is missing or not this session's");
        }
        let Ok(web) = &self.web else {
            return refuse("the web console is not configured");
        };
        let web: &Web = web;
        let header = |n: &str| self.headers.get(n).and_then(|v| v.to_str().ok());
        if header("sec-fetch-site") == Some("cross-site") {
            return refuse("it was sent from another site");
        }
        match (header("origin"), header("referer")) {
            (Some(o), _) if o == web.origin => Ok(()),
            (Some(_), _) => refuse("it was sent from another origin"),
            (None, Some(r)) if r.starts_with(&format!("{}/", web.origin)) => Ok(()),
            _ => refuse("it has neither an Origin nor a Referer of console's"),
        }
    }
}

/// The session the request's cookie names, with a verified access token
/// (refreshed when close to expiry); `None` without one or when it ended.
async fn resolve(api: &Api, web: &Web, headers: &HeaderMap) -> Result<Option<Signed>, ApiError> {
    let Some(value) = cookie_value(headers, web.session_cookie()) else {
        return Ok(None);
    };
    if value.len() != 43 {
        return Ok(None);
    }
    let id_hash = sha256_b64(&[value.as_bytes()]);
    let sessions = api.db().web_sessions();
    let Some(mut row) = sessions.get(&id_hash).await? else {
        return Ok(None);
    };
    let now = now_secs();
    if row.expires_at <= now || now - row.last_seen_at > web.idle_secs {
        sessions.delete(&id_hash).await?;
        return Ok(None);
    }
    let Some(mut tokens) = web.open_tokens(api, &id_hash, &row.tokens_sealed) else {
        // Sealed under a key console no longer holds: sign in again.
        sessions.delete(&id_hash).await?;
        return Ok(None);
    };
    if row.access_exp - now < REFRESH_BEFORE_SECS {
        match refresh(api, web, &row, &tokens, now).await? {
            Refreshed::New(t, exp) => {
                tokens = t;
                row.access_exp = exp;
            }
            Refreshed::Ended => {
                sessions.delete(&id_hash).await?;
                return Ok(None);
            }
            Refreshed::Later => {
                // Another request refreshes; wait for it if this token
                // is no longer good.
                if row.access_exp <= now {
                    for _ in 0..30 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if let Some(r) = sessions.get(&id_hash).await? {
                            if r.token_version != row.token_version {
                                if let Some(t) = web.open_tokens(api, &id_hash, &r.tokens_sealed) {
                                    tokens = t;
                                    row = r;
                                }
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    let claims = match api.verifier().verify(&tokens.access).await {
        Ok(c) => c,
        Err(e) if e.is_unavailable() => return Err(ApiError::Unauthenticated(e)),
        Err(e) => {
            tracing::debug!(error = %e, "web session's access token refused");
            return Ok(None);
        }
    };
    if now - row.last_seen_at >= TOUCH_EVERY_SECS {
        sessions.touch(&id_hash, now).await?;
    }
    Ok(Some(Signed {
        caller: api.caller_of(&claims),
        csrf: sha256_b64(&[b"lain-console csrf\0", value.as_bytes()]),
        id_hash,
        access_exp: row.access_exp,
    }))
}

enum Refreshed {
    New(Tokens, i64),
    /// sso ended the grant (logout elsewhere, password change, disabled).
    Ended,
    /// Another request holds the refresh, or sso cannot be reached now.
    Later,
}

async fn refresh(
    api: &Api,
    web: &Web,
    row: &WebSession,
    tokens: &Tokens,
    now: i64,
) -> Result<Refreshed, ApiError> {
    let Some(rt) = tokens.refresh.as_deref() else {
        return Ok(if row.access_exp <= now {
            Refreshed::Ended
        } else {
            Refreshed::Later
        });
    };
    let sessions = api.db().web_sessions();
    if !sessions
        .claim_refresh(
            &row.id_hash,
            row.token_version,
            now,
            now + REFRESH_CLAIM_SECS,
        )
        .await?
    {
        return Ok(Refreshed::Later);
    }
    let answer = match web
        .token_call(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .await
    {
        Ok(a) => a,
        Err(TokenCallError::InvalidGrant) => return Ok(Refreshed::Ended),
        Err(TokenCallError::Other(e)) => {
            tracing::warn!(error = %e, "cannot refresh a web session's token");
            return Ok(Refreshed::Later);
        }
    };
    let claims = match api.verifier().verify(&answer.access_token).await {
        Ok(c) => c,
        Err(_) => return Ok(Refreshed::Ended),
    };
    let exp = exp_secs(&claims);
    let new = Tokens {
        access: answer.access_token.clone(),
        refresh: answer
            .refresh_token
            .clone()
            .or_else(|| tokens.refresh.clone()),
        id_token: answer.id_token.clone().or_else(|| tokens.id_token.clone()),
    };
    let sealed = web.seal_tokens(api, &row.id_hash, &new)?;
    sessions
        .swap_tokens(&row.id_hash, row.token_version, &sealed, exp)
        .await?;
    Ok(Refreshed::New(new, exp))
}

fn exp_secs(claims: &lain_auth::Claims) -> i64 {
    claims
        .expires_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /ui/login`: to sso's sign-in page.
pub async fn login(
    State(api): State<Api>,
    req: WebReq,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let q = q.ok();
    let web = req.web.clone()?;
    let return_to = safe_return(q.as_ref().and_then(|q| q.return_to.as_deref()));
    if let Ok(Some(_)) = &req.session {
        return Ok(see_other(&return_to, None));
    }
    let ep = web.endpoints().await?;
    let login = LoginState {
        state: random_b64(32),
        nonce: random_b64(32),
        verifier: random_b64(32),
        return_to,
        exp: now_secs() + LOGIN_SECS,
    };
    let challenge = sha256_b64(&[login.verifier.as_bytes()]);
    let plain =
        Zeroizing::new(serde_json::to_vec(&login).map_err(|e| ApiError::Internal(e.to_string()))?);
    let sealed = seal(api.secrets_key(), &plain, LOGIN_AAD)
        .map_err(|e| ApiError::Internal(format!("cannot seal the login: {e}")))?;
    let cookie =
        B64URL.encode(serde_json::to_vec(&sealed).map_err(|e| ApiError::Internal(e.to_string()))?);
    let mut url = reqwest::Url::parse(&ep.authorization_endpoint)
        .map_err(|e| sso_unreachable(format!("sso's authorization endpoint is not a URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &web.client_id)
        .append_pair("redirect_uri", &web.redirect_uri())
        .append_pair("scope", "openid profile")
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(see_other(
        url.as_str(),
        Some(web.set_cookie(web.login_cookie(), &cookie, LOGIN_SECS)),
    ))
}

fn see_other(to: &str, cookie: Option<HeaderValue>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    if let Some(c) = cookie {
        r.headers_mut().append(SET_COOKIE, c);
    }
    view::no_store(r.headers_mut());
    r
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /ui/callback`: sso sends the browser back here with a code.
pub async fn callback(
    State(api): State<Api>,
    req: WebReq,
    q: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let q = q.ok();
    let web = req.web.clone()?;
    let failed = |why: String| WebError::SignIn(why);
    let Some(Query(q)) = q else {
        return Err(failed("the answer from sso is malformed".into()));
    };
    if let Some(e) = &q.error {
        let d = q.error_description.as_deref().unwrap_or("");
        return Err(failed(format!(
            "sso answered {}: {}",
            e.chars().take(64).collect::<String>(),
            d.chars().take(200).collect::<String>()
        )));
    }
    let login = cookie_value(&req.headers, web.login_cookie())
        .and_then(|c| B64URL.decode(c).ok())
        .and_then(|b| serde_json::from_slice::<SealedSecret>(&b).ok())
        .and_then(|s| open(api.secrets_key(), &s, LOGIN_AAD).ok())
        .and_then(|p| serde_json::from_slice::<LoginState>(&p).ok())
        .ok_or_else(|| failed("this sign-in was not started here, or it is too old".into()))?;
    if login.exp < now_secs() {
        return Err(failed("the sign-in took too long".into()));
    }
    if !q.state.as_deref().is_some_and(|s| ct_eq(s, &login.state)) {
        return Err(failed(
            "the answer from sso does not belong to this sign-in".into(),
        ));
    }
    if q.iss.as_deref().is_some_and(|i| i != web.issuer) {
        return Err(failed(
            "the answer comes from another issuer than console's sso".into(),
        ));
    }
    let Some(code) = q.code.as_deref() else {
        return Err(failed("sso sent no code".into()));
    };
    let redirect_uri = web.redirect_uri();
    let answer = match web
        .token_call(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &login.verifier),
        ])
        .await
    {
        Ok(a) => a,
        Err(TokenCallError::InvalidGrant) => {
            return Err(failed(
                "sso did not accept the code (used twice, or expired)".into(),
            ))
        }
        Err(TokenCallError::Other(e)) => return Err(e.into()),
    };
    let claims = api
        .verifier()
        .verify(&answer.access_token)
        .await
        .map_err(|e| {
            failed(format!(
                "sso's access token is not one console accepts: {e}"
            ))
        })?;
    let id_token = answer
        .id_token
        .as_deref()
        .ok_or_else(|| failed("sso sent no ID token".into()))?;
    let id = web
        .id_tokens
        .verify(id_token)
        .await
        .map_err(|e| failed(format!("sso's ID token is not valid: {e}")))?;
    let nonce_ok = id
        .get("nonce")
        .and_then(|n| n.as_str())
        .is_some_and(|n| ct_eq(n, &login.nonce));
    let azp_ok = id
        .get("azp")
        .and_then(|a| a.as_str())
        .is_none_or(|a| a == web.client_id);
    if !nonce_ok || !azp_ok || id.sub != claims.sub {
        return Err(failed("sso's ID token does not match this sign-in".into()));
    }
    let caller = api.caller_of(&claims);
    // A new session id at every sign-in (no fixation).
    let value = random_b64(32);
    let id_hash = sha256_b64(&[value.as_bytes()]);
    let now = now_secs();
    let tokens = Tokens {
        access: answer.access_token.clone(),
        refresh: answer.refresh_token.clone(),
        id_token: Some(id_token.to_owned()),
    };
    let row = WebSession {
        tokens_sealed: web.seal_tokens(&api, &id_hash, &tokens)?,
        id_hash,
        subject: caller.subject.clone(),
        username: caller.username.clone(),
        groups_json: serde_json::to_string(&caller.groups).unwrap_or_else(|_| "[]".into()),
        access_exp: exp_secs(&claims),
        token_version: 0,
        refreshing_until: 0,
        created_at: now,
        last_seen_at: now,
        expires_at: now + web.session_secs,
    };
    api.db().web_sessions().create(&row, now).await?;
    tracing::info!(subject = %caller.subject, "web console sign-in");
    let mut r = see_other(
        &login.return_to,
        Some(web.set_cookie(web.session_cookie(), &value, web.session_secs)),
    );
    r.headers_mut()
        .append(SET_COOKIE, web.set_cookie(web.login_cookie(), "", 0));
    Ok(r)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session here and at sso.
pub async fn logout(
    State(api): State<Api>,
    req: WebReq,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, WebError> {
    let web = req.web.clone()?;
    let Ok(Some(s)) = &req.session else {
        return Ok(see_other(
            "/ui/logged-out",
            Some(web.set_cookie(web.session_cookie(), "", 0)),
        ));
    };
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    req.check_post(s, &csrf)?;
    let row = api.db().web_sessions().get(&s.id_hash).await?;
    api.db().web_sessions().delete(&s.id_hash).await?;
    let tokens = row.and_then(|r| web.open_tokens(&api, &s.id_hash, &r.tokens_sealed));
    let ep = web.endpoints().await.ok();
    // Revoking the refresh token ends sso's grant: the access token stops
    // refreshing everywhere. Best effort: the session here is gone anyway.
    if let (Some(rt), Some(url)) = (
        tokens.as_ref().and_then(|t| t.refresh.as_deref()),
        ep.and_then(|e| e.revocation_endpoint.as_deref()),
    ) {
        let done = web
            .http
            .post(url)
            .basic_auth(&web.client_id, Some(web.client_secret.as_str()))
            .form(&[("token", rt), ("token_type_hint", "refresh_token")])
            .send()
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "cannot revoke a web session's refresh token at sso");
        }
    }
    tracing::info!(subject = %s.caller.subject, "web console sign-out");
    let clear = web.set_cookie(web.session_cookie(), "", 0);
    let to = match ep.and_then(|e| e.end_session_endpoint.as_deref()) {
        Some(end) => {
            let mut url = reqwest::Url::parse(end).map_err(|e| {
                sso_unreachable(format!("sso's end-session endpoint is not a URL: {e}"))
            })?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("client_id", &web.client_id).append_pair(
                    "post_logout_redirect_uri",
                    &format!("{}/ui/logged-out", web.public_url),
                );
                if let Some(id) = tokens.as_ref().and_then(|t| t.id_token.as_deref()) {
                    q.append_pair("id_token_hint", id);
                }
            }
            url.to_string()
        }
        None => "/ui/logged-out".to_owned(),
    };
    Ok(see_other(&to, Some(clear)))
}

/// `GET /ui/logged-out`.
pub async fn logged_out() -> Page<Message> {
    Page(Message {
        l: Layout::anonymous("Signed out"),
        heading: "You are signed out".into(),
        text: "Your console session has ended, and sso's too.".into(),
        hint: String::new(),
        request_id: None,
        links: vec![("/ui/login".into(), "Sign in again".into())],
        status_role: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_only_to_console_pages() {
        assert_eq!(safe_return(Some("/ui/apps/x?y=1")), "/ui/apps/x?y=1");
        for bad in [
            None,
            Some("https://evil.example/ui/"),
            Some("//evil.example/"),
            Some("/ui//evil.example"),
            Some("/ui/\\evil"),
            Some("/api/v1/apps"),
            Some("/ui/\nx"),
        ] {
            assert_eq!(safe_return(bad), "/ui/", "{bad:?}");
        }
    }

    #[test]
    fn origin_is_scheme_and_authority() {
        assert_eq!(
            origin_of("https://c.example:8443/x"),
            "https://c.example:8443"
        );
        assert_eq!(origin_of("http://127.0.0.1:7000"), "http://127.0.0.1:7000");
    }

    #[test]
    fn constant_time_comparison_needs_equal_strings() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
        assert!(!ct_eq("", "a"));
    }
}
