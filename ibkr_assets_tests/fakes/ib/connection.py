"""Sessions: connect, disconnect, a dropped socket, and connection failures to script.

* ``connect`` raises what the real one raises: ``ConnectionRefusedError`` when nothing listens,
  ``asyncio.TimeoutError`` when the API handshake does not complete. On success TWS sends the
  farm notices 2104/2106/2158 (reqId -1) on ``errorEvent``.
* ``connect`` syncs like ``IB.connectAsync``: positions always; open orders, completed orders
  and executions as ``fetchFields`` asks (order data only when not ``readonly``).
* A dropped socket loses whatever was in flight, and the wrapper resets (no trades, fills or
  positions until the next session syncs). TWS keeps its orders, executions and positions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ib_async import StartupFetch, StartupFetchALL

from ibkr_assets_tests.fakes.ib.client import recorded

if TYPE_CHECKING:
    from ibkr_assets_tests.fakes.ib.fake import FakeIB

CONNECTIVITY_LOST = "Connectivity between IB and Trader Workstation has been lost."
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


class ConnectionMixin:
    """``connect``/``disconnect``/``isConnected``, failure injection and the startup sync."""

    # -- scripting --------------------------------------------------------------------------

    def refuse_connections(self, times: int | None = None) -> None:
        """The next ``times`` connects (all when None) find nothing listening on the port."""

        def refused(host: str, port: int) -> BaseException:
            return ConnectionRefusedError(111, f"Connect call failed ('{host}', {port})")

        self._queue_connect_failure(refused, times)

    def time_out_connections(self, times: int | None = None) -> None:
        """The next ``times`` connects (all when None) get no API handshake in time."""
        self._queue_connect_failure(lambda _host, _port: asyncio.TimeoutError(), times)

    def drop_connection(self) -> None:
        """The socket closes now (Gateway restarted, network down)."""
        if self._connected:
            self._end_session()
            self.wrapper.connectionClosed()  # fails pending requests, resets session state
            self.disconnectedEvent.emit()

    # -- the ib_async.IB surface ------------------------------------------------------------

    @recorded
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

    @recorded
    def disconnect(self) -> str | None:
        if not self._connected:
            return None
        self._end_session()
        self.disconnectedEvent.emit()
        self.wrapper.reset()  # IB.disconnect clears all session state
        return "Disconnecting from fake IB"

    @recorded
    def isConnected(self) -> bool:
        return self._connected

    # -- internals: sessions ----------------------------------------------------------------

    def _queue_connect_failure(
        self, make: Callable[[str, int], BaseException], times: int | None
    ) -> None:
        if times is None:
            self._always_fail = make
        else:
            self._connect_failures.extend([make] * times)

    def _end_session(self) -> None:
        self._connected = False
        self._socket_broken = False
        self._outbox.clear()  # what was still in flight is lost with the socket
        self._summary_req_id = None
        self.wrapper.setEventsDone()

    def _startup_sync(self, readonly: bool, fetch: StartupFetch) -> None:
        """What ``IB.connectAsync`` requests before it reports the connection ready."""
        self._collect("positions", self._send_positions)
        if not readonly and fetch & StartupFetch.ORDERS_OPEN:  # reqOpenOrders: this client's
            self._collect("openOrders", lambda key: self._send_open_orders(key, own_only=True))
        if not readonly and fetch & StartupFetch.ORDERS_COMPLETE:
            self._collect("completedOrders", lambda _key: self._send_completed(False))
        if fetch & StartupFetch.EXECUTIONS:
            self._collect(self._req_id(), lambda key: self._send_executions(key, None))
