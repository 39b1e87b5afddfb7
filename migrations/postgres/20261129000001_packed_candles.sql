-- Each candle's open time and values as one 48-byte value (big-endian int8, then five
-- float8), kept by Postgres itself on every insert, update and COPY.
--
-- A page of candles is read as these values joined into one: Postgres then encodes one
-- value per page instead of six per candle, which was most of its work on a page, and
-- marketd decodes fixed-width records instead of a row per candle.
--
-- Adding a stored column rewrites the table once, under an exclusive lock.
ALTER TABLE candles ADD COLUMN packed BYTEA GENERATED ALWAYS AS (
    int8send(open_time) || float8send(open) || float8send(high) || float8send(low)
        || float8send(close) || float8send(volume)
) STORED;
