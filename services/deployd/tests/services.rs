//! Services, portals and isolation between apps, against real `dockerd`
//! nodes in two network namespaces, one etcd and the real `deployd`:
//!
//! 1. each app runs on its own network: a container of one app cannot
//!    reach another app's container directly, even on the same node (it
//!    can reach published ports on the node's address: that is how the
//!    router and portals work, and it is documented);
//! 2. a client reaches its service by name (`echo.svc.lain` and `echo`)
//!    through a portal that runs on each node where the client runs, and
//!    the portal follows the service's instances;
//! 3. an app that the portal's `allow_clients` does not name gets no
//!    portal and no route, and an event says why;
//! 4. two clients of one resource each reach their own instance of it,
//!    by the bare service name;
//! 5. when the client leaves a node its portal there goes, and when the
//!    client goes every portal goes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{node_admin, register, wait_until};
use lain_store::{
    Component, DesiredKey, DesiredProc, EventKey, EventKind, Health, InstanceState, ObservedKey,
    PortalSpec, ProcType, ServiceUse, Store,
};
use lain_testkit::daemon::Daemon;
use lain_testkit::image::{import_base_image_all, BASE_IMAGE};
use lain_testkit::{DockerNodes, Etcd, NodesOptions};

const BIN: &str = env!("CARGO_BIN_EXE_deployd");

fn spawn(etcd: &Etcd) -> Daemon {
    let config = format!(
        "listen = \"{{listen}}\"\netcd = [\"{}\"]\nid = \"svc-test\"\n\
         health_timeout_secs = 8\nhealth_interval_ms = 500\n",
        etcd.endpoint()
    );
    Daemon::spawn("deployd-services", BIN, &config).expect("deployd starts")
}

fn proc(app: &str, proc: &str, proc_type: ProcType, script: &str) -> DesiredProc {
    DesiredProc {
        app: app.into(),
        proc: proc.into(),
        proc_type,
        release: "1-a".into(),
        image: BASE_IMAGE.into(),
        instances: 1,
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 0,
        memory_bytes: 32 << 20,
        env: BTreeMap::new(),
        secrets: vec![],
        port: None,
        healthcheck: None,
        mountpoints: vec![],
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
        generation: 1,
    }
}

/// A shell as PID 1 that passes SIGTERM on, so stops are quick.
fn serve(what: &str, port: u16) -> String {
    format!(
        "mkdir -p /www; echo \"{what}\" > /www/index.html; \
         httpd -f -p {port} -h /www & pid=$!; trap 'kill $pid; exit 0' TERM; wait"
    )
}

const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The portal: a TCP relay (busybox nc) to the first backend deployd
/// wrote, read again for each connection.
const RELAY: &str = "trap 'exit 0' TERM; \
    nc -ll -p 9000 -e sh -c 'b=$(head -n1 \"$LAIN_PORTAL_BACKENDS_FILE\"); exec nc ${b%:*} ${b##*:}' & \
    wait";

fn echo_service(instances: u32, first_node: &str) -> Vec<DesiredProc> {
    let mut echo = proc(
        "svc",
        "worker.echo",
        ProcType::Worker,
        &serve("echo-answers", 8080),
    );
    echo.port = Some(8080);
    echo.instances = instances;
    // On the first node, so that the direct-reach check below has a
    // container of another app next to it.
    if instances == 1 {
        echo.filters = vec![format!("constraint:node=={first_node}")];
    }
    let mut portal = proc("svc", "portal.portal-echo", ProcType::Portal, RELAY);
    portal.instances = 0;
    portal.port = Some(9000);
    portal.portal = Some(PortalSpec {
        service: "echo".into(),
        service_proc: "worker.echo".into(),
        allow_clients: vec!["client".into()],
    });
    vec![echo, portal]
}

/// A resource's instance for `client`, as console writes it: its own
/// store, whose portal serves that client alone.
fn kv_instance(client: &str) -> Vec<DesiredProc> {
    let app = format!("resource.kv.{client}");
    let mut store = proc(
        &app,
        "worker.store",
        ProcType::Worker,
        &serve(&format!("kv-for-{client}"), 6379),
    );
    store.port = Some(6379);
    let mut portal = proc(
        &app,
        "portal.portal-kv",
        ProcType::Portal,
        &RELAY.replace("9000", "6379"),
    );
    portal.instances = 0;
    portal.port = Some(6379);
    portal.portal = Some(PortalSpec {
        service: "store".into(),
        service_proc: "worker.store".into(),
        allow_clients: vec![client.into()],
    });
    vec![store, portal]
}

fn client(app: &str, instances: u32) -> DesiredProc {
    let mut c = proc(app, "worker", ProcType::Worker, IDLE);
    c.instances = instances;
    let instance = format!("resource.kv.{app}");
    c.services = vec![
        ServiceUse {
            app: "svc".into(),
            portal: "portal.portal-echo".into(),
            service: "echo".into(),
            aliases: vec!["echo.svc.lain".into(), "echo".into()],
        },
        ServiceUse {
            app: instance.clone(),
            portal: "portal.portal-kv".into(),
            service: "store".into(),
            aliases: vec![format!("store.{instance}.lain"), "store".into()],
        },
    ];
    c
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    console: Store,
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

    fn delete(&self, app: &str, proc: &str) {
        self.rt
            .block_on(self.console.delete(&DesiredKey::new(app, proc).unwrap()))
            .expect("delete desired proc");
    }

    /// Running, healthy instances of a proc: (node, address).
    fn running(&self, app: &str, proc: &str) -> Vec<(String, Option<String>)> {
        self.rt
            .block_on(self.console.list(&ObservedKey::of_proc(app, proc).unwrap()))
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.value.state == InstanceState::Running && e.value.health == Health::Healthy
            })
            .map(|e| (e.value.node, e.value.address))
            .collect()
    }

    /// Running containers on node `i` whose name starts with `prefix`.
    fn containers(&self, i: usize, prefix: &str) -> Vec<String> {
        self.nodes
            .node(i)
            .docker(&["ps", "--format", "{{.Names}}"])
            .unwrap_or_default()
            .lines()
            .filter(|n| n.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    fn index_of(&self, node: &str) -> usize {
        self.nodes
            .nodes()
            .iter()
            .position(|n| n.name() == node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// Runs `script` in container `name` on node `i`: its output, or the
    /// error.
    fn exec(&self, i: usize, name: &str, script: &str) -> Result<String, String> {
        self.nodes
            .node(i)
            .docker(&["exec", name, "sh", "-c", script])
            .map_err(|e| e.to_string())
    }

    fn events(&self, app: &str) -> Vec<(EventKind, String)> {
        self.rt
            .block_on(self.console.list(&EventKey::of_app(app).unwrap()))
            .unwrap()
            .items
            .into_iter()
            .map(|e| (e.value.kind, e.value.message))
            .collect()
    }
}

/// An HTTP GET through busybox nc, bounded: the body, if any came back.
fn get(host: &str, port: u16) -> String {
    format!(
        "printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | timeout 5 nc -w 3 {host} {port} | tail -n1"
    )
}

#[test]
fn services_reach_each_other_only_through_portals() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let etcd = Etcd::start().expect("start etcd");
    let nodes = DockerNodes::start(2, NodesOptions::default()).expect("start nodes");
    import_base_image_all(&nodes).expect("import base image");
    let first = nodes.node(0).name().to_owned();
    let console = rt.block_on(async {
        let admin = node_admin(&etcd.endpoint()).await;
        for n in nodes.nodes() {
            register(&admin, n).await;
        }
        Store::connect(&[etcd.endpoint()])
            .await
            .expect("connect")
            .as_writer(Component::Console)
    });
    let c = Cluster { rt, console, nodes };
    let _deployd = spawn(&etcd);

    for d in echo_service(1, &first) {
        c.put(&d);
    }
    for d in kv_instance("client")
        .into_iter()
        .chain(kv_instance("outsider"))
    {
        c.put(&d);
    }
    c.put(&client("client", 2));
    c.put(&client("outsider", 1));
    wait_until(
        "the service and both apps running",
        Duration::from_secs(90),
        || {
            c.running("svc", "worker.echo").len() == 1
                && c.running("resource.kv.client", "worker.store").len() == 1
                && c.running("resource.kv.outsider", "worker.store").len() == 1
                && c.running("client", "worker").len() == 2
                && c.running("outsider", "worker").len() == 1
        },
    );
    let clients = c.running("client", "worker");
    let mut client_nodes: Vec<&str> = clients.iter().map(|(n, _)| n.as_str()).collect();
    client_nodes.sort();
    client_nodes.dedup();
    assert_eq!(
        client_nodes.len(),
        2,
        "the client spreads over both nodes: {clients:?}"
    );

    // 2. On each node a portal for the client, and the service by name.
    wait_until(
        "a portal on each client node",
        Duration::from_secs(30),
        || (0..2).all(|i| c.containers(i, "lain-portal.client.").len() == 2),
    );
    for i in 0..2 {
        let name = c.containers(i, "lain.client.worker.")[0].clone();
        for host in ["echo.svc.lain", "echo"] {
            let mut last = String::new();
            wait_until(
                &format!("{host} answering from {name}"),
                Duration::from_secs(20),
                || {
                    last = c.exec(i, &name, &get(host, 9000)).unwrap_or_else(|e| e);
                    last.contains("echo-answers")
                },
            );
        }
    }

    // 4. Each client reaches its own instance of the resource, by name.
    let outsider_node = c.index_of(&c.running("outsider", "worker")[0].0);
    let outsider = c.containers(outsider_node, "lain.outsider.worker.")[0].clone();
    let on_first = c.containers(0, "lain.client.worker.")[0].clone();
    for (i, name, want) in [
        (0, &on_first, "kv-for-client"),
        (outsider_node, &outsider, "kv-for-outsider"),
    ] {
        let mut last = String::new();
        wait_until(
            &format!("its store from {name}"),
            Duration::from_secs(30),
            || {
                last = c.exec(i, name, &get("store", 6379)).unwrap_or_else(|e| e);
                last.contains(want)
            },
        );
    }

    // 3. Not allowed: no portal, no name, and an event that says why.
    assert!(c
        .containers(outsider_node, "lain-portal.outsider.svc.")
        .is_empty());
    let answer = c.exec(outsider_node, &outsider, &get("echo.svc.lain", 9000));
    assert!(
        !answer.as_deref().unwrap_or("").contains("echo-answers"),
        "the outsider reached the service: {answer:?}"
    );
    wait_until("the refusal as an event", Duration::from_secs(20), || {
        c.events("outsider").iter().any(|(k, m)| {
            *k == EventKind::PortalFailed && m.contains("does not allow client outsider")
        })
    });

    // 1. Isolation: the service's container address on its own network,
    // from the apps beside it on the first node, does not answer.
    let svc_node = c.index_of(&c.running("svc", "worker.echo")[0].0);
    assert_eq!(svc_node, 0);
    let svc_container = c.containers(0, "lain.svc.worker.echo.")[0].clone();
    let svc_ip = c
        .nodes
        .node(0)
        .docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &svc_container,
        ])
        .unwrap()
        .trim()
        .to_owned();
    assert!(!svc_ip.is_empty());
    // A positive control: on its own network the address answers.
    let own = c
        .exec(0, &svc_container, &get(&svc_ip, 8080))
        .unwrap_or_default();
    assert!(own.contains("echo-answers"), "control: {own:?}");
    for name in std::iter::once(&on_first).chain((outsider_node == 0).then_some(&outsider)) {
        let direct = c.exec(0, name, &get(&svc_ip, 8080)).unwrap_or_default();
        assert!(
            !direct.contains("echo-answers"),
            "{name} reached another app's container directly at {svc_ip}: {direct:?}"
        );
    }

    // The portal follows the service: a second instance is written into
    // its backends file.
    for d in echo_service(2, &first) {
        c.put(&d);
    }
    wait_until("two service instances", Duration::from_secs(60), || {
        c.running("svc", "worker.echo").len() == 2
    });
    let portal = c.containers(0, "lain-portal.client.svc.")[0].clone();
    wait_until(
        "both backends in the portal",
        Duration::from_secs(20),
        || {
            c.exec(0, &portal, "cat /lain/portal/backends")
                .map(|s| s.lines().count() == 2)
                .unwrap_or(false)
        },
    );

    // 5. The client down to one instance: the other node's portal goes;
    // the client gone: every portal goes.
    c.put(&client("client", 1));
    wait_until("one client, one portal", Duration::from_secs(60), || {
        let left = c.running("client", "worker");
        left.len() == 1
            && (0..2)
                .map(|i| c.containers(i, "lain-portal.client.svc.").len())
                .sum::<usize>()
                == 1
    });
    let kept = c.index_of(&c.running("client", "worker")[0].0);
    assert_eq!(c.containers(kept, "lain-portal.client.svc.").len(), 1);
    c.delete("client", "worker");
    c.delete("outsider", "worker");
    wait_until("no portal left", Duration::from_secs(60), || {
        (0..2).all(|i| c.containers(i, "lain-portal.").is_empty())
    });
}

/// A worker whose volume holds data: a plain drain leaves it on its node
/// (a volume-less worker moves), a drain with volumes moves it with its
/// data, byte for byte.
#[test]
fn a_drain_with_volumes_moves_the_data() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let etcd = Etcd::start().expect("start etcd");
    let nodes = DockerNodes::start(2, NodesOptions::default()).expect("start nodes");
    import_base_image_all(&nodes).expect("import base image");
    let (console, admin) = rt.block_on(async {
        let admin = node_admin(&etcd.endpoint()).await;
        for n in nodes.nodes() {
            register(&admin, n).await;
        }
        let console = Store::connect(&[etcd.endpoint()])
            .await
            .expect("connect")
            .as_writer(Component::Console);
        (console, admin)
    });
    let c = Cluster { rt, console, nodes };
    let _deployd = spawn(&etcd);

    let first = c.nodes.node(0).name().to_owned();
    let mut db = proc("db", "worker", ProcType::Worker, IDLE);
    db.volumes = vec!["/data".into()];
    db.filters = vec![format!("constraint:node=={first}")];
    let mut plain = proc("plain", "worker", ProcType::Worker, IDLE);
    plain.filters = db.filters.clone();
    c.put(&db);
    c.put(&plain);
    wait_until(
        "both workers on the first node",
        Duration::from_secs(60),
        || c.running("db", "worker").len() == 1 && c.running("plain", "worker").len() == 1,
    );
    let name = c.containers(0, "lain.db.worker.")[0].clone();
    // Some data: a 2 MiB file, a small one with odd permissions, a link.
    let sums = "cd /data && find . -type f | sort | xargs sha256sum; \
                find . | sort | xargs stat -c '%n %a %s %Y'";
    c.exec(
        0,
        &name,
        "head -c 2097152 /dev/urandom > /data/blob && echo hello > /data/note \
         && chmod 640 /data/note && mkdir -p /data/sub && ln -s ../note /data/sub/link",
    )
    .expect("write data");
    let before = c.exec(0, &name, sums).expect("checksums");
    assert!(before.contains("./blob"), "{before}");

    // The filters would keep both on the first node: drop them, as an
    // operator would before draining.
    db.filters.clear();
    db.generation = 2;
    plain.filters.clear();
    plain.generation = 2;
    c.put(&db);
    c.put(&plain);
    let drain = |with_volumes: bool| {
        let mut reg = common::registration(c.nodes.node(0));
        reg.schedulable = false;
        reg.draining = true;
        reg.drain_volumes = with_volumes;
        c.rt.block_on(admin.put(&lain_store::NodeKey::new(&first).unwrap(), &reg))
            .expect("drain");
    };
    drain(false);
    wait_until(
        "the plain worker off the drained node",
        Duration::from_secs(60),
        || {
            c.running("plain", "worker")
                .iter()
                .all(|(n, _)| *n != first)
                && c.running("plain", "worker").len() == 1
        },
    );
    // The worker with a volume stays where its data is.
    let db_now = c.running("db", "worker");
    assert_eq!(db_now.len(), 1);
    assert_eq!(
        db_now[0].0, first,
        "a plain drain moved an instance with volumes"
    );

    drain(true);
    wait_until(
        "the db worker on the other node",
        Duration::from_secs(90),
        || {
            let r = c.running("db", "worker");
            r.len() == 1 && r[0].0 != first
        },
    );
    let moved = c.containers(1, "lain.db.worker.")[0].clone();
    let after = c.exec(1, &moved, sums).expect("checksums after the move");
    assert_eq!(before, after, "the data did not move byte for byte");
    assert!(c.containers(0, "lain.db.").is_empty());
    // No helper containers left on either node.
    for i in 0..2 {
        let all = c
            .nodes
            .node(i)
            .docker(&["ps", "-a", "--format", "{{.Names}}"])
            .unwrap();
        assert!(!all.contains("lain-volume-helper"), "{all}");
    }
}
