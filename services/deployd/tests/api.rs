//! The operational API against real servers: etcd, a dockerd with a
//! container of the base image, and sso (in-process, on a loopback
//! listener, with a SQLite database and its own RSA keys) issuing
//! client-credentials tokens. deployd runs in-process (`run_on`) as a
//! follower: the test holds the leadership, so the reconciler leaves the
//! records it writes alone, and the API is shown to serve from any
//! replica.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deployd::docker::Engine;
use deployd::runtime::ContainerSpec;
use deployd::{Config, Metrics};
use lain_store::{
    unix_millis, Candidate, Capacity, Component, DockerEndpoint, Event, EventKey, EventKind,
    Health, InstanceState, NodeKey, NodeRegistration, ObservedInstance, ObservedKey, Severity,
    Store,
};
use lain_testkit::daemon::Daemon;
use lain_testkit::{import_base_image, Dockerd, Etcd, BASE_IMAGE};
use serde_json::Value;
use sso::domain::{ClientKind, NewClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::block_in_place;

const APP: &str = "apitest";
const NETWORK: &str = "lain-apitest";

/// sso on a loopback listener, with three client-credentials clients:
/// `console` and `intruder` get tokens for audience `deployd`,
/// `elsewhere` for audience `console`.
struct TestSso {
    issuer: String,
    secrets: std::collections::HashMap<&'static str, String>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_sso() -> TestSso {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let text = format!(
        "listen = \"{addr}\"\nissuer = \"{issuer}\"\n\
         [password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n"
    );
    let cfg: sso::config::Config =
        lain_service::parse_config(Path::new("sso.toml"), &text).unwrap();
    let url = format!("sqlite://{}/sso.db?mode=rwc", dir.path().display());
    let sso = sso::Sso::open(cfg, &url).await.expect("sso starts");
    let mut secrets = std::collections::HashMap::new();
    for (id, audience) in [
        ("console", "deployd"),
        ("intruder", "deployd"),
        ("elsewhere", "console"),
    ] {
        let secret = sso
            .state()
            .db
            .add_client(&NewClient {
                client_id: id.into(),
                name: format!("{id} daemon"),
                kind: ClientKind::Confidential,
                redirect_uris: Vec::new(),
                post_logout_redirect_uris: Vec::new(),
                grant_types: vec!["client_credentials".into()],
                audience: Some(audience.into()),
            })
            .await
            .expect("add client")
            .expect("a confidential client has a secret");
        secrets.insert(id, secret.expose().to_owned());
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        sso.serve_on(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestSso {
        issuer,
        secrets,
        _dir: dir,
        _stop: tx,
    }
}

impl TestSso {
    /// A client-credentials access token for `client`.
    async fn token(&self, client: &str) -> String {
        let r: Value = http()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(&self.secrets[client]))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {client}: {r}"))
            .to_owned()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A GET with an optional token and `Accept`; status and body.
async fn get(url: &str, token: Option<&str>, accept: Option<&str>) -> (u16, String) {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// A GET of `path` sent as is (no URL normalisation), with `token`.
async fn raw_get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

fn error_of(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        v["error"].as_str().unwrap_or("").to_owned(),
        v["error_description"].as_str().unwrap_or("").to_owned(),
    )
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

fn registration(docker: DockerEndpoint) -> NodeRegistration {
    NodeRegistration {
        docker,
        address: "127.0.0.1".into(),
        labels: Default::default(),
        capacity: Capacity {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
        },
        schedulable: true,
        draining: false,
        drain_volumes: false,
        registered_at_ms: unix_millis(),
    }
}

fn event(proc: Option<&str>, kind: EventKind, message: &str, at_ms: u64) -> Event {
    Event {
        app: APP.into(),
        proc: proc.map(str::to_owned),
        instance: proc.map(|_| "1-7".to_owned()),
        kind,
        severity: Severity::Error,
        message: message.into(),
        generation: Some(7),
        at_ms,
    }
}

/// deployd in-process on a loopback listener with `extra` appended to
/// its config; stops when the returned sender is dropped or sent to.
async fn start_deployd(
    etcd: &str,
    id: &str,
    extra: &str,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let text = format!("listen = \"{addr}\"\netcd = [\"{etcd}\"]\nid = \"{id}\"\n{extra}");
    let config = Config::parse(Path::new("deployd.toml"), &text).expect("config");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        deployd::run_on(config, listener, Arc::new(Metrics::default()), async {
            let _ = rx.await;
        })
        .await
        .expect("deployd runs");
    });
    (addr, tx, task)
}

/// Reads `r` until its text holds `want`.
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

/// Reads `r` to its end, clean or not, within 10 s.
async fn read_to_end(r: &mut reqwest::Response, seen: &mut String) -> Result<(), reqwest::Error> {
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap_or_else(|_| panic!("the stream goes on; got {seen:?}"))?;
        match chunk {
            Some(c) => seen.push_str(&String::from_utf8_lossy(&c)),
            None => return Ok(()),
        }
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_and_events_need_an_allowed_token() {
    let etcd = block_in_place(Etcd::start).expect("start etcd");
    let dockerd = block_in_place(Dockerd::start).expect("start dockerd");
    block_in_place(|| import_base_image(&dockerd)).expect("import the base image");
    let sso = start_sso().await;

    // Hold deployd's leadership so that the replica under test follows.
    let store = Store::connect(&[etcd.endpoint()])
        .await
        .expect("connect etcd")
        .as_writer(Component::Deployd);
    let _leadership = store
        .election("deployd")
        .unwrap()
        .campaign(
            Candidate {
                id: "api-test-holder".into(),
                address: None,
                started_at_ms: unix_millis(),
            },
            Duration::from_secs(60),
        )
        .await
        .expect("lead");

    // A container as deployd would make it.
    let socket = DockerEndpoint::Unix {
        socket: dockerd.socket_path().display().to_string(),
    };
    let engine = Engine::connect(&socket, Duration::from_secs(5)).expect("engine");
    engine.ensure_network(NETWORK).await.expect("network");
    let spec = ContainerSpec {
        name: "lain-apitest-web-1-7".into(),
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
            "for i in 1 2 3; do echo line$i; done; sleep 0.2; echo err >&2; sleep 1000".into(),
        ],
        host_ip: "127.0.0.1".into(),
        network: NETWORK.into(),
        ..Default::default()
    };
    let cid = engine.create(&spec).await.expect("create");
    engine.start(&cid).await.expect("start");

    // Its record and node, and two records that cannot be served: a
    // container that is gone, and a node that refuses connections.
    let admin = store.as_writer(Component::NodeManagement);
    admin
        .put(
            &NodeKey::new("node-a").unwrap(),
            &registration(socket.clone()),
        )
        .await
        .unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    admin
        .put(
            &NodeKey::new("node-gone").unwrap(),
            &registration(DockerEndpoint::Tcp {
                address: closed.to_string(),
                tls: None,
            }),
        )
        .await
        .unwrap();
    for (slot, node, instance, container) in [
        ("1-7", "node-a", 1, cid.as_str()),
        ("2-7", "node-a", 2, "0123456789abcdef"),
        ("3-7", "node-gone", 3, "fedcba9876543210"),
    ] {
        store
            .put(
                &ObservedKey::new(APP, "web", slot).unwrap(),
                &observed(node, instance, container),
            )
            .await
            .unwrap();
    }
    // Events, leased as deployd writes them.
    let lease = store.grant_lease(Duration::from_secs(120)).await.unwrap();
    let now = unix_millis();
    for (proc, kind, message, at) in [
        (
            Some("web"),
            EventKind::CrashLoop,
            "web/1-7 is crash-looping",
            now,
        ),
        (
            None,
            EventKind::RolloutStarted,
            "rollout of r1 started",
            now - 1000,
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

    let (addr, stop, deployd_task) = start_deployd(
        &etcd.endpoint(),
        "deployd-api",
        &format!(
            "[auth]\nissuer = \"{}\"\nallowed_clients = [\"client:console\"]\n",
            sso.issuer
        ),
    )
    .await;
    let base = format!("http://{addr}");
    let logs = |q: &str| format!("{base}/api/v1/apps/{APP}/procs/web/instances/1/logs{q}");
    let console = sso.token("console").await;

    wait_for(
        "the API to connect to etcd",
        Duration::from_secs(20),
        async || get(&logs("?tail=0"), Some(&console), None).await.0 != 503,
    )
    .await;
    assert_eq!(get(&format!("{base}/healthz"), None, None).await.0, 200);
    assert_eq!(get(&format!("{base}/metrics"), None, None).await.0, 200);

    // Who may call: no token, garbage, a forged token, the wrong audience
    // are 401; a valid token of a subject not allowed is 403.
    let r = http().get(logs("")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let (_, text) = error_of(&r.text().await.unwrap());
    assert!(text.contains("Authorization: Bearer"), "{text}");
    let (status, body) = get(&logs(""), Some("abc.def.ghi"), None).await;
    assert_eq!(status, 401, "{body}");
    let forged = {
        let mut parts: Vec<String> = console.split('.').map(str::to_owned).collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = "client:root".into();
        parts[1] = b64.encode(serde_json::to_vec(&claims).unwrap());
        parts.join(".")
    };
    let (status, body) = get(&logs(""), Some(&forged), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signature"), "{body}");
    let (status, body) = get(&logs(""), Some(&sso.token("elsewhere").await), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("audience"), "{body}");
    let (status, body) = get(&logs(""), Some(&sso.token("intruder").await), None).await;
    assert_eq!(status, 403, "{body}");
    let (code, text) = error_of(&body);
    assert_eq!(code, "forbidden");
    assert!(
        text.contains("client:intruder") && text.contains("allowed_clients"),
        "{text}"
    );

    // The lines, by number and by key segment; the last one with tail=1.
    wait_for(
        "the container's output",
        Duration::from_secs(10),
        async || get(&logs(""), Some(&console), None).await.1.contains("err"),
    )
    .await;
    for url in [
        logs(""),
        format!("{base}/api/v1/apps/{APP}/procs/web/instances/1-7/logs?follow=false"),
    ] {
        let r = http().get(&url).bearer_auth(&console).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), "line1\nline2\nline3\nerr\n");
    }
    let (status, body) = get(&logs("?tail=1"), Some(&console), None).await;
    assert_eq!((status, body.as_str()), (200, "err\n"));
    let (status, body) = get(
        &logs("?tail=2&timestamps=true"),
        Some(&console),
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
    assert_eq!(records[0]["line"], "line3");
    assert_eq!(records[1]["stream"], "stderr");
    assert_eq!(records[1]["line"], "err");
    assert!(
        records[1]["time"].as_str().unwrap().starts_with("20"),
        "{body}"
    );

    // follow: a line written after the request started arrives; the
    // engine stream is dropped when the client goes away.
    let before = deployd::api::open_log_streams();
    let mut r = http()
        .get(logs("?follow=true&tail=1"))
        .bearer_auth(&console)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    read_until(&mut r, &mut seen, "err\n").await;
    assert_eq!(deployd::api::open_log_streams(), before + 1);
    block_in_place(|| dockerd.docker(&["exec", &cid, "sh", "-c", "echo late-line > /proc/1/fd/1"]))
        .expect("docker exec");
    read_until(&mut r, &mut seen, "late-line\n").await;
    assert_eq!(seen, "err\nlate-line\n");
    drop(r);
    wait_for(
        "the log stream to close after the client left",
        Duration::from_secs(10),
        async || deployd::api::open_log_streams() == before,
    )
    .await;

    // Bad names are 400, never 500; unknown instances 404; a gone
    // container 404; an unreachable node 502, named.
    for path in [
        "/api/v1/apps/../procs/web/instances/1/logs",
        "/api/v1/apps/a%2Fb/procs/web/instances/1/logs",
        "/api/v1/apps/apitest/procs/web%00/instances/1/logs",
        "/api/v1/apps/apitest/procs/web/instances/%FF/logs",
        "/api/v1/apps/apitest/procs/web/instances/1/logs?tail=lots",
        "/api/v1/apps/apitest/procs/web/instances/1/logs?follow=maybe",
        "/api/v1/apps/apitest/procs/web/instances/1/logs?since=1",
        "/api/v1/apps/..%2F..%2Fnodes/events",
        "/api/v1/apps/apitest/events?since_ms=yesterday",
        "/api/v1/apps/apitest/events?proc=..",
    ] {
        let (status, body) = raw_get(addr, path, &console).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error_of(&body).0, "invalid_request", "{path}: {body}");
    }
    for (instance, want) in [
        ("9", "no instance 9"),
        ("1-99", "no instance 1-99"),
        ("2", "no longer exists"),
    ] {
        let url = format!("{base}/api/v1/apps/{APP}/procs/web/instances/{instance}/logs");
        let (status, body) = get(&url, Some(&console), None).await;
        assert_eq!(status, 404, "{instance}: {body}");
        assert!(error_of(&body).1.contains(want), "{instance}: {body}");
    }
    let (status, body) = get(
        &format!("{base}/api/v1/apps/other/procs/web/instances/1/logs"),
        Some(&console),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(
        &format!("{base}/api/v1/apps/{APP}/procs/web/instances/3/logs"),
        Some(&console),
        None,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let (code, text) = error_of(&body);
    assert_eq!(code, "node_unreachable");
    assert!(text.contains("node-gone"), "{text}");

    // Events: oldest first; filtered by proc and time.
    let events = format!("{base}/api/v1/apps/{APP}/events");
    let (status, body) = get(&events, Some(&console), None).await;
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 2, "{body}");
    assert_eq!(list[0]["kind"], "rollout_started");
    assert_eq!(list[0]["proc"], Value::Null);
    assert_eq!(list[1]["kind"], "crash_loop");
    assert_eq!(list[1]["severity"], "error");
    assert_eq!(list[1]["message"], "web/1-7 is crash-looping");
    assert_eq!(list[1]["proc"], "web");
    assert_eq!(list[1]["instance"], "1-7");
    assert_eq!(list[1]["generation"], 7);
    assert_eq!(list[1]["at_ms"], now);
    let (_, body) = get(&format!("{events}?proc=web"), Some(&console), None).await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&body).unwrap().len(),
        1,
        "{body}"
    );
    let (_, body) = get(
        &format!("{events}?since_ms={}", now - 500),
        Some(&console),
        None,
    )
    .await;
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["kind"], "crash_loop");
    let (status, body) = get(
        &format!("{base}/api/v1/apps/quiet/events"),
        Some(&console),
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, _) = get(&events, None, None).await;
    assert_eq!(status, 401);

    // A replica whose etcd is unreachable answers 503 until it connects.
    let (down, _stop_down, _down_task) = start_deployd(
        &format!("http://{closed}"),
        "deployd-api-down",
        &format!(
            "[auth]\nissuer = \"{}\"\nallowed_clients = [\"client:console\"]\n",
            sso.issuer
        ),
    )
    .await;
    let (status, body) = get(
        &format!("http://{down}/api/v1/apps/{APP}/events"),
        Some(&console),
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_of(&body).0, "etcd_unavailable");
    // One that cannot reach sso cannot verify anything: 503 too, never 200.
    let (no_sso, _stop_no_sso, _no_sso_task) = start_deployd(
        &etcd.endpoint(),
        "deployd-api-no-sso",
        &format!("[auth]\nissuer = \"http://{closed}\"\nallowed_clients = [\"client:console\"]\n"),
    )
    .await;
    let (status, body) = get(
        &format!("http://{no_sso}/api/v1/apps/{APP}/events"),
        Some(&console),
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("sso"), "{body}");

    // A followed stream ends with the container...
    let mut r = http()
        .get(logs("?follow=true&tail=0"))
        .bearer_auth(&console)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reading = tokio::spawn(async move {
        let mut seen = String::new();
        let end = read_to_end(&mut r, &mut seen).await;
        (end.is_ok(), seen)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine
        .stop(&cid, Duration::from_secs(1))
        .await
        .expect("stop");
    let (clean, seen) = reading.await.unwrap();
    assert!(clean && seen.is_empty(), "{clean} {seen:?}");
    // ... and, cut short, when deployd stops (which it does at once).
    engine.start(&cid).await.expect("start again");
    let mut r = http()
        .get(logs("?follow=true&tail=1"))
        .bearer_auth(&console)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    read_until(&mut r, &mut seen, "\n").await;
    block_in_place(|| dockerd.docker(&["exec", &cid, "sh", "-c", "echo again > /proc/1/fd/1"]))
        .expect("docker exec");
    read_until(&mut r, &mut seen, "again").await;
    let stopping = Instant::now();
    stop.send(()).unwrap();
    read_to_end(&mut r, &mut seen)
        .await
        .expect("a clean NDJSON end");
    let last: Value = serde_json::from_str(seen.lines().last().unwrap()).unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("shutting down"),
        "{seen}"
    );
    tokio::time::timeout(Duration::from_secs(10), deployd_task)
        .await
        .expect("deployd stops despite an open log stream")
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert_eq!(deployd::api::open_log_streams(), before);

    engine.stop(&cid, Duration::from_secs(1)).await.ok();
    engine.remove(&cid).await.ok();
}

/// Without `[auth]` the binary serves `/healthz` and `/metrics` but the
/// API answers 503, token or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_the_api_is_off() {
    let etcd = block_in_place(Etcd::start).expect("start etcd");
    let config = format!(
        "listen = \"{{listen}}\"\nlog_format = \"json\"\netcd = [\"{}\"]\nid = \"deployd-noauth\"\n",
        etcd.endpoint()
    );
    let d = block_in_place(|| Daemon::spawn("deployd", env!("CARGO_BIN_EXE_deployd"), &config))
        .expect("deployd starts");
    let base = format!("http://{}", d.addr);
    assert_eq!(get(&format!("{base}/metrics"), None, None).await.0, 200);
    for token in [None, Some("abc.def.ghi")] {
        for path in [
            "/api/v1/apps/hello/events",
            "/api/v1/apps/hello/procs/web/instances/1/logs",
        ] {
            let (status, body) = get(&format!("{base}{path}"), token, None).await;
            assert_eq!(status, 503, "{path}: {body}");
            let (code, text) = error_of(&body);
            assert_eq!(code, "auth_not_configured");
            assert!(text.contains("[auth]"), "{text}");
        }
    }
    let log = std::fs::read_to_string(d.proc.log()).unwrap();
    assert!(log.contains("no [auth] section"), "{log}");
}
