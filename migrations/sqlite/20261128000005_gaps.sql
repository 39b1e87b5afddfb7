-- Known gaps: runs of closed buckets that every source asked had no candle for. They are
-- recorded instead of filled, so a reader can tell "the upstream has nothing here" from
-- "not fetched yet"; a candle written into one shrinks or removes it.
CREATE TABLE gaps (
    symbol       TEXT NOT NULL,
    period       TEXT NOT NULL,
    -- Open times of the missing buckets, [start_time, end_time).
    start_time   INTEGER NOT NULL,
    end_time     INTEGER NOT NULL,
    -- The sources that answered without these buckets, comma-separated, in the order asked.
    sources      TEXT NOT NULL,
    -- How many times the range was asked for and still missing.
    attempts     INTEGER NOT NULL,
    detected_at  INTEGER NOT NULL,
    checked_at   INTEGER NOT NULL,
    PRIMARY KEY (symbol, period, start_time)
) WITHOUT ROWID;
