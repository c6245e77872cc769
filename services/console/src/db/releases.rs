//! Releases: the builds `lain push` registers.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{app_exists, lock_app, now_ms, validate, Db, DbError, NewRelease, Registered, Release};

/// The releases repository ([`Db::releases`]).
#[derive(Debug, Clone, Copy)]
pub struct Releases<'a> {
    pub(crate) db: &'a Db,
}

const COLS: &str = "app, version, image, digest, lain_yaml, pushed_by, pushed_at";
/// Newest first: by the commit time in the version, then by push time.
const NEWEST_FIRST: &str = "ORDER BY commit_time DESC, pushed_at DESC, version DESC";

fn release_row(row: &AnyRow) -> Result<Release, DbError> {
    Ok(Release {
        app: row.try_get("app")?,
        version: row.try_get("version")?,
        image: row.try_get("image")?,
        digest: row.try_get("digest")?,
        lain_yaml: row.try_get("lain_yaml")?,
        pushed_by: row.try_get("pushed_by")?,
        pushed_at: row.try_get("pushed_at")?,
    })
}

impl Releases<'_> {
    /// Registers a release. Registering the same version again with the
    /// same image, digest and lain.yaml changes nothing (`created` is
    /// false); with any of them different it is a
    /// [`DbError::ReleaseConflict`].
    pub async fn register(&self, new: &NewRelease) -> Result<Registered, DbError> {
        let commit_time = validate::release_version(&new.version)?;
        validate::image(&new.image)?;
        validate::digest(&new.digest)?;
        validate::lain_yaml(&new.lain_yaml)?;
        validate::subject("pushed_by", &new.pushed_by)?;
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, &new.app).await? {
            return Err(DbError::no_app(&new.app));
        }
        if let Some(row) = sqlx::query(&format!(
            "SELECT {COLS} FROM releases WHERE app = $1 AND version = $2"
        ))
        .bind(&new.app)
        .bind(&new.version)
        .fetch_optional(&mut *tx)
        .await?
        {
            let old = release_row(&row)?;
            let field = if old.image != new.image {
                "image"
            } else if old.digest != new.digest {
                "digest"
            } else if old.lain_yaml != new.lain_yaml {
                "lain.yaml"
            } else {
                return Ok(Registered {
                    release: old,
                    created: false,
                });
            };
            return Err(DbError::ReleaseConflict {
                app: new.app.clone(),
                version: new.version.clone(),
                field,
            });
        }
        let release = Release {
            app: new.app.clone(),
            version: new.version.clone(),
            image: new.image.clone(),
            digest: new.digest.clone(),
            lain_yaml: new.lain_yaml.clone(),
            pushed_by: new.pushed_by.clone(),
            pushed_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO releases \
             (app, version, commit_time, image, digest, lain_yaml, pushed_by, pushed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&release.app)
        .bind(&release.version)
        .bind(commit_time)
        .bind(&release.image)
        .bind(&release.digest)
        .bind(&release.lain_yaml)
        .bind(&release.pushed_by)
        .bind(release.pushed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Registered {
            release,
            created: true,
        })
    }

    /// Release `version` of `app`.
    pub async fn get(&self, app: &str, version: &str) -> Result<Release, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM releases WHERE app = $1 AND version = $2"
        ))
        .bind(app)
        .bind(version)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(row) => release_row(&row),
            None if !app_exists(&self.db.pool, app).await? => Err(DbError::no_app(app)),
            None => Err(DbError::NotFound {
                what: "release",
                key: format!("{version}` of app `{app}"),
                hint: "; `lain releases` lists the registered ones, `lain push` registers one",
            }),
        }
    }

    /// The releases of `app`, newest first (by commit time, then push
    /// time), at most `limit` (0 = 100, at most 1000).
    pub async fn list(&self, app: &str, limit: u32) -> Result<Vec<Release>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM releases WHERE app = $1 {NEWEST_FIRST} LIMIT $2"
        ))
        .bind(app)
        .bind(super::page_limit(limit))
        .fetch_all(&self.db.pool)
        .await?;
        if rows.is_empty() && !app_exists(&self.db.pool, app).await? {
            return Err(DbError::no_app(app));
        }
        rows.iter().map(release_row).collect()
    }

    /// The newest release of `app`, if any.
    pub async fn latest(&self, app: &str) -> Result<Option<Release>, DbError> {
        Ok(self.list(app, 1).await?.into_iter().next())
    }
}
