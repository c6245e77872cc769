//! get, put, delete, list, decoding and writer rules against a real etcd.

mod common;

use common::*;
use lain_store::{
    ClusterConfig, ClusterConfigKey, Component, DecodeError, DesiredKey, EntryError, KeyPrefix,
    NodeKey, ObservedKey, Prefix, RouterKey, Store, StoreError, StoreOptions, Transaction,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_put_delete_list() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;

    let web = DesiredKey::new("hello", "web").unwrap();
    assert!(store.get(&web).await.unwrap().is_none());

    let rev1 = store.put(&web, &desired("hello", "web", 1)).await.unwrap();
    let got = store.get(&web).await.unwrap().expect("written");
    assert_eq!(got.key, web);
    assert_eq!(got.value, desired("hello", "web", 1));
    assert_eq!(got.mod_revision, rev1);
    assert_eq!(got.create_revision, rev1);
    assert_eq!(got.lease, None);

    let rev2 = store.put(&web, &desired("hello", "web", 2)).await.unwrap();
    assert!(rev2 > rev1);
    let got = store.get(&web).await.unwrap().unwrap();
    assert_eq!(
        (got.value.generation, got.mod_revision, got.create_revision),
        (2, rev2, rev1)
    );

    // The raw bytes carry the schema version.
    let raw = etcd
        .etcdctl(&["get", "/lain/desired/hello/web", "--print-value-only"])
        .unwrap();
    assert!(raw.contains("\"schema_version\":1"), "{raw}");

    let worker = DesiredKey::new("hello", "worker").unwrap();
    let other = DesiredKey::new("hellox", "web").unwrap();
    store
        .put(&worker, &desired("hello", "worker", 2))
        .await
        .unwrap();
    let last = store
        .put(&other, &desired("hellox", "web", 1))
        .await
        .unwrap();

    let listing = store
        .list(&DesiredKey::of_app("hello").unwrap())
        .await
        .unwrap();
    let keys: Vec<_> = listing.items.iter().map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        vec![web.clone(), worker.clone()],
        "app prefix must not match hellox"
    );
    assert!(listing.invalid.is_empty());
    assert_eq!(listing.revision, last);
    assert_eq!(
        store
            .list(&KeyPrefix::<DesiredKey>::all())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    assert!(store.delete(&worker).await.unwrap());
    assert!(!store.delete(&worker).await.unwrap());
    assert!(store.get(&worker).await.unwrap().is_none());
    assert_eq!(
        store
            .list(&DesiredKey::of_app("hello").unwrap())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    assert_eq!(
        store
            .delete_prefix(&KeyPrefix::<DesiredKey>::all())
            .await
            .unwrap(),
        2
    );
    assert!(store
        .list(&KeyPrefix::<DesiredKey>::all())
        .await
        .unwrap()
        .items
        .is_empty());

    // The singleton config key.
    let config = ClusterConfig {
        name: "local".into(),
        domain: "lain.local".into(),
        extra_domains: vec![],
        registry: "127.0.0.1:5000".into(),
        registry_insecure: true,
        node_lost_after_ms: 3000,
    };
    store.put(&ClusterConfigKey, &config).await.unwrap();
    assert_eq!(
        store.get(&ClusterConfigKey).await.unwrap().unwrap().value,
        config
    );
    assert!(store.current_revision().await.unwrap() > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_newer_values_are_typed_errors() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let good = ObservedKey::new("a", "web", "1").unwrap();
    store.put(&good, &observed("n1", 1)).await.unwrap();
    etcd.etcdctl(&["put", "/lain/observed/a/web/2", "not json"])
        .unwrap();
    etcd.etcdctl(&[
        "put",
        "/lain/observed/a/web/3",
        r#"{"schema_version":99,"node":"n1"}"#,
    ])
    .unwrap();
    etcd.etcdctl(&["put", "/lain/observed/a/web/4/extra", r#"{}"#])
        .unwrap();

    let bad = ObservedKey::new("a", "web", "2").unwrap();
    match store.get(&bad).await {
        Err(StoreError::Decode {
            key,
            error: DecodeError::NotJson(_),
        }) => {
            assert_eq!(key, "/lain/observed/a/web/2")
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let newer = ObservedKey::new("a", "web", "3").unwrap();
    match store.get(&newer).await {
        Err(
            e @ StoreError::Decode {
                error: DecodeError::TooNew { found: 99, .. },
                ..
            },
        ) => {
            assert!(e.to_string().contains("upgrade this component"), "{e}");
        }
        other => panic!("expected TooNew, got {other:?}"),
    }

    // One bad writer does not blind the listing: bad entries are reported.
    let listing = store
        .list(&ObservedKey::of_app("a").unwrap())
        .await
        .unwrap();
    assert_eq!(listing.items.len(), 1);
    assert_eq!(listing.items[0].key, good);
    let mut invalid: Vec<_> = listing
        .invalid
        .iter()
        .map(|i| (i.key.as_str(), &i.error))
        .collect();
    invalid.sort_by_key(|(k, _)| *k);
    assert_eq!(invalid.len(), 3);
    assert!(matches!(
        invalid[0],
        (
            "/lain/observed/a/web/2",
            EntryError::Decode(DecodeError::NotJson(_))
        )
    ));
    assert!(matches!(
        invalid[1],
        (
            "/lain/observed/a/web/3",
            EntryError::Decode(DecodeError::TooNew { .. })
        )
    ));
    assert!(matches!(
        invalid[2],
        ("/lain/observed/a/web/4/extra", EntryError::Key(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_are_confined_to_their_prefixes() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    let webrouter = store.as_writer(Component::Webrouter);
    let web = DesiredKey::new("hello", "web").unwrap();
    match webrouter.put(&web, &desired("hello", "web", 1)).await {
        Err(StoreError::NotWriter {
            component,
            prefix,
            writer,
        }) => {
            assert_eq!(
                (component, prefix, writer),
                (Component::Webrouter, Prefix::Desired, Component::Console)
            );
        }
        other => panic!("expected NotWriter, got {other:?}"),
    }
    let mut txn = Transaction::new();
    txn.put(&RouterKey::new("r1").unwrap(), &router(1)).unwrap();
    txn.delete(&web);
    assert!(matches!(
        webrouter.commit(txn).await,
        Err(StoreError::NotWriter { .. })
    ));
    assert!(matches!(
        webrouter.delete(&NodeKey::new("n1").unwrap()).await,
        Err(StoreError::NotWriter { .. })
    ));
    assert!(store.get(&web).await.unwrap().is_none());

    webrouter
        .put(&RouterKey::new("r1").unwrap(), &router(1))
        .await
        .unwrap();
    let console = store.as_writer(Component::Console);
    console
        .put(&web, &desired("hello", "web", 1))
        .await
        .unwrap();
    assert_eq!(console.writer(), Some(Component::Console));
    assert_eq!(store.writer(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_large_prefixes() {
    let etcd = start_etcd();
    let store = connect(&etcd).await;
    // More keys than one list page (1000), written 100 per transaction.
    let total = 2500;
    for chunk in 0..total / 100 {
        let mut txn = Transaction::new();
        for i in 0..100 {
            let n = chunk * 100 + i;
            txn.put(
                &ObservedKey::new("big", "web", &format!("{n:05}")).unwrap(),
                &observed("n1", n),
            )
            .unwrap();
        }
        store.commit(txn).await.unwrap();
    }
    store
        .put(
            &ObservedKey::new("bigger", "web", "0").unwrap(),
            &observed("n1", 0),
        )
        .await
        .unwrap();
    let listing = within("listing", store.list(&ObservedKey::of_app("big").unwrap()))
        .await
        .unwrap();
    assert_eq!(listing.items.len(), total as usize);
    for (i, e) in listing.items.iter().enumerate() {
        assert_eq!(e.key.instance(), format!("{i:05}"));
        assert_eq!(e.value.generation, i as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_name_the_endpoint() {
    let port = lain_testkit::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let err = within(
        "connect to nothing",
        Store::connect_with(&[endpoint.as_str()], options()),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(err.is_transient(), "{err:?}");
    assert!(text.contains(&endpoint), "{text}");
    assert!(text.contains("is etcd running"), "{text}");

    let err = Store::connect_with(&["https://127.0.0.1:1"], StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadEndpoint { .. }), "{err:?}");
    let none: [&str; 0] = [];
    assert!(matches!(
        Store::connect(&none).await,
        Err(StoreError::BadEndpoint { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_clearly_while_etcd_is_down() {
    let mut etcd = start_etcd();
    let store = connect(&etcd).await;
    let key = NodeKey::new("n1").unwrap();
    tokio::task::block_in_place(|| etcd.kill());
    let err = within("a get against a dead etcd", store.get(&key))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&etcd.endpoint()), "{err}");
    tokio::task::block_in_place(|| etcd.restart().unwrap());
    // The same handle works again once etcd is back.
    eventually("the store to reconnect", WAIT, || async {
        store.get(&key).await.is_ok()
    })
    .await;
}
