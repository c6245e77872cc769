//! Console's etcd writes against a real etcd: a release's lain.yaml
//! becomes desired procs in one transaction with a new generation; a proc
//! the release no longer has is removed; one proc can be deployed alone;
//! secret versions are written sealed, never in plaintext; racing deploys
//! never interleave; undeploy removes everything.

use std::collections::BTreeMap;

use console::deploy::{self, Scope, SecretValue};
use console::desired::{desired_procs, ReleaseRef};
use lain_spec::ParseOptions;
use lain_store::secret::{self, SecretsKey};
use lain_store::{Component, DesiredKey, SecretKey, Store};
use lain_testkit::Etcd;
use zeroize::Zeroizing;

const V1: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello
  num_instances: 2
  secret_files:
    - /lain/app/db.conf
worker.queue:
  cmd: ./hello work
";

const V2: &str = "appname: hello
build:
  base: golang
  script: [go build]
web:
  cmd: ./hello --v2
  num_instances: 3
  secret_files:
    - /lain/app/db.conf
";

const PLAINTEXT: &[u8] = b"password=hunter2-very-secret";

fn release(version: &str) -> (String, String) {
    let v = format!("1700000000-{version:0>40}");
    let image = format!("registry.lain.test/hello:release-{v}");
    (v, image)
}

fn procs(
    yaml: &str,
    version: &str,
    only: Option<&str>,
    secret_version: u64,
) -> Vec<lain_store::DesiredProc> {
    let opts = ParseOptions {
        cluster_domain: "lain.test".into(),
        ..ParseOptions::default()
    };
    let conf = lain_spec::parse("lain.yaml", yaml, &opts)
        .expect("valid")
        .conf;
    let (v, image) = release(version);
    let secrets = BTreeMap::from([("db.conf".to_owned(), secret_version)]);
    desired_procs(
        &conf,
        ReleaseRef {
            version: &v,
            image: &image,
        },
        only,
        &secrets,
        0,
    )
    .expect("desired")
}

fn secret(version: u64) -> Vec<SecretValue> {
    vec![SecretValue {
        name: "db.conf".into(),
        version,
        value: Zeroizing::new(PLAINTEXT.to_vec()),
    }]
}

#[test]
fn deploys_write_desired_state_in_one_transaction() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start().expect("etcd");
    let key = SecretsKey::generate();
    rt.block_on(async {
        let store = Store::connect(&[etcd.endpoint()])
            .await
            .unwrap()
            .as_writer(Component::Console);
        let get = |proc: &str| {
            let store = store.clone();
            let proc = proc.to_owned();
            async move {
                store
                    .get(&DesiredKey::new("hello", &proc).unwrap())
                    .await
                    .unwrap()
                    .map(|e| e.value)
            }
        };

        // v1: two procs, generation 1, the secret sealed in etcd.
        let applied = deploy::apply(
            &store,
            &key,
            "hello",
            procs(V1, "a", None, 1),
            &Scope::All,
            &secret(1),
            0,
        )
        .await
        .unwrap();
        assert_eq!(applied.generation, 1);
        assert_eq!(applied.procs, ["web", "worker.queue"]);
        let web = get("web").await.expect("web");
        assert_eq!(web.instances, 2);
        assert_eq!(web.generation, 1);
        assert_eq!(web.secrets[0].version, 1);
        let sk = SecretKey::new("hello", "db.conf", 1).unwrap();
        let sealed = store.get(&sk).await.unwrap().expect("secret written").value;
        assert_eq!(
            &*secret::open_for(&key, &sk, &sealed.value).unwrap(),
            PLAINTEXT
        );
        let dump = etcd.etcdctl(&["get", "--prefix", "/lain/"]).unwrap();
        assert!(!dump.contains("hunter2"), "plaintext secret in etcd");

        // v2 drops worker.queue: it is removed; web gets generation 2.
        let applied = deploy::apply(
            &store,
            &key,
            "hello",
            procs(V2, "b", None, 1),
            &Scope::All,
            &secret(1),
            0,
        )
        .await
        .unwrap();
        assert_eq!(applied.generation, 2);
        assert_eq!(applied.removed, ["worker.queue"]);
        assert!(get("worker.queue").await.is_none(), "a removed proc stayed");
        assert_eq!(get("web").await.unwrap().instances, 3);

        // One proc alone: the others are untouched.
        deploy::apply(
            &store,
            &key,
            "hello",
            procs(V1, "a", None, 1),
            &Scope::All,
            &secret(1),
            0,
        )
        .await
        .unwrap();
        let only = procs(V2, "c", Some("web"), 2);
        let applied = deploy::apply(
            &store,
            &key,
            "hello",
            only,
            &Scope::One("web".into()),
            &secret(2),
            0,
        )
        .await
        .unwrap();
        assert_eq!(applied.generation, 4);
        assert!(applied.removed.is_empty());
        assert_eq!(get("worker.queue").await.unwrap().generation, 3);
        assert_eq!(get("web").await.unwrap().secrets[0].version, 2);

        // A secret version not provided is refused, and nothing changes.
        let e = deploy::apply(
            &store,
            &key,
            "hello",
            procs(V2, "d", None, 9),
            &Scope::All,
            &secret(2),
            0,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        assert_eq!(get("web").await.unwrap().generation, 4);

        // Racing deploys: each one lands whole or not at all.
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let (store, key) = (store.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let yaml = if i % 2 == 0 { V1 } else { V2 };
                deploy::apply(
                    &store,
                    &key,
                    "hello",
                    procs(yaml, &format!("r{i}"), None, 1),
                    &Scope::All,
                    &secret(1),
                    0,
                )
                .await
            }));
        }
        let mut landed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => landed += 1,
                Err(deploy::DeployError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert!(landed >= 1);
        let listing = store
            .list(&DesiredKey::of_app("hello").unwrap())
            .await
            .unwrap();
        let gens: Vec<u64> = listing.items.iter().map(|e| e.value.generation).collect();
        assert!(
            gens.iter().all(|g| *g == 4 + landed),
            "interleaved deploys: {gens:?}, {landed} landed"
        );
        let releases: std::collections::BTreeSet<&str> = listing
            .items
            .iter()
            .map(|e| e.value.release.as_str())
            .collect();
        assert_eq!(
            releases.len(),
            1,
            "procs of different releases: {releases:?}"
        );

        // Undeploy removes every proc; secrets stay for a later rollback.
        let removed = deploy::undeploy(&store, "hello").await.unwrap();
        assert!(!removed.is_empty());
        assert!(store
            .list(&DesiredKey::of_app("hello").unwrap())
            .await
            .unwrap()
            .items
            .is_empty());
        assert!(store.get(&sk).await.unwrap().is_some());

        // A deploy after the undeploy has no desired key to count from:
        // the floor (the newest generation console wrote) keeps the
        // generation from going back to 1.
        let last = 4 + landed;
        let applied = deploy::apply(
            &store,
            &key,
            "hello",
            procs(V1, "a", None, 1),
            &Scope::All,
            &secret(1),
            last,
        )
        .await
        .unwrap();
        assert_eq!(applied.generation, last + 1);
        deploy::undeploy(&store, "hello").await.unwrap();
    });
}
