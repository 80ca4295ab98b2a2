"""What every broker provides, and what the paper simulator and a gateway connection add. The
``order`` and ``portfolio_snapshot`` assets and the tracking sensor only use these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ibkr_assets.domain.orders import (
    AccountSummary,
    BracketRequest,
    BrokerOrder,
    CloseRequest,
    Fill,
    Position,
)
from ibkr_assets.domain.portfolio import PortfolioSnapshot

if TYPE_CHECKING:
    import pandas as pd


class BrokerError(Exception):
    """The broker refused or could not be reached; the message says which and what to do."""


class Broker(Protocol):
    name: str  # "paper" or "ibkr"
    mode: str  # "paper", "live" or "backtest"

    def orders_by_ref(self, order_ref: str) -> list[BrokerOrder]:
        """Every order (parent and children) carrying ``order_ref``, open or not."""
        ...

    def place_bracket(self, request: BracketRequest) -> list[BrokerOrder]:
        """Place parent + take-profit + stop. Idempotent: an existing ``order_ref`` is returned."""
        ...

    def close_position(self, request: CloseRequest) -> list[BrokerOrder]:
        """Cancel the symbol's open child orders and sell the position at market. Idempotent."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def executions(self) -> list[Fill]: ...

    def positions(self) -> list[Position]: ...

    def account(self) -> AccountSummary: ...


@runtime_checkable
class Simulator(Protocol):
    """A broker that fills orders from bars (the paper simulator): it is told each session's
    bars, and keeps its books as of any session, so a rerun sees the same account."""

    account_name: str

    def sync(self, symbol: str, bars: pd.DataFrame) -> list[Fill]:
        """Fill open orders of ``symbol`` on ``bars`` newer than the last synced one."""
        ...

    def last_synced(self, symbol: str) -> dt.date | None:
        """The session of the last bar of ``symbol`` the simulator has run through."""
        ...

    def snapshots_as_of(self, dates: Iterable[dt.date]) -> dict[dt.date, PortfolioSnapshot]:
        """Each date's books from the fills and closes up to it, never later ones."""
        ...

    def record_snapshot(self, snapshot: PortfolioSnapshot) -> int: ...


@runtime_checkable
class Connected(Protocol):
    """A broker holding a connection (IB Gateway/TWS) to close at the end of the run."""

    def disconnect(self) -> None: ...
