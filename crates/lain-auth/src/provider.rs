//! sso as seen by a client: its discovery document (fetched once and
//! cached), its token endpoint and its revocation endpoint, called with
//! the client's secret (HTTP Basic). [`crate::ClientCredentials`] and the
//! web console's sign-in both go through it.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

/// The endpoints of sso's discovery document a client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

/// What the token endpoint answers.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    // Never the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why a call to sso failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// sso could not be reached, or answered something unreadable.
    #[error("{0}")]
    Unreachable(String),
    /// sso refused the request with an OAuth error (`invalid_grant`, ...).
    #[error("sso refused the request ({status}): {error}")]
    Refused { status: u16, error: String },
}

impl ProviderError {
    /// The code, refresh token or device code is no longer good.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, ProviderError::Refused { error, .. } if error == "invalid_grant")
    }
}

/// A confidential client of sso.
pub struct Provider {
    issuer: String,
    client_id: String,
    secret: Zeroizing<String>,
    http: reqwest::Client,
    discovery: OnceCell<Discovery>,
}

impl std::fmt::Debug for Provider {
    // Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// `issuer` is sso's issuer URL (a trailing `/` is ignored); every
    /// request is bounded by `timeout` and follows no redirect.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        secret: Zeroizing<String>,
        timeout: Duration,
    ) -> Provider {
        Provider {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            secret,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            discovery: OnceCell::new(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// sso's discovery document, fetched on first use (a failed fetch is
    /// tried again on the next call).
    pub async fn discovery(&self) -> Result<&Discovery, ProviderError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let unreachable =
                    |e: reqwest::Error| ProviderError::Unreachable(format!("discovery {url}: {e}"));
                self.http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(unreachable)?
                    .json()
                    .await
                    .map_err(unreachable)
            })
            .await
    }

    /// A token request (`grant_type` and its fields in `form`).
    pub async fn token(&self, form: &[(&str, &str)]) -> Result<TokenResponse, ProviderError> {
        let endpoint = &self.discovery().await?.token_endpoint;
        let r = self.post(endpoint, form).await?;
        r.json().await.map_err(|e| {
            ProviderError::Unreachable(format!("the token endpoint's answer is unreadable: {e}"))
        })
    }

    /// Revokes `token` (RFC 7009); a no-op when sso has no revocation
    /// endpoint.
    pub async fn revoke(&self, token: &str, hint: &str) -> Result<(), ProviderError> {
        let Some(endpoint) = self.discovery().await?.revocation_endpoint.clone() else {
            return Ok(());
        };
        self.post(&endpoint, &[("token", token), ("token_type_hint", hint)])
            .await
            .map(drop)
    }

    /// POSTs `form` with the client's secret; a non-2xx answer is
    /// [`ProviderError::Refused`] with sso's OAuth error code.
    async fn post(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, ProviderError> {
        let r = self
            .http
            .post(url)
            .basic_auth(&self.client_id, Some(self.secret.as_str()))
            .form(form)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(format!("{url}: {e}")))?;
        let status = r.status();
        if status.is_success() {
            return Ok(r);
        }
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
        }
        // sso's OAuth error body names the problem; no secret in it.
        let error = r
            .json::<OAuthError>()
            .await
            .map(|e| e.error.chars().take(64).collect())
            .unwrap_or_else(|_| "unreadable error".into());
        Err(ProviderError::Refused {
            status: status.as_u16(),
            error,
        })
    }
}
