//! Deployments: what console asked the cluster to run, and how it went.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{
    app_exists, enum_col, json_col, lock_app, next_id, now_ms, page_limit, validate, Db, DbError,
    Deployment, DeploymentKind, DeploymentQuery, DeploymentSnapshot, DeploymentUpdate,
    NewDeployment, ProcSelection,
};

/// The deployments repository ([`Db::deployments`]).
#[derive(Debug, Clone, Copy)]
pub struct Deployments<'a> {
    pub(crate) db: &'a Db,
}

const COLS: &str = "id, app, kind, from_release, to_release, procs, requested_by, started_at, \
                    finished_at, state, error, generation, desired_json";

fn deployment_row(row: &AnyRow, secrets: BTreeMap<String, i64>) -> Result<Deployment, DbError> {
    let procs: Option<String> = row.try_get("procs")?;
    let procs = match procs {
        None => ProcSelection::All,
        Some(text) => {
            ProcSelection::Only(serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
                table: "deployments",
                detail: format!("column procs is not a JSON list of names: {e}"),
            })?)
        }
    };
    Ok(Deployment {
        id: row.try_get("id")?,
        app: row.try_get("app")?,
        kind: enum_col(row, "deployments", "kind")?,
        from_release: row.try_get("from_release")?,
        to_release: row.try_get("to_release")?,
        procs,
        requested_by: row.try_get("requested_by")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        state: enum_col(row, "deployments", "state")?,
        error: row.try_get("error")?,
        generation: row.try_get("generation")?,
        snapshot: DeploymentSnapshot {
            desired: json_col(row, "deployments", "desired_json")?,
            secrets,
        },
    })
}

async fn release_exists(
    tx: &mut Transaction<'_, Any>,
    app: &str,
    version: &str,
) -> Result<bool, DbError> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM releases WHERE app = $1 AND version = $2")
            .bind(app)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

impl Deployments<'_> {
    /// Records a new deployment (state `pending`, started now) with its
    /// snapshot. The app, the releases and every secret version the
    /// snapshot names must exist; an undeploy has no `to_release`, every
    /// other kind has one.
    pub async fn create(&self, new: &NewDeployment) -> Result<Deployment, DbError> {
        validate::subject("requested_by", &new.requested_by)?;
        match (new.kind, &new.to_release) {
            (DeploymentKind::Undeploy, Some(_)) => {
                return Err(DbError::invalid(
                    "deployment",
                    "an undeploy has no release to deploy; leave to_release out",
                ))
            }
            (DeploymentKind::Undeploy, None) => {}
            (kind, None) => {
                return Err(DbError::invalid(
                    "deployment",
                    format!("a {kind} needs the release it deploys (to_release)"),
                ))
            }
            _ => {}
        }
        let procs = match &new.procs {
            ProcSelection::All => None,
            ProcSelection::Only(list) => {
                if list.is_empty() {
                    return Err(DbError::invalid(
                        "procs",
                        "the list of procs is empty; name at least one, or deploy all",
                    ));
                }
                for p in list {
                    validate::proc_name(p)?;
                }
                Some(
                    serde_json::to_string(list)
                        .map_err(|e| DbError::invalid("procs", e.to_string()))?,
                )
            }
        };
        let desired = serde_json::to_string(&new.snapshot.desired)
            .map_err(|e| DbError::invalid("desired state", e.to_string()))?;
        if desired.len() > validate::MAX_DESIRED_BYTES {
            return Err(DbError::TooLarge {
                what: "the desired state snapshot",
                size: desired.len(),
                max: validate::MAX_DESIRED_BYTES,
            });
        }
        let mut tx = self.db.write_tx().await?;
        if !lock_app(&mut tx, &new.app).await? {
            return Err(DbError::no_app(&new.app));
        }
        for version in [&new.from_release, &new.to_release].into_iter().flatten() {
            if !release_exists(&mut tx, &new.app, version).await? {
                return Err(DbError::NotFound {
                    what: "release",
                    key: format!("{version}` of app `{}", new.app),
                    hint: "; `lain releases` lists the registered ones",
                });
            }
        }
        for (name, version) in &new.snapshot.secrets {
            let found = sqlx::query(
                "SELECT 1 AS one FROM secret_versions WHERE app = $1 AND name = $2 AND version = $3",
            )
            .bind(&new.app)
            .bind(name)
            .bind(*version)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Err(DbError::NotFound {
                    what: "secret version",
                    key: format!("{name}` version `{version}` of app `{}", new.app),
                    hint: "; a deployment can only use secret versions that were set",
                });
            }
        }
        let id = next_id(&mut tx, "deployments").await?;
        let d = Deployment {
            id,
            app: new.app.clone(),
            kind: new.kind,
            from_release: new.from_release.clone(),
            to_release: new.to_release.clone(),
            procs: new.procs.clone(),
            requested_by: new.requested_by.clone(),
            started_at: now_ms(),
            finished_at: None,
            state: super::DeploymentState::Pending,
            error: None,
            generation: new.generation,
            snapshot: new.snapshot.clone(),
        };
        sqlx::query(
            "INSERT INTO deployments (id, app, kind, from_release, to_release, procs, \
             requested_by, started_at, finished_at, state, error, generation, desired_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, $10, $11)",
        )
        .bind(d.id)
        .bind(&d.app)
        .bind(d.kind.as_str())
        .bind(&d.from_release)
        .bind(&d.to_release)
        .bind(procs)
        .bind(&d.requested_by)
        .bind(d.started_at)
        .bind(d.state.as_str())
        .bind(d.generation)
        .bind(desired)
        .execute(&mut *tx)
        .await?;
        for (name, version) in &d.snapshot.secrets {
            sqlx::query(
                "INSERT INTO deployment_secrets (deployment_id, name, version) VALUES ($1, $2, $3)",
            )
            .bind(d.id)
            .bind(name)
            .bind(*version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(d)
    }

    /// Moves deployment `id` to `update.state` (forward only; a final
    /// state is set once and gets `finished_at`), recording the error and
    /// the generation when given.
    pub async fn update(&self, id: i64, update: &DeploymentUpdate) -> Result<Deployment, DbError> {
        let mut tx = self.db.write_tx().await?;
        let row = sqlx::query("SELECT state FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::not_found("deployment", id.to_string()))?;
        let from: super::DeploymentState = enum_col(&row, "deployments", "state")?;
        if !from.can_become(update.state) {
            return Err(DbError::InvalidTransition {
                id,
                from: from.as_str(),
                to: update.state.as_str(),
                terminal: from.is_final(),
            });
        }
        let finished_at = update.state.is_final().then(now_ms);
        let error = update
            .error
            .clone()
            .map(|e| validate::truncate(e, validate::MAX_TEXT));
        sqlx::query(
            "UPDATE deployments SET state = $1, finished_at = COALESCE($2, finished_at), \
             error = COALESCE($3, error), generation = COALESCE($4, generation) WHERE id = $5",
        )
        .bind(update.state.as_str())
        .bind(finished_at)
        .bind(error)
        .bind(update.generation)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let d = get_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(d)
    }

    /// The newest generation any deployment of `app` wrote (0 for none).
    pub async fn max_generation(&self, app: &str) -> Result<u64, DbError> {
        let row =
            sqlx::query("SELECT COALESCE(MAX(generation), 0) AS g FROM deployments WHERE app = $1")
                .bind(app)
                .fetch_one(&self.db.pool)
                .await?;
        let g: i64 = row.try_get("g")?;
        Ok(u64::try_from(g).unwrap_or(0))
    }

    /// Deployment `id`.
    pub async fn get(&self, id: i64) -> Result<Deployment, DbError> {
        let mut tx = self.db.pool.begin().await?;
        let d = get_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(d)
    }

    /// The deployments of `app`, newest first.
    pub async fn list(&self, app: &str, q: &DeploymentQuery) -> Result<Vec<Deployment>, DbError> {
        let mut sql = format!("SELECT {COLS} FROM deployments WHERE app = $1");
        let mut n = 1;
        if q.state.is_some() {
            n += 1;
            sql.push_str(&format!(" AND state = ${n}"));
        }
        if q.before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id < ${n}"));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(app);
        if let Some(s) = q.state {
            query = query.bind(s.as_str());
        }
        if let Some(b) = q.before {
            query = query.bind(b);
        }
        let mut tx = self.db.pool.begin().await?;
        let rows = query.bind(page_limit(q.limit)).fetch_all(&mut *tx).await?;
        if rows.is_empty() && !app_exists(&mut *tx, app).await? {
            return Err(DbError::no_app(app));
        }
        // The page's secret versions in one query, not one per row: the
        // page's ids lie between its first and last (newest first).
        let mut secrets: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let (hi, lo): (i64, i64) = (first.try_get("id")?, last.try_get("id")?);
            let found = sqlx::query(
                "SELECT s.deployment_id, s.name, s.version FROM deployment_secrets s \
                 JOIN deployments d ON d.id = s.deployment_id \
                 WHERE d.app = $1 AND s.deployment_id BETWEEN $2 AND $3",
            )
            .bind(app)
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *tx)
            .await?;
            for r in &found {
                secrets
                    .entry(r.try_get("deployment_id")?)
                    .or_default()
                    .insert(r.try_get("name")?, r.try_get("version")?);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            out.push(deployment_row(
                row,
                secrets.remove(&id).unwrap_or_default(),
            )?);
        }
        tx.commit().await?;
        Ok(out)
    }
}

async fn secrets_of(
    tx: &mut Transaction<'_, Any>,
    id: i64,
) -> Result<BTreeMap<String, i64>, DbError> {
    let rows = sqlx::query("SELECT name, version FROM deployment_secrets WHERE deployment_id = $1")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("version")?)))
        .collect()
}

async fn get_in(tx: &mut Transaction<'_, Any>, id: i64) -> Result<Deployment, DbError> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM deployments WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| DbError::not_found("deployment", id.to_string()))?;
    let secrets = secrets_of(tx, id).await?;
    deployment_row(&row, secrets)
}
