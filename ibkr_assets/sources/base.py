"""What every market-data source provides, and the errors it may raise."""

from __future__ import annotations

import datetime as dt
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
