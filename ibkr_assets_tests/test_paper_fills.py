"""The paper fill model, rule by rule, on hand-built daily bars (pure, no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from ibkr_assets.domain.commissions import CommissionModel
from ibkr_assets.domain.orders import BrokerOrder, OrderStatus
from ibkr_assets.domain.paper_fills import Bar, SimOrder, fill_price, simulate_bar, simulate_bars

D0 = dt.date(2025, 1, 2)  # the placement session
D1, D2, D3 = dt.date(2025, 1, 3), dt.date(2025, 1, 6), dt.date(2025, 1, 7)


def _order(role: str, side: str, order_type: str, **fields) -> BrokerOrder:
    values = {
        "order_ref": "ref-1",
        "broker_order_id": fields.pop("oid", role),
        "symbol": "AAPL",
        "side": side,
        "order_type": order_type,
        "role": role,
        "quantity": 100,
        "status": OrderStatus.SUBMITTED,
        **fields,
    }
    return BrokerOrder(**values)


def _bracket(side: str = "BUY", entry: float = 100.0, tp: float = 110.0, stop: float = 95.0):
    """A freshly placed bracket: parent active after D0, children held."""
    exit_side = "SELL" if side == "BUY" else "BUY"
    parent = _order("parent", side, "LMT", limit_price=entry)
    held = {"status": OrderStatus.PENDING_SUBMIT, "parent_id": "parent"}
    tp_order = _order("take_profit", exit_side, "LMT", limit_price=tp, **held)
    stop_order = _order("stop_loss", exit_side, "STP", stop_price=stop, **held)
    return [SimOrder(parent, D0), SimOrder(tp_order, None), SimOrder(stop_order, None)]


def _filled_bracket(side: str = "BUY", **prices):
    """The same bracket after its parent filled on D1: children active from D2."""
    parent, tp, stop = _bracket(side, **prices)
    active = {"status": OrderStatus.SUBMITTED}
    return [
        SimOrder(tp.order.model_copy(update=active), D1),
        SimOrder(stop.order.model_copy(update=active), D1),
    ]


def _statuses(result) -> dict[str, OrderStatus]:
    return {u.broker_order_id: u.status for u in result.updates}


# --- single-order prices -----------------------------------------------------------------


def test_buy_limit_fills_at_the_limit_or_a_lower_open() -> None:
    order = _order("parent", "BUY", "LMT", limit_price=100.0)
    assert fill_price(order, Bar(D1, 102, 103, 99, 101)) == 100.0
    assert fill_price(order, Bar(D1, 98, 99, 97, 98.5)) == 98.0  # gapped below: the open
    assert fill_price(order, Bar(D1, 101, 102, 100.01, 101)) is None


def test_sell_take_profit_fills_at_the_limit_or_a_higher_open() -> None:
    order = _order("take_profit", "SELL", "LMT", limit_price=110.0)
    assert fill_price(order, Bar(D1, 105, 111, 104, 109)) == 110.0
    assert fill_price(order, Bar(D1, 112, 113, 111, 112)) == 112.0
    assert fill_price(order, Bar(D1, 105, 109.99, 104, 109)) is None


def test_sell_stop_gapped_through_fills_at_the_open() -> None:
    order = _order("stop_loss", "SELL", "STP", stop_price=95.0)
    assert fill_price(order, Bar(D1, 97, 98, 94, 96)) == 95.0
    assert fill_price(order, Bar(D1, 93, 94, 90, 91)) == 93.0  # gap through: worse than the stop
    assert fill_price(order, Bar(D1, 97, 98, 95.01, 96)) is None


def test_short_side_mirrors_the_long_rules() -> None:
    entry = _order("parent", "SELL", "LMT", limit_price=100.0)
    stop = _order("stop_loss", "BUY", "STP", stop_price=105.0)
    target = _order("take_profit", "BUY", "LMT", limit_price=90.0)
    assert fill_price(entry, Bar(D1, 99, 101, 98, 100)) == 100.0
    assert fill_price(entry, Bar(D1, 102, 103, 101, 102)) == 102.0
    assert fill_price(stop, Bar(D1, 107, 108, 106, 107)) == 107.0
    assert fill_price(stop, Bar(D1, 101, 104.99, 100, 104)) is None
    assert fill_price(target, Bar(D1, 92, 93, 89, 90)) == 90.0


# --- timing --------------------------------------------------------------------------------


def test_nothing_fills_on_the_placement_session() -> None:
    touching = Bar(D0, 100, 101, 90, 95)  # would fill the entry and the stop
    result = simulate_bar(_bracket(), touching)
    assert result.updates == []
    assert [o.order.status for o in result.orders] == [
        OrderStatus.SUBMITTED,
        OrderStatus.PENDING_SUBMIT,
        OrderStatus.PENDING_SUBMIT,
    ]


def test_children_are_held_until_the_parent_fills_and_act_from_the_next_bar() -> None:
    crash = Bar(D1, 99, 100, 90, 91)  # fills the entry at 99 and is far below the stop
    result = simulate_bar(_bracket(), crash)
    assert _statuses(result) == {
        "parent": OrderStatus.FILLED,
        "take_profit": OrderStatus.SUBMITTED,
        "stop_loss": OrderStatus.SUBMITTED,
    }
    [entry] = result.fills
    assert (entry.side, entry.quantity, entry.price, entry.date) == ("BUY", 100, 99.0, D1)

    later = simulate_bar(result.orders, Bar(D2, 92, 93, 91, 92))
    assert _statuses(later) == {
        "stop_loss": OrderStatus.FILLED,
        "take_profit": OrderStatus.CANCELLED,
    }
    assert later.fills[0].price == 92.0  # gapped below the 95 stop: filled at the open
    assert later.orders == []


def test_market_close_fills_at_the_next_open() -> None:
    close = SimOrder(_order("close", "SELL", "MKT", oid="close"), D0)
    result = simulate_bars([close], [Bar(D0, 50, 51, 49, 50), Bar(D1, 52.5, 55, 52, 54)])
    [fill] = result.fills
    assert (fill.price, fill.date, fill.role) == (52.5, D1, "close")
    assert _statuses(result) == {"close": OrderStatus.FILLED}


# --- one-cancels-other ---------------------------------------------------------------------


def test_both_children_triggered_on_one_bar_assumes_the_stop_filled_first() -> None:
    wide = Bar(D2, 100, 112, 94, 105)  # reaches the 110 target and the 95 stop
    result = simulate_bar(_filled_bracket(), wide)
    assert [(u.broker_order_id, u.status) for u in result.updates] == [
        ("stop_loss", OrderStatus.FILLED),
        ("take_profit", OrderStatus.CANCELLED),
    ]
    assert result.fills[0].price == 95.0
    assert "OCO" in result.updates[1].reason


def test_take_profit_fill_cancels_the_stop() -> None:
    result = simulate_bar(_filled_bracket(), Bar(D2, 108, 111, 107, 110))
    assert _statuses(result) == {
        "take_profit": OrderStatus.FILLED,
        "stop_loss": OrderStatus.CANCELLED,
    }
    assert result.fills[0].price == 110.0 and result.fills[0].side == "SELL"


def test_short_bracket_same_bar_also_takes_the_stop() -> None:
    children = _filled_bracket("SELL", entry=100.0, tp=90.0, stop=105.0)
    result = simulate_bar(children, Bar(D2, 100, 106, 89, 95))
    assert _statuses(result) == {
        "stop_loss": OrderStatus.FILLED,
        "take_profit": OrderStatus.CANCELLED,
    }
    assert (result.fills[0].side, result.fills[0].price) == ("BUY", 105.0)


def test_short_entry_is_rejected_unless_allowed() -> None:
    bar = Bar(D1, 101, 102, 99, 100)
    refused = simulate_bar(_bracket("SELL", tp=90.0, stop=105.0), bar)
    assert _statuses(refused) == {
        "parent": OrderStatus.REJECTED,
        "take_profit": OrderStatus.CANCELLED,
        "stop_loss": OrderStatus.CANCELLED,
    }
    assert refused.fills == [] and refused.orders == []

    allowed = simulate_bar(_bracket("SELL", tp=90.0, stop=105.0), bar, allow_short=True)
    assert allowed.fills[0].side == "SELL" and allowed.fills[0].price == 101.0


# --- commissions -----------------------------------------------------------------------------


def test_commission_minimum_maximum_and_rounding() -> None:
    ibkr = CommissionModel()
    assert ibkr.commission(100, 50.0) == 1.0  # 0.50 per-share raised to the $1 minimum
    assert ibkr.commission(1000, 50.0) == 5.0  # per share
    assert ibkr.commission(10, 5.0) == 0.5  # 1% of a $50 trade caps below the minimum
    assert ibkr.commission(333, 100.0) == 1.67  # 1.665 rounds half up to cents
    assert ibkr.commission(-1000, 50.0) == 5.0  # a sell pays the same
    assert ibkr.commission(0, 50.0) == 0.0
    with pytest.raises(ValueError, match="per_share"):
        CommissionModel(per_share=-0.01)


def test_fills_carry_the_commission_of_the_model() -> None:
    cheap = CommissionModel(per_share=0.0, minimum=0.0)
    order = SimOrder(_order("parent", "BUY", "LMT", limit_price=1.0, quantity=10, oid="p"), D0)
    bar = Bar(D1, 1.0, 1.0, 1.0, 1.0)
    assert simulate_bar([order], bar).fills[0].commission == 0.1  # $10 trade: 1% cap
    assert simulate_bar([order], bar, cheap).fills[0].commission == 0.0


# --- input checks ----------------------------------------------------------------------------


def test_bad_bars_and_mixed_input_are_refused() -> None:
    with pytest.raises(ValueError, match="outside low..high"):
        Bar(D1, 100, 99, 98, 99.5)
    with pytest.raises(ValueError, match="positive numbers"):
        Bar(D1, float("nan"), 101, 99, 100)
    bars = [Bar(D2, 100, 101, 99, 100), Bar(D1, 100, 101, 99, 100)]
    with pytest.raises(ValueError, match="increasing date order"):
        simulate_bars(_bracket(), bars)
    other = SimOrder(_order("parent", "BUY", "LMT", limit_price=1.0, symbol="MSFT", oid="m"), D0)
    with pytest.raises(ValueError, match="one symbol at a time"):
        simulate_bar([*_bracket(), other], Bar(D1, 100, 101, 99, 100))


def test_final_orders_are_ignored() -> None:
    done = _order("parent", "BUY", "LMT", limit_price=100.0, status=OrderStatus.CANCELLED)
    result = simulate_bar([SimOrder(done, D0)], Bar(D3, 90, 91, 89, 90))
    assert result.updates == [] and result.orders == []
