//! Verifies the access tokens that lain's `sso` issues, for the services
//! that trust it (console, deployd, webrouter).
//!
//! A [`Verifier`] is configured with sso's issuer URL and the audiences the
//! service accepts. It discovers the JWKS from
//! `{issuer}/.well-known/openid-configuration`, caches the RS256 keys by
//! `kid`, refreshes them when a token names an unknown `kid` (at most once
//! per [`VerifierConfig::min_refresh_interval`], one refresh in flight at a
//! time) and keeps verifying with cached keys while sso is down.
//!
//! Only RS256 is accepted: `alg: none`, `HS256` (including HMAC keyed with
//! the public key, the key-confusion attack) and every other algorithm are
//! refused before any key is touched. Signatures are checked by the
//! `jsonwebtoken` crate; `iss` must equal the issuer exactly, `aud` must
//! contain an accepted audience, and `exp`, `nbf`, `iat` are checked
//! against the clock with a leeway.
//!
//! For axum, [`Claims`] is an extractor (the router state must provide a
//! [`Verifier`]) and [`require_bearer`] a middleware; failures answer 401
//! with an RFC 6750 `WWW-Authenticate: Bearer error="invalid_token", ...`
//! challenge (see [`AuthError::status`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), lain_auth::AuthError> {
//! use lain_auth::{Verifier, VerifierConfig};
//! let verifier = Verifier::new(VerifierConfig::new("https://sso.lain.local", "console"))?;
//! let claims = verifier.verify_headers(&axum::http::HeaderMap::new()).await?;
//! if claims.is_in_group("admin") { /* ... */ }
//! # Ok(()) }
//! ```
//!
//! The token itself is never logged nor put in an error message.

mod bearer;
mod claims;
mod client;
mod error;
mod extract;
mod provider;
mod verifier;

pub use bearer::{bearer_from_headers, parse_bearer, MAX_TOKEN_LEN};
pub use claims::Claims;
pub use client::{ClientCredentials, ClientTokenError, TOKEN_MARGIN, TOKEN_TIMEOUT};
pub use error::AuthError;
pub use extract::require_bearer;
pub use provider::{Discovery, Provider, ProviderError, TokenResponse};
pub use verifier::{Verifier, VerifierConfig};
