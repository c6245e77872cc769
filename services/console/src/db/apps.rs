//! Apps and their maintainers.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    app_exists, enum_col, lock_app, now_ms, validate, App, Db, DbError, Maintainer, NewApp, Role,
};

/// The apps repository ([`Db::apps`]).
#[derive(Debug, Clone, Copy)]
pub struct Apps<'a> {
    pub(crate) db: &'a Db,
}

/// The maintainers repository ([`Db::maintainers`]).
#[derive(Debug, Clone, Copy)]
pub struct Maintainers<'a> {
    pub(crate) db: &'a Db,
}

fn app_row(row: &AnyRow) -> Result<App, DbError> {
    Ok(App {
        name: row.try_get("name")?,
        apptype: enum_col(row, "apps", "apptype")?,
        giturl: row.try_get("giturl")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn maintainer_row(row: &AnyRow) -> Result<Maintainer, DbError> {
    Ok(Maintainer {
        app: row.try_get("app")?,
        subject: row.try_get("subject")?,
        role: enum_col(row, "maintainers", "role")?,
        added_by: row.try_get("added_by")?,
        added_at: row.try_get("added_at")?,
    })
}

const APP_COLS: &str = "name, apptype, giturl, created_by, created_at";
const MAINTAINER_COLS: &str = "app, subject, role, added_by, added_at";

impl Apps<'_> {
    /// Creates an app and makes its creator its first owner, in one
    /// transaction. A name taken (also in another letter case) is
    /// [`DbError::AlreadyExists`].
    pub async fn create(&self, new: &NewApp) -> Result<App, DbError> {
        validate::app_name(&new.name)?;
        validate::subject("created_by", &new.created_by)?;
        if let Some(u) = &new.giturl {
            validate::giturl(u)?;
        }
        let app = App {
            name: new.name.clone(),
            apptype: new.apptype,
            giturl: new.giturl.clone(),
            created_by: new.created_by.clone(),
            created_at: now_ms(),
        };
        let folded = app.name.to_ascii_lowercase();
        let mut tx = self.db.write_tx().await?;
        if let Some(row) = sqlx::query("SELECT name FROM apps WHERE name_folded = $1")
            .bind(&folded)
            .fetch_optional(&mut *tx)
            .await?
        {
            let existing: String = row.try_get("name")?;
            return Err(already_exists(&app.name, &existing));
        }
        let inserted = sqlx::query(
            "INSERT INTO apps (name, name_folded, apptype, giturl, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&app.name)
        .bind(&folded)
        .bind(app.apptype.as_str())
        .bind(&app.giturl)
        .bind(&app.created_by)
        .bind(app.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if DbError::is_unique_violation(&e) => {
                return Err(already_exists(&app.name, &app.name))
            }
            r => r?,
        };
        sqlx::query(
            "INSERT INTO maintainers (app, subject, role, added_by, added_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&app.name)
        .bind(&app.created_by)
        .bind(Role::Owner.as_str())
        .bind(&app.created_by)
        .bind(app.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(app)
    }

    /// The app `name`; [`DbError::NotFound`] if there is none.
    pub async fn get(&self, name: &str) -> Result<App, DbError> {
        let row = sqlx::query(&format!("SELECT {APP_COLS} FROM apps WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| DbError::no_app(name))?;
        app_row(&row)
    }

    /// Every app, by name.
    pub async fn list(&self) -> Result<Vec<App>, DbError> {
        sqlx::query(&format!("SELECT {APP_COLS} FROM apps ORDER BY name"))
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(app_row)
            .collect()
    }

    /// The apps `subject` maintains, by name.
    pub async fn list_maintained_by(&self, subject: &str) -> Result<Vec<App>, DbError> {
        sqlx::query(
            "SELECT a.name, a.apptype, a.giturl, a.created_by, a.created_at \
             FROM apps a JOIN maintainers m ON m.app = a.name \
             WHERE m.subject = $1 ORDER BY a.name",
        )
        .bind(subject)
        .fetch_all(&self.db.pool)
        .await?
        .iter()
        .map(app_row)
        .collect()
    }

    /// Deletes the app with its maintainers, releases, deployments and
    /// secrets (every version), in one transaction. The audit log keeps
    /// its entries. Taking the app out of etcd first is the caller's job.
    pub async fn delete(&self, name: &str) -> Result<(), DbError> {
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, name).await? {
            return Err(DbError::no_app(name));
        }
        for sql in [
            "DELETE FROM deployment_secrets WHERE deployment_id IN \
             (SELECT id FROM deployments WHERE app = $1)",
            "DELETE FROM deployments WHERE app = $1",
            "DELETE FROM secret_versions WHERE app = $1",
            "DELETE FROM secrets WHERE app = $1",
            "DELETE FROM releases WHERE app = $1",
            "DELETE FROM maintainers WHERE app = $1",
            "DELETE FROM apps WHERE name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn already_exists(wanted: &str, existing: &str) -> DbError {
    DbError::AlreadyExists {
        what: "app",
        key: existing.to_owned(),
        hint: if wanted == existing {
            "; choose another name, or deploy to the existing app".into()
        } else {
            format!(
                "; `{wanted}` differs from it only in letter case, and both would share \
                 one domain and image repository: choose another name"
            )
        },
    }
}

impl Maintainers<'_> {
    /// Adds `subject` to `app` with `role`, or changes the role of an
    /// existing maintainer (refusing to demote the last owner). Returns
    /// the maintainer as stored.
    pub async fn add(
        &self,
        app: &str,
        subject: &str,
        role: Role,
        added_by: &str,
    ) -> Result<Maintainer, DbError> {
        validate::subject("maintainer", subject)?;
        validate::subject("added_by", added_by)?;
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, app).await? {
            return Err(DbError::no_app(app));
        }
        let existing = sqlx::query(&format!(
            "SELECT {MAINTAINER_COLS} FROM maintainers WHERE app = $1 AND subject = $2"
        ))
        .bind(app)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| maintainer_row(&r))
        .transpose()?;
        let m = match existing {
            Some(m) if m.role == role => return Ok(m),
            Some(m) => {
                if m.role == Role::Owner && owners(&mut tx, app).await? <= 1 {
                    return Err(DbError::LastOwner {
                        app: app.to_owned(),
                        subject: subject.to_owned(),
                    });
                }
                sqlx::query("UPDATE maintainers SET role = $1 WHERE app = $2 AND subject = $3")
                    .bind(role.as_str())
                    .bind(app)
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
                Maintainer { role, ..m }
            }
            None => {
                let m = Maintainer {
                    app: app.to_owned(),
                    subject: subject.to_owned(),
                    role,
                    added_by: added_by.to_owned(),
                    added_at: now_ms(),
                };
                sqlx::query(
                    "INSERT INTO maintainers (app, subject, role, added_by, added_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&m.app)
                .bind(&m.subject)
                .bind(m.role.as_str())
                .bind(&m.added_by)
                .bind(m.added_at)
                .execute(&mut *tx)
                .await?;
                m
            }
        };
        tx.commit().await?;
        Ok(m)
    }

    /// Removes `subject` from `app`; refuses to remove the last owner.
    pub async fn remove(&self, app: &str, subject: &str) -> Result<(), DbError> {
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, app).await? {
            return Err(DbError::no_app(app));
        }
        let role: Role =
            match sqlx::query("SELECT role FROM maintainers WHERE app = $1 AND subject = $2")
                .bind(app)
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(row) => enum_col(&row, "maintainers", "role")?,
                None => {
                    return Err(DbError::NotFound {
                        what: "maintainer",
                        key: format!("{subject}` of app `{app}"),
                        hint: "; `lain maintainer list` shows who maintains it",
                    })
                }
            };
        if role == Role::Owner && owners(&mut tx, app).await? <= 1 {
            return Err(DbError::LastOwner {
                app: app.to_owned(),
                subject: subject.to_owned(),
            });
        }
        sqlx::query("DELETE FROM maintainers WHERE app = $1 AND subject = $2")
            .bind(app)
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The maintainers of `app`, owners first, then by subject.
    pub async fn list(&self, app: &str) -> Result<Vec<Maintainer>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {MAINTAINER_COLS} FROM maintainers WHERE app = $1 \
             ORDER BY CASE role WHEN 'owner' THEN 0 ELSE 1 END, subject"
        ))
        .bind(app)
        .fetch_all(&self.db.pool)
        .await?;
        if rows.is_empty() && !app_exists(&self.db.pool, app).await? {
            return Err(DbError::no_app(app));
        }
        rows.iter().map(maintainer_row).collect()
    }

    /// The role of `subject` in `app`, if it maintains it.
    pub async fn role(&self, app: &str, subject: &str) -> Result<Option<Role>, DbError> {
        sqlx::query("SELECT role FROM maintainers WHERE app = $1 AND subject = $2")
            .bind(app)
            .bind(subject)
            .fetch_optional(&self.db.pool)
            .await?
            .map(|row| enum_col(&row, "maintainers", "role"))
            .transpose()
    }

    /// Whether `subject` maintains `app` (as owner or maintainer). False
    /// for an app that does not exist.
    pub async fn is_maintainer(&self, app: &str, subject: &str) -> Result<bool, DbError> {
        Ok(self.role(app, subject).await?.is_some())
    }
}

/// How many owners `app` has, inside `tx`.
async fn owners(tx: &mut sqlx::Transaction<'_, sqlx::Any>, app: &str) -> Result<i64, DbError> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM maintainers WHERE app = $1 AND role = 'owner'")
            .bind(app)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row.try_get("n")?)
}
