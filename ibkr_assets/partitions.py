"""Partitions: trading day x symbol, keys like ``2025-01-02|AAPL``.

The ``date`` dimension is a weekday time window in America/New_York starting at the configured
start date (``IBKR_ASSETS_START_DATE``); exchange holidays are partitions too and materialize as
"market closed". The ``symbol`` dimension is dynamic (``symbols``): symbols are added at run time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from ibkr_assets.settings import Settings, read_setting

if TYPE_CHECKING:
    from dagster._core.instance import DynamicPartitionsStore

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
    return StrategyPartitionsDefinition(
        {
            "date": date_partitions,
            "symbol": dg.DynamicPartitionsDefinition(name=symbols_partition_name(strategy_id)),
        }
    )


class StrategyPartitionsDefinition(dg.MultiPartitionsDefinition):
    """Dagster's ``MultiPartitionsDefinition`` that remembers the keys of the ranges it listed.

    Dagster checks every ``context.add_asset_metadata(..., partition_key=key)`` by listing all
    the keys of the run's range again, so a range run that gives each of its n partitions its
    own metadata built n lists of n keys (a second per 100 partitions, a minute and a half per
    1,000). The list is remembered for the range, the symbols that exist (read on every call,
    so a symbol added or removed is seen at once) and the day; anything else asks Dagster.
    """

    _REMEMBERED = 16  # ranges kept; a run asks about one or two

    def __init__(self, partitions_defs: dict[str, dg.PartitionsDefinition]) -> None:
        super().__init__(partitions_defs)
        self._keys_in_range: dict[tuple, Sequence[str]] = {}

    @property
    def _symbols_name(self) -> str:
        (name,) = (
            d.partitions_def.name
            for d in self.partitions_defs
            if isinstance(d.partitions_def, dg.DynamicPartitionsDefinition)
        )
        return name

    def get_partition_keys_in_range(
        self,
        partition_key_range: dg.PartitionKeyRange,
        dynamic_partitions_store: DynamicPartitionsStore | None = None,
    ) -> Sequence[str]:
        with dg.partition_loading_context(dynamic_partitions_store=dynamic_partitions_store) as ctx:
            store = ctx.dynamic_partitions_store
            if store is None:
                return super().get_partition_keys_in_range(partition_key_range)
            memo_key = (
                partition_key_range.start,
                partition_key_range.end,
                tuple(store.get_dynamic_partitions(self._symbols_name)),
                ctx.effective_dt.date(),
            )
            memo = self._keys_in_range
            keys = memo.get(memo_key)
            if keys is None:
                keys = super().get_partition_keys_in_range(partition_key_range)
                if len(memo) >= self._REMEMBERED:
                    memo.clear()
                memo[memo_key] = keys
            return list(keys)


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
