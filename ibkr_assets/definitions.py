"""The front door: every asset, check, job, sensor and the resources of this deployment."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.assets.charts import daily_chart, weekly_chart
from ibkr_assets.assets.indicators import indicators
from ibkr_assets.assets.llm_analysis import llm_analysis
from ibkr_assets.assets.market_data import market_data
from ibkr_assets.assets.orders import order
from ibkr_assets.assets.portfolio import portfolio_snapshot
from ibkr_assets.assets.quality_checks import market_data_quality
from ibkr_assets.assets.trading_signal import trading_signal
from ibkr_assets.jobs import market_data_job, portfolio_job, trading_workflow_job
from ibkr_assets.resources import build_resources
from ibkr_assets.schedules import after_close_schedule
from ibkr_assets.sensors import (
    order_tracking_sensor,
    portfolio_automation_sensor,
    run_failure_sensor,
    symbol_partitions_sensor,
)
from ibkr_assets.settings import load_settings


def build_definitions() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        assets=[
            market_data,
            indicators,
            daily_chart,
            weekly_chart,
            llm_analysis,
            trading_signal,
            order,
            portfolio_snapshot,
        ],
        asset_checks=[market_data_quality],
        jobs=[market_data_job, trading_workflow_job, portfolio_job],
        sensors=[
            symbol_partitions_sensor,
            order_tracking_sensor,
            run_failure_sensor,
            portfolio_automation_sensor,
        ],
        schedules=[after_close_schedule(settings)],
        resources=build_resources(settings),
    )


defs = build_definitions()
