//! `/authorize` and its login page: the authorization code flow with PKCE
//! (S256 only; required for public clients), exact redirect URI matching,
//! CSRF-protected login form, browser session.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{check_scope, cookie, set_cookie, ClientAddr, Params, Shared};
use crate::domain::{Client, ClientKind};
use crate::html;
use crate::metrics::Metrics;
use crate::secret::{ct_eq, random_token, Secret};
use crate::{now, AppState};

pub(crate) const SESSION_COOKIE: &str = "sso_session";
pub(crate) const CSRF_COOKIE: &str = "sso_csrf";

/// A checked authorization request.
struct AuthzRequest {
    client: Client,
    redirect_uri: String,
    /// Whether the request named the redirect URI (then /token must send
    /// the same one, RFC 6749 §4.1.3).
    redirect_uri_sent: bool,
    state: Option<String>,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Prompt,
    /// `max_age`: a session authenticated longer ago than this many
    /// seconds is not reused.
    max_age: Option<i64>,
}

/// What `prompt` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prompt {
    /// No prompt: reuse a live session, else show the login page.
    Default,
    /// `none`: never show a page; `login_required` without a session.
    None,
    /// `login` or `select_account`: always show the login page.
    Login,
}

/// The request's own fields, to carry through the login form.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "max_age",
];

fn bad_page(text: &str) -> Response {
    html::message(StatusCode::BAD_REQUEST, "Invalid sign-in request", text)
}

/// Sends the browser back to the client with an OAuth error.
fn redirect_error(
    st: &AppState,
    redirect_uri: &str,
    state: Option<&str>,
    code: &str,
    desc: &str,
) -> Response {
    let mut pairs = vec![("error", code), ("error_description", desc)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &st.issuer));
    redirect_with(redirect_uri, &pairs)
}

pub(crate) fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut u = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return bad_page("the redirect URI is not a valid URL"),
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(u.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Validates an authorization request. Errors before the redirect URI is
/// known to be registered are shown as a page, never redirected.
async fn validate(st: &AppState, p: &Params) -> Result<AuthzRequest, Response> {
    let Some(client_id) = p.get("client_id") else {
        return Err(bad_page(
            "The request has no client_id. Start again from the application.",
        ));
    };
    let client = match st.db.get_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(bad_page("The application's client_id is not registered with sso. Ask an operator to register it with `sso client add`.")),
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return Err(html::message(StatusCode::SERVICE_UNAVAILABLE, "sso is unavailable", "sso cannot read its database; retry in a moment."));
        }
    };
    let redirect_uri = match p.get("redirect_uri") {
        Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
        Some(_) => return Err(bad_page("The redirect_uri does not exactly match one registered for this application; an operator can check it with `sso client list`.")),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(bad_page("The request has no redirect_uri and the application has several registered; give one.")),
    };
    let state = p.get("state").map(str::to_owned);
    let err =
        |code: &str, desc: &str| redirect_error(st, &redirect_uri, state.as_deref(), code, desc);
    match p.get("response_mode") {
        None | Some("query") => {}
        Some(_) => {
            return Err(err(
                "invalid_request",
                "only response_mode=query is supported",
            ))
        }
    }
    match p.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(err(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
        None => return Err(err("invalid_request", "missing parameter `response_type`")),
    }
    if !client.allows("authorization_code") {
        return Err(err(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let scope = match check_scope(p.get("scope")) {
        Ok(s) => s,
        Err(e) => return Err(err("invalid_scope", &e.to_string())),
    };
    if p.get("request").is_some() || p.get("request_uri").is_some() {
        return Err(err(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    let code_challenge =
        match (p.get("code_challenge"), p.get("code_challenge_method")) {
            (Some(c), Some("S256")) => {
                if c.len() != 43
                    || !c
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(err(
                        "invalid_request",
                        "code_challenge must be the 43-character base64url SHA-256 of the verifier",
                    ));
                }
                Some(c.to_owned())
            }
            (Some(_), _) => {
                return Err(err(
                    "invalid_request",
                    "only code_challenge_method=S256 is supported",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "invalid_request",
                    "code_challenge_method given without code_challenge",
                ))
            }
            (None, None) if client.kind == ClientKind::Public => return Err(err(
                "invalid_request",
                "public clients must use PKCE: send code_challenge and code_challenge_method=S256",
            )),
            (None, None) => None,
        };
    let max_age = match p.get("max_age") {
        None => None,
        Some(m) => match m.parse::<i64>() {
            Ok(m) if m >= 0 => Some(m),
            _ => {
                return Err(err(
                    "invalid_request",
                    "max_age must be a non-negative number of seconds",
                ))
            }
        },
    };
    let prompts: Vec<&str> = p
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let mut prompt = Prompt::Default;
    for v in &prompts {
        match *v {
            "none" if prompts.len() > 1 => {
                return Err(err(
                    "invalid_request",
                    "prompt=none cannot be combined with other prompt values",
                ))
            }
            "none" => prompt = Prompt::None,
            "login" | "select_account" => prompt = Prompt::Login,
            "consent" => {
                return Err(err(
                    "consent_required",
                    "sso has no consent screen: clients are registered by operators; drop prompt=consent",
                ))
            }
            other => {
                return Err(err(
                    "invalid_request",
                    &format!("unsupported prompt value `{other}`; use none, login or select_account"),
                ))
            }
        }
    }
    Ok(AuthzRequest {
        client,
        redirect_uri,
        redirect_uri_sent: p.get("redirect_uri").is_some(),
        state,
        scope,
        nonce: p.get("nonce").map(str::to_owned),
        code_challenge,
        prompt,
        max_age,
    })
}

/// The CSRF cookie's name: `__Host-` prefixed over https, so that no
/// sibling domain can set it.
pub(crate) fn csrf_cookie_name(st: &AppState) -> &'static str {
    if st.secure_cookies {
        "__Host-sso_csrf"
    } else {
        CSRF_COOKIE
    }
}

/// The form's CSRF value: the cookie bound to the browser session, so a
/// cookie planted by someone else does not make a valid form for a
/// signed-in user.
fn csrf_form_value(cookie_value: &str, session: Option<&str>) -> String {
    use base64::Engine;
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!(
        "sso-csrf\0{cookie_value}\0{}",
        session.unwrap_or("")
    ));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

/// A new CSRF cookie (`Set-Cookie` value).
fn new_csrf_cookie(st: &AppState) -> (String, String) {
    let t = random_token();
    let set = set_cookie(st, csrf_cookie_name(st), &t, 24 * 3600);
    (t, set)
}

/// The CSRF value for a form, and the cookie to set when there is none.
pub(crate) fn csrf_token(st: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    let session = cookie(headers, SESSION_COOKIE);
    match cookie(headers, csrf_cookie_name(st)).filter(|c| c.len() == 43) {
        Some(c) => (csrf_form_value(&c, session.as_deref()), None),
        None => {
            let (t, set) = new_csrf_cookie(st);
            (csrf_form_value(&t, session.as_deref()), Some(set))
        }
    }
}

/// Double-submit check: the form field must match the cookie (and the
/// session the form was made for).
pub(crate) fn csrf_ok(st: &AppState, headers: &HeaderMap, p: &Params) -> bool {
    match (cookie(headers, csrf_cookie_name(st)), p.get("csrf")) {
        (Some(c), Some(f)) => {
            let want = csrf_form_value(&c, cookie(headers, SESSION_COOKIE).as_deref());
            ct_eq(want.as_bytes(), f.as_bytes())
        }
        _ => false,
    }
}

pub(crate) fn csrf_failed_page() -> Response {
    html::message(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form expired or was not sent from sso's own page. Go back to the application and sign in again.",
    )
}

/// The live session's (user, auth_time), if any.
pub(crate) async fn current_session(st: &AppState, headers: &HeaderMap) -> Option<(String, i64)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    st.db.session(&id).await.ok().flatten()
}

/// Outcome of a password check.
pub(crate) enum Login {
    Ok,
    Failed,
    /// Locked for this many seconds (or too many attempts in flight).
    Locked(i64),
    /// Too many password checks are running: retry in a moment.
    Busy,
}

/// Checks a user's password under the failed-login limits. The attempt
/// is counted before the check (so parallel attempts cannot exceed the
/// limits) and at most [`crate::AppState::verify_permits`] checks run at
/// once. Unknown users cost the same argon2 work as known ones.
pub(crate) async fn check_login(
    st: &AppState,
    addr: ClientAddr,
    user: &str,
    pw: Secret,
) -> Result<Login, crate::error::StoreError> {
    let attempt = match st.limiter.reserve(Some(user), addr.0, now()) {
        Ok(a) => a,
        Err(secs) => {
            Metrics::inc(&st.metrics.logins_locked);
            return Ok(Login::Locked(secs));
        }
    };
    let Ok(permit) = st.verify_permits.clone().try_acquire_owned() else {
        attempt.release();
        tracing::warn!(
            user,
            "too many password checks at once; login refused with 429"
        );
        return Ok(Login::Busy);
    };
    let creds = match st.db.user_credentials(user).await {
        Ok(c) => c,
        Err(e) => {
            attempt.release();
            return Err(e);
        }
    };
    let (hash, usable) = match &creds {
        Some((h, disabled)) => (h.clone(), !disabled),
        None => (st.dummy_hash.clone(), false),
    };
    let ok = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::password::verify(&hash, &pw)
    })
    .await
    .unwrap_or(false);
    if ok && usable {
        attempt.succeeded();
        Metrics::inc(&st.metrics.logins_ok);
        tracing::info!(user, "login");
        Ok(Login::Ok)
    } else {
        Metrics::inc(&st.metrics.logins_failed);
        if attempt.failed(now()) {
            Metrics::inc(&st.metrics.lockouts);
            tracing::warn!(user, addr = ?addr.0, "too many failed logins; locked");
        }
        Ok(Login::Failed)
    }
}

fn retry_after(mut r: Response, secs: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub(crate) fn locked_page(secs: i64) -> Response {
    retry_after(
        html::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            &format!(
                "Sign-in is locked after too many failed attempts. Try again in {} minute(s), or ask an operator to reset your password.",
                (secs + 59) / 60
            ),
        ),
        secs,
    )
}

pub(crate) fn busy_page() -> Response {
    retry_after(
        html::message(
            StatusCode::TOO_MANY_REQUESTS,
            "sso is busy",
            "Too many sign-ins are being checked right now. Try again in a few seconds.",
        ),
        1,
    )
}

fn login_page(
    st: &AppState,
    headers: &HeaderMap,
    p: &Params,
    req: &AuthzRequest,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (csrf, set) = csrf_token(st, headers);
    let mut fields: Vec<(&str, &str)> = CARRIED
        .iter()
        .filter_map(|k| p.get(k).map(|v| (*k, v)))
        .collect();
    fields.push(("csrf", &csrf));
    let form = html::login_form(
        "/authorize",
        &req.client.name,
        error,
        p.get("username").unwrap_or(""),
        &html::hidden(&fields),
    );
    // The form's answer redirects to the client: allow its origin.
    let mut r = html::page_with_targets(status, "Sign in", &form, &[&req.redirect_uri]);
    if let Some(c) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// Issues a code for a logged-in user and redirects back to the client.
async fn grant_code(st: &AppState, req: &AuthzRequest, user: &str, auth_time: i64) -> Response {
    let t = now();
    let code_exp = t + st.cfg.tokens.authorization_code_secs as i64;
    let res = async {
        let grant = st
            .db
            .create_grant(
                &req.client.client_id,
                user,
                &req.scope,
                auth_time,
                t + st.grant_min_secs(),
            )
            .await?;
        st.db
            .create_code(
                &grant,
                // Empty: none was sent, so /token need not send one.
                if req.redirect_uri_sent {
                    req.redirect_uri.as_str()
                } else {
                    ""
                },
                req.nonce.as_deref(),
                req.code_challenge.as_deref(),
                code_exp,
            )
            .await
    }
    .await;
    match res {
        Ok(code) => {
            let mut pairs = vec![("code", code.as_str())];
            if let Some(s) = &req.state {
                pairs.push(("state", s));
            }
            pairs.push(("iss", &st.issuer));
            redirect_with(&req.redirect_uri, &pairs)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store authorization code");
            redirect_error(
                st,
                &req.redirect_uri,
                req.state.as_deref(),
                "server_error",
                "sso could not store the authorization; retry",
            )
        }
    }
}

pub(super) async fn get_authorize(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match Params::parse(q.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return bad_page(&e.to_string()),
    };
    let req = match validate(&st, &p).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.prompt != Prompt::Login {
        if let Some((user, auth_time)) = current_session(&st, &headers).await {
            // max_age=0 always asks for the password again.
            let fresh = req.max_age.is_none_or(|m| m > 0 && now() - auth_time <= m);
            if fresh {
                return grant_code(&st, &req, &user, auth_time).await;
            }
        }
    }
    if req.prompt == Prompt::None {
        return redirect_error(
            &st,
            &req.redirect_uri,
            req.state.as_deref(),
            "login_required",
            "the user is not signed in",
        );
    }
    login_page(&st, &headers, &p, &req, StatusCode::OK, None)
}

pub(super) async fn post_authorize(
    State(st): State<Shared>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_page(&e.to_string()),
    };
    if !csrf_ok(&st, &headers, &p) {
        return csrf_failed_page();
    }
    let req = match validate(&st, &p).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (Some(user), Some(pw)) = (p.get("username"), p.get("password")) else {
        return login_page(
            &st,
            &headers,
            &p,
            &req,
            StatusCode::BAD_REQUEST,
            Some("Enter your user name and password."),
        );
    };
    match check_login(&st, addr, user, Secret::new(pw)).await {
        Ok(Login::Ok) => {}
        Ok(Login::Locked(secs)) => return locked_page(secs),
        Ok(Login::Busy) => return busy_page(),
        Ok(Login::Failed) => {
            return login_page(
                &st,
                &headers,
                &p,
                &req,
                StatusCode::UNAUTHORIZED,
                Some("Wrong user name or password, or the account is disabled."),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            return html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "sso is unavailable",
                "sso cannot read its database; retry in a moment.",
            );
        }
    }
    let t = now();
    // A new session id at every login (no session fixation): the old
    // session row, if any, ends here.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = st.db.delete_session(&old).await {
            tracing::error!(error = %e, "cannot delete the previous session");
        }
    }
    let session = st
        .db
        .create_session(user, t + st.cfg.tokens.session_secs as i64)
        .await;
    let mut r = grant_code(&st, &req, user, t).await;
    if let Ok(id) = session {
        let c = set_cookie(&st, SESSION_COOKIE, &id, st.cfg.tokens.session_secs as i64);
        // A new CSRF cookie with the new session.
        let (_, csrf) = new_csrf_cookie(&st);
        for c in [c, csrf] {
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    r
}
