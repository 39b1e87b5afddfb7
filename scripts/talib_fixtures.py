#!/usr/bin/env python3
"""Writes the TA-Lib reference fixtures that crates/domain/tests/talib.rs checks against.

Run once, from the repository root, and commit the output:

    python3 -m venv .venv && .venv/bin/pip install ta-lib numpy
    .venv/bin/python scripts/talib_fixtures.py

Every series is written to crates/domain/tests/fixtures/talib/<series>.csv: the candle
columns (open_time in Unix ms, open, high, low, close, volume) followed by one column per
indicator output, headed `<request token>|<output column>`, e.g. `macd:12:26:9|macd_hist`.
The token uses marketd's request grammar, so the test parses it exactly as the HTTP layer
will. An empty cell means TA-Lib returned NaN (the value is undefined there).

TA-Lib has no VWAP; its columns come from the plain reference `vwap_reference` below
(cumulative typical price times volume over cumulative volume, restarted at 00:00 UTC).
"""

import csv
import os

import numpy as np
import talib

OUT_DIR = os.path.join("crates", "domain", "tests", "fixtures", "talib")
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# 2024-03-01T05:00:00Z: sessions do not start with the series.
START_MS = 1_709_269_200_000


def candles_from_closes(rng, closes, spread, volume_scale):
    """Builds consistent OHLCV rows around a close path, rounded so CSV is exact."""
    n = len(closes)
    opens = np.empty(n)
    opens[0] = closes[0]
    opens[1:] = closes[:-1]
    top = np.maximum(opens, closes)
    bottom = np.minimum(opens, closes)
    highs = top + rng.uniform(0, spread, n)
    lows = bottom - rng.uniform(0, spread, n)
    volumes = np.round(rng.uniform(1, volume_scale, n), 3)
    r = lambda a: np.round(a, 4)
    return r(opens), r(np.maximum(highs, top)), r(np.minimum(lows, bottom)), r(closes), volumes


def make_flat(o, h, l, c, v, start, length, zero_volume):
    """Freezes a run of candles at one price (high = low = close), optionally volumeless."""
    price = c[start - 1]
    for i in range(start, start + length):
        o[i] = h[i] = l[i] = c[i] = price
        if zero_volume:
            v[i] = 0.0


def series():
    rng = np.random.default_rng(20240301)
    out = {}

    # A random walk near 100 with a flat, volumeless stretch and scattered zero volumes.
    n = 300
    c = np.round(100 + np.cumsum(rng.normal(0, 1, n)), 4)
    o, h, l, c, v = candles_from_closes(rng, c, 0.8, 5000)
    make_flat(o, h, l, c, v, 120, 30, zero_volume=True)
    v[rng.choice(n, 15, replace=False)] = 0.0
    out["walk"] = (np.arange(n) * HOUR_MS + START_MS, o, h, l, c, v)

    # Starts perfectly flat (every range and every change is zero), then moves.
    n = 160
    c = np.concatenate([np.full(45, 50.0), 50 + np.cumsum(rng.normal(0, 0.5, n - 45))])
    o, h, l, c, v = candles_from_closes(rng, np.round(c, 4), 0.3, 800)
    make_flat(o, h, l, c, v, 1, 44, zero_volume=False)
    v[:20] = 0.0
    out["flat_start"] = (np.arange(n) * HOUR_MS + START_MS, o, h, l, c, v)

    # A steady climb then a steady fall: RSI pins to 100 and 0, %R and %K to their ends.
    n = 200
    c = np.concatenate([np.linspace(20, 80, 100), np.linspace(79, 30, 100)])
    o, h, l, c, v = candles_from_closes(rng, np.round(c, 4), 0.0, 300)
    out["trend"] = (np.arange(n) * HOUR_MS + START_MS, o, h, l, c, v)

    # Bitcoin-sized prices on 15-minute candles with a missing hour: several UTC sessions.
    n = 300
    c = np.round(30000 * np.exp(np.cumsum(rng.normal(0, 0.004, n))), 2)
    o, h, l, c, v = candles_from_closes(rng, c, 60.0, 40)
    t = np.arange(n) * (HOUR_MS // 4) + START_MS
    t[150:] += HOUR_MS
    out["btc"] = (t, o, h, l, c, v)

    # Shorter than most lookbacks: those indicators must be undefined everywhere.
    n = 12
    c = np.round(10 + np.cumsum(rng.normal(0, 0.2, n)), 4)
    out["short"] = (np.arange(n) * HOUR_MS + START_MS,) + candles_from_closes(rng, c, 0.1, 100)
    return out


def vwap_reference(t, h, l, c, v):
    out = np.full(len(t), np.nan)
    day, num, den = None, 0.0, 0.0
    for i in range(len(t)):
        if t[i] // DAY_MS != day:
            day, num, den = t[i] // DAY_MS, 0.0, 0.0
        num += (h[i] + l[i] + c[i]) / 3.0 * v[i]
        den += v[i]
        if den > 0:
            out[i] = num / den
    return out


def indicators(t, o, h, l, c, v):
    """(token, output name, values): TA-Lib's defaults first, then other parameters."""
    cols = []

    def add(token, names, values):
        if not isinstance(values, tuple):
            values = (values,)
        for name, vals in zip(names, values):
            cols.append((token, name, vals))

    for p in (30, 9):
        add(f"sma:{p}", ["sma"], talib.SMA(c, p))
        add(f"ema:{p}", ["ema"], talib.EMA(c, p))
        add(f"wma:{p}", ["wma"], talib.WMA(c, p))
        add(f"dema:{p}", ["dema"], talib.DEMA(c, p))
        add(f"tema:{p}", ["tema"], talib.TEMA(c, p))
    for p in (14, 5):
        add(f"rsi:{p}", ["rsi"], talib.RSI(c, p))
        add(f"atr:{p}", ["atr"], talib.ATR(h, l, c, p))
        add(f"natr:{p}", ["natr"], talib.NATR(h, l, c, p))
        add(f"cci:{p}", ["cci"], talib.CCI(h, l, c, p))
        add(f"mfi:{p}", ["mfi"], talib.MFI(h, l, c, v, p))
        add(f"willr:{p}", ["willr"], talib.WILLR(h, l, c, p))
    add("atr:1", ["atr"], talib.ATR(h, l, c, 1))
    for p in (14, 7):
        add(
            f"adx:{p}",
            ["adx", "adx_plus_di", "adx_minus_di"],
            (talib.ADX(h, l, c, p), talib.PLUS_DI(h, l, c, p), talib.MINUS_DI(h, l, c, p)),
        )
    for f, s, g in ((12, 26, 9), (5, 13, 4)):
        add(f"macd:{f}:{s}:{g}", ["macd", "macd_signal", "macd_hist"], talib.MACD(c, f, s, g))
    for p, k in ((20, 2.0), (10, 1.5), (5, 1.0)):
        add(
            f"bbands:{p}:{k:g}",
            ["bbands_upper", "bbands_middle", "bbands_lower"],
            talib.BBANDS(c, p, k, k, 0),
        )
    for p, k in ((5, 1.0), (20, 2.0)):
        add(f"stddev:{p}:{k:g}", ["stddev"], talib.STDDEV(c, p, k))
    for fk, sk, sd in ((5, 3, 3), (14, 3, 3), (1, 1, 1)):
        add(f"stoch:{fk}:{sk}:{sd}", ["stoch_k", "stoch_d"], talib.STOCH(h, l, c, fk, sk, 0, sd, 0))
    for p, fk, fd in ((14, 5, 3), (9, 3, 3)):
        add(f"stochrsi:{p}:{fk}:{fd}", ["stochrsi_k", "stochrsi_d"], talib.STOCHRSI(c, p, fk, fd, 0))
    for p in (10, 3):
        add(f"roc:{p}", ["roc"], talib.ROC(c, p))
    add("obv", ["obv"], talib.OBV(c, v))
    add("vwap", ["vwap"], vwap_reference(t, h, l, c, v))
    return cols


def fmt(x):
    return "" if np.isnan(x) else repr(float(x))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, (t, o, h, l, c, v) in series().items():
        o, h, l, c, v = (np.ascontiguousarray(a, dtype=np.float64) for a in (o, h, l, c, v))
        cols = indicators(t, o, h, l, c, v)
        path = os.path.join(OUT_DIR, f"{name}.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["open_time", "open", "high", "low", "close", "volume"]
                       + [f"{tok}|{out}" for tok, out, _ in cols])
            for i in range(len(t)):
                w.writerow([int(t[i])] + [fmt(a[i]) for a in (o, h, l, c, v)]
                           + [fmt(vals[i]) for _, _, vals in cols])
        print(f"{path}: {len(t)} rows, {len(cols)} indicator columns")


if __name__ == "__main__":
    main()
