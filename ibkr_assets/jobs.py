"""Each strategy's jobs over its asset group."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.partitions import date_partitions, strategy_partitions
from ibkr_assets.settings import ConfigError, Settings, is_set, load_settings
from ibkr_assets.strategies.config import StrategyConfig


def market_data_job_name(strategy_id: str) -> str:
    return f"{strategy_id}_market_data_job"


def workflow_job_name(strategy_id: str) -> str:
    return f"{strategy_id}_workflow_job"


def portfolio_job_name(strategy_id: str) -> str:
    return f"{strategy_id}_portfolio_job"


def job_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """Where the jobs' steps run: None for Dagster's default (a process per step; in process for
    ``execute_in_process``), or with ``IBKR_ASSETS_EXECUTOR=celery`` dagster-celery's executor,
    each step a task for the Celery workers listening on the broker (see the README)."""
    if settings.executor != "celery":
        return None
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ConfigError(
            "IBKR_ASSETS_EXECUTOR='celery' needs dagster-celery: pip install 'ibkr_assets[celery]'"
        ) from None

    def url(var: str, value: str) -> str | dict[str, str]:  # a password stays in the environment
        return {"env": var} if is_set(var) else value

    broker = url("IBKR_ASSETS_CELERY_BROKER", settings.celery_broker)
    backend = (
        url("IBKR_ASSETS_CELERY_BACKEND", settings.celery_backend)
        if settings.celery_backend
        else broker
    )
    return celery_executor.configured({"broker": broker, "backend": backend}, name="celery")


def build_jobs(strategy: StrategyConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    sid = strategy.id
    executor = job_executor(load_settings())
    group = dg.AssetSelection.groups(sid)
    portfolio = dg.AssetSelection.assets([sid, "portfolio_snapshot"])
    return [
        dg.define_asset_job(
            name=market_data_job_name(sid),
            selection=dg.AssetSelection.assets([sid, "market_data"], [sid, "indicators"]),
            partitions_def=strategy_partitions(sid),
            tags={"strategy": sid},
            executor_def=executor,
            description=f"Strategy '{sid}': market data, its quality gates and indicators.",
        ),
        dg.define_asset_job(
            name=workflow_job_name(sid),
            selection=group - portfolio,
            partitions_def=strategy_partitions(sid),
            tags={"strategy": sid},
            executor_def=executor,
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
            executor_def=executor,
            description=f"Strategy '{sid}', per day: the portfolio snapshot over every symbol's order.",
        ),
    ]
