//! The same store on PostgreSQL (Debian's, started by the test kit):
//! migrations, users and groups, the code flow with refresh rotation and
//! reuse detection, client credentials, device approval, and a restart on
//! the migrated database.

mod common;

use common::*;

#[tokio::test]
async fn flows_on_postgresql() {
    let pg = tokio::task::spawn_blocking(lain_testkit::Postgres::start)
        .await
        .unwrap()
        .expect("postgres starts (install Debian's postgresql)");
    let url = pg.url();
    let s = TestSso::start(Some(url.clone())).await;
    assert_eq!(s.sso.state().db.backend, sso::db::Backend::Postgres);
    assert_eq!(
        s.sso.state().db.user_groups("alice").await.unwrap(),
        vec!["dev", "dev-web"]
    );

    // Code flow with PKCE for the public client.
    let verifier = "v".repeat(50);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let auth = format!(
        "{}?response_type=code&client_id=cli&scope=openid%20profile&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=pg",
        s.url("/authorize"),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
    );
    let (st, loc, body) = login(&browser(), &s, &auth, "alice", PASSWORD, None).await;
    assert_eq!(st, 303, "{body}");
    let code = param(&loc.unwrap(), "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "cli"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (st, tok) = token_request(&s, &form).await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(
        jwt_claims(tok["id_token"].as_str().unwrap())["groups"],
        serde_json::json!(["dev", "dev-web"])
    );
    let (st, again) = token_request(&s, &form).await;
    assert_eq!(
        (st, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "code is single use"
    );

    // A second code, then refresh rotation and reuse detection.
    let (_, loc, _) = login(&browser(), &s, &auth, "bob", PASSWORD, None).await;
    let code = param(&loc.unwrap(), "code").unwrap();
    let (_, tok) = token_request(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "cli"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ],
    )
    .await;
    let rt1 = tok["refresh_token"].as_str().unwrap().to_owned();
    let (st, r2) = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", "cli"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r2}");
    let rt2 = r2["refresh_token"].as_str().unwrap().to_owned();
    let (st, e) = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", "cli"),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, e) = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", "cli"),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "reuse revoked the grant"
    );

    // Client credentials.
    let (st, cc) = token_request(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "deployd"),
            ("client_secret", &s.daemon_secret),
        ],
    )
    .await;
    assert_eq!(st, 200, "{cc}");

    // Device flow.
    let d: serde_json::Value = http()
        .post(s.url("/device_authorization"))
        .form(&[("client_id", "cli"), ("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b = browser();
    let page = b
        .get(d["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut f = hidden_fields(&page);
    for (k, v) in [
        ("confirm_code", "yes"),
        ("username", "dave"),
        ("password", PASSWORD),
        ("action", "approve"),
    ] {
        f.push((k.into(), v.into()));
    }
    let (st, _, body) = post_form(&b, &s.url("/device"), &f, None).await;
    assert_eq!(st, 200, "{body}");
    let (st, dt) = token_request(
        &s,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", d["device_code"].as_str().unwrap()),
            ("client_id", "cli"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{dt}");

    // Disabling a user revokes its grants.
    let (st, dt2) = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", dt["refresh_token"].as_str().unwrap()),
            ("client_id", "cli"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{dt2}");
    s.sso.state().db.set_disabled("dave", true).await.unwrap();
    let (st, e) = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", dt2["refresh_token"].as_str().unwrap()),
            ("client_id", "cli"),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));

    // NUL characters (which PostgreSQL cannot store) are bad requests.
    for (path, body) in [
        (
            "/token",
            "grant_type=client_credentials&client_id=a%00b&client_secret=x",
        ),
        ("/authorize", "username=al%00ice&password=x&csrf=y"),
        ("/api/v1/users", "{\"name\":\"a\\u0000b\"}"),
    ] {
        let r = http().post(s.url(path)).body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path} {body}");
    }
    let r = http()
        .get(s.url("/authorize?client_id=cli%00"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Opening the migrated database again applies nothing and keeps keys.
    let kid = s.sso.state().keys.active_kid().unwrap();
    let cfg: sso::config::Config = lain_service::parse_config(
        std::path::Path::new("t.toml"),
        &base_config("http://127.0.0.1:1", "127.0.0.1:1".parse().unwrap()),
    )
    .unwrap();
    let again = sso::Sso::open(cfg, &url).await.unwrap();
    assert_eq!(again.state().keys.active_kid().unwrap(), kid);
    assert_eq!(again.state().db.schema_version().await.unwrap(), 1);
    drop(pg);
}
