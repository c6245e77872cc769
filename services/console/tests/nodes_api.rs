//! The node API (`/api/v1/nodes`, the backend of `lain node ...`) and the
//! discovery document, against the real `console` binary with a real
//! etcd (`lain_testkit::Etcd`) and sso in-process on loopback (tokens
//! signed with sso's own key in the shape its token endpoint gives).
//! deployd is played by the test: it writes `/lain/observed-nodes/` and
//! `/lain/observed/` as deployd would (`Component::Deployd`).

mod common;

use std::time::Duration;

use common::{now, TestConsole, TestSso};
use lain_store::{
    Capacity, Component, DockerEndpoint, DockerTls, Health, InstanceState, Liveness, NodeKey,
    NodeRegistration, ObservedInstance, ObservedKey, ObservedNode, ObservedNodeKey, Store,
};
use lain_testkit::Etcd;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::block_in_place;

const ADMIN_GROUP: &str = "lain-admins";
const G: u64 = 1 << 30;

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

    fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.json()
    }

    /// Asserts a JSON error with `status` and `code`; returns it.
    fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "{}", self.text);
        assert!(
            v["hint"].as_str().is_some_and(|h| !h.is_empty()),
            "{}",
            self.text
        );
        v
    }
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

async fn call(base: &str, method: Method, path: &str, token: Option<&str>, body: Body) -> Answer {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(ct, bytes) => req.header("content-type", ct).body(bytes),
    };
    let r = req.send().await.expect("request");
    Answer {
        status: r.status().as_u16(),
        text: r.text().await.unwrap_or_default(),
    }
}

fn registration(address: &str) -> NodeRegistration {
    NodeRegistration {
        docker: DockerEndpoint::Unix {
            socket: "/var/run/docker.sock".into(),
        },
        address: address.into(),
        labels: Default::default(),
        capacity: Capacity {
            cpu_millis: 4000,
            memory_bytes: 8 * G,
        },
        schedulable: true,
        draining: false,
        drain_volumes: false,
        registered_at_ms: 1,
    }
}

fn observed_node(instances: u32) -> ObservedNode {
    ObservedNode {
        liveness: Liveness::Alive,
        last_seen_ms: 1234,
        since_ms: 1,
        docker_version: Some("27.0".into()),
        instances,
        message: None,
    }
}

fn instance_on(node: &str) -> ObservedInstance {
    ObservedInstance {
        node: node.into(),
        container_id: Some("c0".into()),
        generation: 1,
        release: String::new(),
        image: "registry.lain.local:5000/hello:release-1".into(),
        state: InstanceState::Running,
        health: Health::Healthy,
        address: Some("10.0.0.5:30000".into()),
        restarts: 0,
        started_at_ms: None,
        updated_at_ms: 0,
        message: None,
        instance: 1,
        spec: String::new(),
        recent_restarts_ms: Vec::new(),
        volumes_from: None,
    }
}

async fn node(store: &Store, name: &str) -> Option<NodeRegistration> {
    store
        .get(&NodeKey::new(name).unwrap())
        .await
        .unwrap()
        .map(|e| e.value)
}

/// etcd, sso, console on them, and a plain etcd client (no writer role)
/// for reading and arranging state; dropped console first.
struct World {
    console: TestConsole,
    sso: TestSso,
    plain: Store,
    _etcd: Etcd,
}

impl World {
    async fn start() -> World {
        let etcd = block_in_place(Etcd::start).expect("etcd");
        let sso = TestSso::start().await;
        let console =
            block_in_place(|| TestConsole::start(&sso.issuer, &[etcd.endpoint()], "", "", ""));
        let plain = Store::connect(&[etcd.endpoint()]).await.unwrap();
        World {
            console,
            sso,
            plain,
            _etcd: etcd,
        }
    }
}

/// Tokens: admin, a maintainer (non-admin), a daemon, an expired admin
/// token, and a forged one (the maintainer's with the admin group added).
struct Tokens {
    root: String,
    mallory: String,
    daemon: String,
    expired: String,
    forged: String,
}

fn tokens(sso: &TestSso) -> Tokens {
    let mallory = sso.token("mallory", &["dev"]);
    let expired = {
        let t = now() - 7200;
        let claims = json!({
            "iss": sso.issuer, "sub": "root", "aud": "console", "client_id": "cli",
            "iat": t, "nbf": t, "exp": t + 600, "jti": "expired", "scope": "openid",
            "groups": [ADMIN_GROUP], "preferred_username": "root",
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
    Tokens {
        root: sso.token("root", &[ADMIN_GROUP]),
        daemon: sso.token("client:ci", &[]),
        mallory,
        expired,
        forged,
    }
}

fn put_body() -> Value {
    json!({
        "docker": {"kind": "tcp", "address": "10.0.0.7:2376",
            "tls": {"ca_cert": "/etc/lain/ca.pem", "client_cert": "/etc/lain/cert.pem",
                    "client_key": "/etc/lain/key.pem"}},
        "address": "10.0.0.7",
        "labels": {"disk": "ssd", "zone": "a"},
        "cpu_millis": 8000,
        "memory_bytes": 16 * G,
    })
}

/// Every node mutation as anonymous, with an expired token, a forged
/// one, as a non-admin maintainer and as a daemon: 401/401/401/403/403,
/// etcd's revision unchanged, audited `denied`; then as an admin: 2xx and
/// etcd holds what was asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_mutations_authorization_matrix() {
    let w = World::start().await;
    let (sso, console, plain) = (&w.sso, &w.console, &w.plain);
    let base = console.base.as_str();
    let t = tokens(sso);
    // mallory maintains an app: still no node rights.
    call(
        base,
        Method::POST,
        "/api/v1/apps",
        Some(&t.mallory),
        Body::Json(json!({"name": "shop"})),
    )
    .await
    .ok(201);

    let nodes = plain.as_writer(Component::NodeManagement);
    nodes
        .put(&NodeKey::new("node-1").unwrap(), &registration("10.0.0.1"))
        .await
        .unwrap();

    let mutations: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::PUT, "/api/v1/nodes/node-2", Some(put_body())),
        (Method::PUT, "/api/v1/nodes/node-1", Some(put_body())),
        (Method::POST, "/api/v1/nodes/node-1/cordon", None),
        (Method::POST, "/api/v1/nodes/node-1/uncordon", None),
        (Method::POST, "/api/v1/nodes/node-1/drain", None),
        (Method::DELETE, "/api/v1/nodes/node-1", None),
    ];
    let callers: [(&str, Option<&str>, u16, &str); 5] = [
        ("anonymous", None, 401, "unauthorized"),
        ("expired", Some(&t.expired), 401, "unauthorized"),
        ("forged", Some(&t.forged), 401, "unauthorized"),
        ("maintainer", Some(&t.mallory), 403, "forbidden"),
        ("daemon", Some(&t.daemon), 403, "forbidden"),
    ];
    let mut denied = 0;
    for (method, path, body) in &mutations {
        for (who, token, status, code) in callers {
            let before = plain.current_revision().await.unwrap();
            let b = body.clone().map_or(Body::None, Body::Json);
            let a = call(base, method.clone(), path, token, b).await;
            assert_eq!(a.status, status, "{who} {method} {path}: {}", a.text);
            a.error(status, code);
            assert_eq!(
                plain.current_revision().await.unwrap(),
                before,
                "{who} {method} {path} wrote to etcd"
            );
            denied += 1;
        }
    }
    // Reading is for any caller, not for no caller.
    call(base, Method::GET, "/api/v1/nodes", None, Body::None)
        .await
        .error(401, "unauthorized");
    for tok in [&t.mallory, &t.daemon] {
        let list = call(base, Method::GET, "/api/v1/nodes", Some(tok), Body::None)
            .await
            .ok(200);
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    }

    // The admin: add (201), with exactly the registration asked.
    let a = call(
        base,
        Method::PUT,
        "/api/v1/nodes/node-2",
        Some(&t.root),
        Body::Json(put_body()),
    )
    .await;
    let v = a.ok(201);
    assert_eq!(v["name"], "node-2");
    assert_eq!(v["schedulable"], true);
    assert_eq!(v["liveness"], "unknown");
    let reg = node(plain, "node-2").await.expect("node-2 in etcd");
    let registered_at = reg.registered_at_ms;
    assert!(registered_at > 0);
    assert_eq!(
        reg,
        NodeRegistration {
            docker: DockerEndpoint::Tcp {
                address: "10.0.0.7:2376".into(),
                tls: Some(DockerTls {
                    ca_cert: "/etc/lain/ca.pem".into(),
                    client_cert: "/etc/lain/cert.pem".into(),
                    client_key: "/etc/lain/key.pem".into(),
                }),
            },
            address: "10.0.0.7".into(),
            labels: [("disk", "ssd"), ("zone", "a")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            capacity: Capacity {
                cpu_millis: 8000,
                memory_bytes: 16 * G,
            },
            schedulable: true,
            draining: false,
            drain_volumes: false,
            registered_at_ms: registered_at,
        }
    );

    // Registered cordoned (a new node that is not ready yet): nothing is
    // placed there until it is uncordoned; an update keeps the flag.
    let mut cordoned = put_body();
    cordoned["cordoned"] = json!(true);
    let v = call(
        base,
        Method::PUT,
        "/api/v1/nodes/node-3",
        Some(&t.root),
        Body::Json(cordoned),
    )
    .await
    .ok(201);
    assert_eq!(v["schedulable"], false);
    assert!(!node(plain, "node-3").await.unwrap().schedulable);
    let v = call(
        base,
        Method::PUT,
        "/api/v1/nodes/node-3",
        Some(&t.root),
        Body::Json(put_body()),
    )
    .await
    .ok(200);
    assert_eq!(v["schedulable"], false, "an update keeps the cordon");
    let v = call(
        base,
        Method::DELETE,
        "/api/v1/nodes/node-3",
        Some(&t.root),
        Body::None,
    )
    .await;
    assert_eq!(v.status, 204, "{}", v.text);

    // Cordon, drain, uncordon node-1: the flags, each read back.
    let flags = |r: &NodeRegistration| (r.schedulable, r.draining);
    for (action, want) in [
        ("cordon", (false, false)),
        ("uncordon", (true, false)),
        ("drain", (false, true)),
        ("cordon", (false, true)),
        ("uncordon", (true, false)),
        ("drain", (false, true)),
    ] {
        let v = call(
            base,
            Method::POST,
            &format!("/api/v1/nodes/node-1/{action}"),
            Some(&t.root),
            Body::None,
        )
        .await
        .ok(200);
        assert_eq!(
            (v["schedulable"].as_bool(), v["draining"].as_bool()),
            (Some(want.0), Some(want.1))
        );
        assert_eq!(
            flags(&node(plain, "node-1").await.unwrap()),
            want,
            "{action}"
        );
    }

    // An update (200) keeps the flags and the registration time.
    let mut changed = put_body();
    changed["docker"] = json!({"kind": "unix", "socket": "/run/docker.sock"});
    changed["cpu_millis"] = json!(2000);
    changed.as_object_mut().unwrap().remove("labels");
    let v = call(
        base,
        Method::PUT,
        "/api/v1/nodes/node-1",
        Some(&t.root),
        Body::Json(changed),
    )
    .await
    .ok(200);
    assert_eq!(
        v["docker"],
        json!({"kind": "unix", "socket": "/run/docker.sock"})
    );
    let reg = node(plain, "node-1").await.unwrap();
    assert_eq!(
        (reg.schedulable, reg.draining, reg.registered_at_ms),
        (false, true, 1)
    );
    assert_eq!(reg.capacity.cpu_millis, 2000);
    assert_eq!(reg.address, "10.0.0.7");
    assert!(reg.labels.is_empty());

    // Unknown nodes: 404, nothing written.
    let before = plain.current_revision().await.unwrap();
    for (method, path) in [
        (Method::POST, "/api/v1/nodes/nope/cordon"),
        (Method::POST, "/api/v1/nodes/nope/uncordon"),
        (Method::POST, "/api/v1/nodes/nope/drain"),
        (Method::DELETE, "/api/v1/nodes/nope"),
    ] {
        call(base, method, path, Some(&t.root), Body::None)
            .await
            .error(404, "not_found");
    }
    assert_eq!(plain.current_revision().await.unwrap(), before);

    // Removal.
    let a = call(
        base,
        Method::DELETE,
        "/api/v1/nodes/node-1",
        Some(&t.root),
        Body::None,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(node(plain, "node-1").await.is_none());

    // The audit log: every refusal `denied` with its action and target,
    // every admin call `ok`.
    let log = call(
        base,
        Method::GET,
        "/api/v1/audit?limit=1000",
        Some(&t.root),
        Body::None,
    )
    .await
    .ok(200);
    let entries = log.as_array().unwrap();
    let node_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("node.")))
        .collect();
    let refused: Vec<&&Value> = node_entries
        .iter()
        .filter(|e| e["result"] == "denied")
        .collect();
    assert_eq!(refused.len(), denied, "{log}");
    for e in &refused {
        assert!(
            ["anonymous", "invalid-token", "mallory", "client:ci"]
                .contains(&e["actor"].as_str().unwrap()),
            "{e}"
        );
        assert!(e["target"] == "node-1" || e["target"] == "node-2", "{e}");
    }
    for action in [
        "node.add",
        "node.update",
        "node.cordon",
        "node.uncordon",
        "node.drain",
        "node.remove",
    ] {
        assert!(
            node_entries
                .iter()
                .any(|e| e["action"] == action && e["result"] == "ok" && e["actor"] == "root"),
            "{action} not audited ok: {log}"
        );
    }
    let added: Vec<&Value> = node_entries
        .iter()
        .filter(|e| e["action"] == "node.add" && e["result"] == "ok")
        .map(|e| &e["target"])
        .collect();
    assert!(
        added.contains(&&json!("node-2")) && added.contains(&&json!("node-3")),
        "{added:?}"
    );
    // The 404s are audited as errors.
    assert_eq!(
        node_entries
            .iter()
            .filter(|e| e["target"] == "nope" && e["result"] == "error")
            .count(),
        4
    );
}

/// Bad bodies and names: 4xx JSON, etcd unchanged, audited `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_node_input_changes_nothing() {
    let w = World::start().await;
    let (sso, console, plain) = (&w.sso, &w.console, &w.plain);
    let base = console.base.as_str();
    let root = sso.token("root", &[ADMIN_GROUP]);
    plain
        .as_writer(Component::NodeManagement)
        .put(&NodeKey::new("node-1").unwrap(), &registration("10.0.0.1"))
        .await
        .unwrap();

    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = put_body();
        f(&mut b);
        Body::Json(b)
    };
    let json_ct = "application/json";
    let long = "n".repeat(254);
    let cases: Vec<(&str, String, Body, u16, &str)> = vec![
        (
            "malformed",
            "node-9".into(),
            Body::Raw(json_ct, b"{\"docker\":".to_vec()),
            400,
            "invalid_json",
        ),
        (
            "array",
            "node-9".into(),
            Body::Raw(json_ct, b"[]".to_vec()),
            400,
            "invalid_json",
        ),
        (
            "empty",
            "node-9".into(),
            Body::Raw(json_ct, Vec::new()),
            400,
            "invalid_json",
        ),
        (
            "form",
            "node-9".into(),
            Body::Raw("application/x-www-form-urlencoded", b"a=b".to_vec()),
            400,
            "invalid_json",
        ),
        (
            "unknown field",
            "node-9".into(),
            with(&|b| b["extra"] = json!(1)),
            400,
            "invalid_json",
        ),
        (
            "unknown docker field",
            "node-9".into(),
            with(&|b| b["docker"]["sock"] = json!("/x")),
            400,
            "invalid_json",
        ),
        (
            "unknown tls field",
            "node-9".into(),
            with(&|b| b["docker"]["tls"]["key"] = json!("/x")),
            400,
            "invalid_json",
        ),
        (
            "unknown docker kind",
            "node-9".into(),
            with(&|b| b["docker"]["kind"] = json!("ssh")),
            400,
            "invalid_json",
        ),
        (
            "missing address",
            "node-9".into(),
            with(&|b| {
                b.as_object_mut().unwrap().remove("address");
            }),
            400,
            "invalid_json",
        ),
        (
            "missing cpu",
            "node-9".into(),
            with(&|b| {
                b.as_object_mut().unwrap().remove("cpu_millis");
            }),
            400,
            "invalid_json",
        ),
        (
            "missing docker",
            "node-9".into(),
            with(&|b| {
                b.as_object_mut().unwrap().remove("docker");
            }),
            400,
            "invalid_json",
        ),
        (
            "negative memory",
            "node-9".into(),
            with(&|b| b["memory_bytes"] = json!(-1)),
            400,
            "invalid_json",
        ),
        (
            "string cpu",
            "node-9".into(),
            with(&|b| b["cpu_millis"] = json!("8")),
            400,
            "invalid_json",
        ),
        (
            "zero cpu",
            "node-9".into(),
            with(&|b| b["cpu_millis"] = json!(0)),
            400,
            "invalid_request",
        ),
        (
            "zero memory",
            "node-9".into(),
            with(&|b| b["memory_bytes"] = json!(0)),
            400,
            "invalid_request",
        ),
        (
            "relative socket",
            "node-9".into(),
            with(&|b| b["docker"] = json!({"kind": "unix", "socket": "run/docker.sock"})),
            400,
            "invalid_request",
        ),
        (
            "empty socket",
            "node-9".into(),
            with(&|b| b["docker"] = json!({"kind": "unix", "socket": ""})),
            400,
            "invalid_request",
        ),
        (
            "tcp without port",
            "node-9".into(),
            with(&|b| b["docker"]["address"] = json!("10.0.0.7")),
            400,
            "invalid_request",
        ),
        (
            "tcp port 0",
            "node-9".into(),
            with(&|b| b["docker"]["address"] = json!("10.0.0.7:0")),
            400,
            "invalid_request",
        ),
        (
            "tcp bad host",
            "node-9".into(),
            with(&|b| b["docker"]["address"] = json!("a b:2376")),
            400,
            "invalid_request",
        ),
        (
            "relative tls path",
            "node-9".into(),
            with(&|b| b["docker"]["tls"]["ca_cert"] = json!("ca.pem")),
            400,
            "invalid_request",
        ),
        (
            "empty address",
            "node-9".into(),
            with(&|b| b["address"] = json!("")),
            400,
            "invalid_request",
        ),
        (
            "bad address",
            "node-9".into(),
            with(&|b| b["address"] = json!("10.0.0.7/24")),
            400,
            "invalid_request",
        ),
        (
            "bad label key",
            "node-9".into(),
            with(&|b| b["labels"] = json!({"a/b": "x"})),
            400,
            "invalid_request",
        ),
        (
            "control in label",
            "node-9".into(),
            with(&|b| b["labels"] = json!({"a": "x\ny"})),
            400,
            "invalid_request",
        ),
        (
            "too many labels",
            "node-9".into(),
            with(&|b| {
                b["labels"] =
                    Value::Object((0..65).map(|i| (format!("l{i}"), json!("v"))).collect())
            }),
            400,
            "invalid_request",
        ),
        (
            "bad name start",
            ".node".into(),
            Body::Json(put_body()),
            400,
            "invalid_request",
        ),
        (
            "slash in name",
            "a%2Fb".into(),
            Body::Json(put_body()),
            400,
            "invalid_request",
        ),
        (
            "space in name",
            "a%20b".into(),
            Body::Json(put_body()),
            400,
            "invalid_request",
        ),
        (
            "long name",
            long.clone(),
            Body::Json(put_body()),
            400,
            "invalid_request",
        ),
        (
            "oversize",
            "node-9".into(),
            Body::Raw(json_ct, vec![b' '; 2 << 20]),
            413,
            "too_large",
        ),
        // An update of an existing node is checked the same way.
        (
            "update zero cpu",
            "node-1".into(),
            with(&|b| b["cpu_millis"] = json!(0)),
            400,
            "invalid_request",
        ),
        (
            "update unknown field",
            "node-1".into(),
            with(&|b| b["schedulable"] = json!(false)),
            400,
            "invalid_json",
        ),
    ];
    let n = cases.len();
    for (what, name, b, status, code) in cases {
        let before = plain.current_revision().await.unwrap();
        let a = call(
            base,
            Method::PUT,
            &format!("/api/v1/nodes/{name}"),
            Some(&root),
            b,
        )
        .await;
        assert_eq!(a.status, status, "{what}: {}", a.text);
        a.error(status, code);
        assert_eq!(
            plain.current_revision().await.unwrap(),
            before,
            "{what} wrote to etcd"
        );
    }
    assert!(node(plain, "node-9").await.is_none());
    assert_eq!(
        node(plain, "node-1").await.unwrap(),
        registration("10.0.0.1")
    );
    // Bad names on the other routes too.
    let before = plain.current_revision().await.unwrap();
    for (method, path) in [
        (Method::POST, "/api/v1/nodes/.x/cordon".to_owned()),
        (Method::POST, "/api/v1/nodes/a%20b/drain".to_owned()),
        (Method::POST, format!("/api/v1/nodes/{long}/uncordon")),
        (Method::DELETE, "/api/v1/nodes/a%2Fb".to_owned()),
    ] {
        call(base, method, &path, Some(&root), Body::None)
            .await
            .error(400, "invalid_request");
    }
    assert_eq!(plain.current_revision().await.unwrap(), before);

    // Each failed mutation is audited `error` (the 413 is refused before
    // the handler runs, so it is not).
    let log = call(
        base,
        Method::GET,
        "/api/v1/audit?limit=1000",
        Some(&root),
        Body::None,
    )
    .await
    .ok(200);
    let errors = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"].as_str().is_some_and(|a| a.starts_with("node.")) && e["result"] == "error"
        })
        .count();
    assert_eq!(errors, n - 1 + 4, "{log}");
    // None of it was a server error.
    let log = std::fs::read_to_string(console.dir.log_path("console")).unwrap();
    assert!(log.contains("node.add"), "the log holds the audit lines");
    assert!(
        !log.contains("\"level\":\"ERROR\""),
        "console logged an error"
    );
}

/// List joins deployd's observation; delete is refused while an instance
/// is on the node and allowed once it is gone; cluster status still
/// lists the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_joins_observation_and_delete_waits_for_instances() {
    let w = World::start().await;
    let (sso, console, plain) = (&w.sso, &w.console, &w.plain);
    let base = console.base.as_str();
    let root = sso.token("root", &[ADMIN_GROUP]);
    let alice = sso.token("alice", &[]);
    let deployd = plain.as_writer(Component::Deployd);

    for (name, address) in [("node-b", "node-b.lain.local"), ("node-a", "10.0.0.5")] {
        let body = json!({"docker": {"kind": "unix", "socket": "/var/run/docker.sock"},
            "address": address, "cpu_millis": 4000, "memory_bytes": 8 * G});
        call(
            base,
            Method::PUT,
            &format!("/api/v1/nodes/{name}"),
            Some(&root),
            Body::Json(body),
        )
        .await
        .ok(201);
    }
    deployd
        .put(&ObservedNodeKey::new("node-a").unwrap(), &observed_node(1))
        .await
        .unwrap();
    let instance = ObservedKey::new("hello", "web", "1-1").unwrap();
    deployd
        .put(&instance, &instance_on("node-a"))
        .await
        .unwrap();

    let list = call(base, Method::GET, "/api/v1/nodes", Some(&alice), Body::None)
        .await
        .ok(200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let (a, b) = (&list[0], &list[1]);
    assert_eq!(a["name"], "node-a");
    assert_eq!(a["liveness"], "alive");
    assert_eq!(a["last_seen_ms"], 1234);
    assert_eq!(a["instances"], 1);
    assert_eq!(a["address"], "10.0.0.5");
    assert_eq!(
        a["docker"],
        json!({"kind": "unix", "socket": "/var/run/docker.sock"})
    );
    assert_eq!(
        (a["cpu_millis"].as_u64(), a["memory_bytes"].as_u64()),
        (Some(4000), Some(8 * G))
    );
    assert_eq!(
        (a["schedulable"].as_bool(), a["draining"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(a["registered_at_ms"].as_u64().unwrap() > 0);
    assert_eq!(a["labels"], json!({}));
    assert_eq!(b["name"], "node-b");
    assert_eq!(b["liveness"], "unknown");
    assert_eq!(b["last_seen_ms"], Value::Null);
    assert_eq!(b["instances"], 0);

    // The refactored cluster status agrees.
    let status = call(
        base,
        Method::GET,
        "/api/v1/cluster/status",
        Some(&alice),
        Body::None,
    )
    .await
    .ok(200);
    let names: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a", "node-b"]);
    assert_eq!(status["nodes"][0]["liveness"], "alive");

    // Delete while the instance is there: 409 with the hint, nothing gone.
    let before = plain.current_revision().await.unwrap();
    let e = call(
        base,
        Method::DELETE,
        "/api/v1/nodes/node-a",
        Some(&root),
        Body::None,
    )
    .await
    .error(409, "conflict");
    assert_eq!(
        e["hint"],
        "drain it first (`lain node drain node-a`) and wait until its instances are gone"
    );
    assert!(
        e["message"].as_str().unwrap().contains("hello/web/1-1"),
        "{e}"
    );
    assert_eq!(plain.current_revision().await.unwrap(), before);

    // Drain; deployd moves the instance away; then removal works.
    call(
        base,
        Method::POST,
        "/api/v1/nodes/node-a/drain",
        Some(&root),
        Body::None,
    )
    .await
    .ok(200);
    let reg = node(plain, "node-a").await.unwrap();
    assert_eq!((reg.schedulable, reg.draining), (false, true));
    deployd.delete(&instance).await.unwrap();
    let a = call(
        base,
        Method::DELETE,
        "/api/v1/nodes/node-a",
        Some(&root),
        Body::None,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(node(plain, "node-a").await.is_none());
    call(
        base,
        Method::DELETE,
        "/api/v1/nodes/node-a",
        Some(&root),
        Body::None,
    )
    .await
    .error(404, "not_found");
    // An instance on another node does not hold node-b back.
    deployd
        .put(&instance, &instance_on("node-c"))
        .await
        .unwrap();
    let a = call(
        base,
        Method::DELETE,
        "/api/v1/nodes/node-b",
        Some(&root),
        Body::None,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let list = call(base, Method::GET, "/api/v1/nodes", Some(&alice), Body::None)
        .await
        .ok(200);
    assert_eq!(list, json!([]));
}

/// Without etcd the node routes answer 503 `etcd_unavailable` (after the
/// caller check), and the discovery document is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_routes_without_etcd() {
    let sso = TestSso::start().await;
    let dead = format!("http://127.0.0.1:{}", lain_testkit::free_port());
    let console = block_in_place(|| TestConsole::start(&sso.issuer, &[dead], "", "", ""));
    let base = console.base.as_str();
    let root = sso.token("root", &[ADMIN_GROUP]);
    let alice = sso.token("alice", &[]);
    call(base, Method::GET, "/api/v1/nodes", Some(&alice), Body::None)
        .await
        .error(503, "etcd_unavailable");
    call(
        base,
        Method::PUT,
        "/api/v1/nodes/node-1",
        Some(&root),
        Body::Json(put_body()),
    )
    .await
    .error(503, "etcd_unavailable");
    call(
        base,
        Method::POST,
        "/api/v1/nodes/node-1/cordon",
        Some(&root),
        Body::None,
    )
    .await
    .error(503, "etcd_unavailable");
    // The caller is still checked first.
    call(
        base,
        Method::POST,
        "/api/v1/nodes/node-1/cordon",
        Some(&alice),
        Body::None,
    )
    .await
    .error(403, "forbidden");
    call(
        base,
        Method::GET,
        "/.well-known/oauth-protected-resource",
        None,
        Body::None,
    )
    .await
    .ok(200);
}

/// The discovery document needs no token and carries the configured
/// values; with the defaults, the listen URL, `lain-cli` and nulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_document_is_public() {
    let sso = TestSso::start().await;
    let console = block_in_place(|| {
        TestConsole::start(
            &sso.issuer,
            &[],
            "public_url = \"https://console.example.test/\"\nregistry = \"registry.example.test:5000\"\ncluster_domain = \"lain.example.test\"",
            "cli_client_id = \"our-cli\"",
            "[registry_auth]\nservice = \"our-registry\"\nkey_file = \"{dir}/rt.key\"\ncert_file = \"{dir}/rt.crt\"",
        )
    });
    let r = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        console.base
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({
            "resource": "https://console.example.test",
            "authorization_servers": [sso.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "lain console",
            "lain_cli_client_id": "our-cli",
            "lain_registry": "registry.example.test:5000",
            "lain_registry_service": "our-registry",
            "lain_cluster_domain": "lain.example.test",
        })
    );
    // Not part of the API document.
    let doc = call(
        &console.base,
        Method::GET,
        "/api/v1/openapi.json",
        None,
        Body::None,
    )
    .await
    .ok(200);
    assert!(doc["paths"]
        .get("/.well-known/oauth-protected-resource")
        .is_none());
    assert!(doc["paths"].get("/api/v1/nodes").is_some());

    let plain = block_in_place(|| TestConsole::start(&sso.issuer, &[], "", "", ""));
    let v = call(
        &plain.base,
        Method::GET,
        "/.well-known/oauth-protected-resource",
        None,
        Body::None,
    )
    .await
    .ok(200);
    assert_eq!(v["resource"], format!("http://{}", plain.addr));
    assert_eq!(v["authorization_servers"], json!([sso.issuer]));
    assert_eq!(v["lain_cli_client_id"], "lain-cli");
    assert_eq!(v["lain_registry"], Value::Null);
    assert_eq!(v["lain_registry_service"], Value::Null);
    assert_eq!(v["lain_cluster_domain"], "lain.local");
}

/// TLS certificates for the routers: only admins list, set and remove
/// them (audited); an upload is checked before anything is written; the
/// private key is stored sealed under the cluster secrets key (bound to
/// its etcd path) and never returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certs_are_checked_sealed_and_admin_only() {
    use lain_store::secret::{open_for, SecretsKey};
    use lain_store::CertKey;

    let w = World::start().await;
    let (sso, console, plain) = (&w.sso, &w.console, &w.plain);
    let base = console.base.as_str();
    let t = tokens(sso);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["shop.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let upload = json!({"cert_pem": cert_pem, "key_pem": key_pem});

    // Not an admin: refused, nothing written.
    let before = plain.current_revision().await.unwrap();
    for tok in [&t.mallory, &t.daemon] {
        let a = call(
            base,
            Method::PUT,
            "/api/v1/certs/shop",
            Some(tok),
            Body::Json(upload.clone()),
        )
        .await;
        assert_eq!(a.status, 403, "{}", a.text);
        let a = call(base, Method::GET, "/api/v1/certs", Some(tok), Body::None).await;
        assert_eq!(a.status, 403, "{}", a.text);
    }
    let a = call(
        base,
        Method::PUT,
        "/api/v1/certs/shop",
        None,
        Body::Json(upload.clone()),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    // Bad input: 400 with the reason, nothing written.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    for (body, says) in [
        (
            json!({"cert_pem": cert_pem, "key_pem": other}),
            "not the private key",
        ),
        (
            json!({"cert_pem": "nope", "key_pem": key_pem}),
            "CERTIFICATE",
        ),
        (json!({"cert_pem": cert_pem}), "key_pem"),
        (
            json!({"cert_pem": cert_pem, "key_pem": key_pem, "x": 1}),
            "unknown field",
        ),
    ] {
        let a = call(
            base,
            Method::PUT,
            "/api/v1/certs/shop",
            Some(&t.root),
            Body::Json(body),
        )
        .await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert!(a.text.contains(says), "{says}: {}", a.text);
    }
    let a = call(
        base,
        Method::PUT,
        "/api/v1/certs/a%2Fb",
        Some(&t.root),
        Body::Json(upload.clone()),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(plain.current_revision().await.unwrap(), before);

    // The admin: stored, the key sealed; listed without the key.
    let v = call(
        base,
        Method::PUT,
        "/api/v1/certs/shop",
        Some(&t.root),
        Body::Json(upload.clone()),
    )
    .await
    .ok(200);
    assert_eq!(v["domains"], json!(["shop.example.com"]));
    let stored = plain
        .get(&CertKey::new("shop").unwrap())
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(stored.cert_pem, cert_pem);
    assert!(!serde_json::to_string(&stored)
        .unwrap()
        .contains("PRIVATE KEY"));
    let secrets_key = SecretsKey::load(&console.dir.path().join("secrets.key")).unwrap();
    let opened = open_for(&secrets_key, &CertKey::new("shop").unwrap(), &stored.key).unwrap();
    assert_eq!(&opened[..], key_pem.as_bytes());
    let list = call(
        base,
        Method::GET,
        "/api/v1/certs",
        Some(&t.root),
        Body::None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(
        list.text.contains("shop.example.com") && !list.text.contains("PRIVATE"),
        "{}",
        list.text
    );

    // Removed; a second removal is 404.
    let a = call(
        base,
        Method::DELETE,
        "/api/v1/certs/shop",
        Some(&t.root),
        Body::None,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(plain
        .get(&CertKey::new("shop").unwrap())
        .await
        .unwrap()
        .is_none());
    let a = call(
        base,
        Method::DELETE,
        "/api/v1/certs/shop",
        Some(&t.root),
        Body::None,
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text);

    // Audited, never with the key.
    let log = call(
        base,
        Method::GET,
        "/api/v1/audit?limit=100",
        Some(&t.root),
        Body::None,
    )
    .await
    .ok(200);
    let text = log.to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let entries = log.as_array().unwrap();
    for (action, result) in [
        ("cert.set", "ok"),
        ("cert.set", "denied"),
        ("cert.remove", "ok"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["action"] == action && e["result"] == result && e["target"] == "shop"),
            "{action} {result} not audited: {text}"
        );
    }
}
