//! Spawning this workspace's own daemon binaries with a generated config,
//! in the manner of garage's tests: the real binary, its logs kept.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::process::{Logged, ServerDir};
use crate::{free_port, http, Result};

/// A daemon of this workspace running from its built binary.
#[derive(Debug)]
pub struct Daemon {
    pub proc: Logged,
    pub addr: SocketAddr,
    pub dir: ServerDir,
}

impl Daemon {
    /// Writes `config` (TOML; `{listen}` is replaced by a free loopback
    /// address) to a file, starts `bin --config FILE` and waits for
    /// `/healthz` to answer 200.
    pub fn spawn(name: &str, bin: &str, config: &str) -> Result<Self> {
        let dir = ServerDir::new(name)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config.replace("{listen}", &addr.to_string()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&path);
        let mut proc = Logged::spawn(name, cmd, &dir.log_path(name))?;
        proc.wait_ready(Duration::from_secs(20), || {
            http::get(addr, "127.0.0.1", "/healthz").is_some_and(|(c, _)| c == 200)
        })?;
        Ok(Self { proc, addr, dir })
    }
}

/// The shared test for daemons that so far only serve `/healthz`: the
/// binary starts from a generated config, answers with its own name, and
/// exits cleanly on SIGTERM; a config with an unknown key is refused with a
/// message naming the key.
pub fn check_healthz_daemon(name: &str, bin: &str) {
    let mut d = Daemon::spawn(name, bin, "listen = \"{listen}\"\nlog_format = \"json\"\n")
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    let (code, body) = http::get(d.addr, "127.0.0.1", "/healthz").expect("healthz answers");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(v["service"], name);
    assert_eq!(v["status"], "ok");
    d.proc.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = d
        .proc
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{name} still running 10 s after SIGTERM"));
    assert!(
        status.success(),
        "{name} exited with {status} after SIGTERM"
    );

    let err = refused_config(name, bin, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n");
    assert!(
        err.contains("listen_port") && err.contains("bad.toml"),
        "{err}"
    );
}

/// Runs `bin --config bad.toml` with `config` as the file, asserts that
/// the daemon refuses to start, and returns its stderr so the caller can
/// check the message names the offending key and the file.
pub fn refused_config(name: &str, bin: &str, config: &str) -> String {
    let dir = ServerDir::new(&format!("{name}-bad")).expect("dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    assert!(!out.status.success(), "{name} accepted {config:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
