//! Leader election against a real etcd: handover when the leader's lease
//! dies, fenced writes of a deposed leader, resign and observe.

mod common;

use std::time::Duration;

use common::*;
use lain_store::{Component, ElectionKey, LeaseId, ObservedKey, StoreError, StoreKey, Transaction};

const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handover_when_the_leaders_lease_is_revoked() {
    let etcd = start_etcd();
    let store_a = connect(&etcd).await.as_writer(Component::Deployd);
    let store_b = connect(&etcd).await.as_writer(Component::Deployd);
    let admin = connect(&etcd).await;
    let election_a = store_a.election("deployd").unwrap();
    let election_b = store_b.election("deployd").unwrap();

    let a = within("A to lead", election_a.campaign(candidate("a"), TTL))
        .await
        .unwrap();
    assert!(a.is_leader());
    let leader = election_b.leader().await.unwrap().expect("a leader");
    assert_eq!(leader.candidate.id, "a");
    assert_eq!(&leader.key, a.key());
    assert_eq!(leader.create_revision, a.create_revision());

    let mut observer = admin.election("deployd").unwrap().observe();
    let first = within("the observer to see A", async {
        loop {
            if let Some(l) = observer.current() {
                break l;
            }
            observer.changed().await;
        }
    })
    .await;
    assert_eq!(first.candidate.id, "a");

    // B campaigns and must wait while A leads.
    let b_task = tokio::spawn(async move { election_b.campaign(candidate("b"), TTL).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!b_task.is_finished(), "B must not lead while A does");

    let key = ObservedKey::new("hello", "web", "1").unwrap();
    a.put(&key, &observed("n1", 1)).await.unwrap();

    // A's lease dies from outside (as if its node were partitioned and an
    // operator revoked it): B takes over.
    admin.revoke_lease(a.lease().id()).await.unwrap();
    let b = within("B to lead", b_task).await.unwrap().unwrap();
    assert!(b.is_leader());
    within("A to notice", a.lost()).await;
    assert!(!a.is_leader());

    // The deposed leader's writes are refused; the new leader's apply.
    match a.put(&key, &observed("stale", 2)).await {
        Err(StoreError::NotLeader { election }) => assert_eq!(election, "deployd"),
        other => panic!("a deposed leader's write must fail, got {other:?}"),
    }
    assert_eq!(store_a.get(&key).await.unwrap().unwrap().value.node, "n1");
    b.put(&key, &observed("n2", 2)).await.unwrap();
    assert_eq!(store_b.get(&key).await.unwrap().unwrap().value.node, "n2");

    let now = within("the observer to see B", async {
        loop {
            if let Some(l) = observer.changed().await {
                if l.candidate.id == "b" {
                    break l;
                }
            }
        }
    })
    .await;
    assert_eq!(&now.key, b.key());
    b.resign().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handover_when_the_leaders_keep_alive_stops() {
    let etcd = start_etcd();
    let store_a = connect(&etcd).await;
    let store_b = connect(&etcd).await;
    let a = within(
        "A to lead",
        store_a
            .election("deployd")
            .unwrap()
            .campaign(candidate("a"), TTL),
    )
    .await
    .unwrap();
    let election_b = store_b.election("deployd").unwrap();
    let b_task = tokio::spawn(async move { election_b.campaign(candidate("b"), TTL).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_task.is_finished());

    // A hangs: its keep-alive stops, nothing is revoked.
    a.lease().stop_keep_alive();
    let b = within("B to lead after A's TTL", b_task)
        .await
        .unwrap()
        .unwrap();
    within("A to notice", a.lost()).await;

    let key = ObservedKey::new("hello", "web", "1").unwrap();
    let mut txn = Transaction::new();
    txn.put(&key, &observed("a", 1)).unwrap();
    assert!(matches!(
        a.commit(txn).await,
        Err(StoreError::NotLeader { .. })
    ));
    assert!(store_a.get(&key).await.unwrap().is_none());
    let mut txn = Transaction::new();
    txn.put(&key, &observed("b", 1)).unwrap();
    b.commit(txn).await.unwrap();
    assert_eq!(store_b.get(&key).await.unwrap().unwrap().value.node, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resign_hands_over_at_once_and_candidates_queue_in_order() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let election = store.election("deployd").unwrap();
    let a = within(
        "A to lead",
        election.campaign(candidate("a"), Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let (e_b, e_c) = (election.clone(), election.clone());
    let b_task =
        tokio::spawn(async move { e_b.campaign(candidate("b"), Duration::from_secs(30)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c_task =
        tokio::spawn(async move { e_c.campaign(candidate("c"), Duration::from_secs(30)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // With a 30 s TTL, only resigning can hand over this fast.
    let started = tokio::time::Instant::now();
    a.resign().await.unwrap();
    let b = within("B to lead", b_task).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(election.leader().await.unwrap().unwrap().candidate.id, "b");
    assert!(!c_task.is_finished(), "C queues behind B");
    b.resign().await.unwrap();
    let c = within("C to lead", c_task).await.unwrap().unwrap();
    assert!(c.is_leader());
    c.resign().await.unwrap();
    assert!(election.leader().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_write_of_another_components_prefix_is_refused() {
    let etcd = start_etcd();
    let store = connect(&etcd).await.as_writer(Component::Deployd);
    let leader = store
        .election("deployd")
        .unwrap()
        .campaign(candidate("a"), TTL)
        .await
        .unwrap();
    let desired_key = lain_store::DesiredKey::new("hello", "web").unwrap();
    assert!(matches!(
        leader.put(&desired_key, &desired("hello", "web", 1)).await,
        Err(StoreError::NotWriter { .. })
    ));
    // Console cannot campaign in deployd's election.
    let console = store.as_writer(Component::Console);
    assert!(matches!(
        console
            .election("deployd")
            .unwrap()
            .campaign(candidate("x"), TTL)
            .await,
        Err(StoreError::NotWriter { .. })
    ));
    assert!(store.election("bad/name").is_err());
    leader.resign().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_candidate_whose_key_is_deleted_by_another_client_is_told_so() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let admin = connect(&etcd).await;
    let election = store.election("deployd").unwrap();
    let a = within(
        "A to lead",
        election.campaign(candidate("a"), Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let (b_task, b_key) = queue_behind(&election, &admin, "b").await;

    // While A still leads, someone deletes B's key; B's lease lives on.
    let deleted = tokio::time::Instant::now();
    assert!(admin.delete(&b_key).await.unwrap());
    let result = within("B's campaign to end", b_task).await.unwrap();
    assert!(
        deleted.elapsed() < Duration::from_secs(2),
        "B noticed only after {:?}",
        deleted.elapsed()
    );
    match result {
        Err(e @ StoreError::CandidacyLost { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&b_key.path()), "{text}");
            assert!(text.contains("deleted by another client"), "{text}");
        }
        other => panic!("expected CandidacyLost, got {other:?}"),
    }
    // B's lease was revoked with its candidacy; A leads on.
    let leases = etcd.etcdctl(&["lease", "list"]).unwrap();
    assert!(leases.contains("found 1 leases"), "{leases}");
    assert!(a.is_leader());
    assert_eq!(election.leader().await.unwrap().unwrap().candidate.id, "a");
    a.resign().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_candidate_whose_lease_is_revoked_reports_the_lease_lost() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let admin = connect(&etcd).await;
    let election = store.election("deployd").unwrap();
    let a = within(
        "A to lead",
        election.campaign(candidate("a"), Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let (b_task, b_key) = queue_behind(&election, &admin, "b").await;
    let b_lease = i64::from_str_radix(b_key.candidate(), 16).unwrap();
    admin.revoke_lease(LeaseId(b_lease)).await.unwrap();
    match within("B's campaign to end", b_task).await.unwrap() {
        Err(StoreError::LeaseLost { id }) => assert_eq!(id, b_lease),
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    assert!(a.is_leader());
    a.resign().await.unwrap();
}

/// Starts candidate `id` campaigning behind the current leader and returns
/// its task and candidate key once it waits.
async fn queue_behind(
    election: &lain_store::Election,
    admin: &lain_store::Store,
    id: &str,
) -> (
    tokio::task::JoinHandle<lain_store::Result<lain_store::Leadership>>,
    ElectionKey,
) {
    let e = election.clone();
    let c = candidate(id);
    let task = tokio::spawn(async move { e.campaign(c, Duration::from_secs(30)).await });
    let prefix = ElectionKey::of_election(election.name()).unwrap();
    let key = within("the candidate key", async {
        loop {
            let listing = admin.list(&prefix).await.unwrap();
            if let Some(e) = listing.items.iter().find(|e| e.value.id == id) {
                break e.key.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Let it read its turn and start waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished());
    (task, key)
}
