"""The market-data resource: where the bars can come from (the deployment's folders, databases
and gateway).

``source_for(strategy)`` builds the strategy's source, which refuses, before fetching anything, a
symbol the strategy does not list and a session that has not closed yet (``check_partition``):
a partition typed into the UI's launch dialog, or today's session before the close.
"""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.domain.calendar import session_close, session_has_closed
from ibkr_assets.sources.base import BarSource, SessionNotClosedError, SymbolNotInStrategyError
from ibkr_assets.strategies.config import StrategyConfig, StrategyConfigError, current_strategy

_LOCK = threading.Lock()  # one source per strategy even if two threads ask at once


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
    """Where the bars can come from: the CSV folder, the stock-data database, the gateway.

    Which source a strategy reads (``sample``, the synthetic offline default, ``csv``,
    ``postgres`` or ``ibkr``), its window and calendar are the strategy's, passed as a value:
    ``source_for(strategy)``.
    """

    max_stale_sessions: int = 0
    csv_dir: str = "data"
    stock_data_url: str | None = None
    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = 4002
    ibkr_client_id: int = 17

    _sources: dict[str, BarSource] = PrivateAttr(default_factory=dict)
    _strategies: dict[str, StrategyConfig] = PrivateAttr(default_factory=dict)

    def source_for(self, strategy: StrategyConfig) -> BarSource:
        """The strategy's source (one per strategy id for the life of the resource; its guard
        refuses what ``check_partition`` refuses for the strategy as last passed)."""
        with _LOCK:
            self._strategies[strategy.id] = strategy
            if strategy.id not in self._sources:
                self._sources[strategy.id] = self._build(strategy)
            return self._sources[strategy.id]

    def _build(self, strategy: StrategyConfig) -> BarSource:
        def refuse(symbol: str, end: dt.date) -> None:
            check_partition(self._strategies[strategy.id], symbol, end)

        kind = strategy.market_data.source
        if kind == "csv":
            from ibkr_assets.sources.csv_folder import CsvFolderSource

            return CsvFolderSource(self.csv_dir, guard=refuse)
        if kind == "postgres":
            from ibkr_assets.sources.postgres_table import StockDataTableSource

            if not self.stock_data_url:
                raise dg.Failure("market data source 'postgres' needs IBKR_ASSETS_STOCK_DATA_URL")
            return StockDataTableSource(self.stock_data_url, guard=refuse)
        if kind == "ibkr":
            from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig
            from ibkr_assets.ibkr.bar_source import IbkrBarSource

            config = IbkrConfig(
                host=self.ibkr_host, port=self.ibkr_port, client_id=self.ibkr_client_id
            )
            return IbkrBarSource(IbkrAdapter(config), guard=refuse)
        from ibkr_assets.sources.sample import SampleBarSource

        return SampleBarSource(strategy.schedule.calendar, guard=refuse)
