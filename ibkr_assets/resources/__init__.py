"""Resources for the chosen deployment, built in one place from the settings.

Assets never ask which deployment they run in: they receive typed resources, and this module
decides (from environment variables) which concrete store, database and gateway those are.
Resources hold only the deployment; what a strategy chooses (data source, analyst, risk limits,
broker) is passed to them as a value (``source_for``, ``analyst_for``, ``broker_for``).
"""

from __future__ import annotations

import os

import dagster as dg

from ibkr_assets.resources.analyst import AnalystResource
from ibkr_assets.resources.broker import BrokerResource
from ibkr_assets.resources.charts import ChartsResource
from ibkr_assets.resources.io_manager import ObjectStoreIOManager
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.settings import Settings, is_set


def _secret(var: str, value: str | None) -> str | dg.EnvVar | None:
    """Pass a value that may hold a password as ``EnvVar`` so Dagster never displays it."""
    return dg.EnvVar(var) if is_set(var) else value


def build_resources(settings: Settings) -> dict[str, object]:
    object_store = ObjectStoreResource(
        kind=settings.object_store,
        local_root=str(settings.object_root_path),
        s3_bucket=settings.s3_bucket,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    lineage = LineageResource(
        database_url=_secret("IBKR_ASSETS_DATABASE_URL", settings.lineage_url),
        viewer_url=settings.viewer_url,
        debug=settings.debug,
    )
    return {
        "object_store": object_store,
        "object_store_io_manager": ObjectStoreIOManager(object_store=object_store, lineage=lineage),
        "lineage": lineage,
        "market_data_source": MarketDataResource(
            max_stale_sessions=settings.max_stale_sessions,
            csv_dir=str(os.path.abspath(settings.csv_dir)),
            stock_data_url=_secret("IBKR_ASSETS_STOCK_DATA_URL", settings.stock_data_url),
            ibkr_host=settings.ibkr_host,
            ibkr_port=settings.ibkr_port,
            ibkr_client_id=settings.ibkr_client_id,
        ),
        "charts": ChartsResource(workers=settings.chart_workers),
        "analyst": AnalystResource(
            api_key=_secret("OPENAI_API_KEY", None),
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            price_per_mtok_in=settings.llm_price_in,
            price_per_mtok_out=settings.llm_price_out,
            cache_mode=settings.llm_cache_mode,
            concurrency=settings.llm_concurrency,
            requests_per_minute=settings.llm_requests_per_minute,
        ),
        "broker": BrokerResource(
            live=settings.live_trading == "yes",
            database_url=_secret("IBKR_ASSETS_DATABASE_URL", settings.lineage_url),
            commission_per_share=settings.commission_per_share,
            commission_min=settings.commission_min,
            commission_max_pct=settings.commission_max_pct,
            kill_switch_file=str(settings.kill_switch_path),
            book_lock_timeout_s=settings.book_lock_timeout_s,
            ibkr_host=settings.ibkr_host,
            ibkr_port=settings.ibkr_port,
            ibkr_client_id=settings.ibkr_order_client_id,
        ),
        "mlflow": MlflowResource(
            tracking_uri=_secret("MLFLOW_TRACKING_URI", settings.tracking_uri),
            artifact_root=settings.artifact_root,
        ),
    }
