//! Follows deployd's rollouts (`/lain/rollouts/`) and finishes the
//! deployments they belong to: a `progressing` deployment of an app with
//! generation G becomes `succeeded` once every desired proc of
//! the app written with G has a rollout of generation G that `converged`;
//! `rolled_back` or `failed` (with deployd's message) as soon as one of
//! them has that phase. Level-triggered: each rollout change re-evaluates
//! its app from etcd (its desired procs and rollouts, one read each) and
//! the database, so a restart of console (or
//! several replicas doing the same) changes nothing twice. The ten
//! newest `progressing` deployments of the app are looked at; one that a
//! newer deployment superseded (no desired proc has its generation any
//! more) stays `progressing`.

use std::collections::BTreeSet;

use lain_store::{DesiredKey, KeyPrefix, RolloutKey, RolloutPhase, Store, WatchEvent};

use crate::api::Api;
use crate::db::{DbError, DeploymentQuery, DeploymentState, DeploymentUpdate};

/// Watches rollouts until the watch ends (the store is dropped).
pub async fn run(api: Api) {
    let Ok(store) = api.store().cloned() else {
        return;
    };
    let mut watch = store.watch(&KeyPrefix::<RolloutKey>::all());
    while let Some(event) = watch.next().await {
        let apps: BTreeSet<String> = match event {
            WatchEvent::Reset { items, .. } => {
                items.iter().map(|e| e.key.app().to_owned()).collect()
            }
            WatchEvent::Put(e) => BTreeSet::from([e.key.app().to_owned()]),
            _ => BTreeSet::new(),
        };
        for app in apps {
            if let Err(e) = evaluate(&api, &store, &app).await {
                tracing::warn!(app = %app, error = %e, "cannot update the state of a deployment; retried on the next rollout change");
            }
        }
    }
}

/// An app's desired procs and rollouts, read together (two range reads).
pub struct AppRollouts {
    desired: Vec<lain_store::Entry<DesiredKey>>,
    rollouts: Vec<lain_store::Entry<RolloutKey>>,
}

impl AppRollouts {
    pub async fn read(store: &Store, app: &str) -> anyhow::Result<AppRollouts> {
        let (d, r) = (DesiredKey::of_app(app)?, RolloutKey::of_app(app)?);
        let (desired, rollouts) = tokio::try_join!(store.list(&d), store.list(&r))?;
        Ok(AppRollouts::new(desired.items, rollouts.items))
    }

    /// From entries already read (e.g. kept current by a watch).
    pub fn new(
        desired: Vec<lain_store::Entry<DesiredKey>>,
        rollouts: Vec<lain_store::Entry<RolloutKey>>,
    ) -> AppRollouts {
        AppRollouts { desired, rollouts }
    }

    /// Where the deployment of `generation` stands, from the rollouts of
    /// the procs written with it. `None`: still progressing (or
    /// superseded).
    pub fn outcome(&self, generation: u64) -> Option<(DeploymentState, Option<String>)> {
        let procs: Vec<&str> = self
            .desired
            .iter()
            .filter(|e| e.value.generation == generation)
            .map(|e| e.key.proc())
            .collect();
        if procs.is_empty() {
            return None;
        }
        let mut done = true;
        for proc in procs {
            let Some(r) = self.rollouts.iter().find(|r| r.key.proc() == proc) else {
                done = false;
                continue;
            };
            if r.value.generation != generation {
                done = false;
                continue;
            }
            let why = || {
                Some(format!(
                    "proc {proc}: {}",
                    r.value
                        .message
                        .clone()
                        .unwrap_or_else(|| "no detail".into())
                ))
            };
            match r.value.phase {
                RolloutPhase::Converged => {}
                RolloutPhase::RolledBack => return Some((DeploymentState::RolledBack, why())),
                RolloutPhase::Failed => return Some((DeploymentState::Failed, why())),
                _ => done = false,
            }
        }
        done.then_some((DeploymentState::Succeeded, None))
    }
}

async fn evaluate(api: &Api, store: &Store, app: &str) -> anyhow::Result<()> {
    let list = match api
        .db()
        .deployments()
        .list(
            app,
            &DeploymentQuery {
                state: Some(DeploymentState::Progressing),
                limit: 10,
                ..Default::default()
            },
        )
        .await
    {
        Ok(l) => l,
        // An app known to deployd but not (or no longer) to this database.
        Err(DbError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if list.is_empty() {
        return Ok(());
    }
    // Read once for all of the app's progressing deployments.
    let rollouts = AppRollouts::read(store, app).await?;
    for d in &list {
        let Some(generation) = d.generation else {
            continue;
        };
        let Some((state, error)) = rollouts.outcome(generation as u64) else {
            continue;
        };
        let update = DeploymentUpdate {
            state,
            error,
            generation: None,
        };
        match api.db().deployments().update(d.id, &update).await {
            Ok(_) => {
                tracing::info!(app = %app, deployment = d.id, state = %state, "deployment finished")
            }
            // Another replica got there first.
            Err(DbError::InvalidTransition { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
