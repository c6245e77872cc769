//! The verifier against a fake sso on a real loopback listener.

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lain_auth::{AuthError, Verifier};
use serde_json::json;

#[tokio::test]
async fn valid_token_verifies_and_claims_are_typed() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();

    let claims = verifier
        .verify(&mint(&k1, &good_claims(&sso.issuer)))
        .await
        .unwrap();
    assert_eq!(claims.sub, "u-42");
    assert_eq!(claims.iss, sso.issuer);
    assert_eq!(claims.aud, vec![AUDIENCE.to_owned()]);
    assert_eq!(claims.username(), "alice");
    assert_eq!(claims.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(claims.groups, ["admin", "dev"]);
    assert!(claims.is_in_group("admin"));
    assert!(!claims.is_in_group("ops"));
    assert!(
        !claims.is_in_group("Admin"),
        "group names are case-sensitive"
    );
    assert_eq!(claims.scope, ["openid", "profile", "apps:deploy"]);
    assert!(claims.has_scope("apps:deploy"));
    assert_eq!(claims.client(), Some("lain-cli"));
    assert_eq!(claims.get("tenant"), Some(&json!("finance")));
    assert!(claims.iat.is_some() && claims.nbf.is_some());
    assert_eq!(claims.to_string(), "alice (u-42)");

    // One discovery and one JWKS fetch, then the cache answers.
    assert_eq!((sso.discovery_hits(), sso.jwks_hits()), (1, 1));
    for _ in 0..5 {
        verifier
            .verify(&mint(&k1, &good_claims(&sso.issuer)))
            .await
            .unwrap();
    }
    assert_eq!((sso.discovery_hits(), sso.jwks_hits()), (1, 1));
    assert_eq!(verifier.key_ids(), ["k1"]);
}

#[tokio::test]
async fn minimal_token_has_empty_optional_claims() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let minimal = json!({"iss": sso.issuer, "sub": "svc-deployd", "aud": [AUDIENCE], "exp": now() + 60, "azp": "deployd"});
    let claims = sso.verifier().verify(&mint(&k1, &minimal)).await.unwrap();
    assert!(claims.groups.is_empty() && claims.scope.is_empty());
    assert_eq!(claims.username(), "svc-deployd");
    assert_eq!(claims.client(), Some("deployd"));
    assert_eq!(
        (claims.iat, claims.nbf, claims.preferred_username),
        (None, None, None)
    );
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    for iss in [
        "https://evil.example",
        &format!("{}/", sso.issuer),
        &sso.issuer.to_uppercase(),
    ] {
        let token = mint(&k1, &with(good_claims(&sso.issuer), json!({"iss": iss})));
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::WrongIssuer {
                expected: sso.issuer.clone(),
                got: iss.to_owned()
            })
        );
    }
    let token = mint(&k1, &with(good_claims(&sso.issuer), json!({"iss": null})));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("iss"))
    );
}

#[tokio::test]
async fn audience_must_contain_an_accepted_one() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = Verifier::new(sso.config().with_audience("deployd")).unwrap();
    let base = good_claims(&sso.issuer);

    let token = mint(
        &k1,
        &with(base.clone(), json!({"aud": ["webrouter", "deployd"]})),
    );
    assert_eq!(
        verifier.verify(&token).await.unwrap().aud,
        ["webrouter", "deployd"]
    );

    let token = mint(&k1, &with(base.clone(), json!({"aud": "webrouter"})));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::WrongAudience {
            expected: vec!["console".into(), "deployd".into()],
            got: vec!["webrouter".into()],
        })
    );
    let token = mint(&k1, &with(base.clone(), json!({"aud": []})));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::WrongAudience { .. })
    ));
    let token = mint(&k1, &with(base.clone(), json!({"aud": null})));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("aud"))
    );
    let token = mint(&k1, &with(base, json!({"aud": 7})));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::InvalidClaim { claim: "aud", .. })
    ));
}

#[tokio::test]
async fn expired_token_is_rejected_beyond_the_leeway() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = Verifier::new(sso.config().with_leeway(Duration::from_secs(60))).unwrap();
    let base = good_claims(&sso.issuer);

    let exp = now() - 120;
    let token = mint(
        &k1,
        &with(
            base.clone(),
            json!({"exp": exp, "iat": exp - 300, "nbf": exp - 300}),
        ),
    );
    match verifier.verify(&token).await {
        Err(AuthError::Expired {
            expired_at,
            now: at,
        }) => {
            assert_eq!(expired_at, exp);
            assert!(at >= exp + 120);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    // 30 s late is within the 60 s leeway.
    let exp = now() - 30;
    let token = mint(
        &k1,
        &with(
            base.clone(),
            json!({"exp": exp, "iat": exp - 300, "nbf": exp - 300}),
        ),
    );
    assert!(verifier.verify(&token).await.is_ok());

    let token = mint(&k1, &with(base.clone(), json!({"exp": null})));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("exp"))
    );
    let token = mint(&k1, &with(base, json!({"exp": "tomorrow"})));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::InvalidClaim { claim: "exp", .. })
    ));
}

#[tokio::test]
async fn not_yet_valid_token_is_rejected() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = Verifier::new(sso.config().with_leeway(Duration::from_secs(60))).unwrap();
    let base = good_claims(&sso.issuer);

    let nbf = now() + 600;
    let token = mint(
        &k1,
        &with(base.clone(), json!({"nbf": nbf, "exp": nbf + 300})),
    );
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::NotYetValid { not_before, .. }) if not_before == nbf
    ));
    let iat = now() + 600;
    let token = mint(
        &k1,
        &with(
            base.clone(),
            json!({"iat": iat, "nbf": null, "exp": iat + 300}),
        ),
    );
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::IssuedInFuture { issued_at, .. }) if issued_at == iat
    ));
    // A clock 30 s ahead on sso is tolerated.
    let token = mint(
        &k1,
        &with(base, json!({"iat": now() + 30, "nbf": now() + 30})),
    );
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn forged_or_altered_signature_is_rejected() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let claims = good_claims(&sso.issuer);
    verifier.verify(&mint(&k1, &claims)).await.unwrap();

    // Signed by the forger's key under sso's kid.
    let forged = mint(&other("k1"), &claims);
    assert_eq!(verifier.verify(&forged).await, Err(AuthError::BadSignature));

    // sso's signature, payload swapped for one granting more.
    let genuine = mint(&k1, &claims);
    let parts: Vec<&str> = genuine.split('.').collect();
    let escalated = with(claims.clone(), json!({"groups": ["admin", "root"]}));
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        b64(escalated.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        verifier.verify(&altered).await,
        Err(AuthError::BadSignature)
    );

    // Signature stripped or truncated.
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        verifier.verify(&stripped).await,
        Err(AuthError::BadSignature)
    );
    let truncated = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..40]);
    assert_eq!(
        verifier.verify(&truncated).await,
        Err(AuthError::BadSignature)
    );

    // The kid is known: none of this made the verifier ask sso again.
    assert_eq!(sso.jwks_hits(), 1);
}

#[tokio::test]
async fn unknown_kid_refreshes_once_and_picks_up_a_rotated_key() {
    let k1 = key1("2026-01");
    let k2 = key2("2026-02");
    let sso = FakeSso::start(&[&k1]).await;
    let interval = Duration::from_millis(200);
    let verifier = Verifier::new(sso.config().with_min_refresh_interval(interval)).unwrap();
    let claims = good_claims(&sso.issuer);

    verifier.verify(&mint(&k1, &claims)).await.unwrap();
    assert_eq!(sso.jwks_hits(), 1);

    // sso rotates: publishes the new key, then signs with it.
    sso.publish(&[&k1, &k2]);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let rotated = mint(&k2, &claims);
    assert_eq!(verifier.verify(&rotated).await.unwrap().sub, "u-42");
    assert_eq!(sso.jwks_hits(), 2, "exactly one refresh for the new kid");
    assert_eq!(sso.discovery_hits(), 1, "the discovered jwks_uri is reused");
    assert_eq!(verifier.key_ids(), ["2026-01", "2026-02"]);

    for _ in 0..5 {
        verifier.verify(&rotated).await.unwrap();
        verifier.verify(&mint(&k1, &claims)).await.unwrap();
    }
    assert_eq!(sso.jwks_hits(), 2, "both keys are now cached");

    // sso retires the old key: after the next refresh it no longer verifies.
    sso.publish(&[&k2]);
    assert_eq!(verifier.refresh().await, Ok(1));
    assert_eq!(
        verifier.verify(&mint(&k1, &claims)).await,
        Err(AuthError::UnknownKeyId {
            kid: "2026-01".into()
        })
    );
    assert!(verifier.verify(&rotated).await.is_ok());
}

#[tokio::test]
async fn unknown_kid_flood_is_rate_limited() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let interval = Duration::from_millis(1500);
    let verifier = Verifier::new(sso.config().with_min_refresh_interval(interval)).unwrap();
    let claims = good_claims(&sso.issuer);
    verifier.verify(&mint(&k1, &claims)).await.unwrap();
    assert_eq!(sso.jwks_hits(), 1);

    // Within the interval of the first fetch: a forged kid triggers nothing.
    let forged = mint(&other("forged-0"), &claims);
    assert_eq!(
        verifier.verify(&forged).await,
        Err(AuthError::UnknownKeyId {
            kid: "forged-0".into()
        })
    );
    assert_eq!(sso.jwks_hits(), 1);

    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    sso.set_jwks_delay(Duration::from_millis(100));
    let tokens: Vec<String> = (1..=200)
        .map(|i| mint(&other(&format!("forged-{i}")), &claims))
        .collect();
    let results = futures::future::join_all(tokens.iter().map(|t| verifier.verify(t))).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(
            result,
            Err(AuthError::UnknownKeyId {
                kid: format!("forged-{}", i + 1)
            })
        );
    }
    for token in &tokens[..50] {
        assert!(matches!(
            verifier.verify(token).await,
            Err(AuthError::UnknownKeyId { .. })
        ));
    }
    assert_eq!(
        sso.jwks_hits(),
        2,
        "250 forged kids cost sso one JWKS request"
    );
    assert_eq!(sso.discovery_hits(), 1);
    // Genuine tokens are unaffected by the flood.
    verifier.verify(&mint(&k1, &claims)).await.unwrap();

    // The limit is a window: once it has passed, one more refresh is allowed.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    assert!(matches!(
        verifier.verify(&tokens[0]).await,
        Err(AuthError::UnknownKeyId { .. })
    ));
    assert!(matches!(
        verifier.verify(&tokens[1]).await,
        Err(AuthError::UnknownKeyId { .. })
    ));
    assert_eq!(sso.jwks_hits(), 3);
}

#[tokio::test]
async fn concurrent_cold_start_shares_one_fetch() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    sso.set_jwks_delay(Duration::from_millis(200));
    let verifier = sso.verifier();
    let tokens: Vec<String> = (0..32)
        .map(|i| {
            mint(
                &k1,
                &with(good_claims(&sso.issuer), json!({"sub": format!("u-{i}")})),
            )
        })
        .collect();
    let results = futures::future::join_all(tokens.iter().map(|t| {
        let verifier = verifier.clone();
        async move { verifier.verify(t).await }
    }))
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap().sub, format!("u-{i}"));
    }
    assert_eq!((sso.discovery_hits(), sso.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn alg_none_is_rejected_before_any_key_is_fetched() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let payload = b64(good_claims(&sso.issuer).to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": alg, "kid": "k1", "typ": "JWT"})
            .to_string()
            .as_bytes());
        for signature in ["", "c2lnbmF0dXJl"] {
            let token = format!("{header}.{payload}.{signature}");
            assert_eq!(
                verifier.verify(&token).await,
                Err(AuthError::UnsupportedAlgorithm { alg: alg.into() })
            );
        }
    }
    // No key was needed to refuse these.
    assert_eq!((sso.discovery_hits(), sso.jwks_hits()), (0, 0));
}

#[tokio::test]
async fn hs256_key_confusion_and_other_algorithms_are_rejected() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let claims = good_claims(&sso.issuer);
    verifier.verify(&mint(&k1, &claims)).await.unwrap(); // key cached

    // HMAC keyed with what the attacker knows of sso's public key.
    let secrets: [&[u8]; 3] = [
        k1.public_pem,
        k1.n.as_bytes(),
        k1.jwk().to_string().leak().as_bytes(),
    ];
    for secret in secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("k1".into());
            let token =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
            assert_eq!(
                verifier.verify(&token).await,
                Err(AuthError::UnsupportedAlgorithm {
                    alg: format!("{alg:?}")
                })
            );
        }
    }
    // Genuine RSA signatures with another RSA algorithm: still only RS256.
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let mut header = Header::new(alg);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(&header, &claims, &k1.encoding).unwrap();
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm {
                alg: format!("{alg:?}")
            })
        );
    }
    assert_eq!(sso.jwks_hits(), 1);
}

#[tokio::test]
async fn garbage_tokens_are_malformed() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let good = mint(&k1, &good_claims(&sso.issuer));
    let parts: Vec<&str> = good.split('.').collect();
    let header_no_alg = b64(br#"{"kid":"k1"}"#);
    let header_array = b64(b"[1,2,3]");
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2]);
    let garbage = [
        String::new(),
        "not-a-jwt".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "....".into(),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{header_no_alg}.{}.{}", parts[1], parts[2]),
        format!("{header_array}.{}.{}", parts[1], parts[2]),
        format!("{}.%%%.{}", parts[0], parts[2]),
        huge,
        good.replace('.', " "),
    ];
    for token in &garbage {
        let result = verifier.verify(token).await;
        assert!(
            matches!(result, Err(AuthError::Malformed { .. })),
            "{:.60}: {result:?}",
            token
        );
    }

    // Correctly signed, but the payload is not a claims object.
    let array =
        jsonwebtoken::encode(&at_header(Some("k1")), &json!([1, 2, 3]), &k1.encoding).unwrap();
    assert!(matches!(
        verifier.verify(&array).await,
        Err(AuthError::Malformed { .. })
    ));

    // An unknown `crit` extension must make the token invalid (RFC 7515 §4.1.11).
    let crit = b64(json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]})
        .to_string()
        .as_bytes());
    let token = format!("{crit}.{}.{}", parts[1], parts[2]);
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Malformed { .. })
    ));

    // Wrongly typed claims.
    let token = mint(
        &k1,
        &with(good_claims(&sso.issuer), json!({"groups": "admin,dev"})),
    );
    let groups = verifier.verify(&token).await;
    assert_eq!(
        groups.unwrap().groups,
        ["admin,dev"],
        "a single string is one group"
    );
    let token = mint(
        &k1,
        &with(good_claims(&sso.issuer), json!({"groups": [1, 2]})),
    );
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::InvalidClaim {
            claim: "groups",
            ..
        })
    ));
    let token = mint(&k1, &with(good_claims(&sso.issuer), json!({"sub": ""})));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::InvalidClaim { claim: "sub", .. })
    ));
    let token = mint(&k1, &with(good_claims(&sso.issuer), json!({"sub": null})));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::MissingClaim("sub"))
    );
}

#[tokio::test]
async fn sso_down_cached_keys_keep_verifying() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = Verifier::new(sso.config().with_min_refresh_interval(Duration::ZERO)).unwrap();
    let claims = good_claims(&sso.issuer);
    let token = mint(&k1, &claims);
    verifier.verify(&token).await.unwrap();

    // sso answers 503: refresh fails, cached key still verifies.
    sso.set_failing(true);
    assert!(matches!(
        verifier.refresh().await,
        Err(AuthError::JwksFetch { .. })
    ));
    verifier.verify(&token).await.unwrap();

    // sso is gone entirely.
    sso.stop().await;
    assert!(matches!(
        verifier.refresh().await,
        Err(AuthError::Discovery { .. })
    ));
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "u-42");
    assert_eq!(verifier.key_ids(), ["k1"]);
    // An unknown kid is still just an unknown kid, not an outage.
    assert_eq!(
        verifier.verify(&mint(&key2("k2"), &claims)).await,
        Err(AuthError::UnknownKeyId { kid: "k2".into() })
    );
    // Bad tokens are still refused.
    assert_eq!(
        verifier.verify(&mint(&other("k1"), &claims)).await,
        Err(AuthError::BadSignature)
    );

    // A verifier that never reached sso cannot verify anything, and says so.
    let cold = sso.verifier();
    match cold.verify(&token).await {
        Err(e @ AuthError::KeysUnavailable { .. }) => {
            assert!(e.is_unavailable());
            assert!(e.to_string().contains("openid-configuration"), "{e}");
        }
        other => panic!("expected KeysUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn sso_back_up_after_cold_start_failure() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    sso.set_failing(true);
    let verifier = Verifier::new(
        sso.config()
            .with_min_refresh_interval(Duration::from_secs(1)),
    )
    .unwrap();
    let token = mint(&k1, &good_claims(&sso.issuer));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable { .. })
    ));
    // Rate-limited: a second try right away does not reach sso.
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable { .. })
    ));
    assert_eq!(sso.discovery_hits(), 1);

    sso.set_failing(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!((sso.discovery_hits(), sso.jwks_hits()), (2, 1));
}

#[tokio::test]
async fn jwks_entries_that_are_not_rs256_signing_keys_are_skipped() {
    let k1 = key1("good");
    let k2 = key2("x");
    let sso = FakeSso::start(&[]).await;
    let jwk = |changes| with(k2.jwk(), changes);
    sso.publish_raw(json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AAAA", "y": "AAAA"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        jwk(json!({"kid": "enc", "use": "enc"})),
        jwk(json!({"kid": "rs512", "alg": "RS512"})),
        jwk(json!({"kid": null})),
        jwk(json!({"kid": "no-n", "n": null})),
        "not an object",
        k1.jwk(),
    ]}));
    let verifier = sso.verifier();
    assert_eq!(verifier.refresh().await, Ok(1));
    assert_eq!(verifier.key_ids(), ["good"]);

    // A set without any usable key is a failed fetch; cached keys stay.
    sso.publish_raw(json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}));
    assert!(matches!(
        verifier.refresh().await,
        Err(AuthError::JwksFetch { .. })
    ));
    sso.publish_raw(json!({"not": "a jwks"}));
    assert!(matches!(
        verifier.refresh().await,
        Err(AuthError::JwksFetch { .. })
    ));
    assert_eq!(verifier.key_ids(), ["good"]);
    verifier
        .verify(&mint(&k1, &good_claims(&sso.issuer)))
        .await
        .unwrap();
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    *sso.state.advertised_issuer.lock().unwrap() = "https://someone-else.example".into();
    let verifier = sso.verifier();
    match verifier.refresh().await {
        Err(AuthError::Discovery { reason, .. }) => {
            assert!(reason.contains("someone-else"), "{reason}")
        }
        other => panic!("expected Discovery, got {other:?}"),
    }
    assert_eq!(sso.jwks_hits(), 0);

    // With an explicit jwks_uri there is no discovery at all.
    let direct = Verifier::new(sso.config().with_jwks_uri(format!("{}/jwks", sso.issuer))).unwrap();
    direct
        .verify(&mint(&k1, &good_claims(&sso.issuer)))
        .await
        .unwrap();
    assert_eq!((sso.discovery_hits(), sso.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn token_without_kid_needs_a_single_published_key() {
    let k1 = key1("k1");
    let k2 = key2("k2");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let claims = good_claims(&sso.issuer);
    let no_kid = jsonwebtoken::encode(&at_header(None), &claims, &k1.encoding).unwrap();
    verifier.verify(&no_kid).await.unwrap();

    sso.publish(&[&k1, &k2]);
    verifier.refresh().await.unwrap();
    assert_eq!(verifier.verify(&no_kid).await, Err(AuthError::MissingKeyId));
}

#[tokio::test]
async fn periodic_refresh_learns_new_keys_in_the_background() {
    let k1 = key1("k1");
    let k2 = key2("k2");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let task = verifier.spawn_periodic_refresh(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(verifier.key_ids(), ["k1"], "the first tick loads the keys");
    sso.publish(&[&k1, &k2]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(verifier.key_ids(), ["k1", "k2"]);
    let hits = sso.jwks_hits();
    assert!((2..=3).contains(&hits), "{hits}");

    // The task ends with the last clone of the verifier.
    drop(verifier);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn only_access_tokens_pass_unless_configured_otherwise() {
    let k1 = key1("k1");
    let sso = FakeSso::start(&[&k1]).await;
    let verifier = sso.verifier();
    let claims = good_claims(&sso.issuer);
    let signed = |typ: Option<&str>| {
        let mut header = at_header(Some("k1"));
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &k1.encoding).unwrap()
    };
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        assert!(verifier.verify(&signed(Some(typ))).await.is_ok(), "{typ}");
    }
    // An ID token (sso marks them `JWT`) is not an access token.
    assert_eq!(
        verifier.verify(&signed(Some("JWT"))).await,
        Err(AuthError::WrongTokenType {
            expected: "at+jwt".into(),
            got: Some("JWT".into())
        })
    );
    assert_eq!(
        verifier.verify(&signed(None)).await,
        Err(AuthError::WrongTokenType {
            expected: "at+jwt".into(),
            got: None
        })
    );
    let lenient = Verifier::new(sso.config().with_any_token_type()).unwrap();
    assert!(lenient.verify(&signed(Some("JWT"))).await.is_ok());
    assert!(lenient.verify(&signed(None)).await.is_ok());
}
