//! Writing an app's desired procs to etcd: one transaction per deploy.
//!
//! A deploy writes every proc of the release with a new generation (the
//! app's highest so far plus one), deletes the procs the release no
//! longer has (a long-standing LAIN bug: removed procs kept running), and
//! writes the secret versions the procs name, sealed under the cluster
//! secrets key. The transaction is conditional on the app's desired keys
//! being as they were read, so two deploys racing cannot interleave: one
//! fails with [`DeployError::Conflict`] and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use lain_store::secret::{self, SecretsKey};
use lain_store::{
    unix_millis, AppSecret, DesiredKey, DesiredProc, SecretKey, Store, StoreError, Transaction,
};
use zeroize::Zeroizing;

/// Which procs a deploy replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// All of them: procs not in the release are removed.
    All,
    /// Only this one; the others stay as they are.
    One(String),
}

/// A secret version to make available to deployd.
pub struct SecretValue {
    pub name: String,
    pub version: u64,
    pub value: Zeroizing<Vec<u8>>,
}

/// What a deploy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    /// The etcd revision of the transaction.
    pub revision: i64,
    /// Procs written.
    pub procs: Vec<String>,
    /// Procs removed because the release no longer has them.
    pub removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("another deploy of {app} changed its desired state at the same time; nothing was changed, try again")]
    Conflict { app: String },
    #[error("proc {proc} names secret {name} version {version}, which was not provided")]
    SecretMissing {
        proc: String,
        name: String,
        version: u64,
    },
    #[error("cannot seal secret {name}: {detail}")]
    Seal { name: String, detail: String },
    #[error("etcd: {0} (is etcd running and reachable from console?)")]
    Store(#[from] StoreError),
}

/// The app's whole desired state once `procs` are written over
/// `current` with `scope`, in proc order.
pub fn merged(current: &[DesiredProc], procs: &[DesiredProc], scope: &Scope) -> Vec<DesiredProc> {
    let mut desired: Vec<DesiredProc> = match scope {
        Scope::All => Vec::new(),
        Scope::One(_) => current
            .iter()
            .filter(|c| !procs.iter().any(|p| p.proc == c.proc))
            .cloned()
            .collect(),
    };
    desired.extend(procs.iter().cloned());
    desired.sort_by(|a, b| a.proc.cmp(&b.proc));
    desired
}

/// Writes `procs` (all of one app) as the app's desired state, with a
/// generation above both the app's desired procs and `floor`: the newest
/// generation console ever wrote for the app, so that a deploy after an
/// undeploy (which leaves no desired key to count from) never reuses a
/// generation whose instances deployd may still be stopping.
pub async fn apply(
    store: &Store,
    key: &SecretsKey,
    app: &str,
    mut procs: Vec<DesiredProc>,
    scope: &Scope,
    secrets: &[SecretValue],
    floor: u64,
) -> Result<Applied, DeployError> {
    let listing = store.list(&DesiredKey::of_app(app)?).await?;
    let generation = listing
        .items
        .iter()
        .map(|e| e.value.generation)
        .max()
        .unwrap_or(0)
        .max(floor)
        + 1;

    let mut txn = Transaction::new();
    // Conditional on every desired key of the app being as read.
    for e in &listing.items {
        txn.require(&e.key, e.mod_revision);
    }
    let mut bad_keys = Vec::new();
    for bad in &listing.invalid {
        if let Ok(k) = <DesiredKey as lain_store::StoreKey>::parse(&bad.key) {
            txn.require(&k, bad.mod_revision);
            bad_keys.push(k);
        }
    }
    let wanted: BTreeSet<String> = procs.iter().map(|p| p.proc.clone()).collect();
    let mut removed = Vec::new();
    if *scope == Scope::All {
        for k in listing.items.iter().map(|e| &e.key).chain(&bad_keys) {
            if !wanted.contains(k.proc()) {
                txn.delete(k);
                removed.push(k.proc().to_owned());
            }
        }
    }

    // Secret versions the procs name, written once (versions never change).
    let provided: BTreeMap<(&str, u64), &SecretValue> = secrets
        .iter()
        .map(|s| ((s.name.as_str(), s.version), s))
        .collect();
    let mut needed: BTreeMap<(String, u64), &SecretValue> = BTreeMap::new();
    for p in &procs {
        for r in &p.secrets {
            let Some(v) = provided.get(&(r.name.as_str(), r.version)) else {
                return Err(DeployError::SecretMissing {
                    proc: p.proc.clone(),
                    name: r.name.clone(),
                    version: r.version,
                });
            };
            needed.insert((r.name.clone(), r.version), v);
        }
    }
    for ((name, version), v) in needed {
        let k = SecretKey::new(app, &name, version)?;
        if store.get(&k).await?.is_some() {
            continue;
        }
        let sealed = secret::seal_for(key, &k, &v.value).map_err(|e| DeployError::Seal {
            name: name.clone(),
            detail: e.to_string(),
        })?;
        txn.put_if(
            &k,
            &AppSecret {
                value: sealed,
                updated_at_ms: unix_millis(),
            },
            0,
        )?;
    }

    let mut names = Vec::new();
    for p in &mut procs {
        p.generation = generation;
        txn.put(&DesiredKey::new(app, &p.proc)?, p)?;
        names.push(p.proc.clone());
    }
    let revision = match store.commit(txn).await {
        Ok(r) => r,
        Err(StoreError::Conflict { .. }) => {
            return Err(DeployError::Conflict {
                app: app.to_owned(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Applied {
        generation,
        revision,
        procs: names,
        removed,
    })
}

/// Removes every desired proc of the app (its secrets stay, for a later
/// deploy or rollback). Returns the procs removed.
pub async fn undeploy(store: &Store, app: &str) -> Result<Vec<String>, DeployError> {
    let listing = store.list(&DesiredKey::of_app(app)?).await?;
    let mut txn = Transaction::new();
    let mut removed = Vec::new();
    for e in &listing.items {
        txn.delete_if(&e.key, e.mod_revision);
        removed.push(e.key.proc().to_owned());
    }
    for bad in &listing.invalid {
        if let Ok(k) = <DesiredKey as lain_store::StoreKey>::parse(&bad.key) {
            txn.delete_if(&k, bad.mod_revision);
            removed.push(k.proc().to_owned());
        }
    }
    if txn.is_empty() {
        return Ok(removed);
    }
    match store.commit(txn).await {
        Ok(_) => Ok(removed),
        Err(StoreError::Conflict { .. }) => Err(DeployError::Conflict {
            app: app.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

impl From<lain_store::KeyError> for DeployError {
    fn from(e: lain_store::KeyError) -> Self {
        DeployError::Store(StoreError::from(e))
    }
}
