//! Regression tests for the security review of sso: each test reproduces
//! one finding.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use sso::domain::{ClientKind, NewClient};
use sso::secret::Secret;

async fn add_user(s: &TestSso, name: &str) {
    s.sso
        .state()
        .db
        .add_user(
            &s.sso.state().cfg.password_hash,
            name,
            "",
            "",
            &Secret::new(PASSWORD),
        )
        .await
        .unwrap();
}

// ---- 1: CSP form-action vs. the redirect after POST /authorize ----------

#[tokio::test]
async fn login_page_csp_allows_the_redirect_to_the_client() {
    let s = shared();
    let (url, _) = authorize_url(s, "cli", "openid", "");
    let r = browser().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let fa = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action"));
    if let Some(fa) = fa {
        assert!(
            fa.split(' ').any(|src| src == "http://127.0.0.1:9"),
            "form-action must allow the registered redirect URI's origin: {csp}"
        );
    }
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

// ---- 2: parallel wrong passwords -----------------------------------------

#[tokio::test]
async fn parallel_wrong_passwords_are_limited_before_verification() {
    // Its own server: the burst must not disturb the other tests.
    let s = TestSso::start(None).await;
    let (url, _) = authorize_url(&s, "cli", "openid", "");
    let b = browser();
    let form = login_form(&get_text(&b, &url).await, "frank", "wrong-password");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (b, form, u) = (b.clone(), form.clone(), s.url("/authorize"));
        tasks.push(tokio::spawn(async move {
            let r = b
                .post(u)
                .header("x-forwarded-for", format!("10.9.{}.{}", i / 200, i % 200))
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }));
    }
    let mut evaluated = 0;
    for t in tasks {
        let (st, retry_after) = t.await.unwrap();
        match st {
            401 => evaluated += 1,
            429 => assert!(retry_after, "429 without Retry-After"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        evaluated <= 5,
        "{evaluated} wrong passwords were checked; the per-user limit is 5"
    );
    // frank is locked now, even with the right password.
    let (st, _, body) = login(&b, &s, &url, "frank", PASSWORD, Some("10.9.9.9")).await;
    assert_eq!(st, 429, "{body}");
}

// ---- 3: device-code phishing ---------------------------------------------

#[tokio::test]
async fn device_page_shows_the_client_and_needs_an_explicit_confirmation() {
    let s = shared();
    let r = device_authorization(
        s,
        &[("client_id", "cli"), ("scope", "openid profile groups")],
    )
    .await;
    let user_code = r["user_code"].as_str().unwrap().to_owned();
    let b = browser();
    let page = get_text(&b, r["verification_uri_complete"].as_str().unwrap()).await;
    assert!(page.contains("cli app"), "client name shown: {page}");
    assert!(page.contains("groups"), "scopes shown: {page}");
    assert!(page.contains("console"), "audience shown: {page}");
    assert!(
        page.contains("only approve") || page.contains("Only approve"),
        "warning shown: {page}"
    );
    assert!(page.contains(&user_code), "code shown for comparison");
    // Approving without confirming the code does nothing.
    let form = device_form(&page, Some(&user_code), false, "dave", "approve");
    let (st, _, body) = post_form(&b, &s.url("/device"), &form, None).await;
    assert_eq!(st, 400, "{body}");
    assert!(!body.contains("Device approved"), "{body}");
    assert_eq!(
        device_poll(s, r["device_code"].as_str().unwrap()).await.1["error"],
        "authorization_pending"
    );
    // With the confirmation it is approved.
    let page = get_text(&b, r["verification_uri_complete"].as_str().unwrap()).await;
    let form = device_form(&page, Some(&user_code), true, "dave", "approve");
    let (st, _, body) = post_form(&b, &s.url("/device"), &form, None).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("Device approved"), "{body}");
}

#[tokio::test]
async fn public_clients_get_no_device_grant_by_default() {
    let s = shared();
    let db = &s.sso.state().db;
    db.add_client(&NewClient {
        client_id: "pub-default".into(),
        name: "pub".into(),
        kind: ClientKind::Public,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![],
        audience: None,
    })
    .await
    .unwrap();
    let c = db.get_client("pub-default").await.unwrap().unwrap();
    assert!(!c.allows(sso::domain::DEVICE_GRANT), "{:?}", c.grant_types);
    assert!(c.allows("authorization_code") && c.allows("refresh_token"));
    let r = http()
        .post(s.url("/device_authorization"))
        .form(&[("client_id", "pub-default")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

// ---- 4: password changes --------------------------------------------------

#[tokio::test]
async fn self_service_password_change_needs_the_current_password_and_revokes_tokens() {
    let s = shared();
    add_user(s, "pw-self").await;
    let cli = user_tokens_scope(s, "cli", "pw-self", PASSWORD, "openid").await;
    let admin = user_tokens_scope(s, "admin-ui", "pw-self", PASSWORD, "openid").await;
    let at = admin["access_token"].as_str().unwrap();
    let path = "/api/v1/users/pw-self/password";
    let (st, e) = api(
        s,
        Method::PUT,
        path,
        at,
        Some(json!({ "password": "new-password-123" })),
    )
    .await;
    assert_eq!(st, 400, "current_password is required: {e}");
    assert!(e["error"].as_str().unwrap().contains("current_password"));
    let (st, e) = api(
        s,
        Method::PUT,
        path,
        at,
        Some(json!({ "password": "new-password-123", "current_password": "not-it-at-all" })),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    // Nothing changed yet.
    assert_eq!(
        refresh(s, "cli", cli["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let cli = user_tokens_scope(s, "cli", "pw-self", PASSWORD, "openid").await;
    let (st, e) = api(
        s,
        Method::PUT,
        path,
        at,
        Some(json!({ "password": "new-password-123", "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(st, 204, "{e}");
    let (st, body) = refresh(s, "cli", cli["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error_because(
        st,
        &body,
        "invalid_grant",
        "refresh tokens die with the old password",
    );
    assert_eq!(
        userinfo(s, cli["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let (st, _) = api(s, Method::GET, "/api/v1/groups", at, None).await;
    assert_eq!(
        st, 401,
        "the token that changed the password is revoked too"
    );
}

#[tokio::test]
async fn admin_and_cli_password_changes_and_disable_revoke_grants() {
    let s = shared();
    add_user(s, "pw-other").await;
    add_user(s, "pw-cli").await;
    add_user(s, "pw-off").await;
    let bob = user_tokens_scope(s, "admin-ui", "bob", PASSWORD, "openid").await;
    let victim = user_tokens_scope(s, "cli", "pw-other", PASSWORD, "openid").await;
    // An admin changing another user's password needs no current password.
    let (st, e) = api(
        s,
        Method::PUT,
        "/api/v1/users/pw-other/password",
        bob["access_token"].as_str().unwrap(),
        Some(json!({ "password": "other-password-9" })),
    )
    .await;
    assert_eq!(st, 204, "{e}");
    let (st, _) = refresh(s, "cli", victim["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 400);
    // `sso user passwd` goes through Db::set_password.
    let t = user_tokens_scope(s, "cli", "pw-cli", PASSWORD, "openid").await;
    let st8 = s.sso.state();
    st8.db
        .set_password(
            &st8.cfg.password_hash,
            "pw-cli",
            &Secret::new("cli-password-77"),
        )
        .await
        .unwrap();
    let (st, _) = refresh(s, "cli", t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 400);
    assert_eq!(
        userinfo(s, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    // Disable.
    let t = user_tokens_scope(s, "cli", "pw-off", PASSWORD, "openid").await;
    st8.db.set_disabled("pw-off", true).await.unwrap();
    let (st, _) = refresh(s, "cli", t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 400);
}

// ---- 5: ID tokens are not access tokens ------------------------------------

#[tokio::test]
async fn id_tokens_are_refused_as_access_tokens() {
    let s = shared();
    let t = user_tokens_scope(s, "cli", "alice", PASSWORD, "openid").await;
    let r = userinfo(s, t["id_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(
        userinfo(s, t["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // A client whose id is `sso` gets ID tokens with aud = sso; they must
    // not open the admin API.
    s.sso
        .state()
        .db
        .add_client(&NewClient {
            client_id: "sso".into(),
            name: "sso console".into(),
            kind: ClientKind::Public,
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into()],
            audience: Some("sso".into()),
        })
        .await
        .unwrap();
    let t = user_tokens_scope(s, "sso", "bob", PASSWORD, "openid").await;
    let (id_token, access) = (
        t["id_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap(),
    );
    let (st, e) = api(s, Method::GET, "/api/v1/users", id_token, None).await;
    assert_eq!(st, 401, "{e}");
    let (st, _) = api(s, Method::GET, "/api/v1/users", access, None).await;
    assert_eq!(st, 200);
    // /userinfo needs the openid scope.
    let t = user_tokens_scope(s, "cli", "alice", PASSWORD, "profile").await;
    let r = userinfo(s, t["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
}

// ---- 6: max_age, prompt, response_mode -------------------------------------

#[tokio::test]
async fn max_age_prompt_and_response_mode() {
    let s = shared();
    let b = browser();
    let (url, _) = authorize_url(s, "cli", "openid", "&state=s6");
    let (st, _, body) = login(&b, s, &url, "carol", PASSWORD, None).await;
    assert_eq!(st, 303, "{body}");
    let get = |extra: &str| {
        let (u, _) = authorize_url(s, "cli", "openid", &format!("&state=s6{extra}"));
        let b = b.clone();
        async move {
            let r = b.get(u).send().await.unwrap();
            let loc = r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), loc)
        }
    };
    // The live session is reused...
    let (st, loc) = get("").await;
    assert_eq!(st, 303);
    assert!(param(loc.as_deref().unwrap(), "code").is_some());
    let (st, loc) = get("&max_age=3600").await;
    assert_eq!(st, 303);
    assert!(param(loc.as_deref().unwrap(), "code").is_some());
    // ...but not when it is older than max_age, or for prompt=login.
    for extra in ["&max_age=0", "&prompt=login", "&prompt=select_account"] {
        let (st, loc) = get(extra).await;
        assert_eq!(st, 200, "{extra}: login page expected, got {loc:?}");
    }
    let (st, loc) = get("&max_age=0&prompt=none").await;
    assert_eq!(st, 303);
    assert_eq!(
        param(loc.as_deref().unwrap(), "error").as_deref(),
        Some("login_required")
    );
    for (extra, error) in [
        ("&response_mode=fragment", "invalid_request"),
        ("&response_mode=form_post", "invalid_request"),
        ("&max_age=soon", "invalid_request"),
        ("&prompt=none%20login", "invalid_request"),
        ("&prompt=bogus", "invalid_request"),
        ("&prompt=consent", "consent_required"),
    ] {
        let (st, loc) = get(extra).await;
        assert_eq!(st, 303, "{extra}");
        let loc = loc.unwrap();
        assert_eq!(
            param(&loc, "error").as_deref(),
            Some(error),
            "{extra}: {loc}"
        );
        assert!(param(&loc, "code").is_none());
        assert_eq!(param(&loc, "state").as_deref(), Some("s6"));
    }
    let (st, loc) = get("&response_mode=query").await;
    assert_eq!(st, 303);
    assert!(param(loc.as_deref().unwrap(), "code").is_some());
}

// ---- 7: client credentials subjects ----------------------------------------

#[tokio::test]
async fn client_credentials_subject_cannot_pass_for_a_user() {
    let s = shared();
    let (st, r) = client_credentials_grant(s, "deployd", &s.daemon_secret).await;
    assert_eq!(st, 200, "{r}");
    let c = jwt_claims(r["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "client:deployd");
    assert_eq!(c["client_id"], "deployd");
}

// ---- nits -------------------------------------------------------------------

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[tokio::test]
async fn logout_needs_a_confirmation_unless_an_id_token_hint_names_the_user() {
    let s = shared();
    let b = browser();
    let (url, _) = authorize_url(s, "cli", "openid", "");
    let (st, _, _) = login(&b, s, &url, "erin", PASSWORD, None).await;
    assert_eq!(st, 303);
    let signed_in = || async {
        let r = b.get(&url).send().await.unwrap();
        r.status() == 303
    };
    let q = [
        ("client_id", "cli"),
        ("post_logout_redirect_uri", LOGOUT_REDIRECT),
        ("state", "st9"),
    ];
    // A plain GET (a link, an image) only asks.
    let r = logout_get(&b, s, &q).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("http://127.0.0.1:9"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign out"), "{page}");
    assert!(signed_in().await, "a GET does not end the session");
    // A cross-site POST without the CSRF value only asks too.
    let r = b.post(s.url("/logout")).form(&q).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(signed_in().await);
    // The confirmation form ends it and returns to the client.
    let (st, loc2, body) = post_form(&b, &s.url("/logout"), &hidden_fields(&page), None).await;
    assert_eq!(st, 303, "{body}");
    assert_eq!(loc2.unwrap(), format!("{LOGOUT_REDIRECT}?state=st9"));
    assert!(!signed_in().await);

    // With an id_token_hint for the signed-in user: no confirmation.
    let (st, _, _) = login(&b, s, &url, "erin", PASSWORD, None).await;
    assert_eq!(st, 303);
    let t = user_tokens_scope(s, "cli", "erin", PASSWORD, "openid").await;
    let hint = |token| {
        [
            ("id_token_hint", token),
            ("post_logout_redirect_uri", LOGOUT_REDIRECT),
        ]
    };
    let r = logout_get(&b, s, &hint(t["id_token"].as_str().unwrap())).await;
    assert_eq!(r.status(), 303);
    assert!(!signed_in().await);
    // An access token is no id_token_hint.
    let (st, _, _) = login(&b, s, &url, "erin", PASSWORD, None).await;
    assert_eq!(st, 303);
    let r = logout_get(&b, s, &hint(t["access_token"].as_str().unwrap())).await;
    assert_eq!(r.status(), 200);
    assert!(signed_in().await);
}

#[tokio::test]
async fn csrf_cookie_is_bound_to_the_session_and_login_renews_session_and_csrf() {
    let s = shared();
    let st8 = s.sso.state();
    let (url, _) = authorize_url(s, "cli", "openid", "&prompt=login");
    // A planted cookie with a matching form field is not enough.
    let planted = "p".repeat(43);
    let mut form: Vec<(String, String)> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .filter(|(k, _)| k != "prompt")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("csrf".into(), planted.clone()));
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let r = http()
        .post(s.url("/authorize"))
        .header("cookie", format!("sso_csrf={planted}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Login with an old session cookie: new session, old row gone, new CSRF.
    let old = st8
        .db
        .create_session("alice", sso::now() + 3600)
        .await
        .unwrap();
    let r = http()
        .get(&url)
        .header("cookie", format!("sso_session={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c1 = set_cookie_value(&r, "sso_csrf").unwrap();
    let form = login_form(&r.text().await.unwrap(), "alice", PASSWORD);
    let r = http()
        .post(s.url("/authorize"))
        .header("cookie", format!("sso_session={old}; sso_csrf={c1}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let new = set_cookie_value(&r, "sso_session").unwrap();
    assert_ne!(new, old);
    let c2 = set_cookie_value(&r, "sso_csrf").expect("CSRF cookie renewed at login");
    assert_ne!(c2, c1);
    assert!(st8.db.session(&old).await.unwrap().is_none());
    assert!(st8.db.session(&new).await.unwrap().is_some());
}

#[tokio::test]
async fn token_needs_redirect_uri_only_when_authorize_had_one() {
    let s = shared();
    let (with, verifier) = authorize_url(s, "cli", "openid", "");
    // The same request without redirect_uri (cli has one registered).
    let u = url::Url::parse(&with).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "redirect_uri")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut without = u.clone();
    without.query_pairs_mut().clear().extend_pairs(&pairs);
    let code = login_code(&browser(), s, without.as_str(), "alice").await;
    let (st, t) = token_request(s, &code_grant("cli", &code, None, &verifier)).await;
    assert_eq!(st, 200, "{t}");
    // With redirect_uri at /authorize, /token must repeat it.
    let code = login_code(&browser(), s, &with, "alice").await;
    let (st, t) = token_request(s, &code_grant("cli", &code, None, &verifier)).await;
    assert_oauth_error(st, &t, "invalid_request");
}

#[tokio::test]
async fn oversized_token_request_gets_an_oauth_error() {
    let s = shared();
    let big = "a".repeat(sso::BODY_LIMIT + 1);
    let r = http()
        .post(s.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.expect("a JSON body");
    assert_eq!(v["error"], "invalid_request");
}

#[tokio::test]
async fn the_last_admin_cannot_be_disabled() {
    let s = shared();
    let bob = user_tokens_scope(s, "admin-ui", "bob", PASSWORD, "openid").await;
    let at = bob["access_token"].as_str().unwrap();
    let (st, e) = api(s, Method::POST, "/api/v1/users/bob/disable", at, None).await;
    assert_eq!(st, 409, "{e}");
    add_user(s, "adm2").await;
    s.sso
        .state()
        .db
        .set_member("admin", "adm2", sso::domain::Role::Normal)
        .await
        .unwrap();
    let (st, e) = api(s, Method::POST, "/api/v1/users/adm2/disable", at, None).await;
    assert_eq!(st, 204, "{e}");
}

#[tokio::test]
async fn userinfo_claims_follow_the_scopes() {
    let s = shared();
    let t = user_tokens_scope(s, "cli", "carol", PASSWORD, "openid").await;
    let ui: serde_json::Value = userinfo(s, t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ui["sub"], "carol");
    assert!(ui.get("email").is_none(), "{ui}");
    assert!(ui.get("name").is_none(), "{ui}");
    let t = user_tokens_scope(s, "cli", "carol", PASSWORD, "openid email").await;
    let ui: serde_json::Value = userinfo(s, t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ui["email"], "carol@example.com");
    assert!(ui.get("name").is_none(), "{ui}");
}
