//! The Ansible playbooks (playbooks/) and systemd units (deploy/systemd)
//! against real things.
//!
//! * `playbooks_lint_and_units_verify`: `ansible-playbook --syntax-check`
//!   on every playbook, `ansible-lint` on playbooks/ with zero violations,
//!   `systemd-analyze verify` on every unit file and drop-in (on copies whose
//!   ExecStart names the built binaries).
//! * `add_and_remove_nodes_with_ansible`: a whole control plane
//!   (tests/common), two hosts made of network namespaces, each with its
//!   own sshd, and the playbooks run for real over SSH: add-node.yml
//!   installs a TLS Docker engine on each (daemon mode: these hosts share
//!   the machine's filesystem and have no systemd) and registers it
//!   cordoned, then uncordons it once deployd has seen it alive; an app is
//!   deployed and scaled onto them and answers through the router;
//!   add-node.yml again changes nothing; remove-node.yml drains one node,
//!   waits until it is empty and deregisters it, the app keeps answering;
//!   cluster-health.yml passes on the healthy cluster and fails, naming
//!   the node, when one is cut off.
//!
//! Test-only plumbing: the harness binds the registry and console on the
//! host's loopback, which a namespace cannot reach, and images are named
//! after that loopback address. Each namespace therefore gets a forwarder
//! from its own 127.0.0.1:PORT to the real one (through a unix socket in
//! the shared filesystem), so a node pulls `127.0.0.1:PORT/hello:...` and
//! follows the registry's token realm as a real node reaches the
//! registry's address.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lain_testkit::docker::Footprint;
use lain_testkit::netns::Netns;
use lain_testkit::process::{Logged, ServerDir};
use lain_testkit::{sys, TestNetwork};
use serde_json::Value;

/// The repository's root (cli/ is one below it).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

fn playbooks_dir() -> PathBuf {
    repo().join("playbooks")
}

/// Runs `cmd` with its output (stdout and stderr) in `log`, killing it and
/// its children after `timeout`. Returns the exit status (None on timeout)
/// and the output.
fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> (Option<ExitStatus>, String) {
    use std::os::unix::process::CommandExt as _;
    let out = File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            sys::kill_trees(&[child.id()], Duration::from_secs(10));
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// Runs a short command that must succeed (bounded to 2 minutes); its
/// stdout.
fn run_ok(cmd: &mut Command) -> String {
    lain_testkit::process::run_timeout(cmd, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` (bounded by `timeout`): whether it succeeded, and its output
/// (stdout and stderr).
fn run_bounded(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let (status, out) = run_logged(cmd, log.path(), timeout);
    let status = status.unwrap_or_else(|| panic!("{cmd:?} did not finish within {timeout:?}"));
    (status.success(), out)
}

/// Waits until `f` holds, or panics naming `what`.
fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

// ---------------------------------------------------------------------
// Static checks
// ---------------------------------------------------------------------

#[test]
fn playbooks_lint_and_units_verify() {
    let dir = playbooks_dir();
    // ansible-lint takes a few seconds: run it while the rest is checked.
    let lint = std::thread::spawn({
        let dir = dir.clone();
        move || {
            run_bounded(
                Command::new("ansible-lint")
                    .current_dir(&dir)
                    .env("NO_COLOR", "1")
                    .env("ANSIBLE_NOCOLOR", "1"),
                Duration::from_secs(300),
            )
        }
    });

    let playbooks = [
        "bootstrap.yml",
        "add-node.yml",
        "remove-node.yml",
        "cluster-health.yml",
    ];
    for p in playbooks {
        let out = run_ok(
            Command::new("ansible-playbook")
                .current_dir(&dir)
                .args(["-i", "inventory/example.yml", "--syntax-check", p])
                .env("ANSIBLE_NOCOLOR", "1"),
        );
        assert!(out.contains(&format!("playbook: {p}")), "{p}: {out}");
    }
    // Every playbook in the directory is one of those.
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    found.sort();
    let mut want: Vec<String> = playbooks.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "a playbook without a syntax check");

    verify_units();

    let (ok, text) = lint.join().expect("lint thread");
    assert!(ok, "ansible-lint failed:\n{text}");
    assert!(
        text.contains("0 failure(s), 0 warning(s)"),
        "ansible-lint reported something:\n{text}"
    );
    // Skips must be justified one by one: no blanket `skip_list`.
    let config = std::fs::read_to_string(dir.join(".ansible-lint")).unwrap();
    assert!(!config.contains("skip_list"), "{config}");
}

/// `systemd-analyze verify` on copies of deploy/systemd (ExecStart of the
/// lain units pointed at the built binaries, which verify insists exist),
/// beside Debian's units the drop-ins extend.
fn verify_units() {
    let units = repo().join("deploy/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path();
    let mut lain_units = Vec::new();
    for e in std::fs::read_dir(&units).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if e.file_type().unwrap().is_dir() {
            // NAME.service.d/lain.conf: a drop-in for Debian's NAME.service.
            let base = name.strip_suffix(".d").expect("a drop-in dir");
            std::fs::create_dir(copy.join(&name)).unwrap();
            for f in std::fs::read_dir(e.path()).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), copy.join(&name).join(f.file_name())).unwrap();
            }
            std::fs::copy(Path::new("/lib/systemd/system").join(base), copy.join(base))
                .unwrap_or_else(|e| panic!("Debian's {base} (is its package installed?): {e}"));
            lain_units.push(base.to_owned());
            continue;
        }
        let mut text = std::fs::read_to_string(e.path()).unwrap();
        for daemon in ["sso", "console", "deployd", "webrouter"] {
            let from = format!("/usr/local/bin/{daemon} ");
            if text.contains(&from) {
                let built = common::bin(daemon);
                text = text.replace(&from, &format!("{} ", built.display()));
            }
        }
        assert!(
            !text.contains("/usr/local/bin/"),
            "{name}: unknown binary in ExecStart"
        );
        std::fs::write(copy.join(&name), text).unwrap();
        lain_units.push(name);
    }
    lain_units.sort();
    for want in [
        "docker-registry.service",
        "docker.service",
        "etcd.service",
        "lain-console.service",
        "lain-deployd.service",
        "lain-sso.service",
        "lain-webrouter.service",
    ] {
        assert!(
            lain_units.iter().any(|u| u == want),
            "no {want} in deploy/systemd"
        );
    }
    // docker.service needs docker.socket beside it.
    std::fs::copy(
        "/lib/systemd/system/docker.socket",
        copy.join("docker.socket"),
    )
    .unwrap();

    let verify = || {
        run_bounded(
            Command::new("systemd-analyze")
                .arg("verify")
                .args(lain_units.iter().map(|u| copy.join(u)))
                // The copy dir first, then the defaults (trailing colon):
                // the drop-ins beside the units are read.
                .env("SYSTEMD_UNIT_PATH", format!("{}:", copy.display())),
            Duration::from_secs(60),
        )
    };
    let (ok, out) = verify();
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );

    // The drop-ins were read: one with an unknown key is reported.
    std::fs::write(
        copy.join("etcd.service.d/zz-check.conf"),
        "[Service]\nNoSuchKeyForTheTest=1\n",
    )
    .unwrap();
    let (_, out) = verify();
    assert!(out.contains("NoSuchKeyForTheTest"), "{out}");
}

// ---------------------------------------------------------------------
// Hosts made of network namespaces
// ---------------------------------------------------------------------

/// Forwards connections on a unix socket to a TCP address of the host's
/// loopback, on threads that live as long as the test process.
fn forward_unix_to_tcp(socket: &Path, target: SocketAddr) {
    let listener = UnixListener::bind(socket).expect("bind forwarder socket");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(target) else {
                    return;
                };
                let (mut c2, mut s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let (mut c3, mut s3) = (client, server);
                let _ = std::io::copy(&mut s3, &mut c3);
                let _ = c3.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
}

/// Inside a namespace: 127.0.0.1:PORT → a unix socket, for each `PORT=PATH`.
const NS_FORWARDER: &str = r#"
import socket, sys, threading

def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

def serve(srv, path):
    while True:
        conn, _ = srv.accept()
        up = socket.socket(socket.AF_UNIX)
        try:
            up.connect(path)
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()

servers = []
for spec in sys.argv[1:]:
    port, path = spec.split("=", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(port)))
    srv.listen(64)
    servers.append((srv, path))
for srv, path in servers:
    threading.Thread(target=serve, args=(srv, path)).start()
print("ready", flush=True)
"#;

/// A host: a namespace with an sshd, a loopback forwarder, and the paths
/// its Docker engine gets from the playbook. Dropping it stops everything
/// the playbook and the test started in it.
struct Host {
    name: String,
    ns: Netns,
    /// Data root, daemon.json, TLS files, dockerd's log (kept on failure).
    dir: ServerDir,
    /// `/run/lkt/{id}`: exec root, socket, pid files (the test kit's
    /// scheme, so its stale-leftover cleanup also covers a killed run).
    run_dir: PathBuf,
    footprint: Footprint,
    sshd: Option<Logged>,
    forwarder: Option<Logged>,
}

impl Host {
    fn socket(&self) -> PathBuf {
        self.run_dir.join("sock")
    }

    fn ssd_pidfile(&self) -> PathBuf {
        self.run_dir.join("ssd.pid")
    }

    fn dockerd_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.ssd_pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        sys::pid_alive(pid).then_some(pid)
    }

    /// `docker ARGS` against this host's engine, over its unix socket.
    fn docker(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.socket().display()))
                .args(args),
        )
    }

    fn our_containers(&self) -> Vec<String> {
        self.docker(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            "label=lain.managed=deployd",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    fn inventory_vars(&self, key: &Path) -> String {
        let dir = self.dir.path();
        let id = self.run_dir.file_name().unwrap().to_string_lossy();
        format!(
            "        {name}:\n\
             \x20         ansible_host: {addr}\n\
             \x20         ansible_user: root\n\
             \x20         ansible_ssh_private_key_file: {key}\n\
             \x20         lain_node_address: {addr}\n\
             \x20         lain_node_cpu: 2\n\
             \x20         lain_node_memory: 2g\n\
             \x20         docker_start_mode: daemon\n\
             \x20         docker_install_packages: false\n\
             \x20         docker_config_dir: {dir}/etc\n\
             \x20         docker_data_root: {dir}/data\n\
             \x20         docker_exec_root: {run}/exec\n\
             \x20         docker_pidfile: {run}/pid\n\
             \x20         docker_socket: {run}/sock\n\
             \x20         docker_daemon_pidfile: {run}/ssd.pid\n\
             \x20         docker_daemon_log: {dir}/dockerd.log\n\
             \x20         docker_containerd_namespace: lkt{id}\n\
             \x20         docker_containerd_plugins_namespace: lkt{id}-plugins\n\
             \x20         docker_bip: 172.31.{n}.1/24\n\
             \x20         docker_iptables: false\n\
             \x20         docker_ip_forward: false\n\
             \x20         docker_ip_masq: false\n\
             \x20         docker_shutdown_timeout: 2\n",
            name = self.name,
            addr = self.ns.addr(),
            key = key.display(),
            dir = dir.display(),
            run = self.run_dir.display(),
            n = self.ns.index() + 1,
        )
    }

    /// Stops the engine the playbook started (SIGTERM, then everything of
    /// it killed) and removes its mounts and runtime dir.
    fn stop_engine(&mut self) {
        if let Some(pid) = self.dockerd_pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let end = Instant::now() + Duration::from_secs(15);
            while sys::pid_alive(pid) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let pids: Vec<u32> = self.footprint.processes().iter().map(|p| p.pid).collect();
        if !pids.is_empty() {
            sys::kill_trees(&pids, Duration::from_secs(10));
        }
        let fp = &self.footprint;
        let left = sys::unmount_under(&[&fp.data_root, &fp.exec_root, &fp.run_dir]);
        if !left.is_empty() {
            eprintln!("playbooks test: could not unmount {left:?}");
        }
        let _ = std::fs::remove_dir(format!("/run/containerd/runc/{}", fp.containerd_namespace));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_engine();
        drop(self.sshd.take());
        drop(self.forwarder.take());
        // The sessions sshd forked and anything they left behind.
        let left = sys::processes_in_netns(self.ns.path());
        if !left.is_empty() {
            sys::kill_trees(&left, Duration::from_secs(10));
        }
        if self.footprint.mounts().is_empty() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// Kills the SSH connection masters Ansible left (ControlPersist) under
/// `dir` when dropped.
struct SshMasters(PathBuf);

impl Drop for SshMasters {
    fn drop(&mut self) {
        let needle = self.0.to_string_lossy().into_owned();
        let pids: Vec<u32> = sys::processes_mentioning(&needle)
            .iter()
            .filter(|p| p.cmdline.starts_with("ssh"))
            .map(|p| p.pid)
            .collect();
        if !pids.is_empty() {
            sys::kill_trees(&pids, Duration::from_secs(5));
        }
    }
}

/// Makes host `name` in namespace `ns`: its sshd (own host key and config,
/// key-only root login with `client_key`), and its loopback forwarder.
fn make_host(
    name: &str,
    ns: &Netns,
    work: &Path,
    client_pub: &Path,
    forwards: &[(u16, PathBuf)],
) -> Host {
    let dir = ServerDir::new(&format!("pb{name}")).unwrap();
    let id = sys::unique_id();
    let run_dir = Path::new(sys::RUN_DIR).join(&id);
    std::fs::create_dir_all(&run_dir).unwrap();
    let data_root = dir.path().join("data");
    // Lets the test kit's cleanup of a killed run find the data root.
    std::fs::write(
        run_dir.join("data-root"),
        data_root.as_os_str().as_encoded_bytes(),
    )
    .unwrap();
    let mut host = Host {
        name: name.to_owned(),
        ns: ns.clone(),
        footprint: Footprint {
            run_dir: run_dir.clone(),
            exec_root: run_dir.join("exec"),
            data_root,
            containerd_namespace: format!("lkt{id}"),
        },
        dir,
        run_dir,
        sshd: None,
        forwarder: None,
    };

    // sshd, inside the namespace: everything private but the binary.
    let ssh_dir = work.join(format!("sshd-{name}"));
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let host_key = ssh_dir.join("host_ed25519");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key),
    );
    let config = ssh_dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress {addr}:22\nHostKey {key}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PrintMotd no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            addr = ns.addr(),
            key = host_key.display(),
            dir = ssh_dir.display(),
            auth = client_pub.display(),
        ),
    )
    .unwrap();
    // sshd's privilege separation dir (Debian's ssh.service makes it).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut cmd = ns.command("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f"]).arg(&config);
    let mut sshd = Logged::spawn("sshd", cmd, &host.dir.log_path("sshd")).unwrap();
    let addr = SocketAddr::from((ns.addr(), 22));
    sshd.wait_ready(Duration::from_secs(20), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
    })
    .unwrap_or_else(|e| panic!("sshd of {name}: {e}"));
    host.sshd = Some(sshd);

    // 127.0.0.1:PORT in the namespace → the host's loopback.
    let script = work.join("ns_forwarder.py");
    std::fs::write(&script, NS_FORWARDER).unwrap();
    let mut cmd = ns.command("/usr/bin/python3");
    cmd.arg(&script).args(
        forwards
            .iter()
            .map(|(port, path)| format!("{port}={}", path.display())),
    );
    let log = host.dir.log_path("forwarder");
    let mut fwd = Logged::spawn("forwarder", cmd, &log).unwrap();
    fwd.wait_ready(Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
    })
    .unwrap_or_else(|e| panic!("forwarder of {name}: {e}"));
    host.forwarder = Some(fwd);
    host
}

// ---------------------------------------------------------------------
// Ansible
// ---------------------------------------------------------------------

/// Runs playbooks with a generated inventory and ansible.cfg.
struct Ansible {
    work: PathBuf,
    inventory: PathBuf,
    config: PathBuf,
    /// Runs so far (each gets its own log).
    runs: std::cell::Cell<u32>,
}

/// The outcome of one `ansible-playbook` run.
struct Run {
    ok: bool,
    output: String,
    /// PLAY RECAP: host → counters (`ok`, `changed`, `failed`, ...).
    recap: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Run {
    fn changed(&self, host: &str) -> u32 {
        self.recap
            .get(host)
            .and_then(|r| r.get("changed"))
            .copied()
            .unwrap_or_else(|| panic!("{host} not in the recap:\n{}", self.output))
    }

    /// The names of the tasks that reported `changed`, with the host.
    fn changed_tasks(&self) -> Vec<String> {
        let mut task = String::new();
        let mut out = Vec::new();
        for line in self.output.lines() {
            if let Some(t) = line.strip_prefix("TASK [") {
                task = t.split(']').next().unwrap_or("").to_owned();
            } else if let Some(rest) = line.strip_prefix("changed: [") {
                out.push(format!("{task} @ {}", rest.split(']').next().unwrap_or("")));
            }
        }
        out
    }

    /// Index of the first line containing `needle`, or panics.
    fn line_of(&self, needle: &str) -> usize {
        self.output
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the playbook's output:\n{}", self.output))
    }
}

impl Ansible {
    fn playbook(&self, name: &str, extra: &[&str], timeout: Duration) -> Run {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let log = self
            .work
            .join(format!("ansible-{n}-{}.log", name.trim_end_matches(".yml")));
        let started = Instant::now();
        let (status, output) = run_logged(
            Command::new("ansible-playbook")
                .current_dir(playbooks_dir())
                .arg("-i")
                .arg(&self.inventory)
                .arg(name)
                .args(extra)
                .env("ANSIBLE_CONFIG", &self.config)
                .env("ANSIBLE_HOST_KEY_CHECKING", "False")
                .env("ANSIBLE_NOCOLOR", "1")
                .env("ANSIBLE_FORCE_COLOR", "0"),
            &log,
            timeout,
        );
        eprintln!(
            "ansible-playbook {name} {extra:?}: {status:?} after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let status = status.unwrap_or_else(|| {
            panic!("ansible-playbook {name} did not finish within {timeout:?}:\n{output}")
        });
        let mut recap = BTreeMap::new();
        let mut in_recap = false;
        for line in output.lines() {
            if line.starts_with("PLAY RECAP") {
                in_recap = true;
                continue;
            }
            if !in_recap {
                continue;
            }
            let Some((host, counters)) = line.split_once(" : ") else {
                continue;
            };
            let counters = counters
                .split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect();
            recap.insert(host.trim().to_owned(), counters);
        }
        Run {
            ok: status.success(),
            output,
            recap,
        }
    }
}

/// The events of an `etcdctl watch -w json` log: (revision, key, value or
/// None for a delete), in order.
fn watch_events(log: &Path) -> Vec<(i64, String, Option<Value>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let Ok(f) = File::open(log) else { return out };
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(resp) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        for ev in resp["Events"].as_array().into_iter().flatten() {
            let kv = &ev["kv"];
            let key = kv["key"]
                .as_str()
                .and_then(|k| b64.decode(k).ok())
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .unwrap_or_default();
            let delete = ev["type"].as_i64() == Some(1) || ev["type"] == "DELETE";
            let value = if delete {
                None
            } else {
                kv["value"]
                    .as_str()
                    .and_then(|v| b64.decode(v).ok())
                    .and_then(|v| serde_json::from_slice(&v).ok())
            };
            out.push((kv["mod_revision"].as_i64().unwrap_or(0), key, value));
        }
    }
    out
}

fn node_list(c: &common::TestCluster) -> Vec<Value> {
    serde_json::from_str(&c.ok(c.home.path(), &["node", "list", "-o", "json"])).unwrap()
}

fn node<'a>(nodes: &'a [Value], name: &str) -> Option<&'a Value> {
    nodes.iter().find(|n| n["name"] == name)
}

/// The app's instances: (node, state, health).
fn instances(c: &common::TestCluster, app: &Path) -> Vec<(String, String, String)> {
    let ps: Value = serde_json::from_str(&c.ok(app, &["ps", "-o", "json"])).unwrap();
    ps["procs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["instances"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or("").to_owned();
            (s("node"), s("state"), s("health"))
        })
        .collect()
}

fn healthy_on(c: &common::TestCluster, app: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (node, state, health) in instances(c, app) {
        if state == "running" && health == "healthy" {
            *m.entry(node).or_default() += 1;
        }
    }
    m
}

fn curl_ping(addr: &str, pki: &Path, with_cert: bool) -> (bool, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(pki.join("docker-ca.crt"));
    if with_cert {
        cmd.arg("--cert")
            .arg(pki.join("deployd/client.crt"))
            .arg("--key")
            .arg(pki.join("deployd/client.key"));
    }
    // curl's own --max-time bounds it; the outer bound is a safety net.
    run_bounded(
        cmd.arg(format!("https://{addr}/_ping")),
        Duration::from_secs(30),
    )
}

#[test]
fn add_and_remove_nodes_with_ansible() {
    let started = Instant::now();
    let c = common::TestCluster::start();
    c.admin_with_node("test");
    let home = c.home.path();
    let work_dir = ServerDir::new("pb").unwrap();
    let work = work_dir.path().to_owned();
    let _masters = SshMasters(work.join("cp"));
    std::fs::create_dir_all(work.join("cp")).unwrap();

    // The hosts: two namespaces on a bridge, each with an sshd and a
    // forwarder of the registry's and console's loopback ports.
    let net = TestNetwork::create(2).expect("test network");
    let client_key = work.join("id_ed25519");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&client_key),
    );
    let registry: SocketAddr = c.registry.host().parse().unwrap();
    let forwards = vec![
        (registry.port(), work.join("registry.sock")),
        (c.console.addr.port(), work.join("console.sock")),
    ];
    forward_unix_to_tcp(&forwards[0].1, registry);
    forward_unix_to_tcp(&forwards[1].1, c.console.addr);
    let client_pub = work.join("id_ed25519.pub");
    let hosts: Vec<Host> = ["node-a", "node-b"]
        .iter()
        .zip(net.namespaces())
        .map(|(name, ns)| make_host(name, ns, &work, &client_pub, &forwards))
        .collect();
    eprintln!("hosts ready after {:.1} s", started.elapsed().as_secs_f64());

    // Inventory: the control host is this one (the admin's lain login),
    // the nodes are reached over SSH in their namespaces.
    let pki = work.join("pki");
    let inventory = work.join("inventory.yml");
    let health = |s: &common::Service| format!("http://{}/healthz", s.addr);
    std::fs::write(
        &inventory,
        format!(
            "all:\n  vars:\n\
             \x20   ansible_python_interpreter: /usr/bin/python3\n\
             \x20   lain_cli: {lain}\n\
             \x20   lain_config_dir: {config}\n\
             \x20   lain_cluster: test\n\
             \x20   lain_pki_dir: {pki}\n\
             \x20   lain_state_dir: {work}/state\n\
             \x20   lain_deployd_user: root\n\
             \x20   lain_deployd_group: root\n\
             \x20   lain_node_alive_timeout: 60\n\
             \x20   lain_node_drain_timeout: 120\n\
             \x20   lain_control_check_units: false\n\
             \x20   lain_registry: {registry}\n\
             \x20   lain_health_urls:\n\
             \x20     sso: {sso}\n      console: {console}\n\
             \x20     deployd: {deployd}\n      webrouter: {webrouter}\n\
             \x20 children:\n\
             \x20   control:\n      hosts:\n        localhost:\n\
             \x20         ansible_connection: local\n\
             \x20   nodes:\n      hosts:\n{nodes}",
            lain = env!("CARGO_BIN_EXE_lain"),
            config = home.join("lain").display(),
            pki = pki.display(),
            work = work.display(),
            registry = c.registry.host(),
            sso = health(&c.sso),
            console = health(&c.console),
            deployd = health(&c.deployd),
            webrouter = health(&c.webrouter),
            nodes = hosts
                .iter()
                .map(|h| h.inventory_vars(&client_key))
                .collect::<String>(),
        ),
    )
    .unwrap();
    let config = work.join("ansible.cfg");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nforks = 10\ntimeout = 20\nretry_files_enabled = False\n\
             local_tmp = {w}/ansible-local\nremote_tmp = {w}/ansible-remote\n\
             [ssh_connection]\npipelining = True\ncontrol_path = {w}/cp/%%C\n\
             ssh_args = -o ControlMaster=auto -o ControlPersist=60s \
             -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no\n",
            w = work.display()
        ),
    )
    .unwrap();
    let ansible = Ansible {
        work: work.clone(),
        inventory,
        config,
        runs: Default::default(),
    };

    // Every change to etcd's /lain/ keys, in order, to check that a node
    // is registered cordoned and made schedulable only once seen alive.
    let watch_log = work.join("etcd-watch.out");
    let mut watch_cmd = Command::new("etcdctl");
    watch_cmd.args([
        "--endpoints",
        &c.etcd.endpoint(),
        "watch",
        "--prefix",
        "/lain/",
        "-w",
        "json",
    ]);
    let _watch = Logged::spawn("etcd-watch", watch_cmd, &watch_log).unwrap();

    // ---- add-node.yml, for real -----------------------------------------
    let add = ansible.playbook("add-node.yml", &[], Duration::from_secs(150));
    assert!(add.ok, "add-node.yml failed:\n{}", add.output);
    // The order of its tasks: registered cordoned, seen alive, uncordoned.
    let (reg, alive, unc) = (
        add.line_of("TASK [Register the node (a new node cordoned)"),
        add.line_of("TASK [Poll `lain node list` until the node is alive]"),
        add.line_of("TASK [Uncordon the node, now that deployd has seen it alive]"),
    );
    assert!(reg < alive && alive < unc, "{}", add.output);

    let nodes = node_list(&c);
    for h in &hosts {
        let n =
            node(&nodes, &h.name).unwrap_or_else(|| panic!("{} not registered: {nodes:?}", h.name));
        assert_eq!(n["liveness"], "alive", "{n}");
        assert_eq!(n["schedulable"], true, "{n}");
        assert_eq!(n["docker"]["kind"], "tcp", "{n}");
        assert_eq!(
            n["docker"]["address"],
            format!("{}:2376", h.ns.addr()),
            "{n}"
        );
        assert_eq!(
            n["docker"]["tls"]["ca_cert"],
            pki.join("docker-ca.crt").to_str().unwrap()
        );
        assert_eq!(n["address"], h.ns.addr().to_string());
        assert_eq!(n["cpu_millis"], 2000);
        assert_eq!(n["memory_bytes"], 2u64 << 30);

        // In etcd: the first registration was cordoned, and it became
        // schedulable only after deployd had recorded the node alive.
        let events = watch_events(&watch_log);
        let reg_key = format!("/lain/nodes/{}", h.name);
        let obs_key = format!("/lain/observed-nodes/{}", h.name);
        let first = events
            .iter()
            .find(|(_, k, _)| *k == reg_key)
            .unwrap_or_else(|| panic!("no write of {reg_key} seen: {events:?}"));
        assert_eq!(first.2.as_ref().unwrap()["schedulable"], false, "{first:?}");
        let seen_alive = events
            .iter()
            .find(|(_, k, v)| *k == obs_key && v.as_ref().is_some_and(|v| v["liveness"] == "alive"))
            .unwrap_or_else(|| panic!("{} never observed alive: {events:?}", h.name))
            .0;
        let schedulable = events
            .iter()
            .find(|(_, k, v)| *k == reg_key && v.as_ref().is_some_and(|v| v["schedulable"] == true))
            .unwrap_or_else(|| panic!("{} never made schedulable: {events:?}", h.name))
            .0;
        assert!(
            first.0 < seen_alive && seen_alive < schedulable,
            "{}: registered at {}, alive at {seen_alive}, schedulable at {schedulable}",
            h.name,
            first.0
        );

        // The engine answers over TLS to deployd's certificate only.
        let addr = format!("{}:2376", h.ns.addr());
        let (ok, out) = curl_ping(&addr, &pki, true);
        assert!(
            ok && out == "OK",
            "TLS ping of {addr} with a client certificate: {out}"
        );
        let (ok, out) = curl_ping(&addr, &pki, false);
        assert!(
            !ok && !out.contains("OK"),
            "{addr} answered without a client certificate: {out}"
        );
        // dockerd runs inside the host's namespace (not the root one).
        let pid = h.dockerd_pid().expect("dockerd runs");
        let ns_of = |p: &str| std::fs::read_link(p).unwrap();
        assert_eq!(
            ns_of(&format!("/proc/{pid}/ns/net")),
            ns_of(&format!(
                "/proc/{}/ns/net",
                h.sshd.as_ref().unwrap().pid().unwrap()
            )),
        );
    }
    eprintln!("nodes added after {:.1} s", started.elapsed().as_secs_f64());

    // ---- an app on the new nodes ------------------------------------------
    // The harness's own node takes no new instance, so they all land on
    // the nodes the playbook added.
    c.ok(home, &["node", "cordon", "node-1"]);
    let app_dir = ServerDir::new("pb-app").unwrap();
    let app = app_dir.path();
    common::write_app_with(app, 1, 1);
    c.ok(app, &["app", "create", "hello"]);
    c.ok(app, &["build"]);
    c.ok(app, &["push"]);
    c.ok(app, &["deploy"]);
    c.ok(app, &["scale", "web", "--num-instances", "4"]);
    c.wait(
        "4 healthy instances on node-a and node-b",
        Duration::from_secs(90),
        || {
            let on = healthy_on(&c, app);
            on.values().sum::<usize>() == 4
                && on.get("node-a").is_some_and(|n| *n >= 1)
                && on.get("node-b").is_some_and(|n| *n >= 1)
                && !on.contains_key("node-1")
        },
    );
    c.wait(
        "the app through the router",
        Duration::from_secs(30),
        || {
            c.through_router("hello.lain.local", "/index.html")
                .is_some_and(|(code, body)| code == 200 && body.starts_with("hello v1"))
        },
    );
    assert!(
        !hosts[0].our_containers().is_empty(),
        "no container of the app on node-a's engine"
    );
    // `lain node list` counts them too (what remove-node.yml waits on).
    c.wait(
        "`lain node list` to count 4 instances on node-a and node-b",
        Duration::from_secs(20),
        || {
            let nodes = node_list(&c);
            let count = |name: &str| {
                node(&nodes, name)
                    .and_then(|n| n["instances"].as_u64())
                    .unwrap_or(0)
            };
            count("node-a") >= 1 && count("node-a") + count("node-b") == 4 && count("node-1") == 0
        },
    );
    eprintln!(
        "app deployed after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // cluster-health.yml passes on a healthy cluster.
    let health_run = ansible.playbook("cluster-health.yml", &[], Duration::from_secs(90));
    assert!(
        health_run.ok,
        "cluster-health.yml failed:\n{}",
        health_run.output
    );

    // ---- add-node.yml again: nothing changes ------------------------------
    // An operator cordons node-b on purpose; the re-run must leave it so.
    c.ok(home, &["node", "cordon", "node-b"]);
    let again = ansible.playbook("add-node.yml", &[], Duration::from_secs(120));
    assert!(again.ok, "add-node.yml (again) failed:\n{}", again.output);
    for host in ["node-a", "node-b"] {
        assert_eq!(
            again.changed(host),
            0,
            "add-node.yml is not idempotent; changed: {:?}\n{}",
            again.changed_tasks(),
            again.output
        );
    }
    let nodes = node_list(&c);
    assert_eq!(node(&nodes, "node-b").unwrap()["schedulable"], false);
    assert_eq!(node(&nodes, "node-a").unwrap()["schedulable"], true);
    c.ok(home, &["node", "uncordon", "node-b"]);

    // ---- remove-node.yml on node-a ------------------------------------------
    let remove = ansible.playbook(
        "remove-node.yml",
        &["--limit", "node-a"],
        Duration::from_secs(180),
    );
    assert!(remove.ok, "remove-node.yml failed:\n{}", remove.output);
    let (drain, empty, gone) = (
        remove.line_of("TASK [Drain the node]"),
        remove.line_of("TASK [Wait until the node's engine runs no container of lain's]"),
        remove.line_of("TASK [Deregister the node]"),
    );
    assert!(drain < empty && empty < gone, "{}", remove.output);
    assert!(
        node(&node_list(&c), "node-a").is_none(),
        "node-a still registered"
    );
    assert!(
        !c.ok(home, &["node", "list"]).contains("node-a"),
        "node-a in `lain node list`"
    );
    assert_eq!(
        hosts[0].our_containers(),
        Vec::<String>::new(),
        "containers of lain left on node-a's engine"
    );
    // The app kept its instances (moved to node-b) and keeps answering.
    c.wait(
        "4 healthy instances, all on node-b",
        Duration::from_secs(60),
        || healthy_on(&c, app) == BTreeMap::from([("node-b".to_owned(), 4)]),
    );
    c.wait(
        "`lain node list` to count 4 instances on node-b",
        Duration::from_secs(20),
        || node(&node_list(&c), "node-b").is_some_and(|n| n["instances"] == 4),
    );
    let (code, body) = c
        .through_router("hello.lain.local", "/index.html")
        .expect("the router answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("hello v1"), "{body}");
    assert!(
        hosts[0].dockerd_pid().is_some(),
        "the engine was stopped without being asked to"
    );

    // Again, now asking to stop the engine: the node is already gone, so
    // only the engine stops.
    let stop = ansible.playbook(
        "remove-node.yml",
        &["--limit", "node-a", "-e", "lain_node_stop_engine=true"],
        Duration::from_secs(120),
    );
    assert!(stop.ok, "remove-node.yml (stop) failed:\n{}", stop.output);
    assert_eq!(
        stop.changed_tasks(),
        vec!["Stop the engine (daemon mode) @ node-a".to_owned()],
        "{}",
        stop.output
    );
    wait_until("node-a's dockerd to exit", Duration::from_secs(30), || {
        hosts[0].dockerd_pid().is_none()
    });

    // ---- cluster-health.yml fails, saying why -------------------------------
    net.ns(1).cut().unwrap();
    c.wait("node-b no longer alive", Duration::from_secs(20), || {
        node(&node_list(&c), "node-b").is_some_and(|n| n["liveness"] != "alive")
    });
    let sick = ansible.playbook(
        "cluster-health.yml",
        &["--limit", "control"],
        Duration::from_secs(90),
    );
    assert!(
        !sick.ok,
        "cluster-health.yml passed with node-b cut off:\n{}",
        sick.output
    );
    assert!(
        sick.output
            .contains("The cluster is unhealthy: node node-b"),
        "{}",
        sick.output
    );
    net.ns(1).heal().unwrap();

    eprintln!("done after {:.1} s", started.elapsed().as_secs_f64());
}
