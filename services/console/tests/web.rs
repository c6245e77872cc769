//! The web console's security properties over plain HTTP, against the
//! real `console` binary and sso in-process (tests/common): sign-in with
//! code + PKCE through sso's real login form, the cookies' flags, refused
//! callbacks (foreign state or issuer, a replay), no open redirect, the
//! security headers, CSRF and Origin checks audited as denied, the JSON
//! API ignoring the session cookie, escaping of what callers control,
//! exactly one token refresh under concurrent requests, and logout. The
//! whole flow in a real browser is cli/tests/web.rs.

mod common;

use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sso::domain::{ClientKind, NewClient};

const PASSWORD: &str = "correct-horse-battery-2";

struct World {
    sso: common::TestSso,
    console: common::TestConsole,
}

async fn world() -> World {
    // Access tokens of 66 s: a session is within a minute of expiry 6 to 7
    // s (whole seconds) after its token was issued, and then the next
    // request refreshes.
    let sso = common::TestSso::start_with("[tokens]\naccess_token_secs = 66\n").await;
    sso.add_users(PASSWORD).await;
    let db = &sso.sso.state().db;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lain_testkit::free_port()));
    let secret = db
        .add_client(&NewClient {
            client_id: "console-web".into(),
            name: "lain console".into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![format!("http://{addr}/ui/callback")],
            post_logout_redirect_uris: vec![format!("http://{addr}/ui/logged-out")],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            audience: Some("console".into()),
        })
        .await
        .unwrap()
        .unwrap()
        .expose()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("web.secret");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&secret_file, &secret).unwrap();
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let console = common::TestConsole::start_on(
        addr,
        &sso.issuer,
        &[],
        "",
        "",
        &format!(
            "[web]\nclient_secret_file = \"{}\"\n",
            secret_file.display()
        ),
    );
    // The console read the secret at start; the file can go.
    drop(dir);
    // alice's app.
    let r = api(&sso, "alice")
        .post(format!("{}/api/v1/apps", console.base))
        .json(&json!({"name": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    World { sso, console }
}

/// A client with `user`'s bearer token (the JSON API).
fn api(sso: &common::TestSso, user: &str) -> Client {
    let groups: &[&str] = if user == "root" {
        &["lain-admins"]
    } else {
        &[]
    };
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        format!("Bearer {}", sso.token(user, groups))
            .parse()
            .unwrap(),
    );
    Client::builder()
        .default_headers(h)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A browser: cookies kept, redirects not followed (each is checked).
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Signs `user` in, starting at `start` (a console URL); returns the
/// callback URL sso sent the browser to and where console sent it next.
async fn sign_in(w: &World, b: &Client, user: &str, start: &str) -> (String, String) {
    let r = b.get(start).send().await.unwrap();
    assert_eq!(r.status(), 303, "{start}");
    let mut next = location(&r);
    if next.starts_with("/ui/login") {
        let r = b
            .get(format!("{}{next}", w.console.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let login_cookie = set_cookies(&r).join("\n");
        assert!(
            login_cookie.contains("lain_console_login=")
                && login_cookie.contains("HttpOnly")
                && login_cookie.contains("SameSite=Lax")
                && !login_cookie.contains("Secure"),
            "{login_cookie}"
        );
        next = location(&r);
    }
    assert!(
        next.starts_with(&format!("{}/authorize?", w.sso.issuer)),
        "{next}"
    );
    for want in [
        "code_challenge_method=S256",
        "client_id=console-web",
        "nonce=",
        "state=",
    ] {
        assert!(next.contains(want), "{want} in {next}");
    }
    let page = b.get(&next).send().await.unwrap().text().await.unwrap();
    let form = lain_testkit::html::login_form(&page, user, PASSWORD);
    let r = b
        .post(format!("{}/authorize", w.sso.issuer))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sso sign-in of {user}");
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/ui/callback?", w.console.base)),
        "{callback}"
    );
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let cookies = set_cookies(&r).join("\n");
    assert!(
        cookies.contains("lain_console=")
            && cookies.contains("HttpOnly")
            && cookies.contains("SameSite=Lax")
            && cookies.contains("Path=/"),
        "{cookies}"
    );
    assert!(
        cookies.contains("lain_console_login=;"),
        "the login cookie is cleared: {cookies}"
    );
    (callback, location(&r))
}

/// The page's form token.
async fn csrf_of(w: &World, b: &Client, path: &str) -> String {
    let page = b
        .get(format!("{}{path}", w.console.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    lain_testkit::html::hidden_field(&page, "csrf").expect("a form token")
}

/// POSTs the scale form of hello's web as `b` with `headers`.
async fn post_scale(
    w: &World,
    b: &Client,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = b.post(format!("{}/ui/apps/hello/procs/web/scale", w.console.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.form(form).send().await.unwrap()
}

/// console's database, read-only, beside the running console.
async fn console_db(w: &World) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}/console.db?mode=ro",
        w.console.dir.path().display()
    );
    sqlx::AnyPool::connect(&url).await.unwrap()
}

async fn audit(w: &World, q: &str) -> Vec<Value> {
    api(&w.sso, "root")
        .get(format!("{}/api/v1/audit?{q}", w.console.base))
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sessions_and_form_checks() {
    let w = world().await;
    let base = w.console.base.clone();

    // Not signed in: to the login, which remembers where to return.
    let b = browser();
    let r = b.get(format!("{base}/ui/apps/hello")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/ui/login?return_to=%2Fui%2Fapps%2Fhello");
    // GET / leads to the web console.
    let r = b.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(
        (r.status(), location(&r).as_str()),
        (StatusCode::SEE_OTHER, "/ui/")
    );

    // alice signs in and lands where she started.
    let (callback, landed) = sign_in(&w, &b, "alice", &format!("{base}/ui/apps/hello")).await;
    assert_eq!(landed, "/ui/apps/hello");
    let r = b.get(format!("{base}/ui/apps/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("form-action 'self' {}", w.sso.issuer)),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("hello") && page.contains("Maintainers"),
        "{page}"
    );
    assert!(!page.contains("read-only"), "alice maintains hello");

    // The callback again (a replay): refused, no new session.
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Sign-in failed"));
    // A callback with another state, or from another issuer.
    let other = browser();
    let r = other.get(format!("{base}/ui/login")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let bad_state = format!(
        "{base}/ui/callback?code=x&state=forged&iss={}",
        w.sso.issuer
    );
    let r = other.get(&bad_state).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("does not belong to this sign-in"));
    let r = other
        .get(format!(
            "{base}/ui/callback?code=x&state=forged&iss=http://evil.example"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Without the login cookie at all.
    let r = browser().get(&bad_state).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not started here"));

    // No open redirect: a foreign return_to lands on /ui/.
    let m = browser();
    let (_, landed) = sign_in(
        &w,
        &m,
        "mallory",
        &format!("{base}/ui/login?return_to=https%3A%2F%2Fevil.example%2F"),
    )
    .await;
    assert_eq!(landed, "/ui/");

    // The JSON API never takes the session cookie.
    let r = b.get(format!("{base}/api/v1/whoami")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Form posts: without the token, with another origin, or by a
    // non-maintainer: 403 pages, each audited as denied, via web.
    let scale = format!("{base}/ui/apps/hello/procs/web/scale");
    let own = [("origin", base.as_str())];
    let r = post_scale(&w, &b, &own, &[("instances", "3")]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("form token"));
    let token = csrf_of(&w, &b, "/ui/apps/hello").await;
    let good = [("instances", "3"), ("csrf", token.as_str())];
    let r = post_scale(&w, &b, &[("origin", "http://evil.example")], &good).await;
    assert_eq!(r.status(), 403);
    let cross = [("sec-fetch-site", "cross-site"), ("origin", base.as_str())];
    let r = post_scale(&w, &b, &cross, &good).await;
    assert_eq!(r.status(), 403);
    // Neither Origin nor Referer.
    let r = post_scale(&w, &b, &[], &good).await;
    assert_eq!(r.status(), 403);
    // mallory's own token and origin, but she does not maintain hello.
    let mtoken = csrf_of(&w, &m, "/ui/").await;
    assert_ne!(mtoken, token, "a token per session");
    let r = post_scale(&w, &m, &own, &[("instances", "3"), ("csrf", &mtoken)]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("does not maintain"));
    // Her confirmation page is refused too, before any form is shown.
    let r = m.get(format!("{scale}?instances=3")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // alice's good post reaches the API (no etcd here: 503, audited).
    let referer = format!("{base}/ui/apps/hello");
    let r = post_scale(&w, &b, &[("referer", referer.as_str())], &good).await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("etcd"));
    let denied = audit(&w, "action=scale&result=denied").await;
    let actors: Vec<&str> = denied
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        ["mallory", "alice", "alice", "alice", "alice"],
        "{denied:?}"
    );
    assert!(
        denied.iter().all(|e| e["detail"]["via"] == "web"),
        "{denied:?}"
    );
    let errors = audit(&w, "action=scale&result=error").await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["detail"]["code"], "etcd_unavailable");

    // What callers control is escaped: a denied post names a target
    // with markup; the admin's audit page shows it as text.
    let r = b
        .post(format!(
            "{base}/ui/apps/hello/procs/%3Cscript%3Ealert(1)%3C%2Fscript%3E/scale"
        ))
        .form(&[("instances", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let root = browser();
    sign_in(&w, &root, "root", &format!("{base}/ui/audit")).await;
    let page = root
        .get(format!("{base}/ui/audit?action=scale"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    // A maintainer reads only her app's audit log; the whole is admins'.
    let r = b.get(format!("{base}/ui/audit")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .get(format!("{base}/ui/audit?app=hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Refresh: 7 s after the last token was issued it is within a minute
    // of expiry, so the next requests refresh it. Eight at once: all are
    // answered, exactly one refresh happens (sso's refresh tokens are
    // single-use and a reuse would end the grant), and the session lives
    // on. The new token needs no refresh for 6 s, ample for the burst.
    tokio::time::sleep(Duration::from_millis(7100)).await;
    let db = console_db(&w).await;
    let version = || async {
        let row: (i64,) =
            sqlx::query_as("SELECT MAX(token_version) FROM web_sessions WHERE subject = 'alice'")
                .fetch_one(&db)
                .await
                .unwrap();
        row.0
    };
    // Earlier requests may have refreshed already on a slow machine.
    let before = version().await;
    let calls = (0..8).map(|_| {
        let (b, url) = (b.clone(), format!("{base}/ui/apps/hello"));
        tokio::spawn(async move { b.get(url).send().await.unwrap().status() })
    });
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert_eq!(version().await, before + 1, "one refresh");
    let r = b.get(format!("{base}/ui/apps/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still signed in after the refresh");

    // Sign out: to sso's end-session endpoint with the ID token, and the
    // session is over here.
    let token = csrf_of(&w, &b, "/ui/").await;
    let r = b
        .post(format!("{base}/ui/logout"))
        .header("origin", &base)
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.starts_with(&format!("{}/logout?", w.sso.issuer)), "{to}");
    assert!(
        to.contains("id_token_hint=") && to.contains("post_logout_redirect_uri="),
        "{to}"
    );
    assert!(set_cookies(&r).join("\n").contains("lain_console=;"));
    let r = b.get(format!("{base}/ui/apps/hello")).send().await.unwrap();
    assert_eq!(r.status(), 303, "signed out");
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM web_sessions WHERE subject = 'alice'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n.0, 0, "alice's session rows are gone");

    // A page that does not exist is an HTML 404, the API's stay JSON.
    let r = root.get(format!("{base}/ui/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

/// Without `[web]`, the pages answer 503 with what to configure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_web_section_pages_say_what_to_configure() {
    let sso = common::TestSso::start().await;
    let console = common::TestConsole::start(&sso.issuer, &[], "", "", "");
    let r = browser()
        .get(format!("{}/ui/", console.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(page.contains("[web]"), "{page}");
}
