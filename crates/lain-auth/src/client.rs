//! The other side of sso's tokens: a daemon getting its own with the
//! client credentials grant (console calling deployd, deployd pulling from
//! the registry). The token endpoint comes from sso's discovery document;
//! the token is cached until shortly before it expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Bound of each request to sso (discovery, token endpoint).
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A cached token is replaced this long before it expires (at most half
/// its lifetime).
pub const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
#[error("cannot get a token for client {client_id:?} from sso at {issuer}: {detail}")]
pub struct ClientTokenError {
    pub issuer: String,
    pub client_id: String,
    pub detail: String,
}

/// A client's tokens from sso. Cheap to share behind an `Arc`.
pub struct ClientCredentials {
    client_id: String,
    secret: Zeroizing<String>,
    issuer: String,
    http: reqwest::Client,
    token: Mutex<Option<(Zeroizing<String>, Instant)>>,
    /// From sso's discovery document, fetched with the first token.
    token_endpoint: Mutex<Option<String>>,
}

impl std::fmt::Debug for ClientCredentials {
    // Never the secret or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// `issuer` is sso's issuer URL (a trailing `/` is ignored).
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        secret: Zeroizing<String>,
    ) -> ClientCredentials {
        ClientCredentials {
            client_id: client_id.into(),
            secret,
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(TOKEN_TIMEOUT)
                .build()
                .unwrap_or_default(),
            token: Mutex::new(None),
            token_endpoint: Mutex::new(None),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The cached token, or a new one from sso.
    pub async fn token(&self) -> Result<Zeroizing<String>, ClientTokenError> {
        let mut cached = self.token.lock().await;
        if let Some((value, refresh_at)) = cached.as_ref() {
            if Instant::now() < *refresh_at {
                return Ok(value.clone());
            }
        }
        let (value, lifetime) = self.fetch().await?;
        let margin = TOKEN_MARGIN.min(lifetime / 2);
        *cached = Some((
            value.clone(),
            Instant::now() + lifetime.saturating_sub(margin),
        ));
        Ok(value)
    }

    /// Drops the cached token (its audience refused it).
    pub async fn forget(&self) {
        *self.token.lock().await = None;
    }

    async fn fetch(&self) -> Result<(Zeroizing<String>, Duration), ClientTokenError> {
        let err = |detail: String| ClientTokenError {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            detail,
        };
        #[derive(Deserialize)]
        struct Discovery {
            token_endpoint: String,
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let endpoint = self.token_endpoint.lock().await.clone();
        let endpoint = match endpoint {
            Some(e) => e,
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let discovery: Discovery = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| err(format!("discovery {url}: {e}")))?
                    .json()
                    .await
                    .map_err(|e| err(format!("discovery {url}: {e}")))?;
                *self.token_endpoint.lock().await = Some(discovery.token_endpoint.clone());
                discovery.token_endpoint
            }
        };
        let r = self
            .http
            .post(&endpoint)
            .basic_auth(&self.client_id, Some(self.secret.as_str()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| err(format!("token endpoint: {e}")))?;
        let status = r.status();
        if !status.is_success() {
            // sso's OAuth error body names the problem; no secret in it.
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(err(format!("the token endpoint answered {status}: {text}")));
        }
        let answer: TokenAnswer = r
            .json()
            .await
            .map_err(|e| err(format!("token endpoint: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(1));
        Ok((Zeroizing::new(answer.access_token), lifetime))
    }
}
