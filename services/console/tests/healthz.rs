//! Spawns the real `console` binary with a generated config (SQLite file,
//! a secrets key, an sso issuer that is not running) and checks what needs
//! no token: `/healthz`, `/metrics`, `/api/v1/openapi.json`; that the API
//! answers 401 JSON without a token; a clean exit on SIGTERM; and configs
//! with an unknown key or a world-readable key file refused by name.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use lain_store::secret::SecretsKey;
use lain_testkit::daemon::{refused_config, Daemon};
use lain_testkit::http;
use lain_testkit::process::ServerDir;
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_console");

fn write_key(path: &Path, mode: u32) {
    std::fs::write(path, SecretsKey::generate().to_base64().as_bytes()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn config(dir: &Path) -> String {
    format!(
        "listen = \"{{listen}}\"\nlog_format = \"json\"\n\
         database = \"sqlite://{dir}/console.db?mode=rwc\"\n\
         secrets_key_file = \"{dir}/secrets.key\"\n\
         [auth]\nissuer = \"http://127.0.0.1:9\"\n",
        dir = dir.display()
    )
}

#[test]
fn serves_healthz_metrics_openapi_and_stops_on_sigterm() {
    let dir = ServerDir::new("console-cfg").unwrap();
    write_key(&dir.path().join("secrets.key"), 0o600);
    let mut d = Daemon::spawn("console", BIN, &config(dir.path()))
        .unwrap_or_else(|e| panic!("console did not start: {e}"));

    let (code, body) = http::get(d.addr, "127.0.0.1", "/healthz").expect("healthz answers");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(v["service"], "console");
    assert_eq!(v["status"], "ok");

    let (code, text) = http::get(d.addr, "127.0.0.1", "/metrics").expect("metrics answer");
    assert_eq!(code, 200);
    for want in ["console_up 1", "console_apps 0", "console_database_up 1"] {
        assert!(
            text.lines().any(|l| l == want),
            "{want:?} missing in\n{text}"
        );
    }

    let (code, body) =
        http::get(d.addr, "127.0.0.1", "/api/v1/openapi.json").expect("openapi answers");
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("openapi is JSON");
    assert!(doc["paths"]["/api/v1/apps"].is_object(), "{body}");

    let (code, body) = http::get(d.addr, "127.0.0.1", "/api/v1/apps").expect("apps answers");
    assert_eq!(code, 401, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("error is JSON");
    assert_eq!(v["code"], "unauthorized", "{body}");

    d.proc.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = d
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("console still running 10 s after SIGTERM");
    assert!(
        status.success(),
        "console exited with {status} after SIGTERM"
    );
}

#[test]
fn bad_configs_are_refused_by_name() {
    let dir = ServerDir::new("console-bad").unwrap();
    write_key(&dir.path().join("secrets.key"), 0o600);
    let good = config(dir.path()).replace("{listen}", "127.0.0.1:1");

    let err = refused_config("console", BIN, &format!("listen_port = 3\n{good}"));
    assert!(
        err.contains("listen_port") && err.contains("bad.toml"),
        "{err}"
    );

    let err = refused_config(
        "console",
        BIN,
        &good.replace("[auth]\n", "[auth]\nadmins = [\"x\"]\n"),
    );
    assert!(err.contains("admins"), "{err}");

    // A key file others can read is refused before anything is served.
    write_key(&dir.path().join("secrets.key"), 0o644);
    let err = refused_config("console", BIN, &good);
    assert!(err.contains("secrets.key"), "{err}");
}
