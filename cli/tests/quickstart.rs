//! `scripts/quickstart` as a new user runs it: up (a whole one-node
//! cluster serving examples/hello through the router), up again (nothing
//! restarted, nothing redeployed), examples/notes deployed on it, up with
//! `--nodes 3` (two more Docker
//! nodes in network namespaces, used by the scheduler), then down, after
//! which nothing of it runs and no namespace, interface or mount is left.
//!
//! The script uses this build's binaries (`LAIN_BIN_DIR`), its own state
//! dir, port range, interface prefix and subnets, so it never meets a
//! quickstart the machine's user runs.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lain_testkit::http;

/// The quickstart's settings for this run, and `down` on drop.
struct Quickstart {
    dir: tempfile::TempDir,
    name: String,
    base: u16,
    net: String,
    bin: PathBuf,
    /// docker's `br-*` bridges before the run: an app network's bridge
    /// left after `down` is one more.
    bridges: Vec<String>,
}

impl Quickstart {
    fn new() -> Quickstart {
        // The daemons beside `lain`, built if this test runs alone.
        for daemon in ["sso", "console", "deployd", "webrouter"] {
            common::bin(daemon);
        }
        let bin = Path::new(env!("CARGO_BIN_EXE_lain"))
            .parent()
            .unwrap()
            .to_owned();
        let id = std::process::id();
        Quickstart {
            dir: tempfile::Builder::new()
                .prefix("lain-quickstart-test-")
                .tempdir()
                .unwrap(),
            // Interface names: NAME0, NAME1, NAMEv9 (at most 6 + 2 chars);
            // `l` first, as the script asks.
            name: format!("lq{}", id % 10_000),
            base: free_port_range(),
            // Above the test kit's 10.16-10.239 range.
            net: format!("10.{}.{}", 240 + id % 8, id % 250),
            bin,
            bridges: links()
                .into_iter()
                .filter(|l| l.starts_with("br-"))
                .collect(),
        }
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }

    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/lain-quickstart/{}", self.name))
    }

    fn script(&self, args: &[&str]) -> (Output, Duration) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/quickstart");
        let t = Instant::now();
        let out = Command::new(script)
            .args(args)
            .env("LAIN_BIN_DIR", &self.bin)
            .env("LAIN_QUICKSTART_DIR", self.state())
            .env("LAIN_QUICKSTART_NAME", &self.name)
            .env("LAIN_QUICKSTART_PORT_BASE", self.base.to_string())
            .env("LAIN_QUICKSTART_NET", &self.net)
            .env("LAIN_QUICKSTART_BRIDGE_NET", self.bridge_net())
            .env("LAIN_CONFIG_DIR", self.state().join("cli"))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/quickstart");
        (out, t.elapsed())
    }

    fn bridge_net(&self) -> String {
        // The next /24 up.
        let (head, last) = self.net.rsplit_once('.').unwrap();
        format!("{head}.{}", last.parse::<u16>().unwrap() + 1)
    }

    /// Runs the script, which must succeed; its output.
    fn ok(&self, args: &[&str]) -> (String, Duration) {
        let (out, took) = self.script(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "scripts/quickstart {args:?} failed ({}):\n{text}\n{}",
            out.status,
            self.logs()
        );
        (text, took)
    }

    /// The tail of every daemon's log, for a failure message.
    fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.state().join("logs")) {
            for e in entries.flatten() {
                all += &format!(
                    "--- {} ---\n{}\n",
                    e.path().display(),
                    lain_testkit::process::tail(&e.path(), 20)
                );
            }
        }
        all
    }

    fn lain(&self, dir: &Path, args: &[&str]) -> String {
        self.lain_with(dir, args, b"")
    }

    /// `lain ARGS` in `dir` with `stdin`, which must succeed; its stdout.
    fn lain_with(&self, dir: &Path, args: &[&str], stdin: &[u8]) -> String {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_lain"))
            .args(["--cluster", "quickstart"])
            .args(args)
            .current_dir(dir)
            .env("LAIN_CONFIG_DIR", self.state().join("cli"))
            .env(
                "DOCKER_HOST",
                format!("unix://{}/node-1.sock", self.run_dir().display()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "lain {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn http_port(&self) -> u16 {
        self.base + 80
    }

    fn console(&self) -> std::net::SocketAddr {
        format!("{}.1:{}", self.net, self.base + 5).parse().unwrap()
    }

    /// The daemons' pids, by name, from the script's pid files.
    fn pids(&self) -> Vec<(String, String)> {
        let mut pids: Vec<(String, String)> = std::fs::read_dir(self.run_dir())
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let name = name.strip_suffix(".pid")?.to_owned();
                        Some((name, std::fs::read_to_string(e.path()).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        pids.sort();
        pids
    }

    /// What of this quickstart is left on the machine: processes naming
    /// its paths, namespaces and interfaces with its prefix, mounts under
    /// its paths.
    fn leftovers(&self) -> Vec<String> {
        let state = self.state().to_string_lossy().into_owned();
        let run = self.run_dir().to_string_lossy().into_owned();
        let mut left = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours = cmdline.contains(&state)
                || cmdline.contains(&run)
                || cmdline.contains(&format!("-namespace {}-", self.name));
            if ours {
                left.push(format!(
                    "process {}: {cmdline}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
        let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        for line in String::from_utf8_lossy(&netns.stdout).lines() {
            if line.starts_with(&format!("{}-", self.name)) {
                left.push(format!("namespace {line}"));
            }
        }
        for name in links() {
            if name.starts_with(&self.name)
                || (name.starts_with("br-") && !self.bridges.contains(&name))
            {
                left.push(format!("interface {name}"));
            }
        }
        for line in std::fs::read_to_string("/proc/mounts").unwrap().lines() {
            let target = line.split(' ').nth(1).unwrap_or("");
            if target.starts_with(&state) || target.starts_with(&run) {
                left.push(format!("mount {target}"));
            }
        }
        left
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        // Even when the test fails: stop whatever the script started.
        let (out, _) = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "scripts/quickstart down failed while cleaning up:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The host's network interfaces, by name.
fn links() -> Vec<String> {
    let out = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// A base port whose next 99 ports are free on loopback.
fn free_port_range() -> u16 {
    for attempt in 0..50u16 {
        let base = 20_000 + (std::process::id() as u16 % 300 + attempt * 97) % 400 * 100;
        let held: Vec<_> = (1..100)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == 99 {
            return base;
        }
    }
    panic!("no free range of 100 ports on 127.0.0.1");
}

fn serves(q: &Quickstart) -> Option<String> {
    routed(q, "hello.lain.local", "/")
}

/// The body of `host` `path` through the quickstart's router, if 200.
fn routed(q: &Quickstart, host: &str, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], q.http_port()));
    http::get(addr, host, path)
        .filter(|(code, _)| *code == 200)
        .map(|(_, body)| body)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// examples/notes on the quickstart cluster, as its README says: its
/// secret set, built, pushed, deployed; both mountpoints answer and the
/// worker finds its secret file.
fn deploy_notes(q: &Quickstart) {
    let dir = q.state().join("apps/notes");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/notes"),
        &dir,
    );
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "notes",
        ],
    ] {
        let out = Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    q.lain(&dir, &["app", "create", "notes"]);
    let secret = b"quickstart-test-token";
    q.lain_with(&dir, &["secret", "set", "token"], secret);
    q.lain(&dir, &["build"]);
    q.lain(&dir, &["push"]);
    q.lain(&dir, &["deploy"]);
    for (host, path) in [
        ("notes.lain.local", "/"),
        ("notes.example.com", "/"),
        ("www.example.com", "/notes/"),
    ] {
        // `lain deploy` returns once the instances are healthy; the
        // router follows within moments.
        let end = Instant::now() + Duration::from_secs(20);
        let body = loop {
            if let Some(body) = routed(q, host, path) {
                break body;
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], q.http_port()));
            assert!(
                Instant::now() < end,
                "{host}{path} is not routed: {:?}\n{}",
                http::get(addr, host, path),
                q.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(body.contains("<h1>Notes</h1>"), "{host}{path}: {body}");
        // From the cached prepare layer.
        assert!(body.contains("<style>"), "{host}{path}: {body}");
    }
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = q.lain(&dir, &["logs", "tidy", "--tail", "5"]);
        assert!(
            !logs.contains("quickstart-test-token"),
            "the secret was logged: {logs}"
        );
        if logs.contains(&format!("token present ({} bytes)", secret.len())) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the worker never found its secret: {logs}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn quickstart_up_again_three_nodes_and_down() {
    let q = Quickstart::new();

    // Up from nothing: the app answers through the router.
    let (out, first) = q.ok(&[]);
    assert!(out.contains("lain quickstart is up"), "{out}");
    // quickstart prints "up" once the app answered. One clean-clone run
    // (2026-11-22, under load) saw the very next request miss; it is
    // retried for at most 5 s, and every miss is printed so that the
    // fault suite (issue 11) can chase it rather than it being hidden.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], q.http_port()));
    let end = Instant::now() + Duration::from_secs(5);
    while serves(&q).is_none() && Instant::now() < end {
        eprintln!(
            "MISS right after quickstart was up: {:?}",
            http::get(addr, "hello.lain.local", "/")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = serves(&q).unwrap_or_else(|| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], q.http_port()));
        panic!(
            "hello does not answer through the router: {:?}\n{out}\n{}",
            http::get(addr, "hello.lain.local", "/"),
            q.logs()
        )
    });
    assert!(body.contains("Hello from lain"), "{body}");
    // The console answers, and the CLI is logged in as the admin.
    let (code, _) = http::get(q.console(), "127.0.0.1", "/api/v1/openapi.json").unwrap();
    assert_eq!(code, 200);
    // The web console is set up: the admin signs in through sso (the
    // client, its redirect URI and its secret are right) and gets a session.
    let password = std::fs::read_to_string(q.state().join("admin.password")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let console = format!("http://{}", q.console());
        let r = b.get(format!("{console}/ui/login")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.contains("client_id=console-web"), "{to}");
        let page = b.get(&to).send().await.unwrap();
        assert_eq!(page.status(), 200, "sso's sign-in page for console-web");
        let form =
            lain_testkit::html::login_form(&page.text().await.unwrap(), "admin", password.trim());
        let authorize = to.split('?').next().unwrap().to_owned();
        let r = b.post(&authorize).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "sso signed the admin in");
        let callback = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            callback.starts_with(&format!("{console}/ui/callback")),
            "{callback}"
        );
        let r = b.get(&callback).send().await.unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
        let r = b.get(format!("{console}/ui/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("hello"), "the apps list");
    });
    let who = q.lain(q.state(), &["whoami"]);
    assert!(who.contains("admin"), "{who}");
    let status = q.lain(q.state(), &["cluster", "status"]);
    assert!(status.contains("node-1"), "{status}");
    // The admin's password: generated, only root reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(q.state().join("admin.password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "admin.password is {mode:o}");

    // The second example: prepare, release copy, a worker with a secret
    // file, two mountpoints.
    deploy_notes(&q);

    // Again: safe and quick, nothing restarted or redeployed.
    let pids = q.pids();
    assert!(pids.len() >= 7, "{pids:?}");
    let (out, again) = q.ok(&[]);
    assert!(out.contains("already runs"), "{out}");
    assert_eq!(q.pids(), pids, "a second run restarted something");
    assert!(serves(&q).is_some());

    // Three nodes: two more engines in namespaces, registered and alive;
    // scaled out, instances land there and the app still answers.
    let (_, grow) = q.ok(&["--nodes", "3"]);
    let app = q.state().join("apps/hello");
    let nodes: serde_json::Value =
        serde_json::from_str(&q.lain(&app, &["node", "list", "-o", "json"])).unwrap();
    for n in ["node-1", "node-2", "node-3"] {
        let node = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("{n} is not registered: {nodes}"));
        assert_eq!(node["liveness"], "alive", "{node}");
        assert_eq!(node["schedulable"], true, "{node}");
    }
    q.lain(&app, &["scale", "web", "--num-instances", "4"]);
    let ps: serde_json::Value = serde_json::from_str(&q.lain(&app, &["ps", "-o", "json"])).unwrap();
    let on: std::collections::BTreeSet<&str> = ps["procs"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "running")
        .filter_map(|i| i["node"].as_str())
        .collect();
    assert!(
        on.len() >= 2,
        "4 instances should spread over the nodes: {ps}"
    );
    assert!(serves(&q).is_some());

    // Down: nothing of it is left.
    let (_, down) = q.ok(&["down"]);
    assert!(serves(&q).is_none(), "the router still answers");
    let left = q.leftovers();
    assert!(left.is_empty(), "left after down: {left:#?}");
    println!(
        "quickstart: up {first:?} (binaries built), again {again:?}, --nodes 3 {grow:?}, down {down:?}"
    );
}
