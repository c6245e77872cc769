//! Sealing secrets before they are written to etcd.
//!
//! Some desired state needs a secret next to it (a TLS private key beside
//! its certificate). Such a secret is never written in plaintext: its
//! writer seals it with AES-256-GCM under the cluster secrets key, a file
//! of 32 random bytes that console and the readers of the sealed value
//! (webrouter) load with [`SecretsKey::load`]. The etcd path of the key the
//! value is stored under is the additional authenticated data, so a sealed
//! blob copied to another key no longer opens.
//!
//! A [`SealedSecret`] records the algorithm (`A256GCM`), a key id (a MAC
//! of a fixed message under the key, so it names the key without
//! revealing it), the 96-bit random nonce and the ciphertext with its tag,
//! both base64.

use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

use crate::keys::StoreKey;
use crate::value::SealedSecret;

/// The only algorithm [`seal`] writes and [`open`] reads.
pub const ALG: &str = "A256GCM";

/// Why a secrets key could not be loaded or a secret not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secrets key file {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error(
        "the secrets key file {path} has mode {mode:04o}; it must be readable by its owner only \
         (chmod 600 {path})"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "the secrets key file {path} must hold 32 bytes, raw or base64; it holds something else"
    )]
    BadKey { path: PathBuf },
    #[error("sealed with algorithm {alg:?}; only {ALG} is supported")]
    UnsupportedAlg { alg: String },
    #[error("sealed under secrets key {sealed_with:?}, but this component holds key {held:?}")]
    WrongKey { sealed_with: String, held: String },
    #[error("the sealed secret is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the sealed secret does not open: it was tampered with, or sealed for another key path"
    )]
    Decrypt,
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// The cluster secrets key: 32 bytes for AES-256-GCM. Its `Debug` shows
/// the key id only, and the bytes are wiped on drop.
///
/// It may carry retired keys ([`SecretsKey::with_retired`]) while the key
/// is being rotated: [`seal`] always uses this key, [`open`] also opens
/// what a retired key sealed.
#[derive(Clone)]
pub struct SecretsKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
    retired: Vec<SecretsKey>,
}

impl SecretsKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let id = key_id(&bytes);
        Self {
            bytes,
            id,
            retired: Vec::new(),
        }
    }

    /// This key, also opening what the `retired` keys sealed (a rotation:
    /// the new key seals, the old ones still open until everything is
    /// sealed again). A retired key equal to this one is dropped.
    pub fn with_retired(mut self, retired: impl IntoIterator<Item = SecretsKey>) -> Self {
        for mut k in retired {
            k.retired.clear();
            if k.id != self.id && !self.retired.iter().any(|r| r.id == k.id) {
                self.retired.push(k);
            }
        }
        self
    }

    /// Loads the key at `path` and the retired keys at `retired` (each as
    /// [`SecretsKey::load`] reads it).
    pub fn load_with_retired(path: &Path, retired: &[PathBuf]) -> Result<Self, SecretError> {
        let old = retired
            .iter()
            .map(|p| Self::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::load(path)?.with_retired(old))
    }

    /// The ids of the retired keys this one still opens for.
    pub fn retired_ids(&self) -> Vec<&str> {
        self.retired.iter().map(|k| k.id.as_str()).collect()
    }

    /// True when `sealed` was sealed under another key than this one (it
    /// should be sealed again, see [`reseal`]).
    pub fn is_stale(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id != self.id
    }

    /// A fresh random key (for tools and tests).
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        let k = Self::from_bytes(bytes);
        bytes.zeroize();
        k
    }

    /// The key in base64, as [`SecretsKey::load`] reads it back.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(*self.bytes))
    }

    /// Loads the key from `path`: 32 raw bytes, or their base64 (standard
    /// alphabet, surrounding whitespace ignored). The file must not be
    /// readable or writable by group or others (mode 0600 or stricter).
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |e: std::io::Error| SecretError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        if meta.len() > 4096 {
            return Err(SecretError::BadKey {
                path: path.to_owned(),
            });
        }
        let raw = Zeroizing::new(std::fs::read(path).map_err(read_err)?);
        let bad = || SecretError::BadKey {
            path: path.to_owned(),
        };
        let mut bytes = [0u8; 32];
        if raw.len() == 32 {
            bytes.copy_from_slice(&raw);
        } else {
            let text = std::str::from_utf8(&raw).map_err(|_| bad())?.trim();
            let decoded = Zeroizing::new(B64.decode(text).map_err(|_| bad())?);
            if decoded.len() != 32 {
                return Err(bad());
            }
            bytes.copy_from_slice(&decoded);
        }
        let k = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(k)
    }

    /// Names the key without revealing it (16 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.bytes[..]))
    }
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.id)
            .field("retired", &self.retired_ids())
            .finish_non_exhaustive()
    }
}

/// The key id: the GCM tag of an empty message under a fixed nonce and
/// label, a MAC that cannot be turned back into the key.
fn key_id(bytes: &[u8; 32]) -> String {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes));
    let tag = cipher
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: b"",
                aad: b"lain secrets key id",
            },
        )
        .unwrap_or_default();
    tag.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Seals `plaintext` under `key`, bound to `aad` (the etcd key path).
pub fn seal(key: &SecretsKey, plaintext: &[u8], aad: &str) -> Result<SealedSecret, SecretError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|e| SecretError::Seal(e.to_string()))?;
    Ok(SealedSecret {
        alg: ALG.to_owned(),
        key_id: key.id().to_owned(),
        nonce_b64: B64.encode(nonce),
        ciphertext_b64: B64.encode(ciphertext),
    })
}

/// Opens what [`seal`] sealed with the same key and `aad`.
pub fn open(
    key: &SecretsKey,
    sealed: &SealedSecret,
    aad: &str,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    if sealed.alg != ALG {
        return Err(SecretError::UnsupportedAlg {
            alg: sealed.alg.chars().take(32).collect(),
        });
    }
    let Some(key) = std::iter::once(key)
        .chain(key.retired.iter())
        .find(|k| k.id == sealed.key_id)
    else {
        return Err(SecretError::WrongKey {
            sealed_with: sealed.key_id.chars().take(32).collect(),
            held: key.id().to_owned(),
        });
    };
    let nonce = B64
        .decode(&sealed.nonce_b64)
        .map_err(|_| SecretError::Malformed("nonce_b64 is not base64"))?;
    if nonce.len() != 12 {
        return Err(SecretError::Malformed("the nonce is not 12 bytes"));
    }
    let ciphertext = B64
        .decode(&sealed.ciphertext_b64)
        .map_err(|_| SecretError::Malformed("ciphertext_b64 is not base64"))?;
    key.cipher()
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecretError::Decrypt)
}

/// `sealed` opened (with `key` or one of its retired keys) and sealed
/// again under `key` itself, bound to the same `aad`.
pub fn reseal(
    key: &SecretsKey,
    sealed: &SealedSecret,
    aad: &str,
) -> Result<SealedSecret, SecretError> {
    let plaintext = open(key, sealed, aad)?;
    seal(key, &plaintext, aad)
}

/// [`seal`] bound to the path of `at`, the key the value will be stored under.
pub fn seal_for<K: StoreKey>(
    key: &SecretsKey,
    at: &K,
    plaintext: &[u8],
) -> Result<SealedSecret, SecretError> {
    seal(key, plaintext, &at.path())
}

/// [`open`] for a secret read from the key `at`.
pub fn open_for<K: StoreKey>(
    key: &SecretsKey,
    at: &K,
    sealed: &SealedSecret,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    open(key, sealed, &at.path())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::keys::CertKey;

    #[test]
    fn a_rotated_key_opens_what_the_retired_one_sealed_and_reseals_it() {
        let (old, new) = (SecretsKey::generate(), SecretsKey::generate());
        let sealed = seal(&old, b"s3cret", "/lain/secrets/a/b/1").unwrap();
        // The new key alone does not open it, and says which key it needs.
        assert!(matches!(
            open(&new, &sealed, "/lain/secrets/a/b/1"),
            Err(SecretError::WrongKey { .. })
        ));
        let ring = new.clone().with_retired([old.clone(), new.clone()]);
        assert_eq!(ring.retired_ids(), vec![old.id()]);
        assert_eq!(ring.id(), new.id());
        assert!(ring.is_stale(&sealed));
        assert_eq!(
            &*open(&ring, &sealed, "/lain/secrets/a/b/1").unwrap(),
            b"s3cret"
        );
        // Bound to its path still.
        assert_eq!(
            open(&ring, &sealed, "/lain/secrets/a/b/2"),
            Err(SecretError::Decrypt)
        );
        let again = reseal(&ring, &sealed, "/lain/secrets/a/b/1").unwrap();
        assert_eq!(again.key_id, new.id());
        assert!(!ring.is_stale(&again));
        // Now the new key alone opens it; the old one no longer does.
        assert_eq!(
            &*open(&new, &again, "/lain/secrets/a/b/1").unwrap(),
            b"s3cret"
        );
        assert!(open(&old, &again, "/lain/secrets/a/b/1").is_err());
        // New seals always use the current key.
        assert_eq!(seal(&ring, b"x", "p").unwrap().key_id, new.id());
    }

    #[test]
    fn retired_keys_load_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (SecretsKey::generate(), SecretsKey::generate());
        let write = |name: &str, k: &SecretsKey| {
            let p = dir.path().join(name);
            std::fs::write(&p, k.to_base64().as_bytes()).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let (o, n) = (write("old", &old), write("new", &new));
        let ring = SecretsKey::load_with_retired(&n, std::slice::from_ref(&o)).unwrap();
        assert_eq!((ring.id(), ring.retired_ids()), (new.id(), vec![old.id()]));
        assert!(format!("{ring:?}").contains(old.id()));
        std::fs::set_permissions(&o, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretsKey::load_with_retired(&n, &[o]),
            Err(SecretError::Permissions { .. })
        ));
    }

    const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n";

    #[test]
    fn round_trip() {
        let k = SecretsKey::generate();
        let at = CertKey::new("example.com").unwrap();
        let sealed = seal_for(&k, &at, PEM).unwrap();
        assert_eq!(sealed.alg, "A256GCM");
        assert_eq!(sealed.key_id, k.id());
        assert!(!sealed.ciphertext_b64.contains("PRIVATE"));
        assert_eq!(&open_for(&k, &at, &sealed).unwrap()[..], PEM);
        // Fresh nonce every time.
        assert_ne!(seal_for(&k, &at, PEM).unwrap().nonce_b64, sealed.nonce_b64);
    }

    #[test]
    fn wrong_key_is_refused() {
        let (a, b) = (SecretsKey::generate(), SecretsKey::generate());
        assert_ne!(a.id(), b.id());
        let sealed = seal(&a, PEM, "/lain/certs/x").unwrap();
        assert!(matches!(
            open(&b, &sealed, "/lain/certs/x"),
            Err(SecretError::WrongKey { .. })
        ));
        // Even with the key id forged, the tag does not verify.
        let forged = SealedSecret {
            key_id: b.id().to_owned(),
            ..sealed
        };
        assert_eq!(
            open(&b, &forged, "/lain/certs/x").unwrap_err(),
            SecretError::Decrypt
        );
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let k = SecretsKey::generate();
        let mut sealed = seal(&k, PEM, "/lain/certs/x").unwrap();
        let mut ct = B64.decode(&sealed.ciphertext_b64).unwrap();
        ct[3] ^= 1;
        sealed.ciphertext_b64 = B64.encode(&ct);
        assert_eq!(
            open(&k, &sealed, "/lain/certs/x").unwrap_err(),
            SecretError::Decrypt
        );
        sealed.ciphertext_b64 = "!!".into();
        assert!(matches!(
            open(&k, &sealed, "/lain/certs/x"),
            Err(SecretError::Malformed(_))
        ));
        let other_alg = SealedSecret {
            alg: "none".into(),
            ..seal(&k, PEM, "/lain/certs/x").unwrap()
        };
        assert!(matches!(
            open(&k, &other_alg, "/lain/certs/x"),
            Err(SecretError::UnsupportedAlg { .. })
        ));
    }

    #[test]
    fn moved_blob_is_refused() {
        let k = SecretsKey::generate();
        let from = CertKey::new("a.example.com").unwrap();
        let to = CertKey::new("b.example.com").unwrap();
        let sealed = seal_for(&k, &from, PEM).unwrap();
        assert_eq!(
            open_for(&k, &to, &sealed).unwrap_err(),
            SecretError::Decrypt
        );
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let bytes = [0xabu8; 32];
        let k = SecretsKey::from_bytes(bytes);
        let shown = format!("{k:?} {k:#?}");
        assert!(shown.contains(k.id()), "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(!shown.contains(&B64.encode(bytes)[..8]), "{shown}");
    }

    #[test]
    fn load_reads_raw_and_base64_and_checks_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let k = SecretsKey::generate();
        let b64 = dir.path().join("b64");
        std::fs::write(&b64, format!("{}\n", k.to_base64().as_str())).unwrap();
        std::fs::set_permissions(&b64, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SecretsKey::load(&b64).unwrap().id(), k.id());

        let raw = dir.path().join("raw");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            SecretsKey::load(&raw).unwrap().id(),
            SecretsKey::from_bytes([7u8; 32]).id()
        );

        std::fs::set_permissions(&b64, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretsKey::load(&b64).unwrap_err();
        assert!(matches!(e, SecretError::Permissions { mode: 0o644, .. }));
        assert!(e.to_string().contains("chmod 600"), "{e}");

        let short = dir.path().join("short");
        std::fs::write(&short, "c2hvcnQ=").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            SecretsKey::load(&short),
            Err(SecretError::BadKey { .. })
        ));
        assert!(matches!(
            SecretsKey::load(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }
}
