-- API keys (only a keyed hash of each secret) and the audit log of what was done with them.

CREATE TABLE api_keys (
    id                     TEXT PRIMARY KEY,
    environment            TEXT NOT NULL,
    name                   TEXT NOT NULL,
    scopes                 TEXT NOT NULL,
    allowed_cidrs          TEXT NOT NULL DEFAULT '',
    rate_limit_per_minute  BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    expires_at             BIGINT,
    revoked_at             BIGINT,
    rotated_from           TEXT,
    rotated_to             TEXT,
    last_used_at           BIGINT,
    last_used_ip           TEXT,
    usage_count            BIGINT NOT NULL DEFAULT 0,
    pepper_version         BIGINT NOT NULL,
    secret_hash            BYTEA NOT NULL,
    expiry_recorded        BOOLEAN NOT NULL DEFAULT FALSE
);

-- The expiry sweep looks only at keys whose expiry has not been recorded yet.
CREATE INDEX api_keys_pending_expiry ON api_keys (expires_at)
    WHERE expires_at IS NOT NULL AND NOT expiry_recorded;

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT NOT NULL,
    event         TEXT NOT NULL,
    key_id        TEXT,
    actor_key_id  TEXT,
    ip            TEXT,
    reason        TEXT,
    count         BIGINT NOT NULL DEFAULT 1
);

CREATE INDEX audit_log_key ON audit_log (key_id, id);
CREATE INDEX audit_log_event ON audit_log (event, id);
CREATE INDEX audit_log_at ON audit_log (at);
