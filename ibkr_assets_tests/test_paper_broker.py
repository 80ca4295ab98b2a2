"""The paper broker on SQLite and PostgreSQL: a user's trades from placement to snapshot.

The PostgreSQL database is shared by the test session, so every test trades in its own account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from ibkr_assets.brokers.base import Broker
from ibkr_assets.brokers.paper import PaperBroker
from ibkr_assets.domain.orders import BracketRequest, CloseRequest, OrderStatus, order_ref
from ibkr_assets.domain.portfolio import PortfolioSnapshot
from ibkr_assets.storage.performance_inputs import load_performance_inputs

D0 = dt.date(2025, 1, 2)  # the signal's session: the bracket is placed after this bar
D1, D2, D3, D4 = (dt.date(2025, 1, d) for d in (3, 6, 7, 8))
START = 100_000.0


def _bars(*rows: tuple[dt.date, float, float, float, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["volume"] = 1_000_000.0
    return frame


HISTORY = _bars((D0, 101, 102, 99, 101))
ENTRY = (D1, 101, 102, 99.5, 100.5)  # trades through the 100 limit: entry at 100
QUIET = (D2, 100.5, 104, 99, 103)  # between the 95 stop and the 110 target
STOPPED = (D3, 96, 97, 94, 94.5)  # through the 95 stop


@pytest.fixture
def account() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker(database_url: str, account: str) -> PaperBroker:
    broker = PaperBroker(database_url, account=account, starting_cash=START)
    broker.sync("AAPL", HISTORY)  # the simulator has seen the signal's bar
    return broker


def _bracket(**overrides) -> BracketRequest:
    fields = {
        "order_ref": order_ref("sma-cross", "AAPL", D0),
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 100,
        "entry_price": 100.0,
        "take_profit": 110.0,
        "stop_loss": 95.0,
        "session": D0,
    }
    fields.update(overrides)
    return BracketRequest(**fields)


def _by_role(orders) -> dict:
    return {o.role: o for o in orders}


def test_bracket_is_placed_once_even_when_called_twice(broker: PaperBroker) -> None:
    protocol = {n for n in vars(Broker) if not n.startswith("_")} | set(Broker.__annotations__)
    assert protocol <= set(dir(broker)) and (broker.name, broker.mode) == ("paper", "paper")
    first = broker.place_bracket(_bracket())
    again = broker.place_bracket(_bracket(quantity=999))  # a retry: same ref, places nothing

    assert [o.broker_order_id for o in again] == [o.broker_order_id for o in first]
    assert len(broker.orders_by_ref(_bracket().order_ref)) == 3
    roles = _by_role(first)
    assert roles["parent"].status == OrderStatus.SUBMITTED
    assert roles["parent"].quantity == again[0].quantity == 100
    for child in ("take_profit", "stop_loss"):
        assert roles[child].status == OrderStatus.PENDING_SUBMIT
        assert roles[child].parent_id == roles["parent"].broker_order_id
    assert (roles["take_profit"].side, roles["take_profit"].limit_price) == ("SELL", 110.0)
    assert (roles["stop_loss"].order_type, roles["stop_loss"].stop_price) == ("STP", 95.0)


def test_concurrent_placements_of_one_decision_place_one_bracket(broker: PaperBroker) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: broker.place_bracket(_bracket()), range(4)))
    assert len({tuple(o.broker_order_id for o in r) for r in results}) == 1
    assert len(broker.orders_by_ref(_bracket().order_ref)) == 3


def test_entry_fills_after_the_session_and_the_stop_closes_the_trade(broker: PaperBroker) -> None:
    broker.place_bracket(_bracket())

    [entry] = broker.sync("AAPL", _bars(ENTRY))
    assert (entry.side, entry.quantity, entry.price, entry.commission) == ("BUY", 100, 100.0, 1.0)
    assert entry.time.date() == D1
    [pos] = broker.positions()
    assert (pos.symbol, pos.quantity, pos.avg_cost) == ("AAPL", 100, 100.0)
    assert broker.account().cash == pytest.approx(START - 10_000 - 1.0)
    assert {o.role: o.status for o in broker.open_orders()} == {
        "take_profit": OrderStatus.SUBMITTED,
        "stop_loss": OrderStatus.SUBMITTED,
    }

    assert broker.sync("AAPL", _bars(QUIET)) == []
    [stop] = broker.sync("AAPL", _bars(STOPPED))
    assert (stop.side, stop.price) == ("SELL", 95.0)

    roles = _by_role(broker.orders_by_ref(_bracket().order_ref))
    assert roles["stop_loss"].status == OrderStatus.FILLED
    assert roles["stop_loss"].avg_fill_price == 95.0
    assert roles["take_profit"].status == OrderStatus.CANCELLED  # one-cancels-other
    assert broker.positions() == [] and broker.open_orders() == []
    summary = broker.account()
    assert summary.realized_pnl == pytest.approx(-500.0 - 2.0)
    assert summary.commissions == pytest.approx(2.0)
    assert summary.cash == pytest.approx(START - 502.0)


def test_take_profit_fills_and_cancels_the_stop(broker: PaperBroker) -> None:
    broker.place_bracket(_bracket())
    fills = broker.sync("AAPL", _bars(ENTRY, QUIET, (D3, 108, 112, 107, 111)))
    assert [(f.side, f.price) for f in fills] == [("BUY", 100.0), ("SELL", 110.0)]
    roles = _by_role(broker.orders_by_ref(_bracket().order_ref))
    assert roles["stop_loss"].status == OrderStatus.CANCELLED
    assert broker.account().realized_pnl == pytest.approx(1_000.0 - 2.0)


def test_close_position_cancels_children_and_sells_at_the_next_open(broker: PaperBroker) -> None:
    broker.place_bracket(_bracket())
    broker.sync("AAPL", _bars(ENTRY))
    close = CloseRequest(order_ref=order_ref("sma-cross", "AAPL", D2), symbol="AAPL", session=D2)

    [order] = broker.close_position(close)
    assert (order.role, order.side, order.order_type, order.quantity) == (
        "close",
        "SELL",
        "MKT",
        100,
    )
    assert [o.broker_order_id for o in broker.close_position(close)] == [order.broker_order_id]
    roles = _by_role(broker.orders_by_ref(_bracket().order_ref))
    assert roles["take_profit"].status == roles["stop_loss"].status == OrderStatus.CANCELLED

    assert broker.sync("AAPL", _bars(QUIET)) == []  # the close session's own bar
    [sold] = broker.sync("AAPL", _bars((D3, 104.25, 105, 90, 91)))  # would hit the stop too
    assert (sold.side, sold.quantity, sold.price) == ("SELL", 100, 104.25)
    assert broker.positions() == [] and broker.open_orders() == []
    assert broker.account().realized_pnl == pytest.approx(425.0 - 2.0)


def test_close_without_a_position_places_nothing_and_withdraws_the_entry(
    broker: PaperBroker,
) -> None:
    broker.place_bracket(_bracket(entry_price=90.0, stop_loss=85.0))  # not reached by ENTRY
    broker.sync("AAPL", _bars(ENTRY))
    close = CloseRequest(order_ref=order_ref("sma-cross", "AAPL", D1), symbol="AAPL", session=D1)

    assert broker.close_position(close) == []
    assert broker.orders_by_ref(close.order_ref) == []
    assert broker.open_orders() == []
    parent = _by_role(broker.orders_by_ref(_bracket().order_ref))["parent"]
    assert parent.status == OrderStatus.CANCELLED and close.order_ref in parent.reason
    assert broker.sync("AAPL", _bars(QUIET, (D3, 89, 90, 80, 85))) == []


def test_sync_is_idempotent(broker: PaperBroker) -> None:
    broker.place_bracket(_bracket())
    window = _bars(ENTRY, QUIET, STOPPED)
    assert len(broker.sync("AAPL", window)) == 2
    before = (broker.account(), broker.executions(), broker.order_events())

    assert broker.sync("AAPL", window) == []
    assert broker.sync("AAPL", window.iloc[:1]) == []  # an older window: nothing new either
    assert (broker.account(), broker.executions(), broker.order_events()) == before
    assert broker.last_synced("AAPL") == D3
    assert broker.last_synced("MSFT") is None


def test_order_events_record_every_state_change(broker: PaperBroker) -> None:
    request = _bracket()
    placed = _by_role(broker.place_bracket(request))
    broker.sync("AAPL", _bars(ENTRY, QUIET, STOPPED))

    events = broker.order_events(request.order_ref)
    trail = {
        role: [e["status"] for e in events if e["broker_order_id"] == order.broker_order_id]
        for role, order in placed.items()
    }
    assert trail == {
        "parent": ["pending_submit", "submitted", "filled"],
        "take_profit": ["pending_submit", "submitted", "cancelled"],
        "stop_loss": ["pending_submit", "submitted", "filled"],
    }
    times = [e["at"] for e in events]
    assert all(t.tzinfo is not None for t in times) and times == sorted(times)
    filled = [e for e in events if e["status"] == "filled"]
    assert [e["detail"]["session_date"] for e in filled] == [D1.isoformat(), D3.isoformat()]
    assert [e["filled_quantity"] for e in filled] == [100, 100]


def test_state_survives_a_new_broker_on_the_same_database(
    database_url: str, account: str, broker: PaperBroker
) -> None:
    broker.place_bracket(_bracket())
    broker.sync("AAPL", _bars(ENTRY))

    reopened = PaperBroker(database_url, account=account, starting_cash=1.0)  # existing wins
    assert reopened.account() == broker.account()
    assert reopened.positions() == broker.positions() != []
    assert reopened.executions() == broker.executions()
    assert reopened.place_bracket(_bracket()) == broker.orders_by_ref(_bracket().order_ref)
    assert reopened.sync("AAPL", _bars(ENTRY)) == []
    [stop] = reopened.sync("AAPL", _bars(QUIET, STOPPED))
    assert stop.price == 95.0
    assert PaperBroker(database_url, account=f"{account}-other").positions() == []


def test_short_bracket_is_rejected_with_the_reason(broker: PaperBroker) -> None:
    short = _bracket(side="SELL", take_profit=90.0, stop_loss=105.0)
    roles = _by_role(broker.place_bracket(short))
    assert roles["parent"].status == OrderStatus.REJECTED
    assert "short sale not allowed" in roles["parent"].reason
    assert {roles["take_profit"].status, roles["stop_loss"].status} == {OrderStatus.CANCELLED}
    assert broker.open_orders() == []
    crossed = _bracket(order_ref="other-ref", take_profit=99.0)
    assert "stop < entry < take-profit" in _by_role(broker.place_bracket(crossed))["parent"].reason


def test_snapshot_of_a_date_depends_on_fills_and_closes_up_to_it_only(
    broker: PaperBroker,
) -> None:
    broker.place_bracket(_bracket())
    broker.sync("AAPL", _bars(ENTRY))  # entry at 100, close 100.5
    first = broker.snapshots_as_of([D1])[D1]
    assert first.equity == pytest.approx(START - 1.0 + 50.0)
    assert first.cash + first.market_value == pytest.approx(first.equity)

    broker.sync("AAPL", _bars(ENTRY, QUIET, STOPPED))  # later sessions: stopped out on D3
    later = broker.snapshots_as_of([D1, D2, D3])
    assert later[D1] == first  # a later session does not change D1
    assert later[D2].positions[0].price == 103.0
    assert later[D3].positions == [] and later[D3].realized_pnl < 0
    holiday = dt.date(2025, 1, 9)  # no bar: the market was closed
    assert broker.snapshots_as_of([holiday])[holiday] == later[D3].model_copy(
        update={"date": holiday}
    )


def test_closes_of_earlier_sessions_synced_later_are_kept_without_changing_a_snapshot(
    database_url: str, account: str, broker: PaperBroker
) -> None:
    """A range backfilled after later sessions were synced (the demo, then last year) still
    has its closes; the snapshots already taken stay as they were."""
    broker.place_bracket(_bracket())
    broker.sync("AAPL", _bars(ENTRY, QUIET))
    before = broker.snapshots_as_of([D1, D2])
    earlier = dt.date(2024, 12, 31)
    broker.sync("AAPL", _bars((earlier, 98, 99, 97, 98.5), ENTRY, QUIET))
    assert broker.snapshots_as_of([D1, D2]) == before
    assert broker.snapshots_as_of([earlier])[earlier].positions == []
    closes = load_performance_inputs(database_url, account, earlier, D2).closes
    assert [(d, c) for d, _, c in closes] == [
        (earlier, 98.5),
        (D0, 101.0),
        (D1, 100.5),
        (D2, 103.0),
    ]


def test_recording_the_same_snapshot_again_changes_nothing(broker: PaperBroker) -> None:
    broker.place_bracket(_bracket())
    broker.sync("AAPL", _bars(ENTRY, QUIET))
    snaps = broker.snapshots_as_of([D1, D2])
    row_id = broker.record_snapshot(snaps[D1])
    broker.record_snapshot(snaps[D2])
    before = _snapshot_rows(broker)
    assert broker.record_snapshot(broker.snapshots_as_of([D1])[D1]) == row_id
    assert _snapshot_rows(broker) == before  # not even updated_at moved

    stored = broker.snapshots()
    assert [s.date for s in stored] == [D1, D2]
    assert isinstance(stored[0], PortfolioSnapshot)
    assert stored[0].model_dump(exclude={"exposure_pct"}) == snaps[D1].model_dump(
        exclude={"exposure_pct"}
    )
    revised = snaps[D1].model_copy(update={"cash": snaps[D1].cash - 1})
    assert broker.record_snapshot(revised) == row_id
    assert broker.snapshots()[0].cash == pytest.approx(revised.cash)


def _snapshot_rows(broker: PaperBroker) -> list[dict]:
    import sqlalchemy as sa

    from ibkr_assets.storage.trading_tables import portfolio_snapshots as t

    with broker._engine.connect() as conn:
        query = sa.select(t).where(t.c.account == broker.account_name).order_by(t.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]
