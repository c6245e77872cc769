//! The `sso` binary: admin subcommands on a SQLite database, then the
//! daemon serving what they made. No password is ever a default, and
//! neither passwords nor secrets reach the log.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_sso");
const ADMIN_PW: &str = "first-admin-pw-42";

/// Runs `sso --config CONFIG ARGS` with `stdin`, bounded to 60 s.
fn sso(config: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("sso {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_commands_then_serve() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/sso.db?mode=rwc", dir.path().display());
    let common = format!(
        "database = \"{db}\"\n[password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n"
    );
    let cfg = dir.path().join("cli.toml");
    std::fs::write(&cfg, format!("listen = \"127.0.0.1:1\"\n{common}")).unwrap();

    let (c, out, _) = sso(&cfg, &["migrate"], None);
    assert_eq!(c, 0);
    assert!(out.contains("version 1"), "{out}");

    // No password, no admin.
    let (c, _, err) = sso(&cfg, &["bootstrap"], Some(""));
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("stdin") && err.contains("--password-file"),
        "{err}"
    );
    let (c, _, err) = sso(&cfg, &["bootstrap"], Some("short\n"));
    assert_eq!(c, 1);
    assert!(err.contains("too short"), "{err}");
    let (c, out, err) = sso(&cfg, &["bootstrap"], Some(&format!("{ADMIN_PW}\n")));
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("created admin user admin"), "{out}");
    let (c, out, _) = sso(&cfg, &["bootstrap"], None);
    assert_eq!(c, 0);
    assert!(out.contains("already bootstrapped"), "{out}");

    // Users.
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, "bob-password-1\n").unwrap();
    let (c, _, err) = sso(
        &cfg,
        &[
            "user",
            "add",
            "bob",
            "--email",
            "bob@example.com",
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = sso(&cfg, &["user", "add", "bob"], Some("another-pw-1"));
    assert_eq!(c, 1);
    assert!(
        err.contains("already exists") && err.contains("sso user passwd"),
        "{err}"
    );
    let (c, _, err) = sso(&cfg, &["user", "add", "bad name"], Some("another-pw-1"));
    assert_eq!(c, 1);
    assert!(err.contains("invalid user name"), "{err}");
    let (c, _, _) = sso(&cfg, &["user", "passwd", "bob"], Some("bob-password-2"));
    assert_eq!(c, 0);
    let (c, _, err) = sso(&cfg, &["user", "passwd", "nobody"], Some("bob-password-2"));
    assert_eq!(c, 1);
    assert!(err.contains("no user \"nobody\""), "{err}");
    assert_eq!(
        sso(&cfg, &["user", "add", "carol"], Some("carol-password-1")).0,
        0
    );
    assert_eq!(sso(&cfg, &["user", "disable", "carol"], None).0, 0);
    let (_, out, _) = sso(&cfg, &["user", "list", "-o", "json"], None);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 3);
    assert_eq!(users[2]["name"], "carol");
    assert_eq!(users[2]["disabled"], true);
    assert!(!out.contains("argon2"), "hashes are never shown");

    // Groups: hierarchy, roles, cycles refused.
    assert_eq!(sso(&cfg, &["group", "add", "dev"], None).0, 0);
    assert_eq!(
        sso(&cfg, &["group", "add", "web", "--parent", "dev"], None).0,
        0
    );
    assert_eq!(
        sso(
            &cfg,
            &["group", "add-member", "web", "bob", "--role", "admin"],
            None
        )
        .0,
        0
    );
    let (c, _, err) = sso(&cfg, &["group", "set-parent", "dev", "web"], None);
    assert_eq!(c, 1);
    assert!(err.contains("already inside"), "{err}");
    let (c, _, err) = sso(&cfg, &["group", "add-member", "web", "nobody"], None);
    assert_eq!(c, 1, "{err}");
    let (_, out, _) = sso(&cfg, &["group", "list", "-o", "json"], None);
    let groups: serde_json::Value = serde_json::from_str(&out).unwrap();
    let web = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "web")
        .unwrap();
    assert_eq!(web["parent"], "dev");
    assert_eq!(
        web["members"],
        serde_json::json!([{ "user": "bob", "role": "admin" }])
    );

    // Clients: the secret is shown once and never listed.
    let (c, out, err) = sso(
        &cfg,
        &[
            "client",
            "add",
            "deployd",
            "--kind",
            "confidential",
            "--grant",
            "client_credentials",
            "--audience",
            "console",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    let (c, _, err) = sso(
        &cfg,
        &[
            "client",
            "add",
            "x",
            "--kind",
            "public",
            "--grant",
            "client_credentials",
        ],
        None,
    );
    assert_eq!(c, 1);
    assert!(
        err.contains("public client cannot use client_credentials"),
        "{err}"
    );
    let (c, _, err) = sso(
        &cfg,
        &[
            "client",
            "add",
            "y",
            "--kind",
            "public",
            "--redirect-uri",
            "not a url",
        ],
        None,
    );
    assert_eq!(c, 1);
    assert!(err.contains("invalid redirect URI"), "{err}");
    assert_eq!(
        sso(
            &cfg,
            &[
                "client",
                "add",
                "cli",
                "--kind",
                "public",
                "--redirect-uri",
                REDIRECT
            ],
            None
        )
        .0,
        0
    );
    let (_, out, _) = sso(&cfg, &["client", "list", "-o", "json"], None);
    assert!(!out.contains(&secret));
    assert!(out.contains("\"console\""), "{out}");

    // Unknown config keys are refused with the key named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:1\"\n[tokens]\naccess_token_seconds = 5\n",
    )
    .unwrap();
    let (c, _, err) = sso(&bad, &["migrate"], None);
    assert_eq!(c, 1);
    assert!(
        err.contains("access_token_seconds") && err.contains("bad.toml"),
        "{err}"
    );

    // The daemon serves what the commands made.
    let mut d = lain_testkit::daemon::Daemon::spawn(
        "sso",
        BIN,
        &format!("listen = \"{{listen}}\"\nlog_format = \"json\"\n{common}"),
    )
    .expect("sso starts");
    let issuer = format!("http://{}", d.addr);
    let r = json_of(
        http()
            .post(format!("{issuer}/token"))
            .basic_auth("deployd", Some(&secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    let at = r["access_token"].as_str().expect("token").to_owned();
    assert_eq!(jwt_claims(&at)["aud"], "console");
    // The admin logs in with the bootstrap password and is in `admin`.
    let (auth, verifier) = authorize_url_at(&issuer, "cli", "openid", "");
    let b = browser();
    let authorize = format!("{issuer}/authorize");
    let (st, loc, body) = login_at(&b, &authorize, &auth, "admin", ADMIN_PW, None).await;
    assert_eq!(st, 303, "{body}");
    let code = param(&loc.unwrap(), "code").unwrap();
    let form = code_grant("cli", &code, Some(REDIRECT), &verifier);
    let (_, r) = token_request_at(&format!("{issuer}/token"), &form).await;
    assert_eq!(
        jwt_claims(r["id_token"].as_str().unwrap())["groups"],
        serde_json::json!(["admin"])
    );
    // A disabled user cannot log in.
    let relogin = format!("{auth}&prompt=login");
    let (st, _, _) = login_at(&b, &authorize, &relogin, "carol", "carol-password-1", None).await;
    assert_eq!(st, 401);

    d.proc.stop();
    let log = std::fs::read_to_string(d.proc.log()).unwrap();
    for s in [
        ADMIN_PW,
        secret.as_str(),
        at.as_str(),
        code.as_str(),
        "carol-password-1",
    ] {
        assert!(!log.contains(s), "a secret reached the log");
    }
    assert!(
        log.contains("\"login\"") || log.contains("login"),
        "logins are logged (without secrets)"
    );
    // The database file is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("sso.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "sso.db mode {mode:o}");
}
