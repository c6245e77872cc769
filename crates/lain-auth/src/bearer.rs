//! Reading `Authorization: Bearer <token>` (RFC 6750 §2.1).

use axum::http::{header, HeaderMap};

use crate::error::{untrusted, AuthError};

/// Longest token accepted, in bytes. sso's tokens are far smaller; this
/// only bounds the work done on garbage.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Extracts the token from an `Authorization` header value.
///
/// The scheme is matched case-insensitively (`Bearer`, `bearer`,
/// `BEARER`); the token must be a non-empty RFC 6750 `b64token`
/// (`A-Z a-z 0-9 - . _ ~ + /`, then optional `=` padding).
///
/// ```
/// assert_eq!(lain_auth::parse_bearer("bearer abc.def.ghi").unwrap(), "abc.def.ghi");
/// assert!(lain_auth::parse_bearer("Basic dXNlcjpwYXNz").is_err());
/// ```
pub fn parse_bearer(value: &str) -> Result<&str, AuthError> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Err(AuthError::InvalidAuthorizationHeader {
            reason: "the header is empty",
        });
    }
    let (scheme, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer {
            scheme: untrusted(scheme),
        });
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(AuthError::InvalidAuthorizationHeader {
            reason: "`Bearer` is not followed by a token",
        });
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::InvalidAuthorizationHeader {
            reason: "the token is longer than 16 KiB",
        });
    }
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
    {
        return Err(AuthError::InvalidAuthorizationHeader {
            reason: "the token contains spaces or characters not allowed in a bearer token",
        });
    }
    Ok(token)
}

/// Finds the bearer token in request headers: exactly one `Authorization`
/// header, parsed by [`parse_bearer`].
pub fn bearer_from_headers(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidAuthorizationHeader {
            reason: "more than one Authorization header",
        });
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidAuthorizationHeader {
            reason: "the header is not visible ASCII",
        })?;
    parse_bearer(value)
}
