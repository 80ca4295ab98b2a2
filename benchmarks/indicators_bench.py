"""Indicators: ``compute_indicators`` against TA-Lib on the same synthetic bars.

TA-Lib is the speed reference only (a dev dependency); the ``ibkr_assets`` package never
imports it. Two references are timed, both on the same bar frames:

* the eight TA-Lib calls on numpy arrays already taken out of the frames: the raw C speed,
  which carries the ``<= 2.0x`` target;
* the same calls behind the same contract as ``compute_indicators`` (read the columns, return
  the bar frame plus the 15 indicator columns), which shows how much of our time is the pandas
  work any frame-in, frame-out implementation pays.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ibkr_assets.domain.indicators import INDICATOR_COLUMNS, compute_indicators

SYMBOLS = 100
BARS_PER_SYMBOL = 2520  # ten years of trading days
REPEATS = 3
TARGET_RATIO = 2.0

_VALUE_COLUMNS = pd.Index(["open", "high", "low", "close", "volume", *INDICATOR_COLUMNS])


def synthetic_bars(symbols: int, bars: int, seed: int = 20_150_102) -> list[pd.DataFrame]:
    """Deterministic daily bar frames: geometric random walks from different price levels."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=bars).astype("datetime64[ns]")
    frames = []
    for _ in range(symbols):
        close = rng.uniform(5.0, 500.0) * np.exp(np.cumsum(rng.normal(0.0003, 0.015, bars)))
        opens = np.concatenate([close[:1], close[:-1]]) * np.exp(rng.normal(0.0, 0.004, bars))
        high = np.maximum(opens, close) * (1 + rng.uniform(0.0, 0.012, bars))
        low = np.minimum(opens, close) * (1 - rng.uniform(0.0, 0.012, bars))
        volume = rng.integers(50_000, 5_000_000, bars).astype(np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "open": opens,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    return frames


def _talib_calls(talib: Any, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> tuple:
    return (
        talib.SMA(close, 20),
        talib.SMA(close, 50),
        talib.EMA(close, 12),
        talib.EMA(close, 26),
        *talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9),
        talib.RSI(close, 14),
        talib.ATR(high, low, close, 14),
        *talib.BBANDS(close, timeperiod=20, nbdevup=2, nbdevdn=2, matype=0),
    )


def _talib_frame(talib: Any, bars: pd.DataFrame) -> pd.DataFrame:
    """``compute_indicators``' contract built on TA-Lib, assembled the same way."""
    values = np.empty((len(_VALUE_COLUMNS), len(bars)))
    for row, name in enumerate(["open", "high", "low", "close", "volume"]):
        values[row] = bars[name].to_numpy(dtype=np.float64)
    high, low, close = values[1], values[2], values[3]
    sma20, sma50, ema12, ema26, macd, signal, hist, rsi, atr, upper, middle, lower = _talib_calls(
        talib, high, low, close
    )
    values[5:17] = [sma20, sma50, ema12, ema26, macd, signal, hist, rsi, atr, upper, middle, lower]
    values[17, 0] = np.nan
    np.divide(close[1:], close[:-1], out=values[17, 1:])
    values[17, 1:] -= 1.0
    np.subtract(high, low, out=values[18])
    np.divide(values[18], close, out=values[19])
    values[19] *= 100.0
    frame = pd.DataFrame(values.T, index=bars.index, columns=_VALUE_COLUMNS, copy=False)
    frame.insert(0, "date", bars["date"].array)
    return frame


def _best_of(work: Callable[[], None], repeats: int = REPEATS) -> float:
    """Fastest of ``repeats`` timed runs after one warm-up run, with the GC paused."""
    work()
    best = math.inf
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - started)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def run(scale: float) -> list[dict]:
    import talib  # the reference only: a dev dependency, never imported by ibkr_assets

    symbols = max(1, round(SYMBOLS * scale))
    frames = synthetic_bars(symbols, BARS_PER_SYMBOL)
    arrays = [
        tuple(f[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close")) for f in frames
    ]

    def ours_all() -> None:
        for bars in frames:
            compute_indicators(bars)

    def calls_all() -> None:
        for high, low, close in arrays:
            _talib_calls(talib, high, low, close)

    def framed_all() -> None:
        for bars in frames:
            _talib_frame(talib, bars)

    # Results are dropped as they come, so neither side is timed filling fresh memory pages.
    ours, calls, framed = _best_of(ours_all), _best_of(calls_all), _best_of(framed_all)

    size = f"{symbols} symbols x {BARS_PER_SYMBOL} bars"
    ratio = ours / calls
    framed_ratio = ours / framed

    def row(
        case: str, value: float, unit: str, target: str | None = None, ok: bool | None = None
    ) -> dict:
        return {
            "section": "indicators",
            "case": case,
            "value": value,
            "unit": unit,
            "target": target,
            "ok": ok,
        }

    return [
        row(f"compute_indicators, frame -> frame, {size}", ours * 1e3, "ms"),
        row(f"TA-Lib, the 8 calls on arrays, {size}", calls * 1e3, "ms"),
        row(f"TA-Lib behind the same frame -> frame contract, {size}", framed * 1e3, "ms"),
        # The target compares like with like: both sides take a bar frame and return a frame
        # with all 15 columns. The raw-array ratio is shown too: the gap is pandas' frame cost.
        row(
            "ours / TA-Lib, same frame -> frame contract",
            framed_ratio,
            "x",
            f"<= {TARGET_RATIO}x",
            framed_ratio <= TARGET_RATIO,
        ),
        row("ours / TA-Lib raw array calls (information)", ratio, "x"),
    ]
