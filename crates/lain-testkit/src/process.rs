//! Child processes that die with their guard, and directories that keep
//! their logs when a test fails.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{KitError, Result};

/// A free TCP port on 127.0.0.1. The port is released before return, so a
/// parallel test could take it; servers that fail to bind are retried by
/// their starters.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A free TCP port on `ip`, e.g. a test network's bridge address. Same
/// caveat as [`free_port`]: the port is released before return.
pub fn free_port_on(ip: std::net::IpAddr) -> Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Runs `attempt` up to three times. Servers probe a free port and then
/// bind it, and another process can take the port in between; a retry with
/// fresh ports makes that race harmless. Returns the last error.
pub fn retry_on_port_race<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for _ in 0..3 {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| KitError::Command {
        cmd: "start".into(),
        detail: "no attempt made".into(),
    }))
}

/// A server's private state directory. Removed on drop, unless the test is
/// panicking: then its logs are printed and the directory is kept.
#[derive(Debug)]
pub struct ServerDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    name: String,
}

impl ServerDir {
    /// A fresh directory named after the server, under `$LAIN_TESTKIT_DIR`
    /// or the system temp dir.
    pub fn new(name: &str) -> Result<Self> {
        let base = std::env::var_os("LAIN_TESTKIT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("lain-{name}-"))
            .tempdir_in(base)?;
        let path = dir.path().to_owned();
        Ok(Self {
            dir: Some(dir),
            path,
            name: name.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of the log file for `what` inside this directory.
    pub fn log_path(&self, what: &str) -> PathBuf {
        self.path.join(format!("{what}.log"))
    }

    /// Keeps the directory after the test, whatever its outcome.
    pub fn keep(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(entries) = std::fs::read_dir(&self.path) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "log") {
                        eprintln!(
                            "----- {} log {} (last 60 lines) -----\n{}",
                            self.name,
                            p.display(),
                            tail(&p, 60)
                        );
                    }
                }
            }
            eprintln!(
                "----- kept {} state in {} -----",
                self.name,
                self.path.display()
            );
            self.keep();
        }
    }
}

/// The last `n` lines of a file, or a note saying why there are none.
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// A child process with its output in a log file. Dropping it stops the
/// process: SIGTERM, then SIGKILL after a grace period.
#[derive(Debug)]
pub struct Logged {
    child: Option<Child>,
    what: String,
    log: PathBuf,
    grace: Duration,
}

impl Logged {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(what: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|source| KitError::Spawn {
            what: what.to_owned(),
            source,
        })?;
        Ok(Self {
            child: Some(child),
            what: what.to_owned(),
            log: log.to_owned(),
            grace: Duration::from_secs(10),
        })
    }

    /// How long to wait after SIGTERM before SIGKILL.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends `sig` without waiting, e.g. SIGKILL to simulate a crash.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        if let Some(pid) = self.pid() {
            kill(Pid::from_raw(pid as i32), sig).map_err(|e| KitError::Command {
                cmd: format!("kill -{sig} {pid} ({})", self.what),
                detail: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Stops the process (SIGTERM, then SIGKILL after the grace period) and
    /// reaps it. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process with SIGKILL and reaps it, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit and returns its status,
    /// or `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }

    /// Polls `ready` every 50 ms until it returns true, the process exits,
    /// or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
        let start = Instant::now();
        loop {
            if ready() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(KitError::NotReady {
                    what: format!("{} (exited)", self.what),
                    secs: start.elapsed().as_secs(),
                    log: self.log_tail(),
                });
            }
            if start.elapsed() > timeout {
                return Err(KitError::NotReady {
                    what: self.what.clone(),
                    secs: timeout.as_secs(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command to completion and returns its stdout; a non-zero exit is
/// an error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| KitError::Spawn {
        what: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(KitError::Command {
            cmd: shown,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`], but kills the command and fails once `timeout` passes,
/// so a wedged server cannot hang a test (or a `Drop`) forever.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<String> {
    use std::io::Read;

    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KitError::Spawn {
            what: shown.clone(),
            source,
        })?;
    // Drain both pipes on threads: a child blocked on a full pipe would
    // otherwise never exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait()? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(KitError::Command {
                    cmd: shown,
                    detail: format!("timed out after {} s and was killed", timeout.as_secs()),
                });
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return Err(KitError::Command {
            cmd: shown,
            detail: format!("{status}: {}", String::from_utf8_lossy(&err).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_process_is_stopped_on_drop() {
        let dir = ServerDir::new("sleep").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let p = Logged::spawn("sleep", cmd, &dir.log_path("sleep")).unwrap();
        let pid = p.pid().unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(p);
        // Reaped, so the pid is gone (or reused by an unrelated process,
        // which is vanishingly unlikely within this test).
        assert!(
            !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || !std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .contains("600")
        );
    }

    #[test]
    fn wait_ready_reports_an_exited_process_with_its_log() {
        let dir = ServerDir::new("false").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom-marker; exit 3"]);
        let mut p = Logged::spawn("sh", cmd, &dir.log_path("sh")).unwrap();
        let err = p
            .wait_ready(Duration::from_secs(5), || false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exited") && err.contains("boom-marker"),
            "{err}"
        );
    }

    #[test]
    fn run_reports_stderr_on_failure() {
        let err = run(Command::new("sh").args(["-c", "echo nope >&2; exit 1"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
