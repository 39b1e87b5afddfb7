-- Backtest jobs: queued, claimed by a worker, finished with a result or an error. The
-- request and result are JSON documents; jobs survive restarts.

CREATE TABLE backtests (
    id                 TEXT PRIMARY KEY,
    key_id             TEXT NOT NULL,
    status             TEXT NOT NULL,
    request            TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    idempotency_key    TEXT,
    idempotency_until  BIGINT,
    created_at         BIGINT NOT NULL,
    started_at         BIGINT,
    finished_at        BIGINT,
    error              TEXT,
    result             TEXT
);

CREATE INDEX backtests_queue ON backtests (status, created_at);
CREATE UNIQUE INDEX backtests_idempotency ON backtests (key_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
