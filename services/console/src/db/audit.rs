//! The audit log: append-only.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    enum_col, json_col, next_id, now_ms, page_limit, validate, AuditEntry, AuditQuery, Db, DbError,
    NewAuditEntry,
};

/// The audit log ([`Db::audit`]). There is no call that changes or
/// deletes an entry.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub(crate) db: &'a Db,
}

const COLS: &str = "id, at, actor, action, app, target, detail, result, request_id";

fn entry_row(row: &AnyRow) -> Result<AuditEntry, DbError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        app: row.try_get("app")?,
        target: row.try_get("target")?,
        detail: json_col(row, "audit_log", "detail")?,
        result: enum_col(row, "audit_log", "result")?,
        request_id: row.try_get("request_id")?,
    })
}

/// Cuts what a caller may not control (a denied request's app name, a
/// target) to a bounded size instead of failing: an audit entry is never
/// lost to odd input.
fn bounded(s: &Option<String>, max: usize) -> Option<String> {
    s.clone().map(|s| validate::truncate(s, max))
}

impl Audit<'_> {
    /// Appends an entry (time now, the next id) and returns it. `actor`
    /// is cut to 255 bytes (empty becomes `anonymous`), `app`, `target`
    /// and `request_id` to 1024; `detail` must serialize to at most 16 KiB
    /// and never hold a secret value.
    pub async fn record(&self, new: &NewAuditEntry) -> Result<AuditEntry, DbError> {
        validate::audit_action(&new.action)?;
        let detail = serde_json::to_string(&new.detail)
            .map_err(|e| DbError::invalid("audit detail", e.to_string()))?;
        if detail.len() > validate::MAX_DETAIL_BYTES {
            return Err(DbError::TooLarge {
                what: "the audit detail",
                size: detail.len(),
                max: validate::MAX_DETAIL_BYTES,
            });
        }
        let actor = if new.actor.is_empty() {
            "anonymous".to_owned()
        } else {
            validate::truncate(new.actor.clone(), validate::MAX_SUBJECT)
        };
        let mut tx = self.db.write_tx().await?;
        let id = next_id(&mut tx, "audit_log").await?;
        let entry = AuditEntry {
            id,
            at: now_ms(),
            actor,
            action: new.action.clone(),
            app: bounded(&new.app, validate::MAX_TEXT),
            target: bounded(&new.target, validate::MAX_TEXT),
            detail: new.detail.clone(),
            result: new.result,
            request_id: bounded(&new.request_id, validate::MAX_TEXT),
        };
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, app, target, detail, result, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.id)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.app)
        .bind(&entry.target)
        .bind(detail)
        .bind(entry.result.as_str())
        .bind(&entry.request_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Entries newest first, filtered by app, actor, action and result,
    /// below id `before`.
    pub async fn list(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, DbError> {
        let mut conds = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if q.app.is_some() {
            conds.push(format!("app = ${}", next()));
        }
        if q.actor.is_some() {
            conds.push(format!("actor = ${}", next()));
        }
        if q.action.is_some() {
            conds.push(format!("action = ${}", next()));
        }
        if q.result.is_some() {
            conds.push(format!("result = ${}", next()));
        }
        if q.before.is_some() {
            conds.push(format!("id < ${}", next()));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLS} FROM audit_log {filter} ORDER BY id DESC LIMIT ${}",
            next()
        );
        let mut query = sqlx::query(&sql);
        if let Some(a) = &q.app {
            query = query.bind(a);
        }
        if let Some(a) = &q.actor {
            query = query.bind(a);
        }
        if let Some(a) = &q.action {
            query = query.bind(a);
        }
        if let Some(r) = q.result {
            query = query.bind(r.as_str());
        }
        if let Some(b) = q.before {
            query = query.bind(b);
        }
        query
            .bind(page_limit(q.limit))
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(entry_row)
            .collect()
    }
}
