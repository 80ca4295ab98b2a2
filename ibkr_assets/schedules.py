"""Each strategy's after-close schedule, on its exchange calendar."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.jobs import workflow_job_name
from ibkr_assets.partitions import symbols_partition_name
from ibkr_assets.strategies.config import StrategyConfig, StrategyConfigError, current_strategy
from ibkr_assets.strategies.schedules import build_schedule


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
