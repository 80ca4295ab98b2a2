"""Schedules: the workflow after each session's close, on the exchange calendar."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.partitions import SYMBOLS_PARTITION_NAME
from ibkr_assets.settings import Settings
from ibkr_assets.strategies.config import ScheduleConfig, StrategyConfig
from ibkr_assets.strategies.schedules import build_schedule


def _partition_symbols(context: dg.ScheduleEvaluationContext) -> list[str]:
    """Every symbol that is a partition now, so a symbol added by the sensor is scheduled too."""
    return list(context.instance.get_dynamic_partitions(SYMBOLS_PARTITION_NAME))


def after_close_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """One run per symbol for the session that just closed (holidays skip; early closes count)."""
    strategy = StrategyConfig(
        id=settings.strategy,
        symbols=settings.symbols,
        schedule=ScheduleConfig(calendar=settings.calendar),
    )
    return build_schedule(strategy, "trading_workflow_job", symbols_provider=_partition_symbols)
