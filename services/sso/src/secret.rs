//! Random tokens, their stored hashes, constant-time comparison, and a
//! string wrapper whose `Debug` never shows the secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret (password, token, client secret). `Debug` and `Display` print
/// `***`, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// 128 random bits as 32 hex digits: identifiers (grant ids, key ids).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What is stored for a high-entropy token: base64url(SHA-256(token)).
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality (the length may leak; hashes have fixed length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// PKCE S256: base64url(SHA-256(verifier)) compared in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    ct_eq(computed.as_bytes(), challenge.as_bytes())
}

/// A device flow user code: 8 letters from an alphabet without vowels or
/// look-alikes (RFC 8628 §6.1), shown as `BCDF-GHJK`.
pub fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut out = String::with_capacity(9);
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    for (i, x) in b.iter().enumerate() {
        if i == 4 {
            out.push('-');
        }
        // 256 % 20 != 0: reject-free modulo bias is below 1/12 per char;
        // the code lives minutes and attempts are rate limited.
        out.push(ALPHABET[(*x as usize) % ALPHABET.len()] as char);
    }
    out
}

/// Normalises what a user typed as a user code: upper case, no dashes or
/// spaces.
pub fn normalize_user_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
    }

    #[test]
    fn pkce_rfc7636_example() {
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "x",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn user_codes_normalise() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(normalize_user_code(&c.to_lowercase()).len(), 8);
    }
}
