-- Stored signals: the latest signal of each built-in strategy (default parameters) per
-- stored series, and every change of direction, kept current as candles land.

-- `revision` counts candle writes; `signals_dirty_from` is the earliest candle written
-- since signals were last computed (NULL when none); `signals_through` is the last
-- closed candle the stored signals include; `signals_history_from` is the first candle
-- whose changes are recorded.
ALTER TABLE series
    ADD COLUMN revision BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN signals_dirty_from BIGINT,
    ADD COLUMN signals_through BIGINT,
    ADD COLUMN signals_history_from BIGINT;

-- Bodies are the JSON the API serves, written by the same code that computes a signal
-- on demand, so a stored answer and a computed one cannot differ in shape.
CREATE TABLE signals (
    symbol          TEXT NOT NULL,
    period          TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    last_open_time  BIGINT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (symbol, period, strategy)
);

CREATE TABLE signal_changes (
    symbol     TEXT NOT NULL,
    period     TEXT NOT NULL,
    strategy   TEXT NOT NULL,
    open_time  BIGINT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (symbol, period, strategy, open_time)
);
