//! What an API call can fail with, and how each failure is answered:
//! JSON `{"code", "message", "hint"}` (plus `diagnostics` for an invalid
//! lain.yaml) with one status per variant. Only 5xx are logged; a 5xx
//! answer never carries internal details (they go to the log, with the
//! request id).

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lain_auth::AuthError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::DbError;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `forbidden`, `invalid_json`.
    pub code: String,
    /// What went wrong, for a human.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// For `invalid_lain_yaml`: every diagnostic, `file:line:col: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, a malformed or an invalid bearer token, or sso's keys cannot be
    /// had (503).
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// A valid token whose subject may not do this.
    #[error("{message}")]
    Forbidden { message: String, hint: String },
    /// The body is not the JSON the endpoint takes.
    #[error("{0}")]
    InvalidJson(String),
    /// A field, path segment or query parameter breaks a rule.
    #[error("{message}")]
    Invalid { message: String, hint: String },
    /// A release's lain.yaml does not validate.
    #[error("the release's lain.yaml is invalid:\n{}", .0.join("\n"))]
    InvalidLainYaml(Vec<String>),
    #[error("{message}")]
    NotFound { message: String, hint: String },
    /// The request conflicts with what exists.
    #[error("{message}")]
    Conflict { message: String, hint: String },
    #[error("{0}")]
    TooLarge(String),
    /// A deploy, scale or rollback that cannot be carried out as asked
    /// (422): `code` is `cannot_fit` (not enough free resources; the
    /// message names the resource) or `undeployable` (e.g. a missing
    /// secret, an unknown proc).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        hint: String,
    },
    /// etcd is not connected or not answering (503 `etcd_unavailable`).
    #[error("{message}")]
    EtcdUnavailable { message: String, hint: String },
    /// Something console relies on for this call cannot serve it: 502
    /// (deployd unreachable, refusing console or failing) or 503 (not
    /// configured). The message names it; `code` e.g. `deployd_unreachable`.
    #[error("{message}")]
    Dependency {
        status: StatusCode,
        code: &'static str,
        message: String,
        hint: String,
    },
    /// Something on console's side failed; the detail goes to the log.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(e) => e.status(),
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::InvalidJson(_) | ApiError::Invalid { .. } | ApiError::InvalidLainYaml(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::EtcdUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Dependency { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(e) if e.is_unavailable() => "auth_unavailable",
            ApiError::Unauthenticated(e) if e.status() == StatusCode::BAD_REQUEST => {
                "invalid_request"
            }
            ApiError::Unauthenticated(_) => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Invalid { .. } => "invalid_request",
            ApiError::InvalidLainYaml(_) => "invalid_lain_yaml",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::EtcdUnavailable { .. } => "etcd_unavailable",
            ApiError::Dependency { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }

    /// True for a refusal of the caller (no or a bad token, 403): audited
    /// as `denied`.
    pub fn is_denial(&self) -> bool {
        match self {
            ApiError::Unauthenticated(e) => !e.is_unavailable(),
            ApiError::Forbidden { .. } => true,
            _ => false,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            ApiError::Unauthenticated(e) if e.is_unavailable() => {
                "console cannot load sso's signing keys; check that sso is up, then retry".into()
            }
            ApiError::Unauthenticated(_) => {
                "send `Authorization: Bearer <token>` with a valid sso access token for console (`lain login`)".into()
            }
            ApiError::Forbidden { hint, .. }
            | ApiError::Invalid { hint, .. }
            | ApiError::NotFound { hint, .. }
            | ApiError::Conflict { hint, .. }
            | ApiError::Unprocessable { hint, .. }
            | ApiError::EtcdUnavailable { hint, .. }
            | ApiError::Dependency { hint, .. } => hint.clone(),
            ApiError::InvalidJson(_) => {
                "send a JSON object with exactly the fields the endpoint documents (see /api/v1/openapi.json)".into()
            }
            ApiError::InvalidLainYaml(_) => {
                "fix lain.yaml at the lines named (`lain validate` checks it locally), rebuild and push again".into()
            }
            ApiError::TooLarge(_) => "send a smaller body".into(),
            ApiError::Internal(_) => {
                "retry; if it persists, the console operator finds the cause in console's log under this request id".into()
            }
        }
    }

    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::Forbidden {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::NotFound {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn conflict(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::Conflict {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The JSON body sent for this error (5xx: without internal detail).
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(_) => "console failed to handle the request".to_owned(),
            e => e.to_string(),
        };
        ErrorBody {
            code: self.code().to_owned(),
            message,
            hint: self.hint(),
            diagnostics: match self {
                ApiError::InvalidLainYaml(d) => d.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// Splits a message of the form `what; hint` (the store's style).
pub(crate) fn split_hint(message: String, default_hint: &str) -> (String, String) {
    match message.split_once("; ") {
        Some((m, h)) => (m.to_owned(), h.to_owned()),
        None => (message, default_hint.to_owned()),
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match &e {
            DbError::Invalid { .. } => {
                ApiError::invalid(e.to_string(), "change the value as the message says")
            }
            DbError::NotFound { .. } => {
                let (m, h) = split_hint(e.to_string(), "check the name");
                ApiError::not_found(m, h)
            }
            DbError::AlreadyExists { .. } => {
                let (m, h) = split_hint(e.to_string(), "choose another name");
                ApiError::conflict(m, h)
            }
            DbError::ReleaseConflict { .. } | DbError::LastOwner { .. } => {
                let (m, h) = split_hint(e.to_string(), "");
                ApiError::conflict(m, h)
            }
            DbError::InvalidTransition { .. } => {
                ApiError::conflict(e.to_string(), "start a new deployment")
            }
            DbError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            DbError::Secret { .. }
            | DbError::Corrupt { .. }
            | DbError::Open(_)
            | DbError::Sqlx(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Unauthenticated(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(b) => ApiError::from(b),
            JsonRejection::MissingJsonContentType(_) => ApiError::InvalidJson(
                "the body must be JSON sent with `Content-Type: application/json`".into(),
            ),
            other => ApiError::InvalidJson(format!("the body is not valid: {}", other.body_text())),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the body is larger than the {} bytes console accepts",
                crate::api::BODY_LIMIT
            ))
        } else {
            ApiError::invalid(
                format!("cannot read the body: {}", r.body_text()),
                "send the body again",
            )
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::invalid(
            format!("bad path: {}", r.body_text()),
            "check the URL against /api/v1/openapi.json",
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid(
            format!("bad query: {}", r.body_text()),
            "check the query parameters against /api/v1/openapi.json",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code = self.code(), error = %self, "API request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let ApiError::Unauthenticated(e) = &self {
            if let Some(v) = e.www_authenticate() {
                response.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
