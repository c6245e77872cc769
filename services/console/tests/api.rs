//! The API against real servers: the `console` binary (spawned with a
//! generated config, its log kept in a file, at `debug`), a SQLite
//! database in a temp dir, and sso in-process on a loopback listener with
//! its own RSA keys. Tokens come from sso's real flows over HTTP: users
//! log in on sso's login page and the CLI's public client redeems the
//! code with PKCE; the daemon uses the client-credentials grant. Where a
//! test needs a token no flow gives (expired, chosen groups), it is signed
//! with sso's own key in the shape sso's token endpoint gives. No etcd is
//! started here: the routes that need it are in tests/deploy_api.rs.

mod common;

use common::now;
use std::time::Duration;

use lain_store::secret::SecretsKey;
use lain_testkit::process::{Logged, ServerDir};
use reqwest::Method;
use serde_json::{json, Value};
use sso::domain::{ClientKind, NewClient};
use tokio::task::block_in_place;

const BIN: &str = env!("CARGO_BIN_EXE_console");
const PASSWORD: &str = "correct-horse-battery-1";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const ADMIN_GROUP: &str = "lain-admins";

/// sso on a loopback listener, with a client-credentials client `ci`
/// whose tokens are for console.
/// sso with users, an admin group, the CLI's client and a daemon client.
struct TestSso {
    base: common::TestSso,
    ci_secret: String,
}

impl std::ops::Deref for TestSso {
    type Target = common::TestSso;
    fn deref(&self) -> &common::TestSso {
        &self.base
    }
}

async fn start_sso() -> TestSso {
    let base = common::TestSso::start().await;
    let sso = &base.sso;
    // Users for the real login flow: root (in the admin group), alice and
    // mallory; the CLI's public client, whose tokens are for console.
    base.add_users(PASSWORD).await;
    let db = &sso.state().db;
    db.add_client(&NewClient {
        client_id: "cli".into(),
        name: "lain CLI".into(),
        kind: ClientKind::Public,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: Vec::new(),
        grant_types: vec!["authorization_code".into()],
        audience: Some("console".into()),
    })
    .await
    .unwrap();
    let ci_secret = sso
        .state()
        .db
        .add_client(&NewClient {
            client_id: "ci".into(),
            name: "ci daemon".into(),
            kind: ClientKind::Confidential,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials".into()],
            audience: Some("console".into()),
        })
        .await
        .expect("add client")
        .expect("a confidential client has a secret")
        .expose()
        .to_owned();
    TestSso { base, ci_secret }
}

impl TestSso {
    /// An access token for user `user`, shaped like the ones sso's token
    /// endpoint issues to the CLI, signed with sso's active key, valid
    /// from `now + from` to `now + until` seconds.
    fn user_token(&self, user: &str, groups: &[&str], from: i64, until: i64) -> String {
        let t = now();
        let claims = json!({
            "iss": self.issuer,
            "sub": user,
            "aud": "console",
            "client_id": "cli",
            "iat": t + from,
            "nbf": t + from,
            "exp": t + until,
            "jti": format!("test-{user}-{t}-{from}"),
            "scope": "openid",
            "groups": groups,
            "preferred_username": user,
        });
        self.sso.state().keys.sign("at+jwt", &claims).expect("sign")
    }

    /// A real access token of `user`: sso's login page, its form filled
    /// in, the authorization code redeemed with PKCE by the CLI's client.
    async fn login(&self, user: &str) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let verifier = format!("verifier-{user}-{}-0123456789abcdefghijklmnop", now());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let redirect = "http%3A%2F%2F127.0.0.1%3A9%2Fcallback";
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = browser
            .get(format!(
                "{}/authorize?response_type=code&client_id=cli&scope=openid&redirect_uri={redirect}\
                 &code_challenge={challenge}&code_challenge_method=S256",
                self.issuer
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "login page");
        let html = page.text().await.unwrap();
        let form = lain_testkit::html::login_form(&html, user, PASSWORD);
        let r = browser
            .post(format!("{}/authorize", self.issuer))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "login of {user}");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        let code = location
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("code="))
            .expect("a code")
            .to_owned();
        let r: Value = http()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", "cli"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {r}"))
            .to_owned()
    }

    /// A client-credentials token of client `ci`, from sso's `/token`.
    async fn daemon_token(&self) -> String {
        let r: Value = http()
            .post(format!("{}/token", self.issuer))
            .basic_auth("ci", Some(&self.ci_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {r}"))
            .to_owned()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The console binary, its directory (database, key, config, log).
struct Console {
    proc: Logged,
    base: String,
    dir: ServerDir,
}

/// Where console keeps its data in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Extra config for console (appended verbatim).
fn start_console(issuer: &str, database: Option<&str>, extra: &str) -> Console {
    let dir = ServerDir::new("console-api").unwrap();
    let key = dir.path().join("secrets.key");
    std::fs::write(&key, SecretsKey::generate().to_base64().as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lain_testkit::free_port()));
    let database = database
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}/console.db?mode=rwc", dir.path().display()));
    let config = format!(
        "listen = \"{addr}\"\nlog_format = \"json\"\n\
         database = \"{database}\"\n\
         secrets_key_file = \"{k}\"\ncluster_domain = \"lain.local\"\n\
         [auth]\nissuer = \"{issuer}\"\nadmin_group = \"{ADMIN_GROUP}\"\n{extra}",
        k = key.display(),
    );
    let path = dir.path().join("console.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config").arg(&path).env("RUST_LOG", "debug");
    let mut proc = Logged::spawn("console", cmd, &dir.log_path("console")).unwrap();
    proc.wait_ready(Duration::from_secs(20), || {
        lain_testkit::http::get(addr, "127.0.0.1", "/healthz").is_some_and(|(c, _)| c == 200)
    })
    .expect("console starts");
    Console {
        proc,
        base: format!("http://{addr}"),
        dir,
    }
}

struct Env {
    sso: TestSso,
    console: Console,
    /// The PostgreSQL server when the backend is PostgreSQL.
    pg: Option<lain_testkit::Postgres>,
}

async fn start() -> Env {
    start_on(Backend::Sqlite, "").await
}

/// console on `backend`, with `extra` appended to its config.
async fn start_on(backend: Backend, extra: &str) -> Env {
    let sso = start_sso().await;
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(
            tokio::task::spawn_blocking(lain_testkit::Postgres::start)
                .await
                .unwrap()
                .expect("postgres starts"),
        ),
    };
    let url = pg.as_ref().map(|pg| pg.create_database().unwrap());
    let console = block_in_place(|| start_console(&sso.issuer, url.as_deref(), extra));
    Env { sso, console, pg }
}

/// A request body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>, &'static str),
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// Asserts a JSON error with `status` and `code`.
    fn error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "{}", self.text);
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        assert!(v["hint"].is_string(), "{}", self.text);
    }
}

impl Env {
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Answer {
        // An oversize body is refused before it is read: console answers
        // and closes while the client may still be sending, and a loaded
        // machine can then see the connection reset before the answer.
        // Such a transport error is retried; the answer is what counts.
        let mut tries = 0;
        let r = loop {
            let mut req = http().request(method.clone(), format!("{}{path}", self.console.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req = match body.clone() {
                Body::None => req,
                Body::Json(v) => req.json(&v),
                Body::Raw(b, ct) => req.header("content-type", ct).body(b),
            };
            match req.send().await {
                Ok(r) => break r,
                Err(e) if tries < 3 => {
                    tries += 1;
                    eprintln!("{method} {path}: {e}; retrying");
                }
                Err(e) => panic!("{method} {path}: {e}"),
            }
        };
        Answer {
            status: r.status().as_u16(),
            text: r.text().await.unwrap_or_default(),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let a = self.call(Method::GET, path, Some(token), Body::None).await;
        assert_eq!(a.status, 200, "GET {path}: {}", a.text);
        a.json()
    }

    fn admin(&self) -> String {
        self.sso.user_token("root", &[ADMIN_GROUP, "dev"], 0, 3600)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.console.dir.log_path("console")).unwrap_or_default()
    }
}

fn version(n: u32) -> String {
    format!("{}-{:040x}", 1_700_000_000 + n, n)
}

fn release_body(app: &str, n: u32, lain_yaml: &str) -> Value {
    let v = version(n);
    json!({
        "version": v,
        "image": format!("registry.lain.local:5000/{app}:release-{v}"),
        "digest": format!("sha256:{:064x}", n),
        "lain_yaml": lain_yaml,
    })
}

fn lain_yaml(app: &str) -> String {
    format!(
        "appname: {app}\nbuild:\n  base: golang:1.8\n  script:\n    - go build -o bin/app .\n\
         web:\n  cmd: ./bin/app\n  port: 8080\n  memory: 128m\n"
    )
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Expired,
    Forged,
    Outsider,
    Daemon,
    Maintainer,
    Admin,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::Expired,
    Who::Forged,
    Who::Outsider,
    Who::Daemon,
    Who::Maintainer,
    Who::Admin,
];

struct Tokens {
    expired: String,
    forged: String,
    outsider: String,
    daemon: String,
    maintainer: String,
    admin: String,
}

impl Tokens {
    /// Real logins for the users, sso's client-credentials grant for the
    /// daemon; only the expired token is made up (signed with sso's key).
    async fn new(env: &Env) -> Tokens {
        let admin = env.sso.login("root").await;
        // The admin's token with its signature replaced: header and claims
        // intact, signed by nobody.
        let mut parts: Vec<&str> = admin.split('.').collect();
        let sig = parts[2];
        let bad_sig: String = sig
            .chars()
            .map(|c| if c == 'A' { 'B' } else { 'A' })
            .collect();
        parts[2] = &bad_sig;
        let forged = parts.join(".");
        Tokens {
            expired: env.sso.user_token("alice", &[ADMIN_GROUP], -7200, -3600),
            forged,
            outsider: env.sso.login("mallory").await,
            daemon: env.sso.daemon_token().await,
            maintainer: env.sso.login("alice").await,
            admin,
        }
    }

    fn of(&self, who: Who) -> Option<&str> {
        match who {
            Who::Anonymous => None,
            Who::Expired => Some(&self.expired),
            Who::Forged => Some(&self.forged),
            Who::Outsider => Some(&self.outsider),
            Who::Daemon => Some(&self.daemon),
            Who::Maintainer => Some(&self.maintainer),
            Who::Admin => Some(&self.admin),
        }
    }

    /// The status `who` gets for a mutation of an app it does not own.
    fn expected(who: Who, ok: u16) -> u16 {
        match who {
            Who::Anonymous | Who::Expired | Who::Forged => 401,
            Who::Outsider | Who::Daemon => 403,
            Who::Maintainer | Who::Admin => ok,
        }
    }

    /// The actor the audit log names for `who`.
    fn actor(who: Who) -> &'static str {
        match who {
            Who::Anonymous => "anonymous",
            Who::Expired | Who::Forged => "invalid-token",
            Who::Outsider => "mallory",
            Who::Daemon => "client:ci",
            Who::Maintainer => "alice",
            Who::Admin => "root",
        }
    }
}

/// Everything an admin can read about `app` (and the app list): a denied
/// call must leave all of it as it was.
async fn snapshot(env: &Env, admin: &str, app: &str) -> Value {
    let a = env
        .call(
            Method::GET,
            &format!("/api/v1/apps/{app}"),
            Some(admin),
            Body::None,
        )
        .await;
    let exists = a.status == 200;
    let mut s = json!({
        "apps": env.get("/api/v1/apps", admin).await,
        "app": if exists { a.json() } else { Value::Null },
    });
    if exists {
        s["maintainers"] = env
            .get(&format!("/api/v1/apps/{app}/maintainers"), admin)
            .await;
        s["releases"] = env
            .get(&format!("/api/v1/apps/{app}/releases"), admin)
            .await;
        s["secrets"] = env.get(&format!("/api/v1/apps/{app}/secrets"), admin).await;
    }
    s
}

/// One mutating call of the matrix: the request, what the admin does
/// before each attempt so that it can succeed, and its audit action.
struct Mutation {
    action: &'static str,
    method: Method,
    path: String,
    body: Body,
    ok: u16,
    setup: Vec<(Method, String, Body)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorization_matrix() {
    authorization_matrix_on(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorization_matrix_on_postgres() {
    authorization_matrix_on(Backend::Postgres).await
}

async fn authorization_matrix_on(backend: Backend) {
    let env = start_on(backend, "").await;
    let t = Tokens::new(&env).await;
    let admin = t.admin.clone();

    // alice creates `matrix` and so owns it; `gone` is for the delete.
    let a = env
        .call(
            Method::POST,
            "/api/v1/apps",
            t.of(Who::Maintainer),
            Body::Json(json!({"name": "matrix"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["created_by"], "alice");

    let yaml = lain_yaml("matrix");
    let mutations = vec![
        Mutation {
            action: "maintainer.add",
            method: Method::PUT,
            path: "/api/v1/apps/matrix/maintainers".into(),
            body: Body::Json(json!({"subject": "carol", "role": "maintainer"})),
            ok: 200,
            setup: vec![],
        },
        Mutation {
            action: "maintainer.remove",
            method: Method::DELETE,
            path: "/api/v1/apps/matrix/maintainers/carol".into(),
            body: Body::None,
            ok: 204,
            setup: vec![(
                Method::PUT,
                "/api/v1/apps/matrix/maintainers".into(),
                Body::Json(json!({"subject": "carol"})),
            )],
        },
        Mutation {
            action: "release.register",
            method: Method::POST,
            path: "/api/v1/apps/matrix/releases".into(),
            body: Body::Json(release_body("matrix", 1, &yaml)),
            ok: 0, // 201 the first time, 200 after
            setup: vec![],
        },
        Mutation {
            action: "secret.set",
            method: Method::PUT,
            path: "/api/v1/apps/matrix/secrets/DB_PASSWORD".into(),
            body: Body::Raw(b"matrix-secret-value".to_vec(), "application/octet-stream"),
            ok: 200,
            setup: vec![],
        },
        Mutation {
            action: "secret.remove",
            method: Method::DELETE,
            path: "/api/v1/apps/matrix/secrets/TOKEN".into(),
            body: Body::None,
            ok: 204,
            setup: vec![(
                Method::PUT,
                "/api/v1/apps/matrix/secrets/TOKEN".into(),
                Body::Raw(b"token-value".to_vec(), "text/plain"),
            )],
        },
        Mutation {
            action: "app.delete",
            method: Method::DELETE,
            path: "/api/v1/apps/gone".into(),
            body: Body::None,
            ok: 204,
            setup: vec![],
        },
    ];

    for m in &mutations {
        for who in EVERYONE {
            for (method, path, body) in &m.setup {
                let a = env
                    .call(method.clone(), path, Some(&admin), body.clone())
                    .await;
                assert!(a.status < 300, "setup {path}: {}", a.text);
            }
            let app = m.path.split('/').nth(4).unwrap();
            if m.action == "app.delete" {
                // `gone` exists before each attempt, maintained by alice.
                let a = env
                    .call(Method::GET, "/api/v1/apps/gone", Some(&admin), Body::None)
                    .await;
                if a.status == 404 {
                    let a = env
                        .call(
                            Method::POST,
                            "/api/v1/apps",
                            t.of(Who::Maintainer),
                            Body::Json(json!({"name": "gone"})),
                        )
                        .await;
                    assert_eq!(a.status, 201, "{}", a.text);
                }
            }
            let before = snapshot(&env, &admin, app).await;
            let a = env
                .call(m.method.clone(), &m.path, t.of(who), m.body.clone())
                .await;
            let want = Tokens::expected(who, m.ok);
            if want == 0 {
                assert!(
                    a.status == 200 || a.status == 201,
                    "{} as {who:?}: {} {}",
                    m.action,
                    a.status,
                    a.text
                );
            } else {
                assert_eq!(a.status, want, "{} as {who:?}: {}", m.action, a.text);
            }
            let entry = &env.get("/api/v1/audit?limit=1", &admin).await[0];
            assert_eq!(entry["action"], m.action, "{entry}");
            assert_eq!(entry["actor"], Tokens::actor(who), "{entry}");
            assert_eq!(entry["app"], app, "{entry}");
            assert!(
                entry["request_id"].as_str().is_some_and(|r| !r.is_empty()),
                "{entry}"
            );
            if a.status >= 400 {
                a.error(
                    a.status,
                    if a.status == 401 {
                        "unauthorized"
                    } else {
                        "forbidden"
                    },
                );
                assert_eq!(entry["result"], "denied", "{entry}");
                let after = snapshot(&env, &admin, app).await;
                assert_eq!(before, after, "{} as {who:?} changed something", m.action);
            } else {
                assert_eq!(entry["result"], "ok", "{entry}");
            }
        }
    }

    // Creating an app: anyone authenticated, who becomes its owner.
    for (i, who) in EVERYONE.into_iter().enumerate() {
        let name = format!("new{i}");
        let a = env
            .call(
                Method::POST,
                "/api/v1/apps",
                t.of(who),
                Body::Json(json!({"name": name})),
            )
            .await;
        let entry = &env.get("/api/v1/audit?limit=1", &admin).await[0];
        assert_eq!(entry["action"], "app.create");
        assert_eq!(entry["actor"], Tokens::actor(who));
        match who {
            Who::Anonymous | Who::Expired | Who::Forged => {
                a.error(401, "unauthorized");
                assert_eq!(entry["result"], "denied");
                let s = env
                    .call(
                        Method::GET,
                        &format!("/api/v1/apps/{name}"),
                        Some(&admin),
                        Body::None,
                    )
                    .await;
                assert_eq!(s.status, 404, "{}", s.text);
            }
            _ => {
                assert_eq!(a.status, 201, "{who:?}: {}", a.text);
                assert_eq!(entry["result"], "ok");
                let m = env
                    .get(&format!("/api/v1/apps/{name}/maintainers"), &admin)
                    .await;
                assert_eq!(m[0]["subject"], Tokens::actor(who));
                assert_eq!(m[0]["role"], "owner");
            }
        }
    }

    // whoami tells users, admins and daemons apart.
    let w = env
        .get("/api/v1/whoami", t.of(Who::Maintainer).unwrap())
        .await;
    assert_eq!(w["subject"], "alice");
    assert_eq!(w["kind"], "user");
    assert_eq!(w["admin"], false);
    assert!(
        w["maintains"]
            .as_array()
            .unwrap()
            .contains(&json!("matrix")),
        "{w}"
    );
    let w = env.get("/api/v1/whoami", &admin).await;
    assert_eq!(w["admin"], true);
    let w = env.get("/api/v1/whoami", t.of(Who::Daemon).unwrap()).await;
    assert_eq!(w["subject"], "client:ci");
    assert_eq!(w["kind"], "daemon");
    assert_eq!(w["admin"], false);
    for who in [Who::Anonymous, Who::Expired, Who::Forged] {
        env.call(Method::GET, "/api/v1/whoami", t.of(who), Body::None)
            .await
            .error(401, "unauthorized");
    }
    // An expired token says so.
    let a = env
        .call(
            Method::GET,
            "/api/v1/whoami",
            t.of(Who::Expired),
            Body::None,
        )
        .await;
    assert!(
        a.json()["message"].as_str().unwrap().contains("expired"),
        "{}",
        a.text
    );

    // The audit log: a maintainer reads its app's, not the whole log nor
    // another app's; an outsider reads none.
    let mine = env
        .get("/api/v1/audit?app=matrix", t.of(Who::Maintainer).unwrap())
        .await;
    assert!(mine
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["app"] == "matrix"));
    assert!(mine
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["result"] == "denied"));
    env.call(
        Method::GET,
        "/api/v1/audit",
        t.of(Who::Maintainer),
        Body::None,
    )
    .await
    .error(403, "forbidden");
    env.call(
        Method::GET,
        "/api/v1/audit?app=new3",
        t.of(Who::Maintainer),
        Body::None,
    )
    .await
    .error(403, "forbidden");
    env.call(
        Method::GET,
        "/api/v1/audit?app=matrix",
        t.of(Who::Outsider),
        Body::None,
    )
    .await
    .error(403, "forbidden");
    let by = env.get("/api/v1/audit?actor=mallory&limit=3", &admin).await;
    assert_eq!(by.as_array().unwrap().len(), 3);
    assert!(by
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "mallory"));
    let first = by[0]["id"].as_i64().unwrap();
    let next = env
        .get(
            &format!("/api/v1/audit?actor=mallory&before={first}&limit=1"),
            &admin,
        )
        .await;
    assert_eq!(next[0]["id"], by[1]["id"]);
    // By action and result; empty filters (a form's empty fields) are no
    // filter; an unknown result is refused.
    let denied = env
        .get("/api/v1/audit?app=matrix&result=denied", &admin)
        .await;
    let denied = denied.as_array().unwrap();
    assert!(!denied.is_empty() && denied.iter().all(|e| e["result"] == "denied"));
    let actions = env
        .get("/api/v1/audit?action=maintainer.add&limit=1000", &admin)
        .await;
    let actions = actions.as_array().unwrap();
    assert!(!actions.is_empty() && actions.iter().all(|e| e["action"] == "maintainer.add"));
    let empty = env
        .get("/api/v1/audit?app=&actor=&action=&result=&limit=3", &admin)
        .await;
    assert_eq!(empty.as_array().unwrap().len(), 3);
    env.call(
        Method::GET,
        "/api/v1/audit?result=maybe",
        Some(admin.as_str()),
        Body::None,
    )
    .await
    .error(400, "invalid_request");

    // Secrets: only maintainers and admins may list them.
    env.call(
        Method::GET,
        "/api/v1/apps/matrix/secrets",
        t.of(Who::Outsider),
        Body::None,
    )
    .await
    .error(403, "forbidden");
    let s = env
        .get(
            "/api/v1/apps/matrix/secrets",
            t.of(Who::Maintainer).unwrap(),
        )
        .await;
    assert_eq!(s[0]["name"], "DB_PASSWORD");
    assert_eq!(s[0]["version"], 2, "{s}");

    // The last owner cannot be removed.
    env.call(
        Method::DELETE,
        "/api/v1/apps/matrix/maintainers/alice",
        Some(&admin),
        Body::None,
    )
    .await
    .error(409, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_4xx_json_and_changes_nothing() {
    let env = start().await;
    let admin = env.admin();
    let alice = env.sso.user_token("alice", &[], 0, 3600);
    let a = env
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(&alice),
            Body::Json(json!({"name": "hello"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let before = snapshot(&env, &admin, "hello").await;
    let audit_before = env
        .get("/api/v1/audit", &admin)
        .await
        .as_array()
        .unwrap()
        .len();

    let raw = |s: &str| Body::Raw(s.as_bytes().to_vec(), "application/json");
    let cases: Vec<(Method, &str, Body, u16, &str)> = vec![
        (
            Method::POST,
            "/api/v1/apps",
            raw("{\"name\": "),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            raw("[1, 2]"),
            400,
            "invalid_json",
        ),
        (Method::POST, "/api/v1/apps", raw(""), 400, "invalid_json"),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Raw(b"name=x".to_vec(), "application/x-www-form-urlencoded"),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "x2", "owner": "mallory"})),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": 7})),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "bad name!"})),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "-x"})),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "service"})),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "a".repeat(64)})),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "ok1", "apptype": "daemon"})),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Body::Json(json!({"name": "HELLO"})),
            409,
            "conflict",
        ),
        (
            Method::PUT,
            "/api/v1/apps/hello/maintainers",
            Body::Json(json!({"subject": "bob", "role": "god"})),
            400,
            "invalid_request",
        ),
        (
            Method::PUT,
            "/api/v1/apps/hello/maintainers",
            Body::Json(json!({"subject": "", "role": "owner"})),
            400,
            "invalid_request",
        ),
        (
            Method::PUT,
            "/api/v1/apps/hello/maintainers",
            Body::Json(json!({"subject": "bob", "extra": 1})),
            400,
            "invalid_json",
        ),
        (
            Method::PUT,
            "/api/v1/apps/hello/secrets/bad$name",
            Body::Raw(b"v".to_vec(), "text/plain"),
            400,
            "invalid_request",
        ),
        (
            Method::PUT,
            "/api/v1/apps/hello/secrets/BIG",
            Body::Raw(vec![b'x'; 65 * 1024], "application/octet-stream"),
            413,
            "too_large",
        ),
        (
            Method::POST,
            "/api/v1/apps/hello/releases",
            Body::Json(
                json!({"version": "1", "image": "x", "digest": "y", "lain_yaml": lain_yaml("hello")}),
            ),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/apps/hello/releases",
            Body::Json(json!({"version": version(1)})),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/apps/nosuch/releases",
            Body::Json(release_body("nosuch", 1, &lain_yaml("nosuch"))),
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/apps/hello/secrets/NOPE",
            Body::None,
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/apps/hello/maintainers/nobody",
            Body::None,
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/api/v1/apps/hello/releases?limit=many",
            Body::None,
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/api/v1/audit?bogus=1",
            Body::None,
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/api/v1/nothing-here",
            Body::None,
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            "/api/v1/apps",
            Body::None,
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let a = env.call(method.clone(), path, Some(&admin), body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.text);
        a.error(status, code);
    }
    // Oversize: 2 MiB of JSON is refused before it is read, as JSON.
    let big = json!({"name": "big", "giturl": "x".repeat(2 << 20)});
    env.call(Method::POST, "/api/v1/apps", Some(&admin), Body::Json(big))
        .await
        .error(413, "too_large");
    let big = vec![b'x'; 2 << 20];
    env.call(
        Method::PUT,
        "/api/v1/apps/hello/secrets/BIG",
        Some(&admin),
        Body::Raw(big, "application/octet-stream"),
    )
    .await
    .error(413, "too_large");
    // A malformed Authorization header is a 400 and a garbage token a 401,
    // both JSON, whatever the body.
    let a = http()
        .post(format!("{}/api/v1/apps", env.console.base))
        .header("authorization", "Bearer a b")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 400);
    let v: Value = a.json().await.unwrap();
    assert_eq!(v["code"], "invalid_request", "{v}");
    let a = env
        .call(Method::POST, "/api/v1/apps", Some("garbage"), raw("{"))
        .await;
    a.error(401, "unauthorized");
    let a = http()
        .get(format!("{}/api/v1/apps", env.console.base))
        .basic_auth("root", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 401);
    assert!(a.headers().get("www-authenticate").is_some());

    assert_eq!(
        before,
        snapshot(&env, &admin, "hello").await,
        "bad input changed something"
    );
    for name in ["x2", "ok1", "big", "bad name!"] {
        let a = env
            .call(
                Method::GET,
                &format!("/api/v1/apps/{name}"),
                Some(&admin),
                Body::None,
            )
            .await;
        assert!(a.status == 404 || a.status == 400, "{name}: {}", a.text);
    }
    // The failed mutations were audited as errors (reads are not audited).
    let log = env.get("/api/v1/audit?limit=1000", &admin).await;
    let errors = log
        .as_array()
        .unwrap()
        .iter()
        .take(log.as_array().unwrap().len() - audit_before)
        .filter(|e| e["result"] == "error")
        .count();
    assert!(errors >= 20, "{errors} errors audited: {log}");
    // Nothing of this was a 5xx, so nothing was logged as an error.
    assert!(!env.log().contains("\"level\":\"ERROR\""), "{}", env.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releases_validate_lain_yaml() {
    let env = start().await;
    let alice = env.sso.user_token("alice", &[], 0, 3600);
    env.call(
        Method::POST,
        "/api/v1/apps",
        Some(&alice),
        Body::Json(json!({"name": "hello"})),
    )
    .await;
    let path = "/api/v1/apps/hello/releases";

    // Invalid: a bad memory value on line 9.
    let bad = lain_yaml("hello").replace("memory: 128m", "memory: lots");
    let a = env
        .call(
            Method::POST,
            path,
            Some(&alice),
            Body::Json(release_body("hello", 1, &bad)),
        )
        .await;
    a.error(400, "invalid_lain_yaml");
    let v = a.json();
    let d = v["diagnostics"].as_array().unwrap();
    assert!(
        d.iter()
            .any(|d| d.as_str().unwrap().starts_with("lain.yaml:9:")),
        "{}",
        a.text
    );
    assert!(
        v["message"].as_str().unwrap().contains("lain.yaml:9:"),
        "{}",
        a.text
    );
    // Not YAML at all.
    let a = env
        .call(
            Method::POST,
            path,
            Some(&alice),
            Body::Json(release_body("hello", 1, "appname: [\n")),
        )
        .await;
    a.error(400, "invalid_lain_yaml");
    // Another app's lain.yaml.
    let a = env
        .call(
            Method::POST,
            path,
            Some(&alice),
            Body::Json(release_body("hello", 1, &lain_yaml("other"))),
        )
        .await;
    a.error(400, "invalid_request");
    assert!(a.text.contains("other"), "{}", a.text);
    assert_eq!(env.get(path, &alice).await, json!([]));

    // Valid: 201, then 200 for the same again, 409 for other content.
    let good = release_body("hello", 1, &lain_yaml("hello"));
    let a = env
        .call(Method::POST, path, Some(&alice), Body::Json(good.clone()))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["created"], true);
    assert_eq!(a.json()["release"]["pushed_by"], "alice");
    let a = env
        .call(Method::POST, path, Some(&alice), Body::Json(good.clone()))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["created"], false);
    let mut other = good.clone();
    other["digest"] = json!(format!("sha256:{:064x}", 99));
    env.call(Method::POST, path, Some(&alice), Body::Json(other))
        .await
        .error(409, "conflict");
    let a = env
        .call(
            Method::POST,
            path,
            Some(&alice),
            Body::Json(release_body("hello", 2, &lain_yaml("hello"))),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let list = env.get(path, &alice).await;
    assert_eq!(list[0]["version"], version(2));
    assert_eq!(list[1]["version"], version(1));
    assert!(list[0].get("lain_yaml").is_none());
    let one = env.get(&format!("{path}/{}", version(1)), &alice).await;
    assert_eq!(one["lain_yaml"], lain_yaml("hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_never_leave_in_plaintext() {
    secrets_never_leave_in_plaintext_on(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_never_leave_in_plaintext_on_postgres() {
    secrets_never_leave_in_plaintext_on(Backend::Postgres).await
}

async fn secrets_never_leave_in_plaintext_on(backend: Backend) {
    let env = start_on(backend, "").await;
    let admin = env.admin();
    let alice = env.sso.user_token("alice", &[], 0, 3600);
    env.call(
        Method::POST,
        "/api/v1/apps",
        Some(&alice),
        Body::Json(json!({"name": "vault", "giturl": format!("https://git.example.com/{CANARY}")})),
    )
    .await;
    const MARK: &str = "PLAINTEXT-MARKER-7f3a9c";
    // Stored in the clear on purpose: proves the file scan below sees
    // what the database holds.
    const CANARY: &str = "CANARY-NOT-SECRET-51c2";
    let binary: Vec<u8> = [MARK.as_bytes(), &[0, 255, 10, 13]].concat();
    for (name, value) in [("A", MARK.as_bytes().to_vec()), ("B", binary)] {
        let a = env
            .call(
                Method::PUT,
                &format!("/api/v1/apps/vault/secrets/{name}"),
                Some(&alice),
                Body::Raw(value, "application/octet-stream"),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert!(!a.text.contains(MARK));
        assert_eq!(a.json()["version"], 1);
    }
    // A JSON body is the value too, verbatim.
    let a = env
        .call(
            Method::PUT,
            "/api/v1/apps/vault/secrets/A",
            Some(&alice),
            Body::Json(json!({"value": MARK})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["version"], 2);
    // A refused set, and a set to a missing app, do not echo it either.
    let mallory = env.sso.user_token("mallory", &[], 0, 3600);
    for (tok, path) in [
        (mallory.as_str(), "/api/v1/apps/vault/secrets/A"),
        (admin.as_str(), "/api/v1/apps/nosuch/secrets/A"),
        (admin.as_str(), "/api/v1/apps/vault/secrets/bad%20name"),
    ] {
        let a = env
            .call(
                Method::PUT,
                path,
                Some(tok),
                Body::Raw(MARK.as_bytes().to_vec(), "text/plain"),
            )
            .await;
        assert!(a.status >= 400 && !a.text.contains(MARK), "{}", a.text);
    }

    let mut seen = String::new();
    for path in [
        "/api/v1/apps",
        "/api/v1/apps/vault",
        "/api/v1/apps/vault/maintainers",
        "/api/v1/apps/vault/releases",
        "/api/v1/apps/vault/secrets",
        "/api/v1/audit?limit=1000",
        "/api/v1/whoami",
        "/api/v1/openapi.json",
        "/metrics",
    ] {
        let a = env.call(Method::GET, path, Some(&admin), Body::None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        seen.push_str(&a.text);
    }
    assert!(!seen.contains(MARK), "a secret value was served: {seen}");
    let list = env.get("/api/v1/apps/vault/secrets", &alice).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    for s in list.as_array().unwrap() {
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["app", "name", "updated_at", "updated_by", "version"],
            "{s}"
        );
    }
    // Removing it.
    let a = env
        .call(
            Method::DELETE,
            "/api/v1/apps/vault/secrets/B",
            Some(&alice),
            Body::None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(
        env.get("/api/v1/apps/vault/secrets", &alice)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Nor in the console's log (at debug), nor in its database files.
    let log = env.log();
    assert!(
        log.contains("secret.set") || log.contains("/secrets/"),
        "log too quiet to prove anything:\n{log}"
    );
    assert!(!log.contains(MARK), "a secret value was logged:\n{log}");
    // The database's files: SQLite's, or PostgreSQL's whole data
    // directory (tables and WAL) after a checkpoint has written it out.
    let files = match &env.pg {
        None => std::fs::read_dir(env.console.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("console.db")
            })
            .collect::<Vec<_>>(),
        Some(pg) => {
            pg.psql("CHECKPOINT").unwrap();
            files_under(&pg.data_dir())
        }
    };
    assert!(!files.is_empty());
    let mut canary_seen = false;
    for p in files {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        canary_seen |= bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes());
        assert!(
            !bytes.windows(MARK.len()).any(|w| w == MARK.as_bytes()),
            "plaintext in {}",
            p.display()
        );
    }
    assert!(
        canary_seen,
        "the scan did not see the app's giturl: it proves nothing"
    );
}

/// Every regular file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_lists_every_route_and_metrics_count_requests() {
    let env = start().await;
    let a = env
        .call(Method::GET, "/api/v1/openapi.json", None, Body::None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let want: &[(&str, &[&str])] = &[
        ("/api/v1/whoami", &["get"]),
        ("/api/v1/apps", &["get", "post"]),
        ("/api/v1/apps/{app}", &["get", "delete"]),
        ("/api/v1/apps/{app}/maintainers", &["get", "put"]),
        ("/api/v1/apps/{app}/maintainers/{subject}", &["delete"]),
        ("/api/v1/apps/{app}/releases", &["get", "post"]),
        ("/api/v1/apps/{app}/releases/{version}", &["get"]),
        ("/api/v1/apps/{app}/secrets", &["get"]),
        ("/api/v1/apps/{app}/secrets/{name}", &["put", "delete"]),
        ("/api/v1/audit", &["get"]),
        ("/api/v1/apps/{app}/deploy", &["post"]),
        ("/api/v1/apps/{app}/undeploy", &["post"]),
        ("/api/v1/apps/{app}/procs/{proc}/scale", &["post"]),
        ("/api/v1/apps/{app}/rollback", &["post"]),
        ("/api/v1/apps/{app}/deployments", &["get"]),
        ("/api/v1/apps/{app}/status", &["get"]),
        ("/api/v1/apps/{app}/deployments/{id}/events", &["get"]),
        ("/api/v1/apps/{app}/procs/{proc}/logs", &["get"]),
        ("/api/v1/apps/{app}/events", &["get"]),
        ("/api/v1/cluster/status", &["get"]),
        ("/api/v1/registry/token", &["get"]),
        ("/api/v1/nodes", &["get"]),
        ("/api/v1/nodes/{name}", &["put", "delete"]),
        ("/api/v1/nodes/{name}/cordon", &["post"]),
        ("/api/v1/nodes/{name}/uncordon", &["post"]),
        ("/api/v1/nodes/{name}/drain", &["post"]),
        ("/api/v1/certs", &["get"]),
        ("/api/v1/certs/{name}", &["put", "delete"]),
        ("/api/v1/apps/{app}/backups", &["get", "post"]),
        ("/api/v1/apps/{app}/backups/restore", &["post"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        want.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in want {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
        let have: Vec<&String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .collect();
        assert_eq!(have.len(), methods.len(), "{path}: {have:?}");
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} missing");
            assert!(
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s.starts_with('2')),
                "{m} {path}"
            );
            if *m != "get" || *path != "/api/v1/whoami" {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{m} {path} documents no 401"
                );
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "ErrorBody",
        "AppView",
        "CreateApp",
        "MaintainerView",
        "PutMaintainer",
        "ReleaseSummary",
        "ReleaseView",
        "Registered",
        "RegisterRelease",
        "SecretView",
        "AuditView",
        "WhoAmI",
        "DeployRequest",
        "ScaleRequest",
        "RollbackRequest",
        "DeploymentView",
        "DeployOutcome",
        "AppStatus",
        "ProcStatus",
        "InstanceStatus",
        "EventView",
        "ClusterStatus",
        "NodeView",
        "RouterView",
    ] {
        assert!(
            schemas.contains_key(s),
            "schema {s} missing: {:?}",
            schemas.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every documented route answers, and not with 404/405.
    let admin = env.admin();
    for (path, methods) in want {
        let concrete = path
            .replace("{app}", "x")
            .replace("{subject}", "y")
            .replace("{version}", "z")
            .replace("{name}", "n")
            .replace("{proc}", "web")
            .replace("{id}", "1");
        for m in *methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let a = env.call(method, &concrete, None, Body::None).await;
            assert_eq!(a.status, 401, "{m} {concrete}: {}", a.text);
        }
    }
    env.get("/api/v1/apps", &admin).await;

    let m = env.call(Method::GET, "/metrics", None, Body::None).await;
    assert_eq!(m.status, 200);
    for want in [
        "console_http_requests_total{method=\"GET\",route=\"/api/v1/apps\",status=\"200\"} 1",
        "console_http_requests_total{method=\"GET\",route=\"/api/v1/apps/{app}\",status=\"401\"} 1",
        "console_http_requests_total{method=\"GET\",route=\"/api/v1/openapi.json\",status=\"200\"} 1",
        "console_apps 0",
        "console_up 1",
    ] {
        assert!(m.text.lines().any(|l| l == want), "{want:?} missing in\n{}", m.text);
    }
    assert!(m.text.contains("console_auth_failures_total"), "{}", m.text);
    // Made-up methods do not grow the label set.
    for verb in ["FOO", "BAR"] {
        env.call(
            Method::from_bytes(verb.as_bytes()).unwrap(),
            "/x",
            None,
            Body::None,
        )
        .await
        .error(404, "not_found");
    }
    let m = env.call(Method::GET, "/metrics", None, Body::None).await;
    assert!(
        m.text.lines().any(|l| l == "console_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 2"),
        "{}",
        m.text
    );
    assert!(!m.text.contains("FOO"), "{}", m.text);

    // Graceful stop.
    let mut console = env.console;
    console
        .proc
        .signal(nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = block_in_place(|| console.proc.wait_exit(Duration::from_secs(10)))
        .expect("console exits on SIGTERM");
    assert!(status.success());
}

/// Tokens from sso's real login flow: the admin group arrives in the
/// access token's `groups` claim, and console makes its member an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_sso_logins_carry_the_admin_group() {
    let env = start().await;
    let root = env.sso.login("root").await;
    let alice = env.sso.login("alice").await;
    let w = env.get("/api/v1/whoami", &root).await;
    assert_eq!(w["subject"], "root");
    assert_eq!(w["kind"], "user");
    assert_eq!(w["admin"], true, "{w}");
    assert!(w["groups"]
        .as_array()
        .unwrap()
        .contains(&json!(ADMIN_GROUP)));
    let w = env.get("/api/v1/whoami", &alice).await;
    assert_eq!(w["admin"], false, "{w}");

    let a = env
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(&alice),
            Body::Json(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    // root maintains nothing but, as an admin, may change alice's app.
    let a = env
        .call(
            Method::PUT,
            "/api/v1/apps/mine/secrets/K",
            Some(&root),
            Body::Raw(b"v".to_vec(), "text/plain"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = env
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(&root),
            Body::Json(json!({"name": "roots"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    env.call(
        Method::PUT,
        "/api/v1/apps/roots/secrets/K",
        Some(&alice),
        Body::Raw(b"v".to_vec(), "text/plain"),
    )
    .await
    .error(403, "forbidden");
    let entry = &env.get("/api/v1/audit?limit=1", &root).await[0];
    assert_eq!(entry["actor"], "alice");
    assert_eq!(entry["result"], "denied");
}

// ---------------------------------------------------------------------
// The registry's token server, with a real docker-registry
// ---------------------------------------------------------------------

/// What the registry's challenge names: realm, service, scope.
fn challenge(r: &reqwest::Response) -> (String, String, String) {
    let h = r
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{} without a challenge", r.status()))
        .to_str()
        .unwrap()
        .to_owned();
    let rest = h.strip_prefix("Bearer ").unwrap_or_else(|| panic!("{h}"));
    let field = |name: &str| {
        rest.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or("")
            .to_owned()
    };
    (field("realm"), field("service"), field("scope"))
}

/// Uploads one blob to `repo` the way a Docker engine does: the
/// registry's 401 challenge, a token from its realm (console) with the
/// sso token as the Basic password, the upload with that token. Returns
/// the status of the upload's start (202 when allowed) and, when it
/// started, of its end (201).
async fn push_blob(reg: &str, repo: &str, sso_token: &str, blob: &[u8]) -> (u16, Option<u16>) {
    use sha2::Digest as _;
    let start = format!("http://{reg}/v2/{repo}/blobs/uploads/");
    let r = http().post(&start).send().await.unwrap();
    assert_eq!(r.status(), 401, "the registry must ask for a token");
    let (realm, service, scope) = challenge(&r);
    // The registry lists the actions in any order.
    let (name, actions) = scope.rsplit_once(':').unwrap();
    let mut actions: Vec<&str> = actions.split(',').collect();
    actions.sort();
    assert_eq!(
        (name, actions),
        (format!("repository:{repo}").as_str(), vec!["pull", "push"])
    );
    let token = registry_token(&realm, &service, &scope, sso_token).await;
    let r = http()
        .post(&start)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let started = r.status().as_u16();
    if started != 202 {
        return (started, None);
    }
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{reg}{location}")
    };
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(blob));
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = http()
        .put(format!("{location}{sep}digest={digest}"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    (started, Some(r.status().as_u16()))
}

/// A token from console's token endpoint, or panics.
async fn registry_token(realm: &str, service: &str, scope: &str, sso_token: &str) -> String {
    let r = http()
        .get(realm)
        .query(&[
            ("service", service),
            ("scope", scope),
            ("account", "docker"),
        ])
        .basic_auth("docker", Some(sso_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "token endpoint");
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Reads a blob back with a pull token; the status.
async fn pull_blob(reg: &str, repo: &str, digest: &str, sso_token: &str) -> u16 {
    let url = format!("http://{reg}/v2/{repo}/blobs/{digest}");
    let r = http().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (realm, service, scope) = challenge(&r);
    assert_eq!(scope, format!("repository:{repo}:pull"));
    let token = registry_token(&realm, &service, &scope, sso_token).await;
    http()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_tokens_let_only_maintainers_push() {
    use sha2::Digest as _;
    let keys = ServerDir::new("registry-token").unwrap();
    let (key_file, cert_file) = (keys.path().join("token.key"), keys.path().join("token.crt"));
    // console creates the pair at its first start.
    let env = start_on(
        Backend::Sqlite,
        &format!(
            "[registry_auth]\nkey_file = \"{}\"\ncert_file = \"{}\"\n",
            key_file.display(),
            cert_file.display()
        ),
    )
    .await;
    assert!(key_file.is_file() && cert_file.is_file());
    let registry = block_in_place(|| {
        lain_testkit::Registry::start_with_token_auth(
            std::net::Ipv4Addr::LOCALHOST,
            &lain_testkit::TokenAuth {
                realm: format!("{}/api/v1/registry/token", env.console.base),
                service: "lain-registry".into(),
                issuer: "lain-console".into(),
                root_cert: cert_file.clone(),
            },
        )
    })
    .expect("registry starts");
    let reg = registry.host();
    let t = Tokens::new(&env).await;
    for (who, app) in [(Who::Maintainer, "shop"), (Who::Admin, "other")] {
        let a = env
            .call(
                Method::POST,
                "/api/v1/apps",
                t.of(who),
                Body::Json(json!({"name": app})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }

    // alice maintains `shop`: her push goes through, end to end.
    let blob = b"layer of shop".to_vec();
    assert_eq!(
        push_blob(&reg, "shop", &t.maintainer, &blob).await,
        (202, Some(201))
    );
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(&blob));
    // Admins push anywhere; a sub-repository of the app is the app's.
    assert_eq!(
        push_blob(&reg, "other", &t.admin, b"x").await,
        (202, Some(201))
    );
    assert_eq!(
        push_blob(&reg, "shop/build", &t.maintainer, b"y").await,
        (202, Some(201))
    );
    // Not her app, not anyone's app, not a maintainer, a daemon: refused
    // by the registry, because console granted nothing.
    for (who, repo) in [
        (Who::Maintainer, "other"),
        (Who::Outsider, "shop"),
        (Who::Daemon, "shop"),
    ] {
        assert_eq!(
            push_blob(&reg, repo, t.of(who).unwrap(), b"z").await,
            (401, None),
            "{who:?} {repo}"
        );
    }
    // Pulls: maintainers, admins and daemons (nodes), not outsiders.
    for (who, status) in [
        (Who::Maintainer, 200),
        (Who::Admin, 200),
        (Who::Daemon, 200),
        (Who::Outsider, 401),
    ] {
        assert_eq!(
            pull_blob(&reg, "shop", &digest, t.of(who).unwrap()).await,
            status,
            "{who:?}"
        );
    }

    // The token endpoint itself: no, expired or forged credentials get
    // 401; a bearer token works like Basic; another service is 400.
    let endpoint = format!("{}/api/v1/registry/token", env.console.base);
    let scope = [
        ("service", "lain-registry"),
        ("scope", "repository:shop:push,pull"),
    ];
    let r = http().get(&endpoint).query(&scope).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for who in [Who::Expired, Who::Forged] {
        let tok = t.of(who).unwrap();
        let r = http()
            .get(&endpoint)
            .query(&scope)
            .basic_auth("x", Some(tok))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{who:?}");
        let r = http()
            .get(&endpoint)
            .query(&scope)
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{who:?}");
    }
    let r = http()
        .get(&endpoint)
        .query(&[("service", "elsewhere"), ("scope", "repository:shop:pull")])
        .bearer_auth(&t.maintainer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_request");
    let r = http()
        .get(&endpoint)
        .header("authorization", "Basic !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A registry token signed by another key (a forger with console's
    // protocol but not its key) is refused by the registry.
    let forger_dir = tempfile::tempdir().unwrap();
    let forger =
        console::registry::TokenSigner::load_or_create(&console::registry::RegistryAuthConfig {
            service: "lain-registry".into(),
            issuer: "lain-console".into(),
            key_file: forger_dir.path().join("k"),
            cert_file: forger_dir.path().join("c"),
            ttl_secs: 300,
        })
        .unwrap();
    let forged = forger
        .sign(
            "mallory",
            vec![console::registry::Access {
                kind: "repository".into(),
                name: "shop".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
        )
        .unwrap();
    let r = http()
        .post(format!("http://{reg}/v2/shop/blobs/uploads/"))
        .bearer_auth(&forged.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Push requests are audited, granted or not.
    let audit = env.get("/api/v1/audit?limit=1000", &t.admin).await;
    let entries: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "registry.token")
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
                e["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("alice", "shop", "ok"),
        ("alice", "other", "denied"),
        ("mallory", "shop", "denied"),
    ] {
        assert!(
            entries
                .iter()
                .any(|(a, r, res)| (a.as_str(), r.as_str(), res.as_str()) == expected),
            "{expected:?} not in {entries:?}"
        );
    }
    // Never the tokens in console's log.
    let log = env.log();
    assert!(!log.contains(&t.maintainer) && !log.contains(&forged.token));
}
