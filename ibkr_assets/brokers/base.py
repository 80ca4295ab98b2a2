"""What every broker provides. The ``order`` asset and the tracking sensor only use this."""

from __future__ import annotations

from typing import Protocol

from ibkr_assets.domain.orders import (
    AccountSummary,
    BracketRequest,
    BrokerOrder,
    CloseRequest,
    Fill,
    Position,
)


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
