//! List-then-watch against a real etcd: snapshot and events, re-listing
//! after compaction, and resuming after etcd is killed and restarted.

mod common;

use std::time::Duration;

use common::*;
use lain_store::watch::BUFFER;
use lain_store::{DesiredKey, ObservedKey, StoreKey, StoreOptions, Transaction, WatchEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_events() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let web = DesiredKey::new("a", "web").unwrap();
    let worker = DesiredKey::new("a", "worker").unwrap();
    store.put(&web, &desired("a", "web", 1)).await.unwrap();
    store
        .put(&worker, &desired("a", "worker", 1))
        .await
        .unwrap();
    let before = store
        .put(
            &DesiredKey::new("b", "web").unwrap(),
            &desired("b", "web", 1),
        )
        .await
        .unwrap();

    let mut watch = store.watch(&DesiredKey::of_app("a").unwrap());
    match next_event(&mut watch).await {
        WatchEvent::Reset {
            items,
            invalid,
            revision,
        } => {
            assert_eq!(revision, before);
            assert!(invalid.is_empty());
            let keys: Vec<_> = items.iter().map(|e| e.key.clone()).collect();
            assert_eq!(keys, vec![web.clone(), worker.clone()]);
        }
        e => panic!("expected a snapshot first, got {e:?}"),
    }
    let mut connection = watch.connection();
    within("the watch to connect", connection.wait_for(|c| *c))
        .await
        .unwrap();

    let put = store.put(&web, &desired("a", "web", 2)).await.unwrap();
    store
        .put(
            &DesiredKey::new("b", "web").unwrap(),
            &desired("b", "web", 2),
        )
        .await
        .unwrap();
    store.delete(&worker).await.unwrap();
    etcd.etcdctl(&["put", "/lain/desired/a/broken", "{garbage"])
        .unwrap();
    let mut txn = Transaction::new();
    txn.put(&DesiredKey::new("a", "x").unwrap(), &desired("a", "x", 3))
        .unwrap();
    txn.put(&DesiredKey::new("a", "y").unwrap(), &desired("a", "y", 3))
        .unwrap();
    let txn_rev = store.commit(txn).await.unwrap();

    match next_event(&mut watch).await {
        WatchEvent::Put(e) => {
            assert_eq!(
                (e.key, e.value.generation, e.mod_revision),
                (web.clone(), 2, put)
            );
        }
        e => panic!("expected the put, got {e:?}"),
    }
    match next_event(&mut watch).await {
        WatchEvent::Delete { key, revision } => {
            assert_eq!(key, worker);
            assert!(revision > put);
        }
        e => panic!("expected the delete (and not app b's put), got {e:?}"),
    }
    match next_event(&mut watch).await {
        WatchEvent::Invalid(bad) => assert_eq!(bad.key, "/lain/desired/a/broken"),
        e => panic!("expected the invalid put, got {e:?}"),
    }
    for proc in ["x", "y"] {
        match next_event(&mut watch).await {
            WatchEvent::Put(e) => {
                assert_eq!((e.key.proc(), e.mod_revision), (proc, txn_rev));
            }
            e => panic!("expected the transaction's puts, got {e:?}"),
        }
    }
    // Nothing else is pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_compacted_revision_relists() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let prefix = ObservedKey::of_proc("a", "web").unwrap();
    let first = ObservedKey::new("a", "web", "1").unwrap();
    let old = store.put(&first, &observed("n1", 1)).await.unwrap();

    // Many revisions after `old`, then compaction of that history.
    for i in 0..50 {
        let key = ObservedKey::new("a", "web", &format!("{}", i % 5 + 2)).unwrap();
        store.put(&key, &observed("n1", i)).await.unwrap();
    }
    store
        .delete(&ObservedKey::new("a", "web", "6").unwrap())
        .await
        .unwrap();
    let now = store.current_revision().await.unwrap();
    store.compact(now).await.unwrap();

    // A consumer that knew the state at `old` asks for what came next.
    let mut watch = store.watch_from(&prefix, old + 1);
    let expected = store.list(&prefix).await.unwrap();
    match next_event(&mut watch).await {
        WatchEvent::Reset {
            items, revision, ..
        } => {
            assert!(revision >= now);
            assert_eq!(items, expected.items, "the reset carries the current state");
            assert_eq!(items.len(), 5);
        }
        e => panic!("expected a reset after compaction, got {e:?}"),
    }
    // And it goes on with ordinary events.
    let rev = store.put(&first, &observed("n2", 99)).await.unwrap();
    match next_event(&mut watch).await {
        WatchEvent::Put(e) => assert_eq!((e.key, e.mod_revision), (first, rev)),
        e => panic!("expected a put, got {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_an_uncompacted_revision_replays_history() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let key = ObservedKey::new("a", "web", "1").unwrap();
    let r1 = store.put(&key, &observed("n1", 1)).await.unwrap();
    let r2 = store.put(&key, &observed("n1", 2)).await.unwrap();
    let mut watch = store.watch_from(&ObservedKey::of_app("a").unwrap(), r1 + 1);
    match next_event(&mut watch).await {
        WatchEvent::Put(e) => assert_eq!((e.mod_revision, e.value.generation), (r2, 2)),
        e => panic!("expected the replayed put, got {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_etcd_restart_without_losing_or_repeating_events() {
    let mut etcd = start_etcd();
    let store = connect(&etcd).await;
    let prefix = ObservedKey::of_app("a").unwrap();
    let mut watch = store.watch(&prefix);
    let mut model = Model::default();
    model.apply(next_event(&mut watch).await);

    let mut written = Vec::new();
    for i in 0..5u64 {
        let key = ObservedKey::new("a", "web", &i.to_string()).unwrap();
        written.push(store.put(&key, &observed("n1", i)).await.unwrap());
    }

    kill_and_restart(&mut etcd);

    // Written while the watch may still be reconnecting, then after.
    for i in 5..15u64 {
        let key = ObservedKey::new("a", "web", &(i % 8).to_string()).unwrap();
        let rev = within("a put after restart", async {
            loop {
                match store.put(&key, &observed("n1", i)).await {
                    Ok(rev) => break rev,
                    Err(e) if e.is_transient() => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await;
        written.push(rev);
    }

    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let event = next_event(&mut watch).await;
        match &event {
            WatchEvent::Put(e) => seen.push(e.mod_revision),
            e => panic!("expected only puts (history was not compacted), got {e:?}"),
        }
        model.apply(event);
    }
    assert_eq!(seen, written, "every event exactly once, in order");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err()
    );
    assert!(watch.is_connected());
    assert_eq!(model.values().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relists_when_history_was_compacted_while_disconnected() {
    let mut etcd = start_etcd();
    // A long first backoff keeps the watch away while we write and compact.
    let slow = StoreOptions {
        backoff_min: Duration::from_secs(5),
        backoff_max: Duration::from_secs(5),
        ..options()
    };
    let watcher_store = connect_with(&etcd, slow).await;
    let prefix = ObservedKey::of_app("a").unwrap();
    let kept = ObservedKey::new("a", "web", "1").unwrap();
    let gone = ObservedKey::new("a", "web", "2").unwrap();
    let writer = connect(&etcd).await;
    writer.put(&kept, &observed("n1", 1)).await.unwrap();
    writer.put(&gone, &observed("n1", 1)).await.unwrap();

    let mut watch = watcher_store.watch(&prefix);
    let mut model = Model::default();
    model.apply(next_event(&mut watch).await);
    assert_eq!(model.items.len(), 2);

    kill_and_restart(&mut etcd);
    let mut connection = watch.connection();
    within("the watch to notice", connection.wait_for(|c| !*c))
        .await
        .unwrap();

    let writer = connect(&etcd).await;
    writer.put(&kept, &observed("n1", 2)).await.unwrap();
    writer.delete(&gone).await.unwrap();
    let added = ObservedKey::new("a", "web", "3").unwrap();
    writer.put(&added, &observed("n1", 2)).await.unwrap();
    let now = writer.current_revision().await.unwrap();
    writer.compact(now).await.unwrap();
    assert!(
        !watch.is_connected(),
        "the watch reconnected before the compaction"
    );

    match next_event(&mut watch).await {
        WatchEvent::Reset {
            items, revision, ..
        } => {
            assert!(revision >= now);
            let keys: Vec<_> = items.iter().map(|e| e.key.clone()).collect();
            assert_eq!(keys, vec![kept.clone(), added]);
            assert_eq!(items[0].value.generation, 2);
        }
        e => panic!("expected a reset, got {e:?}"),
    }
    let rev = writer.put(&kept, &observed("n1", 3)).await.unwrap();
    match next_event(&mut watch).await {
        WatchEvent::Put(e) => assert_eq!(e.mod_revision, rev),
        e => panic!("expected a put after the reset, got {e:?}"),
    }
}

// Stalled consumers must not stall the connection their store shares
// with every other request and keep-alive: unread HTTP/2 data holds the
// connection's flow-control window (5 MiB, 2 MiB per stream), so three
// stalled streams with megabytes pending used to stop it dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_consumers_get_a_reset_and_do_not_hold_up_the_connection() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let writer = connect(&etcd).await;
    let prefix = ObservedKey::of_app("big").unwrap();
    let mut watches = Vec::new();
    for _ in 0..3 {
        let mut watch = store.watch(&prefix);
        let mut model = Model::<ObservedKey>::default();
        model.apply(next_event(&mut watch).await);
        let mut connection = watch.connection();
        within("the watch to connect", connection.wait_for(|c| *c))
            .await
            .unwrap();
        watches.push((watch, model));
    }
    let ttl = Duration::from_secs(2);
    let granted = tokio::time::Instant::now();
    let lease = store.grant_lease(ttl).await.unwrap();

    // Nobody reads while far more events than a watch buffers, 8 MB per
    // watch, are written.
    let mut value = observed("n1", 0);
    value.message = Some("x".repeat(25_000));
    let writes = 400u64;
    assert!(writes as usize > BUFFER);
    for i in 0..writes {
        let key = ObservedKey::new("big", "web", &format!("{}", i % 50)).unwrap();
        value.generation = i;
        if i % 7 == 3 {
            writer.delete(&key).await.unwrap();
        } else {
            writer.put(&key, &value).await.unwrap();
        }
    }

    // Requests and keep-alives on the same connection still get answers,
    // for longer than the lease's TTL.
    let key = ObservedKey::new("big", "web", "0").unwrap();
    let until = (granted + ttl + Duration::from_millis(300))
        .max(tokio::time::Instant::now() + Duration::from_millis(500));
    while tokio::time::Instant::now() < until {
        let asked = tokio::time::Instant::now();
        let got = store.get(&key).await;
        assert!(got.is_ok(), "{got:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!lease.is_lost(), "the lease's keep-alive was held up");

    // Reading again, each consumer gets what was buffered, then a reset in
    // place of the rest, and converges.
    let last = writer.current_revision().await.unwrap();
    let truth: std::collections::BTreeMap<_, _> = store
        .list(&prefix)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.key.path(), e.value))
        .collect();
    for (watch, model) in &mut watches {
        let mut before_reset = 0;
        while model.resets < 2 {
            let event = next_event(watch).await;
            if !matches!(event, WatchEvent::Reset { .. }) {
                before_reset += 1;
            }
            model.apply(event);
        }
        assert!(
            before_reset <= BUFFER,
            "{before_reset} events before the reset"
        );
        assert!(model.revision >= last, "the reset is older than the writes");
        assert_eq!(model.values(), truth);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), watch.next())
                .await
                .is_err(),
            "nothing else is pending"
        );
    }
    lease.revoke().await.unwrap();
}
