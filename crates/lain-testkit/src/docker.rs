//! A private `dockerd` (Debian `docker.io`) for tests.
//!
//! Each instance has its own data root (in its [`ServerDir`], next to
//! `dockerd.log`), and its own exec root, pid file and API socket under a
//! short runtime dir `/run/lkt/{pid}-{n}/` (unix socket paths are limited to
//! 108 bytes). It reads an empty `daemon.json` of its own, so the host's
//! `/etc/docker/daemon.json` never applies, and uses a containerd namespace
//! of its own, so instances never see each other's containers even if they
//! share a system containerd.
//!
//! **Networking of a root-namespace [`Dockerd`].** Several may run at once,
//! so none may touch `docker0` or the host's iptables. By default
//! ([`Bridge::Own`]) each gets a kit-made bridge with its own `10.X.Y.0/24`
//! (see [`crate::netns`]) passed as `-b`, with `--iptables=false
//! --ip-masq=false --ip-forward=false`:
//!
//! * containers get an address on that bridge, reachable from the test;
//! * published ports work through docker's userland proxy (`docker-proxy`),
//!   e.g. `-p 127.0.0.1:0:80` — there are no DNAT rules, so only addresses
//!   of the root namespace (loopback, the bridge address) can be published;
//! * containers have no route out (no masquerading), which is moot offline;
//! * `docker network create` needs an explicit `--subnet` that no other
//!   instance uses.
//!
//! [`Bridge::None`] (`--bridge=none`) gives containers no network at all
//! except `--network host`/`none`; nothing can be published.
//!
//! Nodes inside namespaces ([`crate::nodes`]) get full docker networking
//! (their own `docker0` and iptables, per namespace).

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::netns::TestNetwork;
use crate::process::{run_timeout, Logged, ServerDir};
use crate::sys::{self, ProcInfo, PREFIX, RUN_DIR};
use crate::Result;

/// How long a dockerd may take to answer `/_ping`; the very first start on
/// a machine can take 20-30 s.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Default bound for a docker CLI call.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The network mode of a root-namespace [`Dockerd`] (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Bridge {
    /// A kit-made bridge and subnet of its own; published ports on root
    /// namespace addresses work through the userland proxy.
    #[default]
    Own,
    /// `--bridge=none`: containers only get `--network none` or `host`.
    None,
}

/// Options for [`Dockerd::start_with`].
#[derive(Debug, Clone, Default)]
pub struct DockerdOptions {
    /// `ADDR:PORT` (or CIDR) of plain-HTTP registries to allow. Loopback
    /// registries are allowed by dockerd without this.
    pub insecure_registries: Vec<String>,
    pub bridge: Bridge,
    /// Extra `dockerd` arguments.
    pub args: Vec<String>,
}

impl DockerdOptions {
    pub fn insecure_registry(mut self, addr: impl Into<String>) -> Self {
        self.insecure_registries.push(addr.into());
        self
    }

    pub fn bridge(mut self, bridge: Bridge) -> Self {
        self.bridge = bridge;
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// What a dockerd leaves on the host, kept apart from the [`Dockerd`] so a
/// test can check after the drop that all of it is gone.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub run_dir: PathBuf,
    pub exec_root: PathBuf,
    pub data_root: PathBuf,
    pub containerd_namespace: String,
}

impl Footprint {
    /// Live processes of this engine: dockerd, containerd, shims (found by
    /// exec root or containerd namespace on their command line) and, below
    /// the shims, the containers' processes.
    pub fn processes(&self) -> Vec<ProcInfo> {
        let all = sys::processes();
        let exec = self.exec_root.to_string_lossy().into_owned();
        let ns = format!("-namespace {} ", self.containerd_namespace);
        let mut ours: Vec<u32> = all
            .iter()
            .filter(|p| p.cmdline.contains(&exec) || format!("{} ", p.cmdline).contains(&ns))
            .map(|p| p.pid)
            .collect();
        loop {
            let before = ours.len();
            for p in &all {
                if ours.contains(&p.ppid) && !ours.contains(&p.pid) {
                    ours.push(p.pid);
                }
            }
            if ours.len() == before {
                break;
            }
        }
        all.into_iter()
            .filter(|p| ours.contains(&p.pid) && p.pid != std::process::id())
            .collect()
    }

    /// Mounts still at or below the data root, exec root or runtime dir.
    pub fn mounts(&self) -> Vec<PathBuf> {
        sys::mounts_under(&[&self.data_root, &self.exec_root, &self.run_dir])
    }

    /// Kills every process of the engine and unmounts everything below its
    /// roots, as a reboot of its host would.
    fn wipe(&self) {
        let pids: Vec<u32> = self.processes().iter().map(|p| p.pid).collect();
        if !pids.is_empty() {
            let left = sys::kill_trees(&pids, Duration::from_secs(10));
            if !left.is_empty() {
                eprintln!("lain-testkit: dockerd processes {left:?} survived SIGKILL");
            }
        }
        let left = sys::unmount_under(&[&self.data_root, &self.exec_root, &self.run_dir]);
        if !left.is_empty() {
            eprintln!("lain-testkit: could not unmount {left:?}");
        }
        // runc keeps per-namespace state dirs here; ours is empty by now.
        let _ = std::fs::remove_dir(format!(
            "/run/containerd/runc/{}",
            self.containerd_namespace
        ));
    }
}

/// A running dockerd; stopped, its containers with it, and its mounts and
/// runtime dir removed on drop.
#[derive(Debug)]
pub struct Dockerd {
    label: String,
    netns: Option<PathBuf>,
    args: Vec<String>,
    footprint: Footprint,
    socket: PathBuf,
    // Drop order: the process (stopped explicitly in `Drop`), then the
    // bridge it used, then its directory.
    proc: Option<Logged>,
    own_net: Option<TestNetwork>,
    dir: ServerDir,
    /// Bridges of a root-namespace dockerd that was killed (see
    /// `custom_bridges`): deleted on drop unless a restart brought it back.
    killed_bridges: Vec<String>,
}

impl Dockerd {
    /// A root-namespace dockerd with its own bridge (see the module docs).
    pub fn start() -> Result<Self> {
        Self::start_with(DockerdOptions::default())
    }

    pub fn start_with(opts: DockerdOptions) -> Result<Self> {
        crate::netns::cleanup_stale();
        let mut args: Vec<String> = vec![
            "--iptables=false".into(),
            "--ip-forward=false".into(),
            "--ip-masq=false".into(),
        ];
        let own_net = match opts.bridge {
            Bridge::Own => {
                let net = TestNetwork::create(0)?;
                args.push(format!("--bridge={}", net.bridge()));
                Some(net)
            }
            Bridge::None => {
                args.push("--bridge=none".into());
                None
            }
        };
        for r in &opts.insecure_registries {
            args.push(format!("--insecure-registry={r}"));
        }
        args.extend(opts.args);
        Self::launch("dockerd", None, args, own_net)
    }

    /// Starts dockerd with the kit's private paths plus `extra` arguments,
    /// inside `netns` (`/run/netns/NAME`) when given.
    pub(crate) fn launch(
        label: &str,
        netns: Option<PathBuf>,
        extra: Vec<String>,
        own_net: Option<TestNetwork>,
    ) -> Result<Self> {
        let dir = ServerDir::new(label)?;
        let data_root = dir.path().join("data");
        let config = dir.path().join("daemon.json");
        std::fs::write(&config, "{}\n")?;
        let id = sys::unique_id();
        let run_dir = PathBuf::from(RUN_DIR).join(&id);
        let exec_root = run_dir.join("exec");
        let socket = run_dir.join("sock");
        std::fs::create_dir_all(&run_dir)?;
        // Lets a later run find and remove the data root if this process
        // dies without running its Drops.
        if let Err(e) = std::fs::write(
            run_dir.join("data-root"),
            data_root.as_os_str().as_encoded_bytes(),
        ) {
            let _ = std::fs::remove_dir_all(&run_dir);
            return Err(e.into());
        }
        let containerd_namespace = format!("{PREFIX}{id}");
        let mut args = vec![
            format!("--config-file={}", config.display()),
            format!("--data-root={}", data_root.display()),
            format!("--exec-root={}", exec_root.display()),
            format!("--pidfile={}", run_dir.join("pid").display()),
            format!("--host=unix://{}", socket.display()),
            format!("--containerd-namespace={containerd_namespace}"),
            format!("--containerd-plugins-namespace={containerd_namespace}-plugins"),
            // Bounds dockerd's own shutdown; containers are stopped before
            // (see `stop`) because this does not shorten their 10 s timeout.
            "--shutdown-timeout=2".into(),
        ];
        args.extend(extra);
        let mut d = Self {
            label: label.to_owned(),
            netns,
            args,
            footprint: Footprint {
                run_dir,
                exec_root,
                data_root,
                containerd_namespace,
            },
            socket,
            proc: None,
            own_net,
            dir,
            killed_bridges: Vec::new(),
        };
        // On failure `d` drops here, which removes whatever was started.
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> Result<()> {
        // After a kill or crash, the pid files may name processes that are
        // dead but not yet reaped (they are not our children, and init reaps
        // zombies lazily here). dockerd takes such a zombie containerd for a
        // live one and then times out connecting to it, so drop the files.
        for pidfile in [
            self.footprint.run_dir.join("pid"),
            self.footprint.exec_root.join("containerd/containerd.pid"),
        ] {
            let pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if pid.is_some_and(|p| !sys::pid_alive(p)) {
                let _ = std::fs::remove_file(&pidfile);
            }
        }
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("dockerd");
                c
            }
            None => Command::new("dockerd"),
        };
        cmd.args(&self.args);
        let mut proc = Logged::spawn(&self.label, cmd, &self.dir.log_path("dockerd"))?
            .with_grace(Duration::from_secs(15));
        let socket = self.socket.clone();
        let ready = proc.wait_ready(READY_TIMEOUT, || ping(&socket));
        self.proc = Some(proc);
        ready
    }

    /// The API socket, e.g. `/run/lkt/1a2b-0/sock`.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `unix:///run/lkt/.../sock`, for `DOCKER_HOST` or bollard.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn data_root(&self) -> &Path {
        &self.footprint.data_root
    }

    pub fn exec_root(&self) -> &Path {
        &self.footprint.exec_root
    }

    /// Paths and names that identify this engine's processes and mounts.
    pub fn footprint(&self) -> Footprint {
        self.footprint.clone()
    }

    /// The state dir holding `dockerd.log` and the data root.
    pub fn dir(&self) -> &ServerDir {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.log_path("dockerd")
    }

    /// dockerd's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Logged::pid)
    }

    /// With [`Bridge::Own`]: the bridge address containers use as gateway.
    pub fn bridge_addr(&self) -> Option<Ipv4Addr> {
        self.own_net.as_ref().map(TestNetwork::bridge_addr)
    }

    /// With [`Bridge::Own`]: the bridge's interface name.
    pub fn bridge_name(&self) -> Option<&str> {
        self.own_net.as_ref().map(TestNetwork::bridge)
    }

    /// With [`Bridge::Own`]: the containers' subnet, `10.X.Y.0/24`.
    pub fn subnet(&self) -> Option<String> {
        self.own_net.as_ref().map(TestNetwork::subnet)
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Logged::is_running)
    }

    /// True when the API answers `/_ping`.
    pub fn ping(&self) -> bool {
        ping(&self.socket)
    }

    /// A `docker` CLI command aimed at this engine; add arguments and run.
    pub fn docker_cmd(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("--host").arg(self.docker_host());
        cmd
    }

    /// Runs `docker ARGS` against this engine (bounded to 2 min) and returns
    /// its stdout.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        self.docker_timeout(args, CLI_TIMEOUT)
    }

    pub fn docker_timeout(&self, args: &[&str], timeout: Duration) -> Result<String> {
        run_timeout(self.docker_cmd().args(args), timeout)
    }

    /// Stops dockerd gracefully, then kills any shim or container process
    /// that outlived it and unmounts what it left. Running containers get
    /// SIGTERM and 1 s before SIGKILL (dockerd's own shutdown would give each
    /// its full stop timeout, 10 s by default). Data stays for
    /// [`Dockerd::restart`].
    pub fn stop(&mut self) {
        self.shut_down(&["stop", "--time", "1"]);
    }

    /// Like [`Dockerd::stop`], but containers get SIGKILL at once: for
    /// teardown, where nobody waits for a graceful exit.
    pub(crate) fn tear_down(&mut self) {
        self.shut_down(&["kill"]);
    }

    /// Runs `docker VERB IDS` on the running containers, then stops dockerd
    /// and wipes what outlived it.
    fn shut_down(&mut self, verb: &[&str]) {
        // A dockerd in the root namespace leaves the bridges of its
        // user-defined networks (`br-` + 12 digits of the network id) on
        // the host when it stops; each holds an address pool, and after a
        // few dozen runs new networks fail. Note them to delete after.
        let mut bridges = Vec::new();
        if self.is_running() && self.ping() {
            bridges = self.custom_bridges();
            let running = self
                .docker_timeout(&["ps", "-q"], Duration::from_secs(10))
                .unwrap_or_default();
            let ids: Vec<&str> = running.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = verb.to_vec();
                args.extend(ids);
                if let Err(e) = self.docker_timeout(&args, Duration::from_secs(30)) {
                    eprintln!("lain-testkit: stopping containers of {}: {e}", self.label);
                }
            }
        }
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
        self.footprint.wipe();
        for bridge in bridges {
            let _ = sys::ip(&["link", "del", &bridge]);
        }
    }

    /// The host bridges of this dockerd's user-defined networks
    /// (`br-` + 12 digits of the network id); only a dockerd in the root
    /// namespace leaves them on the host when it stops.
    fn custom_bridges(&self) -> Vec<String> {
        if self.netns.is_some() {
            return Vec::new();
        }
        self.docker_timeout(
            &[
                "network",
                "ls",
                "-q",
                "--no-trunc",
                "--filter",
                "type=custom",
            ],
            Duration::from_secs(10),
        )
        .unwrap_or_default()
        .split_whitespace()
        .filter(|id| id.len() >= 12)
        .map(|id| format!("br-{}", &id[..12]))
        .collect()
    }

    /// SIGKILLs dockerd alone, as an engine crash would. Its containerd
    /// dies with it, but the shims and containers keep running (and keep
    /// serving on published ports) until dockerd is restarted, which then
    /// kills them, since live-restore is off.
    pub fn kill(&mut self) {
        if self.is_running() && self.ping() {
            self.killed_bridges = self.custom_bridges();
        }
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
        // containerd gets SIGKILL from the kernel when dockerd dies (parent
        // death signal), but exits a moment later. Wait for that, or a
        // restart right away would find it "still running" and hang on it.
        let pidfile = self.footprint.exec_root.join("containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            let left = sys::kill_pids(&[pid], Duration::from_secs(5));
            if !left.is_empty() {
                eprintln!("lain-testkit: containerd {pid} of {} survived", self.label);
            }
        }
    }

    /// SIGKILLs dockerd, containerd, the shims and every container process,
    /// and unmounts their filesystems: the host "lost power". Data stays.
    pub fn crash(&mut self) {
        self.kill();
        self.footprint.wipe();
    }

    /// Starts dockerd again on the same data, paths and arguments after a
    /// stop, kill or crash (or stops it first if it runs).
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            self.stop();
        }
        // The engine brings its networks' bridges back: they are its
        // again, not leftovers of the kill.
        self.killed_bridges.clear();
        self.spawn()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.tear_down();
        for bridge in std::mem::take(&mut self.killed_bridges) {
            let _ = sys::ip(&["link", "del", &bridge]);
        }
        let left = self.footprint.processes();
        if !left.is_empty() {
            eprintln!(
                "lain-testkit: {} left processes behind: {left:?}",
                self.label
            );
        }
        if self.footprint.mounts().is_empty() {
            let _ = std::fs::remove_dir_all(&self.footprint.run_dir);
        }
    }
}

/// True when the engine behind `socket` answers `GET /_ping` with `OK`.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.")
        && buf.split_whitespace().nth(1) == Some("200")
        && buf.ends_with("OK")
}

/// Kills the processes and removes the mounts and runtime dirs of engines
/// whose owning test process is dead. Part of
/// [`crate::netns::cleanup_stale`].
pub(crate) fn cleanup_stale_engines() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(RUN_DIR) else {
        return removed;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(owner) = sys::owner_of(&name) else {
            continue;
        };
        if sys::pid_alive(owner) {
            continue;
        }
        let run_dir = e.path();
        let data_root = std::fs::read(run_dir.join("data-root"))
            .ok()
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()));
        let fp = Footprint {
            exec_root: run_dir.join("exec"),
            data_root: data_root.clone().unwrap_or_else(|| run_dir.join("exec")),
            run_dir: run_dir.clone(),
            containerd_namespace: format!("{PREFIX}{name}"),
        };
        fp.wipe();
        if fp.mounts().is_empty() {
            if let Some(d) = data_root {
                let _ = std::fs::remove_dir_all(d);
            }
            if std::fs::remove_dir_all(&run_dir).is_ok() {
                removed.push(format!("dockerd runtime {}", run_dir.display()));
            }
        } else {
            eprintln!("lain-testkit: stale dockerd {name} still has mounts; left in place");
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_of_a_missing_socket_is_false() {
        assert!(!ping(Path::new("/nonexistent/lkt.sock")));
    }
}
