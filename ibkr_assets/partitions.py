"""Partitions: trading day x symbol, keys like ``2025-01-02|AAPL``.

The ``date`` dimension is a weekday time window in America/New_York starting at the configured
start date (``IBKR_ASSETS_START_DATE``); exchange holidays are partitions too and materialize as
"market closed". The ``symbol`` dimension is dynamic (``symbols``): symbols are added at run time.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ibkr_assets.settings import Settings, read_setting

DEFAULT_START_DATE: str = Settings.model_fields["start_date"].default
MAX_PARTITIONS = 100_000


def start_date() -> str:
    value = read_setting("start_date")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"IBKR_ASSETS_START_DATE={value!r} is not a date like 2024-01-02"
        ) from None
    return value


date_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 * * 1-5",
    start=start_date(),
    timezone="America/New_York",
    fmt="%Y-%m-%d",
    end_offset=1,  # today's session is a partition as soon as the day starts
)


def symbols_partition_name(strategy_id: str) -> str:
    """The dynamic partitions that hold ``strategy_id``'s symbols, e.g. ``momentum_symbols``."""
    return f"{strategy_id}_symbols"


def strategy_partitions(strategy_id: str) -> dg.MultiPartitionsDefinition:
    """``date|symbol`` partitions of one strategy's per-symbol assets."""
    return dg.MultiPartitionsDefinition(
        {
            "date": date_partitions,
            "symbol": dg.DynamicPartitionsDefinition(name=symbols_partition_name(strategy_id)),
        }
    )


def split_key(partition_key: str) -> tuple[str, str]:
    """``"2025-01-02|AAPL"`` -> ``("2025-01-02", "AAPL")``."""
    day, sep, symbol = partition_key.partition("|")
    if not sep or not day or not symbol:
        raise ValueError(f"partition key {partition_key!r} is not of the form DATE|SYMBOL")
    return day, symbol


def split_any(partition_key: str) -> tuple[str, str | None]:
    """Like ``split_key`` but also accepts a date-only key (``portfolio_snapshot``): symbol None."""
    if "|" not in partition_key:
        return partition_key, None
    return split_key(partition_key)


def partition_count(symbols: int, today: dt.date | None = None) -> int:
    """How many partitions an asset has with ``symbols`` symbols (must stay under MAX_PARTITIONS)."""
    end = (today or dt.date.today()) + dt.timedelta(days=1)
    start = dt.date.fromisoformat(start_date())
    days = sum(1 for i in range((end - start).days + 1) if (start + dt.timedelta(i)).weekday() < 5)
    return days * symbols
