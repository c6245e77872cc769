//! RS256 signing keys: generation, rotation, the JWKS, signing and
//! verifying JWTs.
//!
//! One key signs at a time. When it is `rotation_secs` old a new key takes
//! over; the old one stays in the JWKS until every token it signed has
//! expired (`publish_secs` after its retirement), then it is deleted.
//! Private keys are PKCS#8 DER in the database (see docs/reference/sso.md).

use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::db::Db;
use crate::error::StoreError;
use crate::now;

/// One published key, as in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

struct Active {
    kid: String,
    pair: RsaKeyPair,
}

struct KeySet {
    active: Arc<Active>,
    /// kid → (n, e), big-endian bytes.
    public: Vec<(String, Vec<u8>, Vec<u8>)>,
    jwks: Arc<Value>,
}

/// The key manager, shared by the handlers.
pub struct Keys {
    db: Db,
    rotation_secs: i64,
    publish_secs: i64,
    bits: usize,
    set: RwLock<Option<Arc<KeySet>>>,
    rng: SystemRandom,
    kek: Option<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("rotation_secs", &self.rotation_secs)
            .finish_non_exhaustive()
    }
}

/// Why a JWT was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is signed with an unknown key or algorithm")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not an access token (typ is not at+jwt)")]
    NotAnAccessToken,
}

fn generate_pkcs8(bits: usize) -> Result<Vec<u8>, StoreError> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| StoreError::Crypto(format!("cannot generate an RSA key: {e}")))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| StoreError::Crypto(format!("cannot encode the RSA key: {e}")))?;
    Ok(der.as_bytes().to_vec())
}

/// Prefix of a private key stored encrypted: base64(nonce || ciphertext),
/// AES-256-GCM with the key id as associated data.
const ENCRYPTED: &str = "aes256gcm:";

/// Reads a key-encryption key: 32 bytes as base64 or hex text.
pub fn load_kek(path: &std::path::Path) -> Result<[u8; 32], StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path).map_err(|e| {
        StoreError::Crypto(format!(
            "cannot read keys.encryption_key_file {}: {e}",
            path.display()
        ))
    })?;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "keys.encryption_key_file is readable by group or others; chmod 600 it");
        }
    }
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect()
    } else {
        STANDARD.decode(t).unwrap_or_default()
    };
    bytes.try_into().map_err(|_| {
        StoreError::Crypto(format!(
            "keys.encryption_key_file {} must hold 32 bytes as base64 or hex; make one with `sso keys new-encryption-key`",
            path.display()
        ))
    })
}

/// A new random key-encryption key, base64.
pub fn new_kek() -> String {
    use rand::RngCore;
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    STANDARD.encode(k)
}

fn aead_key(kek: &[u8; 32]) -> Result<ring::aead::LessSafeKey, StoreError> {
    ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, kek)
        .map(ring::aead::LessSafeKey::new)
        .map_err(|_| StoreError::Crypto("bad key-encryption key".into()))
}

fn seal(kek: &[u8; 32], kid: &str, der: &[u8]) -> Result<String, StoreError> {
    use rand::RngCore;
    let key = aead_key(kek)?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut buf = der.to_vec();
    key.seal_in_place_append_tag(
        ring::aead::Nonce::assume_unique_for_key(nonce),
        ring::aead::Aad::from(kid.as_bytes()),
        &mut buf,
    )
    .map_err(|_| StoreError::Crypto("cannot encrypt the signing key".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(format!("{ENCRYPTED}{}", STANDARD.encode(out)))
}

fn parse_pair(kid: &str, stored: &str, kek: Option<&[u8; 32]>) -> Result<RsaKeyPair, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "signing_keys",
        detail: format!("key {kid}: {detail}"),
    };
    let der = match stored.strip_prefix(ENCRYPTED) {
        Some(sealed) => {
            let kek = kek.ok_or_else(|| {
                StoreError::Crypto(format!(
                    "signing key {kid} is encrypted: set keys.encryption_key_file to the key it was encrypted with"
                ))
            })?;
            let raw = STANDARD
                .decode(sealed)
                .map_err(|e| corrupt(e.to_string()))?;
            if raw.len() < 12 + 16 {
                return Err(corrupt("encrypted key too short".into()));
            }
            let (nonce, ct) = raw.split_at(12);
            let mut buf = ct.to_vec();
            let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce)
                .map_err(|_| corrupt("bad nonce".into()))?;
            let plain = aead_key(kek)?
                .open_in_place(nonce, ring::aead::Aad::from(kid.as_bytes()), &mut buf)
                .map_err(|_| {
                    StoreError::Crypto(format!(
                        "cannot decrypt signing key {kid}: keys.encryption_key_file is not the key it was encrypted with"
                    ))
                })?;
            plain.to_vec()
        }
        None => STANDARD
            .decode(stored)
            .map_err(|e| corrupt(e.to_string()))?,
    };
    RsaKeyPair::from_pkcs8(&der).map_err(|e| corrupt(e.to_string()))
}

impl Keys {
    /// `publish_secs`: how long a retired key stays published (the longest
    /// JWT lifetime plus clock skew).
    /// `kek`: when given, new private keys are stored encrypted with it.
    pub fn new(
        db: Db,
        rotation_secs: u64,
        publish_secs: u64,
        bits: usize,
        kek: Option<[u8; 32]>,
    ) -> Self {
        Self {
            kek,
            db,
            rotation_secs: rotation_secs as i64,
            publish_secs: publish_secs as i64,
            bits,
            set: RwLock::new(None),
            rng: SystemRandom::new(),
        }
    }

    /// Loads the keys, makes a new one if none is active or the active one
    /// is due for rotation, deletes keys past their publication, and
    /// refreshes the in-memory set. Called at start and periodically.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let t = now();
        let newest: Option<i64> =
            sqlx::query("SELECT MAX(created_at) AS c FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(&self.db.pool)
                .await?
                .try_get("c")?;
        if newest.is_none_or(|c| c + self.rotation_secs <= t) {
            self.rotate().await?;
        } else {
            self.reload().await?;
        }
        Ok(())
    }

    /// Makes a new signing key now and retires the others.
    pub async fn rotate(&self) -> Result<String, StoreError> {
        let bits = self.bits;
        let started = std::time::Instant::now();
        let der = tokio::task::spawn_blocking(move || generate_pkcs8(bits))
            .await
            .map_err(|e| StoreError::Crypto(e.to_string()))??;
        let kid = crate::secret::random_id()[..16].to_owned();
        let t = now();
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, expires_at = $2 WHERE retired_at IS NULL",
        )
        .bind(t)
        .bind(t + self.publish_secs)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pkcs8, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&kid)
        .bind(match &self.kek {
            Some(k) => seal(k, &kid, &der)?,
            None => STANDARD.encode(&der),
        })
        .bind(t)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            kid,
            bits,
            ms = started.elapsed().as_millis() as u64,
            "new signing key"
        );
        self.reload().await?;
        Ok(kid)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let t = now();
        sqlx::query("DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(t)
            .execute(&self.db.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT kid, private_pkcs8, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut active = None;
        let mut public = Vec::new();
        for r in &rows {
            let kid: String = r.try_get("kid")?;
            let pair = parse_pair(
                &kid,
                &r.try_get::<String, _>("private_pkcs8")?,
                self.kek.as_ref(),
            )?;
            let comps: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
            public.push((kid.clone(), comps.n, comps.e));
            if active.is_none() && r.try_get::<Option<i64>, _>("retired_at")?.is_none() {
                active = Some(Arc::new(Active { kid, pair }));
            }
        }
        let active = active.ok_or_else(|| StoreError::Corrupt {
            table: "signing_keys",
            detail: "no active signing key".into(),
        })?;
        let keys: Vec<Jwk> = public
            .iter()
            .map(|(kid, n, e)| Jwk {
                kty: "RSA".into(),
                use_: "sig".into(),
                alg: "RS256".into(),
                kid: kid.clone(),
                n: URL_SAFE_NO_PAD.encode(n),
                e: URL_SAFE_NO_PAD.encode(e),
            })
            .collect();
        let jwks = Arc::new(serde_json::json!({ "keys": keys }));
        let set = Arc::new(KeySet {
            active,
            public,
            jwks,
        });
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = Some(set);
        Ok(())
    }

    fn current(&self) -> Result<Arc<KeySet>, StoreError> {
        self.set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Crypto("signing keys not loaded".into()))
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Result<Arc<Value>, StoreError> {
        Ok(self.current()?.jwks.clone())
    }

    /// The kid of the key that signs now.
    pub fn active_kid(&self) -> Result<String, StoreError> {
        Ok(self.current()?.active.kid.clone())
    }

    /// Signs `claims` as a compact JWS (RS256) with the active key.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, StoreError> {
        let set = self.current()?;
        let header = serde_json::json!({ "alg": "RS256", "typ": typ, "kid": set.active.kid });
        let mut msg = URL_SAFE_NO_PAD.encode(header.to_string());
        msg.push('.');
        msg.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; set.active.pair.public().modulus_len()];
        set.active
            .pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                msg.as_bytes(),
                &mut sig,
            )
            .map_err(|_| StoreError::Crypto("RSA signing failed".into()))?;
        msg.push('.');
        msg.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(msg)
    }

    /// Verifies a JWT this sso signed: signature with a published key,
    /// `iss`, and `exp`. Returns the claims.
    pub fn verify(&self, token: &str, issuer: &str) -> Result<Value, JwtError> {
        self.verify_opts(token, issuer, true)
    }

    /// Like [`Keys::verify`], and requires the header's `typ` to be
    /// `at+jwt` (RFC 9068): an ID token is not a bearer token.
    pub fn verify_access(&self, token: &str, issuer: &str) -> Result<Value, JwtError> {
        let claims = self.verify_opts(token, issuer, true)?;
        let header: Option<Value> = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let typ = header
            .as_ref()
            .and_then(|h| h["typ"].as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if typ == "at+jwt" || typ == "application/at+jwt" {
            Ok(claims)
        } else {
            Err(JwtError::NotAnAccessToken)
        }
    }

    /// Like [`Keys::verify`] but accepts an expired token (for an
    /// `id_token_hint` at logout).
    pub fn verify_ignoring_expiry(&self, token: &str, issuer: &str) -> Result<Value, JwtError> {
        self.verify_opts(token, issuer, false)
    }

    fn verify_opts(&self, token: &str, issuer: &str, check_exp: bool) -> Result<Value, JwtError> {
        let set = self.current().map_err(|_| JwtError::UnknownKey)?;
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header["alg"] != "RS256" {
            return Err(JwtError::UnknownKey);
        }
        let kid = header["kid"].as_str().ok_or(JwtError::UnknownKey)?;
        let (_, n, e) = set
            .public
            .iter()
            .find(|(k, _, _)| k == kid)
            .ok_or(JwtError::UnknownKey)?;
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let msg_len = h.len() + 1 + p.len();
        signature::RsaPublicKeyComponents { n, e }
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &token.as_bytes()[..msg_len],
                &sig,
            )
            .map_err(|_| JwtError::BadSignature)?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if claims["iss"] != issuer {
            return Err(JwtError::WrongIssuer);
        }
        if check_exp && claims["exp"].as_i64().is_none_or(|exp| exp <= now()) {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}
