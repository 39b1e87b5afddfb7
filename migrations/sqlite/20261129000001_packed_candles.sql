-- Each candle's open time and values as one 48-byte value (big-endian int8, then five
-- float8), the layout Postgres keeps in its own `packed` column. SQLite cannot compute
-- it, so marketd writes it with every candle.
--
-- A page of candles is read as these values in hex: formatting five floats of every
-- row as text was most of what a page cost SQLite. A row without the value is read from
-- its columns, as before.
ALTER TABLE candles ADD COLUMN packed BLOB;

-- The rows still to pack (written before this migration, or by a writer that does not
-- set the value), which marketd packs at start-up. Empty once they are.
CREATE INDEX candles_unpacked ON candles (symbol, period, open_time) WHERE packed IS NULL;

-- A write that changes a candle's values but not its packed value drops the packed
-- value, so it can never disagree with the columns.
CREATE TRIGGER candles_packed_follows_values
AFTER UPDATE OF open_time, open, high, low, close, volume ON candles
WHEN NEW.packed IS OLD.packed AND (
    NEW.open_time IS NOT OLD.open_time OR NEW.open IS NOT OLD.open
    OR NEW.high IS NOT OLD.high OR NEW.low IS NOT OLD.low
    OR NEW.close IS NOT OLD.close OR NEW.volume IS NOT OLD.volume)
BEGIN
    UPDATE candles SET packed = NULL
    WHERE symbol = NEW.symbol AND period = NEW.period AND open_time = NEW.open_time;
END;
