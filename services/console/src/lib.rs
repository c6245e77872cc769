//! console: the app registry and public API; the only writer of desired
//! state. [`db`] is its storage, [`api`] its HTTP API (see
//! docs/reference/console.md).

pub mod api;
pub mod config;
pub mod db;
pub mod deploy;
pub mod deployd;
pub mod desired;
pub mod error;
pub mod fit;
pub mod registry;
pub mod rekey;
pub mod services;
pub mod track;
pub mod web;

use std::future::Future;

use anyhow::Context as _;
use lain_store::secret::SecretsKey;
use tokio::net::TcpListener;

pub use api::Api;
pub use config::Config;

/// Opens the database (migrating it), sets the API up and serves it on
/// `config.listen` until SIGTERM or SIGINT, draining in-flight requests.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another process using the port?",
            config.listen
        )
    })?;
    run_on(config, listener, lain_service::shutdown_signal()).await
}

/// [`run`] on a bound listener, stopping when `shutdown` completes.
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let api = open(&config).await?;
    // Load sso's keys early (a failure is not fatal: sso may start later).
    let warm = api.verifier().clone();
    tokio::spawn(async move {
        match warm.refresh().await {
            Ok(n) => tracing::info!(keys = n, "loaded sso's signing keys"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot load sso's signing keys yet; calls are refused until sso answers")
            }
        }
    });
    let _refresh = api.verifier().spawn_periodic_refresh(api::KEY_REFRESH);
    web::spawn_background(&api);
    // etcd need not be up either: connect in the background; until then
    // the routes that need it answer 503 `etcd_unavailable`.
    let etcd = api.clone();
    // Then follow deployd's rollouts to finish deployments.
    let _etcd = tokio::spawn(async move {
        if etcd.secrets_key().retired_ids().is_empty() {
            etcd.connect_etcd().await;
        } else {
            // After a key rotation: seal again what the retired keys
            // sealed (the database's part does not wait for etcd).
            rekey::at_start(etcd.db(), async {
                etcd.connect_etcd().await;
                etcd.store().ok()
            })
            .await;
        }
        track::run(etcd).await
    });
    let stopping = api.stopping();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    lain_service::serve_on("console", listener, api.router(), shutdown).await?;
    tracing::info!("console stopped");
    Ok(())
}

/// Loads the secrets key, opens the database and builds the [`Api`].
pub async fn open(config: &Config) -> anyhow::Result<Api> {
    let key =
        SecretsKey::load_with_retired(&config.secrets_key_file, &config.retired_secrets_key_files)
            .with_context(|| {
                "cannot load secrets_key_file or retired_secrets_key_files".to_string()
            })?;
    let db = db::Db::open(&config.database, key)
        .await
        .context("cannot open the database")?;
    tracing::info!(backend = ?db.backend(), key_id = db.secrets_key_id(), retired_key_ids = ?db.secrets_key().retired_ids(), "database open");
    let mut api = Api::new(config, db)?;
    if let Some(r) = &config.registry_auth {
        let signer =
            registry::TokenSigner::load_or_create(r).context("invalid [registry_auth] section")?;
        api = api.with_registry_signer(signer);
    }
    match &config.deployd {
        Some(d) => {
            let client = deployd::DeploydClient::load(d, &config.auth.issuer)
                .context("invalid [deployd] section")?;
            api = api.with_deployd(client);
        }
        None => {
            tracing::warn!("no [deployd] section in the config: logs answer 503 until it is set")
        }
    }
    match web::load(config).context("invalid [web] section")? {
        Some(w) => api = api.with_web(w),
        None => tracing::info!(
            "no [web] section in the config: the web console at /ui/ answers 503 until it is set"
        ),
    }
    Ok(api)
}
