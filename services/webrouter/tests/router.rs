//! webrouter against real etcd and real nginx (from the test kit); the app
//! instances are plain HTTP servers on loopback.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use lain_store::secret::{seal_for, SecretsKey};
use lain_store::{
    CertKey, InstanceState, ObservedKey, RouterEventKey, RouterEventKind, RouterKey, Store,
    TlsCertificate,
};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_healthy_instances_and_mountpoints() {
    let (etcd, store) = cluster().await;
    let router = start_router(&etcd, "r1").await;
    let c = client(
        &router,
        &["hello.lain.local", "api.example.com", "nobody.example.com"],
    );
    let port = router.http().port();
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");

    // Not routed yet: the default server answers with a clear 404.
    let (code, body) = get(&c, &url("hello.lain.local", "/")).await;
    assert_eq!(code, 404, "{body}");

    // A proc goes live: its default domain answers through nginx.
    let mut b1 = Backend::start("b1").await;
    put_desired(&store, &desired("hello", "web", &[], false)).await;
    let put_at = Instant::now();
    let rev = put_instance(&store, "hello", "web", "i1", &instance(b1.addr, true)).await;
    wait_for("hello answers", Duration::from_secs(10), || async {
        get(&c, &url("hello.lain.local", "/x?y=1"))
            .await
            .1
            .starts_with("b1 /x?y=1")
    })
    .await;
    let change_to_serving = put_at.elapsed();
    let status = wait_applied(&store, "r1", rev).await;
    assert_eq!(status.upstreams, 1);
    assert_eq!(status.error, None);
    println!("latency etcd change -> nginx serving: {change_to_serving:?}");

    // Request ids reach the app and the client; access logs are JSON.
    let resp = c.get(url("hello.lain.local", "/rid")).send().await.unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(rid.len(), 32, "{rid}");
    assert!(resp.text().await.unwrap().ends_with(&format!("rid={rid}")));
    let resp = c
        .get(url("hello.lain.local", "/rid"))
        .header("x-request-id", "client-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-id-1");
    let log = std::fs::read_to_string(router.config.state_dir.join("access.log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["request_id"], "client-id-1");
    assert_eq!(last["host"], "hello.lain.local");
    assert_eq!(last["status"], 200);

    // A second instance joins the upstream.
    let b2 = Backend::start("b2").await;
    let rev = put_instance(&store, "hello", "web", "i2", &instance(b2.addr, true)).await;
    wait_applied(&store, "r1", rev).await;
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let (_, body) = get(&c, &url("hello.lain.local", "/")).await;
        seen.insert(body.split(' ').next().unwrap().to_owned());
    }
    assert_eq!(seen, BTreeSet::from(["b1".to_owned(), "b2".to_owned()]));

    // An instance turns unhealthy and leaves the upstream.
    let rev = put_instance(&store, "hello", "web", "i1", &instance(b1.addr, false)).await;
    wait_applied(&store, "r1", rev).await;
    for _ in 0..10 {
        let (code, body) = get(&c, &url("hello.lain.local", "/")).await;
        assert_eq!(code, 200);
        assert!(body.starts_with("b2 "), "{body}");
    }
    b1.stop().await;

    // No healthy instance left: a clear 503 page, and nginx still serves
    // everything else.
    let rev = put_instance(&store, "hello", "web", "i2", &instance(b2.addr, false)).await;
    wait_applied(&store, "r1", rev).await;
    let (code, body) = get(&c, &url("hello.lain.local", "/")).await;
    assert_eq!(code, 503);
    assert!(body.contains("hello/web has no healthy instance"), "{body}");
    assert_eq!(router.metric("webrouter_upstreams").await, 0.0);

    // Several path mountpoints on one domain, with the prefix stripped.
    let api = Backend::start("api").await;
    let admin = Backend::start("admin").await;
    put_desired(
        &store,
        &desired(
            "hello",
            "web.api",
            &["api.example.com/v1", "hello.lain.local/api"],
            false,
        ),
    )
    .await;
    put_desired(
        &store,
        &desired(
            "hello",
            "web.admin",
            &["api.example.com/admin/tools"],
            false,
        ),
    )
    .await;
    put_instance(&store, "hello", "web.api", "a1", &instance(api.addr, true)).await;
    let rev = put_instance(
        &store,
        "hello",
        "web.admin",
        "m1",
        &instance(admin.addr, true),
    )
    .await;
    wait_applied(&store, "r1", rev).await;
    assert!(get(&c, &url("api.example.com", "/v1/users?id=3"))
        .await
        .1
        .starts_with("api /users?id=3"));
    assert!(get(&c, &url("api.example.com", "/admin/tools/x"))
        .await
        .1
        .starts_with("admin /x"));
    assert!(get(&c, &url("hello.lain.local", "/api/ping"))
        .await
        .1
        .starts_with("api /ping"));
    // `/v1` without its slash is redirected by nginx to `/v1/`.
    let resp = c.get(url("api.example.com", "/v1")).send().await.unwrap();
    assert_eq!(resp.status(), 301);
    // Paths outside every mountpoint of a domain are not routed.
    assert_eq!(get(&c, &url("api.example.com", "/other")).await.0, 404);
    // The root of hello.lain.local still belongs to web (503: unhealthy).
    assert_eq!(get(&c, &url("hello.lain.local", "/")).await.0, 503);

    let metrics = router.metrics().await;
    for name in [
        "webrouter_config_generation",
        "webrouter_reloads_total",
        "webrouter_reload_failures_total 0",
        "webrouter_seconds_since_last_applied_change",
        "webrouter_upstreams 2",
        "webrouter_nginx_up 1",
    ] {
        assert!(metrics.contains(name), "{name} missing in\n{metrics}");
    }
    assert!(router.metric("webrouter_reloads_total").await >= 5.0);

    // nginx dies: the supervisor starts it again, with the same config.
    let pid = std::fs::read_to_string(router.config.state_dir.join("nginx.pid")).unwrap();
    assert!(Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap()
        .success());
    wait_for("nginx restarted", Duration::from_secs(15), || async {
        router.metric("webrouter_nginx_restarts_total").await >= 1.0
            && router.metric("webrouter_nginx_up").await == 1.0
    })
    .await;
    // The new master serves, and takes reloads.
    let b3 = Backend::start("b3").await;
    let rev = put_instance(&store, "hello", "web", "i3", &instance(b3.addr, true)).await;
    wait_applied(&store, "r1", rev).await;
    assert!(get(&c, &url("hello.lain.local", "/"))
        .await
        .1
        .starts_with("b3 "));
    assert!(get(&c, &url("api.example.com", "/v1/a"))
        .await
        .1
        .starts_with("api /a"));

    let mut router = router;
    router.stop().await;
    // Stopping withdraws the router's leased status at once.
    assert!(store
        .get(&RouterKey::new("r1").unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        get(&c, &url("api.example.com", "/v1/a")).await.0,
        0,
        "nginx stopped"
    );
}

fn openssl_cert(dir: &std::path::Path, file: &str, cn: &str) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{cn}"))
        .arg("-keyout")
        .arg(dir.join(format!("{file}.key")))
        .arg("-out")
        .arg(dir.join(format!("{file}.crt")))
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `openssl s_client` sees on a TLS handshake with `addr`, sending
/// `sni` (none when `None`): its output, with spaces removed.
fn handshake(addr: std::net::SocketAddr, sni: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client").arg("-connect").arg(addr.to_string());
    match sni {
        Some(name) => cmd.arg("-servername").arg(name),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.replace(' ', "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_tls_and_a_bad_certificate() {
    let (etcd, store) = cluster().await;
    let router = start_router(&etcd, "r-tls").await;
    let certs = router.certs_dir();
    openssl_cert(&certs, "secure.example.com", "secure.example.com");
    openssl_cert(&certs, "_.wild.example.com", "*.wild.example.com");

    let b = Backend::start("tls").await;
    put_desired(
        &store,
        &desired("sec", "web.a", &["secure.example.com"], true),
    )
    .await;
    put_desired(
        &store,
        &desired("sec", "web.b", &["x.wild.example.com/p"], false),
    )
    .await;
    put_instance(&store, "sec", "web.a", "i1", &instance(b.addr, true)).await;
    let rev = put_instance(&store, "sec", "web.b", "i1", &instance(b.addr, true)).await;
    wait_applied(&store, "r-tls", rev).await;

    let (http, https) = (router.http().port(), router.https().port());
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .resolve("secure.example.com", router.https())
        .resolve("x.wild.example.com", router.https())
        .build()
        .unwrap();
    let plain = client(&router, &["secure.example.com", "x.wild.example.com"]);

    // https_only: plain HTTP is redirected to HTTPS, keeping the URI.
    wait_for(
        "certificates picked up",
        Duration::from_secs(10),
        || async {
            c.get(format!("https://secure.example.com:{https}/"))
                .send()
                .await
                .is_ok()
                && c.get(format!("https://x.wild.example.com:{https}/p/"))
                    .send()
                    .await
                    .is_ok()
        },
    )
    .await;
    let resp = plain
        .get(format!("http://secure.example.com:{http}/a?b=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        format!("https://secure.example.com:{https}/a?b=1").as_str()
    );
    // TLS with the domain's certificate, and with a wildcard.
    let resp = c
        .get(format!("https://secure.example.com:{https}/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().starts_with("tls /a"));
    let resp = c
        .get(format!("https://x.wild.example.com:{https}/p/q"))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().starts_with("tls /q"));
    // Each name gets its own certificate: one is loaded once by the TLS
    // default server and shared, the other by its own server. Names with
    // no certificate, and handshakes without SNI, are rejected.
    let tls = router.https();
    // A fresh connection may still land on a worker of the configuration
    // before the certificates (nginx's old workers finish their accepts
    // after a reload): retry, bounded.
    for (sni, subject) in [
        ("secure.example.com", "subject=CN=secure.example.com"),
        ("x.wild.example.com", "subject=CN=*.wild.example.com"),
    ] {
        let started = std::time::Instant::now();
        let mut seen = handshake(tls, Some(sni));
        while !seen.contains(subject) && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(200));
            seen = handshake(tls, Some(sni));
        }
        assert!(seen.contains(subject), "{seen}");
    }
    for sni in [Some("nope.example.com"), Some("y.wild.example.com"), None] {
        let seen = handshake(tls, sni);
        assert!(seen.contains("unrecognizedname"), "{sni:?}: {seen}");
        assert!(!seen.contains("subject="), "{sni:?}: {seen}");
    }
    // Without https_only, plain HTTP is served too.
    assert!(
        get(&plain, &format!("http://x.wild.example.com:{http}/p/q"))
            .await
            .1
            .starts_with("tls /q")
    );
    // Key files are private.
    let mut keys = 0;
    for e in std::fs::read_dir(router.config.state_dir.join("certs")).unwrap() {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "key") {
            keys += 1;
            assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    assert_eq!(keys, 2);

    // A bad certificate is refused by nginx -t; the old config keeps serving.
    std::fs::write(
        certs.join("secure.example.com.crt"),
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    wait_for(
        "the failure is counted",
        Duration::from_secs(10),
        || async { router.metric("webrouter_reload_failures_total").await >= 1.0 },
    )
    .await;
    let status = store
        .get(&RouterKey::new("r-tls").unwrap())
        .await
        .unwrap()
        .unwrap()
        .value;
    let error = status.error.expect("the router reports the failure");
    assert!(error.contains("nginx rejected"), "{error}");
    assert!(status.applied_revision >= rev);
    // ... and raises an event under the router's prefix.
    let events = wait_events(&store, "r-tls", RouterEventKind::ConfigRejected).await;
    let rejected = events
        .iter()
        .find(|e| e.kind == RouterEventKind::ConfigRejected)
        .unwrap();
    assert_eq!(rejected.severity, lain_store::Severity::Error);
    assert_eq!(rejected.router, "r-tls");
    assert!(
        rejected.message.contains("nginx rejected"),
        "{}",
        rejected.message
    );
    assert!(rejected.message.chars().count() <= 1001);
    let resp = c
        .get(format!("https://secure.example.com:{https}/still"))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().starts_with("tls /still"));
    // A change in etcd meanwhile is not applied (the config stays refused)
    // and the old one still serves.
    let b2 = Backend::start("tls2").await;
    put_instance(&store, "sec", "web.b", "i1", &instance(b2.addr, true)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        get(&plain, &format!("http://x.wild.example.com:{http}/p/q"))
            .await
            .1
            .starts_with("tls /q")
    );

    // Fixing the certificate applies everything.
    openssl_cert(&certs, "secure.example.com", "secure.example.com");
    wait_for("fixed config applied", Duration::from_secs(10), || async {
        get(&plain, &format!("http://x.wild.example.com:{http}/p/q"))
            .await
            .1
            .starts_with("tls2 /q")
    })
    .await;
    // The status is published right after the reload.
    wait_for("the error is cleared", Duration::from_secs(5), || async {
        let s = store
            .get(&RouterKey::new("r-tls").unwrap())
            .await
            .unwrap()
            .unwrap()
            .value;
        s.error.is_none()
    })
    .await;
    wait_events(&store, "r-tls", RouterEventKind::ConfigRecovered).await;
}

/// Waits until an event of `kind` is under the router's prefix; returns
/// all of them, oldest first.
async fn wait_events(
    store: &Store,
    router: &str,
    kind: RouterEventKind,
) -> Vec<lain_store::RouterEvent> {
    let prefix = RouterEventKey::of_router(router).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = store.list(&prefix).await.unwrap();
        let mut items = listing.items;
        items.sort_by(|a, b| a.key.cmp(&b.key));
        // Leased on the router's lease.
        assert!(items.iter().all(|e| e.lease.is_some()));
        let events: Vec<_> = items.into_iter().map(|e| e.value).collect();
        if events.iter().any(|e| e.kind == kind) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind:?} event for {router}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_secrets_key(dir: &std::path::Path, key: &SecretsKey, mode: u32) -> std::path::PathBuf {
    let path = dir.join("secrets.key");
    std::fs::write(&path, key.to_base64().as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_certificates_from_etcd() {
    let (etcd, store) = cluster().await;
    let secrets = SecretsKey::generate();

    // A key file others can read is refused before anything starts.
    let loose = tempfile::tempdir().unwrap();
    let mut config = router_config(&etcd, "r-loose", &loose);
    config.secrets_key_file = Some(write_secrets_key(loose.path(), &secrets, 0o644));
    let e = webrouter::run(config, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("chmod 600"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let mut config = router_config(&etcd, "r-etcd", &dir);
    config.secrets_key_file = Some(write_secrets_key(dir.path(), &secrets, 0o600));
    let router = start_router_with(config, dir).await;

    // The operator's certificate, made outside the router's certs_dir.
    let made = tempfile::tempdir().unwrap();
    openssl_cert(made.path(), "c", "vault.example.com");
    let cert_pem = std::fs::read_to_string(made.path().join("c.crt")).unwrap();
    let key_pem = std::fs::read(made.path().join("c.key")).unwrap();
    let at = CertKey::new("vault.example.com").unwrap();
    let good = TlsCertificate {
        domains: vec!["vault.example.com".into()],
        cert_pem,
        key: seal_for(&secrets, &at, &key_pem).unwrap(),
        not_after_ms: None,
    };
    // Nothing in etcd holds the key in plaintext.
    let stored = serde_json::to_string(&good).unwrap();
    assert!(!stored.contains("PRIVATE KEY"));
    store.put(&at, &good).await.unwrap();

    let b = Backend::start("vault").await;
    put_desired(
        &store,
        &desired("vault", "web", &["vault.example.com"], true),
    )
    .await;
    let rev = put_instance(&store, "vault", "web", "i1", &instance(b.addr, true)).await;
    wait_applied(&store, "r-etcd", rev).await;
    let https = router.https().port();
    let c = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("vault.example.com", router.https())
        .build()
        .unwrap();
    let url = format!("https://vault.example.com:{https}/s");
    wait_for(
        "HTTPS with the sealed certificate",
        Duration::from_secs(10),
        || async { get(&c, &url).await.1.starts_with("vault /s") },
    )
    .await;
    // The opened key is written 0600, byte for byte.
    let key_files = || {
        std::fs::read_dir(router.config.state_dir.join("certs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect::<Vec<_>>()
    };
    let keys = key_files();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(std::fs::read(&keys[0]).unwrap(), key_pem);
    assert_eq!(
        std::fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let status = store
        .get(&RouterKey::new("r-etcd").unwrap())
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(status.error, None);

    // A tampered replacement does not open: refused, reported, counted,
    // and the previous certificate keeps serving.
    let mut tampered = good.clone();
    tampered.key.ciphertext_b64 = seal_for(&secrets, &at, b"not the key")
        .unwrap()
        .ciphertext_b64;
    tampered.cert_pem.push('\n');
    store.put(&at, &tampered).await.unwrap();
    wait_for(
        "the bad certificate is counted",
        Duration::from_secs(10),
        || async { router.metric("webrouter_certificate_errors").await >= 1.0 },
    )
    .await;
    assert!(router.metric("webrouter_certificate_failures_total").await >= 1.0);
    wait_for("the router reports it", Duration::from_secs(10), || async {
        let s = store
            .get(&RouterKey::new("r-etcd").unwrap())
            .await
            .unwrap()
            .unwrap()
            .value;
        s.error.is_some_and(|e| {
            e.contains("/lain/certs/vault.example.com") && e.contains("previous version")
        })
    })
    .await;
    let events = wait_events(&store, "r-etcd", RouterEventKind::CertificateRejected).await;
    assert!(
        events.iter().any(|e| e.message.contains("does not open")),
        "{events:?}"
    );
    assert!(get(&c, &url).await.1.starts_with("vault /s"));
    assert_eq!(std::fs::read(&key_files()[0]).unwrap(), key_pem);

    // A sealed key moved from another certificate does not open either.
    let other = CertKey::new("other.example.com").unwrap();
    let moved = TlsCertificate {
        domains: vec!["other.example.com".into()],
        ..good.clone()
    };
    store.put(&other, &moved).await.unwrap();
    wait_for(
        "the moved key is refused",
        Duration::from_secs(10),
        || async { router.metric("webrouter_certificate_errors").await >= 2.0 },
    )
    .await;

    // Putting the good one back clears the error.
    store.put(&at, &good).await.unwrap();
    store.delete(&other).await.unwrap();
    wait_for("the error is cleared", Duration::from_secs(10), || async {
        let s = store
            .get(&RouterKey::new("r-etcd").unwrap())
            .await
            .unwrap()
            .unwrap()
            .value;
        s.error.is_none()
    })
    .await;
    wait_events(&store, "r-etcd", RouterEventKind::ConfigRecovered).await;
    assert!(get(&c, &url).await.1.starts_with("vault /s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_and_webrouter_resumes() {
    let mut etcd = start_etcd();
    let store = Store::connect(&[etcd.endpoint()]).await.unwrap();
    put_cluster(&store).await;
    let router = start_router(&etcd, "r-etcd").await;
    let c = client(&router, &["hello.lain.local"]);
    let url = format!("http://hello.lain.local:{}/", router.http().port());
    let b1 = Backend::start("b1").await;
    put_desired(&store, &desired("hello", "web", &[], false)).await;
    let rev = put_instance(&store, "hello", "web", "i1", &instance(b1.addr, true)).await;
    wait_applied(&store, "r-etcd", rev).await;

    // etcd goes away: nginx keeps serving.
    tokio::task::block_in_place(|| etcd.kill());
    for _ in 0..5 {
        assert!(get(&c, &url).await.1.starts_with("b1 "));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| etcd.restart()).expect("etcd restarts");

    // A change after the restart reaches nginx.
    let b2 = Backend::start("b2").await;
    let store = Store::connect(&[etcd.endpoint()]).await.unwrap();
    put_instance(&store, "hello", "web", "i2", &instance(b2.addr, true)).await;
    let rev = put_instance(&store, "hello", "web", "i1", &instance(b1.addr, false)).await;
    wait_applied(&store, "r-etcd", rev).await;
    for _ in 0..5 {
        assert!(get(&c, &url).await.1.starts_with("b2 "));
    }
}

/// Replaces every instance of a proc one by one, as deployd does (start
/// the new one, wait until every router serves it, take the old one out,
/// wait again, stop it), under a steady request load through one of two
/// routers. No request may fail, and both routers converge on one config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_replacement_under_load_drops_nothing() {
    let (etcd, store) = cluster().await;
    let ra = start_router(&etcd, "ra").await;
    let rb = start_router(&etcd, "rb").await;
    put_desired(&store, &desired("roll", "web", &[], false)).await;
    let mut olds = Vec::new();
    let mut rev = 0;
    for i in 0..3 {
        let b = Backend::start(&format!("old{i}")).await;
        rev = put_instance(
            &store,
            "roll",
            "web",
            &format!("old{i}"),
            &instance(b.addr, true),
        )
        .await;
        olds.push(b);
    }
    wait_applied(&store, "ra", rev).await;
    wait_applied(&store, "rb", rev).await;

    let c = client(&ra, &["roll.lain.local"]);
    let url = format!("http://roll.lain.local:{}/load", ra.http().port());
    assert_eq!(get(&c, &url).await.0, 200);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // Bounded: at most 20,000 requests or 60 s, to loopback only.
    let load = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(60);
            while ok + (failed.len() as u32) < 20_000 && Instant::now() < deadline {
                if *stop_rx.borrow_and_update() {
                    break;
                }
                let (code, body) = get(&c, &url).await;
                if code == 200 {
                    ok += 1;
                } else {
                    failed.push(format!("{code} {body}"));
                }
            }
            (ok, failed)
        }
    });

    let mut news = Vec::new();
    for (i, mut old) in olds.into_iter().enumerate() {
        let new = Backend::start(&format!("new{i}")).await;
        let rev = put_instance(
            &store,
            "roll",
            "web",
            &format!("new{i}"),
            &instance(new.addr, true),
        )
        .await;
        wait_applied(&store, "ra", rev).await;
        wait_applied(&store, "rb", rev).await;
        let key = ObservedKey::new("roll", "web", &format!("old{i}")).unwrap();
        let mut draining = instance(old.addr, true);
        draining.state = InstanceState::Draining;
        let rev = store.put(&key, &draining).await.unwrap();
        wait_applied(&store, "ra", rev).await;
        wait_applied(&store, "rb", rev).await;
        old.stop().await;
        store.delete(&key).await.unwrap();
        news.push(new);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send_replace(true);
    let (ok, failed) = load.await.unwrap();
    println!(
        "rolling replacement: {ok} requests succeeded, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failed requests: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "too few requests to mean anything: {ok}");
    for _ in 0..10 {
        assert!(get(&c, &url).await.1.starts_with("new"));
    }

    // Both routers converged on the same configuration. (A write of our
    // own marks the point: the routers' status writes move the revision.)
    let rev = put_cluster(&store).await;
    let a = wait_applied(&store, "ra", rev).await;
    let b = wait_applied(&store, "rb", rev).await;
    assert_eq!(a.config_hash, b.config_hash);
    assert_eq!(a.upstreams, 1);
    assert_eq!(rb.metric("webrouter_upstreams").await, 1.0);
}

/// The figure for docs/benchmarks.md: from an etcd write to nginx serving
/// it (goal: under 1 s). Each round points the proc at the other backend
/// and polls until the answer changes. Asserts only a generous bound; the
/// printed numbers are the measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_to_serving_latency() {
    let (etcd, store) = cluster().await;
    let router = start_router(&etcd, "r-lat").await;
    let c = client(&router, &["lat.lain.local"]);
    let url = format!("http://lat.lain.local:{}/", router.http().port());
    let backends = [Backend::start("even").await, Backend::start("odd").await];
    put_desired(&store, &desired("lat", "web", &[], false)).await;
    let mut samples = Vec::new();
    for round in 0..10 {
        let b = &backends[round % 2];
        let t = Instant::now();
        put_instance(&store, "lat", "web", "i1", &instance(b.addr, true)).await;
        wait_for("the change is served", Duration::from_secs(5), || async {
            get(&c, &url).await.1.starts_with(&format!("{} ", b.name))
        })
        .await;
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "etcd change -> nginx serving: median {:?}, max {:?} (debounce {} ms)",
        samples[samples.len() / 2],
        samples[samples.len() - 1],
        router.config.debounce_ms
    );
    assert!(samples[samples.len() / 2] < Duration::from_secs(1));
}

/// A reload that fails for a passing reason (nginx not running) is retried
/// with backoff: once the supervisor has nginx back, the change goes live
/// without any further write to etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_is_retried_without_a_new_change() {
    let (etcd, store) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = router_config(&etcd, "r-retry", &dir);
    // nginx that will not start while `hold` exists (`nginx -t` still runs).
    let hold = dir.path().join("hold");
    let wrapper = dir.path().join("nginx-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" -t \"*) exec nginx \"$@\";; esac\n\
             [ -e '{}' ] && exit 1\nexec nginx \"$@\"\n",
            hold.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    config.nginx_binary = wrapper;
    let router = start_router_with(config, dir).await;
    let c = client(&router, &["hello.lain.local"]);
    let url = format!("http://hello.lain.local:{}/", router.http().port());
    let b1 = Backend::start("b1").await;
    put_desired(&store, &desired("hello", "web", &[], false)).await;
    let rev = put_instance(&store, "hello", "web", "i1", &instance(b1.addr, true)).await;
    wait_applied(&store, "r-retry", rev).await;

    // nginx dies and cannot come back for now.
    std::fs::write(&hold, "").unwrap();
    let pid: i32 = std::fs::read_to_string(router.dir.path().join("state/nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    // A change arrives meanwhile: its reload fails (nginx not running).
    let b2 = Backend::start("b2").await;
    put_instance(&store, "hello", "web", "i2", &instance(b2.addr, true)).await;
    let rev = put_instance(&store, "hello", "web", "i1", &instance(b1.addr, false)).await;
    wait_for("a failed reload", Duration::from_secs(30), || async {
        router.metric("webrouter_reload_failures_total").await >= 1.0
    })
    .await;

    // nginx can start again; no further etcd write.
    std::fs::remove_file(&hold).unwrap();
    let status = wait_applied(&store, "r-retry", rev).await;
    assert_eq!(status.error, None);
    for _ in 0..5 {
        assert!(get(&c, &url).await.1.starts_with("b2 "));
    }
}

/// A long request held open across two reloads: the worker serving it is
/// still draining when the second reload comes, and that reload must not
/// wait for it (it no longer accepts). Both applies go live promptly, and
/// the long request still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_do_not_wait_for_workers_draining_from_an_earlier_one() {
    let (etcd, store) = cluster().await;
    let router = start_router(&etcd, "r-drain").await;

    // An instance that answers /slow after 8 s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = listener.local_addr().unwrap();
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let app = axum::Router::new().fallback(move || {
        let s = s.clone();
        async move {
            s.notify_one();
            tokio::time::sleep(Duration::from_secs(8)).await;
            "slow done"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    put_desired(&store, &desired("hello", "web", &[], false)).await;
    let rev = put_instance(&store, "hello", "web", "i1", &instance(slow_addr, true)).await;
    wait_applied(&store, "r-drain", rev).await;

    let long = reqwest::Client::builder()
        .resolve("hello.lain.local", router.http())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("http://hello.lain.local:{}/slow", router.http().port());
    let request = tokio::spawn(async move {
        let r = long.get(url).send().await.expect("the long request");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    tokio::time::timeout(Duration::from_secs(5), started.notified())
        .await
        .expect("the long request reached the instance");

    let b1 = Backend::start("b1").await;
    let changes = [
        instance(b1.addr, true),
        // The second reload: the worker holding /slow is draining now.
        instance(b1.addr, false),
    ];
    for (i, inst) in changes.iter().enumerate() {
        let at = Instant::now();
        let rev = put_instance(&store, "hello", "web", "i2", inst).await;
        wait_applied(&store, "r-drain", rev).await;
        let took = at.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "apply {} took {took:?}",
            i + 1
        );
    }
    assert_eq!(router.metric("webrouter_reload_failures_total").await, 0.0);
    assert!(!request.is_finished(), "the long request was still open");

    let (code, body) = request.await.unwrap();
    assert_eq!((code, body.as_str()), (200, "slow done"));
}
