//! The CLI's files in the user's config dir (`$LAIN_CONFIG_DIR`, or
//! `~/.config/lain`):
//!
//! - `config.toml`: the clusters, named like LAIN's phases, and the
//!   default one. What `lain cluster add` discovered from console (sso's
//!   issuer, the CLI's client id, the registry) is kept here.
//! - `credentials.toml`: per cluster, the tokens (or a client-credentials
//!   profile); mode 0600 in a 0700 directory, replaced atomically.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{fail, CliError};

/// `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster commands use when `--cluster` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
}

/// One cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// console's base URL.
    pub console: String,
    /// sso's issuer URL.
    pub sso: String,
    /// The sso public client the CLI logs in with.
    pub client_id: String,
    /// The registry, `host:port`, when the cluster has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The cluster's main domain (apps answer on `APP.DOMAIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `credentials.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    pub clusters: BTreeMap<String, Credential>,
}

/// How the CLI authenticates to one cluster.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// A user's login (device flow, or a token given on stdin).
    User {
        access_token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<String>,
        /// Unix seconds; 0 when unknown.
        #[serde(default)]
        expires_at: u64,
    },
    /// A daemon or CI job: sso's client credentials grant, re-run when
    /// the token runs out.
    Client {
        client_id: String,
        client_secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_token: Option<String>,
        #[serde(default)]
        expires_at: u64,
    },
}

impl std::fmt::Debug for Credential {
    // Never the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::User { expires_at, .. } => f
                .debug_struct("User")
                .field("expires_at", expires_at)
                .finish_non_exhaustive(),
            Credential::Client { client_id, .. } => f
                .debug_struct("Client")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The config dir: `$LAIN_CONFIG_DIR`, or `lain` in the user's config dir.
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("LAIN_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::config_dir().map(|d| d.join("lain")).ok_or_else(|| {
        fail(
            "cannot find your config directory",
            "set HOME, XDG_CONFIG_HOME or LAIN_CONFIG_DIR",
        )
    })
}

fn read_toml<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> anyhow::Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            fail(
                format!("{} is invalid: {}", path.display(), e.message()),
                "fix the file, or remove it and add the cluster again (`lain cluster add`)",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(fail(
            format!("cannot read {}: {e}", path.display()),
            "check the file's permissions",
        )),
    }
}

/// Writes `text` to `path` through a temp file and a rename, mode `mode`,
/// in a directory only the user can enter.
fn write_atomic(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let err = |e: std::io::Error| {
        fail(
            format!("cannot write {}: {e}", path.display()),
            "check that the config directory is writable (or set LAIN_CONFIG_DIR)",
        )
    };
    let parent = path.parent().unwrap_or(Path::new("."));
    if !parent.exists() {
        // Made private; an existing directory (LAIN_CONFIG_DIR) is left as
        // it is: the files themselves are 0600.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(err)?;
    }
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Holds `credentials.lock` until dropped, so that two `lain` processes
/// never renew one login at once (sso rotates refresh tokens: the second
/// would use a spent one).
pub struct CredentialsLock(#[allow(dead_code)] std::fs::File);

/// Waits for the credentials lock.
pub fn lock_credentials() -> anyhow::Result<CredentialsLock> {
    let dir = dir()?;
    let path = dir.join("credentials.lock");
    let err = |e: std::io::Error| {
        fail(
            format!("cannot lock {}: {e}", path.display()),
            "check that the config directory is writable (or set LAIN_CONFIG_DIR)",
        )
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(err)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    f.lock().map_err(err)?;
    Ok(CredentialsLock(f))
}

impl Config {
    pub fn load() -> anyhow::Result<Config> {
        read_toml(&dir()?.join("config.toml"))
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self)?;
        write_atomic(&dir()?.join("config.toml"), &text, 0o600)
    }

    /// The cluster named `name`, or the default one.
    pub fn cluster(&self, name: Option<&str>) -> anyhow::Result<(String, &Cluster)> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => match (&self.default, self.clusters.len()) {
                (Some(d), _) => d.clone(),
                (None, 1) => self.clusters.keys().next().cloned().unwrap_or_default(),
                (None, 0) => {
                    return Err(fail(
                        "no cluster is configured",
                        "add one: `lain cluster add NAME --console URL`",
                    ))
                }
                (None, _) => {
                    return Err(fail(
                        "several clusters are configured and none is the default",
                        "pick one with `--cluster NAME`, or `lain cluster use NAME`",
                    ))
                }
            },
        };
        match self.clusters.get(&name) {
            Some(c) => Ok((name, c)),
            None => Err(CliError::new(
                format!("no cluster named `{name}`"),
                format!(
                    "the clusters are: {}; add it with `lain cluster add {name} --console URL`",
                    if self.clusters.is_empty() {
                        "none".to_owned()
                    } else {
                        self.clusters.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            )
            .into()),
        }
    }
}

impl Credentials {
    pub fn load() -> anyhow::Result<Credentials> {
        let path = dir()?.join("credentials.toml");
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(fail(
                    format!(
                        "{} has mode {mode:04o}: others may read your tokens",
                        path.display()
                    ),
                    format!("run `chmod 600 {}` and `lain login` again", path.display()),
                ));
            }
        }
        read_toml(&path)
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self)?;
        write_atomic(&dir()?.join("credentials.toml"), &text, 0o600)
    }
}

/// A cluster name: like LAIN's phases (`prod`, `staging`, `dev-2`).
pub fn cluster_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 63 letters, digits, '-' and '_', starting with a letter or digit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_cluster() {
        let c = |url: &str| Cluster {
            console: url.into(),
            sso: "http://sso".into(),
            client_id: "lain-cli".into(),
            registry: None,
            domain: None,
        };
        let mut config = Config::default();
        let e = config.cluster(None).unwrap_err();
        assert!(crate::error::one_line(&e).contains("lain cluster add"));
        config.clusters.insert("prod".into(), c("http://p"));
        assert_eq!(config.cluster(None).unwrap().0, "prod");
        config.clusters.insert("dev".into(), c("http://d"));
        assert!(
            crate::error::one_line(&config.cluster(None).unwrap_err()).contains("lain cluster use")
        );
        config.default = Some("dev".into());
        assert_eq!(config.cluster(None).unwrap().1.console, "http://d");
        assert_eq!(config.cluster(Some("prod")).unwrap().1.console, "http://p");
        let e = crate::error::one_line(&config.cluster(Some("qa")).unwrap_err());
        assert!(e.contains("dev, prod"), "{e}");
        let text = toml::to_string_pretty(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
    }

    #[test]
    fn names_and_secrets() {
        assert!(cluster_name("prod").is_ok() && cluster_name("dev-2").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(64)] {
            assert!(cluster_name(bad).is_err(), "{bad}");
        }
        let c = Credential::User {
            access_token: "SECRET".into(),
            refresh_token: Some("SECRET2".into()),
            expires_at: 5,
        };
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/credentials.toml");
        write_atomic(&p, "x = 1\n", 0o600).unwrap();
        write_atomic(&p, "x = 2\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x = 2\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
    }
}
