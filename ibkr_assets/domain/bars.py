"""The OHLCV bar frame every source returns and every consumer reads.

A bar frame is a pandas DataFrame with exactly the columns in ``BAR_COLUMNS``: ``date`` is a
tz-naive ``datetime64[ns]`` at midnight (the trading day), prices are floats, volume is a float
(so a missing value stays visible as NaN instead of failing the parse). Rows keep the order the
source gave them; the quality gate, not the loader, decides whether that order is acceptable.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

BAR_COLUMNS: list[str] = ["date", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS: list[str] = ["open", "high", "low", "close"]

# Header spellings seen in exported files, mapped to our names (matched case-insensitively).
_ALIASES = {"timestamp": "date", "datetime": "date", "time": "date", "vol": "volume"}


class BarFormatError(ValueError):
    """The input cannot be read as OHLCV bars (a column is missing or a value is not a number)."""


def normalize_bars(raw: pd.DataFrame, *, origin: str) -> pd.DataFrame:
    """Return ``raw`` as a bar frame: lower-case headers, aliases resolved, extra columns dropped.

    ``origin`` names where the data came from, for error messages. Values that are not numbers
    become NaN (the quality gate reports them); a missing required column is an error here.
    """
    renamed = {c: _ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in raw.columns}
    frame = raw.rename(columns=renamed)
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise BarFormatError(
            f"{origin}: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(c.capitalize() for c in BAR_COLUMNS)} (any case)"
        )
    frame = frame.loc[:, BAR_COLUMNS].copy()
    dates = pd.to_datetime(frame["date"], errors="coerce", utc=False)
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    frame["date"] = dates.dt.normalize().astype("datetime64[ns]")
    for column in [*PRICE_COLUMNS, "volume"]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.reset_index(drop=True)


def window_ending(bars: pd.DataFrame, end: dt.date, size: int) -> pd.DataFrame:
    """The last ``size`` bars dated on or before ``end``: never a bar after it (no look-ahead)."""
    dates = bars["date"]
    on_or_before = (dates <= pd.Timestamp(end)).to_numpy()
    if not on_or_before.any():
        return bars.iloc[0:0].reset_index(drop=True)
    last = int(on_or_before.nonzero()[0][-1])
    # Rows with an unreadable date (NaT) inside the window stay, so the quality gates see them.
    head = bars.iloc[: last + 1]
    keep = head["date"].isna() | (head["date"] <= pd.Timestamp(end))
    return head[keep].tail(size).reset_index(drop=True)


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows and the right dtypes."""
    return normalize_bars(pd.DataFrame({c: [] for c in BAR_COLUMNS}), origin="empty")
