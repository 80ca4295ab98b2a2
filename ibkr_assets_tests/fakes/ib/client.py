"""The client side of the fake: ib_async's ``Client`` and event loop, and how a request runs.

``IB``'s order methods are ib_async's own code; they send through ``FakeClient``, which hands
each message to the fake TWS at once. Everything TWS answers is a call on a real
``ib_async.wrapper.Wrapper``, queued until the client runs its event loop, here at the next
blocking call (``_pump``). A blocking request registers a ``_Reply`` where ``Wrapper.startReq``
would create a future, and returns what the wrapper collected.

* Every request raises ``ConnectionError("Not connected")`` when not connected, and
  ``ConnectionError("Socket disconnect")`` when the socket drops mid-request.
* Errors tied to no request (1100, 1300, 2110) come with reqId -1 and do not end a request.
* A request TWS never answers ends at its own timeout, unless ``IB.RequestTimeout`` is
  shorter, which raises ``asyncio.TimeoutError``; with neither the real call would block
  forever, which the fake reports as an ``AssertionError``.

Also here: ``Call`` and ``recorded``, which log every call made on the fake, and the wire
helpers that copy orders and contracts the way TWS sends them back.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ib_async import Contract, Order

if TYPE_CHECKING:
    from ibkr_assets_tests.fakes.ib.fake import FakeIB

# Codes ib_async's Wrapper.error treats as warnings: the request stays open.
WARNING_CODES = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})
# Codes TWS sends with reqId -1: they concern the session, not one request.
SESSION_CODES = frozenset({1100, 1300, 2110})
TIMEOUT = "timeout"
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
class Fail:
    code: int
    message: str


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
class FakeClient:
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


def recorded(method: Callable[..., Any]) -> Callable[..., Any]:
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


class RequestsMixin:
    """Scripted outcomes, the client's event loop and the life of one blocking request."""

    # -- scripting --------------------------------------------------------------------------

    def fail_next(self, method: str, code: int, message: str) -> None:
        """TWS answers the next ``method`` call with error ``code``."""
        self._scripted[method].append(Fail(code, message))

    def time_out_next(self, method: str) -> None:
        """TWS never answers the next ``method`` call."""
        self._scripted[method].append(TIMEOUT)

    def drop_during_next(self, method: str) -> None:
        """The socket closes while the next ``method`` call waits for its answer."""
        self._scripted[method].append(_DROP)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # -- internals: requests ----------------------------------------------------------------

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
        if not isinstance(outcome, Fail):
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
        assert not isinstance(outcome, Fail), f"fail_next is not modelled for {method}"
        if key is None:
            key = self._req_id()
        if outcome == TIMEOUT:
            return self._block(None)
        return self._collect(key, respond)

    def _collect(self, key: Any, respond: Callable[[Any], None]) -> Any:
        reply = _Reply()
        self.wrapper._futures[key] = reply  # type: ignore[assignment]
        self.wrapper._results[key] = []
        respond(key)
        assert reply.done(), "TWS did not end the request"
        return reply.result()


def wire_order(order: Order, **changes: Any) -> Order:
    """A plain ``Order`` with the same fields: what TWS keeps and what the decoder builds."""
    values = {f.name: copy.deepcopy(getattr(order, f.name)) for f in dataclasses.fields(Order)}
    values.update(changes)
    return Order(**values)


def wire_contract(contract: Contract, exchange: str) -> Contract:
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
