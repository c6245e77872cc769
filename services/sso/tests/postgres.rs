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
    let (auth, verifier) = authorize_url(&s, "cli", "openid profile", "&state=pg");
    let code = login_code(&browser(), &s, &auth, "alice").await;
    let (st, tok) = redeem_code(&s, "cli", &code, &verifier).await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(
        jwt_claims(tok["id_token"].as_str().unwrap())["groups"],
        serde_json::json!(["dev", "dev-web"])
    );
    let (st, again) = redeem_code(&s, "cli", &code, &verifier).await;
    assert_oauth_error_because(st, &again, "invalid_grant", "code is single use");

    // A second code, then refresh rotation and reuse detection.
    let code = login_code(&browser(), &s, &auth, "bob").await;
    let (_, tok) = redeem_code(&s, "cli", &code, &verifier).await;
    let rt1 = tok["refresh_token"].as_str().unwrap().to_owned();
    let (st, r2) = refresh(&s, "cli", &rt1).await;
    assert_eq!(st, 200, "{r2}");
    let rt2 = r2["refresh_token"].as_str().unwrap().to_owned();
    let (st, e) = refresh(&s, "cli", &rt1).await;
    assert_oauth_error(st, &e, "invalid_grant");
    let (st, e) = refresh(&s, "cli", &rt2).await;
    assert_oauth_error_because(st, &e, "invalid_grant", "reuse revoked the grant");

    // Client credentials.
    let (st, cc) = client_credentials_grant(&s, "deployd", &s.daemon_secret).await;
    assert_eq!(st, 200, "{cc}");

    // Device flow.
    let d = device_authorization(&s, &[("client_id", "cli"), ("scope", "openid")]).await;
    let b = browser();
    let page = get_text(&b, d["verification_uri_complete"].as_str().unwrap()).await;
    let f = device_form(&page, None, true, "dave", "approve");
    let (st, _, body) = post_form(&b, &s.url("/device"), &f, None).await;
    assert_eq!(st, 200, "{body}");
    let (st, dt) = device_poll(&s, d["device_code"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{dt}");

    // Disabling a user revokes its grants.
    let (st, dt2) = refresh(&s, "cli", dt["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{dt2}");
    s.sso.state().db.set_disabled("dave", true).await.unwrap();
    let (st, e) = refresh(&s, "cli", dt2["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(st, &e, "invalid_grant");

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
