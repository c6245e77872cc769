//! The OIDC flows, driven by the `openidconnect` crate as an independent
//! client against a real sso on loopback (SQLite).

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::*;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreDeviceAuthorizationResponse, CoreIdToken,
    CoreProviderMetadata, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse,
};

async fn discover(s: &TestSso) -> CoreProviderMetadata {
    CoreProviderMetadata::discover_async(IssuerUrl::new(s.issuer.clone()).unwrap(), &http())
        .await
        .expect("discovery")
}

/// A client built from discovery, redirecting to [`REDIRECT`].
type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Client `client_id` (confidential with `secret`) from discovery.
fn oidc_client(md: CoreProviderMetadata, client_id: &str, secret: Option<&str>) -> OidcClient {
    CoreClient::from_provider_metadata(
        md,
        ClientId::new(client_id.into()),
        secret.map(|x| ClientSecret::new(x.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

/// Exchanges `code` (with its PKCE verifier) through `client`.
async fn exchange(client: &OidcClient, code: String, ver: PkceCodeVerifier) -> CoreTokenResponse {
    client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(ver)
        .request_async(&http())
        .await
        .expect("token")
}

/// A refresh through `client`; the error as its debug text.
async fn oidc_refresh(client: &OidcClient, rt: &RefreshToken) -> Result<CoreTokenResponse, String> {
    client
        .exchange_refresh_token(rt)
        .unwrap()
        .request_async(&http())
        .await
        .map_err(|e| format!("{e:?}"))
}

/// Runs the browser part of a code flow for `client_id`; returns the
/// code, the PKCE verifier and the nonce.
async fn code_for(
    s: &TestSso,
    md: CoreProviderMetadata,
    client_id: &str,
    user: &str,
) -> (String, PkceCodeVerifier, Nonce) {
    let client = oidc_client(md, client_id, None);
    let (ch, ver) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(ch)
        .url();
    let (status, loc, body) = login(&browser(), s, url.as_str(), user, PASSWORD, None).await;
    assert_eq!(status, 303, "{body}");
    let loc = loc.unwrap();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(
        param(&loc, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(param(&loc, "iss").as_deref(), Some(s.issuer.as_str()));
    (param(&loc, "code").unwrap(), ver, nonce)
}

#[tokio::test]
async fn discovery_jwks_healthz_metrics() {
    let s = shared();
    let md = discover(s).await;
    assert_eq!(md.issuer().as_str(), s.issuer);
    let jwks = md.jwks();
    assert!(!jwks.keys().is_empty());
    let raw = get_json(&s.url("/.well-known/openid-configuration")).await;
    assert_eq!(
        raw["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        raw["device_authorization_endpoint"],
        s.url("/device_authorization")
    );
    let h = get_json(&s.url("/healthz")).await;
    assert_eq!(h["service"], "sso");
    let m = get_text(&http(), &s.url("/metrics")).await;
    assert!(m.contains("# TYPE sso_tokens_issued_total counter"), "{m}");
    assert!(m.contains("sso_logins_total{result=\"failure\"}"), "{m}");
    assert!(m.contains("sso_published_signing_keys"), "{m}");
}

#[tokio::test]
async fn code_flow_with_pkce_id_token_and_userinfo() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, nonce) = code_for(s, md.clone(), "cli", "alice").await;
    let client = oidc_client(md, "cli", None);
    let tr = exchange(&client, code, ver).await;
    let id = tr.id_token().expect("id token");
    let verifier = client.id_token_verifier();
    let claims = id.claims(&verifier, &nonce).expect("id token verifies");
    assert_eq!(claims.subject().as_str(), "alice");
    assert_eq!(claims.preferred_username().unwrap().as_str(), "alice");
    assert_eq!(claims.email().unwrap().as_str(), "alice@example.com");
    let expected = AccessTokenHash::from_token(
        tr.access_token(),
        id.signing_alg().unwrap(),
        id.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected));
    let raw = jwt_claims(&id.to_string());
    assert_eq!(
        raw["groups"],
        serde_json::json!(["dev", "dev-web"]),
        "subgroup membership implies the parent"
    );
    assert_eq!(raw["aud"], "cli");
    let at = jwt_claims(tr.access_token().secret());
    assert_eq!(
        at["aud"], "console",
        "access token audience is the client's"
    );
    assert_eq!(at["groups"], serde_json::json!(["dev", "dev-web"]));
    assert!(tr.refresh_token().is_some());

    let ui: CoreUserInfoClaims = client
        .user_info(tr.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http())
        .await
        .expect("userinfo");
    assert_eq!(ui.preferred_username().unwrap().as_str(), "alice");

    // The shared verifier crate accepts the same token for its audience.
    let v = lain_auth::Verifier::new(lain_auth::VerifierConfig::new(s.issuer.clone(), "console"))
        .unwrap();
    let c = v
        .verify(tr.access_token().secret())
        .await
        .expect("lain-auth verifies");
    assert_eq!(c.sub, "alice");
    assert!(c.is_in_group("dev"));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_grant() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, _) = code_for(s, md.clone(), "web", "carol").await;
    let client = oidc_client(md, "web", Some(&s.web_secret));
    let tr = exchange(&client, code, ver).await;
    let rt1 = tr.refresh_token().unwrap().clone();
    let tr2 = oidc_refresh(&client, &rt1).await.expect("refresh");
    let rt2 = tr2.refresh_token().unwrap().clone();
    assert_ne!(rt1.secret(), rt2.secret(), "refresh tokens rotate");
    assert!(tr2.id_token().is_some());
    // Another client cannot use it (and does not burn it).
    let (st, body) = refresh_confidential(s, "other", &s.other_secret, rt2.secret()).await;
    assert_oauth_error(st, &body, "invalid_grant");
    // Reusing the first one is detected and revokes the whole grant.
    let e = oidc_refresh(&client, &rt1).await.unwrap_err();
    assert!(e.contains("invalid_grant"), "{e}");
    let e = oidc_refresh(&client, &rt2).await.unwrap_err();
    assert!(
        e.contains("invalid_grant"),
        "rotated token revoked too: {e}"
    );
    let r = userinfo(s, tr2.access_token().secret()).await;
    assert_eq!(
        r.status(),
        401,
        "access tokens of a revoked grant stop working at userinfo"
    );
}

#[tokio::test]
async fn client_credentials() {
    let s = shared();
    let md = discover(s).await;
    let client = CoreClient::from_provider_metadata(
        md.clone(),
        ClientId::new("deployd".into()),
        Some(ClientSecret::new(s.daemon_secret.clone())),
    );
    let tr = client
        .exchange_client_credentials()
        .unwrap()
        .request_async(&http())
        .await
        .expect("client credentials");
    let at = jwt_claims(tr.access_token().secret());
    assert_eq!(at["sub"], "client:deployd");
    assert_eq!(at["client_id"], "deployd");
    assert_eq!(at["aud"], "console");
    assert!(tr.refresh_token().is_none() && tr.id_token().is_none());
    let v = lain_auth::Verifier::new(lain_auth::VerifierConfig::new(s.issuer.clone(), "console"))
        .unwrap();
    assert_eq!(
        v.verify(tr.access_token().secret()).await.unwrap().sub,
        "client:deployd"
    );
    // Wrong secret, and a client not allowed this grant.
    let bad = CoreClient::from_provider_metadata(
        md,
        ClientId::new("deployd".into()),
        Some(ClientSecret::new("nope".into())),
    );
    let e = bad
        .exchange_client_credentials()
        .unwrap()
        .request_async(&http())
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("invalid_client"), "{e:?}");
    let (st, body) = client_credentials_grant(s, "web", &s.web_secret).await;
    assert_oauth_error(st, &body, "unauthorized_client");
}

#[tokio::test]
async fn device_flow() {
    let s = shared();
    let md = discover(s).await;
    let client = CoreClient::from_provider_metadata(md, ClientId::new("cli".into()), None)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(s.url("/device_authorization")).unwrap(),
        );
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("profile".into()))
        .request_async(&http())
        .await
        .expect("device authorization");
    // Before approval the device is told to keep polling.
    let (st, body) = device_poll(s, details.device_code().secret()).await;
    assert_oauth_error(st, &body, "authorization_pending");

    let b = browser();
    let page = get_text(&b, details.verification_uri_complete().unwrap().secret()).await;
    assert!(
        page.contains("cli app"),
        "the page names the client: {page}"
    );
    // The code as typed (any case), and the explicit confirmation.
    let typed = details.user_code().secret().to_lowercase();
    let form = device_form(&page, Some(&typed), true, "dave", "approve");
    let (st, _, body) = post_form(&b, &s.url("/device"), &form, None).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("Device approved"), "{body}");

    let tr = client
        .exchange_device_access_token(&details)
        .unwrap()
        .request_async(&http(), tokio::time::sleep, Some(Duration::from_secs(30)))
        .await
        .expect("device token");
    assert_eq!(jwt_claims(tr.access_token().secret())["sub"], "dave");
    assert_eq!(
        jwt_claims(&tr.id_token().unwrap().to_string())["aud"],
        "cli"
    );
    // The device code is single use.
    let (st, body) = device_poll(s, details.device_code().secret()).await;
    assert_oauth_error(st, &body, "invalid_grant");
}

#[tokio::test]
async fn device_denied_and_slow_down() {
    let s = shared();
    let r = json_of(
        http()
            .post(s.url("/device_authorization"))
            // A public client may also send its id as Basic with an empty password.
            .basic_auth("cli", Some(""))
            .form(&[("scope", "openid")]),
    )
    .await;
    let dc = r["device_code"].as_str().unwrap();
    let poll = device_poll_form(dc);
    assert_eq!(
        token_request(s, &poll).await.1["error"],
        "authorization_pending"
    );
    assert_eq!(
        token_request(s, &poll).await.1["error"],
        "slow_down",
        "second poll within the interval"
    );
    let b = browser();
    let page = b
        .get(s.url("/device"))
        .query(&[("user_code", r["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Denying needs no code confirmation.
    let form = device_form(&page, None, false, "dave", "deny");
    let (st, _, body) = post_form(&b, &s.url("/device"), &form, None).await;
    assert_eq!(st, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(token_request(s, &poll).await.1["error"], "access_denied");
}

#[tokio::test]
async fn wrong_redirect_uri_is_refused_without_redirect() {
    let s = shared();
    let (ch, _) = PkceCodeChallenge::new_random_sha256();
    for uri in [
        "http://127.0.0.1:9/callback/",
        "http://evil.example/callback",
        "http://127.0.0.1:9/callback?x=1",
    ] {
        let r = browser()
            .get(s.url("/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", "cli"),
                ("redirect_uri", uri),
                ("code_challenge", ch.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{uri}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("redirect_uri"));
    }
    // A token request with another redirect_uri than /authorize had.
    let md = discover(s).await;
    let (code, ver, _) = code_for(s, md, "cli", "alice").await;
    let form = code_grant("cli", &code, Some("http://127.0.0.1:9/other"), ver.secret());
    let (st, body) = token_request(s, &form).await;
    assert_oauth_error(st, &body, "invalid_grant");
}

#[tokio::test]
async fn public_client_needs_pkce_s256() {
    let s = shared();
    for q in [
        vec![],
        vec![
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGEFcr6HSg",
            ),
            ("code_challenge_method", "plain"),
        ],
    ] {
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", "cli"),
            ("redirect_uri", REDIRECT),
            ("state", "s1"),
        ];
        query.extend(q);
        let r = browser()
            .get(s.url("/authorize"))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(
            param(&loc, "error").as_deref(),
            Some("invalid_request"),
            "{loc}"
        );
        assert_eq!(param(&loc, "state").as_deref(), Some("s1"));
    }
    // prompt=none without a session: login_required, back to the client.
    let (ch, _) = PkceCodeChallenge::new_random_sha256();
    let r = browser()
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "cli"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", ch.as_str()),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        param(r.headers()["location"].to_str().unwrap(), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn reused_code_is_refused_and_revokes_its_tokens() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, _) = code_for(s, md, "cli", "erin").await;
    let (st, first) = redeem_code(s, "cli", &code, ver.secret()).await;
    assert_eq!(st, 200, "{first}");
    let (st, body) = redeem_code(s, "cli", &code, ver.secret()).await;
    assert_oauth_error(st, &body, "invalid_grant");
    let (st, body) = refresh(s, "cli", first["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error_because(
        st,
        &body,
        "invalid_grant",
        "the refresh token the code gave is revoked",
    );
    let r = userinfo(s, first["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn wrong_pkce_verifier_is_refused() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, _) = code_for(s, md, "cli", "alice").await;
    let wrong = PkceCodeVerifier::new("x".repeat(64));
    let (st, body) = redeem_code(s, "cli", &code, wrong.secret()).await;
    assert_oauth_error(st, &body, "invalid_grant");
    // The failed attempt changed nothing: the right verifier still works.
    let (st, body) = redeem_code(s, "cli", &code, ver.secret()).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn expired_code_is_refused() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, _) = code_for(s, md, "cli", "alice").await;
    tokio::time::sleep(Duration::from_secs(7)).await; // codes live 5 s here
    let (st, body) = redeem_code(s, "cli", &code, ver.secret()).await;
    assert_oauth_error(st, &body, "invalid_grant");
}

#[tokio::test]
async fn forged_signature_and_wrong_audience_are_refused() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, nonce) = code_for(s, md.clone(), "web", "alice").await;
    let web = oidc_client(md.clone(), "web", Some(&s.web_secret));
    let tr = exchange(&web, code, ver).await;
    let id = tr.id_token().unwrap().to_string();
    assert!(CoreIdToken::from_str(&id)
        .unwrap()
        .claims(&web.id_token_verifier(), &nonce)
        .is_ok());

    // Forged: claims changed, signature kept.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = id.split('.').collect();
    let mut claims = jwt_claims(&id);
    claims["sub"] = "bob".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let e = CoreIdToken::from_str(&forged)
        .unwrap()
        .claims(&web.id_token_verifier(), &nonce)
        .unwrap_err();
    assert!(
        format!("{e:?}").to_lowercase().contains("signature"),
        "{e:?}"
    );
    let at = tr.access_token().secret();
    let ap: Vec<&str> = at.split('.').collect();
    let mut ac = jwt_claims(at);
    ac["sub"] = "bob".into();
    let forged_at = format!("{}.{}.{}", ap[0], b64.encode(ac.to_string()), ap[2]);
    let none_at = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        ap[1]
    );
    for t in [forged_at.as_str(), none_at.as_str(), "garbage"] {
        let r = userinfo(s, t).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
    }

    // Wrong audience: web's ID token is not valid for `other`.
    let other = CoreClient::from_provider_metadata(
        md,
        ClientId::new("other".into()),
        Some(ClientSecret::new(s.other_secret.clone())),
    );
    let e = CoreIdToken::from_str(&id)
        .unwrap()
        .claims(&other.id_token_verifier(), &nonce)
        .unwrap_err();
    assert!(format!("{e:?}").to_lowercase().contains("aud"), "{e:?}");
    // ... and web's access token (aud web) is refused by a console verifier.
    let v = lain_auth::Verifier::new(lain_auth::VerifierConfig::new(s.issuer.clone(), "console"))
        .unwrap();
    assert!(v.verify(at).await.is_err());
}

#[tokio::test]
async fn lockout_after_repeated_failed_logins() {
    let s = shared();
    let (url, _) = authorize_url(s, "cli", "", "");
    let b = browser();
    // Per user: 5 failures lock frank, even with the right password after.
    for i in 0..5 {
        let (st, _, _) = login(
            &b,
            s,
            &url,
            "frank",
            "wrong-password",
            Some(&format!("10.1.0.{i}")),
        )
        .await;
        assert_eq!(st, 401);
    }
    let (st, loc, body) = login(&b, s, &url, "frank", PASSWORD, Some("10.1.0.99")).await;
    assert_eq!(st, 429, "{body}");
    assert!(loc.is_none());
    assert!(body.contains("Try again in"), "{body}");
    // Per address: 8 failures from one address lock it for everyone.
    for i in 0..8 {
        let (st, _, _) = login(
            &b,
            s,
            &url,
            &format!("nobody{i}"),
            "wrong-password",
            Some("10.2.0.1"),
        )
        .await;
        assert_eq!(st, 401);
    }
    let (st, _, _) = login(&b, s, &url, "alice", PASSWORD, Some("10.2.0.1")).await;
    assert_eq!(st, 429);
    let (st, _, _) = login(&b, s, &url, "alice", PASSWORD, Some("10.2.0.2")).await;
    assert_eq!(st, 303, "another address still works");
    let m = get_text(&http(), &s.url("/metrics")).await;
    assert!(m.contains("sso_lockouts_total"), "{m}");
}

#[tokio::test]
async fn csrf_is_required_on_the_login_form() {
    let s = shared();
    let (ch, _) = PkceCodeChallenge::new_random_sha256();
    let fake = "x".repeat(43);
    let form = [
        ("response_type", "code"),
        ("client_id", "cli"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
        ("username", "alice"),
        ("password", PASSWORD),
        ("csrf", fake.as_str()),
    ];
    let r = browser()
        .post(s.url("/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser()
        .post(s.url("/device"))
        .form(&[("user_code", "BCDF-GHJK")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn session_sso_and_end_session() {
    let s = shared();
    let (url, _) = authorize_url(s, "cli", "", "&state=abc");
    let b = browser();
    let (st, _, _) = login(&b, s, &url, "bob", PASSWORD, None).await;
    assert_eq!(st, 303);
    // Signed in: /authorize answers with a code at once.
    let r = b.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(param(r.headers()["location"].to_str().unwrap(), "code").is_some());
    // End session (after confirming), back to a registered URI with state.
    let q = [
        ("client_id", "cli"),
        ("post_logout_redirect_uri", LOGOUT_REDIRECT),
        ("state", "st8"),
    ];
    let page = logout_get(&b, s, &q).await.text().await.unwrap();
    let (st, loc, _) = post_form(&b, &s.url("/logout"), &hidden_fields(&page), None).await;
    assert_eq!(st, 303);
    assert_eq!(loc.unwrap(), format!("{LOGOUT_REDIRECT}?state=st8"));
    let r = b.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "login page again");
    // An unregistered logout URI is not followed.
    let q = [
        ("client_id", "cli"),
        ("post_logout_redirect_uri", "http://evil.example/"),
    ];
    let r = logout_get(&b, s, &q).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn revocation_revokes_the_grant() {
    let s = shared();
    let md = discover(s).await;
    let (code, ver, _) = code_for(s, md, "web", "alice").await;
    let auth = |rb: reqwest::RequestBuilder| rb.basic_auth("web", Some(&s.web_secret));
    let r = json_of(auth(http().post(s.url("/token"))).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", ver.secret().as_str()),
    ]))
    .await;
    let rt = r["refresh_token"].as_str().unwrap();
    // Another client's revocation is ignored; unknown tokens are fine.
    let x = http()
        .post(s.url("/revoke"))
        .basic_auth("other", Some(&s.other_secret))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(x.status(), 200);
    let x = auth(http().post(s.url("/revoke")))
        .form(&[("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(x.status(), 200);
    let ui = userinfo(s, r["access_token"].as_str().unwrap()).await;
    assert_eq!(ui.status(), 200);
    let x = auth(http().post(s.url("/revoke")))
        .form(&[("token", rt), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(x.status(), 200);
    let (st, body) = refresh_confidential(s, "web", &s.web_secret, rt).await;
    assert_oauth_error(st, &body, "invalid_grant");
    let ui = userinfo(s, r["access_token"].as_str().unwrap()).await;
    assert_eq!(ui.status(), 401);
}

#[tokio::test]
async fn bad_requests_get_oauth_errors_never_500() {
    let s = shared();
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("/token", "", 400, "invalid_request"),
        ("/token", "grant_type=password&username=a&password=b", 400, "unsupported_grant_type"),
        ("/token", "grant_type=authorization_code&grant_type=authorization_code", 400, "invalid_request"),
        ("/token", "grant_type=authorization_code&client_id=nope", 401, "invalid_client"),
        ("/token", "grant_type=authorization_code&client_id=cli", 400, "invalid_request"),
        ("/token", "grant_type=authorization_code&client_id=cli&code=zzz&redirect_uri=x", 400, "invalid_grant"),
        ("/token", "grant_type=refresh_token&client_id=cli&refresh_token=zzz", 400, "invalid_grant"),
        ("/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=cli&device_code=zzz", 400, "invalid_grant"),
        ("/token", "%%%%&&&==", 400, "invalid_request"),
        ("/device_authorization", "client_id=web", 401, "invalid_client"),
        ("/device_authorization", "client_id=cli&scope=admin", 400, "invalid_scope"),
        ("/revoke", "client_id=cli", 400, "invalid_request"),
    ];
    for (path, body, status, error) in cases {
        let r = http()
            .post(s.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], error, "{path} {body}: {v}");
        assert!(v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
    let big = "a".repeat(sso::BODY_LIMIT + 1);
    let r = http().post(s.url("/token")).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    for q in [
        "",
        "client_id=nope",
        "client_id=cli&client_id=cli",
        "client_id=cli&redirect_uri=%FF",
    ] {
        let r = http()
            .get(format!("{}?{q}", s.url("/authorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
}

#[tokio::test]
async fn key_rotation_keeps_old_keys_published() {
    let s = shared();
    let (st, r) = client_credentials_grant(s, "deployd", &s.daemon_secret).await;
    assert_eq!(st, 200);
    let old = r["access_token"].as_str().unwrap().to_owned();
    let old_kid = s.sso.state().keys.active_kid().unwrap();
    let new_kid = s.sso.state().keys.rotate().await.unwrap();
    assert_ne!(old_kid, new_kid);
    let jwks = get_json(&s.url("/jwks")).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    // Tokens signed before the rotation still verify; new ones use the new key.
    let v = lain_auth::Verifier::new(lain_auth::VerifierConfig::new(s.issuer.clone(), "console"))
        .unwrap();
    assert!(v.verify(&old).await.is_ok());
    let (_, r) = client_credentials_grant(s, "deployd", &s.daemon_secret).await;
    let new = r["access_token"].as_str().unwrap();
    use base64::Engine;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(new.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());
    assert!(
        v.verify(new).await.is_ok(),
        "the verifier refetches the JWKS for an unknown kid"
    );
}
