//! Why a request or a token was refused, and how that maps to HTTP (RFC 6750).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Everything that can go wrong between an `Authorization` header and
/// verified [`Claims`](crate::Claims).
///
/// Each message says what failed and what to do about it. No message ever
/// contains the token; values taken from the token (`kid`, `alg`, `iss`,
/// `aud`) are shortened and stripped of control characters first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no `Authorization` header.
    #[error("no Authorization header: send `Authorization: Bearer <token>` with an access token from sso (`lain login`)")]
    MissingCredentials,

    /// The `Authorization` header uses another scheme, e.g. `Basic`.
    #[error("the Authorization header uses the {scheme:?} scheme: send `Authorization: Bearer <token>` with an access token from sso")]
    NotBearer {
        /// The scheme the client sent.
        scheme: String,
    },

    /// The `Authorization` header is not a well-formed `Bearer` credential.
    #[error("malformed Authorization header: {reason}; send exactly one `Authorization: Bearer <token>` header")]
    InvalidAuthorizationHeader {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The token is not a JWS compact serialization we can read.
    #[error("malformed token: {reason}; get a new token from sso (`lain login`)")]
    Malformed {
        /// What could not be read.
        reason: String,
    },

    /// The token's header names an algorithm other than RS256 (`none`,
    /// `HS256`, ...). sso signs with RS256 only, so this token was not
    /// issued by it.
    #[error("token is signed with {alg:?} but only RS256 is accepted: the token was not issued by this cluster's sso; log in again")]
    UnsupportedAlgorithm {
        /// The `alg` from the token header.
        alg: String,
    },

    /// The token's JOSE `typ` is not the one required (by default
    /// `at+jwt`): typically an ID token sent where an access token belongs.
    #[error("token type is {got:?} but this service accepts only {expected:?} tokens: send the access token from sso, not the ID token")]
    WrongTokenType {
        /// The required `typ`.
        expected: String,
        /// The token's `typ`, if any.
        got: Option<String>,
    },

    /// The token header has no `kid` and sso publishes more than one key.
    #[error("token header has no `kid` and sso publishes several keys: the token was not issued by this cluster's sso; log in again")]
    MissingKeyId,

    /// The token names a key that sso does not publish, even after a JWKS
    /// refresh (or the refresh was skipped because one ran moments ago).
    #[error("token is signed with key {kid:?}, which sso does not publish: the token is forged, from another sso, or signed with a key sso has retired; log in again")]
    UnknownKeyId {
        /// The `kid` from the token header.
        kid: String,
    },

    /// The RS256 signature does not match the key sso published under the
    /// token's `kid`.
    #[error("token signature does not verify against sso's published key: the token was altered or forged; log in again")]
    BadSignature,

    /// `iss` is not exactly the configured issuer.
    #[error("token issuer is {got:?} but this service trusts {expected:?}: log in against this cluster's sso")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`.
        got: String,
    },

    /// `aud` names none of the audiences this service accepts.
    #[error("token audience {got:?} includes none of {expected:?}: ask sso for a token meant for this service")]
    WrongAudience {
        /// The configured audiences.
        expected: Vec<String>,
        /// The token's `aud`.
        got: Vec<String>,
    },

    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {expired_at} (unix seconds; now {now}): refresh it or log in again")]
    Expired {
        /// The token's `exp`.
        expired_at: i64,
        /// This host's clock.
        now: i64,
    },

    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid before {not_before} (unix seconds; now {now}): if it was just issued, check that sso's and this host's clocks agree (NTP)")]
    NotYetValid {
        /// The token's `nbf`.
        not_before: i64,
        /// This host's clock.
        now: i64,
    },

    /// `iat` is in the future (beyond the leeway).
    #[error("token claims to be issued at {issued_at} (unix seconds), after now ({now}): check that sso's and this host's clocks agree (NTP)")]
    IssuedInFuture {
        /// The token's `iat`.
        issued_at: i64,
        /// This host's clock.
        now: i64,
    },

    /// A claim this crate requires (`iss`, `aud`, `exp`, `sub`) is absent.
    #[error("token has no `{0}` claim: it is not an sso access token; log in again")]
    MissingClaim(&'static str),

    /// A claim is present but has the wrong shape.
    #[error("token claim `{claim}` is invalid: {reason}; log in again")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No signing key has ever been loaded from sso, so nothing can be
    /// verified yet (sso down or unreachable since this service started).
    #[error("cannot verify tokens yet, no signing keys were ever loaded from sso ({reason}); check that sso is up and reachable at the configured issuer URL")]
    KeysUnavailable {
        /// The last discovery or JWKS failure.
        reason: String,
    },

    /// Fetching `/.well-known/openid-configuration` failed or returned
    /// something unusable.
    #[error("OpenID discovery at {url} failed: {reason}; check the issuer URL and that sso is up")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What failed.
        reason: String,
    },

    /// Fetching the JWKS failed or returned no usable RS256 key.
    #[error("fetching sso's signing keys from {url} failed: {reason}; check that sso is up")]
    JwksFetch {
        /// The JWKS URL.
        url: String,
        /// What failed.
        reason: String,
    },

    /// The [`VerifierConfig`](crate::VerifierConfig) is unusable.
    #[error("invalid lain-auth configuration: {0}")]
    Config(String),
}

impl AuthError {
    /// The HTTP status a resource server answers with: 401 for missing or
    /// bad tokens, 400 for a malformed `Authorization` header (RFC 6750
    /// `invalid_request`), 503 when sso's keys cannot be had at all.
    pub fn status(&self) -> StatusCode {
        match self.bearer_error() {
            Some("invalid_request") => StatusCode::BAD_REQUEST,
            Some(_) => StatusCode::UNAUTHORIZED,
            None if self.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `error` code: `invalid_request`, `invalid_token`, or
    /// `None` when the client sent no bearer credentials at all (the
    /// challenge then carries no error) or when the failure is ours.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingCredentials | AuthError::NotBearer { .. } => None,
            AuthError::InvalidAuthorizationHeader { .. } => Some("invalid_request"),
            _ if self.is_unavailable() => None,
            _ => Some("invalid_token"),
        }
    }

    /// True when the failure is on the verifying side (sso unreachable,
    /// bad configuration) rather than the token's fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            AuthError::KeysUnavailable { .. }
                | AuthError::Discovery { .. }
                | AuthError::JwksFetch { .. }
                | AuthError::Config(_)
        )
    }

    /// The `WWW-Authenticate` challenge to send, if any (RFC 6750 §3).
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        if self.is_unavailable() {
            return None;
        }
        let value = match self.bearer_error() {
            None => "Bearer".to_owned(),
            Some(code) => format!(
                "Bearer error=\"{code}\", error_description=\"{}\"",
                quoted_string_safe(&self.to_string())
            ),
        };
        HeaderValue::from_str(&value).ok()
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = match self.bearer_error() {
            Some(code) => code,
            None if self.is_unavailable() => "temporarily_unavailable",
            None => "unauthorized",
        };
        let body = serde_json::json!({
            "error": code,
            "error_description": self.to_string(),
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(challenge) = self.www_authenticate() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// RFC 6750 limits `error_description` to printable ASCII without `"` and
/// `\`; everything else becomes `'` or `?`.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Shortens a value taken from an untrusted token for use in a message.
pub(crate) fn untrusted(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}
