//! Logs, events and cluster status through console, against real
//! servers: etcd, a dockerd with a container made by deployd's runtime,
//! sso in-process (loopback listener, SQLite, its own keys) with a
//! confidential client for console (client credentials, audience
//! `deployd`), deployd in-process (`run_on`) as a follower whose `[auth]`
//! allows that client (the test holds the leadership, so the reconciler
//! leaves the records it writes alone), and the `console` binary.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deployd::docker::Engine;
use deployd::runtime::ContainerSpec;
use lain_store::{
    unix_millis, Candidate, Capacity, Component, DockerEndpoint, Event, EventKey, EventKind,
    Health, InstanceState, Liveness, NodeKey, NodeRegistration, ObservedInstance, ObservedKey,
    ObservedNode, ObservedNodeKey, RouterKey, RouterStatus, Severity, Store,
};
use lain_testkit::process::{Logged, ServerDir};
use lain_testkit::{import_base_image, Dockerd, Etcd, BASE_IMAGE};
use serde_json::{json, Value};
use sso::domain::{ClientKind, NewClient};
use tokio::task::block_in_place;

const BIN: &str = env!("CARGO_BIN_EXE_console");
const ADMIN_GROUP: &str = "lain-admins";
const APP: &str = "logsapp";
const NETWORK: &str = "lain-logsapi";
const CLIENT: &str = "console-deployd";

/// sso with console's client for calling deployd.
struct TestSso {
    base: common::TestSso,
    /// console's client secret for deployd.
    secret: String,
}

impl std::ops::Deref for TestSso {
    type Target = common::TestSso;
    fn deref(&self) -> &common::TestSso {
        &self.base
    }
}

async fn start_sso() -> TestSso {
    let base = common::TestSso::start().await;
    let secret = base
        .sso
        .state()
        .db
        .add_client(&NewClient {
            client_id: CLIENT.into(),
            name: "console calling deployd".into(),
            kind: ClientKind::Confidential,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials".into()],
            audience: Some("deployd".into()),
        })
        .await
        .expect("add client")
        .expect("a confidential client has a secret")
        .expose()
        .to_owned();
    TestSso { base, secret }
}

struct Console {
    _proc: Logged,
    base: String,
    _dir: ServerDir,
}

/// The console binary; with `secret`, a `[deployd]` section for it.
fn start_console(issuer: &str, etcd: &str, secret: Option<&str>) -> Console {
    use std::os::unix::fs::PermissionsExt;
    let dir = ServerDir::new("console-logs").unwrap();
    let key_path = dir.path().join("secrets.key");
    std::fs::write(
        &key_path,
        lain_store::secret::SecretsKey::generate()
            .to_base64()
            .as_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lain_testkit::free_port()));
    let mut config = format!(
        "listen = \"{addr}\"\nlog_format = \"json\"\n\
         database = \"sqlite://{d}/console.db?mode=rwc\"\n\
         etcd = [\"{etcd}\"]\n\
         secrets_key_file = \"{k}\"\nregistry = \"registry.lain.local:5000\"\n\
         [auth]\nissuer = \"{issuer}\"\nadmin_group = \"{ADMIN_GROUP}\"\n",
        d = dir.path().display(),
        k = key_path.display(),
    );
    if let Some(secret) = secret {
        let path = dir.path().join("deployd.secret");
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        config.push_str(&format!(
            "[deployd]\nclient_id = \"{CLIENT}\"\nclient_secret_file = \"{}\"\n",
            path.display()
        ));
    }
    let path = dir.path().join("console.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config").arg(&path).env("RUST_LOG", "debug");
    let mut proc = Logged::spawn("console", cmd, &dir.log_path("console")).unwrap();
    proc.wait_ready(Duration::from_secs(20), || {
        lain_testkit::http::get(addr, "127.0.0.1", "/healthz").is_some_and(|(c, _)| c == 200)
    })
    .expect("console starts");
    Console {
        _proc: proc,
        base: format!("http://{addr}"),
        _dir: dir,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A GET with `token` and an optional `Accept`: status and body.
async fn get(url: &str, token: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = http().get(url).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The `code` and `message` of a console error body.
fn error_of(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(v["hint"].as_str().is_some_and(|h| !h.is_empty()), "{body}");
    (
        v["code"].as_str().unwrap_or("").to_owned(),
        v["message"].as_str().unwrap_or("").to_owned(),
    )
}

async fn read_until(r: &mut reqwest::Response, seen: &mut String, want: &str) {
    while !seen.contains(want) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap_or_else(|_| panic!("{want:?} within 10 s; got {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {want:?}; got {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn observed(node: &str, instance: u32, container: &str) -> ObservedInstance {
    ObservedInstance {
        node: node.into(),
        container_id: Some(container.into()),
        generation: 7,
        release: "r1".into(),
        image: BASE_IMAGE.into(),
        state: InstanceState::Running,
        health: Health::Healthy,
        address: None,
        restarts: 0,
        started_at_ms: Some(unix_millis()),
        updated_at_ms: unix_millis(),
        message: None,
        instance,
        spec: "hash-7".into(),
        recent_restarts_ms: Vec::new(),
        volumes_from: None,
    }
}

fn event(proc: Option<&str>, kind: EventKind, message: &str, at_ms: u64) -> Event {
    Event {
        app: APP.into(),
        proc: proc.map(str::to_owned),
        instance: proc.map(|_| "1-7".to_owned()),
        kind,
        severity: Severity::Warning,
        message: message.into(),
        generation: Some(7),
        at_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_events_and_cluster_status_through_console() {
    let etcd = block_in_place(Etcd::start).expect("start etcd");
    let dockerd = block_in_place(Dockerd::start).expect("start dockerd");
    block_in_place(|| import_base_image(&dockerd)).expect("import the base image");
    let sso = start_sso().await;

    // Hold deployd's leadership (no address) so that the replica under
    // test follows: console must find it among the candidates.
    let store = Store::connect(&[etcd.endpoint()])
        .await
        .expect("connect etcd")
        .as_writer(Component::Deployd);
    let _leadership = store
        .election("deployd")
        .unwrap()
        .campaign(
            Candidate {
                id: "logs-test-holder".into(),
                address: None,
                started_at_ms: unix_millis(),
            },
            Duration::from_secs(60),
        )
        .await
        .expect("lead");

    // A container as deployd would make it, its record and node.
    let socket = DockerEndpoint::Unix {
        socket: dockerd.socket_path().display().to_string(),
    };
    let engine = Engine::connect(&socket, Duration::from_secs(5)).expect("engine");
    engine.ensure_network(NETWORK).await.expect("network");
    let cid = engine
        .create(&ContainerSpec {
            name: "lain-logsapp-web-1-7".into(),
            app: APP.into(),
            proc: "web".into(),
            instance: 1,
            slot: "1-7".into(),
            generation: 7,
            spec_hash: "hash-7".into(),
            image: BASE_IMAGE.into(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "for i in 1 2 3; do echo line$i; done; sleep 1000".into(),
            ],
            host_ip: "127.0.0.1".into(),
            network: NETWORK.into(),
            ..Default::default()
        })
        .await
        .expect("create");
    engine.start(&cid).await.expect("start");
    store
        .as_writer(Component::NodeManagement)
        .put(
            &NodeKey::new("node-a").unwrap(),
            &NodeRegistration {
                docker: socket.clone(),
                address: "127.0.0.1".into(),
                labels: Default::default(),
                capacity: Capacity {
                    cpu_millis: 2000,
                    memory_bytes: 4 << 30,
                },
                schedulable: true,
                draining: false,
                drain_volumes: false,
                registered_at_ms: unix_millis(),
            },
        )
        .await
        .unwrap();
    store
        .put(
            &ObservedNodeKey::new("node-a").unwrap(),
            &ObservedNode {
                liveness: Liveness::Alive,
                last_seen_ms: unix_millis(),
                since_ms: unix_millis(),
                docker_version: Some("test".into()),
                instances: 1,
                message: None,
            },
        )
        .await
        .unwrap();
    store
        .put(
            &ObservedKey::new(APP, "web", "1-7").unwrap(),
            &observed("node-a", 1, &cid),
        )
        .await
        .unwrap();
    let router_revision = store
        .as_writer(Component::Webrouter)
        .put(
            &RouterKey::new("router-1").unwrap(),
            &RouterStatus {
                applied_revision: 42,
                applied_at_ms: unix_millis() - 5000,
                config_hash: None,
                upstreams: 3,
                address: Some("10.0.0.9:80".into()),
                error: Some("nginx -t failed: test".into()),
            },
        )
        .await
        .unwrap();
    let lease = store.grant_lease(Duration::from_secs(120)).await.unwrap();
    let now = unix_millis();
    for (proc, kind, message, at) in [
        (
            Some("web"),
            EventKind::CrashLoop,
            "web/1-7 crash-loops",
            now,
        ),
        (None, EventKind::RolloutStarted, "rollout of r1", now - 1000),
        (
            Some("worker"),
            EventKind::Unschedulable,
            "no memory",
            now - 500,
        ),
    ] {
        store
            .put_with_lease(
                &EventKey::generate(APP).unwrap(),
                &event(proc, kind, message, at),
                lease.id(),
            )
            .await
            .unwrap();
    }

    // deployd, allowing console's client.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let deployd_addr = listener.local_addr().unwrap();
    let text = format!(
        "listen = \"{deployd_addr}\"\netcd = [\"{}\"]\nid = \"deployd-logs\"\n\
         [auth]\nissuer = \"{}\"\nallowed_clients = [\"client:{CLIENT}\"]\n",
        etcd.endpoint(),
        sso.issuer
    );
    let config = deployd::Config::parse(Path::new("deployd.toml"), &text).expect("config");
    let (stop_deployd, stopped) = tokio::sync::oneshot::channel::<()>();
    let deployd_task = tokio::spawn(async move {
        deployd::run_on(
            config,
            listener,
            Arc::new(deployd::Metrics::default()),
            async {
                let _ = stopped.await;
            },
        )
        .await
        .expect("deployd runs");
    });

    let console =
        block_in_place(|| start_console(&sso.issuer, &etcd.endpoint(), Some(&sso.secret)));
    let bare = block_in_place(|| start_console(&sso.issuer, &etcd.endpoint(), None));
    let base = console.base.clone();
    let alice = sso.token("alice", &[]);
    let bob = sso.token("bob", &[]);
    let root = sso.token("root", &[ADMIN_GROUP]);
    let daemon = sso.token("client:ci", &[]);
    let r = http()
        .post(format!("{base}/api/v1/apps"))
        .bearer_auth(&alice)
        .json(&json!({ "name": APP }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let logs = |q: &str| format!("{base}/api/v1/apps/{APP}/procs/web/logs?instance=1{q}");

    // The container's lines, through console and deployd.
    wait_for(
        "the lines through console",
        Duration::from_secs(30),
        async || get(&logs(""), &alice, None).await.1 == "line1\nline2\nline3\n",
    )
    .await;
    let r = http()
        .get(logs(""))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "line1\nline2\nline3\n");
    let by_id = format!("{base}/api/v1/apps/{APP}/procs/web/logs?instance=1-7&tail=2");
    assert_eq!(
        get(&by_id, &alice, None).await,
        (200, "line2\nline3\n".to_owned())
    );
    assert_eq!(
        get(&logs("&tail=1"), &alice, None).await,
        (200, "line3\n".to_owned())
    );
    let (status, body) = get(
        &logs("&tail=2&timestamps=true"),
        &alice,
        Some("application/x-ndjson"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let records: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{body}");
    assert_eq!(records[0]["stream"], "stdout");
    assert_eq!(records[0]["line"], "line2");
    assert_eq!(records[1]["line"], "line3");
    assert!(records[1]["time"].as_str().unwrap().starts_with("20"));

    // follow: a line written later arrives; the stream at deployd closes
    // when console's client goes away.
    let before = deployd::api::open_log_streams();
    let mut r = http()
        .get(logs("&follow=true&tail=1"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    read_until(&mut r, &mut seen, "line3\n").await;
    assert_eq!(deployd::api::open_log_streams(), before + 1);
    block_in_place(|| dockerd.docker(&["exec", &cid, "sh", "-c", "echo later > /proc/1/fd/1"]))
        .expect("docker exec");
    read_until(&mut r, &mut seen, "later\n").await;
    assert_eq!(seen, "line3\nlater\n");
    drop(r);
    wait_for(
        "deployd's log stream to close after the client left",
        Duration::from_secs(10),
        async || deployd::api::open_log_streams() == before,
    )
    .await;

    // Who may read logs: a maintainer or an admin.
    for (who, token) in [("a non-maintainer", &bob), ("a daemon", &daemon)] {
        let (status, body) = get(&logs(""), token, None).await;
        assert_eq!(status, 403, "{who}: {body}");
        assert_eq!(error_of(&body).0, "forbidden");
    }
    let r = http().get(logs("")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // deployd's refusals become console's: a bad query 400, no such
    // instance 404; console's own query rules too.
    let (status, body) = get(&logs("&tail=lots"), &alice, None).await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (400, "invalid_request"),
        "{body}"
    );
    let (status, body) = get(
        &format!("{base}/api/v1/apps/{APP}/procs/web/logs?instance=9"),
        &alice,
        None,
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (404, "not_found"),
        "{body}"
    );
    let (status, body) = get(
        &format!("{base}/api/v1/apps/{APP}/procs/web/logs"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&logs("&since=1"), &alice, None).await;
    assert_eq!(status, 400, "{body}");
    // Without [deployd]: 503 with a hint.
    let (status, body) = get(
        &format!("{}/api/v1/apps/{APP}/procs/web/logs?instance=1", bare.base),
        &root,
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (code, _) = error_of(&body);
    assert_eq!(code, "deployd_not_configured");
    assert!(body.contains("[deployd]"), "{body}");

    // Events, any caller: oldest first, filtered by proc and time.
    let events_url = |q: &str| format!("{base}/api/v1/apps/{APP}/events{q}");
    let (status, body) = get(&events_url(""), &bob, None).await;
    assert_eq!(status, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    let messages: Vec<&str> = all.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(
        messages,
        ["rollout of r1", "no memory", "web/1-7 crash-loops"]
    );
    assert_eq!(all[2]["kind"], "crash_loop");
    assert_eq!(all[2]["severity"], "warning");
    assert_eq!(all[2]["proc"], "web");
    assert_eq!(all[2]["instance"], "1-7");
    assert_eq!(all[2]["generation"], 7);
    assert!(all[0]["id"].as_str().is_some_and(|i| !i.is_empty()));
    let (_, body) = get(&events_url("?proc=web"), &bob, None).await;
    let web: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(web.len(), 1, "{body}");
    let (_, body) = get(&events_url(&format!("?since_ms={}", now - 500)), &bob, None).await;
    let recent: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(recent.len(), 2, "{body}");
    let (status, _) = get(&events_url("?since_ms=soon"), &bob, None).await;
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{base}/api/v1/apps/nosuchapp/events"), &bob, None).await;
    assert_eq!(status, 404);

    // Cluster status, any caller.
    let (status, body) = get(&format!("{base}/api/v1/cluster/status"), &daemon, None).await;
    assert_eq!(status, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["console"]["deployd_configured"], true);
    assert_eq!(s["sso"]["reachable"], true, "{s}");
    assert_eq!(s["sso"]["issuer"], sso.issuer.as_str());
    assert_eq!(s["registry"], "registry.lain.local:5000");
    assert_eq!(s["etcd"]["reachable"], true, "{s}");
    // The one test member, checked on its own client URL.
    let members = s["etcd"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{s}");
    assert_eq!(members[0]["healthy"], true, "{s}");
    assert!(
        !members[0]["client_urls"].as_array().unwrap().is_empty(),
        "{s}"
    );
    assert!(
        s["etcd"]["revision"].as_i64().unwrap() >= router_revision,
        "{s}"
    );
    assert_eq!(s["deployd"]["leader"]["id"], "logs-test-holder", "{s}");
    let candidates = s["deployd"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{s}");
    assert_eq!(candidates[1]["id"], "deployd-logs");
    assert_eq!(candidates[1]["address"], deployd_addr.to_string());
    assert_eq!(candidates[1]["leader"], false);
    let routers = s["routers"].as_array().unwrap();
    assert_eq!(routers.len(), 1, "{s}");
    assert_eq!(routers[0]["id"], "router-1");
    assert_eq!(routers[0]["applied_revision"], 42);
    assert_eq!(routers[0]["error"], "nginx -t failed: test");
    assert!(routers[0]["age_ms"].as_u64().unwrap() >= 5000, "{s}");
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{s}");
    assert_eq!(nodes[0]["name"], "node-a");
    assert_eq!(nodes[0]["liveness"], "alive");
    assert_eq!(nodes[0]["schedulable"], true);
    assert_eq!(nodes[0]["draining"], false);
    assert_eq!(nodes[0]["cpu_millis"], 2000);
    assert_eq!(nodes[0]["memory_bytes"], 4u64 << 30);
    let r = http()
        .get(format!("{base}/api/v1/cluster/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, body) = get(&format!("{}/api/v1/cluster/status", bare.base), &bob, None).await;
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["console"]["deployd_configured"], false);

    // deployd gone, and a candidate whose address refuses connections:
    // 502 naming it.
    let _ = stop_deployd.send(());
    tokio::time::timeout(Duration::from_secs(30), deployd_task)
        .await
        .expect("deployd stops")
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let store2 = store.clone();
    let _dead = tokio::spawn(async move {
        store2
            .election("deployd")
            .unwrap()
            .campaign(
                Candidate {
                    id: "deployd-dead".into(),
                    address: Some(closed.to_string()),
                    started_at_ms: unix_millis(),
                },
                Duration::from_secs(60),
            )
            .await
    });
    wait_for(
        "the dead candidate in etcd",
        Duration::from_secs(10),
        async || {
            let (_, body) = get(&format!("{base}/api/v1/cluster/status"), &bob, None).await;
            body.contains("deployd-dead")
        },
    )
    .await;
    let (status, body) = get(&logs(""), &alice, None).await;
    assert_eq!(status, 502, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "deployd_unreachable");
    assert!(
        message.contains("deployd-dead") && message.contains(&closed.to_string()),
        "{message}"
    );
}
