//! Where backups go, as a daemon's TOML configuration says it.
//!
//! ```toml
//! [backup.target]
//! kind = "dir"
//! path = "/var/lib/lain/backups"
//! ```
//!
//! ```toml
//! [backup.target]
//! kind = "s3"
//! endpoint = "https://s3.example.com"
//! region = "us-east-1"                # default
//! bucket = "lain-backups"
//! access_key_id = "AKIA..."
//! secret_access_key_file = "/etc/lain/backup-s3.secret"   # or secret_access_key = "..."
//! prefix = "cluster-a"                # optional
//! allow_http = false                  # true only for test servers on loopback
//! virtual_hosted_style = false        # path-style requests suit S3-compatible servers
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A backup target.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    /// A directory on the control plane (created if missing).
    Dir(DirConfig),
    /// A bucket of an S3-compatible object store.
    S3(S3Config),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://HOST[:PORT]` of the S3 API.
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    /// The secret key itself; prefer `secret_access_key_file`.
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    /// A file holding the secret key (surrounding whitespace is ignored).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Allow `http://` endpoints. Only for test servers on loopback.
    #[serde(default)]
    pub allow_http: bool,
    /// Keep every object under this path in the bucket.
    #[serde(default)]
    pub prefix: String,
    /// `https://BUCKET.HOST/key` instead of `https://HOST/BUCKET/key`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl S3Config {
    /// The secret key, from the config or its file.
    pub(crate) fn secret(&self) -> Result<SecretString> {
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(s), None) => Ok(s.clone()),
            (None, Some(path)) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read secret_access_key_file {}: {e} (it must be a readable file holding the S3 secret key)",
                        path.display()
                    ))
                })?);
                let secret = text.trim();
                if secret.is_empty() {
                    return Err(Error::Config(format!(
                        "secret_access_key_file {} is empty: write the S3 secret key into it",
                        path.display()
                    )));
                }
                Ok(SecretString::new(secret))
            }
            (Some(_), Some(_)) => Err(Error::Config(
                "both secret_access_key and secret_access_key_file are set: keep one (the file is safer)"
                    .to_owned(),
            )),
            (None, None) => Err(Error::Config(
                "the s3 target needs secret_access_key_file (or secret_access_key)".to_owned(),
            )),
        }
    }
}

/// A secret that never shows in `Debug` output and is wiped from memory
/// when dropped.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(secret: &str) -> Self {
        Self(Zeroizing::new(secret.to_owned()))
    }

    /// The secret itself, to hand to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Bounds on what an incoming volume archive may hold. Volumes come from
/// app containers, so their archives are not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Entries (files, directories, links...) in one volume. The manifest
    /// of a volume is held in memory (a few hundred bytes per entry).
    pub max_entries: u64,
    /// Bytes of file content in one volume.
    pub max_volume_bytes: u64,
    /// Bytes of one path or link target.
    pub max_path_bytes: usize,
    /// Bytes of the headers of one entry, long-name and PAX extension
    /// records included (they are read into memory).
    pub max_header_bytes: u64,
    /// Files up to this size are compared in memory when checking whether
    /// they changed; larger ones are spooled to a temporary file.
    pub compare_in_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 5_000_000,
            max_volume_bytes: 4 << 40,
            max_path_bytes: 4096,
            max_header_bytes: 1 << 20,
            compare_in_memory: 8 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_from_toml() {
        let c: TargetConfig =
            toml::from_str("kind = \"dir\"\npath = \"/var/lib/lain/backups\"\n").unwrap();
        assert_eq!(
            c,
            TargetConfig::Dir(DirConfig {
                path: "/var/lib/lain/backups".into()
            })
        );
    }

    #[test]
    fn s3_from_toml_hides_the_secret() {
        let c: TargetConfig = toml::from_str(
            r#"
            kind = "s3"
            endpoint = "http://127.0.0.1:9000"
            bucket = "b"
            access_key_id = "AK"
            secret_access_key = "very-secret-value"
            allow_http = true
            prefix = "p/q"
            "#,
        )
        .unwrap();
        let TargetConfig::S3(s3) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(s3.region, "us-east-1");
        assert!(s3.allow_http);
        assert_eq!(s3.secret().unwrap().expose(), "very-secret-value");
        let debug = format!("{c:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  s3cr3t\n").unwrap();
        let c = S3Config {
            endpoint: "https://s3".into(),
            region: default_region(),
            bucket: "b".into(),
            access_key_id: "a".into(),
            secret_access_key: None,
            secret_access_key_file: Some(path.clone()),
            allow_http: false,
            prefix: String::new(),
            virtual_hosted_style: false,
        };
        assert_eq!(c.secret().unwrap().expose(), "s3cr3t");
        std::fs::write(&path, "\n").unwrap();
        assert!(c.secret().unwrap_err().to_string().contains("is empty"));
        let both = S3Config {
            secret_access_key: Some(SecretString::new("x")),
            ..c.clone()
        };
        assert!(both.secret().unwrap_err().to_string().contains("keep one"));
        let none = S3Config {
            secret_access_key_file: None,
            ..c
        };
        assert!(none.secret().is_err());
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        assert!(
            toml::from_str::<TargetConfig>("kind = \"dir\"\npath = \"/x\"\npaht = 1\n").is_err()
        );
        assert!(toml::from_str::<TargetConfig>("kind = \"ftp\"\npath = \"/x\"\n").is_err());
        assert!(toml::from_str::<TargetConfig>("path = \"/x\"\n").is_err());
    }
}
