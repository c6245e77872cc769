//! Errors. [`StoreError`] is the database layer's; [`OAuthError`] is what an
//! HTTP endpoint answers, as the OAuth 2.0 RFCs define it (RFC 6749 §5.2,
//! RFC 8628 §3.5, RFC 6750 §3.1). Only server errors are logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("{0}")]
    Crypto(String),
}

/// An error an endpoint answers with.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("the user has not yet approved this device; keep polling")]
    AuthorizationPending,
    #[error("polling too fast; wait the interval before polling again")]
    SlowDown,
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    ExpiredToken(String),
    /// A bearer token that is missing, malformed, expired or revoked.
    #[error("{0}")]
    InvalidToken(String),
    /// A valid bearer token without the scope the endpoint needs.
    #[error("{0}")]
    InsufficientScope(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error: {0}")]
    Server(String),
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Server(e.to_string())
    }
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::AuthorizationPending => "authorization_pending",
            OAuthError::SlowDown => "slow_down",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::ExpiredToken(_) => "expired_token",
            OAuthError::InvalidToken(_) => "invalid_token",
            OAuthError::InsufficientScope(_) => "insufficient_scope",
            OAuthError::TooManyRequests(_) => "temporarily_unavailable",
            OAuthError::Server(_) => "server_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient(_) | OAuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            OAuthError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The description sent to the client (server details stay in the log).
    pub fn description(&self) -> String {
        match self {
            OAuthError::Server(_) => {
                "sso hit an internal error; retry, and tell the operator if it persists".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = json!({ "error": self.code(), "error_description": self.description() });
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            OAuthError::InvalidClient(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"sso\""),
                );
            }
            OAuthError::InvalidToken(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            OAuthError::InsufficientScope(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer error=\"insufficient_scope\", scope=\"openid\"",
                    ),
                );
            }
            _ => {}
        }
        resp
    }
}

/// Errors of the admin operations (CLI and API).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        AdminError::Store(StoreError::Sqlx(e))
    }
}
