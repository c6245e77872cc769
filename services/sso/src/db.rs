//! The database: one sqlx `AnyPool` over SQLite or PostgreSQL, chosen by
//! URL. Queries use `$N` placeholders, which both backends accept.
//! Migrations are embedded in the binary and run at start.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

use crate::error::StoreError;

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

/// The database handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Connects (creating a SQLite file when the URL says `mode=rwc`) and
    /// runs pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Corrupt {
                table: "config",
                detail: "`database` must start with sqlite: or postgres:".into(),
            });
        };
        let opts: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the writer; set once per file.
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            restrict_sqlite_file(url);
        }
        let db = Self { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS sso_schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for &(version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                // Serialises concurrent starts of several sso instances.
                sqlx::raw_sql("LOCK TABLE sso_schema_migrations IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let done = sqlx::query("SELECT version FROM sso_schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migration { version, source })?;
            sqlx::query("INSERT INTO sso_schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "applied database migration");
        }
        Ok(())
    }

    /// The applied schema version.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM sso_schema_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("v")?.unwrap_or(0))
    }
}

/// The SQLite file holds password hashes and the private signing keys:
/// only its owner may read it.
fn restrict_sqlite_file(url: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return;
    }
    for p in [
        path.to_owned(),
        format!("{path}-wal"),
        format!("{path}-shm"),
    ] {
        if std::path::Path::new(&p).exists() {
            if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %p, error = %e, "cannot restrict database file to mode 0600");
            }
        }
    }
}
