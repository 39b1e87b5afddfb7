-- Assets, candles, the series index of what is stored, and latest prices.
-- Times are Unix milliseconds (UTC) in BIGINT columns: exact, compact and portable.

CREATE TABLE assets (
    symbol      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    quote       TEXT NOT NULL DEFAULT 'USD',
    sources     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE candles (
    symbol      TEXT NOT NULL,
    period      TEXT NOT NULL,
    open_time   BIGINT NOT NULL,
    open        DOUBLE PRECISION NOT NULL,
    high        DOUBLE PRECISION NOT NULL,
    low         DOUBLE PRECISION NOT NULL,
    close       DOUBLE PRECISION NOT NULL,
    volume      DOUBLE PRECISION NOT NULL,
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (symbol, period, open_time)
);

-- One row per stored (symbol, interval): which intervals exist and their range, so
-- choosing a native or derived interval never scans candles.
CREATE TABLE series (
    symbol           TEXT NOT NULL,
    period           TEXT NOT NULL,
    first_open_time  BIGINT NOT NULL,
    last_open_time   BIGINT NOT NULL,
    PRIMARY KEY (symbol, period)
);

CREATE TABLE latest_prices (
    symbol      TEXT PRIMARY KEY,
    price       DOUBLE PRECISION NOT NULL,
    open_24h    DOUBLE PRECISION NOT NULL,
    high_24h    DOUBLE PRECISION NOT NULL,
    low_24h     DOUBLE PRECISION NOT NULL,
    volume_24h  DOUBLE PRECISION NOT NULL,
    as_of       BIGINT NOT NULL,
    source      TEXT NOT NULL
);
