//! Shared harness: real etcd and a webrouter (in-process, driving a real
//! nginx) plus plain HTTP servers on loopback standing in for app
//! instances.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::Request;
use lain_store::{
    ClusterConfig, ClusterConfigKey, DesiredKey, DesiredProc, Health, InstanceState,
    ObservedInstance, ObservedKey, ProcType, RouterKey, RouterStatus, Store,
};
use lain_testkit::{free_port, Etcd};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use webrouter::config::Config;

pub struct Router {
    pub config: Config,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), webrouter::WebrouterError>>>,
}

impl Router {
    pub fn http(&self) -> SocketAddr {
        self.config.http_listen
    }

    pub fn https(&self) -> SocketAddr {
        self.config.https_listen.expect("https configured")
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.config.certs_dir.clone().expect("certs_dir configured")
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.config.listen))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body")
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("router stops within 30 s")
                .expect("router task");
            r.expect("router ends cleanly");
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Make sure nginx does not outlive a failed test.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("state/nginx.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // The whole group: the master's workers too.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(-pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

pub fn router_config(etcd: &Etcd, id: &str, dir: &tempfile::TempDir) -> Config {
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        log_format: lain_service::LogFormat::Text,
        etcd: vec![etcd.endpoint()],
        router_id: id.into(),
        advertise_address: Some("127.0.0.1".into()),
        nginx_binary: "nginx".into(),
        state_dir: dir.path().join("state"),
        http_listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        https_listen: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
        status_listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        certs_dir: Some(certs),
        secrets_key_file: None,
        retired_secrets_key_files: Vec::new(),
        certs_poll_ms: 200,
        debounce_ms: 20,
        lease_ttl_secs: 5,
        nginx_user: Some("root".into()),
        worker_processes: 1,
        worker_shutdown_timeout_secs: 30,
        // The integration tests exercise the catch-all's map routing; the
        // per-proc upstreams (the default below 2,000 procs) are covered by
        // domains with paths, by the snapshot tests (both modes) and, with
        // the default threshold, by the CLI's end-to-end tests through
        // nginx.
        map_routing_min_procs: 0,
    }
}

pub async fn start_router(etcd: &Etcd, id: &str) -> Router {
    let dir = tempfile::tempdir().unwrap();
    let config = router_config(etcd, id, &dir);
    start_router_with(config, dir).await
}

pub async fn start_router_with(config: Config, dir: tempfile::TempDir) -> Router {
    lain_service::init_tracing(lain_service::LogFormat::Text);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(webrouter::run(config.clone(), async move {
        let _ = rx.await;
    }));
    let r = Router {
        config,
        dir,
        stop: Some(tx),
        task: Some(task),
    };
    let admin = r.config.listen;
    wait_for(
        "router admin listener",
        Duration::from_secs(20),
        || async move {
            reqwest::get(format!("http://{admin}/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    // Serving: nginx runs and the router has applied what etcd holds.
    let metrics = format!("http://{admin}/metrics");
    wait_for(
        "router applied etcd's state",
        Duration::from_secs(20),
        || {
            let metrics = metrics.clone();
            async move {
                let Ok(r) = reqwest::get(&metrics).await else {
                    return false;
                };
                let text = r.text().await.unwrap_or_default();
                text.contains("webrouter_nginx_up 1")
                    && !text.contains("webrouter_applied_revision 0\n")
            }
        },
    )
    .await;
    r
}

pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until router `id` has published an applied revision >= `rev`.
pub async fn wait_applied(store: &Store, id: &str, rev: i64) -> RouterStatus {
    let key = RouterKey::new(id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(e)) = store.get(&key).await {
            if e.value.applied_revision >= rev {
                return e.value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "router {id} never applied revision {rev}"
        );
        sleep(Duration::from_millis(10)).await;
    }
}

pub fn desired(app: &str, proc: &str, mountpoints: &[&str], https_only: bool) -> DesiredProc {
    DesiredProc {
        app: app.into(),
        proc: proc.into(),
        proc_type: ProcType::Web,
        release: "1700000000-abc".into(),
        image: format!("registry.test/{app}:release-1"),
        instances: 1,
        cmd: vec![],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 0,
        memory_bytes: 32 << 20,
        env: BTreeMap::new(),
        secrets: vec![],
        port: Some(80),
        healthcheck: None,
        mountpoints: mountpoints.iter().map(|s| s.to_string()).collect(),
        https_only,
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

pub fn instance(addr: SocketAddr, healthy: bool) -> ObservedInstance {
    ObservedInstance {
        node: "n1".into(),
        container_id: Some("c1".into()),
        generation: 1,
        release: String::new(),
        image: String::new(),
        state: InstanceState::Running,
        health: if healthy {
            Health::Healthy
        } else {
            Health::Unhealthy
        },
        address: Some(addr.to_string()),
        restarts: 0,
        started_at_ms: None,
        updated_at_ms: 0,
        message: None,
        instance: 0,
        spec: String::new(),
        recent_restarts_ms: vec![],
        volumes_from: None,
    }
}

pub async fn put_cluster(store: &Store) -> i64 {
    store
        .put(
            &ClusterConfigKey,
            &ClusterConfig {
                name: "test".into(),
                domain: "lain.local".into(),
                extra_domains: vec![],
                registry: "registry.test:5000".into(),
                registry_insecure: true,
                node_lost_after_ms: 3000,
            },
        )
        .await
        .unwrap()
}

pub async fn put_desired(store: &Store, d: &DesiredProc) -> i64 {
    store
        .put(&DesiredKey::new(&d.app, &d.proc).unwrap(), d)
        .await
        .unwrap()
}

pub async fn put_instance(
    store: &Store,
    app: &str,
    proc: &str,
    id: &str,
    v: &ObservedInstance,
) -> i64 {
    store
        .put(&ObservedKey::new(app, proc, id).unwrap(), v)
        .await
        .unwrap()
}

/// An app instance: answers every request with `{name} {path}`.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let n = name.to_owned();
        let app = axum::Router::new().fallback(move |req: Request| {
            let n = n.clone();
            async move {
                let rid = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                format!("{n} {} rid={rid}", req.uri())
            }
        });
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Backend {
            name: name.into(),
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful stop: in-flight requests finish, as a drained instance's would.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// A client that resolves every test host name to the router.
pub fn client(router: &Router, hosts: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        // One connection per request: the router's reloads are what is
        // under test, not client-side keep-alive races.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    for h in hosts {
        b = b.resolve(h, router.http());
    }
    b.build().unwrap()
}

pub async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    match c.get(url).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

pub fn start_etcd() -> Etcd {
    Etcd::start().expect("etcd starts")
}

/// A real etcd holding the cluster config, and a store connected to it:
/// the start of every router test.
pub async fn cluster() -> (Etcd, Store) {
    let etcd = start_etcd();
    let store = Store::connect(&[etcd.endpoint()])
        .await
        .expect("connect to etcd");
    put_cluster(&store).await;
    (etcd, store)
}
