//! Helpers shared by the integration tests: a real etcd from the test kit,
//! a store with short timeouts, bounded waits and sample values.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use lain_store::{
    Candidate, DesiredProc, Entry, HealthCheck, InstanceState, ObservedInstance, ProcType,
    RouterStatus, Store, StoreKey, StoreOptions, Watch, WatchEvent,
};
use lain_testkit::Etcd;

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Starts a real etcd; the kit blocks briefly, so step off the runtime.
pub fn start_etcd() -> Etcd {
    tokio::task::block_in_place(|| Etcd::start().expect("start etcd"))
}

pub fn kill_and_restart(etcd: &mut Etcd) {
    tokio::task::block_in_place(|| {
        etcd.kill();
        etcd.restart().expect("restart etcd");
    });
}

pub fn options() -> StoreOptions {
    StoreOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        keep_alive_interval: Duration::from_secs(1),
        keep_alive_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        writer: None,
    }
}

pub async fn connect(etcd: &Etcd) -> Store {
    connect_with(etcd, options()).await
}

pub async fn connect_with(etcd: &Etcd, options: StoreOptions) -> Store {
    within("connect", Store::connect_with(&[etcd.endpoint()], options))
        .await
        .expect("connect to etcd")
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn next_event<K: StoreKey>(watch: &mut Watch<K>) -> WatchEvent<K> {
    within("a watch event", watch.next())
        .await
        .expect("watch ended")
}

/// A consumer's view of a prefix, built only from watch events.
pub struct Model<K: StoreKey> {
    pub items: BTreeMap<String, Entry<K>>,
    pub revision: i64,
    pub resets: usize,
}

impl<K: StoreKey> Default for Model<K> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            revision: 0,
            resets: 0,
        }
    }
}

impl<K: StoreKey> Model<K> {
    pub fn apply(&mut self, event: WatchEvent<K>) {
        let rev = event.revision();
        match event {
            WatchEvent::Reset {
                items, revision, ..
            } => {
                self.items = items.into_iter().map(|e| (e.key.path(), e)).collect();
                self.resets += 1;
                self.revision = revision;
                return;
            }
            WatchEvent::Put(e) => {
                self.items.insert(e.key.path(), e);
            }
            WatchEvent::Delete { key, .. } => {
                self.items.remove(&key.path());
            }
            WatchEvent::Invalid(bad) => {
                self.items.remove(&bad.key);
            }
        }
        // Events after a snapshot come strictly in revision order (events
        // of one transaction share a revision).
        assert!(
            rev >= self.revision,
            "event at {rev} after revision {}",
            self.revision
        );
        self.revision = rev;
    }

    pub fn values(&self) -> BTreeMap<String, K::Value> {
        self.items
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }
}

pub fn desired(app: &str, proc: &str, generation: u64) -> DesiredProc {
    DesiredProc {
        app: app.into(),
        proc: proc.into(),
        proc_type: ProcType::Web,
        release: "1700000000-0123456789abcdef0123456789abcdef01234567".into(),
        image: format!("127.0.0.1:5000/{app}:release-1700000000-0123"),
        instances: 1,
        cmd: vec!["/bin/serve".into()],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 0,
        memory_bytes: 32 << 20,
        env: BTreeMap::new(),
        secrets: vec![],
        port: Some(80),
        healthcheck: Some(HealthCheck::Http {
            path: "/ping".into(),
        }),
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
        generation,
    }
}

pub fn observed(node: &str, generation: u64) -> ObservedInstance {
    ObservedInstance {
        node: node.into(),
        container_id: Some("c0ffee".into()),
        generation,
        release: String::new(),
        image: String::new(),
        state: InstanceState::Running,
        health: lain_store::Health::Healthy,
        address: Some("127.0.0.1:30001".into()),
        restarts: 0,
        started_at_ms: None,
        updated_at_ms: lain_store::unix_millis(),
        message: None,
        instance: 1,
        spec: String::new(),
        recent_restarts_ms: vec![],
        volumes_from: None,
    }
}

pub fn router(revision: i64) -> RouterStatus {
    RouterStatus {
        applied_revision: revision,
        applied_at_ms: lain_store::unix_millis(),
        config_hash: None,
        upstreams: 0,
        address: None,
        error: None,
    }
}

pub fn candidate(id: &str) -> Candidate {
    Candidate {
        id: id.into(),
        address: Some(format!("{id}.internal:9000")),
        started_at_ms: lain_store::unix_millis(),
    }
}
