#!/usr/bin/env python3
"""Times TA-Lib on 1,000,000 candles, for comparison with crates/domain/benches.

    .venv/bin/pip install ta-lib numpy
    .venv/bin/python scripts/talib_bench.py

Each figure is the best of several runs of the TA-Lib call alone, on NumPy arrays built
beforehand (a random walk like the Rust benchmark's). TA-Lib takes one array per field;
marketd's indicators read a slice of candles for the multi-input ones. VWAP has no TA-Lib
counterpart and is not timed here.
"""

import time

import numpy as np
import talib

N = 1_000_000
RUNS = 10


def data():
    rng = np.random.default_rng(7)
    close = 100 * np.cumprod(1 + (rng.random(N) - 0.5) * 0.02)
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.random(N) * 0.005)
    low = np.minimum(open_, close) * (1 - rng.random(N) * 0.005)
    volume = 1 + rng.random(N) * 1000
    return high, low, close, volume


def best(fn):
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    h, l, c, v = data()
    cases = [
        ("sma:30", lambda: talib.SMA(c, 30)),
        ("ema:30", lambda: talib.EMA(c, 30)),
        ("wma:30", lambda: talib.WMA(c, 30)),
        ("dema:30", lambda: talib.DEMA(c, 30)),
        ("tema:30", lambda: talib.TEMA(c, 30)),
        ("rsi:14", lambda: talib.RSI(c, 14)),
        ("macd:12:26:9", lambda: talib.MACD(c, 12, 26, 9)),
        ("bbands:20:2", lambda: talib.BBANDS(c, 20, 2.0, 2.0, 0)),
        ("stddev:5:1", lambda: talib.STDDEV(c, 5, 1.0)),
        ("atr:14", lambda: talib.ATR(h, l, c, 14)),
        ("natr:14", lambda: talib.NATR(h, l, c, 14)),
        ("stoch:5:3:3", lambda: talib.STOCH(h, l, c, 5, 3, 0, 3, 0)),
        ("stochrsi:14:5:3", lambda: talib.STOCHRSI(c, 14, 5, 3, 0)),
        ("obv", lambda: talib.OBV(c, v)),
        # marketd's adx returns ADX, +DI and -DI together: TA-Lib needs three calls.
        ("adx:14", lambda: talib.ADX(h, l, c, 14)),
        ("adx:14 (+ PLUS_DI, MINUS_DI)", lambda: (talib.ADX(h, l, c, 14),
                                                  talib.PLUS_DI(h, l, c, 14),
                                                  talib.MINUS_DI(h, l, c, 14))),
        ("cci:14", lambda: talib.CCI(h, l, c, 14)),
        ("mfi:14", lambda: talib.MFI(h, l, c, v, 14)),
        ("willr:14", lambda: talib.WILLR(h, l, c, 14)),
        ("roc:10", lambda: talib.ROC(c, 10)),
    ]
    print(f"TA-Lib {talib.__ta_version__.decode()} (python ta-lib {talib.__version__}), "
          f"N = {N:,}, best of {RUNS}")
    for name, fn in cases:
        print(f"{name:32} {best(fn) * 1e3:9.3f} ms")


if __name__ == "__main__":
    main()
