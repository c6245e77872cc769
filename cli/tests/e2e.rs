//! `lain` as a user runs it, against a whole cluster of real servers
//! (tests/common): logging in through sso's device flow, the cluster and
//! app commands, and the error paths, each one line with a hint and the
//! right exit code.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{device_login, write_app, TestCluster};
use serde_json::Value;

/// Exit code 1 and exactly one line on stderr, `error: ...; hint: ...`
/// containing `want`.
fn fails_with(out: &std::process::Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("; hint: "),
        "{err}"
    );
    assert!(lines[0].contains(want), "want {want:?} in {err}");
}

#[test]
fn cluster_login_apps_and_error_paths() {
    let c = TestCluster::start();
    let home = c.home.path();

    // Before any cluster: one line and a hint, exit 1.
    fails_with(&c.lain(&["app", "list"]), "no cluster is configured");
    // Usage errors exit 2.
    assert_eq!(c.lain(&["deploy", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        c.lain(&["cluster", "add", "bad name", "--console", "http://x"])
            .status
            .code(),
        Some(2)
    );
    // An unreachable console.
    let dead = format!("http://127.0.0.1:{}", lain_testkit::free_port());
    fails_with(
        &c.lain(&["cluster", "add", "gone", "--console", &dead]),
        "cannot reach console",
    );

    let out = c.ok(
        home,
        &["cluster", "add", "e2e", "--console", &c.console.url()],
    );
    assert!(
        out.contains("Added cluster `e2e`") && out.contains("the default"),
        "{out}"
    );
    let list: Value =
        serde_json::from_str(&c.ok(home, &["cluster", "list", "-o", "json"])).unwrap();
    assert_eq!(list[0]["registry"], c.registry.host());
    assert_eq!(list[0]["logged_in"], false);
    fails_with(&c.lain(&["app", "list"]), "not logged in to cluster `e2e`");

    device_login(&c, "lain", "admin");
    let creds = c.home.path().join("lain/credentials.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let me: Value = serde_json::from_str(&c.ok(home, &["whoami", "-o", "json"])).unwrap();
    assert_eq!(
        (me["subject"].as_str(), me["admin"].as_bool()),
        (Some("admin"), Some(true))
    );

    // Apps and maintainers, tables and JSON.
    c.ok(home, &["app", "create", "hello"]);
    let table = c.ok(home, &["app", "list"]);
    assert!(
        table.starts_with("NAME") && table.contains("hello"),
        "{table}"
    );
    let apps: Value = serde_json::from_str(&c.ok(home, &["app", "list", "-o", "json"])).unwrap();
    assert_eq!(apps[0]["created_by"], "admin");
    c.ok(home, &["maintainer", "add", "hello", "client:ci"]);
    let ms: Value =
        serde_json::from_str(&c.ok(home, &["maintainer", "list", "hello", "-o", "json"])).unwrap();
    assert_eq!(ms.as_array().unwrap().len(), 2);
    fails_with(&c.lain(&["app", "create", "hello"]), "hello");

    // Secrets come from stdin or a file, never argv; values never come back.
    let out = c.lain_in(
        home,
        &["secret", "set", "TOKEN", "--app", "hello"],
        Some(b"s3cr3t-value"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = home.join("cert.pem");
    std::fs::write(&file, "PEM-CONTENT").unwrap();
    c.ok(
        home,
        &[
            "secret",
            "set",
            "CERT",
            "--app",
            "hello",
            "--file",
            &file.to_string_lossy(),
        ],
    );
    let list = c.ok(home, &["secret", "list", "--app", "hello"]);
    assert!(
        list.contains("TOKEN") && list.contains("CERT") && !list.contains("s3cr3t"),
        "{list}"
    );
    fails_with(
        &c.lain_in(
            home,
            &["secret", "set", "EMPTY", "--app", "hello"],
            Some(b""),
        ),
        "empty",
    );
    c.ok(home, &["secret", "rm", "CERT", "--app", "hello"]);

    // bob maintains nothing: the maintainer right is missing, until he
    // is added.
    let console = c.console.url();
    let bob = |args: &[&str]| c.lain_as("bob", home, args, None);
    assert!(bob(&["cluster", "add", "e2e", "--console", &console])
        .status
        .success());
    device_login(&c, "bob", "bob");
    fails_with(
        &bob(&["scale", "web", "--app", "hello", "-n", "2"]),
        "`bob` does not maintain app `hello`",
    );
    fails_with(
        &bob(&["secret", "list", "--app", "hello"]),
        "lain maintainer add",
    );
    c.ok(home, &["maintainer", "add", "hello", "bob"]);
    assert!(bob(&["secret", "list", "--app", "hello"]).status.success());
    c.ok(home, &["maintainer", "rm", "hello", "bob"]);

    // An expired login: the stored token is replaced by an expired one
    // without a refresh token.
    let saved = std::fs::read_to_string(&creds).unwrap();
    std::fs::write(
        &creds,
        "[clusters.e2e]\nkind = \"user\"\naccess_token = \"x.eyJleHAiOjF9.y\"\nexpires_at = 1\n",
    )
    .unwrap();
    fails_with(
        &c.lain(&["app", "list"]),
        "login to cluster `e2e` has expired",
    );
    std::fs::write(&creds, saved).unwrap();

    // A lain.yaml error names file:line:col.
    std::fs::write(
        home.join("lain.yaml"),
        "appname: hello\nbuild:\n  base: x\nweb:\n  port: nope\n",
    )
    .unwrap();
    let out = c.lain_in(home, &["validate"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("lain.yaml:5:"),
        "{out:?}"
    );

    // cluster status names the endpoints and every daemon.
    let status = c.ok(home, &["cluster", "status"]);
    for want in [
        c.console.url(),
        c.sso.url(),
        c.registry.host(),
        "deployd-e2e".into(),
        "router-e2e".into(),
    ] {
        assert!(status.contains(&want), "{want} not in:\n{status}");
    }
    let status: Value =
        serde_json::from_str(&c.ok(home, &["cluster", "status", "-o", "json"])).unwrap();
    assert_eq!(status["etcd"]["reachable"], true);
    assert_eq!(status["etcd"]["members"][0]["healthy"], true, "{status}");

    // An access token past its expiry is renewed with the refresh token,
    // and the new one saved.
    let before = std::fs::read_to_string(&creds).unwrap();
    let stale: String = before
        .lines()
        .map(|l| {
            if l.starts_with("expires_at") {
                "expires_at = 1".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&creds, stale).unwrap();
    c.ok(home, &["whoami"]);
    let after = std::fs::read_to_string(&creds).unwrap();
    assert!(!after.contains("expires_at = 1\n"), "not renewed: {after}");
    assert_ne!(after, before, "a new access token is saved");

    // Logging out revokes and forgets; the revoked refresh token no
    // longer works at sso.
    let refresh = before
        .lines()
        .find_map(|l| l.strip_prefix("refresh_token = "))
        .map(|t| t.trim_matches('"').to_owned());
    assert!(
        refresh.is_some(),
        "the device flow gave a refresh token: {before}"
    );
    c.ok(home, &["logout"]);
    fails_with(&c.lain(&["whoami"]), "not logged in");

    // Scripts: a client-credentials profile (the secret on stdin), which
    // renews its own token, and a token on stdin.
    let out = c.lain_in(
        home,
        &["login", "--client-id", "ci", "--client-secret-stdin"],
        Some(c.ci_secret.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me: Value = serde_json::from_str(&c.ok(home, &["whoami", "-o", "json"])).unwrap();
    assert_eq!(
        (me["subject"].as_str(), me["kind"].as_str()),
        (Some("client:ci"), Some("daemon"))
    );
    let saved = std::fs::read_to_string(&creds).unwrap();
    assert!(saved.contains("kind = \"client\""), "{saved}");
    let token = saved
        .lines()
        .find_map(|l| l.strip_prefix("access_token = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    c.ok(home, &["logout"]);
    let out = c.lain_in(home, &["login", "--token-stdin"], Some(token.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.ok(home, &["whoami"]).contains("client:ci"));
    fails_with(
        &c.lain_in(home, &["login", "--token-stdin"], Some(b"not-a-token")),
        "not valid",
    );
    // The working login was kept.
    assert!(c.ok(home, &["whoami"]).contains("client:ci"));
    // The wrong secret is refused by sso, and nothing is saved.
    fails_with(
        &c.lain_in(
            home,
            &["login", "--client-id", "ci", "--client-secret-stdin"],
            Some(b"wrong"),
        ),
        "sso refused client `ci`",
    );
}

#[test]
fn build_push_deploy_scale_rollback_and_logs() {
    let c = TestCluster::start();
    // The node: this test's dockerd, registered through console.
    c.admin_with_node("e2e");
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();
    write_app(dir, 1);
    c.ok(dir, &["app", "create", "hello"]);
    c.ok(dir, &["build"]);
    let out = c.ok(dir, &["push"]);
    assert!(out.contains("Registered release"), "{out}");
    // The node must pull the release from the registry (token auth, with
    // deployd's own client): take the image off the engine.
    let pushed: Value = serde_json::from_str(&c.ok(dir, &["releases", "-o", "json"])).unwrap();
    let image = pushed[0]["image"].as_str().unwrap().to_owned();
    let local = format!("hello:release-{}", pushed[0]["version"].as_str().unwrap());
    c.docker
        .docker(&["rmi", &image, &local])
        .expect("docker rmi");
    assert!(c.docker.docker(&["image", "inspect", &image]).is_err());
    let out = c.ok(dir, &["deploy"]);
    assert!(
        out.contains("web answers at http://hello.lain.local"),
        "{out}"
    );
    assert!(out.contains("succeeded"), "{out}");
    // Plain lines, one per instance state (stdout is not a terminal).
    assert!(
        out.lines()
            .any(|l| l.starts_with("web #1") && l.contains("running healthy")),
        "{out}"
    );
    let serves = |want: &str| {
        c.through_router("hello.lain.local", "/index.html")
            .is_some_and(|(code, body)| code == 200 && body.contains(want))
    };
    c.wait("v1 through the router", Duration::from_secs(20), || {
        serves("hello v1\nprepared")
    });
    assert!(
        c.docker.docker(&["image", "inspect", &image]).is_ok(),
        "deployd pulled it"
    );

    // Scale to 3.
    c.ok(dir, &["scale", "web", "--num-instances", "3"]);
    let ps: Value = serde_json::from_str(&c.ok(dir, &["ps", "-o", "json"])).unwrap();
    let running = ps["procs"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "running")
        .count();
    assert_eq!(running, 3, "{ps}");
    // The node list counts them (deployd publishes each node's count).
    c.wait(
        "node-1 counted 3 instances",
        Duration::from_secs(10),
        || {
            let nodes: Value =
                serde_json::from_str(&c.ok(dir, &["node", "list", "-o", "json"])).unwrap();
            nodes[0]["instances"] == 3
        },
    );

    // TLS: an admin stores a certificate for the app's domain; the router
    // serves HTTPS with it (curl trusts only that certificate).
    let tls = tempfile::tempdir().unwrap();
    let (cert, key) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    common::self_signed(&key, &cert, "hello", Some("hello.lain.local"));
    c.ok(
        dir,
        &[
            "cert",
            "set",
            "hello-lain-local",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let listed = c.ok(dir, &["cert", "list"]);
    assert!(listed.contains("hello.lain.local"), "{listed}");
    let https = |cert: &Path| {
        Command::new("curl")
            .args(["-sf", "--max-time", "5", "--cacert"])
            .arg(cert)
            .args([
                "--resolve",
                &format!("hello.lain.local:{}:127.0.0.1", c.https.port()),
                &format!("https://hello.lain.local:{}/index.html", c.https.port()),
            ])
            .output()
            .unwrap()
    };
    c.wait(
        "HTTPS with the stored certificate",
        Duration::from_secs(20),
        || {
            let out = https(&cert);
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hello v1")
        },
    );
    c.ok(dir, &["cert", "rm", "hello-lain-local"]);
    c.wait(
        "the certificate no longer served",
        Duration::from_secs(20),
        || !https(&cert).status.success(),
    );

    // v2, deployed; then rolled back to v1.
    write_app(dir, 2);
    c.ok(dir, &["build"]);
    c.ok(dir, &["push"]);
    let releases: Value = serde_json::from_str(&c.ok(dir, &["releases", "-o", "json"])).unwrap();
    assert_eq!(releases.as_array().unwrap().len(), 2);
    c.ok(dir, &["deploy"]);
    c.wait("v2 through the router", Duration::from_secs(20), || {
        serves("hello v2")
    });
    let out = c.ok(dir, &["rollback"]);
    assert!(out.contains("succeeded"), "{out}");
    c.wait(
        "v1 again through the router",
        Duration::from_secs(20),
        || serves("hello v1"),
    );

    // Logs of an instance, the last lines.
    let logs = c.ok(dir, &["logs", "web", "--tail", "50"]);
    assert!(logs.contains("web-started"), "{logs}");
    let table = c.ok(dir, &["ps"]);
    assert!(table.contains("web #3"), "{table}");
    let events = c.ok(dir, &["events"]);
    assert!(events.starts_with("TIME"), "{events}");

    // One proc of a named release; rollback to a named release.
    let v1 = releases[1]["version"].as_str().unwrap().to_owned();
    let v2 = releases[0]["version"].as_str().unwrap().to_owned();
    c.ok(dir, &["deploy", "-v", &v2, "-p", "web"]);
    c.wait("v2 again", Duration::from_secs(20), || serves("hello v2"));
    c.ok(dir, &["rollback", "--to", &v1]);
    c.wait("v1 by name", Duration::from_secs(20), || serves("hello v1"));
    fails_with(&c.lain_in(dir, &["deploy", "-v", "1-nope"], None), "1-nope");

    // Nodes: cordon shows, a node with instances cannot be removed.
    c.ok(dir, &["node", "cordon", "node-1"]);
    let nodes: Value = serde_json::from_str(&c.ok(dir, &["node", "list", "-o", "json"])).unwrap();
    assert_eq!(nodes[0]["schedulable"], false, "{nodes}");
    assert!(c.ok(dir, &["node", "list"]).contains("cordoned"));
    fails_with(
        &c.lain_in(dir, &["node", "rm", "node-1"], None),
        "drain it first",
    );
    c.ok(dir, &["node", "uncordon", "node-1"]);

    // Undeploy ends when the instances have stopped.
    c.ok(dir, &["undeploy"]);
    let ps: Value = serde_json::from_str(&c.ok(dir, &["ps", "-o", "json"])).unwrap();
    assert!(ps["procs"].as_array().unwrap().is_empty(), "{ps}");
    c.wait(
        "the app gone from the router",
        Duration::from_secs(20),
        || !serves("hello"),
    );
}
