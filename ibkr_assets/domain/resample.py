"""Daily bars to weekly bars, without look-ahead.

A week runs Saturday to Friday (pandas ``W-FRI``). Each weekly bar is dated with the last
trading day actually present in that week, not with the calendar Friday: a partition that
ends on a Wednesday gets a partial week dated that Wednesday, so nothing downstream can
mistake it for a finished week or read it as data from a day that has not happened yet.
"""

from __future__ import annotations

import pandas as pd

from ibkr_assets.domain.bars import BAR_COLUMNS


def weekly_bars(daily: pd.DataFrame) -> pd.DataFrame:
    """Weekly OHLCV from a daily bar frame, oldest first, with the bar frame's columns and dtypes.

    open is the week's first open, high its highest high, low its lowest low, close its last
    close, volume the sum (NaN, not 0, when every volume in the week is missing). Missing prices
    are skipped within a week, as pandas' ``first``/``last``/``max``/``min`` skip them. Rows
    without a date cannot be placed in a week and are dropped; weeks without bars do not appear.
    """
    missing = [c for c in BAR_COLUMNS if c not in daily.columns]
    if missing:
        raise ValueError(f"weekly_bars: missing column(s) {', '.join(missing)}")
    bars = daily.loc[daily["date"].notna(), BAR_COLUMNS]
    if bars.empty:
        return _typed(bars.iloc[0:0].reset_index(drop=True))
    # A stable sort keeps the source's order within a day, so "first" and "last" mean in time.
    bars = bars.sort_values("date", kind="stable")
    week = bars["date"].dt.to_period("W-FRI")
    grouped = bars.groupby(week, sort=True)
    weekly = pd.DataFrame(
        {
            "date": grouped["date"].max(),
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(min_count=1),
        }
    )
    return _typed(weekly.reset_index(drop=True))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the bar frame's dtypes: ``datetime64[ns]`` dates, float64 values."""
    out = frame.astype({c: "float64" for c in BAR_COLUMNS[1:]})
    out["date"] = out["date"].astype("datetime64[ns]")
    return out
