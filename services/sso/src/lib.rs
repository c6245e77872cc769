//! sso: the OpenID Connect provider of a lain cluster.
//!
//! - [`config`]: the TOML config.
//! - [`db`]: SQLite or PostgreSQL through sqlx, embedded migrations.
//! - [`domain`]: users (argon2id), hierarchical groups, OAuth clients.
//! - [`grants`]: codes, refresh tokens, device codes, sessions.
//! - [`keys`]: RS256 keys, rotation, JWKS, JWT signing.
//! - `web`: the HTTP endpoints.
//! - [`cli`]: the `sso` command (serve and admin subcommands).

pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod grants;
mod html;
pub mod keys;
pub mod limiter;
pub mod metrics;
pub mod password;
pub mod secret;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigCheckError};
use crate::db::Db;
use crate::error::StoreError;
use crate::keys::Keys;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::secret::Secret;

pub use web::BODY_LIMIT;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Everything the handlers share.
pub struct AppState {
    pub cfg: Config,
    pub issuer: String,
    pub db: Db,
    pub keys: Keys,
    pub limiter: Limiter,
    pub metrics: Metrics,
    /// A hash checked for unknown users, so they cost as much as known ones.
    dummy_hash: String,
    secure_cookies: bool,
    /// Bounds the password checks (argon2) running at once; a login that
    /// finds no permit is answered 429 rather than queued.
    pub(crate) verify_permits: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The shortest life of a grant: long enough for its code and for the
    /// access and ID tokens it gives.
    fn grant_min_secs(&self) -> i64 {
        let t = &self.cfg.tokens;
        t.authorization_code_secs
            .max(t.access_token_secs)
            .max(t.id_token_secs) as i64
    }
}

/// Why sso could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigCheckError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Serve(#[from] lain_service::ServeError),
}

/// A ready sso: database migrated, signing keys loaded.
#[derive(Debug, Clone)]
pub struct Sso {
    state: Arc<AppState>,
}

impl Sso {
    /// Checks the config, opens (and migrates) the database and loads or
    /// creates the signing keys.
    pub async fn open(cfg: Config, database_url: &str) -> Result<Self, StartError> {
        cfg.check()?;
        let db = Db::open(database_url).await?;
        let t = &cfg.tokens;
        let publish = t.access_token_secs.max(t.id_token_secs) + 60;
        let kek = match &cfg.keys.encryption_key_file {
            Some(p) => Some(keys::load_kek(p)?),
            None => None,
        };
        let keys = Keys::new(
            db.clone(),
            cfg.keys.rotation_secs,
            publish,
            cfg.keys.rsa_bits,
            kek,
        );
        keys.refresh().await?;
        let hcfg = cfg.password_hash.clone();
        let dummy_hash = tokio::task::spawn_blocking(move || {
            password::hash(&hcfg, &Secret::new(secret::random_token()))
        })
        .await
        .map_err(|e| StoreError::Crypto(e.to_string()))?
        .map_err(StoreError::Crypto)?;
        let issuer = cfg.issuer();
        Ok(Self {
            state: Arc::new(AppState {
                secure_cookies: issuer.starts_with("https://"),
                issuer,
                limiter: Limiter::new(cfg.login.clone()),
                metrics: Metrics::default(),
                dummy_hash,
                verify_permits: Arc::new(tokio::sync::Semaphore::new(verify_permits())),
                keys,
                db,
                cfg,
            }),
        })
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The endpoints, without `/healthz`.
    pub fn router(&self) -> Router {
        web::router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown`, with `/healthz`, the client
    /// address available to the login limits, and a background task that
    /// rotates keys and deletes expired rows.
    pub async fn serve_on(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let local = listener
            .local_addr()
            .map_err(lain_service::ServeError::Io)?;
        let maint = tokio::spawn(maintenance(self.state.clone()));
        tracing::info!(%local, issuer = %self.state.issuer, "sso listening");
        let r = lain_service::serve_on("sso", listener, self.router(), shutdown).await;
        maint.abort();
        r?;
        tracing::info!("sso stopped");
        Ok(())
    }
}

/// Password checks allowed at once: twice the CPUs.
fn verify_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// Periodic work: key rotation and publication, expired-row cleanup.
async fn maintenance(st: Arc<AppState>) {
    let period = Duration::from_secs((st.cfg.keys.rotation_secs / 4).clamp(1, 60));
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = st.keys.refresh().await {
            tracing::error!(error = %e, "signing key refresh failed");
        }
        if let Err(e) = st.db.cleanup().await {
            tracing::error!(error = %e, "cleanup of expired rows failed");
        }
    }
}
