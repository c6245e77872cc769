-- console schema, version 1. Written in the SQL subset SQLite and
-- PostgreSQL share: TEXT and BIGINT only (times are unix milliseconds),
-- `$N` placeholders in queries, no BLOBs, no autoincrement (ids come from
-- id_sequences, bumped in the inserting transaction). See
-- docs/reference/console.md, "Storage".

-- Monotonic ids for deployments and the audit log. `UPDATE ... RETURNING`
-- locks the row until the transaction ends, so ids are handed out in
-- commit order on both backends.
CREATE TABLE id_sequences (
    name TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO id_sequences (name, last_id) VALUES ('deployments', 0);
INSERT INTO id_sequences (name, last_id) VALUES ('audit_log', 0);

CREATE TABLE apps (
    name TEXT PRIMARY KEY,
    -- lowercased name: `Hello` and `hello` would share a domain and an
    -- image repository, so only one of them may exist.
    name_folded TEXT NOT NULL UNIQUE,
    apptype TEXT NOT NULL,
    giturl TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE maintainers (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    role TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (app, subject)
);
CREATE INDEX maintainers_subject ON maintainers(subject);

CREATE TABLE releases (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    version TEXT NOT NULL,
    -- the `<commit unix time>` part of version, for ordering
    commit_time BIGINT NOT NULL,
    image TEXT NOT NULL,
    digest TEXT NOT NULL,
    lain_yaml TEXT NOT NULL,
    pushed_by TEXT NOT NULL,
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (app, version)
);
CREATE INDEX releases_order ON releases(app, commit_time, pushed_at);

CREATE TABLE deployments (
    id BIGINT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    from_release TEXT,
    to_release TEXT,
    -- JSON array of proc names, NULL for all procs
    procs TEXT,
    requested_by TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    state TEXT NOT NULL,
    error TEXT,
    generation BIGINT,
    -- JSON: the desired procs written to etcd (never secret values)
    desired_json TEXT NOT NULL
);
CREATE INDEX deployments_app ON deployments(app, id);

-- The secret versions a deployment's desired state referenced, so a
-- rollback restores them with the image and env.
CREATE TABLE deployment_secrets (
    deployment_id BIGINT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, name)
);

-- One row per secret name; removed_at set = removed (soft delete: old
-- versions stay for rollbacks until the app is deleted).
CREATE TABLE secrets (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    removed_at BIGINT,
    PRIMARY KEY (app, name)
);

-- The values, each sealed with AES-256-GCM under the cluster secrets key,
-- bound to (app, name, version) as associated data.
CREATE TABLE secret_versions (
    app TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    alg TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce_b64 TEXT NOT NULL,
    ciphertext_b64 TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, name, version),
    FOREIGN KEY (app, name) REFERENCES secrets(app, name) ON DELETE CASCADE
);

-- Append-only. No foreign key to apps: the log outlives what it names.
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    app TEXT,
    target TEXT,
    detail TEXT NOT NULL,
    result TEXT NOT NULL,
    request_id TEXT
);
CREATE INDEX audit_log_app ON audit_log(app, id);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
