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
    db.add_client(&add(
        "cli",
        ClientKind::Public,
        &["authorization_code", "refresh_token", "device_code"],
        Some("console"),
    ))
    .await
    .unwrap();
    db.add_client(&add(
        "admin-ui",
        ClientKind::Public,
        &["authorization_code"],
        Some("sso"),
    ))
    .await
    .unwrap();
    let web = db
        .add_client(&add(
            "web",
            ClientKind::Confidential,
            &["authorization_code", "refresh_token"],
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    let daemon = db
        .add_client(&add(
            "deployd",
            ClientKind::Confidential,
            &["client_credentials"],
            Some("console"),
        ))
        .await
        .unwrap()
        .unwrap();
    let other = db
        .add_client(&add(
            "other",
            ClientKind::Confidential,
            &["authorization_code", "refresh_token"],
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    (
        web.expose().to_owned(),
        daemon.expose().to_owned(),
        other.expose().to_owned(),
    )
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

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the form on an HTML page.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let rest = rest.strip_prefix(" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((unescape(name), unescape(value)))
        })
        .collect()
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
    let page = b.get(auth_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("username".into(), user.into()));
    form.push(("password".into(), pw.into()));
    post_form(b, &s.url("/authorize"), &form, xff).await
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
    let r = http()
        .post(s.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

/// Logs `user` in through the browser flow of public client `client_id`
/// (PKCE) and exchanges the code; returns the token response.
pub async fn user_tokens(s: &TestSso, client_id: &str, user: &str) -> serde_json::Value {
    use base64::Engine;
    use sha2::Digest;
    let verifier = sso::secret::random_token();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let auth = format!(
        "{}?response_type=code&client_id={client_id}&scope=openid&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        s.url("/authorize"),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
    );
    let (st, loc, body) = login(&browser(), s, &auth, user, PASSWORD, None).await;
    assert_eq!(st, 303, "{body}");
    let code = param(&loc.unwrap(), "code").unwrap();
    let (st, tok) = token_request(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{tok}");
    tok
}

/// An `/authorize` URL for public client `client_id` with PKCE and the
/// given scope and extra query; returns it and the PKCE verifier.
pub fn authorize_url(s: &TestSso, client_id: &str, scope: &str, extra: &str) -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = sso::secret::random_token();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let url = format!(
        "{}?response_type=code&client_id={client_id}&scope={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256{extra}",
        s.url("/authorize"),
        enc(scope),
        enc(REDIRECT),
    );
    (url, verifier)
}

/// Like [`user_tokens`] with a chosen scope.
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
    let (st, tok) = token_request(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{tok}");
    tok
}
