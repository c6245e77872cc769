//! The daemon's TOML configuration. Every key but `listen` has a default;
//! unknown keys are refused so that a typo never silently falls back.

use std::net::SocketAddr;
use std::path::Path;

use lain_service::LogFormat;
use serde::{Deserialize, Serialize};

/// `sso.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP listener, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    #[serde(default)]
    pub log_format: LogFormat,
    /// The issuer URL clients see (`iss` of every token, base of every
    /// endpoint). Default: `http://{listen}`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// sqlx database URL: `sqlite://PATH?mode=rwc` or `postgres://...`.
    /// Default: `sso.db` beside the config file.
    #[serde(default)]
    pub database: Option<String>,
    /// Name of the group whose members administer sso and the cluster.
    #[serde(default = "default_admin_group")]
    pub admin_group: String,
    /// Trust the last address in `X-Forwarded-For` as the client's address
    /// (only when sso is reachable through the router alone).
    #[serde(default)]
    pub trust_forwarded_for: bool,
    #[serde(default)]
    pub tokens: TokenConfig,
    #[serde(default)]
    pub keys: KeyConfig,
    #[serde(default)]
    pub login: LoginConfig,
    #[serde(default)]
    pub password_hash: PasswordHashConfig,
}

fn default_admin_group() -> String {
    "admin".to_owned()
}

/// Token lifetimes, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    pub access_token_secs: u64,
    pub id_token_secs: u64,
    pub refresh_token_secs: u64,
    pub authorization_code_secs: u64,
    pub device_code_secs: u64,
    /// Minimum seconds between two polls of the token endpoint with one
    /// device code.
    pub device_poll_interval_secs: u64,
    /// Browser login session (lets `/authorize` skip the login page).
    pub session_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_token_secs: 600,
            id_token_secs: 600,
            refresh_token_secs: 30 * 24 * 3600,
            authorization_code_secs: 60,
            device_code_secs: 600,
            device_poll_interval_secs: 5,
            session_secs: 8 * 3600,
        }
    }
}

/// RS256 signing keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// A new signing key is made when the active one is this old.
    pub rotation_secs: u64,
    /// RSA modulus size (2048, 3072 or 4096).
    pub rsa_bits: usize,
    /// A file with 32 random bytes (base64 or hex, see `sso keys
    /// new-encryption-key`). When set, private signing keys are stored
    /// encrypted with it (AES-256-GCM); otherwise in the clear, protected
    /// by the database's permissions.
    pub encryption_key_file: Option<std::path::PathBuf>,
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            rotation_secs: 30 * 24 * 3600,
            rsa_bits: 2048,
            encryption_key_file: None,
        }
    }
}

/// Failed-login limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Failed logins for one user name within `window_secs` before it is
    /// locked for `lockout_secs`.
    pub max_failures_per_user: u32,
    /// Failed logins from one client address within `window_secs` before
    /// that address is locked for `lockout_secs`.
    pub max_failures_per_address: u32,
    pub window_secs: u64,
    pub lockout_secs: u64,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            max_failures_per_user: 5,
            max_failures_per_address: 20,
            window_secs: 900,
            lockout_secs: 900,
        }
    }
}

/// argon2id cost of new password hashes (OWASP's minimum by default).
/// Existing hashes keep the cost they were made with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordHashConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Config errors found after parsing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigCheckError {
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// The issuer URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The database URL; `config_path` places the default SQLite file.
    pub fn database_url(&self, config_path: &Path) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => {
                let dir = config_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                format!("sqlite://{}/sso.db?mode=rwc", dir.display())
            }
        }
    }

    /// Checks values serde cannot.
    pub fn check(&self) -> Result<(), ConfigCheckError> {
        let bad = |m: &str| Err(ConfigCheckError::Invalid(m.to_owned()));
        let issuer = self.issuer();
        match url::Url::parse(&issuer) {
            Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.query().is_none() => {}
            _ => {
                return bad(
                    "`issuer` must be an http(s) URL without query, e.g. https://sso.example.com",
                )
            }
        }
        if ![2048, 3072, 4096].contains(&self.keys.rsa_bits) {
            return bad("`keys.rsa_bits` must be 2048, 3072 or 4096");
        }
        if self.keys.rotation_secs < 60 {
            return bad("`keys.rotation_secs` must be at least 60");
        }
        let t = &self.tokens;
        for (name, v) in [
            ("access_token_secs", t.access_token_secs),
            ("id_token_secs", t.id_token_secs),
            ("refresh_token_secs", t.refresh_token_secs),
            ("authorization_code_secs", t.authorization_code_secs),
            ("device_code_secs", t.device_code_secs),
            ("device_poll_interval_secs", t.device_poll_interval_secs),
            ("session_secs", t.session_secs),
        ] {
            if v == 0 || v > 10 * 365 * 24 * 3600 {
                return Err(ConfigCheckError::Invalid(format!(
                    "`tokens.{name}` must be between 1 and 315360000 seconds"
                )));
            }
        }
        if self.login.max_failures_per_user == 0 || self.login.max_failures_per_address == 0 {
            return bad("`login.max_failures_per_*` must be at least 1");
        }
        if argon2::Params::new(
            self.password_hash.memory_kib,
            self.password_hash.iterations,
            self.password_hash.parallelism,
            None,
        )
        .is_err()
        {
            return bad("`password_hash` parameters are out of argon2's range (memory_kib >= 8 * parallelism, iterations >= 1)");
        }
        if self.admin_group.is_empty() {
            return bad("`admin_group` must not be empty");
        }
        Ok(())
    }
}
