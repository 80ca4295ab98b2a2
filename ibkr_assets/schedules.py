"""Each strategy's after-close schedule, on its exchange calendar.

The cron says when to look; the exchange calendar says whether there is anything to run. A
tick on a weekend, an exchange holiday, or before the session's close (early closes such as the
day after Thanksgiving included) requests nothing and says why. Holidays and early closes come
from ``exchange_calendars``, never a hand list. ``closed_session_at`` is the decision, free of
Dagster; ``build_schedule`` is the thin Dagster wrapper around it; ``after_close_schedule`` is
the one the definitions use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import dagster as dg
import exchange_calendars as xcals
import pandas as pd

from ibkr_assets.domain.calendar import _calendar
from ibkr_assets.jobs import workflow_job_name
from ibkr_assets.partitions import symbols_partition_name
from ibkr_assets.strategies.config import StrategyConfig, StrategyConfigError, current_strategy


def date_symbol_key(session: dt.date, symbol: str) -> str:
    """The ``date|symbol`` partition key, e.g. ``2025-01-02|AAPL``."""
    return f"{session.isoformat()}|{symbol}"


def _closed_reason(cal: xcals.ExchangeCalendar, day: pd.Timestamp) -> str:
    """Why ``day`` (not a session) is closed: weekend, a named holiday, or an unscheduled closure."""
    if day.dayofweek >= 5:
        return "weekend"
    regular = cal.regular_holidays
    if regular is not None:
        names = regular.holidays(day, day, return_name=True)
        if len(names):
            return f"holiday: {names.iloc[0]}"
    if day in cal.adhoc_holidays:
        return "holiday: unscheduled closure"
    return "holiday"


def closed_session_at(t: dt.datetime, calendar: str = "XNYS") -> dt.date | str:
    """The session of ``calendar`` that has closed by ``t`` on ``t``'s own day, or why there is none.

    "Today" is ``t``'s date in the calendar's time zone. Returns a ``date`` when today is a
    session whose close (early closes included) is at or before ``t``; otherwise a sentence
    saying why nothing should run.
    """
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{t!r} has no time zone: pass an aware datetime")
    cal = _calendar(calendar)
    at = pd.Timestamp(t)
    day = at.tz_convert(cal.tz).normalize().tz_localize(None)
    label = f"{day.date()} ({day.day_name()})"
    if day < cal.first_session or day > cal.last_session:
        return (
            f"{label} is outside the {calendar} calendar's known sessions "
            f"({cal.first_session.date()} to {cal.last_session.date()})"
        )
    if not cal.is_session(day):
        return f"{label} is not a {calendar} session ({_closed_reason(cal, day)})"
    close = cal.session_close(day)
    if at < close:
        local = close.tz_convert(cal.tz)
        return f"session {day.date()} has not closed yet (closes at {local:%H:%M} {cal.tz})"
    return day.date()


def build_schedule(
    strategy: StrategyConfig,
    job_name: str,
    partition_key_for: Callable[[dt.date, str], str] = date_symbol_key,
    symbols_provider: Callable[[dg.ScheduleEvaluationContext], list[str]] | None = None,
) -> dg.ScheduleDefinition:
    """``{id}_after_close``: one run of ``job_name`` per symbol once the day's session closed.

    ``symbols_provider`` replaces the configured symbols (e.g. with the instance's dynamic
    partitions); run keys ``{id}:{session}:{symbol}`` keep a retried tick from launching twice.
    """
    config = strategy.schedule
    status = (
        dg.DefaultScheduleStatus.RUNNING if config.enabled else dg.DefaultScheduleStatus.STOPPED
    )

    @dg.schedule(
        name=f"{strategy.id}_after_close",
        cron_schedule=config.cron,
        job_name=job_name,
        execution_timezone=config.timezone,
        default_status=status,
        description=(
            f"Strategy '{strategy.id}': one run per symbol after the {config.calendar} close "
            "(skips weekends, holidays, and ticks before an early close)."
        ),
    )
    def _after_close(
        context: dg.ScheduleEvaluationContext,
    ) -> Iterator[dg.RunRequest | dg.SkipReason]:
        t = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        if t.tzinfo is None:
            t = t.replace(tzinfo=ZoneInfo(config.timezone))
        session = closed_session_at(t, config.calendar)
        if isinstance(session, str):
            yield dg.SkipReason(session)
            return
        symbols = list(symbols_provider(context)) if symbols_provider else list(strategy.symbols)
        if not symbols:
            yield dg.SkipReason(
                f"session {session} closed, but strategy '{strategy.id}' has no symbols"
            )
            return
        for symbol in symbols:
            yield dg.RunRequest(
                run_key=f"{strategy.id}:{session.isoformat()}:{symbol}",
                partition_key=partition_key_for(session, symbol),
                tags={"strategy": strategy.id},
            )

    return _after_close


def after_close_schedule(strategy: StrategyConfig) -> dg.ScheduleDefinition:
    """One run per symbol for the session that just closed (holidays skip; early closes count).

    The symbols are those the strategies file lists now that are partitions (the sensor has
    resolved them): one just added is scheduled without a restart, one removed is not.
    """
    partitions = symbols_partition_name(strategy.id)

    def symbols(context: dg.ScheduleEvaluationContext) -> list[str]:
        try:
            current = current_strategy(strategy.id)
        except StrategyConfigError as exc:  # a bad edit must not stop the day's runs
            context.log.warning(f"strategies file is invalid, using the loaded symbols: {exc}")
            current = strategy
        listed = set(current.symbols) if current else set()
        return [s for s in context.instance.get_dynamic_partitions(partitions) if s in listed]

    return build_schedule(strategy, workflow_job_name(strategy.id), symbols_provider=symbols)
