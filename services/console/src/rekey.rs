//! Sealing every secret again under the current secrets key, after a
//! rotation (docs/operations.md, "Rotate the cluster secrets key").
//!
//! When console starts with `retired_secrets_key_files`, it re-seals in
//! the background what a retired key sealed: the secret versions in its
//! database, then, once connected to etcd, the secret values and TLS
//! private keys under `/lain/secrets/` and `/lain/certs/` (console is
//! their only writer). Every write is conditional on the value as read,
//! so a concurrent change wins and the next start picks up the rest; it
//! is safe to run again. Its last log line says whether anything is still
//! sealed under a retired key, i.e. whether the retired keys may go.

use lain_store::secret::{reseal, SecretsKey};
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
    let secrets = store.list(&KeyPrefix::<SecretKey>::all()).await?;
    for e in secrets.items {
        if !key.is_stale(&e.value.value) {
            continue;
        }
        match reseal(key, &e.value.value, &e.key.path()) {
            Ok(sealed) => {
                let mut v = e.value.clone();
                v.value = sealed;
                put(store, &e.key, &v, e.mod_revision, &mut done).await?;
            }
            Err(err) => done.failed.push(format!("{}: {err}", e.key.path())),
        }
    }
    let certs = store.list(&KeyPrefix::<CertKey>::all()).await?;
    for e in certs.items {
        if !key.is_stale(&e.value.key) {
            continue;
        }
        match reseal(key, &e.value.key, &e.key.path()) {
            Ok(sealed) => {
                let mut v = e.value.clone();
                v.key = sealed;
                put(store, &e.key, &v, e.mod_revision, &mut done).await?;
            }
            Err(err) => done.failed.push(format!("{}: {err}", e.key.path())),
        }
    }
    for f in &done.failed {
        tracing::error!(key = %f, "cannot re-seal a value in etcd: it opens with neither the current nor a retired key");
    }
    tracing::info!(
        resealed = done.resealed,
        failed = done.failed.len(),
        key_id = key.id(),
        "sealed values in etcd re-sealed under the current secrets key"
    );
    Ok(done)
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

/// Both (etcd's part only with a connection), as console runs them at
/// start with retired keys configured; the final line says whether the
/// retired keys can be removed.
pub async fn run(db: &Db, store: Option<&Store>) {
    let key = db.secrets_key().clone();
    let mut clean = true;
    match database(db).await {
        Ok(d) => clean &= d.failed.is_empty(),
        Err(e) => {
            clean = false;
            tracing::error!(error = %e, "cannot re-seal the database's secrets; restart console to try again");
        }
    }
    match store {
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
