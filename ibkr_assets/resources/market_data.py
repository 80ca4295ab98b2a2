"""The market-data resource: which source the bars come from, and the window size."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.domain.calendar import DEFAULT_CALENDAR
from ibkr_assets.resources.strategy_copies import copy_for_strategy
from ibkr_assets.sources.base import BarSource
from ibkr_assets.strategies.config import StrategyConfig


class MarketDataResource(dg.ConfigurableResource):
    """``source``: ``sample`` (synthetic, offline default), ``csv``, ``postgres`` or ``ibkr``.

    ``source``, ``lookback_bars`` and ``calendar`` are each strategy's (``for_strategy``); the
    rest (where CSV files and databases are, the gateway) belongs to the deployment.
    """

    source: Literal["sample", "csv", "postgres", "ibkr"] = "sample"
    lookback_bars: int = 200
    calendar: str = DEFAULT_CALENDAR
    max_stale_sessions: int = 0
    csv_dir: str = "data"
    stock_data_url: str | None = None
    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = 4002
    ibkr_client_id: int = 17

    _source: BarSource | None = PrivateAttr(default=None)
    _copies: dict = PrivateAttr(default_factory=dict)

    def for_strategy(self, strategy: StrategyConfig) -> MarketDataResource:
        return copy_for_strategy(
            self,
            self._copies,
            strategy.id,
            source=strategy.market_data.source,
            lookback_bars=strategy.market_data.lookback_bars,
            calendar=strategy.schedule.calendar,
        )

    def get_source(self) -> BarSource:
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> BarSource:
        if self.source == "csv":
            from ibkr_assets.sources.csv_folder import CsvFolderSource

            return CsvFolderSource(self.csv_dir)
        if self.source == "postgres":
            from ibkr_assets.sources.postgres_table import StockDataTableSource

            if not self.stock_data_url:
                raise dg.Failure("market data source 'postgres' needs IBKR_ASSETS_STOCK_DATA_URL")
            return StockDataTableSource(self.stock_data_url)
        if self.source == "ibkr":
            from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig
            from ibkr_assets.sources.ibkr import IbkrBarSource

            config = IbkrConfig(
                host=self.ibkr_host, port=self.ibkr_port, client_id=self.ibkr_client_id
            )
            return IbkrBarSource(IbkrAdapter(config))
        from ibkr_assets.sources.sample import SampleBarSource

        return SampleBarSource(self.calendar)
