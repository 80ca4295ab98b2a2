"""Resources for the chosen deployment, built in one place from the settings.

Assets never ask which deployment they run in: they receive typed resources, and this module
decides (from environment variables) which concrete store, database and source those are.
"""

from __future__ import annotations

import os

import dagster as dg

from ibkr_assets.resources.io_manager import ObjectStoreIOManager
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.settings import Settings


def _secret(var: str, value: str | None) -> str | dg.EnvVar | None:
    """Pass a value that may hold a password as ``EnvVar`` so Dagster never displays it."""
    return dg.EnvVar(var) if os.environ.get(var) else value


def build_resources(settings: Settings) -> dict[str, object]:
    object_store = ObjectStoreResource(
        kind=settings.object_store,
        local_root=str(settings.object_root_path),
        s3_bucket=settings.s3_bucket,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    return {
        "object_store": object_store,
        "object_store_io_manager": ObjectStoreIOManager(object_store=object_store),
        "lineage": LineageResource(
            database_url=_secret("IBKR_ASSETS_DATABASE_URL", settings.lineage_url)
        ),
        "market_data_source": MarketDataResource(
            source=settings.market_data_source,
            lookback_bars=settings.lookback_bars,
            calendar=settings.calendar,
            max_stale_sessions=settings.max_stale_sessions,
            csv_dir=str(os.path.abspath(settings.csv_dir)),
            stock_data_url=_secret("IBKR_ASSETS_STOCK_DATA_URL", settings.stock_data_url),
            ibkr_host=settings.ibkr_host,
            ibkr_port=settings.ibkr_port,
            ibkr_client_id=settings.ibkr_client_id,
        ),
    }
