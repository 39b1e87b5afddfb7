-- Announce written candles and prices on the `marketd_changes` channel, so every process
-- sharing the database refreshes its caches and streams at once. Notifications are sent
-- when the writing transaction commits, and identical ones within a transaction are sent
-- once. The triggers sit on `series`, which every candle write updates once, rather than
-- on `candles`, so a bulk import pays for one notification, not one per row.

CREATE FUNCTION marketd_announce_candles() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('marketd_changes', 'candles:' || NEW.symbol || ':' || NEW.period);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION marketd_announce_price() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('marketd_changes', 'prices:' || NEW.symbol);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Saving signals also updates `series`, but leaves `revision` alone: only candle writes
-- move it.
CREATE TRIGGER series_candles_written
    AFTER INSERT OR UPDATE OF revision ON series
    FOR EACH ROW EXECUTE FUNCTION marketd_announce_candles();

CREATE TRIGGER latest_price_written
    AFTER INSERT OR UPDATE ON latest_prices
    FOR EACH ROW EXECUTE FUNCTION marketd_announce_price();
