//! Sealing every secret again under the current secrets key, after a
//! rotation (docs/operations.md, "Rotate the cluster secrets key").
//!
//! When console starts with `retired_secrets_key_files`, it re-seals in
//! the background what a retired key sealed: the secret versions in its
//! database at once, then, once connected to etcd, the secret values and TLS
//! private keys under `/lain/secrets/` and `/lain/certs/` (console is
//! their only writer). Every write is conditional on the value as read,
//! so a concurrent change wins and the next start picks up the rest; it
//! is safe to run again. Its last log line says whether anything is still
//! sealed under a retired key, i.e. whether the retired keys may go.

use lain_store::secret::{reseal, SecretsKey};
use lain_store::value::SealedSecret;
use lain_store::{CertKey, KeyPrefix, SecretKey, Store, StoreError, StoreKey};

use crate::db::{Db, DbError, Resealed};

/// Re-seals the database's stale secret versions; logs what it did.
pub async fn database(db: &Db) -> Result<Resealed, DbError> {
    let done = db.secrets().reseal_stale().await?;
    for f in &done.failed {
        tracing::error!(secret = %f, "cannot re-seal a secret version in the database: it opens with neither the current nor a retired key; set the secret again (`lain secret set`)");
    }
    tracing::info!(
        resealed = done.resealed,
        failed = done.failed.len(),
        key_id = db.secrets_key().id(),
        "secret versions in the database re-sealed under the current secrets key"
    );
    Ok(done)
}

/// Re-seals the stale sealed values in etcd; logs what it did.
pub async fn etcd(store: &Store, key: &SecretsKey) -> Result<Resealed, StoreError> {
    let mut done = Resealed::default();
    reseal_prefix::<SecretKey>(store, key, |v| &mut v.value, &mut done).await?;
    reseal_prefix::<CertKey>(store, key, |v| &mut v.key, &mut done).await?;
    for f in &done.failed {
        tracing::error!(key = %f, "cannot re-seal a value in etcd: it opens with neither the current nor a retired key, or does not decode");
    }
    tracing::info!(
        resealed = done.resealed,
        failed = done.failed.len(),
        key_id = key.id(),
        "sealed values in etcd re-sealed under the current secrets key"
    );
    Ok(done)
}

/// Re-seals the `sealed` part of every value under `K`'s prefix that
/// another key sealed; a value that does not decode counts as failed.
async fn reseal_prefix<K: StoreKey>(
    store: &Store,
    key: &SecretsKey,
    sealed: fn(&mut K::Value) -> &mut SealedSecret,
    done: &mut Resealed,
) -> Result<(), StoreError>
where
    K::Value: Clone,
{
    let listed = store.list(&KeyPrefix::<K>::all()).await?;
    for bad in listed.invalid {
        done.failed.push(format!("{}: {}", bad.key, bad.error));
    }
    for e in listed.items {
        let mut value = e.value.clone();
        let old = sealed(&mut value);
        if !key.is_stale(old) {
            continue;
        }
        match reseal(key, old, &e.key.path()) {
            Ok(new) => {
                *old = new;
                put(store, &e.key, &value, e.mod_revision, done).await?;
            }
            Err(err) => done.failed.push(format!("{}: {err}", e.key.path())),
        }
    }
    Ok(())
}

/// Writes `value` at `key` if it is still at `revision` (a change made
/// meanwhile is newer and sealed under the current key already).
async fn put<K: StoreKey>(
    store: &Store,
    key: &K,
    value: &K::Value,
    revision: i64,
    done: &mut Resealed,
) -> Result<(), StoreError> {
    match store.put_if(key, value, revision).await {
        Ok(_) => done.resealed += 1,
        Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Console's start after a key rotation: the database's part at once
/// (it needs no etcd), then `connect` (console's etcd connection), then
/// etcd's part; the final line says whether the retired keys can go.
pub async fn at_start<'a, F>(db: &Db, connect: F)
where
    F: std::future::Future<Output = Option<&'a Store>>,
{
    let key = db.secrets_key().clone();
    let mut clean = match database(db).await {
        Ok(d) => d.failed.is_empty(),
        Err(e) => {
            tracing::error!(error = %e, "cannot re-seal the database's secrets; restart console to try again");
            false
        }
    };
    match connect.await {
        Some(store) => match etcd(store, &key).await {
            Ok(d) => clean &= d.failed.is_empty(),
            Err(e) => {
                clean = false;
                tracing::error!(error = %e, "cannot re-seal the sealed values in etcd; restart console to try again");
            }
        },
        None => {
            clean = false;
            tracing::warn!(
                "console has no etcd endpoints: the sealed values in etcd were not re-sealed"
            );
        }
    }
    if clean {
        tracing::info!(
            key_id = key.id(),
            retired = ?key.retired_ids(),
            "every secret is sealed under the current key: the retired keys may be removed from every component's config"
        );
    } else {
        tracing::warn!(
            key_id = key.id(),
            "some secrets are still sealed under another key (see the errors above); keep the retired keys configured"
        );
    }
}
