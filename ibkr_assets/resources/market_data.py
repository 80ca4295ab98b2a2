"""The market-data resource: which source the bars come from, and the window size.

A strategy's copy (``for_strategy``) builds a source that refuses, before fetching anything, a
symbol the strategy does not list and a session that has not closed yet (``check_partition``):
a partition typed into the UI's launch dialog, or today's session before the close.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.domain.calendar import DEFAULT_CALENDAR, session_close, session_has_closed
from ibkr_assets.resources.strategy_copies import copy_for_strategy
from ibkr_assets.sources.base import BarSource, SessionNotClosedError, SymbolNotInStrategyError
from ibkr_assets.strategies.config import StrategyConfig, StrategyConfigError, current_strategy


def check_partition(
    strategy: StrategyConfig, symbol: str, day: dt.date, now: dt.datetime | None = None
) -> None:
    """Refuse bars of ``symbol`` for ``day`` in ``strategy``: ``SymbolNotInStrategyError`` when
    the strategy does not list the symbol (nor does the strategies file now), and
    ``SessionNotClosedError`` when the session has not closed by the strategy's calendar at
    ``now`` (an aware time; default: the clock)."""
    if symbol not in strategy.symbols and symbol not in _symbols_in_file(strategy.id):
        raise SymbolNotInStrategyError(
            f"{symbol!r} is not a symbol of strategy {strategy.id!r} (its symbols: "
            f"{', '.join(strategy.symbols)}); add it to the strategies file to trade it"
        )
    calendar = strategy.schedule.calendar
    if not session_has_closed(day, calendar, now):
        close = session_close(day, calendar)
        when = f" (it closes at {close:%H:%M %Z})" if close else ""
        raise SessionNotClosedError(
            f"the {calendar} session of {day} has not closed yet{when}; its bars exist only "
            "after the close: materialize it then"
        )


def _symbols_in_file(strategy_id: str) -> list[str]:
    """The strategy's symbols as the strategies file says now (a symbol added since load)."""
    try:
        current = current_strategy(strategy_id)
    except StrategyConfigError:
        return []
    return current.symbols if current else []


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
    _strategy: StrategyConfig | None = PrivateAttr(default=None)

    def for_strategy(self, strategy: StrategyConfig) -> MarketDataResource:
        """The strategy's copy: its source refuses partitions ``check_partition`` refuses."""
        copy = copy_for_strategy(
            self,
            self._copies,
            strategy.id,
            source=strategy.market_data.source,
            lookback_bars=strategy.market_data.lookback_bars,
            calendar=strategy.schedule.calendar,
        )
        copy._strategy = strategy
        return copy

    def _refuse(self, symbol: str, end: dt.date) -> None:
        if self._strategy is not None:
            check_partition(self._strategy, symbol, end)

    def get_source(self) -> BarSource:
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> BarSource:
        if self.source == "csv":
            from ibkr_assets.sources.csv_folder import CsvFolderSource

            return CsvFolderSource(self.csv_dir, guard=self._refuse)
        if self.source == "postgres":
            from ibkr_assets.sources.postgres_table import StockDataTableSource

            if not self.stock_data_url:
                raise dg.Failure("market data source 'postgres' needs IBKR_ASSETS_STOCK_DATA_URL")
            return StockDataTableSource(self.stock_data_url, guard=self._refuse)
        if self.source == "ibkr":
            from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig
            from ibkr_assets.ibkr.bar_source import IbkrBarSource

            config = IbkrConfig(
                host=self.ibkr_host, port=self.ibkr_port, client_id=self.ibkr_client_id
            )
            return IbkrBarSource(IbkrAdapter(config), guard=self._refuse)
        from ibkr_assets.sources.sample import SampleBarSource

        return SampleBarSource(self.calendar, guard=self._refuse)
