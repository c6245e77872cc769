//! deployd's reconciler against real `dockerd` nodes in three network
//! namespaces, one etcd and the real `deployd` binary (two replicas):
//!
//! 1. deploy: three instances spread over the nodes, healthy, answering;
//! 2. scale up to five and down to two (the highest numbers go);
//! 3. a rolling upgrade while a client, acting as a router, hits the
//!    instances directly: no request fails;
//! 4. a release that never gets healthy rolls back on its own, the old
//!    instances serving throughout;
//! 5. a worker that keeps crashing backs off and stops in a crash loop; so
//!    does one whose command does not exist; a proc larger than the
//!    cluster runs what fits and says why the rest does not; a stateful
//!    proc keeps its node and volume across a rollout;
//! 6. a node's link is cut: its instances come back on the others, and
//!    when the link heals no duplicate remains;
//! 7. the leader is SIGKILLed mid-rollout: the other replica takes over
//!    and converges to exactly the desired containers, no orphans;
//! 8. bad input in etcd becomes an event and the app keeps running.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{metric, node_admin, register, wait_until};
use lain_store::{
    secret, AppSecret, Component, DesiredKey, DesiredProc, EventKey, EventKind, Health,
    HealthCheck, InstanceState, ObservedInstance, ObservedKey, ProcRollout, ProcType, RolloutKey,
    RolloutPhase, RouterKey, RouterStatus, SecretKey, SecretRef, SecretTarget, Store,
};
use lain_testkit::daemon::Daemon;
use lain_testkit::image::{import_base_image_all, BASE_IMAGE};
use lain_testkit::{http, DockerNodes, Etcd, NodesOptions};

const BIN: &str = env!("CARGO_BIN_EXE_deployd");
const APP: &str = "hello";

fn spawn(etcd: &Etcd, id: &str, secrets_key: &std::path::Path) -> Daemon {
    let config = format!(
        "listen = \"{{listen}}\"\netcd = [\"{}\"]\nid = \"{id}\"\nsecrets_key_file = \"{}\"\n\
         health_timeout_secs = 8\nhealth_interval_ms = 500\n\
         restart_backoff_ms = 200\nrestart_backoff_max_ms = 2000\n\
         crash_loop_restarts = 3\ncrash_loop_window_secs = 120\n",
        etcd.endpoint(),
        secrets_key.display()
    );
    Daemon::spawn(&format!("deployd-{id}"), BIN, &config).expect("deployd starts")
}

/// A web proc serving `{release}-{instance}` with busybox httpd.
fn web(release: &str, image: &str, instances: u32, generation: u64) -> DesiredProc {
    DesiredProc {
        app: APP.into(),
        proc: "web".into(),
        proc_type: ProcType::Web,
        release: release.into(),
        image: image.into(),
        instances,
        cmd: vec![
            "sh".into(),
            "-c".into(),
            // A shell as PID 1 that passes SIGTERM on, so stops are quick.
            "mkdir -p /www; echo \"$LAIN_RELEASE-$LAIN_INSTANCE\" > /www/index.html; \
             httpd -f -p 80 -h /www & pid=$!; trap 'kill $pid; exit 0' TERM; wait"
                .into(),
        ],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 100,
        memory_bytes: 32 << 20,
        env: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
        secrets: vec![
            SecretRef {
                name: "token".into(),
                target: SecretTarget::File {
                    path: "/www/secret.txt".into(),
                },
                version: 1,
            },
            SecretRef {
                name: "token".into(),
                target: SecretTarget::Env {
                    var: "TOKEN".into(),
                },
                version: 1,
            },
        ],
        port: Some(80),
        healthcheck: Some(HealthCheck::Http { path: "/".into() }),
        mountpoints: vec!["hello.lain.test".into()],
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
        generation,
    }
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    console: Store,
    reader: Store,
    nodes: DockerNodes,
}

impl Cluster {
    fn put(&self, d: &DesiredProc) {
        self.rt
            .block_on(
                self.console
                    .put(&DesiredKey::new(&d.app, &d.proc).unwrap(), d),
            )
            .expect("write desired proc");
    }

    fn instances(&self, proc: &str) -> Vec<(String, ObservedInstance)> {
        let listing = self
            .rt
            .block_on(self.reader.list(&ObservedKey::of_proc(APP, proc).unwrap()))
            .expect("list instances");
        listing
            .items
            .into_iter()
            .map(|e| (e.key.instance().to_owned(), e.value))
            .collect()
    }

    fn healthy(&self, proc: &str, release: &str) -> Vec<ObservedInstance> {
        self.instances(proc)
            .into_iter()
            .map(|(_, o)| o)
            .filter(|o| {
                o.state == InstanceState::Running
                    && o.health == Health::Healthy
                    && o.release == release
            })
            .collect()
    }

    fn rollout(&self, proc: &str) -> Option<ProcRollout> {
        self.rt
            .block_on(self.reader.get(&RolloutKey::new(APP, proc).unwrap()))
            .expect("read rollout")
            .map(|e| e.value)
    }

    fn events(&self) -> Vec<(EventKind, String)> {
        self.rt
            .block_on(self.reader.list(&EventKey::of_app(APP).unwrap()))
            .expect("list events")
            .items
            .into_iter()
            .map(|e| (e.value.kind, e.value.message))
            .collect()
    }

    /// `(node index, container name, state)` of the app's containers on
    /// the nodes that answer.
    fn containers(&self) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.nodes().iter().enumerate() {
            let Ok(text) = node.docker(&[
                "ps",
                "-a",
                "--filter",
                &format!("label=lain.app={APP}"),
                "--format",
                "{{.Names}} {{.State}}",
            ]) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let (name, state) = line.split_once(' ').unwrap_or((line, ""));
                out.push((i, name.to_owned(), state.to_owned()));
            }
        }
        out.sort();
        out
    }

    /// Exactly `want` running containers of `proc`, one per record, each
    /// record healthy on `release`, and nothing else of the proc.
    fn converged(&self, proc: &str, release: &str, want: usize) -> bool {
        let records = self.instances(proc);
        let prefix = format!("lain.{APP}.{proc}.");
        let containers: Vec<_> = self
            .containers()
            .into_iter()
            .filter(|(_, name, _)| name.starts_with(&prefix))
            .collect();
        records.len() == want
            && records.iter().all(|(_, o)| {
                o.release == release
                    && o.state == InstanceState::Running
                    && o.health == Health::Healthy
            })
            && containers.len() == want
            && containers.iter().all(|(_, _, state)| state == "running")
            && records.iter().all(|(slot, o)| {
                containers.iter().any(|(i, name, _)| {
                    *name == format!("{prefix}{slot}") && self.nodes.node(*i).name() == o.node
                })
            })
    }
}

fn answer(addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().ok()?;
    match http::get(addr, "hello.lain.test", "/") {
        Some((200, body)) => Some(body.trim().to_owned()),
        _ => None,
    }
}

fn tag_everywhere(nodes: &DockerNodes, tag: &str) {
    for n in nodes.nodes() {
        n.docker(&["tag", BASE_IMAGE, tag]).expect("tag image");
    }
}

/// A client that acts as a router: it follows the healthy instances in
/// etcd, publishes the revision it routes by under `/lain/routers/`, and
/// sends requests to every instance it routes to.
struct Client {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Client {
    fn start(etcd: &Etcd) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let endpoint = etcd.endpoint();
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let store = rt
                .block_on(Store::connect(&[endpoint]))
                .unwrap()
                .as_writer(Component::Webrouter);
            let lease = rt
                .block_on(store.grant_lease(Duration::from_secs(5)))
                .unwrap();
            let key = RouterKey::new("test-client").unwrap();
            let mut failures = Vec::new();
            let mut published = 0;
            let started = Instant::now();
            // Bounded: at most two minutes.
            while !s.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let listing = rt
                    .block_on(store.list(&ObservedKey::of_proc(APP, "web").unwrap()))
                    .unwrap();
                let addrs: Vec<String> = listing
                    .items
                    .iter()
                    .filter(|e| {
                        e.value.state == InstanceState::Running && e.value.health == Health::Healthy
                    })
                    .filter_map(|e| e.value.address.clone())
                    .collect();
                if listing.revision != published {
                    let status = RouterStatus {
                        applied_revision: listing.revision,
                        applied_at_ms: lain_store::unix_millis(),
                        config_hash: None,
                        upstreams: 1,
                        address: None,
                        error: None,
                    };
                    let mut txn = lain_store::Transaction::new();
                    txn.put_with_lease(&key, &status, lease.id()).unwrap();
                    rt.block_on(store.commit(txn)).unwrap();
                    if published == 0 {
                        let _ = ready_tx.send(());
                    }
                    published = listing.revision;
                }
                for a in &addrs {
                    match answer(a) {
                        Some(_) => {
                            o.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            f.fetch_add(1, Ordering::Relaxed);
                            failures.push(a.clone());
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = rt.block_on(lease.revoke());
            failures
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("client publishes");
        Client {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.take().unwrap().join().expect("client thread");
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            failures,
        )
    }
}

#[test]
fn deployd_runs_apps_on_real_nodes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let etcd = Etcd::start().expect("start etcd");
    let nodes = DockerNodes::start(3, NodesOptions::default()).expect("start nodes");
    import_base_image_all(&nodes).expect("import base image");
    tag_everywhere(&nodes, "lain-busybox:v2");
    tag_everywhere(&nodes, "lain-busybox:v3");
    tag_everywhere(&nodes, "lain-busybox:v4");
    let (console, reader) = rt.block_on(async {
        let admin = node_admin(&etcd.endpoint()).await;
        for n in nodes.nodes() {
            register(&admin, n).await;
        }
        let reader = Store::connect(&[etcd.endpoint()]).await.expect("connect");
        (reader.as_writer(Component::Console), reader)
    });
    // The cluster secrets key, and an app secret sealed with it as console
    // does: deployd writes it into the containers.
    let keydir = tempfile::tempdir().expect("tempdir");
    let key_path = keydir.path().join("secrets.key");
    let key = secret::SecretsKey::generate();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .expect("key file");
        f.write_all(key.to_base64().as_bytes()).expect("write key");
    }
    let secret_key = SecretKey::new(APP, "token", 1).unwrap();
    let sealed = secret::seal_for(&key, &secret_key, b"s3cret").expect("seal");
    rt.block_on(console.put(
        &secret_key,
        &AppSecret {
            value: sealed,
            updated_at_ms: 0,
        },
    ))
    .expect("write secret");
    let c = Cluster {
        rt,
        console,
        reader,
        nodes,
    };
    let mut a = spawn(&etcd, "a", &key_path);
    let mut b = spawn(&etcd, "b", &key_path);

    // 1. Deploy three instances.
    let started = Instant::now();
    c.put(&web("v1", BASE_IMAGE, 3, 1));
    wait_until(
        "three healthy v1 instances",
        Duration::from_secs(60),
        || c.converged("web", "v1", 3),
    );
    eprintln!("MEASURED: 3 instances healthy in {:?}", started.elapsed());
    let v1 = c.healthy("web", "v1");
    let mut on: Vec<&str> = v1.iter().map(|o| o.node.as_str()).collect();
    on.sort();
    on.dedup();
    assert_eq!(on.len(), 3, "spread over the three nodes: {v1:?}");
    // The secret as a file (on the tmpfs) and in the proc's environment,
    // never in the container's config.
    let web_containers: Vec<_> = c
        .containers()
        .into_iter()
        .filter(|(_, name, state)| name.contains(".web.") && state == "running")
        .collect();
    assert_eq!(web_containers.len(), 3, "{web_containers:?}");
    for (i, name, _) in &web_containers {
        let node = c.nodes.node(*i);
        node.docker(&[
            "exec",
            name,
            "sh",
            "-c",
            "test \"$(cat /www/secret.txt)\" = s3cret \
             && test \"$(readlink /www/secret.txt)\" = /run/lain/secrets/1 \
             && tr '\\0' '\\n' < /proc/1/environ | grep -qx TOKEN=s3cret",
        ])
        .unwrap_or_else(|e| panic!("the secrets of {name} are not as expected: {e}"));
        let config = node
            .docker(&["inspect", "-f", "{{json .Config.Env}}", name])
            .unwrap();
        assert!(!config.contains("s3cret"), "{config}");
    }
    for o in &v1 {
        let addr = o.address.as_deref().expect("an address");
        assert_eq!(
            answer(addr).as_deref(),
            Some(format!("v1-{}", o.instance).as_str())
        );
    }
    wait_until("the rollout to converge", Duration::from_secs(10), || {
        c.rollout("web")
            .is_some_and(|r| r.phase == RolloutPhase::Converged)
    });
    assert!(c
        .events()
        .iter()
        .any(|(k, _)| *k == EventKind::RolloutSucceeded));

    // 2. Scale up to five, then down to two: 3, 4 and 5 go.
    c.put(&web("v1", BASE_IMAGE, 5, 2));
    wait_until("five healthy instances", Duration::from_secs(60), || {
        c.converged("web", "v1", 5)
    });
    c.put(&web("v1", BASE_IMAGE, 2, 3));
    wait_until("two instances left", Duration::from_secs(60), || {
        c.converged("web", "v1", 2)
    });
    let mut numbers: Vec<u32> = c.instances("web").iter().map(|(_, o)| o.instance).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);

    // 3. A rolling upgrade under load: nothing fails.
    let client = Client::start(&etcd);
    std::thread::sleep(Duration::from_millis(500));
    c.put(&web("v2", "lain-busybox:v2", 2, 4));
    let took = wait_until("the upgrade to v2", Duration::from_secs(90), || {
        c.converged("web", "v2", 2)
    });
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed, failures) = client.finish();
    eprintln!(
        "MEASURED: rolling upgrade of 2 instances in {took:?}; {ok} requests ok, {failed} failed"
    );
    assert!(ok > 50, "the client made too few requests: {ok}");
    assert_eq!(
        failed, 0,
        "requests failed during the rollout: {failures:?}"
    );

    // 4. A release that never gets healthy (it listens on another port):
    // it rolls back on its own; v2 keeps serving throughout.
    let mut bad = web("v3", "lain-busybox:v3", 2, 5);
    bad.cmd[2] = "mkdir -p /www && exec httpd -f -p 8080 -h /www".into();
    c.put(&bad);
    let started = Instant::now();
    let mut serving_checks = 0;
    while !c
        .rollout("web")
        .is_some_and(|r| r.phase == RolloutPhase::RolledBack)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rollback: {:?}",
            c.rollout("web")
        );
        let healthy = c.healthy("web", "v2");
        assert!(
            !healthy.is_empty(),
            "no v2 instance serving during the failed rollout"
        );
        for o in &healthy {
            if let Some(addr) = &o.address {
                if answer(addr).is_some() {
                    serving_checks += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(serving_checks > 0);
    wait_until(
        "v2 alone again after the rollback",
        Duration::from_secs(30),
        || c.converged("web", "v2", 2),
    );
    let rollout = c.rollout("web").unwrap();
    assert_eq!(
        rollout.last_good.as_ref().map(|d| d.release.as_str()),
        Some("v2")
    );
    let events = c.events();
    assert!(
        events
            .iter()
            .any(|(k, m)| *k == EventKind::RolloutFailed && m.contains("v3")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(k, _)| *k == EventKind::RolledBack),
        "{events:?}"
    );

    // 5. A worker that exits at once: backoff, then a crash loop.
    let mut crasher = web("v1", BASE_IMAGE, 1, 1);
    crasher.proc = "worker.crash".into();
    crasher.proc_type = ProcType::Worker;
    crasher.cmd = vec!["sh".into(), "-c".into(), "echo dying; exit 3".into()];
    crasher.port = None;
    crasher.healthcheck = None;
    crasher.mountpoints.clear();
    c.put(&crasher);
    wait_until("the crash loop", Duration::from_secs(60), || {
        c.instances("worker.crash")
            .iter()
            .any(|(_, o)| o.state == InstanceState::Failed)
    });
    let (_, failed) = c.instances("worker.crash").remove(0);
    assert!(failed.restarts >= 3, "{failed:?}");
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or("")
            .contains("exited with code 3"),
        "{failed:?}"
    );
    assert!(c.events().iter().any(|(k, _)| *k == EventKind::CrashLoop));
    // Restarts have stopped.
    let restarts = failed.restarts;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.instances("worker.crash")[0].1.restarts, restarts);
    rt_delete(&c, "worker.crash");
    wait_until(
        "the crashing worker removed",
        Duration::from_secs(30),
        || {
            c.instances("worker.crash").is_empty()
                && !c
                    .containers()
                    .iter()
                    .any(|(_, n, _)| n.contains("worker.crash"))
        },
    );

    // 5b. A command that does not exist, on a first deploy: failed starts
    // back off into a crash loop; a bounded number of tries.
    let mut broken = crasher.clone();
    broken.proc = "worker.broken".into();
    broken.cmd = vec!["/no/such/program".into()];
    // With secrets the wrapper starts and its `exec` fails (below).
    broken.secrets.clear();
    c.put(&broken);
    wait_until(
        "the failed starts to end in a crash loop",
        Duration::from_secs(30),
        || {
            c.instances("worker.broken")
                .iter()
                .any(|(_, o)| o.state == InstanceState::Failed)
        },
    );
    let (_, o) = c.instances("worker.broken").remove(0);
    assert!(
        o.message.as_deref().unwrap_or("").contains("cannot start"),
        "{o:?}"
    );
    rt_delete(&c, "worker.broken");
    // The same with secrets: the wrapper starts, its `exec` exits 127.
    let mut missing = crasher.clone();
    missing.proc = "worker.missing".into();
    missing.cmd = vec!["/no/such/program".into()];
    c.put(&missing);
    wait_until(
        "the missing command to end in a crash loop",
        Duration::from_secs(30),
        || {
            c.instances("worker.missing")
                .iter()
                .any(|(_, o)| o.state == InstanceState::Failed)
        },
    );
    let (_, o) = c.instances("worker.missing").remove(0);
    assert!(
        o.message
            .as_deref()
            .unwrap_or("")
            .contains("127: command not found"),
        "{o:?}"
    );
    rt_delete(&c, "worker.missing");

    // 5c. More than fits: the instances that fit run, the rest are
    // reported with the binding constraint.
    let mut big = crasher.clone();
    big.proc = "worker.big".into();
    big.cmd = vec!["sleep".into(), "1000".into()];
    big.memory_bytes = 700 << 20;
    big.instances = 4;
    c.put(&big);
    wait_until("three big workers running", Duration::from_secs(30), || {
        c.instances("worker.big")
            .iter()
            .filter(|(_, o)| o.state == InstanceState::Running && o.health == Health::Healthy)
            .count()
            == 3
    });
    wait_until("an unschedulable event", Duration::from_secs(10), || {
        c.events()
            .iter()
            .any(|(k, m)| *k == EventKind::Unschedulable && m.contains("memory"))
    });
    rt_delete(&c, "worker.big");

    // 5d. A stateful proc keeps its node and its volume across a rollout:
    // v2 only gets healthy if it finds v1's file.
    let mut db = crasher.clone();
    db.proc = "worker.db".into();
    db.stateful = true;
    db.volumes = vec!["/data".into()];
    db.cmd = vec![
        "sh".into(),
        "-c".into(),
        "echo kept > /data/mark; trap 'exit 0' TERM; while true; do sleep 1; done".into(),
    ];
    c.put(&db);
    wait_until("the stateful worker", Duration::from_secs(30), || {
        c.converged("worker.db", "v1", 1)
    });
    let home = c.instances("worker.db")[0].1.node.clone();
    let mut db2 = db.clone();
    db2.release = "v2".into();
    db2.image = "lain-busybox:v2".into();
    db2.generation = 2;
    db2.cmd[2] =
        "test -f /data/mark || exit 9; trap 'exit 0' TERM; while true; do sleep 1; done".into();
    c.put(&db2);
    wait_until("the stateful worker on v2", Duration::from_secs(60), || {
        c.converged("worker.db", "v2", 1)
    });
    assert_eq!(
        c.instances("worker.db")[0].1.node,
        home,
        "a stateful instance moved"
    );
    rt_delete(&c, "worker.db");
    wait_until(
        "the stateful worker removed",
        Duration::from_secs(30),
        || {
            c.instances("worker.db").is_empty()
                && !c.containers().iter().any(|(_, n, _)| n.contains("worker."))
        },
    );

    // 6. A node's link is cut: its instance comes back elsewhere; once the
    // link heals, its old container is removed.
    let victim_name = c.instances("web")[0].1.node.clone();
    let victim = (0..3)
        .find(|&i| c.nodes.node(i).name() == victim_name)
        .unwrap();
    c.nodes.node(victim).cut().expect("cut link");
    let started = Instant::now();
    wait_until(
        "replacements on the other nodes",
        Duration::from_secs(30),
        || {
            let healthy = c.healthy("web", "v2");
            healthy.len() == 2 && healthy.iter().all(|o| o.node != victim_name)
        },
    );
    eprintln!(
        "MEASURED: failover (link cut to 2 healthy elsewhere) in {:?}",
        started.elapsed()
    );
    assert!(c.events().iter().any(|(k, _)| *k == EventKind::Rescheduled));
    c.nodes.node(victim).heal().expect("heal link");
    wait_until(
        "the stale container removed",
        Duration::from_secs(30),
        || c.containers().iter().all(|(i, _, _)| *i != victim) && c.converged("web", "v2", 2),
    );

    // 7. The leader dies mid-rollout; the other replica converges.
    c.put(&web("v4", "lain-busybox:v4", 3, 6));
    wait_until("the v4 rollout under way", Duration::from_secs(30), || {
        c.instances("web").iter().any(|(_, o)| o.release == "v4")
    });
    let leader_is_a = metric(a.addr, "deployd_is_leader") == Some(1);
    let (dead, alive) = if leader_is_a {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    dead.proc.kill();
    wait_until("the other replica to lead", Duration::from_secs(10), || {
        metric(alive.addr, "deployd_is_leader") == Some(1)
    });
    wait_until(
        "v4 converged under the new leader",
        Duration::from_secs(90),
        || c.converged("web", "v4", 3),
    );
    let containers = c.containers();
    assert_eq!(containers.len(), 3, "orphans or duplicates: {containers:?}");

    // 8. Bad input: an unreadable desired value is reported, the running
    // instances stay.
    let etcdctl = etcd
        .etcdctl(&[
            "put",
            &format!("/lain/desired/{APP}/web"),
            "{\"schema_version\": 99}",
        ])
        .expect("put garbage");
    let _ = etcdctl;
    wait_until(
        "an event about the bad desired proc",
        Duration::from_secs(15),
        || c.events().iter().any(|(_, m)| m.contains("cannot be read")),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        c.converged("web", "v4", 3),
        "bad input changed the running app"
    );
    let alive_addr = if leader_is_a { b.addr } else { a.addr };
    assert_eq!(
        metric(alive_addr, "deployd_is_leader"),
        Some(1),
        "deployd crashed"
    );

    // 9. deployd died right after starting a container with secrets and
    // before writing them: the container waits on stdin for ever. The next
    // leader finds it running for a record still pending, restarts it and
    // so delivers the secrets.
    if leader_is_a {
        b.proc.kill()
    } else {
        a.proc.kill()
    };
    let mut sec = web("v1", BASE_IMAGE, 1, 7);
    sec.proc = "worker.sec".into();
    sec.proc_type = ProcType::Worker;
    sec.port = None;
    sec.mountpoints.clear();
    sec.secrets
        .retain(|s| matches!(s.target, SecretTarget::Env { .. }));
    sec.cmd = vec![
        "sh".into(),
        "-c".into(),
        "echo \"$TOKEN\" > /tmp/token; trap 'exit 0' TERM; while true; do sleep 1; done".into(),
    ];
    sec.healthcheck = Some(HealthCheck::Command {
        cmd: vec![
            "grep".into(),
            "-q".into(),
            "s3cret".into(),
            "/tmp/token".into(),
        ],
    });
    let spec = deployd::reconcile::spec::spec_hash(&sec);
    let node0 = c.nodes.node(0);
    let slot = "1-7";
    c.rt.block_on(async {
        let engine = deployd::docker::Engine::connect(
            &common::registration(node0).docker,
            Duration::from_secs(10),
        )
        .expect("engine");
        engine
            .ensure_network(&format!("lain-{APP}"))
            .await
            .expect("network");
        let id = engine
            .create(&deployd::runtime::ContainerSpec {
                name: deployd::reconcile::spec::container_name(APP, &sec.proc, slot),
                app: APP.into(),
                proc: sec.proc.clone(),
                instance: 1,
                slot: slot.into(),
                generation: 7,
                spec_hash: spec.clone(),
                image: BASE_IMAGE.into(),
                cmd: sec.cmd.clone(),
                memory_bytes: sec.memory_bytes,
                host_ip: node0.addr().to_string(),
                network: format!("lain-{APP}"),
                secret_env: vec![deployd::runtime::SecretEnv {
                    name: "TOKEN".into(),
                    value: zeroize::Zeroizing::new("s3cret".into()),
                }],
                ..Default::default()
            })
            .await
            .expect("create");
        // Started without its secrets, as if deployd died right there.
        engine.start(&id).await.expect("start");
        let deployd_store = c.reader.as_writer(Component::Deployd);
        deployd_store
            .put(
                &ObservedKey::new(APP, &sec.proc, slot).unwrap(),
                &ObservedInstance {
                    node: node0.name().to_owned(),
                    container_id: None,
                    generation: 7,
                    release: "v1".into(),
                    image: BASE_IMAGE.into(),
                    state: InstanceState::Pending,
                    health: Health::Unknown,
                    address: None,
                    restarts: 0,
                    started_at_ms: None,
                    updated_at_ms: lain_store::unix_millis(),
                    message: None,
                    instance: 1,
                    spec,
                    recent_restarts_ms: vec![],
                    volumes_from: None,
                },
            )
            .await
            .expect("write the pending record");
    });
    c.put(&sec);
    let _c = spawn(&etcd, "c", &key_path);
    wait_until(
        "the stuck container restarted with its secrets",
        Duration::from_secs(60),
        || c.converged("worker.sec", "v1", 1),
    );
}

fn rt_delete(c: &Cluster, proc: &str) {
    c.rt.block_on(c.console.delete(&DesiredKey::new(APP, proc).unwrap()))
        .expect("delete desired proc");
}
