//! Failover time (DESIGN.md §6: a dead node's instances are healthy and
//! routed on other nodes within 5 s).
//!
//! Real parts: etcd, `dockerd` nodes in network namespaces (lain-testkit),
//! the deployd binary with its default settings (pings every 1 s, a node
//! is lost after 3 missed pings, healthy instances probed every 2 s, new
//! ones every 200 ms). A web proc (busybox httpd, port 80, HTTP health
//! check on `/`) runs 6 instances spread over 3 nodes.
//!
//! Each round takes the node running the most instances and either
//! SIGKILLs its dockerd (`kill`: connections refused at once) or takes its
//! link down (`cut`: pings time out), then polls etcd and the instances
//! every 20 ms, timing from the fault:
//! - `detected`: `/lain/observed-nodes/{node}` says `lost`;
//! - `healthy`: every instance record of the proc is Running + Healthy,
//!   none on the victim, the right count. This is what webrouter routes by
//!   (it renders the healthy instances; its own change-to-serving is
//!   measured in its bench, ~60 ms);
//! - `serving`: each of those instances' addresses answers `GET /` with
//!   200, as nginx would reach them.
//!
//! Then the node comes back (dockerd restarted / link healed), and the
//! round ends once its stale containers are gone and the proc is back to
//! exactly 6 containers (`cleanup` is timed from the node's return). The
//! baseline of the round follows: the same containers (deployd's own
//! container config, without deployd's labels) created straight through
//! the Engine API on the surviving nodes, all at once, timed until each
//! answers HTTP 200: the irreducible start + health time.
//!
//! Run: `cargo bench -p deployd --bench failover`
//! Options: `-- --rounds 5 --instances 6 --nodes 3 --budget-secs 900`
//! (`--rounds` per kind; the run stops starting rounds once the budget is
//! spent). `LAIN_BENCH_KEEP=1` keeps deployd's log directory.

mod common;
// The registration of a namespace node, shared with the integration tests.
#[path = "../tests/common/mod.rs"]
mod test_common;
use test_common::registration;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bollard::container::{CreateContainerOptions, RemoveContainerOptions, StartContainerOptions};
use common::{arg, desired, loadavg, metric, secs, store_as, summary, BIN};
use deployd::runtime::{container_config, ContainerSpec};
use lain_store::{
    Component, DesiredKey, DesiredProc, Health, InstanceState, Liveness, NodeKey, ObservedInstance,
    ObservedKey, ObservedNodeKey, Store,
};
use lain_testkit::daemon::Daemon;
use lain_testkit::image::{import_base_image_all, BASE_IMAGE};
use lain_testkit::{http, DockerNodes, Etcd, NodesOptions};

const APP: &str = "failover";
const PROC: &str = "web";
const GOAL: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
const CMD: [&str; 3] = [
    "sh",
    "-c",
    "mkdir -p /www && echo \"$LAIN_INSTANCE\" > /www/index.html && exec httpd -f -p 80 -h /www",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Cut,
}

#[derive(Debug, Clone)]
struct Sample {
    fault: Fault,
    node: String,
    moved: usize,
    detected: Duration,
    placed: Duration,
    healthy: Duration,
    serving: Duration,
    cleanup: Duration,
    baseline: Duration,
}

struct Bench {
    rt: tokio::runtime::Runtime,
    reader: Store,
    nodes: DockerNodes,
    desired: DesiredProc,
}

impl Bench {
    fn records(&self) -> Vec<ObservedInstance> {
        self.rt
            .block_on(self.reader.list(&ObservedKey::of_proc(APP, PROC).unwrap()))
            .expect("list instances")
            .items
            .into_iter()
            .map(|e| e.value)
            .collect()
    }

    fn liveness(&self, node: &str) -> Option<Liveness> {
        self.rt
            .block_on(self.reader.get(&ObservedNodeKey::new(node).unwrap()))
            .expect("read observed node")
            .map(|e| e.value.liveness)
    }

    /// All `want` records Running + Healthy, none on `avoid`.
    fn healthy(records: &[ObservedInstance], want: usize, avoid: Option<&str>) -> bool {
        records.len() == want
            && records.iter().all(|o| {
                o.state == InstanceState::Running
                    && o.health == Health::Healthy
                    && Some(o.node.as_str()) != avoid
            })
    }

    /// Names of the app's containers on every node (over the unix socket,
    /// which works while a link is cut), with their node index.
    fn containers(&self) -> Option<Vec<(usize, String)>> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.nodes().iter().enumerate() {
            let text = node
                .docker(&[
                    "ps",
                    "-a",
                    "--filter",
                    &format!("label=lain.app={APP}"),
                    "--format",
                    "{{.Names}}",
                ])
                .ok()?;
            out.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| (i, l.trim().to_owned())),
            );
        }
        Some(out)
    }

    /// Exactly the wanted instances, healthy, each with one container on
    /// its node, and nothing else.
    fn converged(&self) -> bool {
        let want = self.desired.instances as usize;
        let records = self.records();
        if !Self::healthy(&records, want, None) {
            return false;
        }
        let Some(containers) = self.containers() else {
            return false;
        };
        containers.len() == want
            && records.iter().all(|o| {
                containers.iter().any(|(i, name)| {
                    self.nodes.node(*i).name() == o.node
                        && o.container_id.is_some()
                        && name.starts_with(&format!("lain.{APP}.{PROC}.{}-", o.instance))
                })
            })
    }

    fn wait(&self, what: &str, limit: Duration, mut check: impl FnMut(&Bench) -> bool) -> Duration {
        let started = Instant::now();
        while !check(self) {
            if started.elapsed() > limit {
                panic!(
                    "{what} did not happen within {limit:?}; records: {:#?}",
                    self.records()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    }

    /// `count` containers like the proc's, created through the Engine API
    /// on `targets` in turn, all at once; the time until each answers 200.
    fn baseline(&self, targets: &[usize], count: usize, round: usize) -> Duration {
        let jobs: Vec<(usize, String)> = (0..count)
            .map(|k| {
                (
                    targets[k % targets.len()],
                    format!("bench-baseline-{round}-{k}"),
                )
            })
            .collect();
        let d = &self.desired;
        let t0 = Instant::now();
        let results: Vec<Result<(), String>> = self.rt.block_on(async {
            let futs = jobs.iter().map(|(i, name)| {
                let node = self.nodes.node(*i);
                let addr = node.addr().to_string();
                let host = node.tcp_host().unwrap();
                let name = name.clone();
                async move {
                    let docker = bollard::Docker::connect_with_http(
                        &host,
                        20,
                        &deployd::docker::API_VERSION,
                    )
                    .map_err(|e| e.to_string())?;
                    let spec = ContainerSpec {
                        name: name.clone(),
                        app: APP.into(),
                        proc: PROC.into(),
                        instance: 1,
                        slot: "1-1".into(),
                        generation: 1,
                        spec_hash: "baseline".into(),
                        image: d.image.clone(),
                        cmd: d.cmd.clone(),
                        env: vec![("LAIN_INSTANCE".into(), "1".into())],
                        cpu_millis: d.cpu_millis,
                        memory_bytes: d.memory_bytes,
                        port: d.port,
                        host_ip: addr.clone(),
                        network: format!("lain-{APP}"),
                        ..Default::default()
                    };
                    let mut config = container_config(&spec).map_err(|e| e.to_string())?;
                    // Not deployd's: it would remove it as an orphan.
                    config.labels = Some(HashMap::from([("bench".into(), "baseline".into())]));
                    let id = docker
                        .create_container(
                            Some(CreateContainerOptions {
                                name: name.clone(),
                                platform: None,
                            }),
                            config,
                        )
                        .await
                        .map_err(|e| e.to_string())?
                        .id;
                    docker
                        .start_container(&id, None::<StartContainerOptions<String>>)
                        .await
                        .map_err(|e| e.to_string())?;
                    let port = docker
                        .inspect_container(&id, None)
                        .await
                        .map_err(|e| e.to_string())?
                        .network_settings
                        .and_then(|n| n.ports)
                        .and_then(|p| p.get("80/tcp").cloned().flatten())
                        .and_then(|b| b.first().and_then(|b| b.host_port.clone()))
                        .ok_or_else(|| "no published port".to_owned())?;
                    let target: SocketAddr = format!("{addr}:{port}").parse().unwrap();
                    let started = Instant::now();
                    loop {
                        let answered = tokio::task::spawn_blocking(move || {
                            http::get(target, "failover.lain.bench", "/")
                        })
                        .await
                        .ok()
                        .flatten();
                        if answered.is_some_and(|(c, _)| c == 200) {
                            break;
                        }
                        if started.elapsed() > Duration::from_secs(30) {
                            return Err(format!("{name} did not answer within 30 s"));
                        }
                        tokio::time::sleep(POLL).await;
                    }
                    Ok(())
                }
            });
            futures::future::join_all(futs).await
        });
        let took = t0.elapsed();
        // Clean up.
        self.rt.block_on(async {
            for (i, name) in &jobs {
                let host = self.nodes.node(*i).tcp_host().unwrap();
                if let Ok(docker) =
                    bollard::Docker::connect_with_http(&host, 20, &deployd::docker::API_VERSION)
                {
                    let _ = docker
                        .remove_container(
                            name,
                            Some(RemoveContainerOptions {
                                force: true,
                                ..Default::default()
                            }),
                        )
                        .await;
                }
            }
        });
        for r in results {
            r.expect("baseline container");
        }
        took
    }
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too: the failover
    // path is covered there by tests/reconcile.rs, so only `cargo bench`
    // measures it (minutes of real nodes).
    if !common::is_bench() {
        println!("failover: a benchmark; run it with `cargo bench -p deployd --bench failover`");
        return;
    }
    let rounds: usize = arg("--rounds", 5);
    let instances: u32 = arg("--instances", 6);
    let node_count: usize = arg("--nodes", 3);
    let budget = Duration::from_secs(arg("--budget-secs", 900));
    let run_started = Instant::now();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "deployd failover: {node_count} dockerd nodes, a web proc of {instances} instances, {rounds} rounds per fault; load average {}",
        loadavg()
    );
    let etcd = Etcd::start().expect("start etcd");
    let endpoint = etcd.endpoint();
    let nodes = DockerNodes::start(node_count, NodesOptions::default()).expect("start nodes");
    import_base_image_all(&nodes).expect("import base image");
    let (admin, console, reader) = rt.block_on(async {
        (
            store_as(&endpoint, Component::NodeManagement).await,
            store_as(&endpoint, Component::Console).await,
            Store::connect(&[endpoint.as_str()]).await.expect("connect"),
        )
    });
    rt.block_on(async {
        for n in nodes.nodes() {
            admin
                .put(&NodeKey::new(n.name()).unwrap(), &registration(n))
                .await
                .expect("register node");
        }
    });
    // Default settings: only what has no default.
    let config = format!("listen = \"{{listen}}\"\netcd = [\"{endpoint}\"]\nid = \"bench\"\n");
    let mut deployd = Daemon::spawn("deployd-failover", BIN, &config).expect("deployd starts");
    println!("deployd log: {}", deployd.proc.log().display());

    let d = desired(APP, PROC, BASE_IMAGE, &CMD, instances, true);
    let mut b = Bench {
        rt,
        reader,
        nodes,
        desired: d.clone(),
    };
    b.wait("deployd to lead", Duration::from_secs(30), |_| {
        metric(deployd.addr, "deployd_is_leader") == Some(1.0)
    });
    let t = Instant::now();
    b.rt.block_on(console.put(&DesiredKey::new(APP, PROC).unwrap(), &d))
        .expect("write desired proc");
    b.wait("the first deploy", Duration::from_secs(120), |b| {
        b.converged()
    });
    println!(
        "deployed {instances} instances (healthy, one container each) in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let mut samples: Vec<Sample> = Vec::new();
    let faults: Vec<Fault> = (0..rounds)
        .map(|_| Fault::Kill)
        .chain((0..rounds).map(|_| Fault::Cut))
        .collect();
    for (round, fault) in faults.into_iter().enumerate() {
        if run_started.elapsed() > budget {
            println!("budget of {budget:?} spent; no more rounds");
            break;
        }
        // The node with the most instances.
        let records = b.records();
        let mut per_node: HashMap<String, usize> = HashMap::new();
        for o in &records {
            *per_node.entry(o.node.clone()).or_default() += 1;
        }
        let (victim_name, moved) = per_node
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .expect("instances");
        let v = (0..b.nodes.len())
            .find(|&i| b.nodes.node(i).name() == victim_name)
            .expect("victim node");
        let survivors: Vec<usize> = (0..b.nodes.len()).filter(|&i| i != v).collect();

        let t0 = Instant::now();
        let (detected, placed, healthy, serving) = match fault {
            Fault::Kill => std::thread::scope(|s| {
                let node = b.nodes.node_mut(v);
                let killing = s.spawn(move || node.kill());
                // `b.nodes` is borrowed by the killer; follow through etcd.
                let follow = Bench::follow_etcd(&b.rt, &b.reader, &b.desired, t0, &victim_name);
                killing.join().expect("kill");
                follow
            }),
            Fault::Cut => {
                b.nodes.node(v).cut().expect("cut link");
                Bench::follow_etcd(&b.rt, &b.reader, &b.desired, t0, &victim_name)
            }
        };
        // Bring the node back and wait for its stale containers to go.
        let back = Instant::now();
        match fault {
            Fault::Kill => b.nodes.node_mut(v).restart().expect("restart dockerd"),
            Fault::Cut => b.nodes.node(v).heal().expect("heal link"),
        }
        b.wait(
            "the returning node's stale containers removed",
            Duration::from_secs(120),
            |b| b.liveness(&victim_name) == Some(Liveness::Alive) && b.converged(),
        );
        let cleanup = back.elapsed();
        let baseline = b.baseline(&survivors, moved, round);
        let s = Sample {
            fault,
            node: victim_name.clone(),
            moved,
            detected,
            placed,
            healthy,
            serving,
            cleanup,
            baseline,
        };
        println!(
            "round {:>2} {:?} {} ({} instances): detected {:.2} s, placed {:.2} s, healthy {:.2} s, serving {:.2} s; stale containers gone {:.2} s after return; baseline {:.2} s; load average {}",
            round + 1,
            s.fault,
            s.node,
            s.moved,
            secs(s.detected),
            secs(s.placed),
            secs(s.healthy),
            secs(s.serving),
            secs(s.cleanup),
            secs(s.baseline),
            loadavg()
        );
        samples.push(s);
    }

    println!();
    for fault in [Fault::Kill, Fault::Cut] {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.fault == fault).collect();
        if of.is_empty() {
            continue;
        }
        let pick = |f: &dyn Fn(&Sample) -> Duration| -> Vec<f64> {
            of.iter().map(|s| secs(f(s))).collect()
        };
        let show = |name: &str, v: &[f64]| {
            let (med, min, max) = summary(v);
            let each: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
            println!(
                "  {name:<34} median {med:.2} s, min {min:.2}, max {max:.2}  [{}]",
                each.join(", ")
            );
            med
        };
        println!("{fault:?} ({} rounds):", of.len());
        let healthy = show("fault -> all healthy (routable)", &pick(&|s| s.healthy));
        show("fault -> all serving HTTP", &pick(&|s| s.serving));
        let detect = show("fault -> node lost in etcd", &pick(&|s| s.detected));
        show("fault -> all re-placed", &pick(&|s| s.placed));
        let replace = show(
            "lost -> all healthy (replacement)",
            &pick(&|s| s.healthy.saturating_sub(s.detected)),
        );
        let base = show("baseline: same containers, raw API", &pick(&|s| s.baseline));
        show("return -> stale containers gone", &pick(&|s| s.cleanup));
        println!(
            "RESULT failover {fault:?}: median {healthy:.2} s to all healthy (goal < {:.0} s: {}); detection {detect:.2} s + replacement {replace:.2} s; replacement / baseline = {:.2}",
            GOAL.as_secs_f64(),
            if healthy < GOAL.as_secs_f64() { "met" } else { "NOT met" },
            replace / base.max(1e-9)
        );
    }

    let log = std::fs::read_to_string(deployd.proc.log()).unwrap_or_default();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    println!("deployd log: {} warning/error lines", problems.len());
    for l in problems.iter().take(8) {
        println!("  {}", &l[..l.len().min(300)]);
    }
    if std::env::var_os("LAIN_BENCH_KEEP").is_some() {
        deployd.dir.keep();
        println!("kept {}", deployd.dir.path().display());
    }
    drop(deployd);
    drop(b);
    drop(etcd);
}

impl Bench {
    /// Polls etcd (and the new instances' addresses) every 20 ms from
    /// `t0` until the replacements of `victim`'s instances serve; returns
    /// (detected, placed, healthy, serving). It does not touch the nodes,
    /// so it can run while one is being killed on another thread.
    fn follow_etcd(
        rt: &tokio::runtime::Runtime,
        reader: &Store,
        desired: &DesiredProc,
        t0: Instant,
        victim: &str,
    ) -> (Duration, Duration, Duration, Duration) {
        let want = desired.instances as usize;
        let records = || -> Vec<ObservedInstance> {
            rt.block_on(reader.list(&ObservedKey::of_proc(APP, PROC).unwrap()))
                .expect("list instances")
                .items
                .into_iter()
                .map(|e| e.value)
                .collect()
        };
        let lost = || {
            rt.block_on(reader.get(&ObservedNodeKey::new(victim).unwrap()))
                .expect("read observed node")
                .is_some_and(|e| e.value.liveness == Liveness::Lost)
        };
        let (mut detected, mut placed, mut healthy) = (None, None, None);
        loop {
            let now = t0.elapsed();
            assert!(
                now < Duration::from_secs(90),
                "no failover within 90 s: detected {detected:?}, placed {placed:?}, healthy {healthy:?}; records {:#?}",
                records()
            );
            if detected.is_none() && lost() {
                detected = Some(now);
            }
            let rs = records();
            if placed.is_none() && rs.len() == want && rs.iter().all(|o| o.node != victim) {
                placed = Some(now);
            }
            if healthy.is_none() && Bench::healthy(&rs, want, Some(victim)) {
                healthy = Some(now);
            }
            if let (Some(d), Some(h)) = (detected, healthy) {
                let serving = rs.iter().all(|o| {
                    o.address
                        .as_deref()
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .and_then(|a| http::get(a, "failover.lain.bench", "/"))
                        .is_some_and(|(code, _)| code == 200)
                });
                if serving {
                    return (d, placed.unwrap_or(now), h, t0.elapsed());
                }
            }
            std::thread::sleep(POLL);
        }
    }
}
