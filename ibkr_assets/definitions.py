"""The front door: every strategy's assets, checks, jobs, schedule and sensors, the sensors
shared by all strategies, and the resources of this deployment."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.assets import build_strategy_assets
from ibkr_assets.jobs import build_jobs
from ibkr_assets.openlineage.sensor import build_openlineage_sensor
from ibkr_assets.resources import build_resources
from ibkr_assets.schedules import after_close_schedule
from ibkr_assets.sensors import (
    build_order_tracking_sensor,
    build_portfolio_automation_sensor,
    build_symbol_sensor,
    run_failure_sensor,
)
from ibkr_assets.settings import load_settings
from ibkr_assets.strategies.checks import check_strategies
from ibkr_assets.strategies.config import StrategyConfig, load_strategies
from ibkr_assets.verification.job import verify_job, verify_nightly


def strategy_definitions(strategy: StrategyConfig) -> dg.Definitions:
    """One strategy: its asset group (with quality checks), jobs, after-close schedule, symbol
    sensor."""
    return dg.Definitions(
        assets=build_strategy_assets(strategy),
        jobs=build_jobs(strategy),
        schedules=[after_close_schedule(strategy)],
        sensors=[build_symbol_sensor(strategy)],
    )


def build_definitions() -> dg.Definitions:
    """Definitions for the strategies file (``IBKR_ASSETS_STRATEGIES_FILE``, else the packaged
    one) and the deployment configured by the environment."""
    settings = load_settings()
    strategies = load_strategies()
    check_strategies(settings, strategies)
    shared = dg.Definitions(
        sensors=[
            build_order_tracking_sensor(strategies),
            run_failure_sensor,
            build_portfolio_automation_sensor(strategies),
            build_openlineage_sensor(settings.openlineage_namespace),
        ],
        resources=build_resources(settings),
        jobs=[verify_job],
        schedules=[verify_nightly],
    )
    return dg.Definitions.merge(*(strategy_definitions(s) for s in strategies), shared)


@dg.definitions
def defs() -> dg.Definitions:
    """What Dagster loads (``-m ibkr_assets.definitions``, ``dg``): built when loaded, so
    importing this module reads no settings and no strategies file."""
    return build_definitions()
