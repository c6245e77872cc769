//! What console's integration tests (and its status bench) share: sso
//! running in-process on a real loopback listener with SQLite and its own
//! RSA keys, and access tokens signed with those keys.
#![allow(dead_code)]

use std::path::Path;

use serde_json::json;

/// Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// sso serving on loopback until dropped.
pub struct TestSso {
    pub issuer: String,
    pub sso: sso::Sso,
    pub config: sso::config::Config,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestSso {
    pub async fn start() -> TestSso {
        Self::start_with("").await
    }

    /// [`TestSso::start`] with `extra` appended to sso's config (whole
    /// sections, e.g. `[tokens]`).
    pub async fn start_with(extra: &str) -> TestSso {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let text = format!(
            "listen = \"{addr}\"\nissuer = \"{issuer}\"\n\
             [password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n{extra}"
        );
        let cfg: sso::config::Config =
            lain_service::parse_config(Path::new("sso.toml"), &text).unwrap();
        let url = format!("sqlite://{}/sso.db?mode=rwc", dir.path().display());
        let sso = sso::Sso::open(cfg.clone(), &url).await.expect("sso starts");
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
            issuer,
            sso,
            config: cfg,
            _dir: dir,
            _stop: tx,
        }
    }

    /// Users root (in the `lain-admins` group), alice and mallory, each
    /// with `password`, for sso's real sign-in flows.
    pub async fn add_users(&self, password: &str) {
        let db = &self.sso.state().db;
        for user in ["root", "alice", "mallory"] {
            db.add_user(
                &self.config.password_hash,
                user,
                &format!("{user}@example.com"),
                user,
                &sso::secret::Secret::new(password),
            )
            .await
            .unwrap();
        }
        db.add_group("lain-admins", "cluster admins", None)
            .await
            .unwrap();
        db.set_member("lain-admins", "root", sso::domain::Role::Normal)
            .await
            .unwrap();
    }

    /// An access token of `user` as sso's token endpoint issues them to
    /// the CLI, signed with sso's active key.
    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        let t = now();
        let claims = json!({
            "iss": self.issuer, "sub": user, "aud": "console", "client_id": "cli",
            "iat": t, "nbf": t, "exp": t + 3600, "jti": format!("test-{user}-{t}"),
            "scope": "openid", "groups": groups, "preferred_username": user,
        });
        self.sso.state().keys.sign("at+jwt", &claims).expect("sign")
    }
}

/// The `console` binary serving on loopback until dropped (its log, at
/// `debug`, kept in its directory).
pub struct TestConsole {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub dir: lain_testkit::process::ServerDir,
    _proc: lain_testkit::process::Logged,
}

impl TestConsole {
    /// Starts console on SQLite in its own directory with sso's `issuer`,
    /// `etcd` endpoints and a fresh secrets key. `top` is added to the
    /// config's top-level keys, `auth` to its `[auth]` section and
    /// `sections` after it (whole sections); `{dir}` in them is replaced
    /// by console's directory.
    pub fn start(issuer: &str, etcd: &[String], top: &str, auth: &str, sections: &str) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lain_testkit::free_port()));
        Self::start_on(addr, issuer, etcd, top, auth, sections)
    }

    /// [`TestConsole::start`] listening on `addr` (picked by the caller,
    /// e.g. to register console's URL at sso first).
    pub fn start_on(
        addr: std::net::SocketAddr,
        issuer: &str,
        etcd: &[String],
        top: &str,
        auth: &str,
        sections: &str,
    ) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = lain_testkit::process::ServerDir::new("console").unwrap();
        let d = dir.path().display().to_string();
        let key_path = dir.path().join("secrets.key");
        let key = lain_store::secret::SecretsKey::generate();
        std::fs::write(&key_path, key.to_base64().as_bytes()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let etcd: Vec<String> = etcd.iter().map(|e| format!("{e:?}")).collect();
        let config = format!(
            "listen = \"{addr}\"\nlog_format = \"json\"\n\
             database = \"sqlite://{d}/console.db?mode=rwc\"\n\
             etcd = [{etcd}]\nsecrets_key_file = \"{k}\"\n{top}\n\
             [auth]\nissuer = \"{issuer}\"\nadmin_group = \"lain-admins\"\n{auth}\n{sections}\n",
            etcd = etcd.join(", "),
            k = key_path.display(),
            top = top.replace("{dir}", &d),
            auth = auth.replace("{dir}", &d),
            sections = sections.replace("{dir}", &d),
        );
        let path = dir.path().join("console.toml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_console"));
        cmd.arg("--config").arg(&path).env("RUST_LOG", "debug");
        let mut proc =
            lain_testkit::process::Logged::spawn("console", cmd, &dir.log_path("console")).unwrap();
        proc.wait_ready(std::time::Duration::from_secs(20), || {
            lain_testkit::http::get(addr, "127.0.0.1", "/healthz").is_some_and(|(c, _)| c == 200)
        })
        .expect("console starts");
        TestConsole {
            base: format!("http://{addr}"),
            addr,
            dir,
            _proc: proc,
        }
    }
}
