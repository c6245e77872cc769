//! The admin API: who may do what, and what it does.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn admin_api_permissions_and_operations() {
    let s = shared();
    let bob = access_token(s, "admin-ui", "bob").await;
    let alice = access_token(s, "admin-ui", "alice").await;
    let console_token = access_token(s, "cli", "bob").await;
    use reqwest::Method;

    let (st, users) = api(s, Method::GET, "/api/v1/users", &bob, None).await;
    assert_eq!(st, 200);
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "alice"));
    assert!(!users.to_string().contains("argon2"));
    let (st, e) = api(s, Method::GET, "/api/v1/users", &alice, None).await;
    assert_eq!(st, 403, "{e}");
    assert!(e["error"].as_str().unwrap().contains("admin"));
    let (st, e) = api(s, Method::GET, "/api/v1/users", &console_token, None).await;
    assert_eq!(st, 401, "a token for another audience is refused: {e}");
    let (st, _) = api(s, Method::GET, "/api/v1/users", "garbage", None).await;
    assert_eq!(st, 401);

    let gina = json!({ "name": "gina", "password": "gina-password-1" });
    for (body, want, what) in [
        (
            json!({ "name": "gina", "password": "gina-password-1", "emial": "x" }),
            400,
            "unknown fields are refused",
        ),
        (gina.clone(), 201, "created"),
        (gina, 409, "exists already"),
    ] {
        let (st, e) = api(s, Method::POST, "/api/v1/users", &bob, Some(body)).await;
        assert_eq!(st, want, "{what}: {e}");
    }
    let (st, e) = api(
        s,
        Method::POST,
        "/api/v1/users",
        &bob,
        Some(json!({ "name": "hank", "password": "short" })),
    )
    .await;
    assert_eq!(st, 400);
    assert!(e["error"].as_str().unwrap().contains("too short"));

    // Group admins manage their own group's members, not others'.
    for (path, token, body, want) in [
        (
            "/api/v1/groups/dev-web/members/alice",
            &bob,
            Some(json!({ "role": "admin" })),
            204,
        ),
        ("/api/v1/groups/dev-web/members/gina", &alice, None, 204),
        ("/api/v1/groups/admin/members/alice", &alice, None, 403),
        ("/api/v1/groups/nope/members/alice", &bob, None, 404),
    ] {
        let (st, e) = api(s, Method::PUT, path, token, body).await;
        assert_eq!(st, want, "PUT {path}: {e}");
    }
    let (st, groups) = api(s, Method::GET, "/api/v1/groups", &alice, None).await;
    assert_eq!(st, 200);
    let dw = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "dev-web")
        .unwrap()
        .clone();
    assert!(dw["members"]
        .as_array()
        .unwrap()
        .contains(&json!({ "user": "gina", "role": "normal" })));
    assert_eq!(
        s.sso.state().db.user_groups("gina").await.unwrap(),
        vec!["dev", "dev-web"]
    );

    // Clients: secret returned once, never listed.
    let (st, c) = api(s, Method::POST, "/api/v1/clients", &bob, Some(json!({ "client_id": "console", "kind": "confidential", "redirect_uris": ["https://console.example/cb"] }))).await;
    assert_eq!(st, 201);
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let (_, list) = api(s, Method::GET, "/api/v1/clients", &bob, None).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["client_id"] == "console"));
    assert!(!list.to_string().contains(&secret));
    let (st, _) = api(s, Method::DELETE, "/api/v1/clients/console", &bob, None).await;
    assert_eq!(st, 204);

    // Passwords: your own, or anyone's as admin.
    for (user, token, password, want) in [
        ("bob", &alice, "xxxxxxxxxxxx", 403),
        ("gina", &bob, "gina-password-2", 204),
    ] {
        let path = format!("/api/v1/users/{user}/password");
        let body = Some(json!({ "password": password }));
        let (st, e) = api(s, Method::PUT, &path, token, body).await;
        assert_eq!(st, want, "{path}: {e}");
    }
    let (st, _) = api(s, Method::POST, "/api/v1/users/gina/disable", &bob, None).await;
    assert_eq!(st, 204);
    let (_, users) = api(s, Method::GET, "/api/v1/users", &bob, None).await;
    assert_eq!(
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "gina")
            .unwrap()["disabled"],
        true
    );
}
