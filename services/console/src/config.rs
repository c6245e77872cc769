//! console's configuration file (TOML, unknown keys refused).
//!
//! ```toml
//! listen = "127.0.0.1:7000"
//! public_url = "https://console.lain.local"        # default "http://{listen}"
//! log_format = "json"                               # or "text" (default)
//! database = "sqlite:///var/lib/lain/console.db?mode=rwc"  # or postgres://...
//! etcd = ["http://127.0.0.1:2379"]
//! secrets_key_file = "/etc/lain/secrets.key"        # the cluster SecretsKey, mode 0600
//! retired_secrets_key_files = []                    # during a key rotation: the old keys (open only)
//! cluster_domain = "lain.local"                     # default "lain.local"
//! extra_domains = ["lain.example.com"]              # default none
//! registry = "registry.lain.local:5000"             # host:port of the cluster registry
//!
//! [auth]
//! issuer = "https://sso.lain.local"                 # sso's issuer URL, exactly
//! audience = "console"                              # default "console"
//! admin_group = "lain-admins"                       # default "lain-admins"
//! groups_claim = "groups"                           # default "groups"
//! cli_client_id = "lain-cli"                        # sso public client of the CLI (default)
//!
//! [registry_auth]                                   # optional: registry tokens (503 without)
//! service = "lain-registry"                         # the registry's auth.token.service (default)
//! issuer = "lain-console"                           # the registry's auth.token.issuer (default)
//! key_file = "/var/lib/lain/registry-token.key"     # created with cert_file when both are missing
//! cert_file = "/var/lib/lain/registry-token.crt"    # the registry's auth.token.rootcertbundle
//! ttl_secs = 300                                    # default
//!
//! [deployd]                                         # optional: logs (503 without)
//! client_id = "console"                             # sso client, client_credentials, audience deployd
//! client_secret_file = "/etc/lain/console-deployd.secret"  # its secret, mode 0600
//!
//! [web]                                             # optional: the web console at /ui/ (503 without)
//! client_id = "console-web"                         # sso confidential client, authorization_code
//!                                                   #   + refresh_token, audience console, redirect
//!                                                   #   URI {public_url}/ui/callback (the default)
//! client_secret_file = "/etc/lain/console-web.secret"  # its secret, mode 0600
//! session_secs = 28800                              # a session's absolute lifetime (default 8 h)
//! idle_secs = 1800                                  # ended after this long unused (default 30 min)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lain_service::LogFormat;
use serde::{Deserialize, Serialize};

/// The whole config of a console replica.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP listener (API, `/healthz`, `/metrics`).
    pub listen: SocketAddr,
    /// The URL clients reach console at (the discovery document's
    /// `resource`); default `http://{listen}`.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// The SQL database: `sqlite:PATH?mode=rwc` or `postgres://...`.
    pub database: String,
    /// etcd endpoints, `http://HOST:PORT` (desired state is written there).
    #[serde(default)]
    pub etcd: Vec<String>,
    /// The cluster secrets key (32 bytes, raw or base64, mode 0600).
    pub secrets_key_file: PathBuf,
    /// Keys being rotated out: they still open what they sealed, and
    /// console seals it all again under `secrets_key_file` at start.
    #[serde(default)]
    pub retired_secrets_key_files: Vec<PathBuf>,
    /// How bearer tokens are checked and who is an admin.
    pub auth: AuthConfig,
    /// The cluster's main domain (lain.yaml's default domains).
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
    /// More domains the cluster serves (LAIN's `extra_domains`).
    #[serde(default)]
    pub extra_domains: Vec<String>,
    /// The cluster registry, `host:port` (images are `{registry}/{app}:release-{version}`).
    #[serde(default)]
    pub registry: Option<String>,
    /// How console calls deployd's operational API (instance logs).
    #[serde(default)]
    pub deployd: Option<DeploydConfig>,
    /// The registry's token server (Docker Distribution token auth).
    #[serde(default)]
    pub registry_auth: Option<crate::registry::RegistryAuthConfig>,
    /// The web console (`/ui/`): how it signs users in through sso.
    #[serde(default)]
    pub web: Option<WebConfig>,
}

/// The `[web]` section: the web console's sso client and its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// An sso confidential client with the authorization_code and
    /// refresh_token grants whose tokens carry console's audience, with
    /// `{public_url}/ui/callback` as a redirect URI and
    /// `{public_url}/ui/logged-out` as a post-logout redirect URI.
    #[serde(default = "default_web_client_id")]
    pub client_id: String,
    /// The client's secret (mode 0600).
    pub client_secret_file: PathBuf,
    /// A session ends this long after login, used or not.
    #[serde(default = "default_session_secs")]
    pub session_secs: u64,
    /// A session ends after this long without a request.
    #[serde(default = "default_idle_secs")]
    pub idle_secs: u64,
}

fn default_web_client_id() -> String {
    "console-web".to_owned()
}

fn default_session_secs() -> u64 {
    8 * 3600
}

fn default_idle_secs() -> u64 {
    1800
}

/// The `[deployd]` section: console's sso client for deployd's API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploydConfig {
    /// An sso confidential client with the client_credentials grant whose
    /// tokens carry audience `deployd`; deployd allows `client:{client_id}`.
    pub client_id: String,
    /// The client's secret (mode 0600, like the secrets key).
    pub client_secret_file: PathBuf,
}

/// The `[auth]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// sso's issuer, exactly as in its tokens' `iss`.
    pub issuer: String,
    /// The audience console's tokens carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Members of this sso group are admins of every app.
    #[serde(default = "default_admin_group")]
    pub admin_group: String,
    /// The access-token claim that lists the caller's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The sso public client the CLI logs in with (device flow); told to
    /// the CLI by the discovery document.
    #[serde(default = "default_cli_client_id")]
    pub cli_client_id: String,
}

fn default_cluster_domain() -> String {
    "lain.local".to_owned()
}

fn default_audience() -> String {
    "console".to_owned()
}

fn default_admin_group() -> String {
    "lain-admins".to_owned()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_cli_client_id() -> String {
    "lain-cli".to_owned()
}

impl Config {
    /// Reads and checks the config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let config: Config = lain_service::load_config(path)?;
        config.check(path)?;
        Ok(config)
    }

    /// Parses config text (tests).
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let path = Path::new("console.toml");
        let config: Config = lain_service::parse_config(path, text)?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> anyhow::Result<()> {
        let bad = |msg: String| anyhow::anyhow!("invalid config file {}: {msg}", path.display());
        if self.auth.issuer.trim().is_empty() {
            return Err(bad(
                "[auth] issuer is empty: set it to sso's issuer URL".into()
            ));
        }
        if self.auth.admin_group.is_empty() || self.auth.groups_claim.is_empty() {
            return Err(bad(
                "[auth] admin_group and groups_claim must not be empty".into()
            ));
        }
        if self.auth.cli_client_id.trim().is_empty() {
            return Err(bad(
                "[auth] cli_client_id is empty: give the sso client the CLI logs in with".into(),
            ));
        }
        if let Some(u) = &self.public_url {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.chars().any(|c| c.is_whitespace())) {
                return Err(bad(format!(
                    "public_url {u:?} is not an http(s) URL: give the URL clients reach console at, e.g. https://console.lain.local"
                )));
            }
        }
        if self.database.trim().is_empty() {
            return Err(bad(
                "database is empty: give sqlite:PATH?mode=rwc or postgres://...".into(),
            ));
        }
        if let Some(d) = &self.deployd {
            if d.client_id.trim().is_empty() {
                return Err(bad(
                    "[deployd] client_id is empty: give console's sso client id".into(),
                ));
            }
        }
        if let Some(w) = &self.web {
            if w.client_id.trim().is_empty() {
                return Err(bad("[web] client_id is empty: give the sso client the web console signs users in with".into()));
            }
            if !(60..=30 * 86400).contains(&w.session_secs)
                || !(60..=w.session_secs).contains(&w.idle_secs)
            {
                return Err(bad(format!(
                    "[web] session_secs {} or idle_secs {} is out of range: session_secs is 60 to 2592000 and idle_secs 60 to session_secs",
                    w.session_secs, w.idle_secs
                )));
            }
            // The redirect URI, the cookies' flags and the Origin check
            // come from public_url, never from a request's Host header.
            if self.public_url.is_none() && self.listen.ip().is_unspecified() {
                return Err(bad(format!(
                    "[web] needs public_url when listen is {}: set it to the URL browsers reach console at, e.g. https://console.lain.local",
                    self.listen
                )));
            }
        }
        // The same check lain-spec makes on every release, surfaced at
        // start-up instead.
        let domains = std::iter::once(("cluster_domain", &self.cluster_domain))
            .chain(self.extra_domains.iter().map(|d| ("extra_domains", d)));
        for (key, d) in domains {
            if d.is_empty() && key == "cluster_domain" {
                continue;
            }
            if let Some(problem) = lain_spec::domain_problem(lain_spec::tidy_domain(d).as_str()) {
                return Err(bad(format!("{key} {d:?} is not a DNS name: {problem}")));
            }
        }
        Ok(())
    }

    /// The URL clients reach console at, without a trailing `/`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// How lain.yaml files are read on this cluster.
    pub fn spec_options(&self) -> lain_spec::ParseOptions {
        lain_spec::ParseOptions {
            cluster_domain: self.cluster_domain.clone(),
            extra_domains: self.extra_domains.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "listen = \"127.0.0.1:1\"\ndatabase = \"sqlite::memory:\"\n\
        secrets_key_file = \"/k\"\n[auth]\nissuer = \"http://sso\"\n";

    #[test]
    fn defaults() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(c.auth.audience, "console");
        assert_eq!(c.auth.admin_group, "lain-admins");
        assert_eq!(c.auth.groups_claim, "groups");
        assert_eq!(c.cluster_domain, "lain.local");
        assert_eq!(c.auth.cli_client_id, "lain-cli");
        assert_eq!(c.public_url(), "http://127.0.0.1:1");
        let c = Config::parse(&MIN.replace(
            "[auth]\n",
            "public_url = \"https://console.example/\"\n[auth]\ncli_client_id = \"cli\"\n",
        ))
        .unwrap();
        assert_eq!(c.public_url(), "https://console.example");
        assert_eq!(c.auth.cli_client_id, "cli");
        let c = Config::parse(MIN).unwrap();
        assert!(c.etcd.is_empty() && c.extra_domains.is_empty() && c.registry.is_none());
        assert!(c.deployd.is_none() && c.registry_auth.is_none());
        let c = Config::parse(&format!(
            "{MIN}[registry_auth]\nkey_file = \"/k\"\ncert_file = \"/c\"\n"
        ))
        .unwrap();
        let r = c.registry_auth.unwrap();
        assert_eq!(
            (r.service.as_str(), r.issuer.as_str(), r.ttl_secs),
            ("lain-registry", "lain-console", 300)
        );
        let c = Config::parse(&format!(
            "{MIN}[deployd]\nclient_id = \"console\"\nclient_secret_file = \"/s\"\n"
        ))
        .unwrap();
        assert_eq!(c.deployd.unwrap().client_id, "console");
        let e = Config::parse(&format!("{MIN}[deployd]\nclient_id = \"console\"\n")).unwrap_err();
        assert!(e.to_string().contains("client_secret_file"), "{e}");
        assert!(Config::parse(MIN).unwrap().web.is_none());
        let w = Config::parse(&format!("{MIN}[web]\nclient_secret_file = \"/s\"\n"))
            .unwrap()
            .web
            .unwrap();
        assert_eq!(
            (w.client_id.as_str(), w.session_secs, w.idle_secs),
            ("console-web", 28800, 1800)
        );
    }

    #[test]
    fn web_section_is_checked() {
        let web = |extra: &str| format!("{MIN}[web]\nclient_secret_file = \"/s\"\n{extra}");
        for (extra, says) in [
            ("client_id = \"\"\n", "client_id"),
            ("session_secs = 10\n", "session_secs"),
            ("idle_secs = 30000\n", "idle_secs"),
            ("cookie = \"x\"\n", "cookie"),
        ] {
            let e = Config::parse(&web(extra)).unwrap_err();
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
        let e = Config::parse(&web("").replace("client_secret_file = \"/s\"\n", "")).unwrap_err();
        assert!(e.to_string().contains("client_secret_file"), "{e}");
        // Listening everywhere: the public URL must be given.
        let any = web("").replace("127.0.0.1:1", "0.0.0.0:1");
        let e = Config::parse(&any).unwrap_err();
        assert!(e.to_string().contains("public_url"), "{e}");
        let ok = any.replace("[auth]", "public_url = \"https://c.example\"\n[auth]");
        assert!(Config::parse(&ok).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_domains_are_refused() {
        let e = Config::parse(&format!("{MIN}admins = 1\n")).unwrap_err();
        assert!(e.to_string().contains("admins"), "{e}");
        let e = Config::parse(&MIN.replace("[auth]", "cluster_domain = \"bad domain\"\n[auth]"))
            .unwrap_err();
        assert!(e.to_string().contains("cluster_domain"), "{e}");
        for bad in ["console.example", "ftp://x", "https://", "http://a b"] {
            let e = Config::parse(&MIN.replace("[auth]", &format!("public_url = {bad:?}\n[auth]")))
                .unwrap_err();
            assert!(e.to_string().contains("public_url"), "{bad}: {e}");
        }
        let e = Config::parse(&format!("{MIN}cli_client_id = \"\"\n")).unwrap_err();
        assert!(e.to_string().contains("cli_client_id"), "{e}");
    }
}
