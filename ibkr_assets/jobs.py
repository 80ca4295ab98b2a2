"""Jobs over the asset graph."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.partitions import daily_symbol_partitions, date_partitions

market_data_job = dg.define_asset_job(
    name="market_data_job",
    selection=dg.AssetSelection.assets("market_data", "indicators"),
    partitions_def=daily_symbol_partitions,
    description="Market data, its quality gates and indicators for the selected partitions.",
)

trading_workflow_job = dg.define_asset_job(
    name="trading_workflow_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("portfolio_snapshot"),
    partitions_def=daily_symbol_partitions,
    description="Per symbol and day: market data, quality gates, indicators, charts, analysis, signal, order.",
)

portfolio_job = dg.define_asset_job(
    name="portfolio_job",
    selection=dg.AssetSelection.assets("portfolio_snapshot"),
    partitions_def=date_partitions,
    description="Per day: the portfolio snapshot over every symbol's order.",
)
