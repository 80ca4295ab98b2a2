"""A fake of the ``ib_async.IB`` methods that ``IbkrAdapter`` calls, faithful to ib_async 2.x.

It has the real signatures (a test compares them), returns real ib_async objects (``Contract``,
``BarDataList`` of ``BarData`` with ``datetime.date`` dates, ``ContractDescription``) and fires a
real ``eventkit.Event`` as ``errorEvent`` with ``(reqId, errorCode, errorString, contract)``,
before the blocking call returns, as ib_async's ``Wrapper.error`` does.

Orders. The fake plays TWS; the client side is ib_async's own code. ``placeOrder``,
``cancelOrder``, ``bracketOrder``, ``trades``, ``openTrades``, ``fills`` and ``positions`` are
``ib_async.IB``'s methods, running against a fake ``Client`` that hands each message to the fake
TWS, and everything TWS answers goes through a real ``ib_async.wrapper.Wrapper``. So ``Trade``,
``OrderStatus``, ``Fill``, ``Execution`` and ``CommissionReport`` objects, trade logs and the
``orderStatusEvent`` / ``execDetailsEvent`` / ``commissionReportEvent`` / ``errorEvent`` emissions
are ib_async's.

``FakeIB`` (in ``fake``) holds the state of the client and of TWS; each concern is a mixin,
whose module describes the behaviour it models on ib_async and TWS:

* ``connection``: connect, disconnect, failures to connect, a dropped socket, the startup sync.
* ``market_data``: contracts and listings, ``qualifyContracts``, ``reqHistoricalData`` and its
  request validation, ``reqMatchingSymbols``.
* ``tws_orders``: TWS's order book: placing, transmitting, rejecting and cancelling orders,
  open and completed orders.
* ``executions``: fills of working orders, ``reqExecutions``.
* ``account``: positions, cash, realized P&L and the account summary.
* ``client``: the fake ``Client``, the client's event loop, how a blocking request runs
  (scripted errors, timeouts, a socket dropped mid-request), the call log, wire helpers.
"""

from ibkr_assets_tests.fakes.ib.account import ACCOUNT
from ibkr_assets_tests.fakes.ib.client import Call
from ibkr_assets_tests.fakes.ib.connection import CONNECTIVITY_LOST, FARM_NOTICES
from ibkr_assets_tests.fakes.ib.fake import FakeIB
from ibkr_assets_tests.fakes.ib.market_data import (
    DURATION_IN_YEARS,
    HMDS_NO_DATA,
    INVALID_REQUEST,
    NO_SECURITY_DEFINITION,
    PACING_VIOLATION,
    weekday_bars,
)
from ibkr_assets_tests.fakes.ib.tws_orders import (
    CANCEL_NOT_FOUND,
    CANNOT_CANCEL,
    ORDER_CANCELED,
    ORDER_REJECTED,
    ORDER_WARNING,
    ServerOrder,
)

__all__ = [
    "ACCOUNT",
    "CANCEL_NOT_FOUND",
    "CANNOT_CANCEL",
    "CONNECTIVITY_LOST",
    "DURATION_IN_YEARS",
    "FARM_NOTICES",
    "HMDS_NO_DATA",
    "INVALID_REQUEST",
    "NO_SECURITY_DEFINITION",
    "ORDER_CANCELED",
    "ORDER_REJECTED",
    "ORDER_WARNING",
    "PACING_VIOLATION",
    "Call",
    "FakeIB",
    "ServerOrder",
    "weekday_bars",
]
