//! A fake Docker engine: just enough of the Engine API (as bollard 0.18
//! speaks it, `/v1.41/...`) for deployd to manage containers that only
//! exist in memory. One engine per simulated node, each on its own
//! loopback port.
//!
//! What it serves:
//! - `GET /_ping`, `GET /version`;
//! - `GET /containers/json` (all of them: every container here is
//!   deployd's), `POST /containers/create?name=`, `POST
//!   /containers/{id}/start`, `POST /containers/{id}/stop`, `GET
//!   /containers/{id}/json`, `DELETE /containers/{id}` (ids or names);
//! - `GET /networks` (name filter), `POST /networks/create`, `DELETE
//!   /networks/{id}`;
//! - `GET /images/{name}/json`: every image is present;
//! - `GET /events`: a long-lived stream of JSON lines (`create`, `start`,
//!   `die`, `stop`, `destroy`); a subscriber that falls behind has its
//!   stream ended, as a real engine's connection would drop, so that
//!   deployd lists again.
//!
//! Anything else answers 404 and is counted under `unknown`. A container
//! with an exposed port reports `health_port` as its published host port:
//! point it at a real listener so that deployd's probes pass.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
struct Container {
    id: String,
    name: String,
    image: String,
    labels: Map<String, Value>,
    /// `created`, `running` or `exited`.
    state: &'static str,
    exit_code: i64,
    /// The exposed container port, e.g. 80.
    port: Option<u16>,
    created_ms: u64,
    started_ms: Option<u64>,
    finished_ms: Option<u64>,
}

#[derive(Default)]
struct Containers {
    by_id: HashMap<String, Container>,
    /// name -> id
    names: HashMap<String, String>,
}

impl Containers {
    fn resolve(&self, id_or_name: &str) -> Option<String> {
        if self.by_id.contains_key(id_or_name) {
            return Some(id_or_name.to_owned());
        }
        self.names.get(id_or_name.trim_start_matches('/')).cloned()
    }
}

struct Inner {
    node: String,
    /// Makes container ids unique across engines.
    node_tag: u64,
    health_port: u16,
    containers: Mutex<Containers>,
    /// (id, name, labels)
    networks: Mutex<Vec<(String, String, Value)>>,
    events: broadcast::Sender<Bytes>,
    next_id: AtomicU64,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

/// One fake engine serving on a loopback port until dropped.
pub struct FakeEngine {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEngine {
    /// Starts an engine for node `node` on a free loopback port. Must be
    /// called within a tokio runtime.
    pub async fn start(node: &str, health_port: u16) -> std::io::Result<FakeEngine> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (events, _) = broadcast::channel(16_384);
        let inner = Arc::new(Inner {
            node: node.to_owned(),
            node_tag: node.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            }),
            health_port,
            containers: Mutex::new(Containers::default()),
            networks: Mutex::new(Vec::new()),
            events,
            next_id: AtomicU64::new(1),
            calls: Mutex::new(BTreeMap::new()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeEngine { addr, inner, task })
    }

    /// `(running, all)` containers.
    pub fn counts(&self) -> (usize, usize) {
        let c = self.inner.containers.lock().unwrap();
        let running = c.by_id.values().filter(|c| c.state == "running").count();
        (running, c.by_id.len())
    }

    /// Calls answered so far, by operation.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.inner.calls.lock().unwrap().clone()
    }
}

fn now_ms() -> u64 {
    lain_store::unix_millis()
}

/// `2026-11-22T01:02:03.456Z` of unix milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn empty(status: u16) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap()
}

fn not_found(what: &str) -> Response {
    reply(
        404,
        json!({ "message": format!("No such container: {what}") }),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

impl Inner {
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }

    fn emit(&self, c: &Container, action: &str) {
        let mut attrs = c.labels.clone();
        attrs.insert("name".into(), c.name.clone().into());
        attrs.insert("image".into(), c.image.clone().into());
        if action == "die" {
            attrs.insert("exitCode".into(), c.exit_code.to_string().into());
        }
        let nanos = u128::from(now_ms()) * 1_000_000;
        let line = json!({
            "status": action,
            "id": c.id,
            "from": c.image,
            "Type": "container",
            "Action": action,
            "Actor": {"ID": c.id, "Attributes": attrs},
            "scope": "local",
            "time": (nanos / 1_000_000_000) as i64,
            "timeNano": nanos as i64,
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        // No subscriber is fine.
        let _ = self.events.send(Bytes::from(bytes));
    }

    fn ports_summary(&self, c: &Container) -> Value {
        match (c.port, c.state) {
            (Some(p), "running") => json!([{
                "IP": "127.0.0.1", "PrivatePort": p, "PublicPort": self.health_port, "Type": "tcp"
            }]),
            (Some(p), _) => json!([{"PrivatePort": p, "Type": "tcp"}]),
            (None, _) => json!([]),
        }
    }

    fn summary(&self, c: &Container) -> Value {
        let status = match c.state {
            "running" => "Up 1 minute".to_owned(),
            "exited" => format!("Exited ({}) 1 second ago", c.exit_code),
            _ => "Created".to_owned(),
        };
        json!({
            "Id": c.id,
            "Names": [format!("/{}", c.name)],
            "Image": c.image,
            "Created": (c.created_ms / 1000) as i64,
            "Labels": c.labels,
            "State": c.state,
            "Status": status,
            "Ports": self.ports_summary(c),
        })
    }

    fn inspect(&self, c: &Container) -> Value {
        let ports = match (c.port, c.state) {
            (Some(p), "running") => json!({
                format!("{p}/tcp"): [{"HostIp": "127.0.0.1", "HostPort": self.health_port.to_string()}]
            }),
            _ => json!({}),
        };
        let zero = "0001-01-01T00:00:00Z".to_owned();
        json!({
            "Id": c.id,
            "Name": format!("/{}", c.name),
            "Created": rfc3339(c.created_ms),
            "Image": c.image,
            "Config": {"Image": c.image, "Labels": c.labels},
            "State": {
                "Status": c.state,
                "Running": c.state == "running",
                "Paused": false,
                "Restarting": false,
                "OOMKilled": false,
                "Dead": false,
                "Pid": if c.state == "running" { 4242 } else { 0 },
                "ExitCode": c.exit_code,
                "Error": "",
                "StartedAt": c.started_ms.map(rfc3339).unwrap_or_else(|| zero.clone()),
                "FinishedAt": c.finished_ms.map(rfc3339).unwrap_or(zero),
            },
            "NetworkSettings": {"Ports": ports},
        })
    }
}

async fn handle(State(e): State<Arc<Inner>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let raw = uri.path();
    // Strip the `/v1.41` prefix bollard puts on every path.
    let path = match raw.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => raw,
    };
    if method == Method::GET && path.starts_with("/images/") && path.ends_with("/json") {
        e.count("image_inspect");
        return reply(
            200,
            json!({"Id": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}),
        );
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => {
            e.count("ping");
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .header("Api-Version", "1.41")
                .body(Body::from("OK"))
                .unwrap()
        }
        ("GET", ["version"]) => {
            e.count("version");
            reply(
                200,
                json!({"Version": "20.10.24-fake", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"}),
            )
        }
        ("GET", ["containers", "json"]) => {
            e.count("container_list");
            let c = e.containers.lock().unwrap();
            let all: Vec<Value> = c.by_id.values().map(|c| e.summary(c)).collect();
            reply(200, Value::Array(all))
        }
        ("POST", ["containers", "create"]) => {
            e.count("container_create");
            let q = query(&uri);
            let Some(name) = q.get("name").filter(|n| !n.is_empty()).cloned() else {
                return reply(400, json!({"message": "fake engine: a name is required"}));
            };
            let config: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let labels = config
                .get("Labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let image = config
                .get("Image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let port = config
                .get("ExposedPorts")
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next())
                .and_then(|k| k.split('/').next())
                .and_then(|p| p.parse().ok());
            let mut cs = e.containers.lock().unwrap();
            if cs.names.contains_key(&name) {
                return reply(
                    409,
                    json!({"message": format!("Conflict. The container name \"/{name}\" is already in use")}),
                );
            }
            let n = e.next_id.fetch_add(1, Ordering::Relaxed);
            let id = format!("{:016x}{n:048x}", e.node_tag);
            let c = Container {
                id: id.clone(),
                name: name.clone(),
                image,
                labels,
                state: "created",
                exit_code: 0,
                port,
                created_ms: now_ms(),
                started_ms: None,
                finished_ms: None,
            };
            e.emit(&c, "create");
            cs.names.insert(name, id.clone());
            cs.by_id.insert(id.clone(), c);
            reply(201, json!({"Id": id, "Warnings": []}))
        }
        ("POST", ["containers", id, "start"]) => {
            e.count("container_start");
            let mut cs = e.containers.lock().unwrap();
            let Some(key) = cs.resolve(id) else {
                return not_found(id);
            };
            let c = cs.by_id.get_mut(&key).unwrap();
            if c.state == "running" {
                return empty(304);
            }
            c.state = "running";
            c.exit_code = 0;
            c.started_ms = Some(now_ms());
            c.finished_ms = None;
            let c = c.clone();
            e.emit(&c, "start");
            empty(204)
        }
        ("POST", ["containers", id, "stop"]) => {
            e.count("container_stop");
            let mut cs = e.containers.lock().unwrap();
            let Some(key) = cs.resolve(id) else {
                return not_found(id);
            };
            let c = cs.by_id.get_mut(&key).unwrap();
            if c.state != "running" {
                return empty(304);
            }
            c.state = "exited";
            c.exit_code = 0;
            c.finished_ms = Some(now_ms());
            let c = c.clone();
            e.emit(&c, "die");
            e.emit(&c, "stop");
            empty(204)
        }
        ("GET", ["containers", id, "json"]) => {
            e.count("container_inspect");
            let cs = e.containers.lock().unwrap();
            match cs.resolve(id).and_then(|k| cs.by_id.get(&k)) {
                Some(c) => reply(200, e.inspect(c)),
                None => not_found(id),
            }
        }
        ("DELETE", ["containers", id]) => {
            e.count("container_remove");
            let mut cs = e.containers.lock().unwrap();
            let Some(key) = cs.resolve(id) else {
                return not_found(id);
            };
            let mut c = cs.by_id.remove(&key).unwrap();
            cs.names.remove(&c.name);
            if c.state == "running" {
                c.state = "exited";
                c.exit_code = 137;
                e.emit(&c, "die");
            }
            e.emit(&c, "destroy");
            empty(204)
        }
        ("GET", ["networks"]) => {
            e.count("network_list");
            let q = query(&uri);
            let wanted: Option<Vec<String>> = q
                .get("filters")
                .and_then(|f| serde_json::from_str::<Value>(f).ok())
                .and_then(|f| f.get("name").cloned())
                .and_then(|n| serde_json::from_value(n).ok());
            let nets = e.networks.lock().unwrap();
            let out: Vec<Value> = nets
                .iter()
                .filter(|(_, name, _)| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| w.iter().any(|x| name.contains(x.as_str())))
                })
                .map(|(id, name, labels)| {
                    json!({"Name": name, "Id": id, "Driver": "bridge", "Scope": "local", "Labels": labels})
                })
                .collect();
            reply(200, Value::Array(out))
        }
        ("POST", ["networks", "create"]) => {
            e.count("network_create");
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let name = req
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let labels = req.get("Labels").cloned().unwrap_or(json!({}));
            let mut nets = e.networks.lock().unwrap();
            if nets.iter().any(|(_, n, _)| *n == name) {
                return reply(
                    409,
                    json!({"message": format!("network with name {name} already exists")}),
                );
            }
            let n = e.next_id.fetch_add(1, Ordering::Relaxed);
            let id = format!("{n:064x}");
            nets.push((id.clone(), name, labels));
            reply(201, json!({"Id": id, "Warning": ""}))
        }
        ("DELETE", ["networks", id]) => {
            e.count("network_remove");
            e.networks.lock().unwrap().retain(|(i, _, _)| i != id);
            empty(204)
        }
        ("GET", ["events"]) => {
            e.count("events");
            let rx = e.events.subscribe();
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Ok(b) => Some((Ok::<_, std::io::Error>(b), rx)),
                    // Lagged or closed: end the stream; deployd lists again.
                    Err(_) => None,
                }
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        _ => {
            e.count("unknown");
            eprintln!("fake engine {}: unhandled {method} {raw}", e.node);
            reply(
                404,
                json!({"message": format!("fake engine: no route for {method} {raw}")}),
            )
        }
    }
}
