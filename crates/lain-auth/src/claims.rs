//! The verified contents of an sso access token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{untrusted, AuthError};

/// Claims of a token whose signature, issuer, audience and lifetime were
/// checked by [`Verifier::verify`](crate::Verifier::verify).
///
/// Standard claims are typed; everything the token carried, including
/// claims not listed here, stays available in [`Claims::raw`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id, or the client id for client-credentials tokens.
    pub sub: String,
    /// Issuer, equal to the configured issuer.
    pub iss: String,
    /// Audiences (a single-string `aud` becomes a one-element list).
    pub aud: Vec<String>,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, unix seconds, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// `preferred_username`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `name`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `email`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `groups` (empty when absent).
    #[serde(default)]
    pub groups: Vec<String>,
    /// `client_id` (RFC 9068), if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `azp` (authorized party), if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Scopes: the space-separated `scope` string split up (or an `scp`
    /// array); empty when absent.
    #[serde(default)]
    pub scope: Vec<String>,
    /// Every claim of the token as it was sent.
    #[serde(default)]
    pub raw: Map<String, Value>,
}

impl Claims {
    /// True when the `groups` claim contains `group` (exact, case-sensitive).
    pub fn is_in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// True when the token was granted `scope` (exact, case-sensitive).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }

    /// True when `aud` contains `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.aud.iter().any(|a| a == audience)
    }

    /// A name for humans and audit logs: `preferred_username`, else
    /// `name`, else `sub`.
    pub fn username(&self) -> &str {
        self.preferred_username
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or(&self.sub)
    }

    /// The OAuth client the token was issued to: `client_id`, else `azp`.
    pub fn client(&self) -> Option<&str> {
        self.client_id.as_deref().or(self.azp.as_deref())
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        if self.exp >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.exp as u64)
        } else {
            UNIX_EPOCH
        }
    }

    /// Any claim by name, typed or not.
    pub fn get(&self, claim: &str) -> Option<&Value> {
        self.raw.get(claim)
    }

    /// Builds typed claims from a verified payload. Checks shapes only;
    /// the verifier checks values.
    pub(crate) fn from_map(raw: Map<String, Value>) -> Result<Self, AuthError> {
        let iss = match raw.get("iss") {
            None => return Err(AuthError::MissingClaim("iss")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid("iss", "not a string")),
        };
        let sub = match raw.get("sub") {
            None => return Err(AuthError::MissingClaim("sub")),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return Err(invalid("sub", "empty")),
            Some(_) => return Err(invalid("sub", "not a string")),
        };
        let aud = match raw.get("aud") {
            None => return Err(AuthError::MissingClaim("aud")),
            Some(v) => {
                string_or_strings(v).ok_or(invalid("aud", "not a string or a list of strings"))?
            }
        };
        let exp = numeric_date(&raw, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        let iat = numeric_date(&raw, "iat")?;
        let nbf = numeric_date(&raw, "nbf")?;
        let groups = match raw.get("groups") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => string_or_strings(v).ok_or(invalid("groups", "not a list of strings"))?,
        };
        let scope = match (non_null(&raw, "scope"), non_null(&raw, "scp")) {
            (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_owned).collect(),
            (Some(_), _) => return Err(invalid("scope", "not a space-separated string")),
            (None, Some(v)) => {
                string_or_strings(v).ok_or(invalid("scp", "not a list of strings"))?
            }
            (None, None) => Vec::new(),
        };
        let client_id = strict_string(&raw, "client_id")?;
        let azp = strict_string(&raw, "azp")?;
        let text = |name: &str| raw.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Claims {
            preferred_username: text("preferred_username"),
            name: text("name"),
            email: text("email"),
            sub,
            iss,
            aud,
            exp,
            iat,
            nbf,
            groups,
            client_id,
            azp,
            scope,
            raw,
        })
    }
}

impl std::fmt::Display for Claims {
    /// `username (sub)`, for logs; never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.username();
        if name == self.sub {
            write!(f, "{}", untrusted(name))
        } else {
            write!(f, "{} ({})", untrusted(name), untrusted(&self.sub))
        }
    }
}

fn invalid(claim: &'static str, reason: &'static str) -> AuthError {
    AuthError::InvalidClaim { claim, reason }
}

fn non_null<'a>(raw: &'a Map<String, Value>, claim: &str) -> Option<&'a Value> {
    raw.get(claim).filter(|v| !v.is_null())
}

fn string_or_strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn strict_string(
    raw: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, AuthError> {
    match raw.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(claim, "not a string")),
    }
}

/// A JWT NumericDate: seconds since the epoch, possibly fractional.
fn numeric_date(raw: &Map<String, Value>, claim: &'static str) -> Result<Option<i64>, AuthError> {
    match raw.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                    _ => Err(invalid(claim, "not a usable number of seconds")),
                }
            }
        }
        Some(_) => Err(invalid(claim, "not a number of seconds since the epoch")),
    }
}
