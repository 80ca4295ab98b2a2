"""IBKR orders: IbkrAdapter's order methods and IbkrBroker against FakeIB's TWS.

The fake runs ib_async's own client-side code (``IB.placeOrder``, ``IB.bracketOrder``,
``Wrapper``); what it fakes is TWS. Counting orders on the fake's server is what proves that
nothing was sent twice.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from ib_async import IB, Fill, LimitOrder, Order, Stock, Trade

from ibkr_assets.brokers.base import Broker, BrokerError
from ibkr_assets.brokers.ibkr import LIMITS_REQUIRED, IbkrBroker
from ibkr_assets.domain.orders import (
    BracketRequest,
    BrokerOrder,
    CloseRequest,
    OrderStatus,
    check_transition,
    order_ref,
)
from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig, ReadonlySessionError
from ibkr_assets_tests.fakes.ib import ORDER_REJECTED, FakeIB

AAPL_CON_ID = 265598
SESSION = dt.date(2024, 3, 15)
REF = order_ref("breakout", "AAPL", SESSION)
CLOSE_REF = order_ref("breakout-close", "AAPL", SESSION)
CONFIG = IbkrConfig(
    client_id=7,
    readonly=False,
    connect_timeout=0.5,
    request_timeout=2.0,
    connect_attempts=2,
    backoff_seconds=0.0,
    backoff_max_seconds=0.0,
)
# Every ib_async.IB method the order code calls; the signature test covers these.
ORDER_CALLS = (
    "bracketOrder",
    "placeOrder",
    "cancelOrder",
    "trades",
    "openTrades",
    "fills",
    "positions",
    "reqAllOpenOrders",
    "reqCompletedOrders",
    "reqExecutions",
    "reqPositions",
    "accountSummary",
)


@pytest.fixture
def fake() -> FakeIB:
    ib = FakeIB()
    ib.add_stock("AAPL", con_id=AAPL_CON_ID, description="APPLE INC")
    ib.add_stock("MSFT", con_id=272093, description="MICROSOFT CORP")
    return ib


@pytest.fixture
def adapter(fake: FakeIB) -> Iterator[IbkrAdapter]:
    with IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=lambda _s: None) as adapter:
        yield adapter


@pytest.fixture
def broker(adapter: IbkrAdapter) -> IbkrBroker:
    return IbkrBroker(adapter)


@pytest.fixture
def errors(fake: FakeIB) -> list[tuple[int, int, str]]:
    seen: list[tuple[int, int, str]] = []
    fake.errorEvent.connect(lambda req_id, code, text, _contract: seen.append((req_id, code, text)))
    return seen


def bracket(**changes: object) -> BracketRequest:
    values: dict[str, object] = dict(
        order_ref=REF,
        symbol="AAPL",
        side="BUY",
        quantity=10,
        entry_price=100.0,
        take_profit=110.0,
        stop_loss=95.0,
        session=SESSION,
    )
    return BracketRequest(**{**values, **changes})


def by_role(orders: list[BrokerOrder]) -> dict[str, BrokerOrder]:
    return {o.role: o for o in orders}


def sent_orders(fake: FakeIB) -> list[Order]:
    return [c.params["order"] for c in fake.calls_to("placeOrder")]


def placed_trades(fake: FakeIB) -> list[Trade]:
    return [c.result for c in fake.calls_to("placeOrder")]


# -- placing a bracket ---------------------------------------------------------------------


def test_a_bracket_is_three_linked_orders_sharing_the_order_ref(
    broker: IbkrBroker, fake: FakeIB
) -> None:
    placed = broker.place_bracket(bracket())

    parent, take_profit, stop = sent_orders(fake)
    assert [c.params["contract"].conId for c in fake.calls_to("placeOrder")] == [AAPL_CON_ID] * 3
    assert (parent.action, parent.orderType, parent.totalQuantity, parent.lmtPrice) == (
        "BUY",
        "LMT",
        10,
        100.0,
    )
    assert (take_profit.action, take_profit.orderType, take_profit.lmtPrice) == ("SELL", "LMT", 110)
    assert (stop.action, stop.orderType, stop.auxPrice) == ("SELL", "STP", 95.0)
    assert (parent.parentId, take_profit.parentId, stop.parentId) == (
        0,
        parent.orderId,
        parent.orderId,
    )
    # TWS releases the group when the last one (transmit=True) arrives: all three or none.
    assert [o.transmit for o in (parent, take_profit, stop)] == [False, False, True]
    assert [o.tif for o in (parent, take_profit, stop)] == ["DAY", "GTC", "GTC"]
    assert {o.orderRef for o in (parent, take_profit, stop)} == {REF}
    assert [o.ocaGroup for o in (parent, take_profit, stop)] == ["", "", ""]

    on_server = fake.server_orders_for(REF)
    assert [o.transmitted for o in on_server] == [True, True, True]
    roles = by_role(placed)
    assert [o.role for o in placed] == ["parent", "take_profit", "stop_loss"]
    assert [o.broker_order_id for o in placed] == [str(o.perm_id) for o in on_server]
    assert (
        roles["take_profit"].parent_id
        == roles["stop_loss"].parent_id
        == roles["parent"].broker_order_id
    )
    assert roles["parent"].parent_id is None
    assert (roles["parent"].limit_price, roles["take_profit"].limit_price) == (100.0, 110.0)
    assert (roles["stop_loss"].stop_price, roles["stop_loss"].limit_price) == (95.0, None)
    assert {o.order_ref for o in placed} == {REF}


def test_acknowledged_orders_are_submitted(broker: IbkrBroker, fake: FakeIB) -> None:
    placed = broker.place_bracket(bracket())

    # TWS works the parent and holds the children until it fills.
    assert [t.orderStatus.status for t in placed_trades(fake)] == [
        "Submitted",
        "PreSubmitted",
        "PreSubmitted",
    ]
    assert [o.status for o in placed] == [OrderStatus.SUBMITTED] * 3
    assert all(o.filled_quantity == 0 and o.avg_fill_price is None for o in placed)


def test_fake_place_order_is_fire_and_forget_like_ib_async(fake: FakeIB) -> None:
    fake.connect(clientId=3)
    statuses: list[str] = []
    fake.orderStatusEvent += lambda trade: statuses.append(trade.orderStatus.status)
    (contract,) = fake.qualifyContracts(Stock("AAPL", "SMART", "USD"))

    trade = fake.placeOrder(contract, LimitOrder("BUY", 5, 99.0, orderRef="x"))

    assert type(trade) is Trade
    assert (trade.orderStatus.status, trade.order.permId, statuses) == ("PendingSubmit", 0, [])
    fake.reqAllOpenOrders()  # a blocking call runs the loop: TWS's answer is processed
    assert trade.orderStatus.status == "Submitted"
    assert trade.order.permId == fake.server_orders_for("x")[0].perm_id
    assert statuses == ["Submitted"]


# -- what happens to the orders ------------------------------------------------------------


def test_partial_fill_then_fill(broker: IbkrBroker, fake: FakeIB) -> None:
    placed = by_role(broker.place_bracket(bracket()))
    parent_id = int(placed["parent"].broker_order_id)
    live_fills: list[Fill] = []
    fake.execDetailsEvent += lambda _trade, fill: live_fills.append(fill)

    fake.fill(parent_id, 4, 99.5, commission=1.0)
    partial = by_role(broker.orders_by_ref(REF))
    fake.fill(parent_id, 6, 100.0, commission=1.5)
    done = by_role(broker.orders_by_ref(REF))

    parent = partial["parent"]
    assert (parent.status, parent.filled_quantity, parent.avg_fill_price) == (
        OrderStatus.PARTIALLY_FILLED,
        4,
        99.5,
    )
    assert parent.commission == 1.0
    check_transition(placed["parent"].status, parent.status)
    parent = done["parent"]
    assert (parent.status, parent.filled_quantity) == (OrderStatus.FILLED, 10)
    assert parent.avg_fill_price == pytest.approx((4 * 99.5 + 6 * 100.0) / 10)
    assert parent.commission == pytest.approx(2.5)
    check_transition(partial["parent"].status, parent.status)
    # The children now work at the exchange.
    assert done["take_profit"].status == done["stop_loss"].status == OrderStatus.SUBMITTED
    server_children = fake.server_orders_for(REF)[1:]
    assert [o.status for o in server_children] == ["Submitted", "Submitted"]
    # ib_async reported each execution live, with its commission report.
    assert [f.execution.shares for f in live_fills] == [4, 6]
    assert [f.commissionReport.commission for f in live_fills] == [1.0, 1.5]


def test_a_filled_take_profit_cancels_the_stop(broker: IbkrBroker, fake: FakeIB) -> None:
    placed = by_role(broker.place_bracket(bracket()))
    fake.fill(int(placed["parent"].broker_order_id))
    fake.fill(int(placed["take_profit"].broker_order_id))

    orders = by_role(broker.orders_by_ref(REF))

    assert orders["take_profit"].status == OrderStatus.FILLED
    assert orders["take_profit"].avg_fill_price == 110.0
    assert orders["stop_loss"].status == OrderStatus.CANCELLED
    assert broker.positions() == []


def test_cancelling_the_parent_cancels_the_bracket(
    adapter: IbkrAdapter, broker: IbkrBroker, fake: FakeIB, errors
) -> None:
    broker.place_bracket(bracket())
    parent_trade = placed_trades(fake)[0]

    adapter.cancel(parent_trade.order)

    assert [o.status for o in broker.orders_by_ref(REF)] == [OrderStatus.CANCELLED] * 3
    assert [o.status for o in fake.server_orders_for(REF)] == ["Cancelled"] * 3
    assert (parent_trade.order.orderId, 202) in [(r, c) for r, c, _ in errors]


def test_an_order_tws_cancels_itself_is_cancelled_with_its_fills_kept(
    broker: IbkrBroker, fake: FakeIB
) -> None:
    parent = by_role(broker.place_bracket(bracket()))["parent"]
    fake.fill(int(parent.broker_order_id), 3)
    fake.cancel_on_server(int(parent.broker_order_id), "DAY order expired")

    orders = by_role(broker.orders_by_ref(REF))

    assert (orders["parent"].status, orders["parent"].filled_quantity) == (
        OrderStatus.CANCELLED,
        3,
    )
    assert orders["stop_loss"].status == OrderStatus.CANCELLED
    assert orders["parent"].reason == ""


def test_rejection_201_is_rejected_with_the_reason(
    broker: IbkrBroker, fake: FakeIB, errors
) -> None:
    fake.reject_order(1)

    placed = by_role(broker.place_bracket(bracket()))

    parent_trade = placed_trades(fake)[0]
    assert (parent_trade.order.orderId, 201, ORDER_REJECTED) in errors
    # ib_async: the error marks the trade Cancelled and logs the code; TWS then says Inactive.
    assert parent_trade.orderStatus.status == "Inactive"
    assert [(e.status, e.errorCode) for e in parent_trade.log if e.errorCode] == [
        ("Cancelled", 201)
    ]
    assert placed["parent"].status == OrderStatus.REJECTED
    assert placed["parent"].reason.startswith("IBKR error 201: Order rejected")
    assert "YOUR ORDER IS NOT ACCEPTED" in placed["parent"].reason
    assert placed["take_profit"].status == placed["stop_loss"].status == OrderStatus.CANCELLED


def test_a_warning_then_a_cancel_is_cancelled_not_rejected(
    adapter: IbkrAdapter, broker: IbkrBroker, fake: FakeIB
) -> None:
    broker.place_bracket(bracket())
    parent = placed_trades(fake)[0]
    # ib_async records a warning on the trade (status ValidationError); the order stays live.
    fake.warn_order(parent.order.permId, 399)
    adapter.cancel(parent.order)

    orders = by_role(broker.orders_by_ref(REF))

    assert [e.errorCode for e in parent.log if e.errorCode] == [399, 202]
    assert (orders["parent"].status, orders["parent"].reason) == (OrderStatus.CANCELLED, "")


def test_a_rejection_is_still_rejected_after_a_reconnect(broker: IbkrBroker, fake: FakeIB) -> None:
    fake.reject_order(1)
    broker.place_bracket(bracket())
    fake.drop_connection()

    # Only TWS's completed-orders list knows the order now (no trade log).
    orders = by_role(broker.orders_by_ref(REF))

    assert orders["parent"].status == OrderStatus.REJECTED
    assert "inactive" in orders["parent"].reason
    assert len(fake.calls_to("placeOrder")) == 3


# -- idempotency ---------------------------------------------------------------------------


def test_placing_the_same_ref_again_sends_nothing(
    broker: IbkrBroker, adapter: IbkrAdapter, fake: FakeIB
) -> None:
    first = broker.place_bracket(bracket())
    again = broker.place_bracket(bracket())
    adapter.close()  # a new run, a new process: TWS still knows the ref
    rerun = IbkrBroker(IbkrAdapter(CONFIG, ib_factory=lambda: fake)).place_bracket(bracket())

    assert len(fake.calls_to("placeOrder")) == 3
    assert len(fake.server_orders_for(REF)) == 3
    assert [o.broker_order_id for o in again] == [o.broker_order_id for o in first]
    assert [o.broker_order_id for o in rerun] == [o.broker_order_id for o in first]
    assert [o.status for o in rerun] == [OrderStatus.SUBMITTED] * 3


def test_a_disconnect_after_the_bracket_reached_tws_then_a_retry_sends_nothing(
    broker: IbkrBroker, fake: FakeIB
) -> None:
    fake.drop_after_order(3)  # the socket breaks once TWS has the stop (and so the bracket)

    with pytest.raises(
        BrokerError, match="Socket disconnect.*may have reached IBKR: calling again"
    ):
        broker.place_bracket(bracket())
    assert not fake.isConnected()
    assert [o.transmitted for o in fake.server_orders_for(REF)] == [True, True, True]

    retry = broker.place_bracket(bracket())

    assert len(fake.calls_to("placeOrder")) == 3
    assert len(fake.server_orders_for(REF)) == 3
    assert len(fake.calls_to("connect")) == 2
    assert [o.broker_order_id for o in retry] == [
        str(o.perm_id) for o in fake.server_orders_for(REF)
    ]
    assert [o.role for o in retry] == ["parent", "take_profit", "stop_loss"]
    assert [o.status for o in retry] == [OrderStatus.SUBMITTED] * 3


def test_a_bracket_cut_before_its_stop_was_sent_is_sent_once_complete(
    broker: IbkrBroker, fake: FakeIB
) -> None:
    fake.drop_after_order(1)  # TWS holds the parent, untransmitted; the rest is lost

    with pytest.raises(BrokerError, match="Socket disconnect"):
        broker.place_bracket(bracket())
    assert [(o.transmitted, o.status) for o in fake.server_orders_for(REF)] == [
        (False, "PendingSubmit")
    ]

    retry = broker.place_bracket(bracket())

    transmitted = [o for o in fake.server_orders_for(REF) if o.transmitted]
    assert len(transmitted) == 3  # one complete bracket works; the held remnant never trades
    assert [o.broker_order_id for o in retry] == [str(o.perm_id) for o in transmitted]
    assert [o.broker_order_id for o in broker.orders_by_ref(REF)] == [
        o.broker_order_id for o in retry
    ]


# -- limits and safety ---------------------------------------------------------------------


@pytest.mark.parametrize(("notional", "position"), [(None, None), (50_000.0, None), (None, 100)])
def test_live_without_both_limits_is_refused(
    adapter: IbkrAdapter, notional: float | None, position: int | None
) -> None:
    with pytest.raises(BrokerError) as raised:
        IbkrBroker(adapter, live=True, max_notional=notional, max_position=position)

    assert str(raised.value) == LIMITS_REQUIRED


def test_paper_needs_no_limits_and_live_says_so(adapter: IbkrAdapter) -> None:
    paper = IbkrBroker(adapter)
    live = IbkrBroker(adapter, live=True, max_notional=50_000.0, max_position=100)

    members = {"name", "mode"} | {m for m in vars(Broker) if not m.startswith("_")}
    assert all(hasattr(paper, m) for m in members)
    assert (paper.name, paper.mode, live.mode) == ("ibkr", "paper", "live")


def test_limits_are_enforced_before_anything_is_sent(adapter: IbkrAdapter, fake: FakeIB) -> None:
    broker = IbkrBroker(adapter, max_notional=5_000.0, max_position=50)
    fake.set_position("AAPL", 45, 90.0)

    with pytest.raises(BrokerError, match="notional 6,000.00 .* exceeds max_notional 5,000.00"):
        broker.place_bracket(bracket(quantity=60))
    with pytest.raises(BrokerError, match="position 55, beyond max_position 50"):
        broker.place_bracket(bracket(quantity=10))
    assert fake.calls_to("placeOrder") == []

    placed = broker.place_bracket(bracket(quantity=5))

    assert len(fake.calls_to("placeOrder")) == 3
    assert placed[0].quantity == 5


def test_live_trades_today_only(adapter: IbkrAdapter, fake: FakeIB) -> None:
    broker = IbkrBroker(adapter, live=True, max_notional=5_000.0, max_position=50)
    today = dt.datetime.now(ZoneInfo("America/New_York")).date()

    with pytest.raises(BrokerError, match="historical dates never reach a live broker"):
        broker.place_bracket(bracket())
    assert fake.calls_to("placeOrder") == []

    placed = broker.place_bracket(bracket(order_ref=order_ref("b", "AAPL", today), session=today))
    assert len(placed) == 3


def test_paper_mode_refuses_a_live_account(adapter: IbkrAdapter, fake: FakeIB) -> None:
    fake.account = "U7654321"  # live account codes do not start with D
    adapter.close()

    with pytest.raises(BrokerError, match="paper mode, but .* live account U7654321"):
        IbkrBroker(adapter).place_bracket(bracket())
    assert fake.calls_to("placeOrder") == []


def test_bracket_prices_must_be_on_the_right_sides(broker: IbkrBroker, fake: FakeIB) -> None:
    with pytest.raises(BrokerError, match="BUY bracket needs stop < entry < take-profit"):
        broker.place_bracket(bracket(take_profit=99.0))
    with pytest.raises(BrokerError, match="SELL bracket needs take-profit < entry < stop"):
        broker.place_bracket(bracket(side="SELL"))
    assert fake.calls_to("placeOrder") == []


def test_a_readonly_adapter_refuses_orders(fake: FakeIB) -> None:
    adapter = IbkrAdapter(IbkrConfig(), ib_factory=lambda: fake)
    contract = Stock("AAPL", "SMART", "USD", conId=AAPL_CON_ID)

    with pytest.raises(ReadonlySessionError, match="read-only.*readonly=False"):
        adapter.place_bracket(contract, "BUY", 1, 100.0, 110.0, 95.0, REF)
    with pytest.raises(ReadonlySessionError):
        adapter.place_market(contract, "SELL", 1, CLOSE_REF)
    with pytest.raises(BrokerError, match="readonly=False"):
        IbkrBroker(adapter)
    assert fake.calls == []


# -- closing -------------------------------------------------------------------------------


def test_close_position_cancels_the_children_and_sells_once(
    broker: IbkrBroker, fake: FakeIB
) -> None:
    placed = by_role(broker.place_bracket(bracket()))
    fake.fill(int(placed["parent"].broker_order_id))
    request = CloseRequest(order_ref=CLOSE_REF, symbol="AAPL", session=SESSION)

    (close,) = broker.close_position(request)
    again = broker.close_position(request)

    assert (close.role, close.side, close.order_type, close.quantity) == (
        "close",
        "SELL",
        "MKT",
        10,
    )
    assert close.order_ref == CLOSE_REF
    assert [o.broker_order_id for o in again] == [close.broker_order_id]
    assert len(fake.calls_to("placeOrder")) == 4
    assert sent_orders(fake)[3].orderRef == CLOSE_REF
    bracket_now = by_role(broker.orders_by_ref(REF))
    assert bracket_now["parent"].status == OrderStatus.FILLED
    assert (
        bracket_now["take_profit"].status
        == bracket_now["stop_loss"].status
        == OrderStatus.CANCELLED
    )
    assert [o.status for o in fake.server_orders_for(REF)[1:]] == ["Cancelled", "Cancelled"]

    fake.fill(int(close.broker_order_id), price=104.0)
    assert broker.positions() == []
    assert by_role(broker.orders_by_ref(CLOSE_REF))["close"].status == OrderStatus.FILLED


def test_close_refuses_to_sell_while_a_stop_it_could_not_cancel_works(
    broker: IbkrBroker, adapter: IbkrAdapter, fake: FakeIB
) -> None:
    placed = by_role(broker.place_bracket(bracket()))
    fake.fill(int(placed["parent"].broker_order_id))
    adapter.close()
    other_client = IbkrAdapter(
        IbkrConfig(client_id=8, readonly=False), ib_factory=lambda: fake, sleep=lambda _s: None
    )  # TWS lets only the placing client cancel (error 10147 for any other)

    with pytest.raises(
        BrokerError, match="did not cancel the open orders on AAPL.*nothing was sold"
    ):
        IbkrBroker(other_client).close_position(
            CloseRequest(order_ref=CLOSE_REF, symbol="AAPL", session=SESSION)
        )
    assert len(fake.calls_to("placeOrder")) == 3
    assert [o.status for o in fake.server_orders_for(REF)[1:]] == ["Submitted", "Submitted"]


def test_close_without_a_position_sends_nothing(broker: IbkrBroker, fake: FakeIB) -> None:
    broker.place_bracket(bracket())  # entry not filled: no position

    closed = broker.close_position(
        CloseRequest(order_ref=CLOSE_REF, symbol="AAPL", session=SESSION)
    )

    assert closed == []
    assert len(fake.calls_to("placeOrder")) == 3
    assert fake.calls_to("cancelOrder") == []


def test_close_covers_a_short_position_with_a_buy(broker: IbkrBroker, fake: FakeIB) -> None:
    fake.set_position("MSFT", -7, 400.0)

    (close,) = broker.close_position(
        CloseRequest(order_ref=order_ref("s", "MSFT", SESSION), symbol="MSFT", session=SESSION)
    )

    assert (close.side, close.quantity, close.symbol) == ("BUY", 7, "MSFT")


# -- recovering after a disconnect ---------------------------------------------------------


def test_executions_recover_fills_made_while_disconnected(broker: IbkrBroker, fake: FakeIB) -> None:
    parent = by_role(broker.place_bracket(bracket()))["parent"]
    fake.drop_connection()
    fake.fill(int(parent.broker_order_id), price=99.75, commission=1.25)
    assert fake.fills() == []  # the client saw nothing

    (fill,) = broker.executions()

    assert (fill.order_ref, fill.broker_order_id, fill.symbol, fill.side) == (
        REF,
        parent.broker_order_id,
        "AAPL",
        "BUY",
    )
    assert (fill.quantity, fill.price, fill.commission) == (10, 99.75, 1.25)
    orders = by_role(broker.orders_by_ref(REF))
    assert (orders["parent"].status, orders["parent"].filled_quantity) == (OrderStatus.FILLED, 10)
    assert (orders["parent"].avg_fill_price, orders["parent"].commission) == (99.75, 1.25)
    assert orders["stop_loss"].status == OrderStatus.SUBMITTED
    assert orders["stop_loss"].parent_id == parent.broker_order_id
    assert broker.account().commissions == 1.25


def test_open_orders_come_from_tws_after_a_reconnect(broker: IbkrBroker, fake: FakeIB) -> None:
    placed = broker.place_bracket(bracket())
    fake.drop_connection()

    found = broker.open_orders()

    assert [o.broker_order_id for o in found] == [o.broker_order_id for o in placed]
    assert [o.role for o in found] == ["parent", "take_profit", "stop_loss"]


def test_account_summary_after_a_round_trip(broker: IbkrBroker, fake: FakeIB) -> None:
    placed = by_role(broker.place_bracket(bracket()))
    fake.fill(int(placed["parent"].broker_order_id), commission=1.0)  # 10 @ 100
    fake.fill(int(placed["take_profit"].broker_order_id), commission=1.0)  # 10 @ 110

    account = broker.account()

    # IB's average cost includes the buy commission: (110 - 100.1) x 10 - 1.
    assert account.realized_pnl == pytest.approx(98.0)
    assert account.cash == pytest.approx(100_000 - 1_000 - 1 + 1_100 - 1)
    assert account.commissions == pytest.approx(2.0)


# -- the fake stays faithful to ib_async.IB ------------------------------------------------


@pytest.mark.parametrize("name", ORDER_CALLS)
def test_fake_order_methods_have_the_real_signature(name: str) -> None:
    def shape(func) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert shape(getattr(FakeIB, name)) == shape(getattr(IB, name))


def test_everything_the_broker_sends_binds_to_the_real_signatures(
    broker: IbkrBroker, fake: FakeIB
) -> None:
    placed = by_role(broker.place_bracket(bracket()))
    fake.fill(int(placed["parent"].broker_order_id))
    broker.close_position(CloseRequest(order_ref=CLOSE_REF, symbol="AAPL", session=SESSION))
    broker.account()
    broker.open_orders()

    assert {c.method for c in fake.calls} >= set(ORDER_CALLS) - {"fills", "positions"}
    for call in fake.calls:
        inspect.signature(getattr(IB, call.method)).bind(None, *call.args, **call.kwargs)


@pytest.mark.parametrize("make_ib", [IB, FakeIB], ids=["real", "fake"])
def test_order_requests_without_a_connection_behave_like_the_real_ib(make_ib) -> None:
    ib = make_ib()
    stock = Stock("AAPL", "SMART", "USD")
    requests = [
        lambda: ib.placeOrder(stock, LimitOrder("BUY", 1, 1.0)),
        lambda: ib.bracketOrder("BUY", 1, 1.0, 2.0, 0.5),
        lambda: ib.cancelOrder(Order(orderId=5)),
        lambda: ib.reqAllOpenOrders(),
        lambda: ib.reqCompletedOrders(True),
        lambda: ib.reqExecutions(),
        lambda: ib.reqPositions(),
        lambda: ib.accountSummary(),
    ]
    for request in requests:
        with pytest.raises(ConnectionError, match="Not connected"):
            request()
    assert (ib.openTrades(), ib.trades(), ib.fills(), ib.positions()) == ([], [], [], [])
