//! deployd: places instances on Docker nodes and keeps them healthy.
//!
//! The library holds deployd's logic so that it can be tested and
//! benchmarked without a running daemon; `main.rs` only parses the command
//! line and config, starts tracing and calls [`run`].
//!
//! - [`scheduler`]: a pure function from nodes and placement requests to
//!   placements and failures.
//! - [`leader`]: every replica campaigns under `/lain/election/deployd`;
//!   only the leader acts, and it stops at once when leadership ends.
//! - [`monitor`]: the leader pings every registered node's Docker engine
//!   ([`docker`]) and records its liveness ([`liveness`]) under
//!   `/lain/observed-nodes/`.
//! - [`metrics`]: `/metrics` in the Prometheus text format.
//! - [`api`]: the operational API (`/api/v1/...`: instance logs, app
//!   events, volume backups), for console; bearer tokens from sso.
//! - [`backup`]: volume backups on the leader's schedule or on request,
//!   and restores as part of a rollout.
//!
//! See `docs/reference/deployd.md`.

pub mod api;
pub mod backup;
pub mod config;
pub mod docker;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod monitor;
pub mod reconcile;
pub mod runtime;
pub mod scheduler;
pub mod volumes;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use lain_service::ServeError;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;
pub use metrics::Metrics;

/// Errors that end deployd.
#[derive(Debug, thiserror::Error)]
pub enum DeploydError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot set up the operational API's token verification from [auth]: {0}")]
    Auth(#[from] lain_auth::AuthError),
    #[error("cannot set up volume backups from [backup]: {0}")]
    Backup(#[from] lain_backup::Error),
}

/// Runs deployd until SIGTERM or SIGINT: the HTTP listener (`/healthz`,
/// `/metrics`, the operational API) and the election, with the node monitor while leading.
pub async fn run(config: Config) -> Result<(), DeploydError> {
    run_until(config, lain_service::shutdown_signal()).await
}

/// Like [`run`], stopping when `shutdown` completes (for tests and
/// embedding). On the way out a leader resigns, so that another replica
/// takes over at once instead of after the lease TTL.
pub async fn run_until(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DeploydError> {
    raise_fd_limit();
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    run_on(config, listener, Arc::new(Metrics::default()), shutdown).await
}

/// Like [`run_until`] on a bound listener, with the caller's [`Metrics`]
/// (so that a test can read them without HTTP).
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DeploydError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let backups = backup::BackupService::from_config(&config)?;
    let api = api::Api::from_config(&config, stop_rx.clone())?.with_backups(backups.clone());
    let router = Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics.clone())
        .merge(api.router());

    let mut server_stop = stop_rx.clone();
    let server = async {
        let served = lain_service::serve_on("deployd", listener, router, async move {
            let _ = server_stop.wait_for(|s| *s).await;
        })
        .await;
        // A server that fails on its own takes the rest down with it.
        stop_tx.send_replace(true);
        served
    };
    let mut trigger_stop = stop_rx.clone();
    let trigger = async {
        tokio::select! {
            () = shutdown => {}
            _ = trigger_stop.wait_for(|s| *s) => {}
        }
        stop_tx.send_replace(true);
    };
    let connect_api = api.connect(stop_rx.clone());
    let control = leader::run(config, metrics, backups, stop_rx);
    let (served, (), (), ()) = tokio::join!(server, trigger, control, connect_api);
    served?;
    Ok(())
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
}

/// Raises the soft open-file limit to the hard one: deployd keeps a
/// connection per Docker engine, and the common default soft limit (1024)
/// would make pings fail with EMFILE past a few hundred nodes.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => {
                tracing::warn!(error = %e, soft, "cannot raise the open-file limit; set LimitNOFILE in the service unit")
            }
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}
