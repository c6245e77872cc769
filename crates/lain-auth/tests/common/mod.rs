//! A fake sso on a loopback listener (discovery + JWKS, with request
//! counters) and token minting with the fixture keys.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lain_auth::{Verifier, VerifierConfig};
use serde_json::{json, Value};

pub const AUDIENCE: &str = "console";

pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub public_pem: &'static [u8],
    pub n: String,
    pub e: String,
}

macro_rules! fixture {
    ($file:expr) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $file
        ))
    };
}

fn load(kid: &str, private: &[u8], public_pem: &'static [u8], jwk: &[u8]) -> TestKey {
    let jwk: Value = serde_json::from_slice(jwk).unwrap();
    TestKey {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_rsa_pem(private).unwrap(),
        public_pem,
        n: jwk["n"].as_str().unwrap().to_owned(),
        e: jwk["e"].as_str().unwrap().to_owned(),
    }
}

/// Fixture key 1, published under `kid`.
pub fn key1(kid: &str) -> TestKey {
    load(
        kid,
        fixture!("key1.pem"),
        fixture!("key1.pub.pem"),
        fixture!("key1.jwk.json"),
    )
}

/// Fixture key 2 (the rotated-in key).
pub fn key2(kid: &str) -> TestKey {
    load(
        kid,
        fixture!("key2.pem"),
        fixture!("key2.pub.pem"),
        fixture!("key2.jwk.json"),
    )
}

/// A key sso never publishes (the forger's).
pub fn other(kid: &str) -> TestKey {
    load(
        kid,
        fixture!("other.pem"),
        fixture!("other.pub.pem"),
        fixture!("other.jwk.json"),
    )
}

impl TestKey {
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e})
    }
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a good token for `issuer`.
pub fn good_claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": "u-42",
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "preferred_username": "alice",
        "name": "Alice Liddell",
        "groups": ["admin", "dev"],
        "client_id": "lain-cli",
        "scope": "openid profile apps:deploy",
        "tenant": "finance"
    })
}

/// `claims` with `changes` merged over them (a null removes a claim).
pub fn with(mut claims: Value, changes: Value) -> Value {
    let map = claims.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    claims
}

/// An RS256 token signed by `key` with its kid.
pub fn mint(key: &TestKey, claims: &Value) -> String {
    jsonwebtoken::encode(&at_header(Some(&key.kid)), claims, &key.encoding).unwrap()
}

/// The header sso puts on access tokens: RS256, `typ: at+jwt`, the kid.
pub fn at_header(kid: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = kid.map(str::to_owned);
    header
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub struct SsoState {
    pub issuer: String,
    /// What discovery says the issuer is (normally `issuer`).
    pub advertised_issuer: Mutex<String>,
    pub jwks: Mutex<Value>,
    pub discovery_hits: AtomicUsize,
    pub jwks_hits: AtomicUsize,
    /// Delay before answering JWKS requests, to make refreshes overlap.
    pub jwks_delay: Mutex<Duration>,
    /// When set, every endpoint answers 503.
    pub failing: AtomicBool,
}

/// A fake sso serving discovery and JWKS on 127.0.0.1.
pub struct FakeSso {
    pub issuer: String,
    pub state: Arc<SsoState>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeSso {
    pub async fn start(keys: &[&TestKey]) -> FakeSso {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(SsoState {
            issuer: issuer.clone(),
            advertised_issuer: Mutex::new(issuer.clone()),
            jwks: Mutex::new(jwks(keys)),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
            jwks_delay: Mutex::new(Duration::ZERO),
            failing: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_handler))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeSso {
            issuer,
            state,
            server,
        }
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap() = jwks(keys);
    }

    pub fn publish_raw(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    pub fn set_jwks_delay(&self, delay: Duration) {
        *self.state.jwks_delay.lock().unwrap() = delay;
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Stops listening: later connections are refused.
    pub async fn stop(&self) {
        self.server.abort();
        let addr = self.issuer.trim_start_matches("http://").to_owned();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fake sso still accepts connections after stop");
    }

    pub fn config(&self) -> VerifierConfig {
        VerifierConfig::new(self.issuer.clone(), AUDIENCE).with_http_timeout(Duration::from_secs(5))
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.config()).unwrap()
    }
}

impl Drop for FakeSso {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn discovery(State(state): State<Arc<SsoState>>) -> Response {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = state.advertised_issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/jwks", state.issuer),
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks_handler(State(state): State<Arc<SsoState>>) -> Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = *state.jwks_delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = state.jwks.lock().unwrap().clone();
    Json(body).into_response()
}
