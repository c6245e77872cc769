//! console's status endpoint under load, and its idle memory (issue 6;
//! DESIGN.md §6: under 32 MB RSS).
//!
//! Setup, as tests/deploy_api.rs does it: a real etcd
//! (`lain_testkit::Etcd`), sso in-process on loopback (only its keys are
//! used: tokens are signed with sso's own key in the shape its token
//! endpoint gives), the `console` binary of this build with a SQLite
//! database and JSON logs at info level. Three nodes are registered and
//! alive; app `hello` is created, a release with three procs (web × 4,
//! worker.queue × 3, worker.mail × 3) is registered and deployed through
//! the API; then, as deployd would, 10 instance records (running,
//! healthy) and 3 converged rollouts are written to etcd.
//!
//! Measured:
//! 1. console's VmRSS / VmHWM (`/proc/PID/status`) 3 s after start, 2 s
//!    after the setup, and 3 s after the load;
//! 2. `GET /healthz` from `--concurrency` keep-alive connections for
//!    `--seconds`: the baseline (HTTP, no auth, no database, no etcd);
//! 3. `GET /api/v1/apps/hello/status` with a valid bearer token the same
//!    way: token verification, the app looked up in SQLite, the desired
//!    procs, instances and rollouts read from etcd, the JSON built.
//!
//! Each load phase is bounded in time and in requests (`--max-requests`);
//! everything runs on loopback. Printed: requests/s, p50 / p99 / max
//! latency, console's CPU time per request, the ratio healthz / status,
//! and a `RESULT` line for the idle RSS goal.
//!
//! Run: `cargo bench -p console --bench status`
//! Options: `-- --concurrency 32 --seconds 10 --max-requests 2000000`.
//! `LAIN_BENCH_KEEP=1` keeps console's directory (config, database, log).
//! Under `cargo test --all-targets` (no `--bench`): 1 s of each load from
//! 4 connections, a few hundred requests at most, to check that it works.

// sso in-process, shared with the integration tests.
#[path = "../tests/common/mod.rs"]
mod common;

use common::TestSso;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lain_store::{
    unix_millis, Capacity, Component, DesiredKey, DockerEndpoint, Health, InstanceState, Liveness,
    NodeKey, NodeRegistration, ObservedInstance, ObservedKey, ObservedNode, ObservedNodeKey,
    ProcRollout, RolloutKey, RolloutPhase, Store,
};
use lain_testkit::process::{Logged, ServerDir};
use lain_testkit::Etcd;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_console");
const GOAL_MIB: f64 = 32.0;
const G: u64 = 1 << 30;

const LAIN_YAML: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello
  port: 8080
  num_instances: 4
  memory: 128m
  env:
    - GREETING=hi
worker.queue:
  cmd: ./hello queue
  num_instances: 3
  memory: 64m
worker.mail:
  cmd: ./hello mail
  num_instances: 3
  memory: 64m
";

/// Whether the binary runs as `cargo bench` (which passes `--bench`), not
/// as one of `cargo test --all-targets`' targets.
fn is_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `--name value` from the command line.
fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) in KiB.
fn mem(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process has used so far (USER_HZ = 100).
fn cpu_time(pid: u32) -> Duration {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let Some(end) = text.rfind(')') else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = text[end + 2..].split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 (utime, stime), counted from the state (field 3).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_mem(when: &str, pid: u32) -> (u64, u64) {
    let (rss, hwm) = mem(pid).expect("console's /proc/PID/status");
    println!(
        "  RSS {when:<28} VmRSS {:6.1} MiB   VmHWM {:6.1} MiB",
        mib(rss),
        mib(hwm)
    );
    (rss, hwm)
}

struct Console {
    proc: Logged,
    base: String,
    dir: ServerDir,
}

fn start_console(issuer: &str, etcd: &str) -> Console {
    let dir = ServerDir::new("console-bench").unwrap();
    let key_path = dir.path().join("secrets.key");
    let key = lain_store::secret::SecretsKey::generate();
    std::fs::write(&key_path, key.to_base64().as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lain_testkit::free_port()));
    let config = format!(
        "listen = \"{addr}\"\nlog_format = \"json\"\n\
         database = \"sqlite://{d}/console.db?mode=rwc\"\n\
         etcd = [\"{etcd}\"]\n\
         secrets_key_file = \"{k}\"\ncluster_domain = \"lain.local\"\n\
         [auth]\nissuer = \"{issuer}\"\nadmin_group = \"lain-admins\"\n",
        d = dir.path().display(),
        k = key_path.display(),
    );
    let path = dir.path().join("console.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config").arg(&path).env("RUST_LOG", "info");
    let mut proc = Logged::spawn("console", cmd, &dir.log_path("console")).unwrap();
    proc.wait_ready(Duration::from_secs(20), || {
        lain_testkit::http::get(addr, "127.0.0.1", "/healthz").is_some_and(|(c, _)| c == 200)
    })
    .expect("console starts");
    Console {
        proc,
        base: format!("http://{addr}"),
        dir,
    }
}

fn registration() -> NodeRegistration {
    NodeRegistration {
        docker: DockerEndpoint::Unix {
            socket: "/var/run/docker.sock".into(),
        },
        address: "127.0.0.1".into(),
        labels: Default::default(),
        capacity: Capacity {
            cpu_millis: 4000,
            memory_bytes: 4 * G,
        },
        schedulable: true,
        draining: false,
        drain_volumes: false,
        registered_at_ms: 0,
    }
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, String) {
    let r = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Nodes, app, release, deploy through the API; then instances and
/// rollouts as deployd writes them. Returns the number of instances.
async fn setup(etcd: &str, base: &str, token: &str) -> usize {
    let plain = Store::connect(&[etcd.to_owned()]).await.unwrap();
    let nodes = plain.as_writer(Component::NodeManagement);
    let deployd = plain.as_writer(Component::Deployd);
    let ms = unix_millis();
    let names = ["node-1", "node-2", "node-3"];
    for name in names {
        nodes
            .put(&NodeKey::new(name).unwrap(), &registration())
            .await
            .unwrap();
        let observed = ObservedNode {
            liveness: Liveness::Alive,
            last_seen_ms: ms,
            since_ms: ms,
            docker_version: Some("24.0.7".into()),
            instances: 0,
            message: None,
        };
        deployd
            .put(&ObservedNodeKey::new(name).unwrap(), &observed)
            .await
            .unwrap();
    }

    let client = reqwest::Client::new();
    let (s, t) = call(
        &client,
        base,
        "/api/v1/apps",
        token,
        json!({"name": "hello"}),
    )
    .await;
    assert_eq!(s, 201, "create app: {t}");
    let version = format!("1700000001-{:040x}", 1);
    let release = json!({
        "version": version,
        "image": format!("registry.lain.local:5000/hello:release-{version}"),
        "digest": format!("sha256:{:064x}", 1),
        "lain_yaml": LAIN_YAML,
    });
    let (s, t) = call(&client, base, "/api/v1/apps/hello/releases", token, release).await;
    assert_eq!(s, 201, "register release: {t}");
    let (s, t) = call(
        &client,
        base,
        "/api/v1/apps/hello/deploy",
        token,
        json!({"version": version}),
    )
    .await;
    assert_eq!(s, 200, "deploy: {t}");

    // What deployd would write once every instance runs.
    let desired = plain
        .list(&DesiredKey::of_app("hello").unwrap())
        .await
        .unwrap()
        .items;
    assert_eq!(desired.len(), 3, "three desired procs");
    let mut n = 0;
    for e in &desired {
        let d = &e.value;
        for i in 1..=d.instances {
            let record = ObservedInstance {
                node: names[n % names.len()].into(),
                container_id: Some(format!("{:064x}", n + 1)),
                generation: d.generation,
                release: d.release.clone(),
                image: d.image.clone(),
                state: InstanceState::Running,
                health: Health::Healthy,
                address: d.port.map(|_| format!("127.0.0.1:{}", 31000 + n)),
                restarts: (n % 3) as u32,
                started_at_ms: Some(ms),
                updated_at_ms: ms,
                message: None,
                instance: i,
                spec: format!("{:016x}", d.generation),
                recent_restarts_ms: Vec::new(),
                volumes_from: None,
            };
            let id = format!("{i}-{}", d.generation);
            deployd
                .put(&ObservedKey::new("hello", &d.proc, &id).unwrap(), &record)
                .await
                .unwrap();
            n += 1;
        }
        let rollout = ProcRollout {
            generation: d.generation,
            spec: format!("{:016x}", d.generation),
            phase: RolloutPhase::Converged,
            last_good: None,
            failed_spec: None,
            message: None,
            updated_at_ms: ms,
            homes: Default::default(),
        };
        deployd
            .put(&RolloutKey::new("hello", &d.proc).unwrap(), &rollout)
            .await
            .unwrap();
    }
    n
}

struct Load {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    bytes: u64,
}

impl Load {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// `GET url` from `concurrency` tasks, each on its own keep-alive
/// connection, until `seconds` pass or `max` requests were sent.
async fn load(url: &str, token: Option<&str>, concurrency: usize, seconds: f64, max: u64) -> Load {
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = url.to_owned();
        let token = token.map(str::to_owned);
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut bytes) = (0u64, 0u64);
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some(tok) = &token {
                    req = req.bearer_auth(tok);
                }
                match req.send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(b) => {
                            bytes += b.len() as u64;
                            latencies.push(t.elapsed());
                        }
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (latencies, errors, bytes)
        }));
    }
    let mut out = Load {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        bytes: 0,
    };
    for t in tasks {
        let (l, e, b) = t.await.expect("load task");
        out.latencies.extend(l);
        out.errors += e;
        out.bytes += b;
    }
    out.elapsed = start.elapsed();
    out.requests = out.latencies.len() as u64;
    out.latencies.sort();
    out
}

fn print_load(what: &str, l: &Load, cpu: Duration) {
    let per = if l.requests > 0 {
        cpu.as_secs_f64() * 1e6 / l.requests as f64
    } else {
        0.0
    };
    println!(
        "  {what:<8} {:>9.0} requests/s   p50 {:6.2} ms   p99 {:6.2} ms   max {:7.2} ms   \
         ({} ok, {} errors in {:.1} s; {} B/answer; console CPU {:.1} s = {:.0} µs/request)",
        l.rate(),
        l.pct(0.50),
        l.pct(0.99),
        l.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        l.requests,
        l.errors,
        l.elapsed.as_secs_f64(),
        l.bytes.checked_div(l.requests).unwrap_or(0),
        cpu.as_secs_f64(),
        per,
    );
}

fn main() {
    // Under `cargo test --all-targets` (no `--bench`): a short smoke run
    // of the same path, not a figure.
    let full = is_bench();
    let concurrency: usize = arg("--concurrency", if full { 32 } else { 4 });
    let seconds: f64 = arg("--seconds", if full { 10.0 } else { 1.0 });
    let max: u64 = arg("--max-requests", if full { 2_000_000 } else { 400 });
    let warmup = if full { 1.0 } else { 0.0 };

    println!(
        "console status bench: {concurrency} connections, {seconds} s per load (at most {max} requests); load average {}",
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let etcd = Etcd::start().expect("start etcd");
    let endpoint = etcd.endpoint();
    let sso = rt.block_on(TestSso::start());
    let mut console = start_console(&sso.issuer, &endpoint);
    if std::env::var_os("LAIN_BENCH_KEEP").is_some() {
        console.dir.keep();
        println!("  console's directory: {}", console.dir.path().display());
    }
    let pid = console.proc.pid().expect("console pid");
    let token = sso.token("alice", &[]);

    std::thread::sleep(Duration::from_secs(if full { 3 } else { 1 }));
    let (idle_rss, _) = print_mem("idle, after start", pid);
    let instances = rt.block_on(setup(&endpoint, &console.base, &token));
    std::thread::sleep(Duration::from_secs(if full { 2 } else { 0 }));
    let (setup_rss, _) = print_mem("after setup", pid);

    // The answer the load asks for.
    let status_url = format!("{}/api/v1/apps/hello/status", console.base);
    let body: Value = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(&status_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    });
    let procs = body["procs"].as_array().expect("procs");
    let seen: usize = procs
        .iter()
        .map(|p| p["instances"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(procs.len(), 3, "{body}");
    assert_eq!(seen, instances, "{body}");
    assert!(
        procs.iter().all(|p| p["rollout"]["phase"] == "converged"),
        "{body}"
    );
    println!("  state: 3 procs, {instances} instances, 3 rollouts");

    let healthz_url = format!("{}/healthz", console.base);
    let run = |url: &str, token: Option<&str>| {
        if warmup > 0.0 {
            rt.block_on(load(url, token, concurrency, warmup, max));
        }
        let cpu = cpu_time(pid);
        let l = rt.block_on(load(url, token, concurrency, seconds, max));
        (l, cpu_time(pid).saturating_sub(cpu))
    };
    println!("  load average before the load: {}", loadavg());
    let (healthz, healthz_cpu) = run(&healthz_url, None);
    print_load("healthz", &healthz, healthz_cpu);
    let (status, status_cpu) = run(&status_url, Some(&token));
    print_load("status", &status, status_cpu);
    println!("  load average after the load: {}", loadavg());
    std::thread::sleep(Duration::from_secs(if full { 3 } else { 0 }));
    let (after_rss, hwm) = print_mem("after the load", pid);
    let ratio = healthz.rate() / status.rate().max(1e-9);
    println!("  healthz / status: {ratio:.1}x");

    assert!(healthz.requests > 0 && status.requests > 0, "no answers");
    assert_eq!(healthz.errors, 0, "healthz errors");
    assert_eq!(status.errors, 0, "status errors");
    assert!(console.proc.is_running(), "console exited");

    let met = mib(idle_rss) < GOAL_MIB && mib(setup_rss) < GOAL_MIB;
    println!(
        "RESULT status {:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms), healthz {:.0} requests/s ({ratio:.1}x); \
         idle RSS {:.1} MiB (after setup {:.1}, after load {:.1}, peak {:.1}): goal < {GOAL_MIB} MB {}",
        status.rate(),
        status.pct(0.50),
        status.pct(0.99),
        healthz.rate(),
        mib(idle_rss),
        mib(setup_rss),
        mib(after_rss),
        mib(hwm),
        if met { "met" } else { "NOT met" },
    );
    drop(console);
    drop(etcd);
}
