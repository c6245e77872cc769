//! deployd's memory while managing 10,000 instances (DESIGN.md §6: under
//! 64 MB RSS).
//!
//! Real dockerd cannot run 10,000 containers here, so the nodes are fake
//! Docker engines (`common/fake_engine.rs`), one per simulated node, each
//! on its own loopback port, holding their containers in memory. deployd
//! itself is the real binary with its default settings, against a real
//! etcd: it pings every engine each second, lists and follows each
//! engine's events, creates and starts every container through the
//! Engine API, writes every instance record to etcd and probes health.
//!
//! Steps:
//! 1. etcd, the fake engines and one loopback HTTP listener that every
//!    web container's published port points at (so HTTP probes pass);
//! 2. the nodes registered, deployd started; its idle RSS sampled;
//! 3. the desired procs written (default 1,000 procs × 10 instances: one
//!    proc in 10 is a web proc with port 80 and an HTTP health check, the
//!    rest workers healthy once running);
//! 4. wait until every instance record is Running + Healthy (bounded),
//!    printing progress;
//! 5. sample deployd's VmRSS / VmHWM / CPU for `--steady-secs` of steady
//!    state, plus etcd's revision and the engines' API calls meanwhile.
//!
//! Run: `cargo bench -p deployd --bench footprint`
//! Options: `-- --nodes 20 --procs 1000 --instances 10 --web-every 10
//! --steady-secs 30 --converge-secs 900`, and `--trim`: at the end, call
//! `malloc_trim(0)` in deployd through gdb and print the RSS after it
//! (what is left once glibc gives back the free heap it keeps).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fake_engine::FakeEngine;
use common::{arg, cpu_time, desired, loadavg, mem, metric, mib, store_as, summary, BIN};
use lain_store::{
    unix_millis, Capacity, Component, DesiredKey, DockerEndpoint, Health, InstanceState, KeyPrefix,
    Liveness, NodeKey, NodeRegistration, ObservedKey, ObservedNodeKey, Store, Transaction,
};
use lain_testkit::daemon::Daemon;
use lain_testkit::Etcd;

const GOAL_MIB: f64 = 64.0;

fn main() {
    // Under `cargo test --all-targets` (no `--bench`): a small smoke run of
    // the same path (fake engines, real etcd and deployd), not a figure.
    let full = common::is_bench();
    let nodes: usize = arg("--nodes", if full { 20 } else { 2 });
    let procs: usize = arg("--procs", if full { 1000 } else { 10 });
    let instances: u32 = arg("--instances", if full { 10 } else { 2 });
    let web_every: usize = arg("--web-every", 10);
    let steady_secs: u64 = arg("--steady-secs", if full { 30 } else { 2 });
    let converge_secs: u64 = arg("--converge-secs", 900);
    let total = procs * instances as usize;
    common::raise_nofile();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let etcd = Etcd::start().expect("start etcd");
    let endpoint = etcd.endpoint();

    // A listener answering 200 to anything: the published port of every
    // web container.
    let health = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        port
    });
    let engines: Vec<(String, FakeEngine)> = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..nodes {
            let name = format!("fake-{i:03}");
            let e = FakeEngine::start(&name, health)
                .await
                .expect("start fake engine");
            v.push((name, e));
        }
        v
    });

    let (admin, console, reader) = rt.block_on(async {
        (
            store_as(&endpoint, Component::NodeManagement).await,
            store_as(&endpoint, Component::Console).await,
            Store::connect(&[endpoint.as_str()]).await.expect("connect"),
        )
    });
    rt.block_on(async {
        for (name, e) in &engines {
            let reg = NodeRegistration {
                docker: DockerEndpoint::Tcp {
                    address: e.addr.to_string(),
                    tls: None,
                },
                address: "127.0.0.1".into(),
                labels: Default::default(),
                capacity: Capacity {
                    cpu_millis: 1_000_000,
                    memory_bytes: 1 << 40,
                },
                schedulable: true,
                draining: false,
                drain_volumes: false,
                registered_at_ms: unix_millis(),
            };
            admin
                .put(&NodeKey::new(name).unwrap(), &reg)
                .await
                .expect("register node");
        }
    });

    println!(
        "deployd footprint: {nodes} fake nodes, {procs} procs x {instances} instances = {total} instances \
         (1 proc in {web_every} web with an HTTP check); load average {} before",
        loadavg()
    );
    let config = format!(
        "listen = \"{{listen}}\"\netcd = [\"{endpoint}\"]\nid = \"bench\"\nlog_format = \"json\"\n"
    );
    let mut deployd = Daemon::spawn("deployd-footprint", BIN, &config).expect("deployd starts");
    let pid = deployd.proc.pid().expect("deployd pid");
    println!("deployd pid {pid}, log {}", deployd.proc.log().display());

    // Leading, every node alive.
    let started = Instant::now();
    loop {
        let alive = rt.block_on(async {
            let l = reader
                .list(&KeyPrefix::<ObservedNodeKey>::all())
                .await
                .expect("list observed nodes");
            l.items
                .iter()
                .filter(|e| e.value.liveness == Liveness::Alive)
                .count()
        });
        if metric(deployd.addr, "deployd_is_leader") == Some(1.0) && alive == nodes {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "deployd did not lead with {nodes} alive nodes within 60 s ({alive} alive)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Idle: leading, nodes monitored, no procs.
    std::thread::sleep(Duration::from_secs(2));
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(mib(mem(pid).expect("read deployd status").rss_kib));
        std::thread::sleep(Duration::from_secs(1));
    }
    let idle_mem = mem(pid).unwrap();
    let (idle_med, _, idle_max) = summary(&idle);
    println!(
        "idle (leading, {nodes} nodes pinged each second, no procs): VmRSS median {idle_med:.1} MiB, max {idle_max:.1} MiB; VmHWM {:.1} MiB; {} threads",
        mib(idle_mem.hwm_kib),
        idle_mem.threads
    );

    // Write the desired procs, 50 to a transaction.
    let write_started = Instant::now();
    rt.block_on(async {
        let mut txn = Transaction::new();
        let mut n = 0;
        for p in 0..procs {
            let app = format!("app{p:04}");
            let web = web_every > 0 && p % web_every == 0;
            let d = desired(
                &app,
                if web { "web" } else { "worker" },
                "bench/fake:v1",
                &["sleep", "infinity"],
                instances,
                web,
            );
            txn.put(&DesiredKey::new(&d.app, &d.proc).unwrap(), &d)
                .unwrap();
            n += 1;
            if n == 50 {
                console
                    .commit(std::mem::replace(&mut txn, Transaction::new()))
                    .await
                    .expect("write desired procs");
                n = 0;
            }
        }
        if n > 0 {
            console.commit(txn).await.expect("write desired procs");
        }
    });
    let cpu_before = cpu_time(pid).unwrap_or_default();
    println!(
        "wrote {procs} desired procs in {:.1} s",
        write_started.elapsed().as_secs_f64()
    );

    // Converge.
    let converge_started = Instant::now();
    let mut last_print = Instant::now();
    let mut peak_rss = 0u64;
    let converged_in;
    loop {
        let (records, healthy) = count_instances(&rt, &reader);
        if let Some(m) = mem(pid) {
            peak_rss = peak_rss.max(m.rss_kib);
        }
        if healthy == total && records == total {
            converged_in = converge_started.elapsed();
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            let running: usize = engines.iter().map(|(_, e)| e.counts().0).sum();
            println!(
                "  {:>5.0} s: {records} records, {healthy} running+healthy, {running} containers running; deployd VmRSS {:.1} MiB; load average {}",
                converge_started.elapsed().as_secs_f64(),
                mib(mem(pid).map(|m| m.rss_kib).unwrap_or(0)),
                loadavg()
            );
        }
        if converge_started.elapsed() > Duration::from_secs(converge_secs) {
            println!(
                "NOT CONVERGED within {converge_secs} s: {records} records, {healthy} healthy of {total}; see {}",
                deployd.proc.log().display()
            );
            deployd.dir.keep();
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let cpu_converge = cpu_time(pid).unwrap_or_default().saturating_sub(cpu_before);
    let containers: usize = engines.iter().map(|(_, e)| e.counts().1).sum();
    println!(
        "converged: {total} instances running+healthy in {:.1} s ({:.0} instances/s); deployd CPU {:.1} s meanwhile; {containers} containers on the engines; VmRSS peak while converging {:.1} MiB",
        converged_in.as_secs_f64(),
        total as f64 / converged_in.as_secs_f64(),
        cpu_converge.as_secs_f64(),
        mib(peak_rss),
    );

    // Steady state.
    let rev_before = revision(&rt, &reader);
    let calls_before = all_calls(&engines);
    let cpu_before = cpu_time(pid).unwrap_or_default();
    let steady_started = Instant::now();
    let mut rss = Vec::new();
    let mut threads = 0;
    while steady_started.elapsed() < Duration::from_secs(steady_secs) {
        if let Some(m) = mem(pid) {
            rss.push(mib(m.rss_kib));
            threads = m.threads;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let window = steady_started.elapsed().as_secs_f64();
    let cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu_before);
    let rev_after = revision(&rt, &reader);
    let calls_after = all_calls(&engines);
    let (records, healthy) = count_instances(&rt, &reader);
    let end = mem(pid).expect("deployd still runs");
    let (med, min, max) = summary(&rss);
    println!(
        "steady state over {window:.0} s ({} samples): VmRSS median {med:.1} MiB, min {min:.1}, max {max:.1}; VmHWM {:.1} MiB; {threads} threads",
        rss.len(),
        mib(end.hwm_kib)
    );
    println!(
        "  deployd CPU {:.1}% of one core; etcd revisions +{} ({:.1} writes/s); still {healthy} of {records} healthy; load average {}",
        100.0 * cpu.as_secs_f64() / window,
        rev_after - rev_before,
        (rev_after - rev_before) as f64 / window,
        loadavg()
    );
    let mut calls = Vec::new();
    for (op, n) in &calls_after {
        let d = n - calls_before.get(op).copied().unwrap_or(0);
        if d > 0 {
            calls.push(format!("{op} {:.1}/s", d as f64 / window));
        }
    }
    println!("  engine API calls (all nodes): {}", calls.join(", "));
    println!(
        "RESULT footprint: {total} instances: VmRSS median {med:.1} MiB, max {max:.1} MiB, VmHWM {:.1} MiB (goal < {GOAL_MIB} MiB: {}); idle {idle_med:.1} MiB; converged in {:.1} s",
        mib(end.hwm_kib),
        if max < GOAL_MIB { "met" } else { "NOT met" },
        converged_in.as_secs_f64()
    );
    if std::env::args().any(|a| a == "--trim") {
        // How much of the RSS is heap glibc keeps although it is free.
        let trimmed = std::process::Command::new("gdb")
            .args([
                "-p",
                &pid.to_string(),
                "-batch",
                "-ex",
                "call (int)malloc_trim(0)",
            ])
            .output();
        std::thread::sleep(Duration::from_secs(1));
        match (trimmed, mem(pid)) {
            (Ok(o), Some(m)) if o.status.success() => println!(
                "after malloc_trim(0) in deployd (gdb): VmRSS {:.1} MiB (from {:.1} MiB)",
                mib(m.rss_kib),
                mib(end.rss_kib)
            ),
            (r, _) => println!("--trim: cannot run gdb on deployd: {r:?}"),
        }
    }
    let problems = std::fs::read_to_string(deployd.proc.log())
        .map(|t| {
            t.lines()
                .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
                .count()
        })
        .unwrap_or(0);
    println!("deployd log: {problems} warning/error lines");
    if problems > 0 {
        let text = std::fs::read_to_string(deployd.proc.log()).unwrap_or_default();
        for l in text
            .lines()
            .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
            .take(5)
        {
            println!("  {}", &l[..l.len().min(400)]);
        }
    }
    if std::env::var_os("LAIN_BENCH_KEEP").is_some() {
        deployd.dir.keep();
        println!("kept {}", deployd.dir.path().display());
    }
    drop(deployd);
    drop(engines);
}

/// `(records, running and healthy)` of every observed instance.
fn count_instances(rt: &tokio::runtime::Runtime, reader: &Store) -> (usize, usize) {
    rt.block_on(async {
        let l = reader
            .list(&KeyPrefix::<ObservedKey>::all())
            .await
            .expect("list instances");
        let healthy = l
            .items
            .iter()
            .filter(|e| {
                e.value.state == InstanceState::Running && e.value.health == Health::Healthy
            })
            .count();
        (l.items.len(), healthy)
    })
}

fn revision(rt: &tokio::runtime::Runtime, reader: &Store) -> i64 {
    rt.block_on(async {
        reader
            .list(&KeyPrefix::<ObservedNodeKey>::all())
            .await
            .expect("list")
            .revision
    })
}

fn all_calls(engines: &[(String, FakeEngine)]) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (_, e) in engines {
        for (op, n) in e.calls() {
            *out.entry(op).or_default() += n;
        }
    }
    out
}
