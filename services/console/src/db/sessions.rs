//! The web console's sessions ([`Db::web_sessions`]). The web layer seals
//! the tokens; this module only stores rows. Times are unix seconds here,
//! like the tokens' `exp`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Db, DbError};

/// At most this many sessions per subject; a new login drops the oldest.
pub const MAX_SESSIONS_PER_SUBJECT: i64 = 20;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// base64url(SHA-256(cookie value)).
    pub id_hash: String,
    pub subject: String,
    pub username: String,
    /// The groups at login, JSON (display only, never authorization).
    pub groups_json: String,
    /// The sealed `{access, refresh, id_token}`, JSON of a `SealedSecret`.
    pub tokens_sealed: String,
    /// The access token's `exp`.
    pub access_exp: i64,
    pub token_version: i64,
    /// Until when a refresh is claimed (0: none).
    pub refreshing_until: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The absolute end of the session.
    pub expires_at: i64,
}

/// The web sessions table.
#[derive(Debug, Clone, Copy)]
pub struct WebSessions<'a> {
    pub(crate) db: &'a Db,
}

const COLS: &str = "id_hash, subject, username, groups_json, tokens_sealed, access_exp, \
    token_version, refreshing_until, created_at, last_seen_at, expires_at";

fn session_row(row: &AnyRow) -> Result<WebSession, DbError> {
    Ok(WebSession {
        id_hash: row.try_get("id_hash")?,
        subject: row.try_get("subject")?,
        username: row.try_get("username")?,
        groups_json: row.try_get("groups_json")?,
        tokens_sealed: row.try_get("tokens_sealed")?,
        access_exp: row.try_get("access_exp")?,
        token_version: row.try_get("token_version")?,
        refreshing_until: row.try_get("refreshing_until")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl WebSessions<'_> {
    /// Stores a new session. In the same transaction it deletes expired
    /// sessions (of anyone) and the subject's oldest beyond
    /// [`MAX_SESSIONS_PER_SUBJECT`] - 1, so the table stays bounded without a
    /// background job.
    pub async fn create(&self, s: &WebSession, now: i64) -> Result<(), DbError> {
        let mut tx = self.db.write_tx().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM web_sessions WHERE subject = $1 AND id_hash NOT IN \
             (SELECT id_hash FROM web_sessions WHERE subject = $1 \
              ORDER BY created_at DESC, id_hash LIMIT $2)",
        )
        .bind(&s.subject)
        .bind(MAX_SESSIONS_PER_SUBJECT - 1)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO web_sessions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&s.id_hash)
        .bind(&s.subject)
        .bind(&s.username)
        .bind(&s.groups_json)
        .bind(&s.tokens_sealed)
        .bind(s.access_exp)
        .bind(s.token_version)
        .bind(s.refreshing_until)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session, if it exists (expired or not: the caller decides).
    pub async fn get(&self, id_hash: &str) -> Result<Option<WebSession>, DbError> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM web_sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(&self.db.pool)
        .await?
        .as_ref()
        .map(session_row)
        .transpose()
    }

    /// Records activity (for the idle timeout).
    pub async fn touch(&self, id_hash: &str, now: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Claims the refresh of tokens version `version` until `until`. True
    /// for exactly one caller while the claim lasts, across replicas.
    pub async fn claim_refresh(
        &self,
        id_hash: &str,
        version: i64,
        now: i64,
        until: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE web_sessions SET refreshing_until = $1 \
             WHERE id_hash = $2 AND token_version = $3 AND refreshing_until < $4",
        )
        .bind(until)
        .bind(id_hash)
        .bind(version)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores refreshed tokens over version `version` (which becomes
    /// `version + 1`) and releases the claim. False if another writer got
    /// there first.
    pub async fn swap_tokens(
        &self,
        id_hash: &str,
        version: i64,
        tokens_sealed: &str,
        access_exp: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE web_sessions SET tokens_sealed = $1, access_exp = $2, \
             token_version = token_version + 1, refreshing_until = 0 \
             WHERE id_hash = $3 AND token_version = $4",
        )
        .bind(tokens_sealed)
        .bind(access_exp)
        .bind(id_hash)
        .bind(version)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a session (logout, a refused refresh). True if it existed.
    pub async fn delete(&self, id_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many sessions `subject` has (tests, the admin's view).
    pub async fn count_of(&self, subject: &str) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM web_sessions WHERE subject = $1")
            .bind(subject)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
