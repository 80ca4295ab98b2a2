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


def session_close(day: dt.date, calendar: str = DEFAULT_CALENDAR) -> dt.datetime | None:
    """When the ``day`` session closes, in the exchange's time zone (early closes included);
    None when ``day`` is not a session or lies outside the calendar's known years."""
    cal = _calendar(calendar)
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session or not cal.is_session(ts):
        return None
    return cal.session_close(ts).tz_convert(cal.tz).to_pydatetime()


def session_has_closed(
    day: dt.date, calendar: str = DEFAULT_CALENDAR, now: dt.datetime | None = None
) -> bool:
    """True once the ``day`` session has closed at ``now`` (an aware time; default: the clock).

    A day that is not a session has nothing to close: it counts as closed once it has begun in
    the exchange's time zone (a future day never has).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    if (now.astimezone(dt.timezone.utc).date() - day).days >= 2:
        return True  # every exchange closes a session by the next UTC day
    close = session_close(day, calendar)
    if close is None:
        return day <= now.astimezone(_calendar(calendar).tz).date()
    return now >= close


def last_closed_session(
    calendar: str = DEFAULT_CALENDAR, now: dt.datetime | None = None
) -> dt.date:
    """The latest session that has closed at ``now`` (default: the clock)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    day = last_session_on_or_before(now.astimezone(_calendar(calendar).tz).date(), calendar)
    if not session_has_closed(day, calendar, now):
        day = last_session_on_or_before(day - dt.timedelta(days=1), calendar)
    return day
