//! Users, groups and OAuth clients: the admin operations the CLI (and the
//! token code) use. Names are checked here, once.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::config::PasswordHashConfig;
use crate::db::Db;
use crate::error::{AdminError, StoreError};
use crate::secret::{self, Secret};
use crate::{now, password};

/// A user as shown to admins (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub email: String,
    pub full_name: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// A group. `parent` makes it a subgroup: its members are members of the
/// parent too, as in LAIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: String,
    pub role: Role,
}

/// A member's role in a group: admins manage the group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Normal,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Normal => "normal",
        }
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "admin" => Ok(Role::Admin),
            "normal" => Ok(Role::Normal),
            other => Err(StoreError::Corrupt {
                table: "group_members",
                detail: format!("unknown role {other:?}"),
            }),
        }
    }
}

/// Confidential clients authenticate with a secret; public ones (the CLI,
/// browser apps) cannot keep one and must use PKCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Confidential,
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

/// Grant types a client may use.
pub const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
];

/// Short alias accepted on the command line for the device grant.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An OAuth client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// `aud` of the access tokens this client gets.
    pub audience: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("kind", &self.kind)
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn allows(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// Checks a presented secret in constant time.
    pub fn secret_matches(&self, presented: &Secret) -> bool {
        match &self.secret_hash {
            Some(h) => secret::ct_eq(
                secret::token_hash(presented.expose()).as_bytes(),
                h.as_bytes(),
            ),
            None => false,
        }
    }
}

/// What a new client is made from.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub audience: Option<String>,
}

/// User, group and client names: 1..=64 of `[a-zA-Z0-9._-]`, starting
/// with a letter or digit.
pub fn check_name(kind: &str, name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid {kind} name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

fn check_redirect_uri(u: &str) -> Result<(), AdminError> {
    match url::Url::parse(u) {
        Ok(p) if p.fragment().is_none() && !p.cannot_be_a_base() => Ok(()),
        _ => Err(AdminError::Invalid(format!(
            "invalid redirect URI {u:?}: give an absolute URL without a fragment, e.g. https://app.example.com/callback"
        ))),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.message().contains("UNIQUE")
                || d.message().contains("duplicate key")
        }
        _ => false,
    }
}

fn user_from_row(r: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        full_name: r.try_get("full_name")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn json_list(table: &'static str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

fn client_from_row(r: &AnyRow) -> Result<Client, StoreError> {
    let kind: String = r.try_get("kind")?;
    Ok(Client {
        client_id: r.try_get("client_id")?,
        name: r.try_get("name")?,
        kind: match kind.as_str() {
            "public" => ClientKind::Public,
            "confidential" => ClientKind::Confidential,
            other => {
                return Err(StoreError::Corrupt {
                    table: "clients",
                    detail: format!("unknown kind {other:?}"),
                })
            }
        },
        secret_hash: r.try_get("secret_hash")?,
        redirect_uris: json_list("clients", &r.try_get::<String, _>("redirect_uris")?)?,
        post_logout_redirect_uris: json_list(
            "clients",
            &r.try_get::<String, _>("post_logout_redirect_uris")?,
        )?,
        grant_types: json_list("clients", &r.try_get::<String, _>("grant_types")?)?,
        audience: r.try_get("audience")?,
    })
}

impl Db {
    // ---- users -----------------------------------------------------------

    pub async fn add_user(
        &self,
        hash_cfg: &PasswordHashConfig,
        name: &str,
        email: &str,
        full_name: &str,
        pw: &Secret,
    ) -> Result<User, AdminError> {
        check_name("user", name)?;
        password::check_strength(pw).map_err(AdminError::Invalid)?;
        let hash = hash_blocking(hash_cfg, pw).await?;
        let t = now();
        let r = sqlx::query(
            "INSERT INTO users (name, email, full_name, password_hash, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(name)
        .bind(email)
        .bind(full_name)
        .bind(&hash)
        .bind(t)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(User {
                name: name.into(),
                email: email.into(),
                full_name: full_name.into(),
                disabled: false,
                created_at: t,
            }),
            Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
                "user {name:?} already exists; use `sso user passwd {name}` to change its password"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_password(
        &self,
        hash_cfg: &PasswordHashConfig,
        name: &str,
        pw: &Secret,
    ) -> Result<(), AdminError> {
        password::check_strength(pw).map_err(AdminError::Invalid)?;
        let hash = hash_blocking(hash_cfg, pw).await?;
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3")
            .bind(&hash)
            .bind(now())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(no_user(name));
        }
        // A new password ends everything the old one gave: browser
        // sessions, and every grant (refresh tokens, and access tokens at
        // /userinfo and the admin API).
        end_user_logins(&mut tx, name).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables (or re-enables) a user. Disabling ends the user's sessions
    /// and revokes every grant, so refresh tokens stop working at once.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AdminError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE name = $3")
            .bind(i64::from(disabled))
            .bind(now())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(no_user(name));
        }
        if disabled {
            end_user_logins(&mut tx, name).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT name, email, full_name, disabled, created_at FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// The user's password hash and disabled flag, for login.
    pub async fn user_credentials(&self, name: &str) -> Result<Option<(String, bool)>, StoreError> {
        let row = sqlx::query("SELECT password_hash, disabled FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((
                r.try_get("password_hash")?,
                r.try_get::<i64, _>("disabled")? != 0,
            ))),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, email, full_name, disabled, created_at FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    // ---- groups ----------------------------------------------------------

    pub async fn add_group(
        &self,
        name: &str,
        description: &str,
        parent: Option<&str>,
    ) -> Result<(), AdminError> {
        check_name("group", name)?;
        if let Some(p) = parent {
            if !self.group_exists(p).await? {
                return Err(no_group(p));
            }
        }
        let r = sqlx::query(
            "INSERT INTO sso_groups (name, description, parent, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(description)
        .bind(parent.map(str::to_owned))
        .bind(now())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
                "group {name:?} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn group_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT name FROM sso_groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    pub async fn remove_group(&self, name: &str) -> Result<(), AdminError> {
        let r = sqlx::query("DELETE FROM sso_groups WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(no_group(name));
        }
        Ok(())
    }

    /// Makes `name` a subgroup of `parent` (or a top-level group), refusing
    /// cycles.
    pub async fn set_group_parent(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), AdminError> {
        if !self.group_exists(name).await? {
            return Err(no_group(name));
        }
        if let Some(p) = parent {
            if !self.group_exists(p).await? {
                return Err(no_group(p));
            }
            let parents = self.group_parents().await?;
            let mut cur = Some(p.to_owned());
            while let Some(c) = cur {
                if c == name {
                    return Err(AdminError::Invalid(format!(
                        "cannot make {name:?} a subgroup of {p:?}: {p:?} is already inside {name:?}"
                    )));
                }
                cur = parents.get(&c).cloned().flatten();
            }
        }
        sqlx::query("UPDATE sso_groups SET parent = $1 WHERE name = $2")
            .bind(parent.map(str::to_owned))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn group_parents(&self) -> Result<HashMap<String, Option<String>>, StoreError> {
        let rows = sqlx::query("SELECT name, parent FROM sso_groups")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("parent")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Adds a user to a group, or changes the role of a member.
    pub async fn set_member(&self, group: &str, user: &str, role: Role) -> Result<(), AdminError> {
        if !self.group_exists(group).await? {
            return Err(no_group(group));
        }
        if self.get_user(user).await?.is_none() {
            return Err(no_user(user));
        }
        sqlx::query(
            "INSERT INTO group_members (group_name, user_name, role) VALUES ($1, $2, $3) \
             ON CONFLICT (group_name, user_name) DO UPDATE SET role = excluded.role",
        )
        .bind(group)
        .bind(user)
        .bind(role.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_member(&self, group: &str, user: &str) -> Result<(), AdminError> {
        let r = sqlx::query("DELETE FROM group_members WHERE group_name = $1 AND user_name = $2")
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(AdminError::NotFound(format!(
                "user {user:?} is not a member of group {group:?}"
            )));
        }
        Ok(())
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        let rows = sqlx::query("SELECT name, description, parent FROM sso_groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let members = sqlx::query(
            "SELECT group_name, user_name, role FROM group_members ORDER BY group_name, user_name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_group: HashMap<String, Vec<Member>> = HashMap::new();
        for m in &members {
            by_group
                .entry(m.try_get("group_name")?)
                .or_default()
                .push(Member {
                    user: m.try_get("user_name")?,
                    role: Role::parse(&m.try_get::<String, _>("role")?)?,
                });
        }
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                Ok(Group {
                    members: by_group.remove(&name).unwrap_or_default(),
                    name,
                    description: r.try_get("description")?,
                    parent: r.try_get("parent")?,
                })
            })
            .collect()
    }

    /// The groups a user belongs to: direct memberships and every group
    /// above them, sorted.
    pub async fn user_groups(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT group_name FROM group_members WHERE user_name = $1")
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let parents = self.group_parents().await?;
        let mut out = BTreeSet::new();
        for r in &rows {
            let mut cur: Option<String> = Some(r.try_get("group_name")?);
            while let Some(g) = cur {
                if !out.insert(g.clone()) {
                    break;
                }
                cur = parents.get(&g).cloned().flatten();
            }
        }
        Ok(out.into_iter().collect())
    }

    // ---- clients ---------------------------------------------------------

    /// Registers a client. Returns its secret (confidential clients only),
    /// shown once and stored hashed.
    pub async fn add_client(&self, c: &NewClient) -> Result<Option<Secret>, AdminError> {
        check_name("client", &c.client_id)?;
        for u in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
            check_redirect_uri(u)?;
        }
        let mut grants = c.grant_types.clone();
        if grants.is_empty() {
            // The device grant only when asked for (`--grant device_code`):
            // its codes can be phished, so a client gets it deliberately.
            grants = vec!["authorization_code".into(), "refresh_token".into()];
        }
        for g in &mut grants {
            if g == "device_code" {
                *g = DEVICE_GRANT.into();
            }
            if !GRANT_TYPES.contains(&g.as_str()) {
                return Err(AdminError::Invalid(format!(
                    "unknown grant type {g:?}: use authorization_code, refresh_token, client_credentials or device_code"
                )));
            }
        }
        grants.sort();
        grants.dedup();
        if c.kind == ClientKind::Public && grants.iter().any(|g| g == "client_credentials") {
            return Err(AdminError::Invalid(
                "a public client cannot use client_credentials: it has no secret; register it as --kind confidential".into(),
            ));
        }
        if grants.iter().any(|g| g == "authorization_code") && c.redirect_uris.is_empty() {
            return Err(AdminError::Invalid(
                "the authorization_code grant needs at least one --redirect-uri".into(),
            ));
        }
        let secret =
            (c.kind == ClientKind::Confidential).then(|| Secret::new(secret::random_token()));
        let r = sqlx::query(
            "INSERT INTO clients (client_id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, audience, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(c.kind.as_str())
        .bind(secret.as_ref().map(|s| secret::token_hash(s.expose())))
        .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_default())
        .bind(serde_json::to_string(&c.post_logout_redirect_uris).unwrap_or_default())
        .bind(serde_json::to_string(&grants).unwrap_or_default())
        .bind(c.audience.clone().unwrap_or_else(|| c.client_id.clone()))
        .bind(now())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(secret),
            Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
                "client {:?} already exists; remove it first or pick another id",
                c.client_id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY client_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    pub async fn remove_client(&self, client_id: &str) -> Result<(), AdminError> {
        let r = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(no_client(client_id));
        }
        Ok(())
    }

    /// Replaces a confidential client's secret; the old one stops working.
    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<Secret, AdminError> {
        let c = self
            .get_client(client_id)
            .await?
            .ok_or_else(|| no_client(client_id))?;
        if c.kind != ClientKind::Confidential {
            return Err(AdminError::Invalid(format!(
                "client {client_id:?} is public and has no secret"
            )));
        }
        let s = Secret::new(secret::random_token());
        sqlx::query("UPDATE clients SET secret_hash = $1 WHERE client_id = $2")
            .bind(secret::token_hash(s.expose()))
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(s)
    }
}

/// Deletes a user's browser sessions and refresh tokens and revokes all
/// the user's grants.
async fn end_user_logins(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_name = $1)",
    )
    .bind(name)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE grants SET revoked_at = $1 WHERE user_name = $2 AND revoked_at IS NULL")
        .bind(now())
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn hash_blocking(cfg: &PasswordHashConfig, pw: &Secret) -> Result<String, AdminError> {
    let cfg = cfg.clone();
    let pw = pw.clone();
    tokio::task::spawn_blocking(move || password::hash(&cfg, &pw))
        .await
        .map_err(|e| AdminError::Store(StoreError::Crypto(e.to_string())))?
        .map_err(|e| AdminError::Store(StoreError::Crypto(e)))
}

fn no_user(name: &str) -> AdminError {
    AdminError::NotFound(format!("no user {name:?}; `sso user list` shows the users"))
}

fn no_group(name: &str) -> AdminError {
    AdminError::NotFound(format!(
        "no group {name:?}; `sso group list` shows the groups"
    ))
}

fn no_client(id: &str) -> AdminError {
    AdminError::NotFound(format!(
        "no client {id:?}; `sso client list` shows the clients"
    ))
}
