"""A fake of the ``ib_async.IB`` methods that ``IbkrAdapter`` calls, faithful to ib_async 2.x.

It has the real signatures (a test compares them), returns real ib_async objects (``Contract``,
``BarDataList`` of ``BarData`` with ``datetime.date`` dates, ``ContractDescription``) and fires a
real ``eventkit.Event`` as ``errorEvent`` with ``(reqId, errorCode, errorString, contract)``,
before the blocking call returns, as ib_async's ``Wrapper.error`` does. Behaviour modelled on
ib_async and TWS:

* ``connect`` raises what the real one raises: ``ConnectionRefusedError`` when nothing listens,
  ``asyncio.TimeoutError`` when the API handshake does not complete. On success TWS sends the
  farm notices 2104/2106/2158 (reqId -1) on ``errorEvent``.
* Every request raises ``ConnectionError("Not connected")`` when not connected, and
  ``ConnectionError("Socket disconnect")`` when the socket drops mid-request.
* ``qualifyContracts`` updates the given contracts in place and returns one slot per contract,
  ``None`` for a contract it could not qualify (error 200 "No security definition ...").
* ``reqHistoricalData`` applies ``util.formatIBDatetime`` to ``endDateTime`` as the real client
  does, reads the wire string like TWS, and returns the bars in ``(end - duration, end]``.
  Unknown contract: error 200. Nothing in the window: error 162 "HMDS query returned no data".
  Identical request within 15 s: error 162 pacing violation. Invalid duration, bar size or
  whatToShow: error 321, which ib_async treats as a warning, so the request runs into its
  timeout. A timeout returns an empty ``BarDataList``, unless ``IB.RequestTimeout`` is
  shorter, which raises ``asyncio.TimeoutError``; with neither the real call would block
  forever, which the fake reports as an ``AssertionError``.
* Errors tied to no request (1100, 1300, 2110) come with reqId -1 and do not end a request.

Orders. The fake plays TWS; the client side is ib_async's own code. ``placeOrder``,
``cancelOrder``, ``bracketOrder``, ``trades``, ``openTrades``, ``fills`` and ``positions`` are
``ib_async.IB``'s methods, running against a fake ``Client`` that hands each message to the fake
TWS, and everything TWS answers goes through a real ``ib_async.wrapper.Wrapper``. So ``Trade``,
``OrderStatus``, ``Fill``, ``Execution`` and ``CommissionReport`` objects, trade logs and the
``orderStatusEvent`` / ``execDetailsEvent`` / ``commissionReportEvent`` / ``errorEvent`` emissions
are ib_async's. What the fake TWS does, as TWS does it:

* ``placeOrder`` is fire-and-forget: it returns a ``PendingSubmit`` trade, and TWS's answers
  (``openOrder`` + ``orderStatus``, errors, fills) are only processed when the client runs its
  event loop, here at the next blocking call.
* ``transmit=False`` orders are held in TWS, invisible to every API query and never executed,
  until an order with ``transmit=True`` (a bracket's stop) transmits its parent group. Then the
  parent is ``Submitted`` and the children ``PreSubmitted`` until the parent is filled; a
  filled child cancels its sibling (one-cancels-other).
* A rejection is error 201 with the orderId as reqId (the wrapper marks the trade Cancelled and
  logs the code), then ``Inactive``; the children of a rejected parent are cancelled.
* A cancel is error 202 "Order Canceled" plus ``Cancelled``; cancelling a parent cancels its
  children. Cancelling a done order gives error 10148, an unknown one 10147.
* Fills come as ``execDetails`` (reqId -1), ``commissionReport``, ``openOrder`` + ``orderStatus``
  (``Submitted`` with ``filled`` > 0 while partial) and a ``position`` update.
* A dropped socket loses whatever was in flight, and the wrapper resets (no trades, fills or
  positions until the next session syncs). TWS keeps its orders, executions and positions.
* ``reqAllOpenOrders`` lists transmitted open orders of every client, ``reqCompletedOrders``
  done ones as TWS encodes them (orderId, clientId and parentId 0; ``parentPermId`` and
  ``filledQuantity`` set), ``reqExecutions`` the executions with their commission reports,
  ``reqPositions`` every position including ones closed today (size 0), ``accountSummary``
  the summary tags and the ``$LEDGER`` tags (cash, realized P&L) once, then pushed updates.
* ``connect`` syncs like ``IB.connectAsync``: positions always; open orders, completed orders
  and executions as ``fetchFields`` asks (order data only when not ``readonly``).

Wording of the order messages follows what TWS sends; the 10147/10148 texts are approximate.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import functools
import inspect
import logging
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from eventkit import Event
from ib_async import (
    IB,
    AccountValue,
    BarData,
    BarDataList,
    CommissionReport,
    Contract,
    ContractDescription,
    Execution,
    ExecutionFilter,
    Fill,
    Order,
    OrderState,
    OrderStatus,
    Position,
    StartupFetch,
    StartupFetchALL,
    TagValue,
    Trade,
    util,
)
from ib_async.util import UNSET_DOUBLE
from ib_async.wrapper import Wrapper

NO_SECURITY_DEFINITION = "No security definition has been found for the request"
HMDS_NO_DATA = (
    "Historical Market Data Service error message:HMDS query returned no data: "
    "{symbol}@{exchange} Trades"
)
PACING_VIOLATION = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
CONNECTIVITY_LOST = "Connectivity between IB and Trader Workstation has been lost."
DURATION_IN_YEARS = (
    "Error validating request.-'bH' : cause - Historical data requests for durations longer "
    "than 365 days must be made in years."
)
INVALID_REQUEST = "Error validating request.-'bH' : cause - {detail}"  # detail wording approximate
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
BAR_SIZES = frozenset(
    "1 secs,5 secs,10 secs,15 secs,30 secs,1 min,2 mins,3 mins,5 mins,10 mins,15 mins,"
    "20 mins,30 mins,1 hour,2 hours,3 hours,4 hours,8 hours,1 day,1 week,1 month".split(",")
)
WHAT_TO_SHOW = frozenset(
    "TRADES,MIDPOINT,BID,ASK,BID_ASK,ADJUSTED_LAST,HISTORICAL_VOLATILITY,"
    "OPTION_IMPLIED_VOLATILITY,REBATE_RATE,FEE_RATE,YIELD_BID,YIELD_ASK,YIELD_BID_ASK,"
    "YIELD_LAST".split(",")
)
# Codes ib_async's Wrapper.error treats as warnings: the request stays open.
WARNING_CODES = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})
# Codes TWS sends with reqId -1: they concern the session, not one request.
SESSION_CODES = frozenset({1100, 1300, 2110})
ACCOUNT = "DU1234567"  # IB paper accounts start with D
ORDER_REJECTED = (
    "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED "
    "POSITION YOUR EQUITY WITH LOAN VALUE [0.00 USD] MUST EXCEED THE INITIAL MARGIN [5000.00 USD]"
)
ORDER_CANCELED = "Order Canceled - reason:"
ORDER_WARNING = (
    "Order Message:\nBUY 10 AAPL NASDAQ.NMS\nWarning: your order will not be placed at the "
    "exchange until 2024-03-15 09:30:00 US/Eastern"
)
CANNOT_CANCEL = (
    "OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {status}."
)
CANCEL_NOT_FOUND = "OrderId {order_id} that needs to be cancelled is not found."
PACING_WINDOW_SECONDS = 15.0
MATCHING_SYMBOLS_TIMEOUT = 4.0  # hard-coded in ib_async's reqMatchingSymbolsAsync

_DURATION = re.compile(r"^(\d+) ([SDWMY])$")
_WIRE_END = re.compile(r"^(\d{8})([ -])(\d\d:\d\d:\d\d)(?: (\S+))?$")
_DAYS_PER_UNIT = {"D": 1, "W": 7, "M": 31, "Y": 366}  # generous: TWS counts calendar spans
_TIMEOUT = "timeout"
_DROP = "drop"


@dataclass
class Call:
    """One call made on the fake: raw ``args``/``kwargs``, every parameter by name, the result."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    params: dict[str, Any]
    result: Any = None


@dataclass(frozen=True)
class _Fail:
    code: int
    message: str


@dataclass
class _Listing:
    contract: Contract
    bars: list[BarData]


@dataclass
class ServerOrder:
    """One order as TWS holds it: its own copy of what the client sent, and its state."""

    client_id: int
    order_id: int
    perm_id: int
    contract: Contract
    order: Order
    transmitted: bool = False
    status: str = OrderStatus.PendingSubmit
    filled: float = 0.0
    avg_price: float = 0.0
    last_price: float = 0.0
    reason: str = ""
    reject_with: str | None = None

    @property
    def remaining(self) -> float:
        return float(self.order.totalQuantity) - self.filled

    @property
    def is_done(self) -> bool:
        return self.status in OrderStatus.DoneStates

    @property
    def order_ref(self) -> str:
        return self.order.orderRef


@dataclass
class _Execution:
    contract: Contract
    execution: Execution
    report: CommissionReport


@dataclass
class _Holding:
    contract: Contract
    quantity: float = 0.0
    avg_cost: float = 0.0


@dataclass
class _Reply:
    """Stands in for the ``asyncio.Future`` that ``Wrapper.startReq`` creates (no event loop)."""

    value: Any = None
    error: BaseException | None = None
    finished: bool = False

    def done(self) -> bool:
        return self.finished

    def set_result(self, value: Any) -> None:
        self.value, self.finished = value, True

    def set_exception(self, error: BaseException) -> None:
        self.error, self.finished = error, True

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class _FakeClient:
    """The slice of ``ib_async.client.Client`` that ``IB``'s order methods use.

    Sending raises ``ConnectionError("Not connected")`` without a session, as ``Client.send``
    does; otherwise the message reaches the fake TWS at once.
    """

    tws: FakeIB
    _reqIdSeq: int = 0
    sent: list[tuple[Any, ...]] = field(default_factory=list)

    def isConnected(self) -> bool:
        return self.tws._connected

    def isReady(self) -> bool:
        return self.tws._connected

    def getReqId(self) -> int:
        if not self.isReady():
            raise ConnectionError("Not connected")
        new_id = self._reqIdSeq
        self._reqIdSeq += 1
        return new_id

    def updateReqId(self, minReqId: int) -> None:
        self._reqIdSeq = max(self._reqIdSeq, minReqId)

    def placeOrder(self, orderId: int, contract: Contract, order: Order) -> None:
        if self._send("placeOrder", orderId):
            self.tws._receive_order(orderId, contract, order)

    def cancelOrder(self, orderId: int, manualCancelOrderTime: str = "") -> None:
        if self._send("cancelOrder", orderId):
            self.tws._receive_cancel(orderId)

    def _send(self, *message: Any) -> bool:
        """True when TWS gets the message; False when it is written into a broken socket."""
        if not self.isConnected():
            raise ConnectionError("Not connected")
        self.sent.append(message)
        return not self.tws._socket_broken


def _recorded(method: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: FakeIB, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        params = {k: v for k, v in bound.arguments.items() if k != "self"}
        call = Call(method.__name__, args, kwargs, params)
        self.calls.append(call)
        call.result = method(self, *args, **kwargs)
        return call.result

    return wrapper


def weekday_bars(first: dt.date, last: dt.date, start_price: float = 100.0) -> list[BarData]:
    """Daily bars for every weekday in ``[first, last]`` with simple, predictable prices."""
    bars = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            close = start_price + 0.5 * len(bars)
            bars.append(
                BarData(
                    date=day,
                    open=close - 0.25,
                    high=close + 1.0,
                    low=close - 1.25,
                    close=close,
                    volume=1_000_000.0 + len(bars),
                    average=close - 0.1,
                    barCount=5_000,
                )
            )
        day += dt.timedelta(days=1)
    return bars


class FakeIB:
    """Stands in for ``ib_async.IB``; script it, call it like the real one, read ``calls``."""

    RequestTimeout: float = 0
    RaiseRequestErrors: bool = False
    exchange_timezone = ZoneInfo("America/New_York")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        for name in IB.events:
            setattr(self, name, Event(name))
        self.calls: list[Call] = []
        # Also send this many bars dated after endDateTime (a look-ahead trap for the caller).
        self.bars_past_end = 0
        # The account TWS reports; IB paper accounts start with "D", live ones do not.
        self.account = ACCOUNT
        self.wrapper = Wrapper(self)
        self.client = _FakeClient(self)
        self._logger = logging.getLogger("ib_async.ib")
        self._clock = clock
        self._connected = False
        self._listings: list[_Listing] = []
        # What TWS holds across sessions.
        self.server_orders: list[ServerOrder] = []
        self.server_executions: list[_Execution] = []
        self._holdings: dict[int, _Holding] = {}
        self._cash = 100_000.0
        self._realized = 0.0
        self._prices: dict[str, float] = {}
        self._next_valid_id = 1
        self._next_perm_id = 1_500_000_000
        self._received = 0
        self._order_plan: dict[int, tuple[str, str]] = {}
        # What TWS has sent the client that the client's event loop has not processed yet.
        self._outbox: list[Callable[[], None]] = []
        self._summary_req_id: int | None = None
        self._socket_broken = False
        self._connect_failures: deque[Callable[[str, int], BaseException]] = deque()
        self._always_fail: Callable[[str, int], BaseException] | None = None
        self._scripted: defaultdict[str, deque[object]] = defaultdict(deque)
        self._recent_history: dict[tuple[Any, ...], float] = {}

    # -- scripting --------------------------------------------------------------------------

    def add_stock(
        self,
        symbol: str,
        bars: list[BarData] | None = None,
        *,
        con_id: int | None = None,
        primary_exchange: str = "NASDAQ",
        currency: str = "USD",
        description: str = "",
    ) -> Contract:
        """A stock IB knows, with its daily bar history; returns its qualified contract."""
        contract = Contract(
            secType="STK",
            conId=con_id or 1000 + len(self._listings),
            symbol=symbol,
            exchange="SMART",
            primaryExchange=primary_exchange,
            currency=currency,
            localSymbol=symbol,
            tradingClass="NMS" if primary_exchange == "NASDAQ" else primary_exchange,
            description=description or f"{symbol} INC",
        )
        self._listings.append(_Listing(contract, list(bars or [])))
        return dataclasses.replace(contract)

    def refuse_connections(self, times: int | None = None) -> None:
        """The next ``times`` connects (all when None) find nothing listening on the port."""

        def refused(host: str, port: int) -> BaseException:
            return ConnectionRefusedError(111, f"Connect call failed ('{host}', {port})")

        self._queue_connect_failure(refused, times)

    def time_out_connections(self, times: int | None = None) -> None:
        """The next ``times`` connects (all when None) get no API handshake in time."""
        self._queue_connect_failure(lambda _host, _port: asyncio.TimeoutError(), times)

    def fail_next(self, method: str, code: int, message: str) -> None:
        """TWS answers the next ``method`` call with error ``code``."""
        self._scripted[method].append(_Fail(code, message))

    def time_out_next(self, method: str) -> None:
        """TWS never answers the next ``method`` call."""
        self._scripted[method].append(_TIMEOUT)

    def drop_during_next(self, method: str) -> None:
        """The socket closes while the next ``method`` call waits for its answer."""
        self._scripted[method].append(_DROP)

    def drop_connection(self) -> None:
        """The socket closes now (Gateway restarted, network down)."""
        if self._connected:
            self._end_session()
            self.wrapper.connectionClosed()  # fails pending requests, resets session state
            self.disconnectedEvent.emit()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # -- scripting orders (what TWS and the market do) ---------------------------------------

    def reject_order(self, nth: int = 1, reason: str = ORDER_REJECTED) -> None:
        """TWS rejects the ``nth`` order it receives from now on (error 201) when transmitted."""
        self._order_plan[self._received + nth] = ("reject", reason)

    def drop_after_order(self, nth: int = 1) -> None:
        """The socket breaks right after TWS received the ``nth`` order from now on.

        TWS keeps (and, if transmitted, works) that order. As with a real socket, the client
        learns of it only when its event loop next runs: ``placeOrder`` returns, later sends
        are lost, and the next blocking call raises ``ConnectionError("Socket disconnect")``.
        """
        self._order_plan[self._received + nth] = ("drop", "")

    def set_price(self, symbol: str, price: float) -> None:
        """Where the market trades ``symbol``: the default price of market-order fills."""
        self._prices[symbol] = price

    def set_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """The account holds ``quantity`` of ``symbol`` (held before this test's orders)."""
        listing = self._listing_for(symbol)
        self._holdings[listing.contract.conId] = _Holding(
            _wire_contract(listing.contract, listing.contract.primaryExchange), quantity, avg_cost
        )
        self._push_position(self._holdings[listing.contract.conId])
        self._push_account()

    def server_orders_for(self, order_ref: str) -> list[ServerOrder]:
        """The orders TWS holds with this ``orderRef``, in the order they arrived."""
        return [o for o in self.server_orders if o.order_ref == order_ref]

    def server_order(self, perm_id: int) -> ServerOrder:
        return next(o for o in self.server_orders if o.perm_id == perm_id)

    def fill(
        self,
        perm_id: int,
        shares: float | None = None,
        price: float | None = None,
        commission: float = 1.0,
    ) -> Execution:
        """The market executes ``shares`` (default: all remaining) of a working order.

        The price defaults to the order's limit or stop price, or the symbol's market price.
        Bracket children only execute once their parent is filled, as in TWS.
        """
        so = self.server_order(perm_id)
        assert so.transmitted and not so.is_done, f"order {perm_id} is not working ({so.status})"
        parent = self._parent_of(so)
        assert parent is None or parent.status == OrderStatus.Filled, (
            "TWS holds a bracket child until its parent is filled"
        )
        shares = so.remaining if shares is None else shares
        assert 0 < shares <= so.remaining, f"cannot fill {shares} of {so.remaining} remaining"
        price = self._fill_price(so) if price is None else price
        so.avg_price = (so.avg_price * so.filled + price * shares) / (so.filled + shares)
        so.filled += shares
        so.last_price = price
        so.status = OrderStatus.Filled if so.remaining <= 0 else OrderStatus.Submitted
        holding, realized = self._book(so, shares, price, commission)
        execution = Execution(
            execId=f"0000{len(self.server_executions) + 1:04x}.{so.perm_id:08x}.01.01",
            time=dt.datetime.now(dt.timezone.utc),
            acctNumber=self.account,
            exchange="ISLAND",
            side="BOT" if so.order.action == "BUY" else "SLD",
            shares=shares,
            price=price,
            permId=so.perm_id,
            clientId=so.client_id,
            orderId=so.order_id,
            cumQty=so.filled,
            avgPrice=so.avg_price,
            orderRef=so.order_ref,
            lastLiquidity=1,
        )
        report = CommissionReport(
            execId=execution.execId,
            commission=commission,
            currency="USD",
            realizedPNL=UNSET_DOUBLE if realized is None else realized,
            yield_=UNSET_DOUBLE,
        )
        record = _Execution(_wire_contract(so.contract, "ISLAND"), execution, report)
        self.server_executions.append(record)
        if self._reaches_client(so):
            self._outbox.extend(self._execution_messages(-1, record))
        self._push_order(so)
        self._push_position(holding)
        self._push_account()
        if so.status == OrderStatus.Filled:
            for child in self._children_of(so):
                if child.transmitted and not child.is_done:
                    child.status = OrderStatus.Submitted
                    self._push_order(child)
            if parent is not None:  # one-cancels-other between the children
                for sibling in self._children_of(parent):
                    if sibling is not so and not sibling.is_done:
                        self._cancel(sibling, "", notify=False)
        return execution

    def warn_order(self, perm_id: int, code: int = 399, message: str = ORDER_WARNING) -> None:
        """TWS sends a warning about a working order (e.g. 399); the order stays live."""
        so = self.server_order(perm_id)
        if self._reaches_client(so):
            self._outbox.append(
                functools.partial(self.wrapper.error, so.order_id, code, message, "")
            )

    def cancel_on_server(self, perm_id: int, reason: str = "") -> None:
        """TWS cancels a working order itself (a DAY order expires, a risk check, a TWS user)."""
        so = self.server_order(perm_id)
        assert so.transmitted and not so.is_done, f"order {perm_id} is not working ({so.status})"
        self._cancel(so, reason)

    # -- the ib_async.IB surface ------------------------------------------------------------

    @_recorded
    def connect(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        clientId: int = 1,
        timeout: float = 4,
        readonly: bool = False,
        account: str = "",
        raiseSyncErrors: bool = False,
        fetchFields: StartupFetch = StartupFetchALL,
    ) -> FakeIB:
        assert not self._connected, "connect() on a connected IB opens a second session"
        failure = self._connect_failures.popleft() if self._connect_failures else None
        failure = failure or self._always_fail
        if failure is not None:
            raise failure(host, int(port))
        self._connected = True
        self.wrapper.clientId = int(clientId)
        self.wrapper.accounts = [self.account]
        self.client.updateReqId(self._next_valid_id)  # TWS's nextValidId
        for code, message in FARM_NOTICES:
            self.errorEvent.emit(-1, code, message, None)
        self._startup_sync(readonly, fetchFields)
        self.connectedEvent.emit()
        return self

    @_recorded
    def disconnect(self) -> str | None:
        if not self._connected:
            return None
        self._end_session()
        self.disconnectedEvent.emit()
        self.wrapper.reset()  # IB.disconnect clears all session state
        return "Disconnecting from fake IB"

    @_recorded
    def isConnected(self) -> bool:
        return self._connected

    @_recorded
    def qualifyContracts(self, *contracts: Contract) -> list[Contract]:
        outcome = self._begin("qualifyContracts")
        result: list[Any] = []
        for contract in contracts:
            req_id = self._req_id()
            if outcome == _TIMEOUT or self._answer_fails(outcome, req_id, contract):
                self._block(None)  # no timeout of its own: only RequestTimeout ends it
            if isinstance(outcome, _Fail):
                result.append(None)
                continue
            listing = self._find(contract)
            if listing is None:
                self.errorEvent.emit(req_id, 200, NO_SECURITY_DEFINITION, contract)
                result.append(None)
                continue
            found = dataclasses.replace(listing.contract)
            if contract.exchange != "SMART":
                found.exchange = contract.exchange
            util.dataclassUpdate(contract, found)
            result.append(contract)
        return result

    @_recorded
    def reqHistoricalData(
        self,
        contract: Contract,
        endDateTime: dt.datetime | dt.date | str | None,
        durationStr: str,
        barSizeSetting: str,
        whatToShow: str,
        useRTH: bool,
        formatDate: int = 1,
        keepUpToDate: bool = False,
        chartOptions: list[TagValue] = [],  # noqa: B006 - mirrors ib_async's signature
        timeout: float = 60,
    ) -> BarDataList:
        outcome = self._begin("reqHistoricalData")
        req_id = self._req_id()
        bars = BarDataList()
        bars.reqId, bars.contract, bars.endDateTime = req_id, contract, endDateTime
        bars.durationStr, bars.barSizeSetting, bars.whatToShow = (
            durationStr,
            barSizeSetting,
            whatToShow,
        )
        bars.useRTH, bars.formatDate, bars.keepUpToDate = useRTH, formatDate, keepUpToDate
        bars.chartOptions = chartOptions or []
        invalid = _invalid_history_request(durationStr, barSizeSetting, whatToShow)
        if invalid:
            outcome = _Fail(321, invalid)
        if outcome == _TIMEOUT or self._answer_fails(outcome, req_id, contract):
            return self._block(timeout, bars)
        if isinstance(outcome, _Fail):
            return bars
        listing = self._find(contract)
        if listing is None:
            self.errorEvent.emit(req_id, 200, NO_SECURITY_DEFINITION, contract)
            return bars
        wire_end = util.formatIBDatetime(endDateTime)
        key = (listing.contract.conId, wire_end, durationStr, barSizeSetting, whatToShow, useRTH)
        now = self._clock()
        if now - self._recent_history.get(key, -math.inf) < PACING_WINDOW_SECONDS:
            self.errorEvent.emit(req_id, 162, PACING_VIOLATION, contract)
            return bars
        self._recent_history[key] = now
        end = self._end_date(wire_end)
        start = end - _span(durationStr)
        selected = [b for b in listing.bars if start < b.date <= end]
        selected += [b for b in listing.bars if b.date > end][: self.bars_past_end]
        if not selected:
            message = HMDS_NO_DATA.format(symbol=contract.symbol, exchange=contract.exchange)
            self.errorEvent.emit(req_id, 162, message, contract)
            return bars
        bars.extend(dataclasses.replace(b) for b in selected)
        return bars

    @_recorded
    def reqMatchingSymbols(self, pattern: str) -> list[ContractDescription]:
        outcome = self._begin("reqMatchingSymbols")
        req_id = self._req_id()
        if outcome == _TIMEOUT or self._answer_fails(outcome, req_id, None):
            return self._block(MATCHING_SYMBOLS_TIMEOUT, None)
        if isinstance(outcome, _Fail):
            return []
        found = []
        for listing in self._listings:
            c = listing.contract
            if c.symbol.startswith(pattern.upper()) or pattern.lower() in c.description.lower():
                # The decoder builds a plain Contract with only these fields set.
                contract = Contract(
                    conId=c.conId,
                    symbol=c.symbol,
                    secType=c.secType,
                    primaryExchange=c.primaryExchange,
                    currency=c.currency,
                    description=c.description,
                )
                found.append(ContractDescription(contract, derivativeSecTypes=["OPT", "WAR"]))
        return found

    # -- the ib_async.IB order surface --------------------------------------------------------
    # These six are ib_async's own code; they only touch the client state and the Client.

    bracketOrder = _recorded(IB.bracketOrder)
    placeOrder = _recorded(IB.placeOrder)
    cancelOrder = _recorded(IB.cancelOrder)
    trades = _recorded(IB.trades)
    openTrades = _recorded(IB.openTrades)
    fills = _recorded(IB.fills)
    positions = _recorded(IB.positions)

    @_recorded
    def reqAllOpenOrders(self) -> list[Trade]:
        return self._answer("reqAllOpenOrders", "openOrders", self._send_open_orders)

    @_recorded
    def reqCompletedOrders(self, apiOnly: bool) -> list[Trade]:
        return self._answer(
            "reqCompletedOrders", "completedOrders", lambda _key: self._send_completed(apiOnly)
        )

    @_recorded
    def reqExecutions(self, execFilter: ExecutionFilter | None = None) -> list[Fill]:
        return self._answer(
            "reqExecutions", None, lambda key: self._send_executions(key, execFilter)
        )

    @_recorded
    def reqPositions(self) -> list[Position]:
        return self._answer("reqPositions", "positions", self._send_positions)

    @_recorded
    def accountSummary(self, account: str = "") -> list[AccountValue]:
        if not self.wrapper.acctSummary:  # loaded on demand, then kept updated by TWS
            self._answer("accountSummary", None, self._send_account_summary)
        values = self.wrapper.acctSummary.values()
        return [v for v in values if not account or v.account == account]

    # -- internals --------------------------------------------------------------------------

    def _queue_connect_failure(
        self, make: Callable[[str, int], BaseException], times: int | None
    ) -> None:
        if times is None:
            self._always_fail = make
        else:
            self._connect_failures.extend([make] * times)

    def _begin(self, method: str) -> object:
        """What happens to this request; raises like ib_async when there is no connection.

        A blocking call runs the client's event loop, so what TWS sent before is processed.
        """
        if not self._connected:
            raise ConnectionError("Not connected")
        if self._socket_broken:  # the loop notices the closed socket; pending requests fail
            self.drop_connection()
            raise ConnectionError("Socket disconnect")
        self._pump()
        outcome = self._scripted[method].popleft() if self._scripted[method] else None
        if outcome == _DROP:
            self.drop_connection()
            raise ConnectionError("Socket disconnect")
        return outcome

    def _req_id(self) -> int:
        return self.client.getReqId()  # ib_async draws request and order ids from one sequence

    def _answer_fails(self, outcome: object, req_id: int, contract: Contract | None) -> bool:
        """Fire a scripted error; True when ib_async keeps waiting (warning or session error)."""
        if not isinstance(outcome, _Fail):
            return False
        if outcome.code in SESSION_CODES:
            self.errorEvent.emit(-1, outcome.code, outcome.message, None)
            return True
        self.errorEvent.emit(req_id, outcome.code, outcome.message, contract)
        return outcome.code in WARNING_CODES or 2100 <= outcome.code < 2200

    def _block(self, timeout: float | None, on_timeout: Any = None) -> Any:
        """No answer comes: the request's own timeout wins, else ``IB.RequestTimeout``."""
        own = timeout or math.inf
        outer = self.RequestTimeout or math.inf
        if own == outer == math.inf:
            raise AssertionError("the real IB call would block forever (no timeout set)")
        if outer <= own:
            raise asyncio.TimeoutError()
        if isinstance(on_timeout, list):
            on_timeout.clear()
        return on_timeout

    def _find(self, contract: Contract) -> _Listing | None:
        for listing in self._listings:
            c = listing.contract
            if contract.conId:
                if contract.conId == c.conId:
                    return listing
                continue
            if (
                contract.symbol == c.symbol
                and contract.secType in ("", c.secType)
                and contract.currency in ("", c.currency)
                and contract.exchange in ("", "SMART", c.primaryExchange)
                and contract.primaryExchange in ("", c.primaryExchange)
            ):
                return listing
        return None

    def _end_date(self, wire_end: str) -> dt.date:
        """The exchange-local date of the ``endDateTime`` string the client put on the wire."""
        if not wire_end:
            return dt.datetime.now(self.exchange_timezone).date()
        match = _WIRE_END.match(wire_end)
        assert match, f"TWS rejects endDateTime {wire_end!r}"
        day, sep, clock, zone = match.groups()
        # No zone means the TWS login timezone; the fake logs in at the exchange.
        tz = dt.timezone.utc if sep == "-" else ZoneInfo(zone or str(self.exchange_timezone))
        moment = dt.datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S").replace(tzinfo=tz)
        return moment.astimezone(self.exchange_timezone).date()

    # -- internals: sessions and requests --------------------------------------------------

    def _end_session(self) -> None:
        self._connected = False
        self._socket_broken = False
        self._outbox.clear()  # what was still in flight is lost with the socket
        self._summary_req_id = None
        self.wrapper.setEventsDone()

    def _pump(self) -> None:
        """The client's event loop runs: the wrapper processes everything TWS sent so far."""
        if not self._outbox:
            return
        self.wrapper.tcpDataArrived()
        while self._outbox:
            self._outbox.pop(0)()
        self.wrapper.tcpDataProcessed()

    def _answer(self, method: str, key: Any, respond: Callable[[Any], None]) -> Any:
        """A blocking request: ``Wrapper.startReq`` bookkeeping, TWS's answer, the result.

        ``key`` None draws a request id. Supports ``time_out_next`` and ``drop_during_next``.
        """
        outcome = self._begin(method)
        assert not isinstance(outcome, _Fail), f"fail_next is not modelled for {method}"
        if key is None:
            key = self._req_id()
        if outcome == _TIMEOUT:
            return self._block(None)
        return self._collect(key, respond)

    def _collect(self, key: Any, respond: Callable[[Any], None]) -> Any:
        reply = _Reply()
        self.wrapper._futures[key] = reply  # type: ignore[assignment]
        self.wrapper._results[key] = []
        respond(key)
        assert reply.done(), "TWS did not end the request"
        return reply.result()

    def _startup_sync(self, readonly: bool, fetch: StartupFetch) -> None:
        """What ``IB.connectAsync`` requests before it reports the connection ready."""
        self._collect("positions", self._send_positions)
        if not readonly and fetch & StartupFetch.ORDERS_OPEN:  # reqOpenOrders: this client's
            self._collect("openOrders", lambda key: self._send_open_orders(key, own_only=True))
        if not readonly and fetch & StartupFetch.ORDERS_COMPLETE:
            self._collect("completedOrders", lambda _key: self._send_completed(False))
        if fetch & StartupFetch.EXECUTIONS:
            self._collect(self._req_id(), lambda key: self._send_executions(key, None))

    def _send_open_orders(self, _key: Any, own_only: bool = False) -> None:
        for so in self.server_orders:
            if so.transmitted and not so.is_done:
                if not own_only or so.client_id == self.wrapper.clientId:
                    for message in self._order_messages(so):
                        message()
        self.wrapper.openOrderEnd()

    def _send_completed(self, api_only: bool) -> None:
        for so in self.server_orders:  # every order here came through the API
            if so.transmitted and so.is_done:
                self.wrapper.completedOrder(*self._completed_order(so))
        self.wrapper.completedOrdersEnd()

    def _send_executions(self, req_id: int, execution_filter: ExecutionFilter | None) -> None:
        wanted = execution_filter or ExecutionFilter()
        for record in self.server_executions:
            if _matches(wanted, record):
                for message in self._execution_messages(req_id, record):
                    message()
        self.wrapper.execDetailsEnd(req_id)

    def _send_positions(self, _key: Any) -> None:
        for holding in self._holdings.values():  # size 0 too: closed today
            self.wrapper.position(
                self.account,
                dataclasses.replace(holding.contract),
                holding.quantity,
                holding.avg_cost,
            )
        self.wrapper.positionEnd()

    def _send_account_summary(self, req_id: int) -> None:
        self._summary_req_id = req_id
        for message in self._account_messages(req_id):
            message()
        self.wrapper.accountSummaryEnd(req_id)

    # -- internals: the fake TWS's order book ---------------------------------------------

    def _receive_order(self, order_id: int, contract: Contract, order: Order) -> None:
        self._received += 1
        plan, detail = self._order_plan.pop(self._received, ("accept", ""))
        client_id = self.wrapper.clientId
        self._next_valid_id = max(self._next_valid_id, order_id + 1)
        so = self._find_server_order(client_id, order_id)
        if so is not None:  # a modification of an order TWS has
            assert not so.is_done, "TWS refuses to modify a done order"
            so.order = _wire_order(order, orderId=order_id, clientId=client_id, permId=so.perm_id)
            if so.transmitted:
                self._push_order(so)
        else:
            so = ServerOrder(
                client_id=client_id,
                order_id=order_id,
                perm_id=self._next_perm_id,
                contract=_wire_contract(contract, contract.exchange),
                order=_wire_order(order, orderId=order_id, clientId=client_id),
                reject_with=detail if plan == "reject" else None,
            )
            self._next_perm_id += 1
            so.order.permId = so.perm_id
            parent = self._parent_of(so)
            if parent is not None:
                so.order.parentPermId = parent.perm_id
            self.server_orders.append(so)
            if order.transmit:
                self._transmit(so)
        if plan == "drop":
            self._socket_broken = True

    def _transmit(self, so: ServerOrder) -> None:
        """A ``transmit=True`` order releases its held parent group, parent first."""
        root = self._parent_of(so) or so
        group = [root, *self._children_of(root)] if root is not so else [so]
        for member in group:
            if member.transmitted:
                continue
            member.transmitted = True
            parent = self._parent_of(member)
            if member.reject_with is not None:
                self._reject(member, member.reject_with)
            elif parent is not None and parent.is_done and parent.status != OrderStatus.Filled:
                self._cancel(member, "parent order was not accepted")
            else:
                held = parent is not None and parent.status != OrderStatus.Filled
                member.status = OrderStatus.PreSubmitted if held else OrderStatus.Submitted
                self._push_order(member)

    def _reject(self, so: ServerOrder, reason: str) -> None:
        so.status, so.reason = OrderStatus.Inactive, reason
        if self._reaches_client(so):
            self._outbox.append(functools.partial(self.wrapper.error, so.order_id, 201, reason, ""))
        self._push_order(so)
        for child in self._children_of(so):
            if child.transmitted and not child.is_done:
                self._cancel(child, "parent order was rejected")

    def _cancel(self, so: ServerOrder, reason: str, notify: bool = True) -> None:
        so.status, so.reason = OrderStatus.Cancelled, reason or so.reason
        if notify and self._reaches_client(so):
            message = ORDER_CANCELED + reason
            self._outbox.append(
                functools.partial(self.wrapper.error, so.order_id, 202, message, "")
            )
        self._push_order(so)
        for child in self._children_of(so):
            if child.transmitted and not child.is_done:
                self._cancel(child, reason, notify)

    def _receive_cancel(self, order_id: int) -> None:
        client_id = self.wrapper.clientId
        so = self._find_server_order(client_id, order_id)
        if so is None:
            message = CANCEL_NOT_FOUND.format(order_id=order_id)
            self._outbox.append(functools.partial(self.wrapper.error, order_id, 10147, message, ""))
        elif not so.transmitted:
            self.server_orders.remove(so)  # never left TWS; IB.cancelOrder marks it Cancelled
        elif so.is_done:
            message = CANNOT_CANCEL.format(order_id=order_id, status=so.status)
            self._outbox.append(functools.partial(self.wrapper.error, order_id, 10148, message, ""))
        else:
            self._cancel(so, "")

    def _book(
        self, so: ServerOrder, shares: float, price: float, commission: float
    ) -> tuple[_Holding, float | None]:
        """Update position, cash and realized P&L; IB's average cost includes commissions."""
        conid = so.contract.conId
        exchange = self._listing_for(so.contract.symbol).contract.primaryExchange
        holding = self._holdings.setdefault(conid, _Holding(_wire_contract(so.contract, exchange)))
        signed = shares if so.order.action == "BUY" else -shares
        realized: float | None = None
        if holding.quantity == 0 or (holding.quantity > 0) == (signed > 0):
            cost = holding.avg_cost * abs(holding.quantity) + price * shares + commission
            holding.quantity += signed
            holding.avg_cost = cost / abs(holding.quantity)
        else:
            closing = min(shares, abs(holding.quantity))
            direction = 1 if holding.quantity > 0 else -1
            realized = (price - holding.avg_cost) * closing * direction - commission
            holding.quantity += signed
            if holding.quantity == 0:
                holding.avg_cost = 0.0
            elif (holding.quantity > 0) != (direction > 0):  # crossed through zero
                holding.avg_cost = price
            self._realized += realized
        self._cash -= signed * price + commission
        return holding, realized

    def _fill_price(self, so: ServerOrder) -> float:
        if so.order.orderType == "LMT":
            return float(so.order.lmtPrice)  # type: ignore[arg-type]
        if so.order.orderType == "STP":
            return float(so.order.auxPrice)  # type: ignore[arg-type]
        symbol = so.contract.symbol
        if symbol in self._prices:
            return self._prices[symbol]
        bars = self._listing_for(symbol).bars
        return bars[-1].close if bars else 100.0

    # -- internals: what TWS sends ----------------------------------------------------------

    def _reaches_client(self, so: ServerOrder) -> bool:
        """TWS pushes order updates to the connected client that placed the order."""
        return self._connected and so.client_id == self.wrapper.clientId

    def _push_order(self, so: ServerOrder) -> None:
        if self._reaches_client(so):
            self._outbox.extend(self._order_messages(so))

    def _push_position(self, holding: _Holding) -> None:
        if self._connected:  # every session subscribes to positions at connect
            args = (self.account, dataclasses.replace(holding.contract))
            self._outbox.append(
                functools.partial(self.wrapper.position, *args, holding.quantity, holding.avg_cost)
            )

    def _push_account(self) -> None:
        if self._connected and self._summary_req_id is not None:
            self._outbox.extend(self._account_messages(self._summary_req_id))

    def _order_messages(self, so: ServerOrder) -> list[Callable[[], None]]:
        """``openOrder`` then ``orderStatus``, with the values of this moment."""
        order = _wire_order(so.order)
        contract = _wire_contract(so.contract, so.contract.exchange)
        state = OrderState(status=so.status)
        status = (
            so.order_id,
            so.status,
            so.filled,
            so.remaining,
            so.avg_price,
            so.perm_id,
            so.order.parentId,
            so.last_price,
            so.client_id,
            "",
            0.0,
        )
        return [
            functools.partial(self.wrapper.openOrder, so.order_id, contract, order, state),
            functools.partial(self.wrapper.orderStatus, *status),
        ]

    def _execution_messages(self, req_id: int, record: _Execution) -> list[Callable[[], None]]:
        contract = dataclasses.replace(record.contract)
        execution = dataclasses.replace(record.execution)
        report = dataclasses.replace(record.report)
        return [
            functools.partial(self.wrapper.execDetails, req_id, contract, execution),
            functools.partial(self.wrapper.commissionReport, report),
        ]

    def _account_messages(self, req_id: int) -> list[Callable[[], None]]:
        invested = sum(h.quantity * h.avg_cost for h in self._holdings.values())
        values = [
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", f"{self._cash + invested:.2f}", "USD"),
            ("TotalCashValue", f"{self._cash:.2f}", "USD"),
            ("BuyingPower", f"{4 * (self._cash + invested):.2f}", "USD"),
        ]
        for currency in ("BASE", "USD"):  # the $LEDGER:ALL tags
            values += [
                ("CashBalance", f"{self._cash:.2f}", currency),
                ("RealizedPnL", f"{self._realized:.2f}", currency),
            ]
        return [
            functools.partial(self.wrapper.accountSummary, req_id, self.account, *value)
            for value in values
        ]

    def _completed_order(self, so: ServerOrder) -> tuple[Contract, Order, OrderState]:
        """A done order as the ``completedOrder`` message decodes: no orderId/clientId/parentId."""
        fields = {name: copy.deepcopy(getattr(so.order, name)) for name in _COMPLETED_FIELDS}
        order = Order(**fields, filledQuantity=so.filled, parentPermId=so.order.parentPermId)
        contract = _wire_contract(so.contract, so.contract.exchange)
        state = OrderState(status=so.status, completedStatus=so.reason or so.status)
        return contract, order, state

    # -- internals: lookups -----------------------------------------------------------------

    def _find_server_order(self, client_id: int, order_id: int) -> ServerOrder | None:
        return next(
            (o for o in self.server_orders if (o.client_id, o.order_id) == (client_id, order_id)),
            None,
        )

    def _parent_of(self, so: ServerOrder) -> ServerOrder | None:
        if not so.order.parentId:
            return None
        return self._find_server_order(so.client_id, so.order.parentId)

    def _children_of(self, so: ServerOrder) -> list[ServerOrder]:
        return [
            o
            for o in self.server_orders
            if o.client_id == so.client_id and o.order.parentId == so.order_id and o is not so
        ]

    def _listing_for(self, symbol: str) -> _Listing:
        return next(listing for listing in self._listings if listing.contract.symbol == symbol)


# Order fields the ``completedOrder`` message carries (ib_async's Decoder.completedOrder).
_COMPLETED_FIELDS = (
    "action",
    "totalQuantity",
    "orderType",
    "lmtPrice",
    "auxPrice",
    "tif",
    "ocaGroup",
    "account",
    "openClose",
    "origin",
    "orderRef",
    "permId",
    "outsideRth",
    "hidden",
    "goodAfterTime",
    "goodTillDate",
    "ocaType",
)


def _wire_order(order: Order, **changes: Any) -> Order:
    """A plain ``Order`` with the same fields: what TWS keeps and what the decoder builds."""
    values = {f.name: copy.deepcopy(getattr(order, f.name)) for f in dataclasses.fields(Order)}
    values.update(changes)
    return Order(**values)


def _wire_contract(contract: Contract, exchange: str) -> Contract:
    """The contract fields TWS sends back with orders, executions and positions."""
    return Contract(
        conId=contract.conId,
        symbol=contract.symbol,
        secType=contract.secType,
        exchange=exchange,
        currency=contract.currency,
        localSymbol=contract.localSymbol,
        tradingClass=contract.tradingClass,
    )


def _matches(wanted: ExecutionFilter, record: _Execution) -> bool:
    """TWS's execution filter: empty / zero fields match everything."""
    execution, contract = record.execution, record.contract
    side = {"BOT": "BUY", "SLD": "SELL"}[execution.side]
    checks = (
        (wanted.clientId, execution.clientId),
        (wanted.acctCode, execution.acctNumber),
        (wanted.symbol, contract.symbol),
        (wanted.secType, contract.secType),
        (wanted.exchange, execution.exchange),
        (wanted.side, side),
    )
    return all(not want or want == have for want, have in checks)


def _invalid_history_request(duration: str, bar_size: str, what: str) -> str | None:
    match = _DURATION.match(duration)
    if not match:
        return INVALID_REQUEST.format(detail=f"Invalid duration format {duration!r}")
    if match.group(2) == "D" and int(match.group(1)) > 365:
        return DURATION_IN_YEARS
    if bar_size not in BAR_SIZES:
        return INVALID_REQUEST.format(detail=f"Invalid bar size {bar_size!r}")
    if what not in WHAT_TO_SHOW:
        return INVALID_REQUEST.format(detail=f"Invalid whatToShow {what!r}")
    return None


def _span(duration: str) -> dt.timedelta:
    count, unit = _DURATION.match(duration).groups()  # type: ignore[union-attr]
    if unit == "S":
        return dt.timedelta(days=math.ceil(int(count) / 86_400))
    return dt.timedelta(days=int(count) * _DAYS_PER_UNIT[unit])
