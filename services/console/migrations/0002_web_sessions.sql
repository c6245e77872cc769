-- console schema, version 2: the web console's sessions. The cookie holds
-- 256 random bits; only their SHA-256 is stored, so a read of this table
-- cannot be replayed as a cookie. The tokens sso issued for the session
-- are sealed with the cluster secrets key (AAD names the session), so
-- every request is authorized from a verified access token, as the API's
-- are; `groups_json` is for display only.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    username TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    tokens_sealed TEXT NOT NULL,
    access_exp BIGINT NOT NULL,
    -- bumped at each refresh; a refresh is claimed by one request at a
    -- time (sso's refresh tokens are single-use, a reuse ends the grant)
    token_version BIGINT NOT NULL,
    refreshing_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_subject ON web_sessions(subject);
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);
