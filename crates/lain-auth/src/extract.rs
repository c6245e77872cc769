//! axum integration: a [`Claims`] extractor and a middleware.

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::bearer::bearer_from_headers;
use crate::claims::Claims;
use crate::error::AuthError;
use crate::verifier::Verifier;

/// `Claims` as a handler argument: verifies the request's bearer token
/// with the [`Verifier`] in the router state (`Verifier: FromRef<S>`), or
/// reuses the claims [`require_bearer`] already put in the request
/// extensions. Rejects with [`AuthError`]: 401 and an RFC 6750
/// `WWW-Authenticate: Bearer error="invalid_token", ...` challenge.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use lain_auth::{Claims, Verifier, VerifierConfig};
///
/// async fn whoami(claims: Claims) -> String {
///     format!("{} admin={}", claims.username(), claims.is_in_group("admin"))
/// }
///
/// let verifier = Verifier::new(VerifierConfig::new("https://sso.example", "console")).unwrap();
/// let app: Router = Router::new().route("/whoami", get(whoami)).with_state(verifier);
/// ```
impl<S> FromRequestParts<S> for Claims
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(claims.clone());
        }
        let verifier = Verifier::from_ref(state);
        let result = match bearer_from_headers(&parts.headers) {
            Ok(token) => verifier.verify(token).await,
            Err(e) => Err(e),
        };
        log_rejection(&result);
        result
    }
}

/// `Option<Claims>`: `None` when the request has no `Authorization`
/// header at all (anonymous), the claims when it has a valid token, and a
/// rejection when it has a bad one: a bad token never silently becomes
/// anonymous.
impl<S> OptionalFromRequestParts<S> for Claims
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Claims as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(claims) => Ok(Some(claims)),
            Err(AuthError::MissingCredentials) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Middleware that lets only requests with a valid bearer token through,
/// and puts their [`Claims`] in the request extensions (so handlers can
/// take `Claims` or `Extension<Claims>`).
///
/// ```no_run
/// use axum::{middleware, routing::post, Router};
/// use lain_auth::{Verifier, VerifierConfig};
///
/// let verifier = Verifier::new(VerifierConfig::new("https://sso.example", "deployd")).unwrap();
/// let api: Router = Router::new()
///     .route("/deploy", post(|| async { "ok" }))
///     .layer(middleware::from_fn_with_state(verifier, lain_auth::require_bearer));
/// ```
pub async fn require_bearer(
    State(verifier): State<Verifier>,
    mut request: Request,
    next: Next,
) -> Response {
    let result = verifier.verify_headers(request.headers()).await;
    log_rejection(&result);
    match result {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

fn log_rejection(result: &Result<Claims, AuthError>) {
    match result {
        Ok(claims) => tracing::trace!(subject = %claims, "bearer token accepted"),
        Err(e) if e.is_unavailable() => tracing::warn!(error = %e, "cannot verify bearer token"),
        Err(e) => tracing::debug!(error = %e, "bearer token rejected"),
    }
}
