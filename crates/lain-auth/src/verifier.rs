//! The verifier: discovery, the JWKS cache and token checks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::bearer::{bearer_from_headers, MAX_TOKEN_LEN};
use crate::claims::Claims;
use crate::error::{untrusted, AuthError};

/// Largest discovery document or JWKS read from sso.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How to reach sso and what to accept.
///
/// ```
/// use std::time::Duration;
/// let config = lain_auth::VerifierConfig::new("https://sso.lain.local", "console")
///     .with_audience("lain-cli")
///     .with_leeway(Duration::from_secs(30));
/// assert_eq!(config.audiences, ["console", "lain-cli"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The issuer, exactly as sso writes it in `iss` and in its discovery
    /// document. Discovery is fetched from
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted audiences: a token passes when its `aud` contains at least
    /// one of them.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 60 s.
    pub leeway: Duration,
    /// At most one JWKS refresh triggered by an unknown `kid` per this
    /// interval. Default 10 s.
    pub min_refresh_interval: Duration,
    /// Timeout of each request to sso. Default 5 s.
    pub http_timeout: Duration,
    /// Use this JWKS URL instead of discovering it.
    pub jwks_uri: Option<String>,
    /// The JOSE `typ` a token must have, compared case-insensitively with
    /// an optional `application/` prefix. Default `at+jwt`: sso marks its
    /// access tokens so (RFC 9068), and its ID tokens `JWT`, so an ID token
    /// cannot pass for an access token. `None` accepts any `typ`.
    pub token_type: Option<String>,
}

impl VerifierConfig {
    /// A configuration with one accepted audience and the defaults.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        VerifierConfig {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            leeway: Duration::from_secs(60),
            min_refresh_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
            jwks_uri: None,
            token_type: Some("at+jwt".to_owned()),
        }
    }

    /// Accepts one more audience.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Sets the clock-skew leeway.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the minimum interval between JWKS refreshes caused by unknown
    /// key ids.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// Sets the timeout of each request to sso.
    pub fn with_http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Skips discovery and fetches keys from `jwks_uri`.
    pub fn with_jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// Requires this JOSE `typ` instead of `at+jwt`.
    pub fn with_token_type(mut self, typ: impl Into<String>) -> Self {
        self.token_type = Some(typ.into());
        self
    }

    /// Accepts tokens whatever their `typ`, e.g. ID tokens. Only for a
    /// service whose audience no OAuth client id can equal.
    pub fn with_any_token_type(mut self) -> Self {
        self.token_type = None;
        self
    }

    fn validate(&self) -> Result<(), AuthError> {
        if !is_http_url(&self.issuer) {
            return Err(AuthError::Config(format!(
                "issuer {:?} is not an http(s) URL: set it to sso's issuer, e.g. https://sso.example.com",
                self.issuer
            )));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(AuthError::Config(
                "no audience, or an empty one: set the audience sso puts in tokens for this service (e.g. its client id)".into(),
            ));
        }
        if let Some(uri) = &self.jwks_uri {
            if !is_http_url(uri) {
                return Err(AuthError::Config(format!(
                    "jwks_uri {uri:?} is not an http(s) URL"
                )));
            }
        }
        Ok(())
    }
}

/// Verifies sso's RS256 access tokens. Cheap to clone; clones share the
/// key cache.
///
/// Keys are fetched lazily on the first verification (or eagerly with
/// [`Verifier::refresh`]), cached by `kid`, and refreshed when a token
/// names an unknown `kid`, at most once per
/// [`VerifierConfig::min_refresh_interval`]; concurrent verifications
/// wait for the same refresh. When sso is down, keys already cached keep
/// verifying.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audiences", &self.inner.config.audiences)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    discovery_url: String,
    cache: RwLock<KeyCache>,
    /// Held for the whole of a refresh: one refresh in flight at a time.
    refresh_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// From discovery; cleared when fetching it fails.
    jwks_uri: Option<String>,
    /// Refresh attempts so far, successful or not.
    attempts: u64,
    last_attempt: Option<Instant>,
    /// Whether a JWKS was ever loaded.
    loaded: bool,
    last_error: Option<AuthError>,
}

enum Lookup {
    Found(Arc<DecodingKey>),
    /// The token has no kid and the cache has several keys.
    Ambiguous,
    Missing,
}

impl KeyCache {
    fn lookup(&self, kid: Option<&str>) -> Lookup {
        match kid {
            Some(kid) => match self.keys.get(kid) {
                Some(key) => Lookup::Found(key.clone()),
                None => Lookup::Missing,
            },
            None => match self.keys.len() {
                0 => Lookup::Missing,
                1 => Lookup::Found(self.keys.values().next().cloned().expect("one key")),
                _ => Lookup::Ambiguous,
            },
        }
    }

    /// The error for a kid still missing after the refresh logic ran.
    fn miss_error(&self, kid: Option<&str>) -> AuthError {
        if !self.loaded {
            let reason = match &self.last_error {
                Some(e) => e.to_string(),
                None => "no refresh has completed yet".to_owned(),
            };
            return AuthError::KeysUnavailable { reason };
        }
        match kid {
            Some(kid) => AuthError::UnknownKeyId {
                kid: untrusted(kid),
            },
            None => AuthError::MissingKeyId,
        }
    }
}

#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Value>,
}

impl Verifier {
    /// A verifier with its own HTTP client. Does no I/O: keys are fetched
    /// on first use, so a service can start before sso.
    pub fn new(config: VerifierConfig) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            // Refreshes are seconds apart at least: no point keeping idle
            // connections to sso open.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| AuthError::Config(format!("cannot build the HTTP client: {e}")))?;
        Self::with_client(config, http)
    }

    /// A verifier using `http` to reach sso, e.g. a client that trusts the
    /// cluster's own CA. Its timeouts apply, not
    /// [`VerifierConfig::http_timeout`].
    pub fn with_client(config: VerifierConfig, http: reqwest::Client) -> Result<Self, AuthError> {
        config.validate()?;
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        );
        Ok(Verifier {
            inner: Arc::new(Inner {
                config,
                http,
                discovery_url,
                cache: RwLock::new(KeyCache::default()),
                refresh_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The configuration this verifier was built with.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// Key ids currently cached, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.read_cache().keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Verifies the bearer token of a request: one `Authorization: Bearer`
    /// header, then [`Verifier::verify`].
    pub async fn verify_headers(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Claims, AuthError> {
        let token = bearer_from_headers(headers)?;
        self.verify(token).await
    }

    /// Verifies a compact JWS token and returns its claims.
    ///
    /// Checks, in order: shape; `alg` is RS256 (so `none`, `HS256` and the
    /// rest fail before any key is used); no `crit`; `typ` (default
    /// `at+jwt`, see [`VerifierConfig::token_type`]); the key named by `kid`
    /// (refreshing the JWKS when unknown, rate-limited); the signature;
    /// `iss` equals the configured issuer; `aud` contains an accepted
    /// audience; `exp`, `nbf`, `iat` against the clock with the leeway;
    /// `sub` present.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = parse_header(token)?;
        if header.alg != "RS256" {
            return Err(AuthError::UnsupportedAlgorithm {
                alg: untrusted(&header.alg),
            });
        }
        if header.crit.is_some() {
            return Err(AuthError::Malformed {
                reason: "the header has `crit` extensions, which sso never sets".into(),
            });
        }
        if let Some(expected) = &self.inner.config.token_type {
            if !header
                .typ
                .as_deref()
                .is_some_and(|typ| same_media_type(typ, expected))
            {
                return Err(AuthError::WrongTokenType {
                    expected: expected.clone(),
                    got: header.typ.as_deref().map(untrusted),
                });
            }
        }
        let key = self.key_for(header.kid.as_deref()).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        // Only the signature here: claims are checked below, with errors
        // that say which value was wrong.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(map_jwt_error)?;

        self.check_claims(Claims::from_map(data.claims)?, unix_now())
    }

    fn check_claims(&self, claims: Claims, now: i64) -> Result<Claims, AuthError> {
        let config = &self.inner.config;
        if claims.iss != config.issuer {
            return Err(AuthError::WrongIssuer {
                expected: config.issuer.clone(),
                got: untrusted(&claims.iss),
            });
        }
        if !config.audiences.iter().any(|a| claims.has_audience(a)) {
            return Err(AuthError::WrongAudience {
                expected: config.audiences.clone(),
                got: claims.aud.iter().take(8).map(|a| untrusted(a)).collect(),
            });
        }
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        if now >= claims.exp.saturating_add(leeway) {
            return Err(AuthError::Expired {
                expired_at: claims.exp,
                now,
            });
        }
        if let Some(nbf) = claims.nbf {
            if nbf > now.saturating_add(leeway) {
                return Err(AuthError::NotYetValid {
                    not_before: nbf,
                    now,
                });
            }
        }
        if let Some(iat) = claims.iat {
            if iat > now.saturating_add(leeway) {
                return Err(AuthError::IssuedInFuture {
                    issued_at: iat,
                    now,
                });
            }
            if iat > claims.exp {
                return Err(AuthError::InvalidClaim {
                    claim: "iat",
                    reason: "issued after it expires",
                });
            }
        }
        Ok(claims)
    }

    /// Fetches the JWKS now (discovering its URL first if needed),
    /// regardless of the rate limit, and returns how many RS256 keys it
    /// holds. Waits for a refresh already in flight. On failure the cached
    /// keys are kept.
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        let _guard = self.inner.refresh_lock.lock().await;
        self.inner.fetch_and_store().await
    }

    /// Refreshes the JWKS every `every` in a background task, so rotated
    /// keys are known before tokens use them. Failures are logged and the
    /// cached keys kept. The task ends when the last clone of this
    /// verifier is dropped (or when the handle is aborted). Needs a tokio
    /// runtime.
    pub fn spawn_periodic_refresh(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = every.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let verifier = Verifier { inner };
                if let Err(e) = verifier.refresh().await {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping cached keys");
                }
            }
        })
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        let seen = {
            let cache = self.inner.read_cache();
            match cache.lookup(kid) {
                Lookup::Found(key) => return Ok(key),
                Lookup::Ambiguous => return Err(AuthError::MissingKeyId),
                Lookup::Missing => cache.attempts,
            }
        };

        let _guard = self.inner.refresh_lock.lock().await;
        {
            let cache = self.inner.read_cache();
            if let Lookup::Found(key) = cache.lookup(kid) {
                return Ok(key);
            }
            if cache.attempts != seen {
                // A refresh finished while we waited for the lock: its
                // result is as fresh as ours would be.
                return Err(cache.miss_error(kid));
            }
            if let Some(at) = cache.last_attempt {
                if at.elapsed() < self.inner.config.min_refresh_interval {
                    tracing::debug!(
                        kid = %untrusted(kid.unwrap_or("")),
                        "unknown key id; JWKS refresh skipped (rate limit)"
                    );
                    return Err(cache.miss_error(kid));
                }
            }
        }
        tracing::debug!(kid = %untrusted(kid.unwrap_or("")), "unknown key id; refreshing JWKS");
        // Failure is logged inside and reflected in miss_error below.
        let _ = self.inner.fetch_and_store().await;
        let cache = self.inner.read_cache();
        match cache.lookup(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Ambiguous => Err(AuthError::MissingKeyId),
            Lookup::Missing => Err(cache.miss_error(kid)),
        }
    }
}

impl Inner {
    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, KeyCache> {
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One refresh attempt. The caller holds `refresh_lock`.
    async fn fetch_and_store(&self) -> Result<usize, AuthError> {
        let cached_uri = {
            let mut cache = self.write_cache();
            cache.attempts += 1;
            cache.last_attempt = Some(Instant::now());
            cache.jwks_uri.clone()
        };
        let result = self.fetch_keys(cached_uri).await;
        let mut cache = self.write_cache();
        match result {
            Ok((uri, keys)) => {
                let count = keys.len();
                tracing::info!(jwks_uri = %uri, keys = count, "loaded sso signing keys");
                cache.keys = keys;
                cache.jwks_uri = Some(uri);
                cache.loaded = true;
                cache.last_error = None;
                Ok(count)
            }
            Err(e) => {
                tracing::warn!(error = %e, cached_keys = cache.keys.len(), "refreshing sso signing keys failed; keeping cached keys");
                if matches!(e, AuthError::JwksFetch { .. }) {
                    // The discovered URL may be stale: discover again next time.
                    cache.jwks_uri = None;
                }
                cache.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch_keys(
        &self,
        cached_uri: Option<String>,
    ) -> Result<(String, HashMap<String, Arc<DecodingKey>>), AuthError> {
        let uri = match (&self.config.jwks_uri, cached_uri) {
            (Some(uri), _) => uri.clone(),
            (None, Some(uri)) => uri,
            (None, None) => self.discover().await?,
        };
        let fetch_error = |reason: String| AuthError::JwksFetch {
            url: uri.clone(),
            reason,
        };
        let body = get_json_bytes(&self.http, &uri)
            .await
            .map_err(fetch_error)?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| fetch_error(format!("not a JWK set: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            match rs256_key(jwk) {
                Ok((kid, key)) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(why) => tracing::debug!(jwks_uri = %uri, why, "skipping a JWK"),
            }
        }
        if keys.is_empty() {
            return Err(fetch_error(
                "the set has no RS256 signing key with a kid".into(),
            ));
        }
        Ok((uri, keys))
    }

    async fn discover(&self) -> Result<String, AuthError> {
        let url = &self.discovery_url;
        let error = |reason: String| AuthError::Discovery {
            url: url.clone(),
            reason,
        };
        let body = get_json_bytes(&self.http, url).await.map_err(error)?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| error(format!("not an OpenID provider configuration: {e}")))?;
        if doc.issuer != self.config.issuer {
            return Err(error(format!(
                "it names issuer {:?}, not the configured {:?}; configure the issuer exactly as sso publishes it",
                untrusted(&doc.issuer),
                self.config.issuer
            )));
        }
        if !is_http_url(&doc.jwks_uri) {
            return Err(error(format!(
                "jwks_uri {:?} is not an http(s) URL",
                untrusted(&doc.jwks_uri)
            )));
        }
        Ok(doc.jwks_uri)
    }
}

/// GETs `url`, expecting 2xx and at most [`MAX_DOCUMENT_BYTES`].
async fn get_json_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("sso answered HTTP {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err("the response is larger than 1 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JWK usable for RS256 signatures, or why it is skipped.
fn rs256_key(jwk: &Value) -> Result<(String, DecodingKey), &'static str> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("kty") != Some("RSA") {
        return Err("not an RSA key");
    }
    if !matches!(field("use"), None | Some("sig")) {
        return Err("not a signing key (use)");
    }
    if !matches!(field("alg"), None | Some("RS256")) {
        return Err("not an RS256 key (alg)");
    }
    let kid = field("kid").filter(|k| !k.is_empty()).ok_or("no kid")?;
    let (Some(n), Some(e)) = (field("n"), field("e")) else {
        return Err("no n or e");
    };
    let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "n or e is not base64url")?;
    Ok((kid.to_owned(), key))
}

/// Reads the JOSE header without trusting it, checking the token's shape.
fn parse_header(token: &str) -> Result<TokenHeader, AuthError> {
    let malformed = |reason: &str| AuthError::Malformed {
        reason: reason.to_owned(),
    };
    if token.is_empty() {
        return Err(malformed("the token is empty"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("the token is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(malformed("the header or payload part is empty"));
    }
    if !token
        .bytes()
        .all(|b| b == b'.' || b == b'-' || b == b'_' || b.is_ascii_alphanumeric())
    {
        return Err(malformed("a part is not base64url (without padding)"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| malformed("the header is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| malformed("the header is not a JSON object with a string `alg`"))
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::UnsupportedAlgorithm { alg: "?".into() }
        }
        ErrorKind::Base64(_) => AuthError::Malformed {
            reason: "a part is not base64url".into(),
        },
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => AuthError::Malformed {
            reason: "the payload is not a JSON object".into(),
        },
        // An RSA key the crypto library refuses, or a signature of the
        // wrong length: the token does not verify.
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat | ErrorKind::Crypto(_) => {
            AuthError::BadSignature
        }
        _ => AuthError::Malformed {
            reason: format!("the token does not decode ({e})"),
        },
    }
}

/// `typ` comparison per RFC 7515 §4.1.9: case-insensitive, `application/`
/// optional.
fn same_media_type(got: &str, expected: &str) -> bool {
    let strip = |s: &str| {
        let lower = s.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    strip(got) == strip(expected)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        Verifier::new(
            VerifierConfig::new("https://sso.test", "console").with_leeway(Duration::from_secs(10)),
        )
        .unwrap()
    }

    fn claims(extra: Value) -> Claims {
        let mut map = serde_json::json!({
            "iss": "https://sso.test", "sub": "u1", "aud": "console", "exp": 2000
        })
        .as_object()
        .unwrap()
        .clone();
        map.extend(extra.as_object().unwrap().clone());
        Claims::from_map(map).unwrap()
    }

    #[test]
    fn leeway_bounds_are_exact() {
        let v = verifier();
        // exp 2000, leeway 10: valid strictly before 2010.
        assert!(v.check_claims(claims(serde_json::json!({})), 2009).is_ok());
        assert_eq!(
            v.check_claims(claims(serde_json::json!({})), 2010),
            Err(AuthError::Expired {
                expired_at: 2000,
                now: 2010
            })
        );
        // nbf 1010 accepted at 1000 thanks to the leeway, not at 999.
        assert!(v
            .check_claims(claims(serde_json::json!({"nbf": 1010})), 1000)
            .is_ok());
        assert_eq!(
            v.check_claims(claims(serde_json::json!({"nbf": 1010})), 999),
            Err(AuthError::NotYetValid {
                not_before: 1010,
                now: 999
            })
        );
        assert_eq!(
            v.check_claims(claims(serde_json::json!({"iat": 1500})), 1000),
            Err(AuthError::IssuedInFuture {
                issued_at: 1500,
                now: 1000
            })
        );
    }

    #[test]
    fn config_is_validated() {
        assert!(matches!(
            Verifier::new(VerifierConfig::new("sso.test", "console")),
            Err(AuthError::Config(_))
        ));
        assert!(matches!(
            Verifier::new(VerifierConfig::new("https://sso.test", "")),
            Err(AuthError::Config(_))
        ));
        let mut config = VerifierConfig::new("https://sso.test", "a");
        config.audiences.clear();
        assert!(matches!(Verifier::new(config), Err(AuthError::Config(_))));
    }

    #[test]
    fn header_shape_is_checked() {
        for token in ["", "a", "a.b", "a.b.c.d", ".b.c", "a..c", "!!!.b.c"] {
            assert!(
                matches!(parse_header(token), Err(AuthError::Malformed { .. })),
                "{token:?}"
            );
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let parsed = parse_header(&format!("{header}.e30.")).unwrap();
        assert_eq!(
            (parsed.alg.as_str(), parsed.kid.as_deref()),
            ("RS256", Some("k"))
        );
    }
}
