//! Leader election with fenced writes.
//!
//! Each candidate puts `/lain/election/{name}/{lease id}` bound to its own
//! lease. The candidate whose key has the lowest create revision leads;
//! every other waits for the key created just before its own to go (so a
//! handover wakes one candidate, not all). Leadership lasts exactly as long
//! as the leader's key exists: revisions only grow, so no later key can
//! overtake it. A fenced write is a transaction that also requires the
//! leader's key to still have the create revision it won with, so a
//! deposed leader's writes fail with [`StoreError::NotLeader`] even before
//! it notices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, SortOrder, SortTarget, WatchOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep;

use crate::error::{Result, StoreError};
use crate::keys::{ElectionKey, KeyPrefix, Name, Prefix, StoreKey};
use crate::lease::{Backoff, Lease};
use crate::store::{entry_from_kv, prefix_end, Fence, Revision, Store, Transaction};
use crate::value::Candidate;
use crate::watch::{open_watch, WatchEvent};

/// An election by name, e.g. `deployd`.
#[derive(Debug, Clone)]
pub struct Election {
    store: Store,
    name: Name,
    prefix: KeyPrefix<ElectionKey>,
}

/// Who leads an election.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderInfo {
    pub key: ElectionKey,
    pub candidate: Candidate,
    pub create_revision: Revision,
}

impl Store {
    /// The election called `name` (a valid key segment).
    pub fn election(&self, name: &str) -> Result<Election> {
        let name = Name::parse("election name", name)?;
        let prefix = ElectionKey::of_election(name.as_str())?;
        Ok(Election {
            store: self.clone(),
            name,
            prefix,
        })
    }
}

impl Election {
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The current leader, if any candidate is campaigning.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        let path = self.prefix.path();
        let options = GetOptions::new()
            .with_range(prefix_end(path.as_bytes()))
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(1);
        let mut kv = self.store.client().kv_client();
        let resp = self
            .store
            .call("election leader", kv.get(path, Some(options)))
            .await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        let entry = entry_from_kv::<ElectionKey>(kv).map_err(|bad| match bad.error {
            crate::store::EntryError::Decode(error) => StoreError::Decode {
                key: bad.key,
                error,
            },
            crate::store::EntryError::Key(e) => StoreError::Key(e),
        })?;
        Ok(Some(LeaderInfo {
            key: entry.key,
            candidate: entry.value,
            create_revision: entry.create_revision,
        }))
    }

    /// Follows the leader: the receiver holds the current leader and
    /// changes on every handover. Stops when the returned handle drops.
    pub fn observe(&self) -> LeaderWatch {
        let (tx, rx) = watch::channel(None);
        let mut events = self.store.watch(&self.prefix);
        let task = tokio::spawn(async move {
            let mut candidates: HashMap<String, LeaderInfo> = HashMap::new();
            while let Some(event) = events.next().await {
                match event {
                    WatchEvent::Reset { items, .. } => {
                        candidates = items.into_iter().map(|e| (e.key.path(), info(e))).collect();
                    }
                    WatchEvent::Put(e) => {
                        candidates.insert(e.key.path(), info(e));
                    }
                    WatchEvent::Delete { key, .. } => {
                        candidates.remove(&key.path());
                    }
                    WatchEvent::Invalid(bad) => {
                        candidates.remove(&bad.key);
                    }
                }
                let leader = candidates
                    .values()
                    .min_by_key(|c| c.create_revision)
                    .cloned();
                tx.send_if_modified(|current| {
                    let changed = *current != leader;
                    *current = leader;
                    changed
                });
            }
        });
        LeaderWatch { rx, task }
    }

    /// Campaigns until this candidate leads, then returns the leadership.
    /// The candidate's key lives on a lease of `ttl`; if the process dies,
    /// the next candidate takes over within about `ttl`. Transient etcd
    /// failures are retried; losing the lease ends the campaign with
    /// [`StoreError::LeaseLost`], and another client deleting the
    /// candidate key while the lease lives ends it with
    /// [`StoreError::CandidacyLost`] (the lease is then revoked).
    pub async fn campaign(&self, candidate: Candidate, ttl: Duration) -> Result<Leadership> {
        self.store.check_writer(Prefix::Election)?;
        let lease = self.store.grant_lease(ttl).await?;
        let key = ElectionKey::new(self.name.as_str(), &lease.id().to_string())?;
        let mut txn = Transaction::new();
        txn.put_with_lease(&key, &candidate, lease.id())?
            .require(&key, 0);
        let create_revision = self.store.commit(txn).await?;
        let lease_lost = || StoreError::LeaseLost { id: lease.id().0 };
        let mut backoff = Backoff::new(self.store.options());
        loop {
            if lease.is_lost() {
                return Err(lease_lost());
            }
            let step = tokio::select! {
                r = self.wait_for_turn(&key, create_revision) => r,
                () = lease.lost() => return Err(lease_lost()),
            };
            let failed = match step {
                Ok(Turn::Lead) => break,
                Ok(Turn::Again) => {
                    backoff.reset();
                    continue;
                }
                // Our key is gone: with the lease, or deleted by someone.
                Ok(Turn::KeyGone) => match self.store.lease_alive(lease.id()).await {
                    Ok(false) => return Err(lease_lost()),
                    Ok(true) => {
                        // Nothing of ours left on the lease; free it now.
                        if let Err(e) = lease.revoke().await {
                            tracing::warn!(lease = %lease.id(), error = %e, "campaign: cannot revoke the lease of a deleted candidate key");
                        }
                        return Err(StoreError::CandidacyLost {
                            election: self.name.as_str().to_owned(),
                            key: key.path(),
                        });
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            tracing::warn!(election = %self.name, error = %failed, "campaign: retrying");
            tokio::select! {
                () = sleep(backoff.next_delay()) => {}
                () = lease.lost() => return Err(lease_lost()),
            }
        }
        Ok(Leadership::start(
            self.store.clone(),
            self.name.as_str().to_owned(),
            self.prefix.clone(),
            key,
            create_revision,
            lease,
        ))
    }

    /// One step of a campaign: reads, at one revision, our own key and
    /// the candidate just ahead of it, then waits for a change.
    async fn wait_for_turn(&self, key: &ElectionKey, create_revision: Revision) -> Result<Turn> {
        let path = self.prefix.path();
        let options = GetOptions::new()
            .with_range(prefix_end(path.as_bytes()))
            .with_max_create_revision(create_revision)
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(2)
            .with_keys_only();
        let mut kv = self.store.client().kv_client();
        let resp = self
            .store
            .call("campaign", kv.get(path, Some(options)))
            .await?;
        let own = key.path();
        match resp.kvs().first() {
            Some(kv) if kv.key() == own.as_bytes() && kv.create_revision() == create_revision => {}
            _ => return Ok(Turn::KeyGone),
        }
        let Some(ahead) = resp.kvs().get(1) else {
            return Ok(Turn::Lead);
        };
        // Watch the key just ahead (our turn may have come) and our own
        // (it may be deleted meanwhile), from right after the read.
        let from = resp.header().map_or(0, |h| h.revision()) + 1;
        let watch = |k: Vec<u8>| {
            open_watch(
                &self.store,
                "campaign watch",
                k,
                WatchOptions::new().with_start_revision(from),
            )
        };
        let (_ahead_watcher, mut ahead) = watch(ahead.key().to_vec()).await?;
        let (_own_watcher, mut own) = watch(own.into_bytes()).await?;
        loop {
            let (msg, on_own) = tokio::select! {
                m = ahead.message() => (m, false),
                m = own.message() => (m, true),
            };
            match msg {
                Ok(Some(resp)) => {
                    if resp.compact_revision() > 0 || resp.canceled() {
                        // Lost track; look again.
                        return Ok(Turn::Again);
                    }
                    if resp
                        .events()
                        .iter()
                        .any(|e| e.event_type() == EventType::Delete)
                    {
                        return Ok(if on_own { Turn::KeyGone } else { Turn::Again });
                    }
                }
                Ok(None) => return Ok(Turn::Again),
                Err(e) => return Err(self.store.map_err("campaign watch", e)),
            }
        }
    }
}

/// What one step of a campaign found.
enum Turn {
    /// No candidate is ahead: this one leads.
    Lead,
    /// The candidate ahead went away (or the watch lost track): look again.
    Again,
    /// This candidate's own key is gone.
    KeyGone,
}

fn info(e: crate::store::Entry<ElectionKey>) -> LeaderInfo {
    LeaderInfo {
        key: e.key,
        candidate: e.value,
        create_revision: e.create_revision,
    }
}

/// The current leader of an election, kept up to date.
#[derive(Debug)]
pub struct LeaderWatch {
    rx: watch::Receiver<Option<LeaderInfo>>,
    task: JoinHandle<()>,
}

impl LeaderWatch {
    pub fn current(&self) -> Option<LeaderInfo> {
        self.rx.borrow().clone()
    }

    /// Waits for the next change of leader, then returns the new one.
    /// Returns `None` also if observing stopped.
    pub async fn changed(&mut self) -> Option<LeaderInfo> {
        self.rx.changed().await.ok()?;
        self.current()
    }

    /// The underlying receiver, to `select!` on.
    pub fn receiver(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.rx.clone()
    }
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Held while this candidate leads. Writes that must only happen under
/// leadership go through [`Leadership::commit`] and friends.
///
/// Dropping it stops the lease's keep-alive: the next candidate takes over
/// when the TTL runs out. [`Leadership::resign`] hands over at once.
#[derive(Debug)]
pub struct Leadership {
    store: Store,
    election: String,
    key: ElectionKey,
    create_revision: Revision,
    lease: Lease,
    lost_tx: Arc<watch::Sender<bool>>,
    lost_rx: watch::Receiver<bool>,
    monitor: JoinHandle<()>,
}

impl Leadership {
    fn start(
        store: Store,
        election: String,
        prefix: KeyPrefix<ElectionKey>,
        key: ElectionKey,
        create_revision: Revision,
        lease: Lease,
    ) -> Self {
        let (lost_tx, lost_rx) = watch::channel(false);
        let lost_tx = Arc::new(lost_tx);
        let mut lease_lost = lease.subscribe();
        // Watch our own key too: a revoked lease or a deleted key ends the
        // leadership before the next keep-alive would tell.
        let mut events = store.watch_from(&prefix, create_revision);
        let monitor = {
            let lost_tx = lost_tx.clone();
            let key = key.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = lease_lost.wait_for(|l| *l) => {
                            let _ = r;
                            break;
                        }
                        ev = events.next() => match ev {
                            None => break,
                            Some(WatchEvent::Delete { key: k, .. }) if k == key => break,
                            Some(WatchEvent::Reset { items, .. }) => {
                                let ours = items.iter().any(|e| {
                                    e.key == key && e.create_revision == create_revision
                                });
                                if !ours {
                                    break;
                                }
                            }
                            Some(_) => {}
                        }
                    }
                }
                lost_tx.send_replace(true);
            })
        };
        Leadership {
            store,
            election,
            key,
            create_revision,
            lease,
            lost_tx,
            lost_rx,
            monitor,
        }
    }

    /// This candidate's key.
    pub fn key(&self) -> &ElectionKey {
        &self.key
    }

    /// The create revision the election was won with; it orders terms.
    pub fn create_revision(&self) -> Revision {
        self.create_revision
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether this candidate still believes it leads. Fenced writes check
    /// with etcd regardless.
    pub fn is_leader(&self) -> bool {
        !*self.lost_rx.borrow()
    }

    /// Resolves when leadership is lost (key deleted, lease lost).
    pub async fn lost(&self) {
        let mut rx = self.lost_rx.clone();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// A receiver that turns `true` when leadership is lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.lost_rx.clone()
    }

    fn fence(&self) -> Fence {
        Fence {
            key: self.key.path(),
            create_revision: self.create_revision,
            election: self.election.clone(),
        }
    }

    /// Commits `txn` only while this candidate leads; otherwise fails with
    /// [`StoreError::NotLeader`] and applies nothing.
    pub async fn commit(&self, txn: Transaction) -> Result<Revision> {
        self.writer().commit(txn).await
    }

    /// A fenced put.
    pub async fn put<K: StoreKey>(&self, key: &K, value: &K::Value) -> Result<Revision> {
        self.writer().put(key, value).await
    }

    /// A fenced compare-and-swap put (`expected` 0: create-only).
    pub async fn put_if<K: StoreKey>(
        &self,
        key: &K,
        value: &K::Value,
        expected: Revision,
    ) -> Result<Revision> {
        let mut txn = Transaction::new();
        txn.put_if(key, value, expected)?;
        self.commit(txn).await
    }

    /// A fenced delete.
    pub async fn delete<K: StoreKey>(&self, key: &K) -> Result<Revision> {
        self.writer().delete(key).await
    }

    /// A cloneable handle that writes fenced by this leadership, for the
    /// tasks the leader spawns. It stops working with the leadership.
    pub fn writer(&self) -> FencedWriter {
        FencedWriter {
            store: self.store.clone(),
            fence: self.fence(),
            lost_tx: self.lost_tx.clone(),
            lost_rx: self.lost_rx.clone(),
        }
    }

    /// Steps down at once: deletes the candidate key (waking the next
    /// candidate) and revokes the lease.
    pub async fn resign(self) -> Result<()> {
        self.lost_tx.send_replace(true);
        self.monitor.abort();
        let mut txn = Transaction::new();
        txn.delete(&self.key);
        let deleted = match self.store.commit_fenced(txn, Some(&self.fence())).await {
            Ok(_) | Err(StoreError::NotLeader { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        let revoked = self.lease.revoke().await;
        deleted.and(revoked)
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.monitor.abort();
        self.lost_tx.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ObservedKey;
    use crate::store::StoreOptions;
    use crate::value::{Health, InstanceState, ObservedInstance};

    // The fence is checked by etcd itself: a leader that has not yet
    // noticed its loss (local flag still "leader") is refused all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_refuses_a_stale_leader_that_has_not_noticed() {
        let etcd = tokio::task::block_in_place(lain_testkit::Etcd::start).unwrap();
        let store = Store::connect_with(&[etcd.endpoint()], StoreOptions::default())
            .await
            .unwrap();
        let candidate = Candidate {
            id: "a".into(),
            address: None,
            started_at_ms: 0,
        };
        let leader = store
            .election("deployd")
            .unwrap()
            .campaign(candidate, Duration::from_secs(30))
            .await
            .unwrap();
        let fence = leader.fence();
        store.revoke_lease(leader.lease().id()).await.unwrap();

        let key = ObservedKey::new("hello", "web", "1").unwrap();
        let value = ObservedInstance {
            node: "n1".into(),
            container_id: None,
            generation: 1,
            release: String::new(),
            image: String::new(),
            state: InstanceState::Running,
            health: Health::Unknown,
            address: None,
            restarts: 0,
            started_at_ms: None,
            updated_at_ms: 0,
            message: None,
            instance: 1,
            spec: String::new(),
            recent_restarts_ms: vec![],
            volumes_from: None,
        };
        let mut txn = Transaction::new();
        txn.put(&key, &value).unwrap();
        // Bypasses the local flag on purpose.
        let result = store.commit_fenced(txn, Some(&fence)).await;
        assert!(
            matches!(result, Err(StoreError::NotLeader { ref election }) if election == "deployd"),
            "{result:?}"
        );
        assert!(store.get(&key).await.unwrap().is_none());
    }
}

/// Fenced writes on behalf of a [`Leadership`], cheap to clone into the
/// leader's tasks: every write commits only while the leadership holds.
#[derive(Clone)]
pub struct FencedWriter {
    store: Store,
    fence: Fence,
    lost_tx: Arc<watch::Sender<bool>>,
    lost_rx: watch::Receiver<bool>,
}

impl std::fmt::Debug for FencedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedWriter")
            .field("key", &self.fence.key)
            .field("create_revision", &self.fence.create_revision)
            .finish()
    }
}

impl FencedWriter {
    /// Whether the leadership still holds (as far as this side knows).
    pub fn is_leader(&self) -> bool {
        !*self.lost_rx.borrow()
    }

    /// The store the writes go through, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Like [`Leadership::commit`].
    pub async fn commit(&self, txn: Transaction) -> Result<Revision> {
        if !self.is_leader() {
            return Err(StoreError::NotLeader {
                election: self.fence.election.clone(),
            });
        }
        let result = self.store.commit_fenced(txn, Some(&self.fence)).await;
        if matches!(result, Err(StoreError::NotLeader { .. })) {
            self.lost_tx.send_replace(true);
        }
        result
    }

    /// A fenced put.
    pub async fn put<K: StoreKey>(&self, key: &K, value: &K::Value) -> Result<Revision> {
        let mut txn = Transaction::new();
        txn.put(key, value)?;
        self.commit(txn).await
    }

    /// A fenced delete.
    pub async fn delete<K: StoreKey>(&self, key: &K) -> Result<Revision> {
        let mut txn = Transaction::new();
        txn.delete(key);
        self.commit(txn).await
    }
}
