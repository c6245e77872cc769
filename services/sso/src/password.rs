//! argon2id password hashing. Hashes are PHC strings, so each keeps the
//! cost it was made with.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordHashConfig;
use crate::secret::Secret;

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Hashes a password with argon2id at the configured cost.
pub fn hash(cfg: &PasswordHashConfig, password: &Secret) -> Result<String, String> {
    let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
        .map_err(|e| format!("bad argon2 parameters: {e}"))?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

/// Checks a password against a stored PHC string. A malformed hash never
/// matches.
pub fn verify(stored: &str, password: &Secret) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.expose().as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Rejects passwords that are too short or not text.
pub fn check_strength(password: &Secret) -> Result<(), String> {
    let p = password.expose();
    if p.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err("the password contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let cfg = PasswordHashConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = hash(&cfg, &Secret::new("correct horse")).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, &Secret::new("correct horse")));
        assert!(!verify(&h, &Secret::new("wrong horse")));
        assert!(!verify("garbage", &Secret::new("x")));
    }
}
