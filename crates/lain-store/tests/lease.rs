//! Leases against a real etcd: keep-alive, expiry when it stops, revoke,
//! and loss noticed by the holder.

mod common;

use std::time::Duration;

use common::*;
use lain_store::{RouterKey, StoreError, StoreOptions, WatchEvent};
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
    tokio::time::sleep(lease.ttl() + Duration::from_millis(500)).await;
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
    // The holder gives up before etcd expires the lease, not after.
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "the key vanished before the holder reported the loss"
    );
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
    let revoked = Instant::now();
    admin.revoke_lease(lease.id()).await.unwrap();
    // The next renewal (at TTL/3) learns the lease is gone, long before
    // the TTL would have run out.
    within("the holder to notice", lease.lost()).await;
    let noticed = revoked.elapsed();
    assert!(
        noticed < lease.ttl() / 3 + Duration::from_millis(500),
        "noticed {noticed:?} after the revoke; TTL {:?}",
        lease.ttl()
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_is_reported_within_the_ttl_when_etcd_dies() {
    let mut etcd = start_etcd();
    // Retry backoff longer than the TTL: retrying must not push the report
    // past the moment etcd itself would expire the lease.
    let slow = StoreOptions {
        backoff_min: Duration::from_secs(3),
        backoff_max: Duration::from_secs(3),
        ..options()
    };
    let store = connect_with(&etcd, slow).await;
    let lease = store.grant_lease(TTL).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!lease.is_lost());

    let before_kill = Instant::now();
    tokio::task::block_in_place(|| etcd.kill());
    // No renewal can succeed after this point.
    let killed = Instant::now();
    within("the holder to notice the loss", lease.lost()).await;
    let reported = Instant::now();
    assert!(
        reported - killed <= lease.ttl(),
        "lost reported {:?} after the last possible renewal; TTL {:?}",
        reported - killed,
        lease.ttl()
    );
    // Not given up at the first failed renewal either.
    assert!(
        reported - before_kill >= lease.ttl() / 2,
        "lost reported only {:?} after etcd died",
        reported - before_kill
    );
}
