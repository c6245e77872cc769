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
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let text = format!(
            "listen = \"{addr}\"\nissuer = \"{issuer}\"\n\
             [password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n"
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
