//! The database: one sqlx `AnyPool` over SQLite or PostgreSQL, chosen by
//! URL. Queries use `$N` placeholders, which both backends accept.
//! Migrations are embedded in the binary and run at start. Opening,
//! per-backend settings and migrating are `lain-db`'s (shared with console).

use sqlx::AnyPool;

pub use lain_db::Backend;

use crate::error::StoreError;

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: lain_db::Migrations = lain_db::Migrations {
    table: "sso_schema_migrations",
    steps: &[(1, include_str!("../migrations/0001_init.sql"))],
};

/// The database handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// Connects (creating a SQLite file when the URL says `mode=rwc`) and
    /// runs pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, backend) = lain_db::open(
            url,
            &MIGRATIONS,
            &lain_db::OpenOptions::default(),
            crate::now(),
        )
        .await
        .map_err(store_error)?;
        Ok(Self { pool, backend })
    }

    /// The applied schema version.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        lain_db::schema_version(&self.pool, MIGRATIONS.table)
            .await
            .map_err(store_error)
    }
}

fn store_error(e: lain_db::DbError) -> StoreError {
    match e {
        lain_db::DbError::Sqlx(e) | lain_db::DbError::Connect(e) => StoreError::Sqlx(e),
        lain_db::DbError::Migration { version, source } => {
            StoreError::Migration { version, source }
        }
        e @ (lain_db::DbError::BadUrl { .. } | lain_db::DbError::TooNew { .. }) => {
            StoreError::Corrupt {
                table: "config",
                detail: e.to_string(),
            }
        }
    }
}
