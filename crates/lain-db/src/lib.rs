//! The SQL database of a daemon (sso, console): one sqlx [`AnyPool`] over
//! SQLite or PostgreSQL, chosen by URL, and embedded migrations.
//!
//! * `sqlite:PATH?mode=rwc` (the default on one machine) or
//!   `postgres://...` / `postgresql://...` (production).
//! * SQLite connections get `foreign_keys = ON` and `busy_timeout = 5000`,
//!   the file is switched to WAL and restricted to its owner (mode 0600,
//!   also its `-wal` and `-shm` files): these databases hold secrets.
//! * Migrations are `(version, sql)` pairs compiled into the binary and
//!   written in the SQL subset both backends accept (queries use `$N`
//!   placeholders, which both accept too). Each service records what it
//!   applied in its own table (`{service}_schema_migrations`), so two
//!   services may share one PostgreSQL database. Each migration runs in
//!   one transaction together with its record; on PostgreSQL the
//!   transaction first takes an advisory lock derived from the table
//!   name, so several instances starting at once apply each migration
//!   exactly once.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

pub use sqlx;

/// Which server a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url`, from its scheme.
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::BadUrl {
                scheme: url
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(16)
                    .collect(),
            })
        }
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "the database URL has scheme {scheme:?}; it must start with sqlite: \
         (e.g. sqlite:/var/lib/lain/console.db?mode=rwc) or postgres://"
    )]
    BadUrl { scheme: String },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database has schema version {found}, newer than the {known} this binary knows; \
         run a newer binary"
    )]
    TooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
}

/// Embedded migrations of one service.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The table recording applied versions, e.g. `console_schema_migrations`.
    /// A fixed identifier (letters, digits, `_`), never user input.
    pub table: &'static str,
    /// `(version, sql)`, versions ascending from 1.
    pub steps: &'static [(i64, &'static str)],
}

/// Options of [`open`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Pool size on SQLite (one writer at a time anyway).
    pub sqlite_connections: u32,
    /// Pool size on PostgreSQL.
    pub postgres_connections: u32,
    /// How long a query waits for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            sqlite_connections: 4,
            postgres_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Connects to `url` (creating a SQLite file when the URL says
/// `mode=rwc`) and applies the pending `migrations`; `now` is written as
/// each applied migration's `applied_at` (in the service's unit).
pub async fn open(
    url: &str,
    migrations: &Migrations,
    opts: &OpenOptions,
    now: i64,
) -> Result<(AnyPool, Backend), DbError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let conn_opts: AnyConnectOptions = url.parse().map_err(DbError::Connect)?;
    let pool = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => opts.sqlite_connections,
            Backend::Postgres => opts.postgres_connections,
        })
        .acquire_timeout(opts.acquire_timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(conn_opts)
        .await
        .map_err(DbError::Connect)?;
    if backend == Backend::Sqlite {
        // WAL lets readers run beside the writer; set once per file.
        (&pool).execute("PRAGMA journal_mode = WAL").await?;
        restrict_sqlite_file(url);
    }
    migrate(&pool, backend, migrations, now).await?;
    Ok((pool, backend))
}

/// A 64-bit advisory lock key derived from the migrations table's name
/// (FNV-1a), so services sharing a database do not wait for each other.
fn lock_key(table: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in table.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

async fn lock(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    table: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        // Held until the transaction ends. The function returns `void`,
        // which the Any driver cannot decode, hence the outer SELECT.
        sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)")
            .bind(lock_key(table))
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Applies the pending `migrations` (see the module docs).
pub async fn migrate(
    pool: &AnyPool,
    backend: Backend,
    migrations: &Migrations,
    now: i64,
) -> Result<(), DbError> {
    let table = migrations.table;
    debug_assert!(table
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    {
        let mut tx = pool.begin().await?;
        lock(&mut tx, backend, table).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"
        );
        (&mut *tx).execute(create.as_str()).await?;
        tx.commit().await?;
    }
    let known = migrations.steps.iter().map(|s| s.0).max().unwrap_or(0);
    let found = schema_version(pool, table).await?;
    if found > known {
        return Err(DbError::TooNew { found, known });
    }
    // Owned before the loop: a temporary `format!` held across an await
    // makes the future not `Send` for every lifetime (sqlx's HRTB issue),
    // and then `tokio::spawn(Db::open(..))` does not compile.
    let select = format!("SELECT version FROM {table} WHERE version = $1");
    let insert = format!("INSERT INTO {table} (version, applied_at) VALUES ($1, $2)");
    for &(version, sql) in migrations.steps {
        let mut tx = pool.begin().await?;
        lock(&mut tx, backend, table).await?;
        let done = sqlx::query(&select)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        (&mut *tx)
            .execute(sql)
            .await
            .map_err(|source| DbError::Migration { version, source })?;
        sqlx::query(&insert)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(table, version, "applied database migration");
    }
    Ok(())
}

/// The newest applied migration recorded in `table` (0 when none).
pub async fn schema_version(pool: &AnyPool, table: &str) -> Result<i64, DbError> {
    let sql = format!("SELECT MAX(version) AS v FROM {table}");
    let row = sqlx::query(&sql).fetch_one(pool).await?;
    Ok(row.try_get::<Option<i64>, _>("v")?.unwrap_or(0))
}

/// The SQLite file path of a `sqlite:` URL (`None` for in-memory ones).
pub fn sqlite_path(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path)
    }
}

/// The SQLite file holds secrets (password hashes, signing keys, sealed
/// app secrets): only its owner may read it.
fn restrict_sqlite_file(url: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = sqlite_path(url) else {
        return;
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(Backend::of_url("sqlite:x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of_url("postgresql://a@b/c").unwrap(),
            Backend::Postgres
        );
        let e = Backend::of_url("mysql://x").unwrap_err();
        assert!(e.to_string().contains("\"mysql\""), "{e}");
        assert_eq!(sqlite_path("sqlite:/a/b.db?mode=rwc"), Some("/a/b.db"));
        assert_eq!(sqlite_path("sqlite:///a/b.db"), Some("/a/b.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
        assert_ne!(
            lock_key("a_schema_migrations"),
            lock_key("b_schema_migrations")
        );
    }
}

#[cfg(test)]
mod sqlite_tests {
    use super::*;

    const M: Migrations = Migrations {
        table: "t_schema_migrations",
        steps: &[
            (
                1,
                "CREATE TABLE a (x BIGINT PRIMARY KEY); INSERT INTO a (x) VALUES (1);",
            ),
            (2, "CREATE TABLE b (y TEXT NOT NULL);"),
        ],
    };

    #[tokio::test]
    async fn opens_in_a_spawned_task_and_migrates_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let u = url.clone();
        let (pool, backend) =
            tokio::spawn(async move { open(&u, &M, &OpenOptions::default(), 7).await })
                .await
                .unwrap()
                .unwrap();
        assert_eq!(backend, Backend::Sqlite);
        assert_eq!(schema_version(&pool, M.table).await.unwrap(), 2);
        // Again: a no-op (the INSERT of step 1 would fail on a rerun).
        migrate(&pool, backend, &M, 8).await.unwrap();
        let (pool, _) = open(&url, &M, &OpenOptions::default(), 9).await.unwrap();
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MAX(applied_at) AS at FROM t_schema_migrations")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(row.get::<i64, _>("n"), 2);
        assert_eq!(row.get::<i64, _>("at"), 7);
        let mode = std::fs::metadata(dir.path().join("t.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A failing step names its version and applies nothing of itself.
        const BAD: Migrations = Migrations {
            table: "t_schema_migrations",
            steps: &[
                (1, ""),
                (2, ""),
                (3, "CREATE TABLE c (z TEXT); SELECT nope FROM nowhere;"),
            ],
        };
        let e = migrate(&pool, backend, &BAD, 10).await.unwrap_err();
        assert!(
            e.to_string().starts_with("database migration 3 failed"),
            "{e}"
        );
        assert_eq!(schema_version(&pool, M.table).await.unwrap(), 2);
        assert!(sqlx::query("SELECT * FROM c")
            .fetch_all(&pool)
            .await
            .is_err());
        // A database newer than the binary is refused.
        const OLD: Migrations = Migrations {
            table: "t_schema_migrations",
            steps: &[(1, "")],
        };
        let e = migrate(&pool, backend, &OLD, 11).await.unwrap_err();
        assert!(matches!(e, DbError::TooNew { found: 2, known: 1 }), "{e}");
    }
}
