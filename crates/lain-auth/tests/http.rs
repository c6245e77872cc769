//! `Authorization` parsing, the axum extractor and middleware, over real
//! loopback HTTP.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::routing::get;
use axum::{middleware, Extension, Json, Router};
use common::*;
use lain_auth::{bearer_from_headers, parse_bearer, AuthError, Claims, Verifier};
use serde_json::{json, Value};

#[test]
fn bearer_header_parsing() {
    assert_eq!(
        parse_bearer("Bearer abc.DEF-_.g~+/=="),
        Ok("abc.DEF-_.g~+/==")
    );
    assert_eq!(parse_bearer("bearer abc"), Ok("abc"));
    assert_eq!(parse_bearer("BEARER abc"), Ok("abc"));
    assert_eq!(parse_bearer("  Bearer    abc  "), Ok("abc"));
    assert_eq!(parse_bearer("Bearer\tabc"), Ok("abc"));

    let invalid = |value: &str| match parse_bearer(value) {
        Err(AuthError::InvalidAuthorizationHeader { .. }) => {}
        other => panic!("{value:?}: expected InvalidAuthorizationHeader, got {other:?}"),
    };
    invalid("");
    invalid("   ");
    invalid("Bearer");
    invalid("Bearer ");
    invalid("Bearer    ");
    invalid("Bearer a b");
    invalid("Bearer a,b");
    invalid("Bearer \"abc\"");
    invalid("Bearer ===");
    invalid("Bearer a=b");
    invalid("Bearer ab\u{e9}");
    invalid(&format!(
        "Bearer {}",
        "a".repeat(lain_auth::MAX_TOKEN_LEN + 1)
    ));

    assert_eq!(
        parse_bearer("Basic dXNlcjpwYXNz"),
        Err(AuthError::NotBearer {
            scheme: "Basic".into()
        })
    );
    assert_eq!(
        parse_bearer("Bearerabc"),
        Err(AuthError::NotBearer {
            scheme: "Bearerabc".into()
        })
    );
    assert_eq!(
        parse_bearer("Token abc"),
        Err(AuthError::NotBearer {
            scheme: "Token".into()
        })
    );

    let mut headers = HeaderMap::new();
    assert_eq!(
        bearer_from_headers(&headers),
        Err(AuthError::MissingCredentials)
    );
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer abc"),
    );
    assert_eq!(bearer_from_headers(&headers), Ok("abc"));
    headers.append(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer def"),
    );
    assert!(matches!(
        bearer_from_headers(&headers),
        Err(AuthError::InvalidAuthorizationHeader { .. })
    ));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    );
    assert!(matches!(
        bearer_from_headers(&headers),
        Err(AuthError::InvalidAuthorizationHeader { .. })
    ));
}

#[test]
fn errors_map_to_rfc6750_responses() {
    let expired = AuthError::Expired {
        expired_at: 10,
        now: 20,
    };
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(expired.bearer_error(), Some("invalid_token"));
    let challenge = expired.www_authenticate().unwrap();
    let challenge = challenge.to_str().unwrap();
    assert!(
        challenge
            .starts_with("Bearer error=\"invalid_token\", error_description=\"token expired at 10"),
        "{challenge}"
    );

    assert_eq!(
        AuthError::MissingCredentials.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        AuthError::MissingCredentials.www_authenticate().unwrap(),
        "Bearer"
    );
    let bad = AuthError::InvalidAuthorizationHeader { reason: "x" };
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.bearer_error(), Some("invalid_request"));
    let down = AuthError::KeysUnavailable { reason: "x".into() };
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.www_authenticate(), None);

    // Quotes and non-ASCII from the token never break the header.
    let weird = AuthError::UnknownKeyId {
        kid: "a\"b\\c\u{e9}".into(),
    };
    let challenge = weird.www_authenticate().unwrap();
    let challenge = challenge.to_str().unwrap();
    assert_eq!(challenge.matches('"').count(), 4, "{challenge}");
    assert!(
        !challenge.contains('\\') && challenge.is_ascii(),
        "{challenge}"
    );
}

async fn me(claims: Claims) -> Json<Value> {
    Json(json!({"sub": claims.sub, "admin": claims.is_in_group("admin")}))
}

async fn maybe(claims: Option<Claims>) -> String {
    match claims {
        Some(c) => format!("hello {}", c.username()),
        None => "hello anonymous".into(),
    }
}

async fn guarded(Extension(claims): Extension<Claims>) -> String {
    format!("deployed by {}", claims.username())
}

/// A service using lain-auth, on a loopback listener.
async fn start_service(verifier: Verifier) -> String {
    let guarded_routes = Router::new()
        .route("/deploy", get(guarded))
        .route("/deploy/me", get(me))
        .layer(middleware::from_fn_with_state(
            verifier.clone(),
            lain_auth::require_bearer,
        ));
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .merge(guarded_routes)
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn get_with(url: &str, authorization: &[&str]) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    for value in authorization {
        request = request.header(header::AUTHORIZATION, *value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        challenge: response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.text().await.unwrap(),
    }
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

// current_thread (the default): the subscriber set below sees the
// service's logs too, as it runs on this thread.
#[tokio::test]
async fn extractor_and_middleware_answer_401_with_a_bearer_challenge() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let base = start_service(sso.verifier()).await;
    let good = mint(&k1, &good_claims(&sso.issuer));
    let expired = mint(
        &k1,
        &with(
            good_claims(&sso.issuer),
            json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": null}),
        ),
    );
    let forged = mint(&other("k1"), &good_claims(&sso.issuer));

    for path in ["/me", "/deploy/me"] {
        let url = format!("{base}{path}");
        let ok = get_with(&url, &[&format!("Bearer {good}")]).await;
        assert_eq!(ok.status, StatusCode::OK, "{path}: {}", ok.body);
        assert_eq!(
            serde_json::from_str::<Value>(&ok.body).unwrap(),
            json!({"sub": "u-42", "admin": true})
        );
        let ok = get_with(&url, &[&format!("bearer {good}")]).await;
        assert_eq!(ok.status, StatusCode::OK);

        let none = get_with(&url, &[]).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        assert_eq!(none.challenge.as_deref(), Some("Bearer"));
        assert_eq!(
            serde_json::from_str::<Value>(&none.body).unwrap()["error"],
            "unauthorized"
        );

        let basic = get_with(&url, &["Basic dXNlcjpwYXNz"]).await;
        assert_eq!(
            (basic.status, basic.challenge.as_deref()),
            (StatusCode::UNAUTHORIZED, Some("Bearer"))
        );

        for header in ["Bearer", "Bearer a b"] {
            let bad = get_with(&url, &[header]).await;
            assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{header:?}");
            assert!(bad
                .challenge
                .unwrap()
                .starts_with("Bearer error=\"invalid_request\", error_description=\""));
        }
        let twice = get_with(
            &url,
            &[&format!("Bearer {good}"), &format!("Bearer {good}")],
        )
        .await;
        assert_eq!(twice.status, StatusCode::BAD_REQUEST);

        for (token, description) in [
            ("garbage", "malformed token"),
            (expired.as_str(), "token expired at"),
            (forged.as_str(), "token signature does not verify"),
        ] {
            let rejected = get_with(&url, &[&format!("Bearer {token}")]).await;
            assert_eq!(
                rejected.status,
                StatusCode::UNAUTHORIZED,
                "{path} {description}"
            );
            let challenge = rejected.challenge.unwrap();
            assert!(
                challenge.starts_with(&format!(
                    "Bearer error=\"invalid_token\", error_description=\"{description}"
                )),
                "{challenge}"
            );
            let body: Value = serde_json::from_str(&rejected.body).unwrap();
            assert_eq!(body["error"], "invalid_token");
            assert!(!rejected.body.contains(token) && !challenge.contains(token));
        }
    }

    let guarded = get_with(&format!("{base}/deploy"), &[&format!("Bearer {good}")]).await;
    assert_eq!(
        (guarded.status, guarded.body.as_str()),
        (StatusCode::OK, "deployed by alice")
    );
    let guarded = get_with(&format!("{base}/deploy"), &[]).await;
    assert_eq!(guarded.status, StatusCode::UNAUTHORIZED);

    // Option<Claims>: absent means anonymous, bad still means 401.
    let maybe_url = format!("{base}/maybe");
    assert_eq!(get_with(&maybe_url, &[]).await.body, "hello anonymous");
    assert_eq!(
        get_with(&maybe_url, &[&format!("Bearer {good}")])
            .await
            .body,
        "hello alice"
    );
    assert_eq!(
        get_with(&maybe_url, &[&format!("Bearer {expired}")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Rejections were logged, tokens were not.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("bearer token rejected"), "{logs}");
    for token in [&good, &expired, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token signature was logged");
        let payload = token.split('.').nth(1).unwrap();
        assert!(!logs.contains(payload), "a token payload was logged");
    }
}

#[tokio::test]
async fn service_answers_503_when_sso_was_never_reachable() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let token = mint(&k1, &good_claims(&sso.issuer));
    sso.stop().await;
    let base = start_service(sso.verifier()).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "5");
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}
