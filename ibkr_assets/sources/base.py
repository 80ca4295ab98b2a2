"""What every market-data source provides, and the errors it may raise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import pandas as pd


class MarketDataError(Exception):
    """Base class: the message names the symbol, the source and what to do."""


class UnknownSymbolError(MarketDataError):
    """The source does not know this symbol at all."""


class EmptyWindowError(MarketDataError):
    """The source knows the symbol but has no bar on or before the requested date."""


class SourceUnavailableError(MarketDataError):
    """The source could not be reached or answered with an error (broker down, pacing, ...)."""


class PartitionRefusedError(Exception):
    """A request for bars that must not be answered at all, raised before anything is fetched.

    Not a ``MarketDataError``: it is not one symbol's data going wrong but a partition that
    should not exist, so the step fails instead of recording the partition as blocked.
    """


class SymbolNotInStrategyError(PartitionRefusedError):
    """The symbol is not one of the strategy's (e.g. typed as a new partition in the UI)."""


class SessionNotClosedError(PartitionRefusedError):
    """The session has not closed yet by the exchange calendar: its bar does not exist yet."""


# Called with (symbol, end) before a source fetches anything; raises to refuse the request.
FetchGuard = Callable[[str, dt.date], None]


@runtime_checkable
class BarSource(Protocol):
    """A source of daily OHLCV bars.

    ``name`` goes into object keys (``{date}_{name}.json``) and lineage rows; ``synthetic`` is
    True only for generated data, so that nobody mistakes it for a market record.
    """

    name: str
    synthetic: bool

    def fetch_bars(self, symbol: str, end: dt.date, bars: int) -> pd.DataFrame:
        """At most ``bars`` daily bars for ``symbol`` dated on or before ``end``, oldest first.

        Returns a bar frame (``ibkr_assets.domain.bars.BAR_COLUMNS``). Raises
        ``UnknownSymbolError`` for a symbol the source does not have and
        ``SourceUnavailableError`` when the source fails. Returning no rows is allowed (the
        caller decides between "market closed" and "empty window").
        """
        ...
