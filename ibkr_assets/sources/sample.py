"""Deterministic synthetic bars: the offline default. They are not market data and say so.

Each symbol of the sample universe gets its own seeded random walk over the exchange sessions
since ``ORIGIN``. The bar for a given day never depends on the requested end date, so a window
for an earlier date is always a prefix of a later one (no look-ahead, reproducible replays). A
session that has not closed yet has no bar: asking for one is refused, never invented.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from ibkr_assets.domain.bars import empty_bars, normalize_bars, window_ending
from ibkr_assets.domain.calendar import DEFAULT_CALENDAR, session_has_closed, sessions_between
from ibkr_assets.sources.base import FetchGuard, SessionNotClosedError, UnknownSymbolError

ORIGIN = dt.date(2015, 1, 2)

# Symbol -> starting price. Any of these can be a partition with the sample source.
SAMPLE_UNIVERSE: dict[str, float] = {
    "AAPL": 27.0, "MSFT": 46.0, "NVDA": 5.0, "TSLA": 14.0, "AMZN": 15.0, "GOOGL": 26.0,
    "META": 78.0, "NFLX": 49.0, "AMD": 2.7, "INTC": 36.0, "JPM": 62.0, "BAC": 17.0,
    "XOM": 92.0, "CVX": 112.0, "KO": 41.0, "PEP": 94.0, "WMT": 86.0, "DIS": 93.0,
    "V": 66.0, "MA": 86.0, "UNH": 101.0, "JNJ": 104.0, "PFE": 31.0, "ORCL": 44.0,
    "IBM": 162.0, "CSCO": 27.0, "ADBE": 72.0, "CRM": 59.0, "SPY": 205.0, "QQQ": 102.0,
}  # fmt: skip


class SampleBarSource:
    """Synthetic daily bars for the symbols in ``SAMPLE_UNIVERSE``."""

    name = "sample"
    synthetic = True

    def __init__(
        self,
        calendar: str = DEFAULT_CALENDAR,
        guard: FetchGuard | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """``guard`` may refuse a request first; ``clock`` (an aware now) decides which sessions
        have closed (default: the system clock)."""
        self.calendar = calendar
        self._guard = guard
        self._clock = clock

    def fetch_bars(self, symbol: str, end: dt.date, bars: int) -> pd.DataFrame:
        if self._guard:
            self._guard(symbol, end)
        if symbol not in SAMPLE_UNIVERSE:
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r} for the sample source (it knows "
                f"{', '.join(sorted(SAMPLE_UNIVERSE))}); use the csv, postgres or ibkr source "
                "for other symbols"
            )
        if not session_has_closed(end, self.calendar, self._clock() if self._clock else None):
            raise SessionNotClosedError(
                f"the sample source has no bar for {symbol!r} on {end}: that {self.calendar} "
                "session has not closed yet"
            )
        if end < ORIGIN:
            return empty_bars()
        history = _history(symbol, self.calendar, end.year + 1)
        return window_ending(history, end, bars)


@lru_cache(maxsize=64)
def _history(symbol: str, calendar: str, through_year: int) -> pd.DataFrame:
    days = sessions_between(ORIGIN, dt.date(through_year, 12, 31), calendar)
    n = len(days)
    # One generator per series, so bar i never depends on how many bars were generated.
    returns, gap, wick, volume = (
        _stream(symbol, name) for name in ("returns", "gap", "wick", "volume")
    )
    close = SAMPLE_UNIVERSE[symbol] * np.exp(np.cumsum(returns.normal(0.0004, 0.018, n)))
    previous = np.concatenate([close[:1], close[:-1]])
    open_ = previous * np.exp(gap.normal(0, 0.004, n))
    spread = np.abs(wick.normal(0, 0.008, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.maximum(np.minimum(open_, close) - spread, 0.01)
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(days),
            "open": open_.round(4),
            "high": high.round(4),
            "low": low.round(4),
            "close": close.round(4),
            "volume": volume.integers(2_000_000, 60_000_000, n).astype(float),
        }
    )
    return normalize_bars(frame, origin=f"sample:{symbol}")


def _stream(symbol: str, series: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{symbol}:{series}".encode()))
