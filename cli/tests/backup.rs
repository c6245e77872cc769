//! `lain backup`: its help and argument errors (no cluster needed), and
//! end to end against a whole cluster of real servers (tests/common,
//! deployd with a `[backup]` directory target): an app with a volume is
//! built, pushed and deployed, its data backed up with `lain backup run`,
//! listed, changed, and brought back byte for byte by `lain backup
//! restore`, which follows the rollout.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::TestCluster;
use serde_json::Value;

/// `lain ARGS` with no cluster configured and stdin not a terminal.
fn lain(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_lain"))
        .args(args)
        .env("LAIN_CONFIG_DIR", home.path())
        .env("NO_COLOR", "1")
        .env_remove("LAIN_CLUSTER")
        .stdin(Stdio::null())
        .output()
        .expect("run lain")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit code 1 and one line `error: ...; hint: ...` containing `want`.
fn fails_with(out: &Output, want: &str) {
    let err = text(&out.stderr);
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
fn help_and_argument_errors() {
    let out = lain(&["backup", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for want in ["list", "run", "restore", "volume backups"] {
        assert!(help.contains(want), "{want}: {help}");
    }
    let out = lain(&["backup", "restore", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for want in ["--yes", "--no-wait", "BACKUP_ID", "emptied", "INSTANCE"] {
        assert!(help.contains(want), "{want}: {help}");
    }
    let help = text(&lain(&["backup", "list", "--help"]).stdout);
    assert!(
        help.contains("--proc") && help.contains("--output"),
        "{help}"
    );
    assert!(text(&lain(&["--help"]).stdout).contains("backup"));

    // Usage errors: clap's exit code 2.
    for args in [
        &["backup"][..],
        &["backup", "run", "app", "worker"],
        &["backup", "run", "app", "worker", "0", "/data"],
        &["backup", "run", "app", "worker", "x", "/data"],
        &["backup", "list", "app", "--instance", "1"],
        &["backup", "restore", "app", "worker", "1", "/data"],
        &["backup", "nope"],
    ] {
        let out = lain(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Checked before anything is asked of a cluster.
    fails_with(
        &lain(&["backup", "run", "app", "worker", "1", "data"]),
        "not a volume path",
    );
    fails_with(
        &lain(&["backup", "restore", "app", "worker", "1", "/data", "ID"]),
        "needs confirmation",
    );
    // With --yes, the missing cluster is the problem.
    let out = lain(&[
        "backup", "restore", "app", "worker", "1", "/data", "ID", "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("confirmation"));
}

const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn write_app(dir: &Path) {
    let base = lain_testkit::image::BASE_IMAGE;
    std::fs::write(
        dir.join("lain.yaml"),
        format!(
            "appname: vault\n\
             build:\n  base: {base}\n  script:\n    - echo built\n\
             worker:\n  cmd: [\"sh\", \"-c\", \"{IDLE}\"]\n  memory: 32m\n  \
             volumes:\n    - /data:\n        backup_full:\n          schedule: \"0 3 * * *\"\n          \
             expire: 10d\n          pre_run: sync\n"
        ),
    )
    .unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "v1"],
    ] {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
}

const FINGERPRINT: &str = "cd /data && find . | sort | while read -r f; do \
    if [ -L \"$f\" ]; then echo \"$f L $(readlink \"$f\")\"; \
    elif [ -d \"$f\" ]; then echo \"$f D $(stat -c '%a %u %g' \"$f\")\"; \
    else echo \"$f F $(stat -c '%a %u %g %s' \"$f\") $(sha256sum < \"$f\" | cut -d' ' -f1)\"; fi; done";

#[test]
fn backup_run_list_and_restore_end_to_end() {
    let c = TestCluster::start();
    c.admin_with_node("e2e");
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();
    write_app(dir);
    c.ok(dir, &["app", "create", "vault"]);
    c.ok(dir, &["build"]);
    c.ok(dir, &["push"]);
    let out = c.ok(dir, &["deploy"]);
    assert!(out.contains("succeeded"), "{out}");
    let container = || {
        c.docker
            .docker(&["ps", "--format", "{{.Names}}"])
            .unwrap()
            .lines()
            .find(|n| n.starts_with("lain.vault.worker."))
            .map(str::to_owned)
            .expect("the worker's container")
    };
    let exec = |name: &str, script: &str| {
        c.docker
            .docker(&["exec", name, "sh", "-c", script])
            .unwrap_or_else(|e| panic!("exec {script}: {e}"))
    };
    let first = container();
    exec(
        &first,
        "set -e; mkdir -p /data/d; dd if=/dev/urandom of=/data/d/blob bs=1024 count=200 2>/dev/null; \
         echo secret > /data/note; chmod 640 /data/note; ln -s d/blob /data/link",
    );
    let original = exec(&first, FINGERPRINT);

    // A backup now, then listed (text and JSON).
    let out: Value = serde_json::from_str(&c.ok(
        dir,
        &[
            "backup", "run", "vault", "worker", "1", "/data", "-o", "json",
        ],
    ))
    .unwrap();
    assert_eq!(out["state"], "stored", "{out}");
    let id = out["backup"]["id"].as_str().unwrap().to_owned();
    let table = c.ok(dir, &["backup", "list", "vault"]);
    assert!(
        table.contains(&id) && table.contains("/data") && table.contains("full"),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&c.ok(
        dir,
        &[
            "backup",
            "list",
            "vault",
            "--proc",
            "worker",
            "--instance",
            "1",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let text = c.ok(dir, &["backup", "run", "vault", "worker", "1", "/data"]);
    assert!(text.contains("Stored backup"), "{text}");

    // Errors name what to do.
    let out = c.lain_in(
        dir,
        &["backup", "run", "vault", "worker", "1", "/nope"],
        None,
    );
    fails_with(&out, "not a volume");
    let out = c.lain_in(
        dir,
        &[
            "backup",
            "restore",
            "vault",
            "worker",
            "1",
            "/data",
            "20200101T000000Z-00000000",
            "--yes",
        ],
        None,
    );
    fails_with(&out, "no backup 20200101T000000Z-00000000");

    // Change the data, then restore: the rollout is followed, and the
    // volume is back byte for byte.
    exec(
        &first,
        "rm -r /data/d; echo changed > /data/note; echo new > /data/new",
    );
    assert_ne!(exec(&first, FINGERPRINT), original);
    let out = c.lain_in(
        dir,
        &["backup", "restore", "vault", "worker", "1", "/data", &id],
        Some(b"n\n"),
    );
    fails_with(&out, "confirmation");
    let out = c.ok(
        dir,
        &[
            "backup", "restore", "vault", "worker", "1", "/data", &id, "--yes",
        ],
    );
    assert!(
        out.contains("restore #") && out.contains("succeeded"),
        "{out}"
    );
    let mut restored = String::new();
    c.wait("the restored container", Duration::from_secs(30), || {
        restored = container();
        restored != first
    });
    assert_eq!(exec(&restored, FINGERPRINT), original);
    let events = c.ok(dir, &["events", "--app", "vault"]);
    assert!(events.contains(&id), "{events}");
}
