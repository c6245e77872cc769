//! Volume backups and restores end to end, against real servers: etcd, a
//! `dockerd` node in a network namespace, sso in-process (issuing
//! console's client-credentials token) and the real `deployd` binary with
//! a `[backup]` directory target:
//!
//! 1. a worker with a volume and a `* * * * *` full backup runs; data is
//!    written into the volume; a backup is asked for through the
//!    operational API (not waiting for cron) and is listed;
//! 2. the data is changed, and the desired proc written with `restore`
//!    set, as console does: the rollout brings the volume back byte for
//!    byte (sha256, mode and owner of every entry, link targets);
//! 3. data written after that survives the container being killed (deployd
//!    restarts it) and a redeploy with a new image tag that still carries
//!    the restore request (it is restored once);
//! 4. a restore of a backup that does not exist fails the rollout, names
//!    the backup, and the proc returns to what ran, data intact;
//! 5. the cron schedule took a backup of its own meanwhile.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{node_admin, register};
use lain_store::{
    Component, DesiredKey, DesiredProc, EventKey, EventKind, Health, InstanceState, ObservedKey,
    ProcType, RestoreKey, RestoreRequest, Store, VolumeBackup,
};
use lain_testkit::daemon::Daemon;
use lain_testkit::image::{import_base_image_all, BASE_IMAGE};
use lain_testkit::{DockerNodes, Etcd, NodesOptions};
use serde_json::{json, Value};
use sso::domain::{ClientKind, NewClient};
use tokio::task::block_in_place;

const BIN: &str = env!("CARGO_BIN_EXE_deployd");
const APP: &str = "bk";
const PROC: &str = "worker";
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// sso with one client-credentials client, `console`, for deployd.
struct TestSso {
    issuer: String,
    secret: String,
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
    let secret = sso
        .state()
        .db
        .add_client(&NewClient {
            client_id: "console".into(),
            name: "console".into(),
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
        secret,
        _dir: dir,
        _stop: tx,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl TestSso {
    async fn token(&self) -> String {
        let r: Value = http()
            .post(format!("{}/token", self.issuer))
            .basic_auth("console", Some(&self.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().expect("a token").to_owned()
    }
}

fn worker(image: &str, generation: u64, restore: Option<RestoreRequest>) -> DesiredProc {
    DesiredProc {
        app: APP.into(),
        proc: PROC.into(),
        proc_type: ProcType::Worker,
        release: format!("{generation}-r"),
        image: image.into(),
        instances: 1,
        cmd: vec!["sh".into(), "-c".into(), IDLE.into()],
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
        volumes: vec!["/data".into()],
        labels: BTreeMap::new(),
        kill_timeout_secs: 10,
        setup_time_secs: 0,
        stateful: false,
        filters: vec![],
        services: vec![],
        backups: vec![VolumeBackup {
            path: "/data".into(),
            mode: "full".into(),
            schedule: "* * * * *".into(),
            expire: "1h".into(),
            pre_run: "sync".into(),
            post_run: String::new(),
        }],
        restore,
        portal: None,
        generation,
    }
}

/// The data written into the volume: contents, modes, owners, a
/// symlink, an empty directory and a larger random file.
const WRITE: &str = "set -e; cd /data; mkdir -p sub/deeper empty; \
    dd if=/dev/urandom of=big.bin bs=1024 count=700 2>/dev/null; \
    echo hello > sub/a.txt; chmod 600 sub/a.txt; chown 1234:5678 sub/a.txt; \
    printf '#!/bin/sh\\necho hi\\n' > sub/deeper/run.sh; chmod 4755 sub/deeper/run.sh; \
    chmod 0750 empty; ln -s sub/a.txt link; printf '' > zero";

/// Every entry of the volume: path, type, mode, owner, size, sha256 or
/// link target, sorted.
const FINGERPRINT: &str = "cd /data && find . | sort | while read -r f; do \
    if [ -L \"$f\" ]; then echo \"$f L $(readlink \"$f\")\"; \
    elif [ -d \"$f\" ]; then echo \"$f D $(stat -c '%a %u %g' \"$f\")\"; \
    else echo \"$f F $(stat -c '%a %u %g %s' \"$f\") $(sha256sum < \"$f\" | cut -d' ' -f1)\"; fi; done";

struct Cluster {
    console: Store,
    nodes: DockerNodes,
    deployd: Daemon,
    token: String,
}

impl Cluster {
    async fn put(&self, d: &DesiredProc) {
        self.console
            .put(&DesiredKey::new(&d.app, &d.proc).unwrap(), d)
            .await
            .expect("write desired proc");
    }

    /// The running, healthy record of instance 1 of `generation`: its
    /// container id and restarts.
    async fn running(&self, generation: u64) -> Option<(String, u32)> {
        self.console
            .list(&ObservedKey::of_proc(APP, PROC).unwrap())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.value)
            .find(|o| {
                o.generation == generation
                    && o.state == InstanceState::Running
                    && o.health == Health::Healthy
            })
            .and_then(|o| Some((o.container_id?, o.restarts)))
    }

    async fn wait_running(&self, generation: u64, what: &str) -> (String, u32) {
        let started = Instant::now();
        loop {
            if let Some(r) = self.running(generation).await {
                return r;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{what}: generation {generation} not running within 120 s; records: {:?}",
                self.records().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn records(&self) -> Vec<(String, u64, InstanceState, Option<String>)> {
        self.console
            .list(&ObservedKey::of_proc(APP, PROC).unwrap())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| {
                (
                    e.key.instance().to_owned(),
                    e.value.generation,
                    e.value.state,
                    e.value.message,
                )
            })
            .collect()
    }

    fn exec(&self, container: &str, script: &str) -> String {
        block_in_place(|| {
            self.nodes
                .node(0)
                .docker(&["exec", container, "sh", "-c", script])
        })
        .unwrap_or_else(|e| panic!("exec {script:?}: {e}"))
    }

    async fn events(&self) -> Vec<(EventKind, String)> {
        self.console
            .list(&EventKey::of_app(APP).unwrap())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| (e.value.kind, e.value.message))
            .collect()
    }

    fn url(&self, rest: &str) -> String {
        format!(
            "http://{}/api/v1/apps/{APP}/backups{rest}",
            self.deployd.addr
        )
    }

    /// A backup of /data of instance 1 through the API, retried while
    /// the runner is not up yet or the volume is busy (a scheduled backup).
    async fn backup_now(&self) -> Value {
        let started = Instant::now();
        loop {
            let r = http()
                .post(self.url(""))
                .bearer_auth(&self.token)
                .json(&json!({"proc": PROC, "instance": 1, "path": "/data"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            match status {
                200 => return body,
                409 | 503 if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => panic!("backup request answered {status}: {body}"),
            }
        }
    }

    async fn list(&self) -> Vec<Value> {
        let r = http()
            .get(self.url(&format!("?proc={PROC}&instance=1")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_are_backed_up_and_restored_byte_for_byte() {
    let etcd = block_in_place(Etcd::start).expect("start etcd");
    let nodes =
        block_in_place(|| DockerNodes::start(1, NodesOptions::default())).expect("start a node");
    block_in_place(|| import_base_image_all(&nodes)).expect("import the base image");
    let sso = start_sso().await;
    let admin = node_admin(&etcd.endpoint()).await;
    register(&admin, nodes.node(0)).await;
    let console = Store::connect(&[etcd.endpoint()])
        .await
        .expect("connect")
        .as_writer(Component::Console);
    let target = tempfile::tempdir().unwrap();
    let config = format!(
        "listen = \"{{listen}}\"\netcd = [\"{}\"]\nid = \"backup-test\"\n\
         health_timeout_secs = 30\nhealth_interval_ms = 500\n\
         [auth]\nissuer = \"{}\"\nallowed_clients = [\"client:console\"]\n\
         [backup]\ncheck_interval_secs = 1\nhook_timeout_secs = 20\n\
         [backup.target]\nkind = \"dir\"\npath = \"{}\"\n",
        etcd.endpoint(),
        sso.issuer,
        target.path().join("backups").display()
    );
    let deployd =
        block_in_place(|| Daemon::spawn("deployd-backups", BIN, &config)).expect("deployd starts");
    let c = Cluster {
        console,
        nodes,
        deployd,
        token: sso.token().await,
    };

    // 1. Data in the volume, a backup of it now, and the list shows it.
    c.put(&worker(BASE_IMAGE, 1, None)).await;
    let (first, _) = c.wait_running(1, "the first deploy").await;
    c.exec(&first, WRITE);
    let original = c.exec(&first, FINGERPRINT);
    assert!(
        original.contains("./big.bin F 644")
            && original.contains("./link L sub/a.txt")
            && original.contains("./sub/a.txt F 600 1234 5678"),
        "{original}"
    );
    let backup = c.backup_now().await;
    let id = backup["id"].as_str().expect("an id").to_owned();
    assert_eq!(backup["path"], "/data");
    assert_eq!(backup["mode"], "full");
    assert!(backup["expire_at_ms"].as_u64().is_some(), "{backup}");
    let listed = c.list().await;
    assert!(
        listed.iter().any(|b| b["id"] == id.as_str()
            && b["proc"] == PROC
            && b["instance"] == 1
            && b["files"].as_u64().is_some_and(|n| n >= 8)),
        "{id} not listed: {listed:?}"
    );

    // Bad requests are refused with what to do.
    for (body, status) in [
        (json!({"proc": PROC, "instance": 1, "path": "/nope"}), 404),
        (json!({"proc": PROC, "instance": 2, "path": "/data"}), 404),
        (
            json!({"proc": "other", "instance": 1, "path": "/data"}),
            404,
        ),
        (json!({"proc": PROC, "instance": 0, "path": "/data"}), 400),
        (json!({"proc": PROC, "instance": 1, "path": "data"}), 400),
        (json!({"proc": PROC, "instance": 1}), 400),
    ] {
        let r = http()
            .post(c.url(""))
            .bearer_auth(&c.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error_description"]
                .as_str()
                .is_some_and(|d| d.len() > 20),
            "{e}"
        );
    }
    let r = http().get(c.url("")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token, no backups");

    // 2. Change the data, then restore the backup as console would.
    c.exec(
        &first,
        "rm /data/big.bin; echo changed > /data/sub/a.txt; echo junk > /data/junk; rm -r /data/empty",
    );
    assert_ne!(c.exec(&first, FINGERPRINT), original);
    let restore = RestoreRequest {
        instance: 1,
        path: "/data".into(),
        backup: id.clone(),
        request: "req-1".into(),
    };
    c.put(&worker(BASE_IMAGE, 2, Some(restore.clone()))).await;
    let (restored, _) = c.wait_running(2, "the restore").await;
    assert_ne!(restored, first, "a new container");
    assert_eq!(
        c.exec(&restored, FINGERPRINT),
        original,
        "the volume is back byte for byte"
    );
    let marker = c
        .console
        .get(&RestoreKey::new(APP, PROC, 1).unwrap())
        .await
        .unwrap()
        .expect("the restore is recorded")
        .value;
    assert_eq!(
        (marker.request.as_str(), marker.backup.as_str()),
        ("req-1", id.as_str())
    );
    assert!(
        c.events()
            .await
            .iter()
            .any(|(k, m)| *k == EventKind::BackupRestored && m.contains(&id)),
        "{:?}",
        c.events().await
    );

    // 3. Written after the restore: kept when the container is killed
    // (deployd restarts it) ...
    c.exec(&restored, "echo kept > /data/after-restore");
    let after = c.exec(&restored, FINGERPRINT);
    block_in_place(|| c.nodes.node(0).docker(&["kill", &restored])).expect("docker kill");
    let started = Instant::now();
    loop {
        if let Some((cid, restarts)) = c.running(2).await {
            if restarts >= 1 {
                assert_eq!(cid, restored, "restarted, not re-created");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not restarted: {:?}",
            c.records().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.exec(&restored, FINGERPRINT), after);
    // ... and by a redeploy with a new image tag that still carries the
    // same restore request (a scale or rollback may): restored only once.
    block_in_place(|| {
        c.nodes
            .node(0)
            .docker(&["tag", BASE_IMAGE, "lain-backup-test:v2"])
    })
    .expect("docker tag");
    c.put(&worker("lain-backup-test:v2", 3, Some(restore)))
        .await;
    let (redeployed, _) = c.wait_running(3, "the redeploy").await;
    assert_ne!(redeployed, restored);
    assert_eq!(c.exec(&redeployed, FINGERPRINT), after);

    // 4. A backup that does not exist: the rollout fails naming it, and
    // the proc returns to what ran, its data untouched.
    let missing = "20200101T000000Z-00000000";
    c.put(&worker(
        BASE_IMAGE,
        4,
        Some(RestoreRequest {
            instance: 1,
            path: "/data".into(),
            backup: missing.into(),
            request: "req-2".into(),
        }),
    ))
    .await;
    let started = Instant::now();
    while !c
        .events()
        .await
        .iter()
        .any(|(k, m)| *k == EventKind::RolloutFailed && m.contains(missing))
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no failed rollout naming {missing}: {:?} {:?}",
            c.events().await,
            c.records().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let started = Instant::now();
    let back = loop {
        let records = c.records().await;
        let running: Vec<_> = records
            .iter()
            .filter(|r| r.2 == InstanceState::Running)
            .collect();
        if let (Some((cid, _)), 1) = (c.running(4).await.or(c.running(3).await), running.len()) {
            break cid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not back to the previous spec: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(c.exec(&back, FINGERPRINT), after, "data untouched");

    // 5. The schedule took a backup of its own (every minute).
    let started = Instant::now();
    while c.list().await.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no scheduled backup: {:?}",
            c.list().await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
