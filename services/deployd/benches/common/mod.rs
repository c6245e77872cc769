//! Helpers shared by deployd's system benchmarks (`failover`,
//! `footprint`): the fake Docker engine, reading a process's memory and
//! CPU from `/proc`, summary statistics, desired procs, and etcd access
//! as console and node management would have.
#![allow(dead_code)]

pub mod fake_engine;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lain_store::{Component, DesiredProc, HealthCheck, ProcType, Store};
use lain_testkit::http;

/// The deployd binary of this package (set by cargo for benches too).
pub const BIN: &str = env!("CARGO_BIN_EXE_deployd");

/// Connects to etcd and takes the role `component` for writes.
pub async fn store_as(endpoint: &str, component: Component) -> Store {
    tokio::time::timeout(Duration::from_secs(10), Store::connect(&[endpoint]))
        .await
        .expect("connect to etcd in time")
        .expect("connect to etcd")
        .as_writer(component)
}

/// `VmRSS`, `VmHWM` (both KiB) and `Threads` of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
}

pub fn mem(pid: u32) -> Option<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        threads: field("Threads:").unwrap_or(0),
    })
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (1-based) are 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clk_tck() as f64))
}

fn clk_tck() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The 1-minute load average, for the record.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Median, min and max of samples (sorted copy; empty gives zeros).
pub fn summary(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (median, s[0], s[n - 1])
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The value of an unlabelled sample in deployd's `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let (code, body) = http::get(addr, "127.0.0.1", "/metrics")?;
    if code != 200 {
        return None;
    }
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Raises this process's soft open-file limit to its hard limit (the
/// fake engines and probes hold many connections).
pub fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// A desired proc as console writes it. `web` gets port 80, an HTTP
/// health check on `/` and a mountpoint; otherwise a worker with neither
/// (healthy once running).
pub fn desired(
    app: &str,
    proc: &str,
    image: &str,
    cmd: &[&str],
    instances: u32,
    web: bool,
) -> DesiredProc {
    DesiredProc {
        app: app.into(),
        proc: proc.into(),
        proc_type: if web { ProcType::Web } else { ProcType::Worker },
        release: "v1".into(),
        image: image.into(),
        instances,
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 100,
        memory_bytes: 32 << 20,
        env: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
        secrets: vec![],
        port: web.then_some(80),
        healthcheck: web.then(|| HealthCheck::Http { path: "/".into() }),
        mountpoints: if web {
            vec![format!("{app}.lain.bench")]
        } else {
            vec![]
        },
        https_only: false,
        volumes: vec![],
        labels: BTreeMap::new(),
        kill_timeout_secs: 10,
        setup_time_secs: 0,
        stateful: false,
        filters: vec![],
        services: vec![],
        backups: vec![],
        restore: None,
        portal: None,
        generation: 1,
    }
}

/// `--name value` from the command line (cargo bench passes `--bench`
/// too, which is ignored).
/// Whether the binary runs as `cargo bench` (which passes `--bench`), not
/// as one of `cargo test --all-targets`' targets.
pub fn is_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
