-- Assets, candles, the series index of what is stored, and latest prices.
-- Times are Unix milliseconds (UTC) in INTEGER columns: exact, compact and portable.

CREATE TABLE assets (
    symbol      TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    quote       TEXT NOT NULL DEFAULT 'USD',
    sources     TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Clustered on the key so a range read is one contiguous b-tree walk.
CREATE TABLE candles (
    symbol      TEXT NOT NULL,
    period      TEXT NOT NULL,
    open_time   INTEGER NOT NULL,
    open        REAL NOT NULL,
    high        REAL NOT NULL,
    low         REAL NOT NULL,
    close       REAL NOT NULL,
    volume      REAL NOT NULL,
    source      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (symbol, period, open_time)
) WITHOUT ROWID;

-- One row per stored (symbol, interval): which intervals exist and their range, so
-- choosing a native or derived interval never scans candles.
CREATE TABLE series (
    symbol           TEXT NOT NULL,
    period           TEXT NOT NULL,
    first_open_time  INTEGER NOT NULL,
    last_open_time   INTEGER NOT NULL,
    PRIMARY KEY (symbol, period)
) WITHOUT ROWID;

CREATE TABLE latest_prices (
    symbol      TEXT PRIMARY KEY NOT NULL,
    price       REAL NOT NULL,
    open_24h    REAL NOT NULL,
    high_24h    REAL NOT NULL,
    low_24h     REAL NOT NULL,
    volume_24h  REAL NOT NULL,
    as_of       INTEGER NOT NULL,
    source      TEXT NOT NULL
) WITHOUT ROWID;
