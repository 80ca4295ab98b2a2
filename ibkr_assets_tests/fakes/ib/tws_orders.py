"""TWS's order book: orders placed, held, transmitted, rejected, cancelled, and listed.

The fake plays TWS; ``placeOrder``, ``cancelOrder`` and ``bracketOrder`` are ``ib_async.IB``'s
own methods, and every message TWS answers goes through ib_async's ``Wrapper``, so ``Trade``
and ``OrderStatus`` objects, trade logs and the ``orderStatusEvent`` / ``errorEvent`` emissions
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
* ``reqAllOpenOrders`` lists transmitted open orders of every client, ``reqCompletedOrders``
  done ones as TWS encodes them (orderId, clientId and parentId 0; ``parentPermId`` and
  ``filledQuantity`` set).

Wording of the order messages follows what TWS sends; the 10147/10148 texts are approximate.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ib_async import IB, Contract, Order, OrderState, OrderStatus, Trade

from ibkr_assets_tests.fakes.ib.client import recorded, wire_contract, wire_order

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


class TwsOrdersMixin:
    """Scripting what TWS does with orders, ``IB``'s order surface, and TWS's order book."""

    # -- scripting --------------------------------------------------------------------------

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

    def server_orders_for(self, order_ref: str) -> list[ServerOrder]:
        """The orders TWS holds with this ``orderRef``, in the order they arrived."""
        return [o for o in self.server_orders if o.order_ref == order_ref]

    def server_order(self, perm_id: int) -> ServerOrder:
        return next(o for o in self.server_orders if o.perm_id == perm_id)

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

    # -- the ib_async.IB order surface --------------------------------------------------------
    # These are ib_async's own code; they only touch the client state and the Client.

    bracketOrder = recorded(IB.bracketOrder)
    placeOrder = recorded(IB.placeOrder)
    cancelOrder = recorded(IB.cancelOrder)
    trades = recorded(IB.trades)
    openTrades = recorded(IB.openTrades)

    @recorded
    def reqAllOpenOrders(self) -> list[Trade]:
        return self._answer("reqAllOpenOrders", "openOrders", self._send_open_orders)

    @recorded
    def reqCompletedOrders(self, apiOnly: bool) -> list[Trade]:
        return self._answer(
            "reqCompletedOrders", "completedOrders", lambda _key: self._send_completed(apiOnly)
        )

    # -- internals: the order book ----------------------------------------------------------

    def _receive_order(self, order_id: int, contract: Contract, order: Order) -> None:
        self._received += 1
        plan, detail = self._order_plan.pop(self._received, ("accept", ""))
        client_id = self.wrapper.clientId
        self._next_valid_id = max(self._next_valid_id, order_id + 1)
        so = self._find_server_order(client_id, order_id)
        if so is not None:  # a modification of an order TWS has
            assert not so.is_done, "TWS refuses to modify a done order"
            so.order = wire_order(order, orderId=order_id, clientId=client_id, permId=so.perm_id)
            if so.transmitted:
                self._push_order(so)
        else:
            so = ServerOrder(
                client_id=client_id,
                order_id=order_id,
                perm_id=self._next_perm_id,
                contract=wire_contract(contract, contract.exchange),
                order=wire_order(order, orderId=order_id, clientId=client_id),
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

    # -- internals: what TWS sends about orders ---------------------------------------------

    def _reaches_client(self, so: ServerOrder) -> bool:
        """TWS pushes order updates to the connected client that placed the order."""
        return self._connected and so.client_id == self.wrapper.clientId

    def _push_order(self, so: ServerOrder) -> None:
        if self._reaches_client(so):
            self._outbox.extend(self._order_messages(so))

    def _order_messages(self, so: ServerOrder) -> list[Callable[[], None]]:
        """``openOrder`` then ``orderStatus``, with the values of this moment."""
        order = wire_order(so.order)
        contract = wire_contract(so.contract, so.contract.exchange)
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

    def _completed_order(self, so: ServerOrder) -> tuple[Contract, Order, OrderState]:
        """A done order as the ``completedOrder`` message decodes: no orderId/clientId/parentId."""
        fields = {name: copy.deepcopy(getattr(so.order, name)) for name in _COMPLETED_FIELDS}
        order = Order(**fields, filledQuantity=so.filled, parentPermId=so.order.parentPermId)
        contract = wire_contract(so.contract, so.contract.exchange)
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
