//! Measures sso's token endpoint throughput and its idle RSS, against the
//! real binary on loopback.
//!
//! ```text
//! cargo build --release -p sso
//! cargo run --release -p sso --example token_load -- [--bin target/release/sso] [--concurrency 32] [--seconds 10]
//! ```
//!
//! It registers a confidential client with the `sso client add`
//! subcommand, starts `sso` on a free port with a fresh SQLite database,
//! waits for `/healthz`, reads the idle RSS from /proc, then runs
//! `client_credentials` requests from `concurrency` keep-alive connections
//! for `seconds` (bounded), and prints requests/s and latencies.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = arg("--bin", "target/release/sso");
    let concurrency: usize = arg("--concurrency", "32").parse()?;
    let seconds: u64 = arg("--seconds", "10").parse()?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = dir.path().join("sso.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"127.0.0.1:{port}\"\nlog_format = \"json\"\n"),
    )?;

    let out = Command::new(&bin)
        .args([
            "--config",
            cfg.to_str().unwrap_or_default(),
            "client",
            "add",
            "bench",
            "--kind",
            "confidential",
            "--grant",
            "client_credentials",
            "-o",
            "json",
        ])
        .stderr(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "sso client add failed; build with `cargo build --release -p sso` first"
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let secret = created["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let log = std::fs::File::create(dir.path().join("sso.log"))?;
    let mut child = Command::new(&bin)
        .args(["--config", cfg.to_str().unwrap_or_default()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let start = Instant::now();
    loop {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "sso did not answer /healthz in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid, "VmRSS:");

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, base, secret, ok, failed) = (
            http.clone(),
            base.clone(),
            secret.clone(),
            ok.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/token"))
                    .basic_auth("bench", Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let good = match r {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                    lat.push(t.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let elapsed = seconds as f64;
    let after = rss_kib(pid, "VmRSS:");
    let peak = rss_kib(pid, "VmHWM:");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let n = ok.load(Ordering::Relaxed);
    println!(
        "token endpoint (client_credentials, RS256 2048), {concurrency} connections, {seconds} s"
    );
    println!(
        "  requests ok: {n}, failed: {}",
        failed.load(Ordering::Relaxed)
    );
    println!("  throughput: {:.0} requests/s", n as f64 / elapsed);
    println!("  latency p50 {:?}, p99 {:?}", pct(0.50), pct(0.99));
    println!(
        "sso RSS: idle {} KiB ({:.1} MiB), after load {} KiB, peak {} KiB",
        idle,
        idle as f64 / 1024.0,
        after,
        peak
    );
    Ok(())
}
