//! Grants and what hangs off them: authorization codes, refresh tokens,
//! device codes, browser sessions. Every secret is looked up by its hash.

use sqlx::Row;

use crate::db::Db;
use crate::error::StoreError;
use crate::now;
use crate::secret::{random_id, random_token, token_hash};

/// An authorization the user gave a client.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_name: String,
    pub scope: String,
    pub auth_time: i64,
    pub revoked: bool,
}

/// A stored authorization code.
#[derive(Debug, Clone)]
pub struct Code {
    pub grant: Grant,
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
}

/// What using a refresh token found.
#[derive(Debug)]
pub enum RefreshUse {
    /// Unknown or expired token.
    Invalid,
    /// Already used: the grant was revoked.
    Reused(Grant),
    /// Valid; it is now used and may not be used again.
    Ok(Grant),
}

/// A device authorization's state.
#[derive(Debug, Clone)]
pub struct Device {
    pub device_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub status: String,
    pub user_name: Option<String>,
    pub auth_time: Option<i64>,
    pub interval_secs: i64,
    pub last_poll_at: Option<i64>,
    pub expires_at: i64,
}

fn grant_from_row(r: &sqlx::any::AnyRow) -> Result<Grant, sqlx::Error> {
    Ok(Grant {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        user_name: r.try_get("user_name")?,
        scope: r.try_get("scope")?,
        auth_time: r.try_get("auth_time")?,
        revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

const GRANT_COLS: &str = "g.id, g.client_id, g.user_name, g.scope, g.auth_time, g.revoked_at";

impl Db {
    pub async fn create_grant(
        &self,
        client_id: &str,
        user: &str,
        scope: &str,
        auth_time: i64,
        expires_at: i64,
    ) -> Result<Grant, StoreError> {
        let id = random_id();
        sqlx::query(
            "INSERT INTO grants (id, client_id, user_name, scope, auth_time, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(client_id)
        .bind(user)
        .bind(scope)
        .bind(auth_time)
        .bind(now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(Grant {
            id,
            client_id: client_id.into(),
            user_name: user.into(),
            scope: scope.into(),
            auth_time,
            revoked: false,
        })
    }

    /// Revokes a grant: its refresh tokens stop working, and so do its
    /// access tokens at `/userinfo` (and at services that check).
    pub async fn revoke_grant(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLS} FROM grants g WHERE g.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(grant_from_row).transpose()?)
    }

    /// Stores a new code for a grant; returns the code itself.
    pub async fn create_code(
        &self,
        grant: &Grant,
        redirect_uri: &str,
        nonce: Option<&str>,
        code_challenge: Option<&str>,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let code = random_token();
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_id, client_id, redirect_uri, nonce, code_challenge, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash(&code))
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(redirect_uri)
        .bind(nonce.map(str::to_owned))
        .bind(code_challenge.map(str::to_owned))
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(code)
    }

    /// Finds a code issued to `client_id`. `None`: unknown, or issued to
    /// another client. `Some((code, used))`: `used` is true when it was
    /// redeemed before. Changes nothing: see [`Db::mark_code_used`].
    pub async fn find_code(
        &self,
        code: &str,
        client_id: &str,
    ) -> Result<Option<(Code, bool)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLS}, c.redirect_uri, c.nonce, c.code_challenge, c.expires_at, c.used_at \
             FROM auth_codes c JOIN grants g ON g.id = c.grant_id WHERE c.code_hash = $1"
        ))
        .bind(token_hash(code))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let c = Code {
            grant: grant_from_row(&r)?,
            redirect_uri: r.try_get("redirect_uri")?,
            nonce: r.try_get("nonce")?,
            code_challenge: r.try_get("code_challenge")?,
            expires_at: r.try_get("expires_at")?,
        };
        if c.grant.client_id != client_id {
            return Ok(None);
        }
        let used = r.try_get::<Option<i64>, _>("used_at")?.is_some();
        Ok(Some((c, used)))
    }

    /// Marks a code redeemed; false when another request did first.
    pub async fn mark_code_used(&self, code: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL",
        )
        .bind(now())
        .bind(token_hash(code))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Stores a new refresh token for a grant; returns the token.
    pub async fn create_refresh(
        &self,
        grant_id: &str,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let t = random_token();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&t))
        .bind(grant_id)
        .bind(now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE grants SET expires_at = $1 WHERE id = $2 AND expires_at < $1")
            .bind(expires_at)
            .bind(grant_id)
            .execute(&self.pool)
            .await?;
        Ok(t)
    }

    /// Uses a refresh token once. A second use of the same token revokes
    /// its grant (RFC 9700 §4.14.2: reuse means it leaked).
    pub async fn use_refresh(&self, token: &str) -> Result<RefreshUse, StoreError> {
        let h = token_hash(token);
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLS}, r.expires_at AS r_exp, r.used_at AS r_used \
             FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1"
        ))
        .bind(&h)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(RefreshUse::Invalid);
        };
        let grant = grant_from_row(&r)?;
        let exp: i64 = r.try_get("r_exp")?;
        let used: Option<i64> = r.try_get("r_used")?;
        if grant.revoked {
            return Ok(RefreshUse::Invalid);
        }
        if used.is_some() {
            self.revoke_grant(&grant.id).await?;
            return Ok(RefreshUse::Reused(grant));
        }
        if exp <= now() {
            return Ok(RefreshUse::Invalid);
        }
        let n = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now())
        .bind(&h)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n != 1 {
            // Another request used it at the same moment: a replay race.
            self.revoke_grant(&grant.id).await?;
            return Ok(RefreshUse::Reused(grant));
        }
        Ok(RefreshUse::Ok(grant))
    }

    /// Finds the grant of a refresh token (for revocation).
    pub async fn refresh_grant(&self, token: &str) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLS} FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1"
        ))
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(grant_from_row).transpose()?)
    }

    // ---- device codes ----------------------------------------------------

    /// Stores a device authorization; returns (device_code, user_code).
    pub async fn create_device(
        &self,
        client_id: &str,
        scope: &str,
        interval: i64,
        expires_at: i64,
    ) -> Result<(String, String), StoreError> {
        for _ in 0..5 {
            let device_code = random_token();
            let user_code = crate::secret::user_code();
            let r = sqlx::query(
                "INSERT INTO device_codes (device_code_hash, user_code_hash, client_id, scope, status, interval_secs, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
            )
            .bind(token_hash(&device_code))
            .bind(token_hash(&crate::secret::normalize_user_code(&user_code)))
            .bind(client_id)
            .bind(scope)
            .bind(interval)
            .bind(now())
            .bind(expires_at)
            .execute(&self.pool)
            .await;
            match r {
                Ok(_) => return Ok((device_code, user_code)),
                // A user code collision: draw again.
                Err(sqlx::Error::Database(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Crypto("cannot draw a unique user code".into()))
    }

    fn device_from_row(r: &sqlx::any::AnyRow) -> Result<Device, sqlx::Error> {
        Ok(Device {
            device_code_hash: r.try_get("device_code_hash")?,
            client_id: r.try_get("client_id")?,
            scope: r.try_get("scope")?,
            status: r.try_get("status")?,
            user_name: r.try_get("user_name")?,
            auth_time: r.try_get("auth_time")?,
            interval_secs: r.try_get("interval_secs")?,
            last_poll_at: r.try_get("last_poll_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    }

    pub async fn device_by_code(&self, device_code: &str) -> Result<Option<Device>, StoreError> {
        let row = sqlx::query("SELECT * FROM device_codes WHERE device_code_hash = $1")
            .bind(token_hash(device_code))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Self::device_from_row).transpose()?)
    }

    pub async fn device_by_user_code(&self, user_code: &str) -> Result<Option<Device>, StoreError> {
        let row = sqlx::query("SELECT * FROM device_codes WHERE user_code_hash = $1")
            .bind(token_hash(&crate::secret::normalize_user_code(user_code)))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Self::device_from_row).transpose()?)
    }

    /// Records a poll; `slow_down` raises the interval by 5 s (RFC 8628).
    pub async fn device_polled(&self, hash: &str, interval: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE device_codes SET last_poll_at = $1, interval_secs = $2 WHERE device_code_hash = $3")
            .bind(now())
            .bind(interval)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user approves or denies a pending device code. False when it
    /// was no longer pending.
    pub async fn device_decide(
        &self,
        hash: &str,
        user: &str,
        approve: bool,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE device_codes SET status = $1, user_name = $2, auth_time = $3 \
             WHERE device_code_hash = $4 AND status = 'pending' AND expires_at > $3",
        )
        .bind(if approve { "approved" } else { "denied" })
        .bind(user)
        .bind(now())
        .bind(hash)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Marks an approved device code used; false when it already was.
    pub async fn device_consume(&self, hash: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE device_codes SET status = 'used' WHERE device_code_hash = $1 AND status = 'approved'")
            .bind(hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    // ---- browser sessions ------------------------------------------------

    /// Starts a session; returns the cookie value.
    pub async fn create_session(&self, user: &str, expires_at: i64) -> Result<String, StoreError> {
        let id = random_token();
        sqlx::query("INSERT INTO sessions (id_hash, user_name, auth_time, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash(&id))
            .bind(user)
            .bind(now())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// The session's (user, auth_time), if it is live and its user enabled.
    pub async fn session(&self, id: &str) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_name, s.auth_time FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(token_hash(id))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((r.try_get("user_name")?, r.try_get("auth_time")?))),
        }
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(token_hash(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes expired rows. Used codes are kept until they expire, so a
    /// replay within their lifetime is still caught.
    pub async fn cleanup(&self) -> Result<(), StoreError> {
        let t = now();
        for sql in [
            "DELETE FROM auth_codes WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM device_codes WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM grants WHERE expires_at <= $1",
        ] {
            sqlx::query(sql).bind(t).execute(&self.pool).await?;
        }
        Ok(())
    }
}
