"""Portfolio accounting: a worked example, invariants over random fills, and what is refused."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

import pytest

from ibkr_assets.domain.commissions import CommissionModel
from ibkr_assets.domain.orders import Position
from ibkr_assets.domain.portfolio import (
    Ledger,
    PortfolioError,
    apply_fill,
    apply_fills,
    ledger_snapshot,
    snapshot,
)

DAY = dt.date(2025, 1, 2)


@dataclass(frozen=True)
class F:
    symbol: str
    side: str
    quantity: int
    price: float
    commission: float = 1.0


def test_worked_example_average_cost_and_net_realized_pnl() -> None:
    ledger = apply_fills(
        Ledger(cash=100_000.0),
        [F("AAPL", "BUY", 100, 10.0), F("AAPL", "BUY", 100, 12.0), F("AAPL", "SELL", 150, 13.0)],
    )
    [pos] = ledger.positions.values()
    assert (pos.quantity, pos.avg_cost) == (50, pytest.approx(11.0))
    assert ledger.realized_pnl == pytest.approx(150 * 2.0 - 3.0)  # net of all 3 commissions
    assert ledger.commissions == 3.0
    assert ledger.cash == pytest.approx(100_000 - 1_000 - 1_200 + 1_950 - 3)

    snap = ledger_snapshot(ledger, {"AAPL": 14.0}, date=DAY)
    assert snap.market_value == 700.0 and snap.unrealized_pnl == pytest.approx(150.0)
    assert snap.equity == pytest.approx(snap.cash + snap.market_value)
    assert snap.equity - 100_000 == pytest.approx(snap.realized_pnl + snap.unrealized_pnl)
    assert snap.exposure_pct == pytest.approx(100 * 700 / snap.equity)
    assert snap.positions[0].model_dump() == {
        "symbol": "AAPL",
        "quantity": 50,
        "avg_cost": pytest.approx(11.0),
        "price": 14.0,
        "market_value": 700.0,
        "unrealized_pnl": pytest.approx(150.0),
    }


def test_random_fills_keep_the_books_consistent() -> None:
    rng = random.Random(20250102)
    fees = CommissionModel()
    symbols = ["AAPL", "MSFT", "NVDA"]
    prices = {s: rng.uniform(20, 400) for s in symbols}
    ledger = Ledger(cash=250_000.0)
    held = {s: 0 for s in symbols}  # independent books: quantity and total cost basis
    basis = {s: 0.0 for s in symbols}
    gross_realized = 0.0
    paid = 0.0

    for _ in range(400):
        symbol = rng.choice(symbols)
        prices[symbol] = round(prices[symbol] * rng.uniform(0.95, 1.05), 2)
        price = prices[symbol]
        if held[symbol] and rng.random() < 0.45:
            side, qty = "SELL", rng.randint(1, held[symbol])
        else:
            side, qty = "BUY", rng.randint(1, 300)
        fee = fees.commission(qty, price)
        ledger = apply_fill(ledger, F(symbol, side, qty, price, fee))

        paid += fee
        if side == "BUY":
            held[symbol] += qty
            basis[symbol] += qty * price
        else:
            removed = basis[symbol] * qty / held[symbol]
            gross_realized += qty * price - removed
            held[symbol] -= qty
            basis[symbol] -= removed

        snap = ledger_snapshot(ledger, prices, date=DAY)
        assert snap.cash + snap.market_value == pytest.approx(snap.equity, abs=1e-6)
        assert ledger.realized_pnl == pytest.approx(gross_realized - paid, abs=1e-6)
        assert ledger.commissions == pytest.approx(paid, abs=1e-9)
        assert snap.equity - 250_000 == pytest.approx(
            snap.realized_pnl + snap.unrealized_pnl, abs=1e-6
        )
        assert {s: p.quantity for s, p in ledger.positions.items()} == {
            s: q for s, q in held.items() if q
        }
        assert all(p.quantity > 0 for p in ledger.positions.values())
    assert gross_realized != 0 and len(ledger.positions) >= 1


def test_selling_more_than_held_is_refused_without_shorting() -> None:
    ledger = apply_fill(Ledger(cash=10_000.0), F("AAPL", "BUY", 10, 100.0))
    with pytest.raises(PortfolioError, match="would leave -5 shares; shorting is not allowed"):
        apply_fill(ledger, F("AAPL", "SELL", 15, 100.0))
    with pytest.raises(PortfolioError, match="shorting is not allowed"):
        apply_fill(ledger, F("MSFT", "SELL", 1, 100.0))
    assert ledger.positions["AAPL"].quantity == 10  # the books are values: nothing changed


def test_shorting_when_allowed_flips_and_covers_at_average_cost() -> None:
    ledger = apply_fills(
        Ledger(cash=10_000.0),
        [F("AAPL", "BUY", 10, 100.0, 0.0), F("AAPL", "SELL", 15, 110.0, 0.0)],
        allow_short=True,
    )
    pos = ledger.positions["AAPL"]
    assert (pos.quantity, pos.avg_cost) == (-5, 110.0)  # the remainder opens at the fill
    assert ledger.realized_pnl == pytest.approx(100.0)
    covered = apply_fill(ledger, F("AAPL", "BUY", 5, 104.0, 0.0), allow_short=True)
    assert covered.positions == {}
    assert covered.realized_pnl == pytest.approx(100.0 + 5 * 6.0)
    short = snapshot([pos], ledger.cash, {"AAPL": 100.0}, date=DAY)
    assert short.net_exposure == -500.0 and short.gross_exposure == 500.0
    assert short.unrealized_pnl == pytest.approx(50.0)


def test_snapshot_needs_a_price_for_every_open_position() -> None:
    held = [Position(symbol="AAPL", quantity=10, avg_cost=100.0)]
    with pytest.raises(PortfolioError, match="no usable price for AAPL"):
        snapshot(held, 1_000.0, {"MSFT": 10.0}, date=DAY)
    empty = snapshot([], 1_000.0, {}, date=DAY)
    assert (empty.equity, empty.exposure_pct, empty.positions) == (1_000.0, 0.0, [])


def test_bad_fills_are_refused() -> None:
    with pytest.raises(PortfolioError, match="bad fill"):
        apply_fill(Ledger(cash=1.0), F("AAPL", "BUY", 0, 10.0))
    with pytest.raises(PortfolioError, match="bad fill"):
        apply_fill(Ledger(cash=1.0), F("AAPL", "BUY", 1, -10.0))
