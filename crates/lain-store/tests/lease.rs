//! Leases against a real etcd: keep-alive, expiry when it stops, revoke,
//! and loss noticed by the holder.

mod common;

use std::time::Duration;

use common::*;
use lain_store::{RouterKey, StoreError, WatchEvent};
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_past_its_ttl_then_expires_when_the_keep_alive_stops() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let lease = store.grant_lease(TTL).await.unwrap();
    assert!(lease.ttl() >= TTL);
    let key = RouterKey::new("r1").unwrap();
    store
        .put_with_lease(&key, &router(7), lease.id())
        .await
        .unwrap();
    let entry = store.get(&key).await.unwrap().unwrap();
    assert_eq!(entry.lease, Some(lease.id()));

    // The keep-alive renews it well past its TTL.
    tokio::time::sleep(lease.ttl() * 2 + Duration::from_millis(500)).await;
    assert!(store.get(&key).await.unwrap().is_some(), "kept alive");
    assert!(!lease.is_lost());

    let mut watch = store.watch(&lain_store::KeyPrefix::<RouterKey>::all());
    assert!(
        matches!(next_event(&mut watch).await, WatchEvent::Reset { items, .. } if items.len() == 1)
    );

    // Crash simulation: renewals stop, nothing is revoked.
    let stopped = Instant::now();
    lease.stop_keep_alive();
    within("the holder to notice the loss", lease.lost()).await;
    assert!(lease.is_lost());
    match next_event(&mut watch).await {
        WatchEvent::Delete { key: k, .. } => assert_eq!(k, key),
        e => panic!("expected the leased key to be deleted, got {e:?}"),
    }
    let gone_after = stopped.elapsed();
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(
        gone_after <= lease.ttl() + Duration::from_secs(3),
        "{gone_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_lets_the_lease_expire() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let lease = store.grant_lease(TTL).await.unwrap();
    let key = RouterKey::new("r1").unwrap();
    store
        .put_with_lease(&key, &router(1), lease.id())
        .await
        .unwrap();
    let lost = lease.subscribe();
    drop(lease);
    let mut lost = lost;
    within("the lease to be reported lost", lost.wait_for(|l| *l))
        .await
        .ok();
    eventually("the leased key to vanish", WAIT, || async {
        store.get(&key).await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_removes_keys_at_once() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    let key = RouterKey::new("r1").unwrap();
    store
        .put_with_lease(&key, &router(1), lease.id())
        .await
        .unwrap();
    lease.revoke().await.unwrap();
    assert!(lease.is_lost());
    assert!(store.get(&key).await.unwrap().is_none());
    // Putting with a dead lease is refused by etcd.
    match store.put_with_lease(&key, &router(2), lease.id()).await {
        Err(StoreError::Etcd { detail, .. }) => {
            assert!(detail.contains("lease not found"), "{detail}")
        }
        other => panic!("expected etcd to refuse the lease, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_revoked_elsewhere_is_noticed_by_its_holder() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let admin = connect(&etcd).await;
    let lease = store.grant_lease(Duration::from_secs(3)).await.unwrap();
    admin.revoke_lease(lease.id()).await.unwrap();
    // The next renewal (at TTL/3) learns the lease is gone.
    within("the holder to notice", lease.lost()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_short_etcd_restart() {
    let mut etcd = start_etcd();
    let store = connect(&etcd).await;
    let lease = store.grant_lease(Duration::from_secs(3)).await.unwrap();
    let key = RouterKey::new("r1").unwrap();
    store
        .put_with_lease(&key, &router(1), lease.id())
        .await
        .unwrap();
    kill_and_restart(&mut etcd);
    // etcd restores leases with a fresh TTL; the keep-alive reconnects.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!lease.is_lost());
    assert!(store.get(&key).await.unwrap().is_some());
    lease.revoke().await.unwrap();
}
