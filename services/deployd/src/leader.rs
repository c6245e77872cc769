//! Leadership: every replica campaigns under `/lain/election/deployd`;
//! the one that leads runs the node monitor and the reconciler (which
//! starts the backup runner), the others wait their turn.
//!
//! Both run inside a `select!` with the loss of leadership, so it
//! is dropped (its pings aborted, its writes abandoned) the moment the
//! lease or the candidate key is gone; writes it had in flight are fenced
//! by etcd anyway. The replica then campaigns again.

use std::sync::Arc;
use std::time::Duration;

use lain_store::{unix_millis, Candidate, Component, Store, StoreOptions};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::{self, MonitorSettings};
use crate::reconcile;

/// The election every deployd replica takes part in.
pub const ELECTION: &str = "deployd";

/// How long a resigning leader waits for etcd before giving up; the lease
/// then lapses on its own within its TTL.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(2);

const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Campaigns and leads until `stop` turns true; a leader resigns on the
/// way out. Never fails: etcd trouble is logged and retried.
pub async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    backups: Arc<crate::backup::BackupService>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = MonitorSettings::from_config(&config);
    let mut reconcile_settings = reconcile::Settings::from_config(&config);
    reconcile_settings.backup = Some(backups);
    let options = StoreOptions {
        writer: Some(Component::Deployd),
        ..StoreOptions::default()
    };
    let mut delay = RETRY_MIN;
    let store = loop {
        let connect = tokio::select! {
            r = Store::connect_with(&config.etcd, options.clone()) => r,
            () = stopped(&mut stop) => return,
        };
        match connect {
            Ok(store) => break store,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    endpoints = ?config.etcd,
                    "cannot connect to etcd; retrying (check that etcd runs at these endpoints and that deployd can reach them)"
                );
                if pause(&mut delay, &mut stop).await {
                    return;
                }
            }
        }
    };
    let election = match store.election(ELECTION) {
        Ok(election) => election,
        // A constant, valid name: unreachable, but not worth a panic.
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the deployd election");
            return;
        }
    };
    delay = RETRY_MIN;
    loop {
        let candidate = Candidate {
            id: config.id.clone(),
            address: Some(config.listen.to_string()),
            started_at_ms: unix_millis(),
        };
        tracing::info!(id = %config.id, "campaigning for leadership");
        let campaign = tokio::select! {
            r = election.campaign(candidate, config.lease_ttl()) => r,
            () = stopped(&mut stop) => return,
        };
        let leadership = match campaign {
            Ok(leadership) => leadership,
            Err(e) => {
                tracing::warn!(error = %e, "campaign failed; campaigning again");
                if pause(&mut delay, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        delay = RETRY_MIN;
        tracing::info!(
            id = %config.id,
            key = %leadership.key(),
            revision = leadership.create_revision(),
            "leading: monitoring nodes and reconciling"
        );
        metrics.set_leader(true);
        let end = tokio::select! {
            () = leadership.lost() => End::Lost,
            e = monitor::run(&store, &leadership, &settings, &metrics) => End::Failed(e.to_string()),
            r = reconcile::run(&store, leadership.writer(), reconcile_settings.clone(), metrics.clone()) => {
                End::Failed(match r {
                    Ok(()) => "the reconciler stopped".to_owned(),
                    Err(e) => e.to_string(),
                })
            }
            () = stopped(&mut stop) => End::Stop,
        };
        metrics.set_leader(false);
        metrics.set_instances(std::iter::empty());
        // Only the leader monitors: a follower reports no nodes.
        metrics.set_nodes(Default::default());
        metrics.set_invalid_registrations(0);
        match end {
            End::Lost => {
                tracing::warn!("leadership lost: stopped acting; campaigning again");
            }
            End::Failed(e) => {
                tracing::warn!(error = %e, "stepping down and campaigning again");
                resign(leadership).await;
                if pause(&mut delay, &mut stop).await {
                    return;
                }
            }
            End::Stop => {
                resign(leadership).await;
                return;
            }
        }
    }
}

enum End {
    Lost,
    Failed(String),
    Stop,
}

/// Hands over at once rather than after the lease TTL.
async fn resign(leadership: lain_store::Leadership) {
    match tokio::time::timeout(RESIGN_TIMEOUT, leadership.resign()).await {
        Ok(Ok(())) => tracing::info!("resigned leadership"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot resign; the lease lapses within its TTL")
        }
        Err(_) => tracing::warn!(
            timeout = ?RESIGN_TIMEOUT,
            "etcd did not answer the resignation; the lease lapses within its TTL"
        ),
    }
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `delay` (then doubles it up to [`RETRY_MAX`]); true if told to
/// stop meanwhile.
async fn pause(delay: &mut Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = *delay;
    *delay = (*delay * 2).min(RETRY_MAX);
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = stopped(stop) => true,
    }
}
