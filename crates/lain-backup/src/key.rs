//! Names: which volume a backup belongs to, the storage name derived from
//! it, and backup ids.
//!
//! Every value that ends up in an object path is validated here, so a
//! crafted app, proc or volume name can never point outside its own
//! directory on the target.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Longest app or proc name accepted (as etcd key segments in lain-store).
const MAX_NAME_LEN: usize = 253;
/// Longest volume path accepted.
const MAX_VOLUME_LEN: usize = 4096;
/// Storage names are single directory names on a `dir` target, and most
/// filesystems stop at 255 bytes; longer names are cut and given a hash.
const MAX_STORAGE_NAME: usize = 200;

/// One persistent volume of one instance of one proc: what a backup is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "KeyRepr")]
pub struct VolumeKey {
    app: String,
    proc: String,
    instance: u32,
    volume: String,
}

impl VolumeKey {
    /// Validates the parts.
    ///
    /// `app` follows LAIN's app names (letters, digits, single dashes);
    /// `proc` may also hold dots and underscores (`web.admin`); `volume`
    /// is the absolute path of the volume in the container, as in
    /// lain.yaml's `persistent_dirs` (`/redis/data`).
    pub fn new(app: &str, proc: &str, instance: u32, volume: &str) -> Result<Self> {
        validate_app(app)?;
        validate_proc(proc)?;
        validate_volume(volume)?;
        Ok(Self {
            app: app.to_owned(),
            proc: proc.to_owned(),
            instance,
            volume: volume.to_owned(),
        })
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn proc(&self) -> &str {
        &self.proc
    }

    pub fn instance(&self) -> u32 {
        self.instance
    }

    pub fn volume(&self) -> &str {
        &self.volume
    }

    /// LAIN's name for the volume's backups:
    /// `lain.{app}.{proc}.{instance}.{volume path with every character but
    /// ASCII letters and digits replaced by _}`, e.g.
    /// `lain.redis.worker.redis.1._redis_data`.
    ///
    /// Different paths can share a name (`/a.b` and `/a_b`); the target
    /// keeps the real key beside the backups, and the store picks
    /// [`VolumeKey::storage_name_with_hash`] for the second one.
    pub fn storage_name(&self) -> String {
        let name = format!(
            "lain.{}.{}.{}.{}",
            self.app,
            self.proc,
            self.instance,
            sanitize_path(&self.volume)
        );
        if name.len() > MAX_STORAGE_NAME {
            // Truncating alone could collide; the hash keeps it unique.
            return self.storage_name_with_hash();
        }
        name
    }

    /// The storage name with `.{first 8 hex digits of sha256(volume)}`
    /// appended (and cut to fit): the fallback when another volume already
    /// holds [`VolumeKey::storage_name`], or when it is too long.
    pub fn storage_name_with_hash(&self) -> String {
        let mut name = format!(
            "lain.{}.{}.{}.{}",
            self.app,
            self.proc,
            self.instance,
            sanitize_path(&self.volume)
        );
        // Everything before this point is ASCII, so any cut is on a char
        // boundary.
        name.truncate(MAX_STORAGE_NAME - 9);
        let hash = Sha256::digest(self.volume.as_bytes());
        name.push('.');
        name.push_str(&hex::encode(&hash[..4]));
        name
    }
}

/// What a [`VolumeKey`] is read from: read back from the target, it is
/// validated again like any other input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRepr {
    app: String,
    proc: String,
    instance: u32,
    volume: String,
}

impl TryFrom<KeyRepr> for VolumeKey {
    type Error = Error;
    fn try_from(r: KeyRepr) -> Result<Self> {
        VolumeKey::new(&r.app, &r.proc, r.instance, &r.volume)
    }
}

impl fmt::Display for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "volume {} of {}/{} instance {}",
            self.volume, self.app, self.proc, self.instance
        )
    }
}

/// Replaces every character except ASCII letters and digits with `_`.
pub fn sanitize_path(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub(crate) fn validate_app(app: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid_name("app name", app, reason));
    if app.is_empty() {
        return bad("it is empty");
    }
    if app.len() > MAX_NAME_LEN {
        return bad("it is longer than 253 characters");
    }
    if !app.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return bad("it must start with a letter");
    }
    if !app.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return bad("use letters, digits and single dashes, as in lain.yaml's `appname`");
    }
    if app.contains("--") || app.ends_with('-') {
        return bad("dashes must stand alone between letters or digits");
    }
    Ok(())
}

fn validate_proc(proc: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid_name("proc name", proc, reason));
    if proc.is_empty() {
        return bad("it is empty");
    }
    if proc.len() > MAX_NAME_LEN {
        return bad("it is longer than 253 characters");
    }
    if !proc.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("it must start with a letter or digit");
    }
    if !proc
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return bad("use letters, digits, `-`, `.` and `_`");
    }
    if proc.contains("..") {
        return bad("it must not contain `..`");
    }
    Ok(())
}

fn validate_volume(volume: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid_name("volume path", volume, reason));
    if !volume.starts_with('/') {
        return bad("it must be an absolute path, as in lain.yaml's `persistent_dirs`");
    }
    if volume.len() > MAX_VOLUME_LEN {
        return bad("it is longer than 4096 bytes");
    }
    if volume.chars().any(|c| c.is_control()) {
        return bad("it contains control characters");
    }
    if volume.split('/').any(|part| part == "..") {
        return bad("it must not contain `..`");
    }
    if volume.split('/').all(|part| part.is_empty() || part == ".") {
        return bad("it names the container's root, which is not a volume");
    }
    Ok(())
}

/// A backup's id: `YYYYMMDDTHHMMSSZ-xxxxxxxx`, the UTC second it was taken
/// and 8 random hex digits. Ids sort by time; within one second, by the
/// random part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

const ID_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

impl BackupId {
    /// A new id for a backup taken at `at`.
    pub fn generate(at: DateTime<Utc>) -> Self {
        let suffix: u32 = rand::random();
        Self(format!("{}-{suffix:08x}", at.format(ID_TIME_FORMAT)))
    }

    /// Validates an id given by a user or read from the target.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = || {
            Error::invalid_name(
                "backup id",
                value,
                "expected YYYYMMDDTHHMMSSZ-xxxxxxxx (a UTC time and 8 lowercase hex digits), e.g. 20240102T030405Z-0a1b2c3d",
            )
        };
        let (time, suffix) = value.split_once('-').ok_or_else(bad)?;
        if time.len() != 16
            || suffix.len() != 8
            || !suffix
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(bad());
        }
        NaiveDateTime::parse_from_str(time, ID_TIME_FORMAT).map_err(|_| bad())?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The second the backup was taken, from the id alone.
    pub fn time(&self) -> DateTime<Utc> {
        // The id was validated when it was made, so the prefix parses; the
        // fallback is unreachable but keeps this panic-free.
        NaiveDateTime::parse_from_str(&self.0[..16], ID_TIME_FORMAT)
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BackupId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for BackupId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn storage_name_follows_lain() {
        let k = VolumeKey::new("redis", "worker.redis", 1, "/redis/data_incrbackup").unwrap();
        assert_eq!(
            k.storage_name(),
            "lain.redis.worker.redis.1._redis_data_incrbackup"
        );
        let k = VolumeKey::new("hello", "web", 12, "/var/lib/my-app/data.d").unwrap();
        assert_eq!(k.storage_name(), "lain.hello.web.12._var_lib_my_app_data_d");
        assert_eq!(sanitize_path("/dätä/x y"), "_d_t__x_y");
    }

    #[test]
    fn colliding_paths_get_distinct_hashed_names() {
        let a = VolumeKey::new("app", "web", 1, "/a.b").unwrap();
        let b = VolumeKey::new("app", "web", 1, "/a_b").unwrap();
        assert_eq!(a.storage_name(), b.storage_name());
        assert_ne!(a.storage_name_with_hash(), b.storage_name_with_hash());
        assert!(a
            .storage_name_with_hash()
            .starts_with("lain.app.web.1._a_b."));
    }

    #[test]
    fn long_names_are_cut_and_hashed() {
        let long = format!("/{}", "x".repeat(400));
        let k = VolumeKey::new("app", "web", 1, &long).unwrap();
        let name = k.storage_name();
        assert_eq!(name.len(), MAX_STORAGE_NAME);
        assert_eq!(name, k.storage_name_with_hash());
        let other = VolumeKey::new("app", "web", 1, &format!("{long}y")).unwrap();
        assert_ne!(name, other.storage_name());
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        for app in ["", "a/b", "..", "a.b", "-a", "a-", "a--b", "1app", "a b"] {
            assert!(VolumeKey::new(app, "web", 1, "/d").is_err(), "app {app:?}");
        }
        for proc in ["", "a/b", "..", "a..b", ".a", "a b", "a\0"] {
            assert!(
                VolumeKey::new("app", proc, 1, "/d").is_err(),
                "proc {proc:?}"
            );
        }
        for vol in ["", "d", "/", "//", "/.", "/a/../b", "/a\nb"] {
            assert!(
                VolumeKey::new("app", "web", 1, vol).is_err(),
                "volume {vol:?}"
            );
        }
        let err = VolumeKey::new("app", "web", 1, "data")
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute path"), "{err}");
        assert!(VolumeKey::new("my-app2", "web.admin_x", 0, "/a/b.c/ d").is_ok());
        let bad = r#"{"app":"a","proc":"..","instance":1,"volume":"/d"}"#;
        assert!(serde_json::from_str::<VolumeKey>(bad).is_err());
    }

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let t1 = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let t2 = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 6).unwrap();
        let a = BackupId::generate(t1);
        let b = BackupId::generate(t2);
        assert!(a.as_str().starts_with("20240102T030405Z-"));
        assert!(a < b);
        assert_eq!(a.time(), t1);
        assert_eq!(BackupId::parse(a.as_str()).unwrap(), a);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<BackupId>(&json).unwrap(), a);
    }

    #[test]
    fn bad_ids_are_refused() {
        for id in [
            "",
            "20240102T030405Z",
            "20240102T030405Z-0A1B2C3D",
            "20240102T030405Z-0a1b2c3",
            "20241302T030405Z-0a1b2c3d",
            "../../../etc/pwd-0a1b2c3d",
            "20240102T030405Z-0a1b2c3d/..",
        ] {
            assert!(BackupId::parse(id).is_err(), "{id:?}");
        }
        assert!(serde_json::from_str::<BackupId>("\"../x\"").is_err());
    }
}
