//! Compare-and-swap and multi-key transactions against a real etcd.

mod common;

use std::sync::Arc;

use common::*;
use lain_store::{DesiredKey, StoreError, Transaction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_and_revision_checks() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let key = DesiredKey::new("hello", "web").unwrap();

    let created = store
        .put_if(&key, &desired("hello", "web", 1), 0)
        .await
        .unwrap();
    match store.put_if(&key, &desired("hello", "web", 9), 0).await {
        Err(StoreError::Conflict {
            key: k,
            expected: 0,
            current,
        }) => {
            assert_eq!(k, "/lain/desired/hello/web");
            assert_eq!(current, created);
        }
        other => panic!("create-only on an existing key must conflict, got {other:?}"),
    }
    assert_eq!(store.get(&key).await.unwrap().unwrap().value.generation, 1);

    let updated = store
        .put_if(&key, &desired("hello", "web", 2), created)
        .await
        .unwrap();
    assert!(updated > created);
    // The old revision is stale now.
    assert!(matches!(
        store.put_if(&key, &desired("hello", "web", 3), created).await,
        Err(StoreError::Conflict { current, .. }) if current == updated
    ));
    assert!(matches!(
        store.delete_if(&key, created).await,
        Err(StoreError::Conflict { current, .. }) if current == updated
    ));
    assert!(store.get(&key).await.unwrap().is_some());
    store.delete_if(&key, updated).await.unwrap();
    assert!(store.get(&key).await.unwrap().is_none());
    // A deleted key reads as revision 0 in a conflict.
    assert!(matches!(
        store
            .put_if(&key, &desired("hello", "web", 4), updated)
            .await,
        Err(StoreError::Conflict { current: 0, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_with_the_same_revision_exactly_one_wins() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let other = connect(&etcd).await;
    let key = DesiredKey::new("hello", "web").unwrap();
    let base = store.put(&key, &desired("hello", "web", 1)).await.unwrap();

    for round in 0..5u64 {
        let current = store.get(&key).await.unwrap().unwrap().mod_revision;
        let (va, vb) = (
            desired("hello", "web", 100 + round),
            desired("hello", "web", 200 + round),
        );
        let (a, b) = tokio::join!(
            store.put_if(&key, &va, current),
            other.put_if(&key, &vb, current),
        );
        let (winner, loser) = match (a, b) {
            (Ok(w), Err(l)) => (w, l),
            (Err(l), Ok(w)) => (w, l),
            (a, b) => panic!("exactly one writer must win: {a:?} / {b:?}"),
        };
        match loser {
            StoreError::Conflict {
                expected,
                current: seen,
                ..
            } => {
                assert_eq!(expected, current);
                assert_eq!(seen, winner);
            }
            e => panic!("the loser must see a conflict, got {e:?}"),
        }
    }
    assert!(store.get(&key).await.unwrap().unwrap().mod_revision > base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_modify_write_loops_lose_no_update() {
    let etcd = start_etcd();
    let store = Arc::new(connect(&etcd).await);
    let key = DesiredKey::new("counter", "web").unwrap();
    store
        .put(&key, &desired("counter", "web", 0))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..10 {
                loop {
                    let entry = store.get(&key).await.unwrap().unwrap();
                    let mut value = entry.value;
                    value.generation += 1;
                    match store.put_if(&key, &value, entry.mod_revision).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for t in tasks {
        within("a writer", t).await.unwrap();
    }
    assert_eq!(store.get(&key).await.unwrap().unwrap().value.generation, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_apply_all_or_nothing() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let web = DesiredKey::new("hello", "web").unwrap();
    let worker = DesiredKey::new("hello", "worker").unwrap();
    let old = DesiredKey::new("hello", "old").unwrap();
    store.put(&old, &desired("hello", "old", 1)).await.unwrap();
    let web_rev = store.put(&web, &desired("hello", "web", 1)).await.unwrap();
    store.put(&web, &desired("hello", "web", 1)).await.unwrap(); // web_rev is stale now

    // A stale condition on one key: nothing of the transaction applies.
    let mut txn = Transaction::new();
    txn.put_if(&web, &desired("hello", "web", 2), web_rev)
        .unwrap()
        .put(&worker, &desired("hello", "worker", 2))
        .unwrap()
        .delete(&old);
    match store.commit(txn).await {
        Err(StoreError::Conflict { key, expected, .. }) => {
            assert_eq!(
                (key.as_str(), expected),
                ("/lain/desired/hello/web", web_rev)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.get(&worker).await.unwrap().is_none());
    assert!(store.get(&old).await.unwrap().is_some());

    // With current revisions the whole set lands at one revision.
    let current = store.get(&web).await.unwrap().unwrap().mod_revision;
    let mut txn = Transaction::new();
    txn.put_if(&web, &desired("hello", "web", 2), current)
        .unwrap()
        .put_if(&worker, &desired("hello", "worker", 2), 0)
        .unwrap()
        .delete(&old);
    assert!(!txn.is_empty());
    let rev = store.commit(txn).await.unwrap();
    let listing = store
        .list(&DesiredKey::of_app("hello").unwrap())
        .await
        .unwrap();
    assert_eq!(listing.items.len(), 2);
    for e in &listing.items {
        assert_eq!((e.mod_revision, e.value.generation), (rev, 2));
    }

    // A pure condition without writes reports the key it failed on.
    let mut txn = Transaction::new();
    txn.require(&web, rev).require(&old, 5);
    assert!(matches!(
        store.commit(txn).await,
        Err(StoreError::Conflict { key, current: 0, .. }) if key == "/lain/desired/hello/old"
    ));
}
