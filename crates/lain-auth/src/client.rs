//! The other side of sso's tokens: a daemon getting its own with the
//! client credentials grant (console calling deployd, deployd pulling from
//! the registry). The token endpoint comes from sso's discovery document;
//! the token is cached until shortly before it expires. The calls to sso
//! are [`Provider`]'s.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::provider::Provider;

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
    sso: Provider,
    token: Mutex<Option<(Zeroizing<String>, Instant)>>,
}

impl std::fmt::Debug for ClientCredentials {
    // Never the secret or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.sso.client_id())
            .field("issuer", &self.sso.issuer())
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
            sso: Provider::new(issuer, client_id, secret, TOKEN_TIMEOUT),
            token: Mutex::new(None),
        }
    }

    pub fn client_id(&self) -> &str {
        self.sso.client_id()
    }

    pub fn issuer(&self) -> &str {
        self.sso.issuer()
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
        let answer = self
            .sso
            .token(&[("grant_type", "client_credentials")])
            .await
            .map_err(|e| ClientTokenError {
                issuer: self.sso.issuer().to_owned(),
                client_id: self.sso.client_id().to_owned(),
                detail: e.to_string(),
            })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(1));
        Ok((Zeroizing::new(answer.access_token), lifetime))
    }
}
