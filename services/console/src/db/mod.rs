//! console's storage: a typed repository API over one SQL database,
//! SQLite by default and PostgreSQL by URL (see `lain-db`).
//!
//! [`Db`] is a cheap-to-clone handle; its repositories borrow it:
//! [`Db::apps`], [`Db::maintainers`], [`Db::releases`], [`Db::deployments`],
//! [`Db::secrets`], [`Db::audit`] and [`Db::web_sessions`]. Every call that changes several rows
//! runs in one transaction. Times are unix milliseconds. The schema and the
//! choices behind it are in docs/reference/console.md ("Storage").

mod apps;
mod audit;
mod deployments;
mod error;
mod model;
mod releases;
mod secrets;
mod sessions;
pub mod validate;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use lain_store::secret::SecretsKey;

pub use apps::{Apps, Maintainers};
pub use audit::Audit;
pub use deployments::Deployments;
pub use error::DbError;
pub use lain_db::Backend;
pub use model::*;
pub use releases::Releases;
pub use secrets::{Resealed, Secrets};
pub use sessions::{WebSession, WebSessions, MAX_SESSIONS_PER_SUBJECT};

/// Embedded migrations, applied in order, each once.
pub const MIGRATIONS: lain_db::Migrations = lain_db::Migrations {
    table: "console_schema_migrations",
    steps: &[
        (1, include_str!("../../migrations/0001_init.sql")),
        (2, include_str!("../../migrations/0002_web_sessions.sql")),
    ],
};

/// The database handle (cheap to clone). Its `Debug` shows the backend and
/// the secrets key id, never the key.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    key: SecretsKey,
}

impl Db {
    /// Connects to `url` (`sqlite:PATH?mode=rwc` or `postgres://...`),
    /// applies pending migrations, and keeps `key` (the cluster secrets
    /// key, [`SecretsKey::load`]) to seal and open secret values.
    pub async fn open(url: &str, key: SecretsKey) -> Result<Self, DbError> {
        let (pool, backend) =
            lain_db::open(url, &MIGRATIONS, &lain_db::OpenOptions::default(), now_ms()).await?;
        Ok(Self { pool, backend, key })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for health checks and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The secrets key this handle seals with (console re-seals secret
    /// versions with it for etcd).
    pub fn secrets_key(&self) -> &SecretsKey {
        &self.key
    }

    /// The id of the secrets key this handle seals with.
    pub fn secrets_key_id(&self) -> &str {
        self.key.id()
    }

    /// Applies pending migrations again (a no-op when none is pending).
    pub async fn migrate(&self) -> Result<(), DbError> {
        lain_db::migrate(&self.pool, self.backend, &MIGRATIONS, now_ms()).await?;
        Ok(())
    }

    /// The applied schema version.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        Ok(lain_db::schema_version(&self.pool, MIGRATIONS.table).await?)
    }

    pub fn apps(&self) -> Apps<'_> {
        Apps { db: self }
    }

    pub fn maintainers(&self) -> Maintainers<'_> {
        Maintainers { db: self }
    }

    pub fn releases(&self) -> Releases<'_> {
        Releases { db: self }
    }

    pub fn deployments(&self) -> Deployments<'_> {
        Deployments { db: self }
    }

    pub fn secrets(&self) -> Secrets<'_> {
        Secrets { db: self }
    }

    pub fn audit(&self) -> Audit<'_> {
        Audit { db: self }
    }

    pub fn web_sessions(&self) -> WebSessions<'_> {
        WebSessions { db: self }
    }

    /// A transaction that writes. On SQLite it is `BEGIN IMMEDIATE`: it
    /// takes the write lock at once (waiting up to the busy timeout), so a
    /// transaction that reads before it writes never fails with "database
    /// is locked" when another writer got there first.
    pub(crate) async fn write_tx(&self) -> Result<Transaction<'static, Any>, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The next id of sequence `name`, in `tx` (the row stays locked until the
/// transaction ends, so ids follow commit order).
pub(crate) async fn next_id(tx: &mut Transaction<'_, Any>, name: &str) -> Result<i64, DbError> {
    let row = sqlx::query(
        "UPDATE id_sequences SET last_id = last_id + 1 WHERE name = $1 RETURNING last_id",
    )
    .bind(name)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("last_id")?)
}

/// Locks app `name`'s row until `tx` ends (a no-op write: PostgreSQL
/// takes a row lock, SQLite already holds the write lock), so per-app
/// rules (the last owner, the next secret version) hold under concurrent
/// calls. False if the app does not exist.
pub(crate) async fn lock_app(tx: &mut Transaction<'_, Any>, name: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE apps SET created_at = created_at WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether app `name` exists.
pub(crate) async fn app_exists<'e, E>(exec: E, name: &str) -> Result<bool, DbError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(sqlx::query("SELECT 1 AS one FROM apps WHERE name = $1")
        .bind(name)
        .fetch_optional(exec)
        .await?
        .is_some())
}

/// Reads column `col` of an enum type from `row`, naming `table` if the
/// stored text is not one of its values.
pub(crate) fn enum_col<T: std::str::FromStr>(
    row: &AnyRow,
    table: &'static str,
    col: &str,
) -> Result<T, DbError> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|_| DbError::Corrupt {
        table,
        detail: format!("column {col} holds unknown value {:?}", validate::short(&s)),
    })
}

/// Reads a JSON text column.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    table: &'static str,
    col: &str,
) -> Result<T, DbError> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| DbError::Corrupt {
        table,
        detail: format!("column {col} is not the expected JSON: {e}"),
    })
}

/// The page size of a list call: 0 means 100, at most 1000.
pub(crate) fn page_limit(limit: u32) -> i64 {
    match limit {
        0 => 100,
        n => i64::from(n.min(1000)),
    }
}
