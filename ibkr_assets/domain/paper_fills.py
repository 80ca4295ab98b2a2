"""The paper simulator's fill model: when and at what price a resting order fills on a daily bar.

The rules, deliberately simple and conservative:

* No look-ahead: an order placed for session D (decided on D's bar) fills only from a bar dated
  after D. Bracket children are held until their parent fills and then fill only from the bar
  after the parent's fill bar (a daily bar does not say whether the exit came after the entry).
* Market orders fill at the bar's open.
* Limit orders fill when the bar trades through the limit, at the limit or the better open:
  BUY when ``low <= limit`` at ``min(open, limit)``, SELL when ``high >= limit`` at
  ``max(open, limit)``.
* Stop orders trigger when the bar reaches the stop and fill at the stop or, on a gap through
  it, at the worse open: SELL when ``low <= stop`` at ``min(open, stop)``, BUY when
  ``high >= stop`` at ``max(open, stop)``.
* A bracket's stop and take-profit are one-cancels-other. When both could fill on the same bar
  the stop is assumed to have filled first (the intrabar path is unknown; assume the worst) and
  the take-profit is cancelled.
* Within a bar, market orders fill first (at the open), then bracket exits, then new entries.
* A SELL parent opens a short position and is rejected unless shorting is allowed; short
  brackets mirror the long rules (BUY stop above, BUY take-profit below).
* Orders fill completely or not at all: partial fills, volume limits, slippage beyond the gap
  rule, and time in force (orders are good till cancelled) are not simulated.

Everything here is a pure function of plain data; the paper broker stores the results.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from ibkr_assets.domain.commissions import IBKR_FIXED, CommissionModel
from ibkr_assets.domain.orders import BrokerOrder, OrderStatus, Role, Side

_EXIT_ROLES = ("stop_loss", "take_profit")  # stop first: the conservative same-bar order


@dataclass(frozen=True)
class Bar:
    """One daily bar of one symbol."""

    date: dt.date
    open: float
    high: float
    low: float
    close: float

    def __post_init__(self) -> None:
        prices = (self.open, self.high, self.low, self.close)
        if not all(math.isfinite(p) and p > 0 for p in prices):
            raise ValueError(f"bar {self.date}: prices must be positive numbers, got {prices}")
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ValueError(f"bar {self.date}: open/close outside low..high {prices}")


@dataclass(frozen=True)
class SimOrder:
    """An open order as the fill model sees it.

    ``active_after`` is the last date on which the order may NOT fill: the placement session
    for parents and market orders, the parent's fill date for bracket children, and None for
    children still held because their parent has not filled.
    """

    order: BrokerOrder
    active_after: dt.date | None

    def can_fill_on(self, day: dt.date) -> bool:
        status = self.order.status
        return (
            self.active_after is not None
            and day > self.active_after
            and status in (OrderStatus.SUBMITTED, OrderStatus.PENDING_SUBMIT)
        )


@dataclass(frozen=True)
class FillEvent:
    """One simulated execution (always the order's whole quantity)."""

    broker_order_id: str
    order_ref: str
    role: Role
    symbol: str
    side: Side
    quantity: int
    price: float
    commission: float
    date: dt.date


@dataclass(frozen=True)
class StatusUpdate:
    """An order's move to ``status`` on the bar dated ``date``; ``fill`` is set for FILLED."""

    broker_order_id: str
    status: OrderStatus
    date: dt.date
    reason: str
    fill: FillEvent | None = None


@dataclass(frozen=True)
class BarResult:
    """Status updates in the order they happened, and the orders still open afterwards."""

    updates: list[StatusUpdate]
    orders: list[SimOrder]

    @property
    def fills(self) -> list[FillEvent]:
        return [u.fill for u in self.updates if u.fill is not None]


_Book = dict[str, SimOrder]
_Move = Callable[..., None]


def fill_price(order: BrokerOrder, bar: Bar) -> float | None:
    """The price at which ``order`` fills on ``bar`` by the rules above, or None."""
    if order.order_type == "MKT":
        return bar.open
    if order.order_type == "LMT":
        limit = _required(order.limit_price, order, "limit_price")
        if order.side == "BUY":
            return min(bar.open, limit) if bar.low <= limit else None
        return max(bar.open, limit) if bar.high >= limit else None
    stop = _required(order.stop_price, order, "stop_price")
    if order.side == "SELL":
        return min(bar.open, stop) if bar.low <= stop else None
    return max(bar.open, stop) if bar.high >= stop else None


def simulate_bar(
    orders: Sequence[SimOrder],
    bar: Bar,
    commission_model: CommissionModel = IBKR_FIXED,
    *,
    allow_short: bool = False,
) -> BarResult:
    """Run one bar over the open orders of one symbol."""
    book = {o.order.broker_order_id: o for o in orders if not o.order.status.is_final}
    symbols = {o.order.symbol for o in book.values()}
    if len(symbols) > 1:
        raise ValueError(f"simulate_bar runs one symbol at a time, got {sorted(symbols)}")
    updates: list[StatusUpdate] = []

    def move(oid: str, status: OrderStatus, reason: str, price: float | None = None) -> None:
        sim = book[oid]
        order = sim.order
        fill = None
        changes: dict = {"status": status, "reason": reason}
        if price is not None:
            fee = commission_model.commission(order.quantity, price)
            fill = FillEvent(
                broker_order_id=oid,
                order_ref=order.order_ref,
                role=order.role,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price=price,
                commission=fee,
                date=bar.date,
            )
            changes.update(filled_quantity=order.quantity, avg_fill_price=price, commission=fee)
        book[oid] = replace(sim, order=order.model_copy(update=changes))
        updates.append(StatusUpdate(oid, status, bar.date, reason, fill))

    ready = [o.order for o in book.values() if o.can_fill_on(bar.date)]
    for order in (o for o in ready if o.order_type == "MKT"):
        move(order.broker_order_id, OrderStatus.FILLED, "market order filled at the open", bar.open)
    _run_exits([o for o in ready if o.role in _EXIT_ROLES], bar, book, move)
    for order in (o for o in ready if o.role == "parent"):
        _run_entry(order, bar, book, move, allow_short)

    still_open = [o for o in book.values() if not o.order.status.is_final]
    return BarResult(updates=updates, orders=still_open)


def simulate_bars(
    orders: Sequence[SimOrder],
    bars: Iterable[Bar],
    commission_model: CommissionModel = IBKR_FIXED,
    *,
    allow_short: bool = False,
) -> BarResult:
    """Run ``bars`` (oldest first) one after the other over the open orders of one symbol."""
    updates: list[StatusUpdate] = []
    book = list(orders)
    last: dt.date | None = None
    for bar in bars:
        if last is not None and bar.date <= last:
            raise ValueError(f"bars must be in increasing date order: {bar.date} after {last}")
        last = bar.date
        result = simulate_bar(book, bar, commission_model, allow_short=allow_short)
        updates.extend(result.updates)
        book = result.orders
    return BarResult(updates=updates, orders=book)


def _run_exits(exits: list[BrokerOrder], bar: Bar, book: _Book, move: _Move) -> None:
    """Fill triggered bracket exits; the first (stop before take-profit) cancels its sibling."""
    exits = sorted(exits, key=lambda o: _EXIT_ROLES.index(o.role))
    for order in exits:
        oid = order.broker_order_id
        if book[oid].order.status.is_final:  # cancelled by its sibling on this bar
            continue
        price = fill_price(order, bar)
        if price is None:
            continue
        label = "stop" if order.role == "stop_loss" else "take-profit"
        move(oid, OrderStatus.FILLED, f"{label} filled at {price:g}", price)
        for sibling in _children(book, order.parent_id):
            if sibling.order.broker_order_id != oid:
                move(sibling.order.broker_order_id, OrderStatus.CANCELLED, f"OCO: {label} filled")


def _run_entry(order: BrokerOrder, bar: Bar, book: _Book, move: _Move, allow_short: bool) -> None:
    """Fill a triggered bracket parent and release its children from the next bar on."""
    oid = order.broker_order_id
    if order.side == "SELL" and not allow_short:
        move(oid, OrderStatus.REJECTED, "short sale not allowed")
        for child in _children(book, oid):
            move(child.order.broker_order_id, OrderStatus.CANCELLED, "parent rejected")
        return
    price = fill_price(order, bar)
    if price is None:
        return
    move(oid, OrderStatus.FILLED, f"entry limit filled at {price:g}", price)
    for child in _children(book, oid):
        child_id = child.order.broker_order_id
        book[child_id] = replace(child, active_after=bar.date)
        move(child_id, OrderStatus.SUBMITTED, "parent filled; active from the next bar")


def _children(book: _Book, parent_id: str | None) -> list[SimOrder]:
    if parent_id is None:
        return []
    return [
        o for o in book.values() if o.order.parent_id == parent_id and not o.order.status.is_final
    ]


def _required(value: float | None, order: BrokerOrder, name: str) -> float:
    if value is None:
        raise ValueError(f"{order.order_type} order {order.broker_order_id} has no {name}")
    return value
