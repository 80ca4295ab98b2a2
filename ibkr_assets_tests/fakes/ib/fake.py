"""``FakeIB``: one object with the state of the client and of TWS, one mixin per concern."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from eventkit import Event
from ib_async import IB
from ib_async.wrapper import Wrapper

from ibkr_assets_tests.fakes.ib.account import ACCOUNT, AccountMixin, _Holding
from ibkr_assets_tests.fakes.ib.client import Call, FakeClient, RequestsMixin
from ibkr_assets_tests.fakes.ib.connection import ConnectionMixin
from ibkr_assets_tests.fakes.ib.executions import ExecutionsMixin, _Execution
from ibkr_assets_tests.fakes.ib.market_data import MarketDataMixin, _Listing
from ibkr_assets_tests.fakes.ib.tws_orders import ServerOrder, TwsOrdersMixin


class FakeIB(
    ConnectionMixin,
    MarketDataMixin,
    TwsOrdersMixin,
    ExecutionsMixin,
    AccountMixin,
    RequestsMixin,
):
    """Stands in for ``ib_async.IB``; script it, call it like the real one, read ``calls``."""

    RequestTimeout: float = 0
    RaiseRequestErrors: bool = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        for name in IB.events:
            setattr(self, name, Event(name))
        self.calls: list[Call] = []
        # Also send this many bars dated after endDateTime (a look-ahead trap for the caller).
        self.bars_past_end = 0
        # The account TWS reports; IB paper accounts start with "D", live ones do not.
        self.account = ACCOUNT
        self.wrapper = Wrapper(self)
        self.client = FakeClient(self)
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
