//! Signing in to the web console through sso, and the session after.
//!
//! * `GET /ui/login`: a sealed, short-lived login cookie holds `state`,
//!   `nonce`, the PKCE verifier and where to return; the browser goes to
//!   sso's authorization endpoint (code flow, S256).
//! * `GET /ui/callback`: the login cookie and `state` (constant time) are
//!   checked before anything else, `iss` must be sso's (RFC 9207), the
//!   code is redeemed with the client's secret and the verifier, the
//!   access token is verified as the API verifies bearer tokens and the ID
//!   token (signature, audience, `nonce`, `azp`, `sub`). A session row
//!   stores the tokens sealed with the cluster secrets key; the cookie
//!   holds 256 random bits, the row only their SHA-256.
//! * Every request ([`Session`]) re-verifies the session's access token
//!   and takes the caller from it, like the API does, refreshing it
//!   shortly before it expires (one request at a time: sso's refresh
//!   tokens are single-use).
//! * `POST /ui/logout`: the row goes, the refresh token is revoked at sso,
//!   and the browser is sent to sso's end-session endpoint.
//! * Every POST must come from console's own pages (`Origin`, else
//!   `Referer`; never `Sec-Fetch-Site: cross-site`) and carry a CSRF token
//!   derived from the session cookie.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use lain_auth::{Provider, ProviderError, TokenResponse, Verifier, VerifierConfig};
use lain_store::secret::{open, seal};
use lain_store::SealedSecret;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

use super::history::History;
use super::view::{Layout, Message, Page, WebError};
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
/// The longest a request waits for another one's refresh.
const REFRESH_WAIT: Duration = Duration::from_secs(3);

/// The web console's settings and its sso client.
pub struct Web {
    sso: Provider,
    /// console's public URL, without a trailing `/`.
    public_url: String,
    /// The origin of `public_url`: what a POST's `Origin` must be.
    origin: String,
    /// Cookies get `Secure` and the `__Host-` prefix (public_url is https).
    secure: bool,
    session_secs: i64,
    idle_secs: i64,
    /// The pages' Content-Security-Policy (sign-out's form ends at sso).
    pub(crate) csp: HeaderValue,
    /// Checks ID tokens: sso's keys, audience = this client, `typ` JWT.
    id_tokens: Verifier,
    pub(crate) history: History,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("sso", &self.sso)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
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
        self.access.zeroize();
        if let Some(t) = &mut self.refresh {
            t.zeroize();
        }
        if let Some(t) = &mut self.id_token {
            t.zeroize();
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
        let issuer = &config.auth.issuer;
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
            origin_of(issuer)?
        );
        Ok(Web {
            sso: Provider::new(
                issuer.clone(),
                w.client_id.clone(),
                client_secret,
                Duration::from_secs(10),
            ),
            secure: public_url.starts_with("https://"),
            origin: origin_of(&public_url)?,
            public_url,
            session_secs: w.session_secs as i64,
            idle_secs: w.idle_secs as i64,
            csp: HeaderValue::from_str(&csp)?,
            id_tokens: Verifier::new(
                VerifierConfig::new(issuer.clone(), w.client_id.clone()).with_token_type("JWT"),
            )?,
            history: History::default(),
        })
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

    fn seal_tokens(&self, api: &Api, id_hash: &str, t: &Tokens) -> Result<String, ApiError> {
        let plain =
            Zeroizing::new(serde_json::to_vec(t).map_err(|e| ApiError::Internal(e.to_string()))?);
        let sealed = seal(api.secrets_key(), &plain, &session_aad(id_hash))
            .map_err(|e| ApiError::Internal(format!("cannot seal the session: {e}")))?;
        serde_json::to_string(&sealed).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The tokens of a session row; `None` when no key console holds
    /// (current or retired) opens them.
    fn open_tokens(&self, api: &Api, id_hash: &str, sealed: &str) -> Option<Tokens> {
        let sealed: SealedSecret = serde_json::from_str(sealed).ok()?;
        let plain = open(api.secrets_key(), &sealed, &session_aad(id_hash)).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// sso cannot be used now: a 502 page that says what to check.
fn sso_failed(e: ProviderError) -> ApiError {
    ApiError::Dependency {
        status: StatusCode::BAD_GATEWAY,
        code: "sso_unavailable",
        message: format!("console cannot use sso: {e}"),
        hint: "check that sso is up and that console's [web] client_id and client_secret_file match an sso client with the authorization_code grant; then sign in again".into(),
    }
}

fn session_aad(id_hash: &str) -> String {
    format!("lain-console/web-session/{id_hash}")
}

const LOGIN_AAD: &str = "lain-console/web-login";

/// The origin of a URL as browsers send it in `Origin` (lower-case host,
/// no default port).
fn origin_of(url: &str) -> anyhow::Result<String> {
    Ok(reqwest::Url::parse(url)?.origin().ascii_serialization())
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

pub(crate) fn now_secs() -> i64 {
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

/// A request of a signed-in user: the caller (from a verified access
/// token, as the API takes it), the form token, and what the POST checks
/// need. Without a session the handler is not run: the browser goes to the
/// login and comes back after.
pub struct Session {
    pub api: Api,
    pub caller: Caller,
    /// The form token of this session.
    pub csrf: String,
    id_hash: String,
    pub request_id: Option<String>,
    origin: Option<String>,
    referer: Option<String>,
    cross_site: bool,
}

impl FromRequestParts<Api> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Session, WebError> {
        let web = api.web()?;
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (origin, referer) = (header("origin"), header("referer"));
        let Some((caller, csrf, id_hash)) = resolve(api, web, &parts.headers).await? else {
            // Back here after the login; after a form post, to the page
            // the form was on (the post itself is not repeated).
            let here = if parts.method == Method::GET {
                // The path as the browser asked for it (`nest` strips `/ui`).
                let uri = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or(&parts.uri, |o| &o.0);
                uri.path_and_query().map(|p| p.as_str().to_owned())
            } else {
                referer
                    .as_deref()
                    .and_then(|r| r.strip_prefix(&web.origin))
                    .map(str::to_owned)
            };
            return Err(WebError::Login(safe_return(here.as_deref())));
        };
        Ok(Session {
            api: api.clone(),
            caller,
            csrf,
            id_hash,
            request_id: header("x-request-id"),
            cross_site: header("sec-fetch-site").as_deref() == Some("cross-site"),
            origin,
            referer,
        })
    }
}

impl Session {
    /// The API's request context for this user (audited `via: web`).
    pub fn ctx(&self) -> Ctx {
        Ctx {
            caller: Ok(self.caller.clone()),
            request_id: self.request_id.clone(),
            via_web: true,
        }
    }

    /// The API's state, to call its handlers.
    pub fn state(&self) -> State<Api> {
        State(self.api.clone())
    }

    /// The page frame for this user.
    pub fn layout(&self, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            user: Some(self.caller.username.clone()),
            admin: self.caller.admin,
            csrf: self.csrf.clone(),
            asset_v: super::asset_version(),
        }
    }

    /// Whether a form post comes from console's own pages: its `Origin`
    /// (else its `Referer`) is console's, and it is not cross-site.
    pub fn check_origin(&self) -> Result<(), ApiError> {
        let origin = self.api.web()?.origin.as_str();
        let same_origin = match (&self.origin, &self.referer) {
            (Some(o), _) => o == origin,
            (None, Some(r)) => r.starts_with(&format!("{origin}/")),
            (None, None) => false,
        };
        if self.cross_site || !same_origin {
            return Err(form_refused("it was not sent from console's own pages"));
        }
        Ok(())
    }

    /// Whether a form's token is this session's.
    pub fn check_csrf(&self, csrf: &str) -> Result<(), ApiError> {
        if ct_eq(&self.csrf, csrf) {
            Ok(())
        } else {
            Err(form_refused(
                "its form token is missing or not this session's",
            ))
        }
    }

    /// Whether this session still exists and has not expired (long
    /// streams check it now and then).
    pub async fn is_live(&self) -> bool {
        match self.api.db().web_sessions().get(&self.id_hash).await {
            Ok(Some(row)) => row.expires_at > now_secs(),
            Ok(None) => false,
            // A database hiccup does not end a stream.
            Err(_) => true,
        }
    }
}

fn form_refused(why: &str) -> ApiError {
    ApiError::forbidden(
        format!("the form was refused: {why}"),
        "reload console's page and submit the form again",
    )
}

/// The session the request's cookie names, with a verified access token
/// (refreshed when close to expiry): the caller, the form token and the
/// row's id; `None` without one or when it ended.
async fn resolve(
    api: &Api,
    web: &Web,
    headers: &HeaderMap,
) -> Result<Option<(Caller, String, String)>, ApiError> {
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
            Refreshed::New(t) => tokens = t,
            Refreshed::Ended => {
                sessions.delete(&id_hash).await?;
                return Ok(None);
            }
            Refreshed::Later if row.access_exp > now => {}
            Refreshed::Later => {
                // This token is no longer good: wait for the request that
                // holds the claim, while it holds it.
                let end = tokio::time::Instant::now() + REFRESH_WAIT;
                while tokio::time::Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let Some(r) = sessions.get(&id_hash).await? else {
                        return Ok(None);
                    };
                    if r.token_version != row.token_version {
                        if let Some(t) = web.open_tokens(api, &id_hash, &r.tokens_sealed) {
                            tokens = t;
                        }
                        row = r;
                        break;
                    }
                    if r.refreshing_until < now_secs() {
                        break;
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
    let csrf = sha256_b64(&[b"lain-console csrf\0", value.as_bytes()]);
    Ok(Some((api.caller_of(&claims), csrf, id_hash)))
}

enum Refreshed {
    New(Tokens),
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
        .sso
        .token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .await
    {
        Ok(a) => a,
        Err(e) if e.is_invalid_grant() => return Ok(Refreshed::Ended),
        Err(e) => {
            tracing::warn!(error = %e, "cannot refresh a web session's token");
            return Ok(Refreshed::Later);
        }
    };
    // sso rotated the refresh token: store the new ones before anything
    // else can fail, or the session is lost with them.
    let new = Tokens {
        access: answer.access_token.clone(),
        refresh: answer
            .refresh_token
            .clone()
            .or_else(|| tokens.refresh.clone()),
        id_token: answer.id_token.clone().or_else(|| tokens.id_token.clone()),
    };
    let exp = now + answer.expires_in.unwrap_or(60) as i64;
    let sealed = web.seal_tokens(api, &row.id_hash, &new)?;
    if !sessions
        .swap_tokens(&row.id_hash, row.token_version, &sealed, exp)
        .await?
    {
        tracing::warn!("a web session was refreshed twice at once; keeping the newer tokens");
    }
    Ok(Refreshed::New(new))
}

fn exp_secs(claims: &lain_auth::Claims) -> i64 {
    claims
        .expires_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A redirect that also sets (or clears) cookies.
fn redirect_with(to: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let mut r = Redirect::to(to).into_response();
    for c in cookies {
        r.headers_mut().append(SET_COOKIE, c);
    }
    r
}

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /ui/login`: to sso's sign-in page.
pub async fn login(
    State(api): State<Api>,
    session: Result<Session, WebError>,
    q: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let web = api.web()?;
    let return_to = safe_return(q.ok().and_then(|Query(q)| q.return_to).as_deref());
    match session {
        Ok(_) => return Ok(Redirect::to(&return_to).into_response()),
        Err(WebError::Login(_)) => {}
        Err(e) => return Err(e),
    }
    let ep = web.sso.discovery().await.map_err(sso_failed)?;
    let authorize = ep.authorization_endpoint.as_deref().ok_or_else(|| {
        sso_failed(ProviderError::Unreachable(
            "sso's discovery document has no authorization_endpoint".into(),
        ))
    })?;
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
    let mut url = reqwest::Url::parse(authorize).map_err(|e| {
        sso_failed(ProviderError::Unreachable(format!(
            "sso's authorization endpoint is not a URL: {e}"
        )))
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", web.sso.client_id())
        .append_pair("redirect_uri", &web.redirect_uri())
        .append_pair("scope", "openid profile")
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(redirect_with(
        url.as_str(),
        [web.set_cookie(web.login_cookie(), &cookie, LOGIN_SECS)],
    ))
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
    headers: HeaderMap,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let web = api.web()?;
    let failed = |why: &str| WebError::SignIn(why.to_owned());
    let Ok(Query(q)) = q else {
        return Err(failed("the answer from sso is malformed"));
    };
    // Nothing of the answer is shown or used before it is known to belong
    // to a sign-in started here.
    let login = cookie_value(&headers, web.login_cookie())
        .and_then(|c| B64URL.decode(c).ok())
        .and_then(|b| serde_json::from_slice::<SealedSecret>(&b).ok())
        .and_then(|s| open(api.secrets_key(), &s, LOGIN_AAD).ok())
        .and_then(|p| serde_json::from_slice::<LoginState>(&p).ok())
        .ok_or_else(|| failed("this sign-in was not started here, or it is too old"))?;
    if login.exp < now_secs() {
        return Err(failed("the sign-in took too long"));
    }
    if !q.state.as_deref().is_some_and(|s| ct_eq(s, &login.state)) {
        return Err(failed(
            "the answer from sso does not belong to this sign-in",
        ));
    }
    // sso always names itself (it advertises RFC 9207).
    if q.iss.as_deref() != Some(web.sso.issuer()) {
        return Err(failed(
            "the answer does not come from console's sso (its `iss` is missing or another)",
        ));
    }
    if let Some(e) = &q.error {
        let d = q.error_description.as_deref().unwrap_or("");
        return Err(WebError::SignIn(format!(
            "sso answered {}: {}",
            e.chars().take(64).collect::<String>(),
            d.chars().take(200).collect::<String>()
        )));
    }
    let Some(code) = q.code.as_deref() else {
        return Err(failed("sso sent no code"));
    };
    let redirect_uri = web.redirect_uri();
    let answer: TokenResponse = match web
        .sso
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &login.verifier),
        ])
        .await
    {
        Ok(a) => a,
        Err(e) if e.is_invalid_grant() => {
            return Err(failed(
                "sso did not accept the code (used twice, or expired)",
            ))
        }
        Err(e) => return Err(sso_failed(e).into()),
    };
    let claims = api
        .verifier()
        .verify(&answer.access_token)
        .await
        .map_err(|e| {
            WebError::SignIn(format!(
                "sso's access token is not one console accepts: {e}"
            ))
        })?;
    let id_token = answer
        .id_token
        .as_deref()
        .ok_or_else(|| failed("sso sent no ID token"))?;
    let id = web
        .id_tokens
        .verify(id_token)
        .await
        .map_err(|e| WebError::SignIn(format!("sso's ID token is not valid: {e}")))?;
    let nonce_ok = id
        .get("nonce")
        .and_then(|n| n.as_str())
        .is_some_and(|n| ct_eq(n, &login.nonce));
    let azp_ok = id
        .get("azp")
        .and_then(|a| a.as_str())
        .is_none_or(|a| a == web.sso.client_id());
    if !nonce_ok || !azp_ok || id.sub != claims.sub {
        return Err(failed("sso's ID token does not match this sign-in"));
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
    Ok(redirect_with(
        &login.return_to,
        [
            web.set_cookie(web.session_cookie(), &value, web.session_secs),
            web.set_cookie(web.login_cookie(), "", 0),
        ],
    ))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session here and at sso.
pub async fn logout(
    State(api): State<Api>,
    session: Result<Session, WebError>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, WebError> {
    let web = api.web()?;
    let clear = web.set_cookie(web.session_cookie(), "", 0);
    let s = match session {
        Ok(s) => s,
        Err(WebError::Login(_)) => return Ok(redirect_with("/ui/logged-out", [clear])),
        Err(e) => return Err(e),
    };
    s.check_origin()?;
    s.check_csrf(&form.map(|Form(f)| f.csrf).unwrap_or_default())?;
    let row = api.db().web_sessions().get(&s.id_hash).await?;
    api.db().web_sessions().delete(&s.id_hash).await?;
    let tokens = row.and_then(|r| web.open_tokens(&api, &s.id_hash, &r.tokens_sealed));
    // Revoking the refresh token ends sso's grant: the access token stops
    // refreshing everywhere. Best effort: the session here is gone anyway.
    if let Some(rt) = tokens.as_ref().and_then(|t| t.refresh.as_deref()) {
        if let Err(e) = web.sso.revoke(rt, "refresh_token").await {
            tracing::warn!(error = %e, "cannot revoke a web session's refresh token at sso");
        }
    }
    tracing::info!(subject = %s.caller.subject, "web console sign-out");
    let end = web
        .sso
        .discovery()
        .await
        .ok()
        .and_then(|d| d.end_session_endpoint.as_deref())
        .and_then(|e| reqwest::Url::parse(e).ok());
    let to = match end {
        Some(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("client_id", web.sso.client_id()).append_pair(
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
    Ok(redirect_with(&to, [clear]))
}

/// `GET /ui/logged-out`.
pub async fn logged_out() -> Page<Message> {
    Page(Message {
        l: Layout::anonymous("Signed out"),
        heading: "You are signed out".into(),
        text: "Your console session has ended, and sso was asked to end its own.".into(),
        hint: String::new(),
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
            origin_of("https://c.example:8443/x").unwrap(),
            "https://c.example:8443"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:7000").unwrap(),
            "http://127.0.0.1:7000"
        );
        // As browsers send it: host lower-cased, default port dropped.
        assert_eq!(
            origin_of("https://Console.Example:443/").unwrap(),
            "https://console.example"
        );
    }

    #[test]
    fn constant_time_comparison_needs_equal_strings() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
        assert!(!ct_eq("", "a"));
    }
}
