-- Backtest jobs: queued, claimed by a worker, finished with a result or an error. The
-- request and result are JSON documents; jobs survive restarts.

CREATE TABLE backtests (
    id                 TEXT PRIMARY KEY NOT NULL,
    key_id             TEXT NOT NULL,
    status             TEXT NOT NULL,
    request            TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    idempotency_key    TEXT,
    idempotency_until  INTEGER,
    created_at         INTEGER NOT NULL,
    started_at         INTEGER,
    finished_at        INTEGER,
    error              TEXT,
    result             TEXT
) WITHOUT ROWID;

CREATE INDEX backtests_queue ON backtests (status, created_at);
CREATE UNIQUE INDEX backtests_idempotency ON backtests (key_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
