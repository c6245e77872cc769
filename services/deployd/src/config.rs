//! deployd's configuration file (TOML, unknown keys refused).
//!
//! ```toml
//! listen = "127.0.0.1:7001"
//! log_format = "json"                   # or "text" (default)
//! etcd = ["http://127.0.0.1:2379"]
//! id = "deployd@host-1"                 # default: the host name
//! ping_interval_ms = 1000               # default 1000
//! lost_after_misses = 3                 # default 3
//! lease_ttl_secs = 3                    # default 3
//! secrets_key_file = "/etc/lain/secrets.key"  # needed for procs with secrets
//! retired_secrets_key_files = []               # during a key rotation: the old keys
//! health_timeout_secs = 60              # after setup_time, before a rollout fails
//! health_interval_ms = 2000             # probe interval of healthy instances
//! unhealthy_after_failures = 3          # consecutive failed probes
//! restart_backoff_ms = 1000             # first restart delay, doubling
//! restart_backoff_max_ms = 60000
//! crash_loop_restarts = 5               # restarts within the window that
//! crash_loop_window_secs = 600          #   make a crash loop
//!
//! [registry_auth]                       # pulls from a registry with token auth
//! issuer = "https://sso.lain.local"
//! client_id = "deployd"                 # sso client: client_credentials, audience "console"
//! client_secret_file = "/etc/lain/deployd-registry.secret"  # mode 0600
//!
//! [auth]                                # the operational API (/api/v1/...)
//! issuer = "https://sso.lain.local"     # sso's issuer URL
//! audience = "deployd"                  # default "deployd"
//! allowed_clients = ["client:console"]  # token subjects allowed in
//!
//! [backup]                              # volume backups (lain.yaml `backup_full`/`backup_increment`)
//! max_concurrent = 2                    # backups at once, cluster-wide
//! check_interval_secs = 30              # how often schedules are looked at
//! hook_timeout_secs = 300               # each pre_run / post_run
//! timeout_secs = 21600                  # one volume's export and upload
//! retry_after_secs = 900                # after a failed scheduled backup
//! spool_dir = "/var/lib/lain/spool"     # default: the temporary directory
//! [backup.target]                       # where backups go (lain_backup::TargetConfig)
//! kind = "dir"                          # or "s3" (endpoint, bucket, access_key_id, secret_access_key_file, ...)
//! path = "/var/lib/lain/backups"
//! ```
//!
//! Without `[auth]` the operational API answers 503 (`/healthz` and
//! `/metrics` are served as usual): it is never served unauthenticated.
//! Without `[backup]` no backup is taken, and backup requests and restore
//! rollouts fail with a message that says so.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lain_service::LogFormat;
use serde::{Deserialize, Serialize};

/// Pings faster than this would load every engine for no faster detection
/// than the etcd round trips that follow.
pub const MIN_PING_INTERVAL_MS: u64 = 100;
/// etcd refuses (rounds up) lease TTLs below its minimum of about 2 s.
pub const MIN_LEASE_TTL_SECS: u64 = 2;

/// The whole config of a deployd replica.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP listener (`/healthz`, `/metrics`).
    pub listen: SocketAddr,
    #[serde(default)]
    pub log_format: LogFormat,
    /// etcd endpoints, `http://HOST:PORT`.
    pub etcd: Vec<String>,
    /// This replica's candidate id in the election; the host name by default.
    #[serde(default = "default_id")]
    pub id: String,
    /// How often every node's Docker engine is pinged.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// Consecutive missed pings after which a node is `lost` (one miss
    /// makes it `suspect`).
    #[serde(default = "default_lost_after_misses")]
    pub lost_after_misses: u32,
    /// TTL of the leader's lease: how long a dead leader keeps the others
    /// waiting.
    #[serde(default = "default_lease_ttl_secs")]
    pub lease_ttl_secs: u64,
    /// The cluster secrets key (32 bytes, base64), to open app secrets.
    /// Without it, procs that use secrets do not start.
    #[serde(default)]
    pub secrets_key_file: Option<std::path::PathBuf>,
    /// Keys being rotated out (docs/operations.md): they still open the
    /// secrets they sealed until console has sealed them all again.
    #[serde(default)]
    pub retired_secrets_key_files: Vec<std::path::PathBuf>,
    /// How long after its `setup_time` a new instance may take to become
    /// healthy before its rollout fails and rolls back.
    #[serde(default = "default_health_timeout_secs")]
    pub health_timeout_secs: u64,
    /// How often healthy instances are probed (new ones: every 200 ms).
    #[serde(default = "default_health_interval_ms")]
    pub health_interval_ms: u64,
    /// Consecutive failed probes that make a healthy instance unhealthy.
    #[serde(default = "default_unhealthy_after_failures")]
    pub unhealthy_after_failures: u32,
    /// Delay before the first restart of an exited instance; it doubles
    /// with every restart in the crash-loop window.
    #[serde(default = "default_restart_backoff_ms")]
    pub restart_backoff_ms: u64,
    #[serde(default = "default_restart_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// This many restarts within `crash_loop_window_secs` is a crash loop:
    /// restarts stop and an event says so.
    #[serde(default = "default_crash_loop_restarts")]
    pub crash_loop_restarts: u32,
    #[serde(default = "default_crash_loop_window_secs")]
    pub crash_loop_window_secs: u64,
    /// Who may call the operational API (`/api/v1/...`). Absent: the API
    /// answers 503 and nothing else changes.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Credentials for pulls from a registry with token auth. Absent:
    /// pulls are anonymous.
    #[serde(default)]
    pub registry_auth: Option<RegistryAuthConfig>,
    /// Volume backups and restores. Absent: off.
    #[serde(default)]
    pub backup: Option<BackupConfig>,
}

/// `[backup]`: where volume backups go and how many run at once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// A directory on the leader's host (shared by every replica that may
    /// lead, e.g. NFS) or an S3-compatible bucket.
    pub target: lain_backup::TargetConfig,
    /// Backups running at once, over the whole cluster.
    #[serde(default = "default_backup_concurrency")]
    pub max_concurrent: u32,
    /// How often the leader looks for backups that are due.
    #[serde(default = "default_backup_check_secs")]
    pub check_interval_secs: u64,
    /// Bound of each `pre_run` and `post_run` command.
    #[serde(default = "default_backup_hook_secs")]
    pub hook_timeout_secs: u64,
    /// Bound of one volume's export and upload (and of one restore's
    /// download and import).
    #[serde(default = "default_backup_timeout_secs")]
    pub timeout_secs: u64,
    /// A scheduled backup that failed is tried again after this long (or
    /// at its next scheduled time, if that comes first).
    #[serde(default = "default_backup_retry_secs")]
    pub retry_after_secs: u64,
    /// Where archives are spooled (room for the largest volume; not
    /// tmpfs). Default: the system's temporary directory.
    #[serde(default)]
    pub spool_dir: Option<std::path::PathBuf>,
}

fn default_backup_concurrency() -> u32 {
    2
}

fn default_backup_check_secs() -> u64 {
    30
}

fn default_backup_hook_secs() -> u64 {
    300
}

fn default_backup_timeout_secs() -> u64 {
    6 * 3600
}

fn default_backup_retry_secs() -> u64 {
    900
}

/// `[registry_auth]`: deployd's own sso client (client credentials,
/// audience `console`), whose token is the password the engines give the
/// registry's token server (console grants pulls to daemons).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    /// sso's issuer URL.
    pub issuer: String,
    pub client_id: String,
    /// The client's secret (mode 0600).
    pub client_secret_file: std::path::PathBuf,
}

/// `[auth]`: how the operational API checks bearer tokens from sso.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// sso's issuer URL, exactly as it appears in tokens' `iss`; the JWKS
    /// is discovered from `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The audience tokens must carry (the `--audience` of the calling
    /// client in sso).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Token subjects (`sub`) let in, compared exactly. Client-credentials
    /// tokens from sso have `sub = "client:{client_id}"`. Empty: everyone
    /// is refused (403), with a warning at start.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
}

fn default_audience() -> String {
    "deployd".to_owned()
}

fn default_health_timeout_secs() -> u64 {
    60
}

fn default_health_interval_ms() -> u64 {
    2000
}

fn default_unhealthy_after_failures() -> u32 {
    3
}

fn default_restart_backoff_ms() -> u64 {
    1000
}

fn default_restart_backoff_max_ms() -> u64 {
    60_000
}

fn default_crash_loop_restarts() -> u32 {
    5
}

fn default_crash_loop_window_secs() -> u64 {
    600
}

fn default_ping_interval_ms() -> u64 {
    1000
}

fn default_lost_after_misses() -> u32 {
    3
}

fn default_lease_ttl_secs() -> u64 {
    3
}

/// The host name, so that replicas on different hosts differ by default.
fn default_id() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "deployd".to_owned())
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] lain_service::ConfigError),
    #[error("invalid config file {path}: `{key}` {problem}")]
    Invalid {
        path: String,
        key: &'static str,
        problem: String,
    },
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config: Config = lain_service::load_config(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Parses and checks config text (`path` only names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = lain_service::parse_config(path, text)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values that TOML types cannot express.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: path.display().to_string(),
            key,
            problem,
        };
        if self.etcd.is_empty() {
            return Err(invalid(
                "etcd",
                "is empty: list at least one endpoint, e.g. [\"http://127.0.0.1:2379\"]".into(),
            ));
        }
        if let Some(bad) = self.etcd.iter().find(|e| !e.starts_with("http://")) {
            return Err(invalid(
                "etcd",
                format!("has {bad:?}: give endpoints as http://HOST:PORT"),
            ));
        }
        if self.id.trim().is_empty() {
            return Err(invalid(
                "id",
                "is empty: name this replica, e.g. \"deployd@host-1\"".into(),
            ));
        }
        if self.ping_interval_ms < MIN_PING_INTERVAL_MS {
            return Err(invalid(
                "ping_interval_ms",
                format!(
                    "is {}: use at least {MIN_PING_INTERVAL_MS}",
                    self.ping_interval_ms
                ),
            ));
        }
        if self.lost_after_misses == 0 {
            return Err(invalid(
                "lost_after_misses",
                "is 0: use at least 1 (the default is 3)".into(),
            ));
        }
        if self.lease_ttl_secs < MIN_LEASE_TTL_SECS {
            return Err(invalid(
                "lease_ttl_secs",
                format!(
                    "is {}: use at least {MIN_LEASE_TTL_SECS} (etcd's minimum lease TTL)",
                    self.lease_ttl_secs
                ),
            ));
        }
        let positive = [
            ("health_timeout_secs", self.health_timeout_secs),
            ("health_interval_ms", self.health_interval_ms),
            ("restart_backoff_ms", self.restart_backoff_ms),
            ("crash_loop_window_secs", self.crash_loop_window_secs),
            (
                "unhealthy_after_failures",
                u64::from(self.unhealthy_after_failures),
            ),
            ("crash_loop_restarts", u64::from(self.crash_loop_restarts)),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "is 0: use a positive value".into()));
        }
        if let Some(auth) = &self.auth {
            auth.validate(path)?;
        }
        if let Some(b) = &self.backup {
            let positive = [
                ("backup.max_concurrent", u64::from(b.max_concurrent)),
                ("backup.check_interval_secs", b.check_interval_secs),
                ("backup.hook_timeout_secs", b.hook_timeout_secs),
                ("backup.timeout_secs", b.timeout_secs),
                ("backup.retry_after_secs", b.retry_after_secs),
            ];
            if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
                return Err(invalid(key, "is 0: use a positive value".into()));
            }
            if b.max_concurrent > 64 {
                return Err(invalid(
                    "backup.max_concurrent",
                    format!(
                        "is {}: use at most 64 (each backup holds a volume export and a spool file)",
                        b.max_concurrent
                    ),
                ));
            }
        }
        if self.restart_backoff_max_ms < self.restart_backoff_ms {
            return Err(invalid(
                "restart_backoff_max_ms",
                format!(
                    "is {}, below restart_backoff_ms ({}): the cap must be at least the first delay",
                    self.restart_backoff_max_ms, self.restart_backoff_ms
                ),
            ));
        }
        Ok(())
    }

    /// The `[auth]` section, if any.
    pub fn auth(&self) -> Option<&AuthConfig> {
        self.auth.as_ref()
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// Each ping must end before the next one is due, so that a slow engine
    /// counts as a miss every interval rather than stalling the count.
    pub fn ping_timeout(&self) -> Duration {
        self.ping_interval() * 4 / 5
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }
}

impl AuthConfig {
    /// Checks the section; errors name the key as `auth.KEY`.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: path.display().to_string(),
            key,
            problem,
        };
        let issuer = self.issuer.trim();
        let rest = issuer
            .strip_prefix("https://")
            .or_else(|| issuer.strip_prefix("http://"));
        if issuer != self.issuer || rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return Err(invalid(
                "auth.issuer",
                format!(
                    "is {:?}: give sso's issuer URL exactly as in its tokens, e.g. \"https://sso.lain.local\"",
                    self.issuer
                ),
            ));
        }
        if self.audience.trim().is_empty() || self.audience.trim() != self.audience {
            return Err(invalid(
                "auth.audience",
                format!(
                    "is {:?}: give the audience sso puts in tokens for deployd (default \"deployd\")",
                    self.audience
                ),
            ));
        }
        if let Some(bad) = self
            .allowed_clients
            .iter()
            .find(|c| c.is_empty() || c.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
        {
            return Err(invalid(
                "auth.allowed_clients",
                format!(
                    "has {bad:?}: list token subjects without spaces, e.g. [\"client:console\"]"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/lain/deployd.toml"), text)
    }

    const MINIMAL: &str = "listen = \"127.0.0.1:7001\"\netcd = [\"http://127.0.0.1:2379\"]\n";

    #[test]
    fn defaults_fill_a_minimal_config() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.ping_interval(), Duration::from_secs(1));
        assert_eq!(c.ping_timeout(), Duration::from_millis(800));
        assert_eq!(c.lost_after_misses, 3);
        assert_eq!(c.lease_ttl(), Duration::from_secs(3));
        assert!(!c.id.is_empty());
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            "listen = \"0.0.0.0:7001\"\nlog_format = \"json\"\netcd = [\"http://a:2379\", \"http://b:2379\"]\n\
             id = \"deployd@x\"\nping_interval_ms = 500\nlost_after_misses = 5\nlease_ttl_secs = 10\n",
        )
        .unwrap();
        assert_eq!(c.id, "deployd@x");
        assert_eq!(c.etcd.len(), 2);
        assert_eq!(c.ping_interval_ms, 500);
        assert_eq!(c.lost_after_misses, 5);
        assert_eq!(c.lease_ttl_secs, 10);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = parse(&format!("{MINIMAL}ping_interval = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ping_interval") && e.contains("deployd.toml"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_fix() {
        let cases = [
            ("listen = \"127.0.0.1:1\"\netcd = []\n", "etcd"),
            (
                "listen = \"127.0.0.1:1\"\netcd = [\"127.0.0.1:2379\"]\n",
                "http://HOST:PORT",
            ),
            (&format!("{MINIMAL}ping_interval_ms = 10\n"), "at least 100"),
            (&format!("{MINIMAL}lost_after_misses = 0\n"), "at least 1"),
            (&format!("{MINIMAL}lease_ttl_secs = 1\n"), "at least 2"),
            (&format!("{MINIMAL}id = \" \"\n"), "`id`"),
            (&format!("{MINIMAL}crash_loop_restarts = 0\n"), "positive"),
            (
                &format!("{MINIMAL}restart_backoff_max_ms = 10\n"),
                "at least the first delay",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains("deployd.toml"),
                "{e:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn auth_is_optional_and_read_with_defaults() {
        assert_eq!(parse(MINIMAL).unwrap().auth(), None);
        let c = parse(&format!(
            "{MINIMAL}[auth]\nissuer = \"http://127.0.0.1:9000\"\nallowed_clients = [\"client:console\"]\n"
        ))
        .unwrap();
        let auth = c.auth().unwrap();
        assert_eq!(auth.issuer, "http://127.0.0.1:9000");
        assert_eq!(auth.audience, "deployd");
        assert_eq!(auth.allowed_clients, ["client:console"]);
        let c = parse(&format!(
            "{MINIMAL}[auth]\nissuer = \"https://sso.x\"\naudience = \"ops\"\n"
        ))
        .unwrap();
        assert_eq!(c.auth().unwrap().audience, "ops");
        assert!(c.auth().unwrap().allowed_clients.is_empty());
    }

    #[test]
    fn backup_is_optional_and_read_with_defaults() {
        assert_eq!(parse(MINIMAL).unwrap().backup, None);
        let c = parse(&format!(
            "{MINIMAL}[backup.target]\nkind = \"dir\"\npath = \"/var/lib/lain/backups\"\n"
        ))
        .unwrap();
        let b = c.backup.unwrap();
        assert_eq!(
            b.target,
            lain_backup::TargetConfig::Dir(lain_backup::DirConfig {
                path: "/var/lib/lain/backups".into()
            })
        );
        assert_eq!(
            (b.max_concurrent, b.check_interval_secs, b.hook_timeout_secs),
            (2, 30, 300)
        );
        let c = parse(&format!(
            "{MINIMAL}[backup]\nmax_concurrent = 4\nspool_dir = \"/spool\"\n\
             [backup.target]\nkind = \"dir\"\npath = \"/b\"\n"
        ))
        .unwrap();
        assert_eq!(c.backup.as_ref().unwrap().max_concurrent, 4);
        for (section, want) in [
            (
                "[backup]\nmax_concurrent = 0\n[backup.target]\nkind = \"dir\"\npath = \"/b\"\n",
                "backup.max_concurrent",
            ),
            (
                "[backup]\nmax_concurrent = 500\n[backup.target]\nkind = \"dir\"\npath = \"/b\"\n",
                "at most 64",
            ),
            (
                "[backup]\nhook_timeout_secs = 0\n[backup.target]\nkind = \"dir\"\npath = \"/b\"\n",
                "backup.hook_timeout_secs",
            ),
            ("[backup]\nmax_concurrent = 1\n", "target"),
            (
                "[backup]\nschedule = 1\n[backup.target]\nkind = \"dir\"\npath = \"/b\"\n",
                "schedule",
            ),
            ("[backup.target]\nkind = \"ftp\"\npath = \"/b\"\n", "ftp"),
        ] {
            let e = parse(&format!("{MINIMAL}{section}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }

    #[test]
    fn bad_auth_values_are_refused_with_the_fix() {
        let cases = [
            ("issuer = \"sso.lain.local\"\n", "auth.issuer"),
            ("issuer = \"https://\"\n", "auth.issuer"),
            ("issuer = \" https://sso.x\"\n", "auth.issuer"),
            (
                "issuer = \"https://sso.x\"\naudience = \"\"\n",
                "auth.audience",
            ),
            (
                "issuer = \"https://sso.x\"\nallowed_clients = [\"client: console\"]\n",
                "auth.allowed_clients",
            ),
            (
                "issuer = \"https://sso.x\"\nallowed_clients = [\"\"]\n",
                "auth.allowed_clients",
            ),
        ];
        for (section, want) in cases {
            let e = parse(&format!("{MINIMAL}[auth]\n{section}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(want) && e.contains("deployd.toml"),
                "{e:?} lacks {want:?}"
            );
        }
        let e = parse(&format!(
            "{MINIMAL}[auth]\nissuer = \"https://sso.x\"\nallowed = []\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("allowed"), "{e}");
        let e = parse(&format!("{MINIMAL}[auth]\naudience = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("issuer"), "{e}");
    }
}
