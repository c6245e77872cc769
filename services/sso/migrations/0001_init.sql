-- sso schema, version 1. Written in the SQL subset SQLite and PostgreSQL
-- share: TEXT, BIGINT (times are unix seconds, flags 0/1), no BLOBs.
-- Every secret is stored as the SHA-256 of a high-entropy random token;
-- passwords as argon2id PHC strings.

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    full_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sso_groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    parent TEXT REFERENCES sso_groups(name) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_name TEXT NOT NULL REFERENCES sso_groups(name) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (group_name, user_name)
);
CREATE INDEX group_members_user ON group_members(user_name);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    audience TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One grant per authorization (code, device approval or client
-- credentials issue no grant): the refresh tokens and access tokens it
-- gave are revoked together.
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE auth_codes (
    code_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);

CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    user_name TEXT REFERENCES users(name) ON DELETE CASCADE,
    auth_time BIGINT,
    interval_secs BIGINT NOT NULL,
    last_poll_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- RS256 keys. private_pkcs8 is the base64 PKCS#8 DER; see
-- docs/reference/sso.md for how it is protected at rest.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_pkcs8 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    expires_at BIGINT
);
