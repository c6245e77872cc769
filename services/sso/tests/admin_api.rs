//! The admin API: who may do what, and what it does.

mod common;

use common::*;
use serde_json::json;

async fn call(
    s: &TestSso,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut r = http().request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn admin_api_permissions_and_operations() {
    let s = shared();
    let bob = user_tokens(s, "admin-ui", "bob").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = user_tokens(s, "admin-ui", "alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let console_token = user_tokens(s, "cli", "bob").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    use reqwest::Method;

    let (st, users) = call(s, Method::GET, "/api/v1/users", &bob, None).await;
    assert_eq!(st, 200);
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "alice"));
    assert!(!users.to_string().contains("argon2"));
    let (st, e) = call(s, Method::GET, "/api/v1/users", &alice, None).await;
    assert_eq!(st, 403, "{e}");
    assert!(e["error"].as_str().unwrap().contains("admin"));
    let (st, e) = call(s, Method::GET, "/api/v1/users", &console_token, None).await;
    assert_eq!(st, 401, "a token for another audience is refused: {e}");
    let (st, _) = call(s, Method::GET, "/api/v1/users", "garbage", None).await;
    assert_eq!(st, 401);

    let (st, e) = call(
        s,
        Method::POST,
        "/api/v1/users",
        &bob,
        Some(json!({ "name": "gina", "password": "gina-password-1", "emial": "x" })),
    )
    .await;
    assert_eq!(st, 400, "unknown fields are refused: {e}");
    let (st, _) = call(
        s,
        Method::POST,
        "/api/v1/users",
        &bob,
        Some(json!({ "name": "gina", "password": "gina-password-1" })),
    )
    .await;
    assert_eq!(st, 201);
    let (st, _) = call(
        s,
        Method::POST,
        "/api/v1/users",
        &bob,
        Some(json!({ "name": "gina", "password": "gina-password-1" })),
    )
    .await;
    assert_eq!(st, 409);
    let (st, e) = call(
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
    let (st, _) = call(
        s,
        Method::PUT,
        "/api/v1/groups/dev-web/members/alice",
        &bob,
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = call(
        s,
        Method::PUT,
        "/api/v1/groups/dev-web/members/gina",
        &alice,
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = call(
        s,
        Method::PUT,
        "/api/v1/groups/admin/members/alice",
        &alice,
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = call(
        s,
        Method::PUT,
        "/api/v1/groups/nope/members/alice",
        &bob,
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, groups) = call(s, Method::GET, "/api/v1/groups", &alice, None).await;
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
    let (st, c) = call(s, Method::POST, "/api/v1/clients", &bob, Some(json!({ "client_id": "console", "kind": "confidential", "redirect_uris": ["https://console.example/cb"] }))).await;
    assert_eq!(st, 201);
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let (_, list) = call(s, Method::GET, "/api/v1/clients", &bob, None).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["client_id"] == "console"));
    assert!(!list.to_string().contains(&secret));
    let (st, _) = call(s, Method::DELETE, "/api/v1/clients/console", &bob, None).await;
    assert_eq!(st, 204);

    // Passwords: your own, or anyone's as admin.
    let (st, _) = call(
        s,
        Method::PUT,
        "/api/v1/users/bob/password",
        &alice,
        Some(json!({ "password": "xxxxxxxxxxxx" })),
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = call(
        s,
        Method::PUT,
        "/api/v1/users/gina/password",
        &bob,
        Some(json!({ "password": "gina-password-2" })),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = call(s, Method::POST, "/api/v1/users/gina/disable", &bob, None).await;
    assert_eq!(st, 204);
    let (_, users) = call(s, Method::GET, "/api/v1/users", &bob, None).await;
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
