"""The exchange calendar: which days are trading sessions (holidays and weekends are not).

Backed by ``exchange_calendars`` (maintained holiday and early-close rules), never a hand list.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

DEFAULT_CALENDAR = "XNYS"


@lru_cache(maxsize=8)
def _calendar(name: str) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(name, start="2000-01-03")


def is_session(day: dt.date, calendar: str = DEFAULT_CALENDAR) -> bool:
    """True when ``day`` is a trading session on ``calendar``."""
    cal = _calendar(calendar)
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session:
        return ts.dayofweek < 5
    return bool(cal.is_session(ts))


def sessions_between(
    start: dt.date, end: dt.date, calendar: str = DEFAULT_CALENDAR
) -> list[dt.date]:
    """Every trading session from ``start`` to ``end`` inclusive."""
    if end < start:
        return []
    cal = _calendar(calendar)
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = min(pd.Timestamp(end), cal.last_session)
    if hi < lo:
        return []
    return [ts.date() for ts in cal.sessions_in_range(lo, hi)]


def last_session_on_or_before(day: dt.date, calendar: str = DEFAULT_CALENDAR) -> dt.date:
    """The latest trading session on or before ``day``."""
    cal = _calendar(calendar)
    return cal.date_to_session(pd.Timestamp(day), direction="previous").date()
