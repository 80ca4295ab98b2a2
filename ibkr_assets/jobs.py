"""Jobs over the asset graph."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.partitions import daily_symbol_partitions

market_data_job = dg.define_asset_job(
    name="market_data_job",
    selection=dg.AssetSelection.assets("market_data", "indicators"),
    partitions_def=daily_symbol_partitions,
    description="Market data, its quality gates and indicators for the selected partitions.",
)

trading_workflow_job = dg.define_asset_job(
    name="trading_workflow_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_symbol_partitions,
    description="The whole graph: market data, quality gates, indicators, charts, analysis and signal.",
)
