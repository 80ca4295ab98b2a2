"""Orders: identity, requests, states and the allowed state transitions.

An order's identity is computed in one place (``order_ref``) from (strategy, symbol, session
date). It travels to the broker (IBKR ``orderRef``) so that placing the same decision twice is
impossible, also across retries, re-executions and reconnects: before sending, the store and
the broker are both asked whether an order with that reference exists.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Side = Literal["BUY", "SELL"]
OrderType = Literal["MKT", "LMT", "STP"]
Role = Literal["parent", "take_profit", "stop_loss", "close"]


class OrderStatus(str, Enum):
    PENDING_SUBMIT = "pending_submit"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})

ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_SUBMIT: frozenset(
        {OrderStatus.SUBMITTED, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.FILLED,
         OrderStatus.PARTIALLY_FILLED}
    ),
    OrderStatus.SUBMITTED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}  # fmt: skip


class InvalidTransition(ValueError):
    """An order was asked to move to a state it cannot reach from where it is."""


def check_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Raise ``InvalidTransition`` unless ``current -> new`` is allowed (staying put is)."""
    if new == current and new != OrderStatus.PARTIALLY_FILLED:
        return
    if new not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"order cannot move from {current.value} to {new.value}")


def order_ref(strategy: str, symbol: str, day: dt.date) -> str:
    """The deterministic identity of the decision for (strategy, symbol, session)."""
    return f"ibkr-assets:{strategy}:{symbol}:{day.isoformat()}"


class BracketRequest(BaseModel):
    """A parent limit order with a take-profit limit and a protective stop (one-cancels-other)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_ref: str
    symbol: str
    side: Side
    quantity: int = Field(gt=0)
    entry_price: float = Field(gt=0)
    take_profit: float = Field(gt=0)
    stop_loss: float = Field(gt=0)
    session: dt.date


class CloseRequest(BaseModel):
    """Close the whole position in ``symbol`` at market and cancel its open children."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_ref: str
    symbol: str
    session: dt.date


class BrokerOrder(BaseModel):
    """One order as the broker (or the simulator) knows it."""

    model_config = ConfigDict(extra="forbid")

    order_ref: str  # the decision's identity; children share it with a role suffix
    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    role: Role
    quantity: int
    limit_price: float | None = None
    stop_price: float | None = None
    parent_id: str | None = None
    status: OrderStatus
    filled_quantity: int = 0
    avg_fill_price: float | None = None
    commission: float = 0.0
    reason: str = ""
    updated_at: dt.datetime | None = None


class Fill(BaseModel):
    """One execution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_id: str
    broker_order_id: str
    order_ref: str
    symbol: str
    side: Side
    quantity: int
    price: float
    commission: float
    time: dt.datetime


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    quantity: int
    avg_cost: float


class AccountSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cash: float
    realized_pnl: float
    commissions: float


class OrderOutcome(BaseModel):
    """The value of one ``order`` partition: what was sent to the broker, or why nothing was."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    as_of: dt.date
    order_ref: str
    mode: str  # backtest, paper, ibkr-paper or live
    broker: str
    decision: Literal["bracket", "close", "none"]
    outcome: Literal["placed", "existing", "reconciled", "none"]
    reason: str
    orders: list[BrokerOrder] = []
    sizing: dict | None = None
    last_close: float
    position_before: int
