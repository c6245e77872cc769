//! Test support: an in-process sso on a real loopback listener, seeded
//! with users, groups and clients; a cookie-keeping "browser" that fills
//! in the login and device forms.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use sso::config::Config;
use sso::domain::{ClientKind, NewClient, Role};
use sso::secret::Secret;
use sso::Sso;

pub const PASSWORD: &str = "alice-password-1";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const LOGOUT_REDIRECT: &str = "http://127.0.0.1:9/bye";

/// A running sso and the secrets of the seeded confidential clients.
pub struct TestSso {
    pub addr: SocketAddr,
    pub issuer: String,
    pub sso: Sso,
    pub web_secret: String,
    pub daemon_secret: String,
    pub other_secret: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Config used by every test server: cheap argon2 (debug builds), short
/// code life for the expiry test, fast device polling; login limits per
/// user 5, per address 8.
pub fn base_config(issuer: &str, listen: SocketAddr) -> String {
    format!(
        "listen = \"{listen}\"\nissuer = \"{issuer}\"\ntrust_forwarded_for = true\n\
         [tokens]\nauthorization_code_secs = 5\ndevice_poll_interval_secs = 1\n\
         [login]\nmax_failures_per_user = 5\nmax_failures_per_address = 8\n\
         [password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n"
    )
}

impl TestSso {
    /// Starts sso on the given database (default: SQLite in a temp dir)
    /// and seeds it. Runs on the caller's runtime.
    pub async fn start(database: Option<String>) -> TestSso {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let cfg: Config = lain_service::parse_config(
            std::path::Path::new("test.toml"),
            &base_config(&issuer, addr),
        )
        .unwrap();
        let url = database
            .unwrap_or_else(|| format!("sqlite://{}/sso.db?mode=rwc", dir.path().display()));
        let sso = Sso::open(cfg.clone(), &url).await.expect("sso starts");
        let (web_secret, daemon_secret, other_secret) = seed(&sso, &cfg).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s2 = sso.clone();
        tokio::spawn(async move {
            s2.serve_on(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestSso {
            addr,
            issuer,
            sso,
            web_secret,
            daemon_secret,
            other_secret,
            _dir: dir,
            _stop: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

async fn seed(sso: &Sso, cfg: &Config) -> (String, String, String) {
    let db = &sso.state().db;
    let hc = &cfg.password_hash;
    for u in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        db.add_user(
            hc,
            u,
            &format!("{u}@example.com"),
            &format!("{u} Example"),
            &Secret::new(PASSWORD),
        )
        .await
        .unwrap();
    }
    db.add_group("admin", "admins", None).await.unwrap();
    db.add_group("dev", "developers", None).await.unwrap();
    db.add_group("dev-web", "web team", Some("dev"))
        .await
        .unwrap();
    db.set_member("dev-web", "alice", Role::Normal)
        .await
        .unwrap();
    db.set_member("admin", "bob", Role::Admin).await.unwrap();
    let add = |id: &str, kind, grants: &[&str], aud: Option<&str>| NewClient {
        client_id: id.into(),
        name: format!("{id} app"),
        kind,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![LOGOUT_REDIRECT.into()],
        grant_types: grants.iter().map(|s| s.to_string()).collect(),
        audience: aud.map(str::to_owned),
    };
    let mut secrets = Vec::new();
    use ClientKind::{Confidential, Public};
    const CODE_REFRESH: &[&str] = &["authorization_code", "refresh_token"];
    const ALL_USER: &[&str] = &["authorization_code", "refresh_token", "device_code"];
    for (id, kind, grants, aud) in [
        ("cli", Public, ALL_USER, Some("console")),
        ("admin-ui", Public, &["authorization_code"][..], Some("sso")),
        ("web", Confidential, CODE_REFRESH, None),
        (
            "deployd",
            Confidential,
            &["client_credentials"][..],
            Some("console"),
        ),
        ("other", Confidential, CODE_REFRESH, None),
    ] {
        let secret = db.add_client(&add(id, kind, grants, aud)).await.unwrap();
        if kind == Confidential {
            secrets.push(secret.unwrap().expose().to_owned());
        }
    }
    let [web, daemon, other]: [String; 3] = secrets.try_into().unwrap();
    (web, daemon, other)
}

/// One sso shared by the tests of a test binary, on its own runtime (so
/// that it outlives each test's runtime). Starting one costs an RSA key.
pub fn shared() -> &'static TestSso {
    static S: OnceLock<&'static TestSso> = OnceLock::new();
    S.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s: &'static TestSso = Box::leak(Box::new(TestSso::start(None).await));
                tx.send(s).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("shared sso started")
    })
}

/// An HTTP client that keeps cookies and never follows redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A plain client (no cookies, no redirects), as openidconnect wants.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub use lain_testkit::html::{hidden_fields, login_form};

/// The form of a device page filled in: `user_code` (as typed) replaces
/// the page's own when given, `confirm` confirms the code, and `user`
/// signs in with [`PASSWORD`] to `action` ("approve" or "deny").
pub fn device_form(
    page: &str,
    user_code: Option<&str>,
    confirm: bool,
    user: &str,
    action: &str,
) -> Vec<(String, String)> {
    let mut form = hidden_fields(page);
    if let Some(code) = user_code {
        form.retain(|(k, _)| k != "user_code");
        form.push(("user_code".into(), code.into()));
    }
    if confirm {
        form.push(("confirm_code".into(), "yes".into()));
    }
    form.push(("username".into(), user.into()));
    form.push(("password".into(), PASSWORD.into()));
    form.push(("action".into(), action.into()));
    form
}

/// GETs `url` with `b` and returns the body.
pub async fn get_text(b: &reqwest::Client, url: &str) -> String {
    b.get(url).send().await.unwrap().text().await.unwrap()
}

/// Sends `req` and parses the answer as JSON.
pub async fn json_of(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// GETs `url` with a plain client and parses the body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    json_of(http().get(url)).await
}

/// GETs `/logout` with `b` and the given query.
pub async fn logout_get(
    b: &reqwest::Client,
    s: &TestSso,
    query: &[(&str, &str)],
) -> reqwest::Response {
    b.get(s.url("/logout")).query(query).send().await.unwrap()
}

/// Opens `auth_url` and signs in with the form. Returns the status and
/// `Location` of the answer to the form post.
pub async fn login(
    b: &reqwest::Client,
    s: &TestSso,
    auth_url: &str,
    user: &str,
    pw: &str,
    xff: Option<&str>,
) -> (u16, Option<String>, String) {
    login_at(b, &s.url("/authorize"), auth_url, user, pw, xff).await
}

/// Like [`login`] against the `/authorize` endpoint `authorize`.
pub async fn login_at(
    b: &reqwest::Client,
    authorize: &str,
    auth_url: &str,
    user: &str,
    pw: &str,
    xff: Option<&str>,
) -> (u16, Option<String>, String) {
    let page = b.get(auth_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    post_form(b, authorize, &login_form(&html, user, pw), xff).await
}

/// Signs `user` in (with [`PASSWORD`]) at `auth_url`, expects the redirect
/// to the client and returns its code.
pub async fn login_code(b: &reqwest::Client, s: &TestSso, auth_url: &str, user: &str) -> String {
    let (st, loc, body) = login(b, s, auth_url, user, PASSWORD, None).await;
    assert_eq!(st, 303, "{body}");
    param(&loc.unwrap(), "code").unwrap()
}

pub async fn post_form(
    b: &reqwest::Client,
    url: &str,
    form: &[(String, String)],
    xff: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut req = b.post(url).form(form);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, loc, r.text().await.unwrap())
}

/// A query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The claims of a JWT, unverified (the tests verify elsewhere).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

/// Posts a form to the token endpoint; returns status and JSON.
pub async fn token_request(s: &TestSso, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    token_request_at(&s.url("/token"), form).await
}

/// Posts a form to the token endpoint `url`; returns status and JSON (or
/// the body as a JSON string).
pub async fn token_request_at(url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = http().post(url).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

/// The form of an authorization_code token request by public client
/// `client_id`; `redirect_uri` is left out when `None`.
pub fn code_grant<'a>(
    client_id: &'a str,
    code: &'a str,
    redirect_uri: Option<&'a str>,
    verifier: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
    ];
    if let Some(uri) = redirect_uri {
        form.push(("redirect_uri", uri));
    }
    form.push(("code_verifier", verifier));
    form
}

/// Redeems `code` for public client `client_id` with [`REDIRECT`] and the
/// PKCE `verifier`; returns status and JSON.
pub async fn redeem_code(
    s: &TestSso,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (u16, serde_json::Value) {
    token_request(s, &code_grant(client_id, code, Some(REDIRECT), verifier)).await
}

/// A refresh_token grant by public client `client_id`.
pub async fn refresh(s: &TestSso, client_id: &str, rt: &str) -> (u16, serde_json::Value) {
    refresh_grant(s, client_id, None, rt).await
}

/// A refresh_token grant by confidential client `client_id`.
pub async fn refresh_confidential(
    s: &TestSso,
    client_id: &str,
    secret: &str,
    rt: &str,
) -> (u16, serde_json::Value) {
    refresh_grant(s, client_id, Some(secret), rt).await
}

/// A refresh_token grant, with the client secret in the form if given.
async fn refresh_grant(
    s: &TestSso,
    client_id: &str,
    secret: Option<&str>,
    rt: &str,
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", client_id),
    ];
    if let Some(x) = secret {
        form.push(("client_secret", x));
    }
    token_request(s, &form).await
}

/// A client_credentials grant with the secret in the form.
pub async fn client_credentials_grant(
    s: &TestSso,
    client_id: &str,
    secret: &str,
) -> (u16, serde_json::Value) {
    token_request(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ],
    )
    .await
}

/// The token request form a device of client `cli` polls with.
pub fn device_poll_form(device_code: &str) -> [(&str, &str); 3] {
    [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
        ("client_id", "cli"),
    ]
}

/// One device-code poll of client `cli`.
pub async fn device_poll(s: &TestSso, device_code: &str) -> (u16, serde_json::Value) {
    token_request(s, &device_poll_form(device_code)).await
}

/// Posts `form` to `/device_authorization`; returns the JSON answer.
pub async fn device_authorization(s: &TestSso, form: &[(&str, &str)]) -> serde_json::Value {
    json_of(http().post(s.url("/device_authorization")).form(form)).await
}

/// GET `/userinfo` with bearer `token`.
pub async fn userinfo(s: &TestSso, token: &str) -> reqwest::Response {
    http()
        .get(s.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asserts an OAuth error answer: status 400 and `error`.
#[track_caller]
pub fn assert_oauth_error(status: u16, body: &serde_json::Value, error: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some(error)),
        "{body}"
    );
}

/// [`assert_oauth_error`] with a note on why.
#[track_caller]
pub fn assert_oauth_error_because(status: u16, body: &serde_json::Value, error: &str, why: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some(error)),
        "{why}: {body}"
    );
}

/// A call of the admin API with bearer `token` and an optional JSON body;
/// returns status and JSON (or the body as a JSON string).
pub async fn api(
    s: &TestSso,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut r = http().request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The S256 PKCE challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Logs `user` in through the browser flow of public client `client_id`
/// (PKCE) and exchanges the code; returns the token response.
pub async fn user_tokens(s: &TestSso, client_id: &str, user: &str) -> serde_json::Value {
    user_tokens_scope(s, client_id, user, PASSWORD, "openid").await
}

/// The access token of [`user_tokens`].
pub async fn access_token(s: &TestSso, client_id: &str, user: &str) -> String {
    user_tokens(s, client_id, user).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An `/authorize` URL for public client `client_id` with PKCE and the
/// given scope (none if empty) and extra query; returns it and the PKCE
/// verifier.
pub fn authorize_url(s: &TestSso, client_id: &str, scope: &str, extra: &str) -> (String, String) {
    authorize_url_at(&s.issuer, client_id, scope, extra)
}

/// [`authorize_url`] for the sso at `issuer`.
pub fn authorize_url_at(
    issuer: &str,
    client_id: &str,
    scope: &str,
    extra: &str,
) -> (String, String) {
    let verifier = sso::secret::random_token();
    let challenge = pkce_challenge(&verifier);
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let scope = if scope.is_empty() {
        String::new()
    } else {
        format!("&scope={}", enc(scope))
    };
    let url = format!(
        "{issuer}/authorize?response_type=code&client_id={client_id}{scope}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256{extra}",
        enc(REDIRECT),
    );
    (url, verifier)
}

/// Like [`user_tokens`] with a chosen scope and password.
pub async fn user_tokens_scope(
    s: &TestSso,
    client_id: &str,
    user: &str,
    pw: &str,
    scope: &str,
) -> serde_json::Value {
    let (auth, verifier) = authorize_url(s, client_id, scope, "");
    let (st, loc, body) = login(&browser(), s, &auth, user, pw, None).await;
    assert_eq!(st, 303, "{body}");
    let code = param(&loc.unwrap(), "code").unwrap();
    let (st, tok) = redeem_code(s, client_id, &code, &verifier).await;
    assert_eq!(st, 200, "{tok}");
    tok
}
