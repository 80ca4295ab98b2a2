"""Each strategy's jobs over its asset group."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.partitions import date_partitions, strategy_partitions
from ibkr_assets.strategies.config import StrategyConfig


def market_data_job_name(strategy_id: str) -> str:
    return f"{strategy_id}_market_data_job"


def workflow_job_name(strategy_id: str) -> str:
    return f"{strategy_id}_workflow_job"


def portfolio_job_name(strategy_id: str) -> str:
    return f"{strategy_id}_portfolio_job"


def build_jobs(strategy: StrategyConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    sid = strategy.id
    group = dg.AssetSelection.groups(sid)
    portfolio = dg.AssetSelection.assets([sid, "portfolio_snapshot"])
    return [
        dg.define_asset_job(
            name=market_data_job_name(sid),
            selection=dg.AssetSelection.assets([sid, "market_data"], [sid, "indicators"]),
            partitions_def=strategy_partitions(sid),
            tags={"strategy": sid},
            description=f"Strategy '{sid}': market data, its quality gates and indicators.",
        ),
        dg.define_asset_job(
            name=workflow_job_name(sid),
            selection=group - portfolio,
            partitions_def=strategy_partitions(sid),
            tags={"strategy": sid},
            description=(
                f"Strategy '{sid}', per symbol and day: market data, quality gates, indicators, "
                "charts, analysis, signal, order."
            ),
        ),
        dg.define_asset_job(
            name=portfolio_job_name(sid),
            selection=portfolio,
            partitions_def=date_partitions,
            tags={"strategy": sid},
            description=f"Strategy '{sid}', per day: the portfolio snapshot over every symbol's order.",
        ),
    ]
