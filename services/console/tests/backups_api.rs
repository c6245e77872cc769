//! Volume backups through console, against real servers: etcd, sso
//! in-process (with console's client for deployd), deployd in-process
//! with a `[backup]` directory target (it leads; there are no nodes, so
//! nothing runs), and the `console` binary (one with `[deployd]`, one
//! without). The backup the restore names is written into the target
//! with lain-backup, as deployd would.
//!
//! Every refusal (no token, not a maintainer, malformed input, no such
//! app, proc, instance, volume or backup, deployd not configured) is a
//! 4xx or 503 that says what to do, and changes nothing: etcd's desired
//! state and the deployments stay as they were. A valid restore writes
//! the proc with `restore` set as a `restore` deployment.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lain_backup::{Backups, Expire, Target, VolumeKey};
use lain_store::{Component, DesiredKey, DesiredProc, ProcType, Store};
use lain_testkit::Etcd;
use reqwest::Method;
use serde_json::{json, Value};
use sso::domain::{ClientKind, NewClient};
use tokio::task::block_in_place;

const APP: &str = "bkapi";
/// The release the desired proc runs (registered with console).
const VERSION: &str = "1700000001-0000000000000000000000000000000000000001";
const LAIN_YAML: &str = "appname: bkapi
build:
  base: busybox
  script: [make]
worker:
  cmd: sleep 1000
  num_instances: 2
  volumes:
    - /data:
        backup_full:
          schedule: '0 3 * * *'
          expire: 10d
";
const CLIENT: &str = "console-deployd";

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

    /// Asserts an error with `status` and `code` and a hint; its message.
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "{}", self.text);
        assert!(
            v["hint"].as_str().is_some_and(|h| !h.is_empty()),
            "{}",
            self.text
        );
        v["message"].as_str().unwrap_or("").to_owned()
    }
}

async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    Answer {
        status: r.status().as_u16(),
        text: r.text().await.unwrap_or_default(),
    }
}

fn worker() -> DesiredProc {
    DesiredProc {
        app: APP.into(),
        proc: "worker".into(),
        proc_type: ProcType::Worker,
        release: VERSION.into(),
        image: format!("registry.lain.local/bkapi:release-{VERSION}"),
        instances: 2,
        cmd: vec!["sleep".into(), "1000".into()],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 0,
        memory_bytes: 32 << 20,
        env: Default::default(),
        secrets: vec![],
        port: None,
        healthcheck: None,
        mountpoints: vec![],
        https_only: false,
        volumes: vec!["/data".into()],
        labels: Default::default(),
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

/// A one-file volume as a tar stream.
fn volume_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(5);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "./hello.txt", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

/// `call`, again while deployd answers 503 (its backup runner starts once
/// its reconciler has listed everything).
async fn call_ready(base: &str, method: Method, path: &str, token: &str, body: Value) -> Answer {
    let started = Instant::now();
    loop {
        let a = call(base, method.clone(), path, Some(token), Some(body.clone())).await;
        if a.status != 503 || started.elapsed() > Duration::from_secs(30) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What must not change on a refusal: the desired proc's revision and
/// the number of deployments.
async fn snapshot(store: &Store, base: &str, token: &str) -> (Option<i64>, usize) {
    let rev = store
        .get(&DesiredKey::new(APP, "worker").unwrap())
        .await
        .unwrap()
        .map(|e| e.mod_revision);
    let a = call(
        base,
        Method::GET,
        &format!("/api/v1/apps/{APP}/deployments"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    (rev, a.json().as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_routes_refuse_bad_input_and_change_nothing() {
    let etcd = block_in_place(Etcd::start).expect("start etcd");
    let sso = common::TestSso::start().await;
    let secret = sso
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
        .expect("a secret")
        .expose()
        .to_owned();

    // deployd (leading: nothing else campaigns) with a directory target.
    let target = tempfile::tempdir().unwrap();
    let target_dir = target.path().join("backups");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let deployd_addr = listener.local_addr().unwrap();
    let text = format!(
        "listen = \"{deployd_addr}\"\netcd = [\"{}\"]\nid = \"deployd-backups-api\"\n\
         [auth]\nissuer = \"{}\"\nallowed_clients = [\"client:{CLIENT}\"]\n\
         [backup.target]\nkind = \"dir\"\npath = \"{}\"\n",
        etcd.endpoint(),
        sso.issuer,
        target_dir.display()
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

    let secret_dir = tempfile::tempdir().unwrap();
    let secret_path = secret_dir.path().join("deployd.secret");
    std::fs::write(&secret_path, format!("{secret}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let endpoints = [etcd.endpoint()];
    let console = block_in_place(|| {
        common::TestConsole::start(
            &sso.issuer,
            &endpoints,
            "",
            "",
            &format!(
                "[deployd]\nclient_id = \"{CLIENT}\"\nclient_secret_file = \"{}\"\n",
                secret_path.display()
            ),
        )
    });
    let bare = block_in_place(|| common::TestConsole::start(&sso.issuer, &endpoints, "", "", ""));
    let base = console.base.clone();
    let alice = sso.token("alice", &[]);
    let mallory = sso.token("mallory", &[]);
    let root = sso.token("root", &["lain-admins"]);

    let a = call(
        &base,
        Method::POST,
        "/api/v1/apps",
        Some(&alice),
        Some(json!({"name": APP})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = call(
        &base,
        Method::POST,
        &format!("/api/v1/apps/{APP}/releases"),
        Some(&alice),
        Some(json!({
            "version": VERSION,
            "image": format!("registry.lain.local/bkapi:release-{VERSION}"),
            "digest": format!("sha256:{:064x}", 1),
            "lain_yaml": LAIN_YAML,
        })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let store = Store::connect(&[etcd.endpoint()])
        .await
        .unwrap()
        .as_writer(Component::Console);
    store
        .put(&DesiredKey::new(APP, "worker").unwrap(), &worker())
        .await
        .unwrap();
    let list = format!("/api/v1/apps/{APP}/backups");
    let restore = format!("/api/v1/apps/{APP}/backups/restore");

    // Console finds deployd once it advertises itself.
    let started = Instant::now();
    loop {
        let a = call(&base, Method::GET, &list, Some(&alice), None).await;
        if a.status == 200 {
            assert_eq!(a.json(), json!([]));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the list through deployd: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A backup of instance 1's /data in the target, as deployd writes it.
    let backups = Backups::new(Target::dir(&target_dir).unwrap());
    let meta = backups
        .store_full(
            &VolumeKey::new(APP, "worker", 1, "/data").unwrap(),
            std::io::Cursor::new(volume_tar()),
            Expire::NEVER,
        )
        .await
        .expect("store a backup");
    let id = meta.id.to_string();
    let listed = call(
        &base,
        Method::GET,
        &format!("{list}?proc=worker&instance=1"),
        Some(&alice),
        None,
    )
    .await
    .json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["path"], "/data");
    assert_eq!(listed[0]["mode"], "full");
    assert_eq!(
        call(
            &base,
            Method::GET,
            &format!("{list}?proc=worker&instance=2"),
            Some(&alice),
            None
        )
        .await
        .json(),
        json!([])
    );

    let before = snapshot(&store, &base, &alice).await;
    let ok_body = json!({"proc": "worker", "instance": 1, "path": "/data", "backup": id});

    // Who: no token, not a maintainer.
    call(&base, Method::GET, &list, None, None)
        .await
        .error(401, "unauthorized");
    call(&base, Method::POST, &restore, None, Some(ok_body.clone()))
        .await
        .error(401, "unauthorized");
    call(&base, Method::GET, &list, Some(&mallory), None)
        .await
        .error(403, "forbidden");
    call(
        &base,
        Method::POST,
        &list,
        Some(&mallory),
        Some(json!({"proc": "worker", "instance": 1, "path": "/data"})),
    )
    .await
    .error(403, "forbidden");
    call(
        &base,
        Method::POST,
        &restore,
        Some(&mallory),
        Some(ok_body.clone()),
    )
    .await
    .error(403, "forbidden");

    // Malformed input.
    call(
        &base,
        Method::GET,
        &format!("{list}?instance=1"),
        Some(&alice),
        None,
    )
    .await
    .error(400, "invalid_request");
    call(
        &base,
        Method::GET,
        &format!("{list}?proc=a%2Fb"),
        Some(&alice),
        None,
    )
    .await
    .error(400, "invalid_request");
    call(
        &base,
        Method::GET,
        &format!("{list}?instance=x&proc=worker"),
        Some(&alice),
        None,
    )
    .await
    .error(400, "invalid_request");
    for (body, code) in [
        (
            json!({"proc": "worker", "instance": 0, "path": "/data"}),
            "invalid_request",
        ),
        (
            json!({"proc": "worker", "instance": 1, "path": "data"}),
            "invalid_request",
        ),
        (
            json!({"proc": "a/b", "instance": 1, "path": "/data"}),
            "invalid_request",
        ),
        (json!({"proc": "worker", "instance": 1}), "invalid_json"),
        (
            json!({"proc": "worker", "instance": 1, "path": "/data", "extra": 1}),
            "invalid_json",
        ),
    ] {
        call(&base, Method::POST, &list, Some(&alice), Some(body.clone()))
            .await
            .error(400, code);
        let mut r = body.clone();
        r["backup"] = json!(id);
        call(&base, Method::POST, &restore, Some(&alice), Some(r))
            .await
            .error(400, code);
    }
    for bad in ["", "../../etc", "x".repeat(65).as_str(), "a b"] {
        let m = call(
            &base,
            Method::POST,
            &restore,
            Some(&alice),
            Some(json!({"proc": "worker", "instance": 1, "path": "/data", "backup": bad})),
        )
        .await
        .error(400, "invalid_request");
        assert!(m.contains("not a backup id"), "{m}");
    }

    // Nothing of that name.
    call(
        &base,
        Method::POST,
        "/api/v1/apps/nosuch/backups/restore",
        Some(&root),
        Some(ok_body.clone()),
    )
    .await
    .error(404, "not_found");
    for (body, needle) in [
        (
            json!({"proc": "web", "instance": 1, "path": "/data", "backup": id}),
            "not deployed",
        ),
        (
            json!({"proc": "worker", "instance": 3, "path": "/data", "backup": id}),
            "has 2 instance",
        ),
        (
            json!({"proc": "worker", "instance": 1, "path": "/logs", "backup": id}),
            "its volumes are: /data",
        ),
        (
            json!({"proc": "worker", "instance": 1, "path": "/data", "backup": "20200101T000000Z-00000000"}),
            "no backup 20200101T000000Z-00000000",
        ),
        (
            json!({"proc": "worker", "instance": 2, "path": "/data", "backup": id}),
            "no backup",
        ),
    ] {
        let m = call(
            &base,
            Method::POST,
            &restore,
            Some(&alice),
            Some(body.clone()),
        )
        .await
        .error(404, "not_found");
        assert!(m.contains(needle), "{body}: {m}");
    }
    // A backup asked of a proc deployd does not know: deployd says so.
    let m = call_ready(
        &base,
        Method::POST,
        &list,
        &alice,
        json!({"proc": "nosuch", "instance": 1, "path": "/data"}),
    )
    .await
    .error(404, "not_found");
    assert!(m.contains("nosuch"), "{m}");
    // An instance that does not run (no nodes here): a conflict.
    call_ready(
        &base,
        Method::POST,
        &list,
        &alice,
        json!({"proc": "worker", "instance": 1, "path": "/data"}),
    )
    .await
    .error(409, "conflict");

    // console without [deployd] (its own database, the same etcd): 503,
    // and a restore changes nothing.
    let a = call(
        &bare.base,
        Method::POST,
        "/api/v1/apps",
        Some(&alice),
        Some(json!({"name": APP})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    call(&bare.base, Method::GET, &list, Some(&alice), None)
        .await
        .error(503, "deployd_not_configured");
    call(
        &bare.base,
        Method::POST,
        &restore,
        Some(&alice),
        Some(ok_body.clone()),
    )
    .await
    .error(503, "deployd_not_configured");

    assert_eq!(
        snapshot(&store, &base, &alice).await,
        before,
        "refusals changed nothing"
    );

    // The refusals are in the audit log.
    let audit = call(
        &base,
        Method::GET,
        &format!("/api/v1/audit?app={APP}&action=backup.restore"),
        Some(&root),
        None,
    )
    .await
    .json();
    let results: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(
        results.contains(&"denied") && results.contains(&"error"),
        "{audit}"
    );

    // A valid restore: a `restore` deployment writing the proc with the
    // request, at a new generation.
    let a = call(&base, Method::POST, &restore, Some(&alice), Some(ok_body)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let out = a.json();
    assert_eq!(out["deployment"]["kind"], "restore", "{out}");
    assert_eq!(out["deployment"]["state"], "progressing", "{out}");
    assert_eq!(out["written"], json!(["worker"]));
    let d = store
        .get(&DesiredKey::new(APP, "worker").unwrap())
        .await
        .unwrap()
        .unwrap()
        .value;
    let r = d.restore.expect("restore set");
    assert_eq!(
        (r.instance, r.path.as_str(), r.backup.as_str()),
        (1, "/data", id.as_str())
    );
    assert!(r.request.starts_with("restore-"), "{}", r.request);
    assert!(d.generation > 1);
    assert_eq!(
        Some(d.generation as i64),
        out["deployment"]["generation"].as_i64()
    );
    let ok = call(
        &base,
        Method::GET,
        &format!("/api/v1/audit?app={APP}&action=backup.restore&result=ok"),
        Some(&root),
        None,
    )
    .await
    .json();
    assert_eq!(ok[0]["detail"]["backup"], id.as_str(), "{ok}");

    let _ = stop_deployd.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), deployd_task).await;
}
