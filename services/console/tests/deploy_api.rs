//! Deploy, scale, rollback, undeploy and status through the API, against
//! real servers: the `console` binary with a SQLite database and a real
//! etcd (`lain_testkit::Etcd`), sso in-process on loopback for its keys
//! (tokens signed with sso's own key in the shape its token endpoint
//! gives; tests/api.rs covers the real login flows). No dockerd: console
//! only writes desired state, so nodes are registrations in etcd, their
//! liveness is written as deployd would (`/lain/observed-nodes/`), and so
//! are an instance record and a rollout for the status endpoint.

mod common;

use common::{now, TestSso};
use std::time::Duration;

use lain_store::secret::{self, SecretsKey};
use lain_store::{
    Capacity, Component, DesiredKey, DesiredProc, DockerEndpoint, Health, InstanceState, Liveness,
    NodeKey, NodeRegistration, ObservedInstance, ObservedKey, ObservedNode, ObservedNodeKey,
    ProcRollout, RolloutKey, RolloutPhase, SecretKey, Store,
};
use lain_testkit::process::{Logged, ServerDir};
use lain_testkit::Etcd;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::block_in_place;

const BIN: &str = env!("CARGO_BIN_EXE_console");
const ADMIN_GROUP: &str = "lain-admins";
const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

struct Console {
    _proc: Logged,
    base: String,
    _dir: ServerDir,
}

/// console with `etcd`, on SQLite in its directory or on `database`.
fn start_console(issuer: &str, etcd: &str, key: &SecretsKey, database: Option<&str>) -> Console {
    let dir = ServerDir::new("console-deploy").unwrap();
    let key_path = dir.path().join("secrets.key");
    std::fs::write(&key_path, key.to_base64().as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lain_testkit::free_port()));
    let database = database
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}/console.db?mode=rwc", dir.path().display()));
    let config = format!(
        "listen = \"{addr}\"\nlog_format = \"json\"\n\
         database = \"{database}\"\n\
         etcd = [\"{etcd}\"]\n\
         secrets_key_file = \"{k}\"\ncluster_domain = \"lain.local\"\n\
         [auth]\nissuer = \"{issuer}\"\nadmin_group = \"{ADMIN_GROUP}\"\n",
        k = key_path.display(),
    );
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

#[derive(Debug)]
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text);
        self.json()
    }

    /// Asserts a JSON error with `status` and `code`; returns its message.
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "{}", self.text);
        assert!(
            v["hint"].as_str().is_some_and(|h| !h.is_empty()),
            "{}",
            self.text
        );
        v["message"].as_str().unwrap().to_owned()
    }
}

async fn call(base: &str, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    Answer {
        status: r.status().as_u16(),
        text: r.text().await.unwrap_or_default(),
    }
}

fn version(n: u32) -> String {
    format!("{}-{:040x}", 1_700_000_000 + n, n)
}

fn image(n: u32) -> String {
    format!("registry.lain.local:5000/hello:release-{}", version(n))
}

fn release(n: u32, yaml: &str) -> Value {
    json!({
        "version": version(n),
        "image": image(n),
        "digest": format!("sha256:{:064x}", n),
        "lain_yaml": yaml,
    })
}

const V1: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello
  port: 8080
  num_instances: 2
  memory: 256m
  env:
    - GREETING=v1
  secret_files:
    - /lain/app/db.conf
worker.queue:
  cmd: ./hello work
  memory: 64m
";

const V2: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello --v2
  port: 8080
  num_instances: 2
  memory: 256m
  env:
    - GREETING=v2
  secret_files:
    - /lain/app/db.conf
";

const HUGE: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello
  memory: 4g
";

const NEEDS_SECRET: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello
  secret_files:
    - /lain/app/other.conf
";

fn registration(cpu_millis: u64, memory_bytes: u64) -> NodeRegistration {
    NodeRegistration {
        docker: DockerEndpoint::Unix {
            socket: "/var/run/docker.sock".into(),
        },
        address: "127.0.0.1".into(),
        labels: Default::default(),
        capacity: Capacity {
            cpu_millis,
            memory_bytes,
        },
        schedulable: true,
        draining: false,
        drain_volumes: false,
        registered_at_ms: 0,
    }
}

/// The app's desired procs, by name.
async fn desired(store: &Store) -> std::collections::BTreeMap<String, DesiredProc> {
    store
        .list(&DesiredKey::of_app("hello").unwrap())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.key.proc().to_owned(), e.value))
        .collect()
}

/// The app's desired keys with their revisions: equal before and after
/// a refused call means nothing changed.
async fn desired_revisions(store: &Store) -> Vec<(String, i64)> {
    store
        .list(&DesiredKey::of_app("hello").unwrap())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.key.proc().to_owned(), e.mod_revision))
        .collect()
}

/// Reads a deployment's event stream to its end (at most 20 s).
async fn follow(url: String, token: String) -> String {
    let mut r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Some(chunk) = tokio::time::timeout_at(deadline, r.chunk())
        .await
        .unwrap_or_else(|_| panic!("the stream did not end: {text}"))
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// Waits until deployment `id` is in `state`; returns it.
async fn wait_state(base: &str, token: &str, id: i64, state: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = call(
            base,
            Method::GET,
            "/api/v1/apps/hello/deployments",
            token,
            None,
        )
        .await
        .ok();
        let d = list
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()
            .clone();
        if d["state"] == state {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deployment {id} is not {state}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_scale_rollback_undeploy_through_the_api() {
    deploy_scale_rollback_undeploy(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_scale_rollback_undeploy_on_postgres() {
    let pg = tokio::task::spawn_blocking(lain_testkit::Postgres::start)
        .await
        .unwrap()
        .expect("postgres starts");
    deploy_scale_rollback_undeploy(Some(&pg)).await
}

/// The whole deploy story against real etcd and sso, with console's
/// database on SQLite, or on `pg`.
async fn deploy_scale_rollback_undeploy(pg: Option<&lain_testkit::Postgres>) {
    let etcd = block_in_place(Etcd::start).expect("etcd");
    let key = SecretsKey::generate();
    let sso = TestSso::start().await;
    let database = pg.map(|pg| pg.create_database().unwrap());
    let console =
        block_in_place(|| start_console(&sso.issuer, &etcd.endpoint(), &key, database.as_deref()));
    let base = console.base.as_str();
    let alice = sso.token("alice", &[]);
    let mallory = sso.token("mallory", &[]);
    let root = sso.token("root", &[ADMIN_GROUP]);

    // Two nodes, alive as deployd would say; a third cordoned one and a
    // fourth deployd sees lost do not count.
    let plain = Store::connect(&[etcd.endpoint()]).await.unwrap();
    let nodes = plain.as_writer(Component::NodeManagement);
    let deployd = plain.as_writer(Component::Deployd);
    let mut cordoned = registration(64_000, 64 * G);
    cordoned.schedulable = false;
    for (name, reg) in [
        ("node-1", registration(4000, G)),
        ("node-3", registration(4000, G + G / 2)),
        ("node-9", cordoned),
        ("node-lost", registration(64_000, 64 * G)),
    ] {
        nodes.put(&NodeKey::new(name).unwrap(), &reg).await.unwrap();
        let liveness = if name == "node-lost" {
            Liveness::Lost
        } else {
            Liveness::Alive
        };
        let observed = ObservedNode {
            liveness,
            last_seen_ms: 1,
            since_ms: 1,
            docker_version: None,
            instances: 0,
            message: None,
        };
        deployd
            .put(&ObservedNodeKey::new(name).unwrap(), &observed)
            .await
            .unwrap();
    }

    // alice's app, its secret (version 1) and three releases.
    call(
        base,
        Method::POST,
        "/api/v1/apps",
        &alice,
        Some(json!({"name": "hello"})),
    )
    .await;
    let client = reqwest::Client::new();
    let r = client
        .put(format!("{base}/api/v1/apps/hello/secrets/db.conf"))
        .bearer_auth(&alice)
        .body("password=old-one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let old_version = r.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    assert_eq!(old_version, 1);
    // v2 is the latest (by commit time); 2 and 3 cannot be deployed.
    for (n, yaml) in [(1, V1), (5, V2), (2, HUGE), (3, NEEDS_SECRET)] {
        let a = call(
            base,
            Method::POST,
            "/api/v1/apps/hello/releases",
            &alice,
            Some(release(n, yaml)),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }

    // Deploy v1: both procs in etcd, one generation, the secret version
    // named and sealed under /lain/secrets/.
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"version": version(1)})),
    )
    .await;
    let out = a.ok();
    assert_eq!(out["written"], json!(["web", "worker.queue"]), "{out}");
    assert_eq!(out["deployment"]["kind"], "deploy");
    assert_eq!(out["deployment"]["state"], "progressing");
    assert_eq!(out["deployment"]["to_release"], version(1));
    assert_eq!(out["deployment"]["secrets"], json!({"db.conf": 1}));
    let v1 = desired(&plain).await;
    assert_eq!(v1.len(), 2);
    let web = &v1["web"];
    assert_eq!(web.image, image(1));
    assert_eq!(web.instances, 2);
    assert_eq!(web.memory_bytes, 256 * M);
    assert_eq!(web.env["GREETING"], "v1");
    assert_eq!(web.secrets[0].version, 1);
    let generation1 = web.generation;
    assert_eq!(v1["worker.queue"].generation, generation1);
    let sk = SecretKey::new("hello", "db.conf", 1).unwrap();
    let sealed = plain.get(&sk).await.unwrap().expect("secret in etcd").value;
    assert_eq!(
        &*secret::open_for(&key, &sk, &sealed.value).unwrap(),
        b"password=old-one"
    );
    let dump = etcd.etcdctl(&["get", "--prefix", "/lain/"]).unwrap();
    assert!(!dump.contains("old-one"), "plaintext secret in etcd");

    // A non-maintainer is refused and nothing changes; so is everyone
    // else's attempt at every mutation.
    let before = desired_revisions(&plain).await;
    for (path, body) in [
        ("/api/v1/apps/hello/deploy", json!({})),
        ("/api/v1/apps/hello/undeploy", json!({})),
        (
            "/api/v1/apps/hello/procs/web/scale",
            json!({"instances": 9}),
        ),
        ("/api/v1/apps/hello/rollback", json!({})),
    ] {
        let a = call(base, Method::POST, path, &mallory, Some(body)).await;
        a.error(403, "forbidden");
    }
    assert_eq!(desired_revisions(&plain).await, before);

    // An instance that fits no node: refused, naming the resource and the
    // largest free node; etcd unchanged.
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"version": version(2)})),
    )
    .await;
    let m = a.error(422, "cannot_fit");
    assert_eq!(
        m,
        "no node has 4g free memory for an instance of proc web; the largest free is node-3 with 1.5g"
    );
    // A secret the release needs is not set: refused with the command.
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"version": version(3)})),
    )
    .await;
    let m = a.error(422, "undeployable");
    assert!(m.contains("other.conf"), "{m}");
    assert!(
        a.json()["hint"]
            .as_str()
            .unwrap()
            .contains("lain secret set hello other.conf"),
        "{}",
        a.text
    );
    // Bad bodies and unknown releases or procs.
    call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"versoin": 1})),
    )
    .await
    .error(400, "invalid_json");
    call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"version": version(9)})),
    )
    .await
    .error(404, "not_found");
    call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"proc": "nope"})),
    )
    .await
    .error(422, "undeployable");
    assert_eq!(desired_revisions(&plain).await, before);

    // Instances already placed count against their node: with another
    // app's 1.2g instance on node-3, 1g + 0.3g are free, less than
    // 3 x 512m.
    let mut other = v1["web"].clone();
    other.app = "other".into();
    other.memory_bytes = G + G / 5;
    plain
        .put(&DesiredKey::new("other", "web").unwrap(), &other)
        .await
        .unwrap();
    let record = ObservedInstance {
        node: "node-3".into(),
        container_id: Some("c0".into()),
        generation: other.generation,
        release: other.release.clone(),
        image: other.image.clone(),
        state: InstanceState::Running,
        health: Health::Healthy,
        address: Some("127.0.0.1:30000".into()),
        restarts: 0,
        started_at_ms: None,
        updated_at_ms: 0,
        message: None,
        instance: 1,
        spec: String::new(),
        recent_restarts_ms: Vec::new(),
        volumes_from: None,
    };
    deployd
        .put(&ObservedKey::new("other", "web", "1-1").unwrap(), &record)
        .await
        .unwrap();
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/procs/web/scale",
        &alice,
        Some(json!({"instances": 3, "memory": "512m"})),
    )
    .await;
    let m = a.error(422, "cannot_fit");
    assert!(m.contains("1.5g memory in total (web: 3 x 512m)"), "{m}");
    assert_eq!(desired_revisions(&plain).await, before);
    plain
        .delete(&ObservedKey::new("other", "web", "1-1").unwrap())
        .await
        .unwrap();
    plain
        .delete(&DesiredKey::new("other", "web").unwrap())
        .await
        .unwrap();

    // v2 with a new secret value: worker.queue is gone from etcd, web
    // runs v2 with secret version 2.
    let r = client
        .put(format!("{base}/api/v1/apps/hello/secrets/db.conf"))
        .bearer_auth(&alice)
        .body("password=new-one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({})),
    )
    .await
    .ok();
    assert_eq!(
        out["deployment"]["to_release"],
        version(5),
        "latest by default"
    );
    assert_eq!(out["deployment"]["from_release"], version(1));
    assert_eq!(out["removed"], json!(["worker.queue"]));
    let v2 = desired(&plain).await;
    assert_eq!(
        v2.keys().collect::<Vec<_>>(),
        ["web"],
        "a removed proc stayed"
    );
    assert_eq!(v2["web"].env["GREETING"], "v2");
    assert_eq!(v2["web"].secrets[0].version, 2);
    assert!(v2["web"].generation > generation1);

    // Scale web: numbers change, image, env and secrets stay.
    let out = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/procs/web/scale",
        &alice,
        Some(json!({"instances": 3, "cpu": 1, "memory": "128m"})),
    )
    .await
    .ok();
    assert_eq!(out["deployment"]["kind"], "scale");
    assert_eq!(out["deployment"]["procs"], json!(["web"]));
    let scale_id = out["deployment"]["id"].as_i64().unwrap();
    let scaled = desired(&plain).await["web"].clone();
    assert_eq!(scaled.instances, 3);
    assert_eq!(scaled.cpu_millis, 1000);
    assert_eq!(scaled.memory_bytes, 128 * M);
    assert!(scaled.generation > v2["web"].generation);
    let mut same = scaled.clone();
    same.instances = v2["web"].instances;
    same.cpu_millis = v2["web"].cpu_millis;
    same.memory_bytes = v2["web"].memory_bytes;
    same.generation = v2["web"].generation;
    assert_eq!(same, v2["web"], "scale changed more than the numbers");
    for (body, status, code) in [
        (json!({"instances": 5000}), 400, "invalid_request"),
        (json!({"memory": "12k"}), 400, "invalid_request"),
        (json!({"cpu": 999}), 400, "invalid_request"),
        (json!({}), 400, "invalid_request"),
        (json!({"replicas": 2}), 400, "invalid_json"),
    ] {
        call(
            base,
            Method::POST,
            "/api/v1/apps/hello/procs/web/scale",
            &alice,
            Some(body),
        )
        .await
        .error(status, code);
    }
    call(
        base,
        Method::POST,
        "/api/v1/apps/hello/procs/worker.queue/scale",
        &alice,
        Some(json!({"instances": 1})),
    )
    .await
    .error(404, "not_found");

    // Status: desired state, rollout and instances as deployd wrote them.
    // Meanwhile the scale's event stream follows it until it converged.
    let events = tokio::spawn(follow(
        format!("{base}/api/v1/apps/hello/deployments/{scale_id}/events"),
        mallory.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let record = ObservedInstance {
        node: "node-1".into(),
        generation: scaled.generation,
        release: scaled.release.clone(),
        image: scaled.image.clone(),
        restarts: 2,
        instance: 1,
        ..record
    };
    deployd
        .put(
            &ObservedKey::new("hello", "web", &format!("1-{}", scaled.generation)).unwrap(),
            &record,
        )
        .await
        .unwrap();
    let rollout = ProcRollout {
        generation: scaled.generation,
        spec: "abc".into(),
        phase: RolloutPhase::Converged,
        last_good: None,
        failed_spec: None,
        message: None,
        updated_at_ms: 5,
        homes: Default::default(),
    };
    deployd
        .put(&RolloutKey::new("hello", "web").unwrap(), &rollout)
        .await
        .unwrap();
    let s = call(
        base,
        Method::GET,
        "/api/v1/apps/hello/status",
        &mallory,
        None,
    )
    .await
    .ok();
    assert_eq!(s["app"], "hello");
    let web = &s["procs"][0];
    assert_eq!(web["proc"], "web");
    assert_eq!(web["desired"]["instances"], 3);
    assert_eq!(web["desired"]["release"], version(5));
    assert_eq!(web["desired"]["generation"], scaled.generation);
    assert_eq!(web["rollout"]["phase"], "converged");
    assert_eq!(web["instances"][0]["state"], "running");
    assert_eq!(web["instances"][0]["health"], "healthy");
    assert_eq!(web["instances"][0]["node"], "node-1");
    assert_eq!(web["instances"][0]["restarts"], 2);
    assert_eq!(web["instances"][0]["address"], "127.0.0.1:30000");
    call(base, Method::GET, "/api/v1/apps/nope/status", &alice, None)
        .await
        .error(404, "not_found");
    let text = events.await.unwrap();
    let deployment = text.find("event: deployment").expect(&text);
    let status = text.find("event: status").expect(&text);
    let done = text.find("event: done").expect(&text);
    assert!(deployment < status && status < done, "{text}");
    assert!(
        text.contains(r#"data: {"error":null,"state":"succeeded"}"#),
        "{text}"
    );
    assert!(text.contains(r#""state":"running""#), "{text}");
    // console follows the rollouts too: the scale is finished.
    wait_state(base, &mallory, scale_id, "succeeded").await;

    // Rollback (to the previous release by default): image, env and
    // secrets return together, and a secret version missing from etcd is
    // sealed there again from the database.
    plain.delete(&sk).await.unwrap();
    let out = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/rollback",
        &alice,
        Some(json!({})),
    )
    .await
    .ok();
    assert_eq!(out["deployment"]["kind"], "rollback");
    assert_eq!(out["deployment"]["to_release"], version(1));
    assert_eq!(out["deployment"]["secrets"], json!({"db.conf": 1}));
    let back = desired(&plain).await;
    assert_eq!(back.len(), 2, "worker.queue returns too");
    for (name, p) in &back {
        let mut p = p.clone();
        assert!(p.generation > scaled.generation);
        p.generation = v1[name].generation;
        assert_eq!(p, v1[name], "{name} differs from v1's snapshot");
    }
    let sealed = plain.get(&sk).await.unwrap().expect("re-sealed").value;
    assert_eq!(
        &*secret::open_for(&key, &sk, &sealed.value).unwrap(),
        b"password=old-one"
    );
    // deployd rolls worker.queue back: so is the deployment, with why.
    let rollback_id = out["deployment"]["id"].as_i64().unwrap();
    let generation = back["web"].generation;
    for (proc, phase) in [
        ("web", RolloutPhase::Converged),
        ("worker.queue", RolloutPhase::RolledBack),
    ] {
        let r = ProcRollout {
            generation,
            phase,
            message: Some("new instances never became healthy".into()),
            ..rollout.clone()
        };
        deployd
            .put(&RolloutKey::new("hello", proc).unwrap(), &r)
            .await
            .unwrap();
    }
    let d = wait_state(base, &mallory, rollback_id, "rolled_back").await;
    assert_eq!(
        d["error"], "proc worker.queue: new instances never became healthy",
        "{d}"
    );
    let text = follow(
        format!("{base}/api/v1/apps/hello/deployments/{rollback_id}/events"),
        mallory.clone(),
    )
    .await;
    assert!(text.contains(r#""state":"rolled_back""#), "{text}");
    call(
        base,
        Method::GET,
        "/api/v1/apps/other/deployments/1/events",
        &alice,
        None,
    )
    .await
    .error(404, "not_found");
    call(
        base,
        Method::GET,
        "/api/v1/apps/hello/deployments/999/events",
        &alice,
        None,
    )
    .await
    .error(404, "not_found");
    // To a named release with no deployment: 404.
    call(
        base,
        Method::POST,
        "/api/v1/apps/hello/rollback",
        &alice,
        Some(json!({"to": version(3)})),
    )
    .await
    .error(404, "not_found");

    // One proc alone: web moves to v2, worker.queue stays as it was.
    let before = desired(&plain).await;
    let out = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({"version": version(5), "proc": "web"})),
    )
    .await
    .ok();
    assert_eq!(out["deployment"]["procs"], json!(["web"]));
    assert_eq!(out["written"], json!(["web"]));
    assert_eq!(out["removed"], json!([]));
    let after = desired(&plain).await;
    assert_eq!(after["worker.queue"], before["worker.queue"]);
    assert_eq!(after["web"].env["GREETING"], "v2");
    assert_eq!(after["web"].secrets[0].version, 2);

    // The history, newest first.
    let list = call(
        base,
        Method::GET,
        "/api/v1/apps/hello/deployments",
        &mallory,
        None,
    )
    .await
    .ok();
    let kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["deploy", "rollback", "scale", "deploy", "deploy"]);

    // Undeploy: nothing desired; the app can then be deleted.
    let out = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/undeploy",
        &root,
        None,
    )
    .await
    .ok();
    assert_eq!(out["deployment"]["state"], "succeeded");
    assert_eq!(out["removed"], json!(["web", "worker.queue"]));
    let text = follow(
        format!(
            "{base}/api/v1/apps/hello/deployments/{}/events",
            out["deployment"]["id"]
        ),
        mallory.clone(),
    )
    .await;
    assert!(text.contains(r#""state":"succeeded""#), "{text}");
    assert!(desired(&plain).await.is_empty());

    // Every call was audited: allowed, denied and failed.
    let audit = call(
        base,
        Method::GET,
        "/api/v1/audit?app=hello&limit=1000",
        &root,
        None,
    )
    .await
    .ok();
    let entries: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let count = |action: &str, result: &str| {
        entries
            .iter()
            .filter(|(a, r)| a == action && r == result)
            .count()
    };
    assert_eq!(count("deploy", "ok"), 3, "{entries:?}");
    assert_eq!(count("deploy", "denied"), 1, "{entries:?}");
    assert_eq!(count("deploy", "error"), 5, "{entries:?}");
    assert_eq!(count("scale", "ok"), 1, "{entries:?}");
    assert_eq!(count("scale", "denied"), 1, "{entries:?}");
    assert_eq!(count("scale", "error"), 7, "{entries:?}");
    assert_eq!(count("rollback", "ok"), 1, "{entries:?}");
    assert_eq!(count("rollback", "denied"), 1, "{entries:?}");
    assert_eq!(count("rollback", "error"), 1, "{entries:?}");
    assert_eq!(count("undeploy", "ok"), 1, "{entries:?}");
    assert_eq!(count("undeploy", "denied"), 1, "{entries:?}");
    let deploy_ok = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "deploy" && e["result"] == "ok")
        .unwrap();
    assert_eq!(deploy_ok["actor"], "alice");
    assert!(deploy_ok["detail"]["generation"].is_i64(), "{deploy_ok}");
    assert!(!audit.to_string().contains("old-one") && !audit.to_string().contains("new-one"));

    let a = call(base, Method::DELETE, "/api/v1/apps/hello", &alice, None).await;
    assert_eq!(a.status, 204, "{}", a.text);
}

/// console starts without etcd and answers 503 `etcd_unavailable` on the
/// routes that need it; the others work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_etcd_console_starts_and_answers_503() {
    let key = SecretsKey::generate();
    let sso = TestSso::start().await;
    let dead = format!("http://127.0.0.1:{}", lain_testkit::free_port());
    let console = block_in_place(|| start_console(&sso.issuer, &dead, &key, None));
    let base = console.base.as_str();
    let alice = sso.token("alice", &[]);
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps",
        &alice,
        Some(json!({"name": "hello"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    call(base, Method::GET, "/api/v1/apps/hello/status", &alice, None)
        .await
        .error(503, "etcd_unavailable");
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps/hello/deploy",
        &alice,
        Some(json!({})),
    )
    .await;
    a.error(503, "etcd_unavailable");
    call(
        base,
        Method::GET,
        "/api/v1/apps/hello/deployments",
        &alice,
        None,
    )
    .await
    .ok();
}

/// Deploy, undeploy, scale and rollback as anonymous, with an expired,
/// a forged token, as a non-maintainer and a daemon (401, 401, 401, 403,
/// 403: etcd unchanged, audited `denied`), as a maintainer and as an
/// admin (2xx).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_routes_authorization_matrix() {
    let etcd = block_in_place(Etcd::start).expect("etcd");
    let key = SecretsKey::generate();
    let sso = TestSso::start().await;
    let console = block_in_place(|| start_console(&sso.issuer, &etcd.endpoint(), &key, None));
    let base = console.base.as_str();
    let alice = sso.token("alice", &[]);
    let carol = sso.token("carol", &[]);
    let mallory = sso.token("mallory", &["dev"]);
    let daemon = sso.token("client:ci", &[]);
    let root = sso.token("root", &[ADMIN_GROUP]);
    let expired = {
        let t = now() - 7200;
        let claims = json!({
            "iss": sso.issuer, "sub": "carol", "aud": "console", "client_id": "cli",
            "iat": t, "nbf": t, "exp": t + 600, "jti": "expired", "scope": "openid",
            "groups": [ADMIN_GROUP], "preferred_username": "carol",
        });
        sso.sso.state().keys.sign("at+jwt", &claims).expect("sign")
    };
    let forged = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = mallory.split('.').map(str::to_owned).collect();
        let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
        claims["groups"] = json!([ADMIN_GROUP]);
        parts[1] = b64.encode(serde_json::to_vec(&claims).unwrap());
        parts.join(".")
    };

    let plain = Store::connect(&[etcd.endpoint()]).await.unwrap();
    let nodes = plain.as_writer(Component::NodeManagement);
    let deployd = plain.as_writer(Component::Deployd);
    for name in ["node-1", "node-2"] {
        nodes
            .put(&NodeKey::new(name).unwrap(), &registration(8000, 4 * G))
            .await
            .unwrap();
        let observed = ObservedNode {
            liveness: Liveness::Alive,
            last_seen_ms: 1,
            since_ms: 1,
            docker_version: None,
            instances: 0,
            message: None,
        };
        deployd
            .put(&ObservedNodeKey::new(name).unwrap(), &observed)
            .await
            .unwrap();
    }
    // alice owns the app, carol maintains it; a secret and two releases.
    let a = call(
        base,
        Method::POST,
        "/api/v1/apps",
        &alice,
        Some(json!({"name": "hello"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    call(
        base,
        Method::PUT,
        "/api/v1/apps/hello/maintainers",
        &alice,
        Some(json!({"subject": "carol"})),
    )
    .await
    .ok();
    let r = reqwest::Client::new()
        .put(format!("{base}/api/v1/apps/hello/secrets/db.conf"))
        .bearer_auth(&alice)
        .body("password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (n, yaml) in [(1, V1), (2, V2)] {
        let a = call(
            base,
            Method::POST,
            "/api/v1/apps/hello/releases",
            &alice,
            Some(release(n, yaml)),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    // Something to roll back from, scale and undeploy.
    for n in [1, 2] {
        call(
            base,
            Method::POST,
            "/api/v1/apps/hello/deploy",
            &alice,
            Some(json!({"version": version(n)})),
        )
        .await
        .ok();
    }

    /// A POST with an optional token.
    async fn post(base: &str, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut req = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request");
        Answer {
            status: r.status().as_u16(),
            text: r.text().await.unwrap_or_default(),
        }
    }
    /// etcd's revision: unchanged means nothing at all was written.
    async fn revision(store: &Store) -> i64 {
        store
            .list(&DesiredKey::of_app("hello").unwrap())
            .await
            .unwrap()
            .revision
    }

    let routes: [(&str, &str, Value, Value); 4] = [
        (
            "deploy",
            "/api/v1/apps/hello/deploy",
            json!({"version": version(1)}),
            json!({}),
        ),
        (
            "scale",
            "/api/v1/apps/hello/procs/web/scale",
            json!({"instances": 1}),
            json!({"instances": 3, "memory": "128m"}),
        ),
        (
            "rollback",
            "/api/v1/apps/hello/rollback",
            json!({}),
            json!({}),
        ),
        (
            "undeploy",
            "/api/v1/apps/hello/undeploy",
            json!({}),
            json!({}),
        ),
    ];
    let mut denied = 0;
    for (action, path, maintainer_body, admin_body) in routes {
        let before = revision(&plain).await;
        for (who, token, status, code) in [
            ("anonymous", None, 401, "unauthorized"),
            ("expired", Some(expired.as_str()), 401, "unauthorized"),
            ("forged", Some(forged.as_str()), 401, "unauthorized"),
            ("non-maintainer", Some(mallory.as_str()), 403, "forbidden"),
            ("daemon", Some(daemon.as_str()), 403, "forbidden"),
        ] {
            let a = post(base, path, token, &maintainer_body).await;
            assert_eq!(a.status, status, "{action} as {who}: {}", a.text);
            a.error(status, code);
            denied += 1;
        }
        assert_eq!(
            revision(&plain).await,
            before,
            "{action}: a denied call changed etcd"
        );
        let a = post(base, path, Some(&carol), &maintainer_body).await;
        assert!(
            (200..300).contains(&a.status),
            "{action} as a maintainer: {} {}",
            a.status,
            a.text
        );
        let a = post(base, path, Some(&root), &admin_body).await;
        assert!(
            (200..300).contains(&a.status),
            "{action} as an admin: {} {}",
            a.status,
            a.text
        );
        assert!(revision(&plain).await > before, "{action} wrote nothing");
    }
    // What the calls did, last: nothing desired after the undeploys.
    assert!(desired(&plain).await.is_empty());
    // Every refusal is in the audit log as `denied`.
    let log = call(
        base,
        Method::GET,
        "/api/v1/audit?app=hello&limit=1000",
        &root,
        None,
    )
    .await
    .ok();
    let entries = log.as_array().unwrap();
    let refused = entries.iter().filter(|e| e["result"] == "denied").count();
    assert_eq!(refused, denied, "{log}");
    for action in ["deploy", "scale", "rollback", "undeploy"] {
        let ok = entries
            .iter()
            .filter(|e| e["action"] == action && e["result"] == "ok")
            .count();
        assert!(ok >= 2, "{action}: {ok} ok entries");
    }
}

const SVC: &str = "appname: svc
build:
  base: golang
  script: [go build]
service.echo:
  type: worker
  cmd: ./echo
  port: 8080
  portal:
    allow_clients: \"client-a, client-b\"
    cmd: ./proxy
    port: 9000
";

/// A resource: its lain.yaml is a template rendered for each client.
const KV: &str = "appname: kv
apptype: resource
build:
  base: golang
  script: [go build]
worker.store:
  cmd: ./kv
  port: 6379
  memory: \"{{ memory|default('64m') }}\"
portal.portal-kv:
  service_name: store
  allow_clients: \"**\"
  cmd: ./proxy
  port: 6379
";

fn client_yaml(name: &str, memory: &str) -> String {
    format!(
        "appname: {name}
build:
  base: golang
  script: [go build]
worker:
  cmd: ./c
use_services:
  svc: [echo]
use_resources:
  kv:
    memory: {memory}
    services: [store]
"
    )
}

async fn desired_of(store: &Store, app: &str) -> std::collections::BTreeMap<String, DesiredProc> {
    store
        .list(&DesiredKey::of_app(app).unwrap())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.key.proc().to_owned(), e.value))
        .collect()
}

/// use_services and use_resources through the API: a client deploy
/// resolves its services to the service apps' portals, checks
/// allow_clients, and instantiates each resource for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_and_resources_through_the_api() {
    let etcd = block_in_place(Etcd::start).expect("etcd");
    let key = SecretsKey::generate();
    let sso = TestSso::start().await;
    let console = block_in_place(|| start_console(&sso.issuer, &etcd.endpoint(), &key, None));
    let base = console.base.as_str();
    let alice = sso.token("alice", &[]);
    let plain = Store::connect(&[etcd.endpoint()]).await.unwrap();
    plain
        .as_writer(Component::NodeManagement)
        .put(
            &NodeKey::new("node-1").unwrap(),
            &registration(64_000, 64 * G),
        )
        .await
        .unwrap();
    plain
        .as_writer(Component::Deployd)
        .put(
            &ObservedNodeKey::new("node-1").unwrap(),
            &ObservedNode {
                liveness: Liveness::Alive,
                last_seen_ms: 1,
                since_ms: 1,
                docker_version: None,
                instances: 0,
                message: None,
            },
        )
        .await
        .unwrap();

    let create = |name: &'static str, apptype: &'static str| {
        let (base, alice) = (base.to_owned(), alice.clone());
        async move {
            let a = call(
                &base,
                Method::POST,
                "/api/v1/apps",
                &alice,
                Some(json!({"name": name, "apptype": apptype})),
            )
            .await;
            assert_eq!(a.status, 201, "{}", a.text);
        }
    };
    let push = |app: &'static str, yaml: String| {
        let (base, alice) = (base.to_owned(), alice.clone());
        async move {
            let a = call(
                &base,
                Method::POST,
                &format!("/api/v1/apps/{app}/releases"),
                &alice,
                Some(release(1, &yaml)),
            )
            .await;
            assert_eq!(a.status, 201, "{}", a.text);
        }
    };
    let deploy = |app: &'static str| {
        let (base, alice) = (base.to_owned(), alice.clone());
        async move {
            call(
                &base,
                Method::POST,
                &format!("/api/v1/apps/{app}/deploy"),
                &alice,
                Some(json!({})),
            )
            .await
        }
    };
    for (name, apptype) in [
        ("svc", "app"),
        ("kv", "resource"),
        ("client-a", "app"),
        ("client-b", "app"),
        ("outsider", "app"),
    ] {
        create(name, apptype).await;
    }
    // The resource's template registers although it does not parse on
    // its own (it renders with its defaults).
    push("svc", SVC.into()).await;
    push("kv", KV.into()).await;
    push("client-a", client_yaml("client-a", "128m")).await;
    push("client-b", client_yaml("client-b", "256m")).await;
    push(
        "outsider",
        client_yaml("outsider", "64m").replace(
            "use_resources:\n  kv:\n    memory: 64m\n    services: [store]\n",
            "",
        ),
    )
    .await;

    // Before the service is deployed, its clients are refused.
    let m = deploy("client-a").await.error(422, "undeployable");
    assert!(m.contains("svc, which is not deployed"), "{m}");
    assert!(desired_of(&plain, "client-a").await.is_empty());

    deploy("svc").await.ok();
    let svc = desired_of(&plain, "svc").await;
    let portal = &svc["portal.portal-echo"];
    assert_eq!(portal.instances, 0, "a portal runs per client node");
    let spec = portal.portal.as_ref().unwrap();
    assert_eq!(spec.service_proc, "worker.echo");
    assert_eq!(spec.allow_clients, ["client-a", "client-b"]);
    // A portal is neither scaled nor deployed on its own.
    let m = call(
        base,
        Method::POST,
        "/api/v1/apps/svc/procs/portal.portal-echo/scale",
        &alice,
        Some(json!({"instances": 3})),
    )
    .await
    .error(422, "undeployable");
    assert!(m.contains("is a portal"), "{m}");

    // Each client gets its own instance of the resource, rendered with
    // its parameters, whose portal serves it alone.
    deploy("client-a").await.ok();
    deploy("client-b").await.ok();
    for (client, memory) in [("client-a", 128 * M), ("client-b", 256 * M)] {
        let instance = format!("resource.kv.{client}");
        let inst = desired_of(&plain, &instance).await;
        assert_eq!(inst["worker.store"].memory_bytes, memory, "{inst:?}");
        // The resource's release image (all of this test's releases name
        // the same one).
        assert_eq!(inst["worker.store"].image, image(1));
        let kv_portal = inst["portal.portal-kv"].portal.as_ref().unwrap();
        assert_eq!(kv_portal.allow_clients, [client]);
        let c = desired_of(&plain, client).await;
        let uses = &c["worker"].services;
        assert_eq!(uses.len(), 2, "{uses:?}");
        assert_eq!(uses[0].app, "svc");
        assert_eq!(uses[0].aliases, ["echo.svc.lain", "echo"]);
        assert_eq!(uses[1].app, instance);
        assert_eq!(uses[1].portal, "portal.portal-kv");
        assert_eq!(
            uses[1].aliases,
            [format!("store.{instance}.lain"), "store".into()]
        );
        // The instance is an app of its own, listed and owned by the
        // deployer.
        call(
            base,
            Method::GET,
            &format!("/api/v1/apps/{instance}"),
            &alice,
            None,
        )
        .await
        .ok();
    }
    // A second deploy of a client leaves its unchanged instance alone.
    let before: Vec<i64> = plain
        .list(&DesiredKey::of_app("resource.kv.client-a").unwrap())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.mod_revision)
        .collect();
    deploy("client-a").await.ok();
    let after: Vec<i64> = plain
        .list(&DesiredKey::of_app("resource.kv.client-a").unwrap())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.mod_revision)
        .collect();
    assert_eq!(before, after);

    // Not in allow_clients: refused, nothing written.
    let m = deploy("outsider").await.error(422, "undeployable");
    assert!(
        m.contains(
            "does not let outsider use its service echo (allow_clients: client-a, client-b)"
        ),
        "{m}"
    );
    assert!(desired_of(&plain, "outsider").await.is_empty());

    // Instances are made and deployed through their clients only.
    let m = deploy("resource.kv.client-a")
        .await
        .error(422, "undeployable");
    assert!(m.contains("deployed with its client"), "{m}");
    call(
        base,
        Method::POST,
        "/api/v1/apps",
        &alice,
        Some(json!({"name": "resource.kv.mallory"})),
    )
    .await
    .error(400, "invalid_request");
    // A resource is not deployed itself.
    let m = deploy("kv").await.error(422, "undeployable");
    assert!(m.contains("is a resource"), "{m}");
}
