//! App secrets: versioned, each value sealed with AES-256-GCM under the
//! cluster secrets key and bound to (app, name, version).

use lain_store::secret::{open, reseal, seal};
use lain_store::value::SealedSecret;
use sqlx::any::AnyRow;
use sqlx::Row;
use zeroize::Zeroizing;

use super::{app_exists, lock_app, now_ms, validate, Db, DbError, SecretInfo};

/// The secrets repository ([`Db::secrets`]).
#[derive(Debug, Clone, Copy)]
pub struct Secrets<'a> {
    pub(crate) db: &'a Db,
}

/// The associated data a value is sealed with: a ciphertext copied to
/// another app, name or version no longer opens.
pub fn associated_data(app: &str, name: &str, version: i64) -> String {
    format!("lain-console/secret/{app}/{name}/{version}")
}

fn info_row(row: &AnyRow) -> Result<SecretInfo, DbError> {
    Ok(SecretInfo {
        app: row.try_get("app")?,
        name: row.try_get("name")?,
        version: row.try_get("current_version")?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What sealing the stored secrets again did ([`Secrets::reseal_stale`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resealed {
    /// Versions now sealed under the current key.
    pub resealed: u64,
    /// Versions that could not be opened (`app/name/version: why`): sealed
    /// under a key that is neither current nor retired, or damaged.
    pub failed: Vec<String>,
}

impl Secrets<'_> {
    /// Seals every stored version that another key sealed (a retired key,
    /// after a rotation) again under the current key. Each row is updated
    /// only if it is still as read, so it is safe beside a running console
    /// and to run again; a version that cannot be opened is reported and
    /// left as it is.
    pub async fn reseal_stale(&self) -> Result<Resealed, DbError> {
        let key = &self.db.key;
        let rows = sqlx::query(
            "SELECT app, name, version, alg, key_id, nonce_b64, ciphertext_b64 \
             FROM secret_versions WHERE key_id <> $1 ORDER BY app, name, version",
        )
        .bind(key.id())
        .fetch_all(&self.db.pool)
        .await?;
        let mut done = Resealed::default();
        for row in &rows {
            let (app, name, version): (String, String, i64) = (
                row.try_get("app")?,
                row.try_get("name")?,
                row.try_get("version")?,
            );
            let sealed = sealed_of(row)?;
            let again = match reseal(key, &sealed, &associated_data(&app, &name, version)) {
                Ok(s) => s,
                Err(e) => {
                    done.failed.push(format!("{app}/{name}/{version}: {e}"));
                    continue;
                }
            };
            let updated = sqlx::query(
                "UPDATE secret_versions SET alg = $1, key_id = $2, nonce_b64 = $3, ciphertext_b64 = $4 \
                 WHERE app = $5 AND name = $6 AND version = $7 AND key_id = $8 AND nonce_b64 = $9",
            )
            .bind(&again.alg)
            .bind(&again.key_id)
            .bind(&again.nonce_b64)
            .bind(&again.ciphertext_b64)
            .bind(&app)
            .bind(&name)
            .bind(version)
            .bind(&sealed.key_id)
            .bind(&sealed.nonce_b64)
            .execute(&self.db.pool)
            .await?;
            done.resealed += updated.rows_affected();
        }
        Ok(done)
    }

    /// Sets secret `name` of `app` to `value` as a new version (1 for a new
    /// name, the previous version + 1 otherwise, also after a removal:
    /// version numbers are never reused). Returns what `list` shows.
    pub async fn set(
        &self,
        app: &str,
        name: &str,
        value: &[u8],
        updated_by: &str,
    ) -> Result<SecretInfo, DbError> {
        validate::secret_name(name)?;
        validate::secret_value(value)?;
        validate::subject("updated_by", updated_by)?;
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, app).await? {
            return Err(DbError::no_app(app));
        }
        let previous: Option<i64> = sqlx::query(
            "SELECT MAX(version) AS v FROM secret_versions WHERE app = $1 AND name = $2",
        )
        .bind(app)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
        let version = previous.unwrap_or(0) + 1;
        let now = now_ms();
        let sealed =
            seal(&self.db.key, value, &associated_data(app, name, version)).map_err(|source| {
                DbError::Secret {
                    app: app.to_owned(),
                    name: name.to_owned(),
                    version,
                    source,
                }
            })?;
        if previous.is_none() {
            sqlx::query(
                "INSERT INTO secrets (app, name, current_version, updated_by, updated_at, removed_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
        } else {
            sqlx::query(
                "UPDATE secrets SET current_version = $3, updated_by = $4, updated_at = $5, \
                 removed_at = NULL WHERE app = $1 AND name = $2",
            )
        }
        .bind(app)
        .bind(name)
        .bind(version)
        .bind(updated_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO secret_versions (app, name, version, alg, key_id, nonce_b64, \
             ciphertext_b64, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(app)
        .bind(name)
        .bind(version)
        .bind(&sealed.alg)
        .bind(&sealed.key_id)
        .bind(&sealed.nonce_b64)
        .bind(&sealed.ciphertext_b64)
        .bind(updated_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SecretInfo {
            app: app.to_owned(),
            name: name.to_owned(),
            version,
            updated_by: updated_by.to_owned(),
            updated_at: now,
        })
    }

    /// The secrets of `app` that are not removed, by name: names and
    /// versions, never values.
    pub async fn list(&self, app: &str) -> Result<Vec<SecretInfo>, DbError> {
        let rows = sqlx::query(
            "SELECT app, name, current_version, updated_by, updated_at FROM secrets \
             WHERE app = $1 AND removed_at IS NULL ORDER BY name",
        )
        .bind(app)
        .fetch_all(&self.db.pool)
        .await?;
        if rows.is_empty() && !app_exists(&self.db.pool, app).await? {
            return Err(DbError::no_app(app));
        }
        rows.iter().map(info_row).collect()
    }

    /// The value of version `version` of secret `name` (also of a removed
    /// secret: rollbacks need old versions). Fails with
    /// [`DbError::Secret`] when the stored value does not open under this
    /// console's key and (app, name, version).
    pub async fn get_value(
        &self,
        app: &str,
        name: &str,
        version: i64,
    ) -> Result<Zeroizing<Vec<u8>>, DbError> {
        let row = sqlx::query(
            "SELECT alg, key_id, nonce_b64, ciphertext_b64 FROM secret_versions \
             WHERE app = $1 AND name = $2 AND version = $3",
        )
        .bind(app)
        .bind(name)
        .bind(version)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else {
            if !app_exists(&self.db.pool, app).await? {
                return Err(DbError::no_app(app));
            }
            return Err(DbError::NotFound {
                what: "secret",
                key: format!("{name}` version `{version}` of app `{app}"),
                hint: "; `lain secret list` shows the names and current versions",
            });
        };
        let sealed = sealed_of(&row)?;
        open(&self.db.key, &sealed, &associated_data(app, name, version)).map_err(|source| {
            DbError::Secret {
                app: app.to_owned(),
                name: name.to_owned(),
                version,
                source,
            }
        })
    }

    /// The current value of secret `name` and its version (not for a
    /// removed secret).
    pub async fn get_current(
        &self,
        app: &str,
        name: &str,
    ) -> Result<(i64, Zeroizing<Vec<u8>>), DbError> {
        let version = self.current_version(app, name).await?;
        Ok((version, self.get_value(app, name, version).await?))
    }

    async fn current_version(&self, app: &str, name: &str) -> Result<i64, DbError> {
        let row = sqlx::query(
            "SELECT current_version FROM secrets WHERE app = $1 AND name = $2 AND removed_at IS NULL",
        )
        .bind(app)
        .bind(name)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(row) => Ok(row.try_get("current_version")?),
            None if !app_exists(&self.db.pool, app).await? => Err(DbError::no_app(app)),
            None => Err(self::no_secret(app, name)),
        }
    }

    /// Removes secret `name`: it leaves `list` and new deployments, but its
    /// versions stay (sealed) so that rolling back to a deployment that
    /// used them restores them. Setting it again continues its version
    /// numbers. The versions go when the app is deleted.
    pub async fn remove(&self, app: &str, name: &str, removed_by: &str) -> Result<(), DbError> {
        validate::subject("removed_by", removed_by)?;
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, app).await? {
            return Err(DbError::no_app(app));
        }
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE secrets SET removed_at = $1, updated_by = $2, updated_at = $3 \
             WHERE app = $4 AND name = $5 AND removed_at IS NULL",
        )
        .bind(now)
        .bind(removed_by)
        .bind(now)
        .bind(app)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(no_secret(app, name));
        }
        tx.commit().await?;
        Ok(())
    }
}

fn no_secret(app: &str, name: &str) -> DbError {
    DbError::NotFound {
        what: "secret",
        key: format!("{name}` of app `{app}"),
        hint: "; `lain secret list` shows the names",
    }
}

/// The sealed value of a `secret_versions` row.
fn sealed_of(row: &sqlx::any::AnyRow) -> Result<SealedSecret, DbError> {
    Ok(SealedSecret {
        alg: row.try_get("alg")?,
        key_id: row.try_get("key_id")?,
        nonce_b64: row.try_get("nonce_b64")?,
        ciphertext_b64: row.try_get("ciphertext_b64")?,
    })
}
