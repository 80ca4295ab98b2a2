"""Portfolio accounting: cash, average-cost positions, realized and unrealized P&L.

Definitions (what the tests hold the books to):

* A fill moves cash by ``-quantity x price`` for a BUY, ``+quantity x price`` for a SELL, and
  by ``-commission`` either way.
* ``avg_cost`` is the volume-weighted price of the open quantity, commissions excluded. Adding
  to a position re-averages; reducing it leaves ``avg_cost`` unchanged; crossing zero (only
  when shorting is allowed) opens the remainder at the fill price.
* ``realized_pnl`` is NET of every commission paid: the sum over closed quantities of
  ``(exit - avg_cost) x quantity`` (``(avg_cost - exit) x quantity`` for shorts) minus all
  commissions, those of opening fills included. ``commissions`` keeps the total separately.
* ``unrealized_pnl`` is ``quantity x (price - avg_cost)`` summed over open positions.

Hence ``equity = cash + market_value`` and
``equity - starting_cash == realized_pnl + unrealized_pnl``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from ibkr_assets.domain.orders import Position, Side


class PortfolioError(ValueError):
    """A fill the books cannot take (a short sale while shorting is off, a bad number)."""


class PortfolioInvariantError(Exception):
    """The books do not balance; nothing is recorded as a valid snapshot."""


class FillLike(Protocol):
    """What accounting needs from a fill (``orders.Fill`` and ``paper_fills.FillEvent`` fit)."""

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def quantity(self) -> int: ...
    @property
    def price(self) -> float: ...
    @property
    def commission(self) -> float: ...


@dataclass(frozen=True)
class Ledger:
    """The account's books. Positions with quantity 0 are dropped."""

    cash: float
    positions: Mapping[str, Position] = field(default_factory=dict)
    realized_pnl: float = 0.0
    commissions: float = 0.0


def apply_fill(ledger: Ledger, fill: FillLike, *, allow_short: bool = False) -> Ledger:
    """The books after ``fill``. Raises ``PortfolioError`` for a short sale unless allowed."""
    qty, price, fee = fill.quantity, fill.price, fill.commission
    if qty <= 0 or not (math.isfinite(price) and price > 0) or not math.isfinite(fee) or fee < 0:
        raise PortfolioError(
            f"bad fill for {fill.symbol}: quantity {qty}, price {price}, commission {fee}"
        )
    signed = qty if fill.side == "BUY" else -qty
    held = ledger.positions.get(fill.symbol)
    old_qty, avg = (held.quantity, held.avg_cost) if held else (0, 0.0)
    new_qty = old_qty + signed
    if new_qty < 0 and not allow_short:
        raise PortfolioError(
            f"SELL {qty} {fill.symbol} against a position of {old_qty} would leave {new_qty} "
            "shares; shorting is not allowed"
        )

    realized = 0.0
    if old_qty != 0 and (old_qty > 0) != (signed > 0):  # reduces (and maybe flips) the position
        closed = min(abs(signed), abs(old_qty))
        direction = 1 if old_qty > 0 else -1
        realized = (price - avg) * closed * direction
        if new_qty == 0 or (new_qty > 0) == (old_qty > 0):
            new_avg = avg
        else:  # crossed zero: the remainder opens at the fill price
            new_avg = price
    else:  # opens or adds
        new_avg = (abs(old_qty) * avg + qty * price) / abs(new_qty)

    positions = dict(ledger.positions)
    if new_qty == 0:
        positions.pop(fill.symbol, None)
    else:
        positions[fill.symbol] = Position(symbol=fill.symbol, quantity=new_qty, avg_cost=new_avg)
    return replace(
        ledger,
        cash=ledger.cash - signed * price - fee,
        positions=positions,
        realized_pnl=ledger.realized_pnl + realized - fee,
        commissions=ledger.commissions + fee,
    )


def apply_fills(ledger: Ledger, fills: Iterable[FillLike], *, allow_short: bool = False) -> Ledger:
    """``apply_fill`` over ``fills`` in order."""
    for fill in fills:
        ledger = apply_fill(ledger, fill, allow_short=allow_short)
    return ledger


class SnapshotPosition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    quantity: int
    avg_cost: float
    price: float
    market_value: float
    unrealized_pnl: float


class PortfolioSnapshot(BaseModel):
    """The account valued at ``date``'s prices. ``exposure_pct`` is None when equity <= 0."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    cash: float
    positions: list[SnapshotPosition]
    market_value: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    commissions: float
    gross_exposure: float
    net_exposure: float
    exposure_pct: float | None


def snapshot(
    positions: Iterable[Position],
    cash: float,
    prices: Mapping[str, float],
    *,
    date: dt.date,
    realized_pnl: float = 0.0,
    commissions: float = 0.0,
) -> PortfolioSnapshot:
    """Value ``positions`` at ``prices``; every open position needs a price."""
    rows: list[SnapshotPosition] = []
    for pos in sorted(positions, key=lambda p: p.symbol):
        if pos.quantity == 0:
            continue
        price = prices.get(pos.symbol)
        if price is None or not (math.isfinite(price) and price > 0):
            raise PortfolioError(
                f"no usable price for {pos.symbol} on {date} (got {price}); "
                "pass the closing price of every open position"
            )
        rows.append(
            SnapshotPosition(
                symbol=pos.symbol,
                quantity=pos.quantity,
                avg_cost=pos.avg_cost,
                price=price,
                market_value=pos.quantity * price,
                unrealized_pnl=pos.quantity * (price - pos.avg_cost),
            )
        )
    market_value = sum(r.market_value for r in rows)
    gross = sum(abs(r.market_value) for r in rows)
    equity = cash + market_value
    return PortfolioSnapshot(
        date=date,
        cash=cash,
        positions=rows,
        market_value=market_value,
        equity=equity,
        realized_pnl=realized_pnl,
        unrealized_pnl=sum(r.unrealized_pnl for r in rows),
        commissions=commissions,
        gross_exposure=gross,
        net_exposure=market_value,
        exposure_pct=100.0 * gross / equity if equity > 0 else None,
    )


def marked_equity(cash: float, positions: Iterable[Position], closes: Mapping[str, float]) -> float:
    """Cash plus each position at its close (at its average cost where no close is known)."""
    return cash + sum(p.quantity * closes.get(p.symbol, p.avg_cost) for p in positions)


def check_invariants(snap: PortfolioSnapshot, *, allow_short: bool) -> list[str]:
    """Every broken accounting invariant of ``snap`` (empty when the books balance): cash +
    market value = equity, and no negative position unless shorting is allowed."""
    problems = []
    if abs(snap.cash + snap.market_value - snap.equity) > 0.01:
        problems.append(
            f"cash {snap.cash} + market value {snap.market_value} != equity {snap.equity}"
        )
    if not allow_short:
        short = [p.symbol for p in snap.positions if p.quantity < 0]
        if short:
            problems.append(f"negative positions without shorting configured: {short}")
    return problems


def ledger_snapshot(
    ledger: Ledger, prices: Mapping[str, float], *, date: dt.date
) -> PortfolioSnapshot:
    """``snapshot`` of a whole ``Ledger``."""
    return snapshot(
        ledger.positions.values(),
        ledger.cash,
        prices,
        date=date,
        realized_pnl=ledger.realized_pnl,
        commissions=ledger.commissions,
    )


def snapshots_by_date(
    dates: Iterable[dt.date],
    *,
    starting_cash: float,
    fills: Iterable[tuple[dt.date, FillLike]],
    closes: Iterable[tuple[dt.date, str, float]],
    allow_short: bool = False,
) -> dict[dt.date, PortfolioSnapshot]:
    """Each date's snapshot from the fills and closes dated up to it, and nothing later.

    ``fills`` are ``(session date, fill)`` in the order they happened within a date; ``closes``
    are ``(session date, symbol, close)``. A position is valued at its symbol's last close on or
    before the date, so a market-closed day carries the previous session's prices. One pass over
    the sorted inputs: the cost is flat per date however long the history.
    """
    ordered_fills = sorted(fills, key=lambda f: f[0])  # stable: a date keeps its fill order
    ordered_closes = sorted(closes, key=lambda c: c[0])
    ledger = Ledger(cash=starting_cash)
    last_close: dict[str, float] = {}
    out: dict[dt.date, PortfolioSnapshot] = {}
    i = j = 0
    for day in sorted(set(dates)):
        while i < len(ordered_fills) and ordered_fills[i][0] <= day:
            ledger = apply_fill(ledger, ordered_fills[i][1], allow_short=allow_short)
            i += 1
        while j < len(ordered_closes) and ordered_closes[j][0] <= day:
            _, symbol, close = ordered_closes[j]
            last_close[symbol] = close
            j += 1
        out[day] = ledger_snapshot(ledger, last_close, date=day)
    return out
