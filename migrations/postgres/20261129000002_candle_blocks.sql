-- Candles kept a second time, in blocks of up to 64 consecutive periods: each block
-- holds the packed values of its candles joined in open-time order, and their sources
-- joined by newlines. A 500-candle page is then about nine rows to Postgres rather than
-- five hundred, and stepping through rows was most of what a page cost it.
--
-- Triggers on `candles` rebuild every block a statement touches, whatever wrote it
-- (INSERT, upsert, UPDATE, DELETE, COPY), so the blocks never disagree with `candles`.
-- Writes skipping triggers (session_replication_role = replica) must rebuild the blocks
-- they touch with candle_blocks_rebuild.

-- Block n of a period covers open times [n * span, (n + 1) * span), span being 64 periods.
CREATE FUNCTION candle_block_span(period TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 64 * CASE period
        WHEN '1m' THEN 60000
        WHEN '5m' THEN 300000
        WHEN '15m' THEN 900000
        WHEN '1h' THEN 3600000
        WHEN '4h' THEN 14400000
        WHEN '1d' THEN 86400000
        WHEN '1w' THEN 604800000
        ELSE 3600000
    END::BIGINT
$$;

-- The block holding open_time: a floor division, which Postgres's integer division
-- (truncating toward zero) is not for negative times.
CREATE FUNCTION candle_block(period TEXT, open_time BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN open_time >= 0
        THEN open_time / candle_block_span(period)
        ELSE (open_time + 1) / candle_block_span(period) - 1
    END
$$;

-- The first and last open time of a block, clamped to BIGINT: the edge blocks reach past it.
CREATE FUNCTION candle_block_first(period TEXT, block BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT GREATEST(block::NUMERIC * candle_block_span(period),
                    -9223372036854775808)::BIGINT
$$;

CREATE FUNCTION candle_block_last(period TEXT, block BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT LEAST((block + 1)::NUMERIC * candle_block_span(period) - 1,
                 9223372036854775807)::BIGINT
$$;

CREATE TABLE candle_blocks (
    symbol   TEXT NOT NULL,
    period   TEXT NOT NULL,
    block    BIGINT NOT NULL,
    packed   BYTEA NOT NULL,
    sources  TEXT NOT NULL,
    PRIMARY KEY (symbol, period, block)
-- A block (about 3.5 KB) stays in its row, uncompressed: moving it out of line or
-- compressing it would cost every page read to undo.
) WITH (toast_tuple_target = 8160);

-- Rebuilds the given blocks from `candles`, in the caller's transaction.
--
-- This and the trigger functions plan their statements once per session: left to
-- choose, Postgres would plan them again on every write (a plan for arrays of unknown
-- length looks dearer than one for the arrays at hand), which took longer than running
-- them.
CREATE FUNCTION candle_blocks_rebuild(symbols TEXT[], periods TEXT[], blocks BIGINT[])
RETURNS VOID LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF symbols IS NULL THEN
        RETURN;  -- the statement touched no row
    END IF;
    -- Two transactions writing one block would each rebuild it without the other's
    -- uncommitted candles, and the later would lose the earlier's. Holding a lock until
    -- commit makes the later wait, and its next statement (read committed) then sees
    -- the earlier's candles. One lock per series, not per block: an import touches tens
    -- of thousands of blocks, more locks than Postgres's lock table holds. Taken in one
    -- global order, so never crosswise.
    PERFORM pg_advisory_xact_lock(hashtext('marketd candle blocks'), key)
    FROM (SELECT DISTINCT hashtext(s || ' ' || p) AS key
          FROM unnest(symbols, periods) AS t(s, p)) keys
    ORDER BY key;

    INSERT INTO candle_blocks (symbol, period, block, packed, sources)
    SELECT t.s, t.p, t.b,
           string_agg(c.packed, ''::BYTEA ORDER BY c.open_time),
           string_agg(c.source, E'\n' ORDER BY c.open_time)
    FROM unnest(symbols, periods, blocks) AS t(s, p, b)
    JOIN candles c ON c.symbol = t.s AND c.period = t.p
        AND c.open_time BETWEEN candle_block_first(t.p, t.b) AND candle_block_last(t.p, t.b)
    GROUP BY t.s, t.p, t.b
    ON CONFLICT (symbol, period, block)
        DO UPDATE SET packed = EXCLUDED.packed, sources = EXCLUDED.sources;

    DELETE FROM candle_blocks cb
    USING unnest(symbols, periods, blocks) AS t(s, p, b)
    WHERE cb.symbol = t.s AND cb.period = t.p AND cb.block = t.b
      AND NOT EXISTS (
          SELECT 1 FROM candles c
          WHERE c.symbol = t.s AND c.period = t.p
            AND c.open_time BETWEEN candle_block_first(t.p, t.b)
                                AND candle_block_last(t.p, t.b));
END
$$;

-- Statement triggers see a statement's rows as transition tables, named only in the
-- triggers that declare them: inserts and deletes both call theirs `changed`, and an
-- update has its rows before and after.
CREATE FUNCTION candle_blocks_after_change() RETURNS TRIGGER LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM candle_blocks_rebuild(array_agg(symbol), array_agg(period), array_agg(block))
    FROM (SELECT DISTINCT symbol, period, candle_block(period, open_time) AS block
          FROM changed) touched;
    RETURN NULL;
END
$$;

CREATE FUNCTION candle_blocks_after_update() RETURNS TRIGGER LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM candle_blocks_rebuild(array_agg(symbol), array_agg(period), array_agg(block))
    FROM (SELECT symbol, period, candle_block(period, open_time) AS block FROM updated
          UNION
          SELECT symbol, period, candle_block(period, open_time) FROM replaced) touched;
    RETURN NULL;
END
$$;

CREATE FUNCTION candle_blocks_after_truncate() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE candle_blocks;
    RETURN NULL;
END
$$;

CREATE TRIGGER candle_blocks_follow_inserts AFTER INSERT ON candles
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION candle_blocks_after_change();
CREATE TRIGGER candle_blocks_follow_updates AFTER UPDATE ON candles
    REFERENCING OLD TABLE AS replaced NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION candle_blocks_after_update();
CREATE TRIGGER candle_blocks_follow_deletes AFTER DELETE ON candles
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION candle_blocks_after_change();
CREATE TRIGGER candle_blocks_follow_truncates AFTER TRUNCATE ON candles
    FOR EACH STATEMENT EXECUTE FUNCTION candle_blocks_after_truncate();

-- The candles stored so far.
INSERT INTO candle_blocks (symbol, period, block, packed, sources)
SELECT symbol, period, candle_block(period, open_time),
       string_agg(packed, ''::BYTEA ORDER BY open_time),
       string_agg(source, E'\n' ORDER BY open_time)
FROM candles
GROUP BY symbol, period, candle_block(period, open_time);
