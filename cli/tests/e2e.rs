//! `lain` as a user runs it, against a whole cluster of real servers
//! (tests/common): logging in through sso's device flow, the cluster and
//! app commands, and the error paths, each one line with a hint and the
//! right exit code.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use common::{TestCluster, PASSWORD};
use serde_json::Value;

/// `lain login` through the device flow, approved on sso's page by
/// `user` as a browser would.
fn device_login(c: &TestCluster, profile: &str, user: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lain"))
        .args(["login", "--no-browser"])
        .current_dir(c.home.path())
        .env("LAIN_CONFIG_DIR", c.home.path().join(profile))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("enter the code") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "lain login said nothing"
        );
    }
    // "To log in, open URL and enter the code CODE"
    let words: Vec<&str> = line.split_whitespace().collect();
    let uri = words[words.iter().position(|w| *w == "open").unwrap() + 1];
    let code = words.last().unwrap().to_owned();
    assert!(uri.starts_with(&c.sso.url()), "{line}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = browser
            .get(format!("{uri}?user_code={code}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut form: Vec<(String, String)> = page
            .split("<input type=\"hidden\" name=\"")
            .skip(1)
            .filter_map(|rest| {
                let (name, rest) = rest.split_once('"')?;
                let (value, _) = rest.strip_prefix(" value=\"")?.split_once('"')?;
                Some((name.to_owned(), value.replace("&amp;", "&")))
            })
            .collect();
        form.retain(|(k, _)| k != "user_code");
        for (k, v) in [
            ("user_code", code),
            ("confirm_code", "yes"),
            ("username", user),
            ("password", PASSWORD),
            ("action", "approve"),
        ] {
            form.push((k.into(), v.into()));
        }
        let r = browser
            .post(format!("{}/device", c.sso.url()))
            .form(&form)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(body.contains("Device approved"), "{body}");
    });
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Logged in to `e2e` as {user}")),
        "{stdout}"
    );
}

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

    // Logging out revokes and forgets.
    c.ok(home, &["logout"]);
    fails_with(&c.lain(&["whoami"]), "not logged in");
}
