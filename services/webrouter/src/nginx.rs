//! Driving nginx: `nginx -t`, graceful reloads (SIGHUP to the master) that
//! return only once the new configuration is live, and a supervisor that
//! starts nginx and restarts it when it dies.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

use crate::metrics::Metrics;
use crate::render::GENERATION_PATH;

/// Errors from driving nginx.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("cannot run {binary}: {source}; install nginx or set nginx_binary in the config")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nginx rejected the new configuration, the previous one keeps serving: {message}")]
    Invalid { message: String },
    #[error("`nginx -t` did not finish within {secs} s")]
    TestTimeout { secs: u64 },
    #[error("nginx is not running, so it cannot be reloaded; the supervisor restarts it")]
    NotRunning,
    #[error("cannot signal nginx (pid {pid}): {detail}")]
    Signal { pid: u32, detail: String },
    #[error(
        "nginx did not serve generation {generation} within {secs} s after SIGHUP; see error.log in the state dir"
    )]
    ReloadTimeout { generation: u64, secs: u64 },
}

/// How to address this router's nginx.
#[derive(Debug)]
pub struct NginxCtl {
    binary: PathBuf,
    state_dir: PathBuf,
    status_listen: SocketAddr,
    /// The running master's pid, 0 when none runs.
    pid: AtomicU32,
    /// Workers of a master that an earlier reload told to shut down
    /// (`(master pid, worker pids)`): they may still be draining long
    /// requests, but no longer accept, so a later reload does not wait
    /// for them.
    draining: Mutex<(u32, BTreeSet<u32>)>,
}

/// How much of the end of error.log is searched for workers that were
/// shutting down before a reload (when this process did not see them
/// being told to, e.g. for an adopted master).
const LOG_TAIL: u64 = 1 << 20;

const TEST_TIMEOUT: Duration = Duration::from_secs(20);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

impl NginxCtl {
    pub fn new(binary: PathBuf, state_dir: PathBuf, status_listen: SocketAddr) -> Self {
        Self {
            binary,
            state_dir,
            status_listen,
            pid: AtomicU32::new(0),
            draining: Mutex::new((0, BTreeSet::new())),
        }
    }

    /// The config nginx runs from: a symlink swapped per generation.
    pub fn current_conf(&self) -> PathBuf {
        self.state_dir.join("current").join("nginx.conf")
    }

    pub fn error_log(&self) -> PathBuf {
        self.state_dir.join("error.log")
    }

    fn args(&self, conf: &Path) -> Vec<OsString> {
        let mut prefix = self.state_dir.clone().into_os_string();
        prefix.push("/");
        vec![
            "-p".into(),
            prefix,
            "-c".into(),
            conf.into(),
            // Errors before nginx.conf is read go here, not to Debian's
            // compiled-in /var/log/nginx/error.log.
            "-e".into(),
            self.error_log().into(),
        ]
    }

    /// The master's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::SeqCst) {
            0 => None,
            p => Some(p),
        }
    }

    /// Runs `nginx -t` on `conf`; nginx's own message on failure.
    pub async fn test(&self, conf: &Path) -> Result<(), NginxError> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-t")
            .arg("-q")
            .args(self.args(conf))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = match timeout(TEST_TIMEOUT, cmd.output()).await {
            Ok(r) => r.map_err(|source| NginxError::Spawn {
                binary: self.binary.clone(),
                source,
            })?,
            Err(_) => {
                return Err(NginxError::TestTimeout {
                    secs: TEST_TIMEOUT.as_secs(),
                })
            }
        };
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let message = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("test failed"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(NginxError::Invalid {
            message: if message.is_empty() {
                format!("nginx -t exited with {}", out.status)
            } else {
                message
            },
        })
    }

    /// The generation nginx's status server answers with, if it answers.
    pub async fn live_generation(&self) -> Option<u64> {
        let body = http_get(self.status_listen, GENERATION_PATH).await?;
        body.trim().parse().ok()
    }

    /// Waits until nginx's status server answers at all.
    pub async fn wait_answering(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.live_generation().await.is_some() {
                return true;
            }
            sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Sends SIGHUP to the master and returns once `generation` is live:
    /// new workers answer with it and every old worker has stopped
    /// accepting (it logged that it is shutting down, or is gone), so no
    /// new connection can reach the previous configuration. Workers that
    /// were already shutting down before this reload (still finishing long
    /// requests of an earlier configuration) are not waited for.
    pub async fn reload(&self, generation: u64) -> Result<(), NginxError> {
        // SIGHUP before nginx has installed its handlers would kill it.
        if !self.wait_answering(RELOAD_TIMEOUT).await {
            return Err(NginxError::NotRunning);
        }
        let pid = self.pid().ok_or(NginxError::NotRunning)?;
        let children = children_of(pid);
        let log = self.error_log();
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let old_workers = self.accepting(pid, &children, &log, log_start);
        let master = i32::try_from(pid).map_err(|_| NginxError::NotRunning)?;
        kill(Pid::from_raw(master), Signal::SIGHUP).map_err(|e| NginxError::Signal {
            pid,
            detail: e.to_string(),
        })?;
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        while Instant::now() < deadline {
            if self.live_generation().await == Some(generation) {
                let text = read_from(&log, log_start);
                let done = old_workers
                    .iter()
                    .all(|&w| !pid_alive(w) || shutting_down(&text, w));
                if done {
                    // Every child from before this reload is now shutting
                    // down (or gone).
                    if let Ok(mut d) = self.draining.lock() {
                        if d.0 != pid {
                            *d = (pid, BTreeSet::new());
                        }
                        d.1.retain(|&w| pid_alive(w));
                        d.1.extend(children);
                    }
                    return Ok(());
                }
            }
            sleep(Duration::from_millis(10)).await;
        }
        Err(NginxError::ReloadTimeout {
            generation,
            secs: RELOAD_TIMEOUT.as_secs(),
        })
    }

    /// The children of master `pid` that still accept connections: not
    /// known to have been told to shut down by an earlier reload, and not
    /// logged as shutting down in the tail of error.log before `log_end`.
    fn accepting(&self, pid: u32, children: &[u32], log: &Path, log_end: u64) -> Vec<u32> {
        let known: BTreeSet<u32> = match self.draining.lock() {
            Ok(d) if d.0 == pid => d.1.clone(),
            _ => BTreeSet::new(),
        };
        let mut rest: Vec<u32> = children
            .iter()
            .copied()
            .filter(|w| !known.contains(w))
            .collect();
        if !rest.is_empty() {
            let start = log_end.saturating_sub(LOG_TAIL);
            let text = read_range(log, start, log_end - start);
            rest.retain(|&w| !shutting_down(&text, w));
        }
        rest
    }

    /// Keeps nginx running from [`NginxCtl::current_conf`] until
    /// `shutdown` turns true, then stops it (SIGQUIT: graceful, SIGKILL
    /// after 10 s). A master left by a previous webrouter (its pid file
    /// names a live nginx of this prefix) is adopted, not started twice.
    pub async fn supervise(
        self: Arc<Self>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut first = true;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if !first {
                metrics.nginx_restarts.fetch_add(1, Ordering::Relaxed);
                // Do not spin on an nginx that cannot start.
                tokio::select! {
                    () = sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => break,
                }
            }
            first = false;
            if let Some(pid) = self.orphan_master() {
                tracing::info!(pid, "adopting the running nginx of this state dir");
                self.pid.store(pid, Ordering::SeqCst);
                metrics.nginx_up.store(1, Ordering::Relaxed);
                loop {
                    if !pid_alive(pid) {
                        break;
                    }
                    tokio::select! {
                        () = sleep(Duration::from_millis(200)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                self.pid.store(0, Ordering::SeqCst);
                metrics.nginx_up.store(0, Ordering::Relaxed);
                if *shutdown.borrow() {
                    stop_pid(pid).await;
                    break;
                }
                kill_group(pid);
                tracing::error!(pid, "nginx died; restarting it");
                continue;
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.state_dir.join("nginx.log"));
            let mut cmd = Command::new(&self.binary);
            // Its own process group (pgid = master pid), so that workers
            // orphaned by a crashed master can be killed as a group:
            // they would keep the listen sockets and block the restart.
            cmd.args(self.args(&self.current_conf()))
                .stdin(Stdio::null())
                .process_group(0);
            if let Ok(log) = log {
                if let Ok(copy) = log.try_clone() {
                    cmd.stdout(copy);
                }
                cmd.stderr(log);
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(source) => {
                    let e = NginxError::Spawn {
                        binary: self.binary.clone(),
                        source,
                    };
                    tracing::error!(error = %e, "cannot start nginx");
                    continue;
                }
            };
            let pid = child.id().unwrap_or(0);
            tracing::info!(pid, "nginx started");
            self.pid.store(pid, Ordering::SeqCst);
            metrics.nginx_up.store(1, Ordering::Relaxed);
            tokio::select! {
                status = child.wait() => {
                    self.pid.store(0, Ordering::SeqCst);
                    metrics.nginx_up.store(0, Ordering::Relaxed);
                    kill_group(pid);
                    match status {
                        Ok(s) => tracing::error!(pid, status = %s, "nginx exited; restarting it"),
                        Err(e) => tracing::error!(pid, error = %e, "lost track of nginx; restarting it"),
                    }
                }
                _ = shutdown.changed() => {
                    stop_pid(pid).await;
                    let _ = timeout(Duration::from_secs(1), child.wait()).await;
                    self.pid.store(0, Ordering::SeqCst);
                    metrics.nginx_up.store(0, Ordering::Relaxed);
                    break;
                }
            }
        }
    }

    /// A live nginx master named by this prefix's pid file, if any.
    fn orphan_master(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.state_dir.join("nginx.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let prefix = self.state_dir.display().to_string();
        (cmdline.contains("nginx") && cmdline.contains(&prefix) && pid_alive(pid)).then_some(pid)
    }
}

/// Graceful stop: SIGQUIT lets workers finish their requests; SIGKILL
/// after 10 s bounds it.
async fn stop_pid(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 0 {
        return;
    }
    let _ = kill(Pid::from_raw(raw), Signal::SIGQUIT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !pid_alive(pid) {
            return;
        }
        sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(pid, "nginx still running 10 s after SIGQUIT; killing it");
    kill_group(pid);
}

/// SIGKILLs what is left of the process group of a dead master.
fn kill_group(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        if raw > 1 {
            let _ = kill(Pid::from_raw(-raw), Signal::SIGKILL);
        }
    }
}

/// Alive and not a zombie.
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Pids whose parent is `parent` (nginx's workers and cache processes).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Whether worker `w` logged in `text` that it is shutting down.
fn shutting_down(text: &str, w: u32) -> bool {
    text.contains(&format!(" {w}#{w}: gracefully shutting down"))
}

fn read_from(path: &Path, offset: u64) -> String {
    read_range(path, offset, u64::MAX)
}

/// At most `len` bytes of `path` from `offset`, lossily as text.
fn read_range(path: &Path, offset: u64, len: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.take(len).read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A bounded HTTP/1.0 GET on loopback; the body of a 200, else `None`.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
            return None;
        }
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
    };
    timeout(Duration::from_secs(2), fut).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_already_shutting_down_before_a_reload_are_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let ctl = NginxCtl::new(
            "nginx".into(),
            dir.path().to_owned(),
            "127.0.0.1:1".parse().unwrap(),
        );
        let log = ctl.error_log();
        let before = "2026/11/22 00:00:00 [notice] 101#101: gracefully shutting down\n\
                      2026/11/22 00:00:00 [notice] 1101#1101: exiting\n";
        let after = "2026/11/22 00:00:01 [notice] 102#102: gracefully shutting down\n";
        std::fs::write(&log, format!("{before}{after}")).unwrap();
        let end = before.len() as u64;
        // From the log: 101 was shutting down before `end`; 102 only after.
        assert_eq!(ctl.accepting(1, &[100, 101, 102], &log, end), [100, 102]);
        // Told to shut down by an earlier reload of the same master.
        *ctl.draining.lock().unwrap() = (1, BTreeSet::from([100]));
        assert_eq!(ctl.accepting(1, &[100, 101, 102], &log, end), [102]);
        // Another master's record does not count.
        assert_eq!(ctl.accepting(2, &[100, 102], &log, end), [100, 102]);
    }
}
