"""Daily bars from Interactive Brokers, through the one IBKR adapter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from ibkr_assets.ibkr.adapter import IbkrAdapter
from ibkr_assets.ibkr.errors import GatewayUnavailableError, UnknownContractError
from ibkr_assets.sources.base import FetchGuard, SourceUnavailableError, UnknownSymbolError


@contextmanager
def as_market_data_errors() -> Iterator[None]:
    """The gateway's errors as every bar source's, with the same message: an unknown contract is
    an ``UnknownSymbolError``, an unavailable gateway a ``SourceUnavailableError``."""
    try:
        yield
    except UnknownContractError as exc:
        raise UnknownSymbolError(str(exc)) from exc
    except GatewayUnavailableError as exc:
        raise SourceUnavailableError(str(exc)) from exc


class IbkrBarSource:
    """A ``BarSource`` backed by IB Gateway / TWS.

    The adapter connects on the first fetch and the connection is reused for every later
    fetch (and re-established by the adapter if it dropped). The adapter's errors become
    ``UnknownSymbolError`` and ``SourceUnavailableError``, like every source's.
    """

    name: str = "ibkr"
    synthetic: bool = False

    def __init__(self, adapter: IbkrAdapter, guard: FetchGuard | None = None) -> None:
        self._adapter = adapter
        self._guard = guard

    @property
    def adapter(self) -> IbkrAdapter:
        return self._adapter

    def fetch_bars(self, symbol: str, end: dt.date, bars: int) -> pd.DataFrame:
        """At most ``bars`` daily bars for ``symbol`` dated on or before ``end``, oldest first."""
        if self._guard:
            self._guard(symbol, end)
        with as_market_data_errors():
            return self._adapter.daily_bars(symbol, end, bars)

    def close(self) -> None:
        """Release the IBKR connection (the next fetch reconnects)."""
        self._adapter.close()
