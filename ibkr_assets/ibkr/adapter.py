"""The one adapter between this project and ``ib_async.IB`` (IB Gateway / TWS).

Everything above this module sees bar frames and ``ibkr_assets.ibkr.errors`` errors, never
ib_async objects or IB error codes. The adapter owns the connection (bounded retries with
exponential backoff, reconnect on the next call after a drop) and turns what ib_async reports
into those errors. ib_async reports most failures out of band: a blocking call returns an empty
or unqualified result while ``IB.errorEvent`` fires ``(reqId, errorCode, errorString, contract)``.
So every call runs inside ``_request``, which collects those events and converts the exceptions
ib_async raises (``ConnectionError`` when the socket is down, ``TimeoutError`` when
``IB.RequestTimeout`` expires).

Order methods return ib_async objects (``Trade``, ``Fill``, ``Position``, ``AccountValue``); the
broker layer (``ibkr_assets.brokers.ibkr``) turns them into domain models. They need a session
with ``readonly=False``. Two ib_async facts shape them:

* ``placeOrder`` and ``cancelOrder`` only write to the socket; TWS's answers (acknowledgement,
  rejection with error 201, cancel confirmation) are processed when the event loop next runs.
  So after sending, the adapter makes one blocking round trip (``reqAllOpenOrders``): TWS
  answers it after it has handled the orders, so their state is known when the method returns,
  and a connection that broke meanwhile surfaces here as ``ConnectionError``.
* A reconnect starts an empty session (ib_async resets its trades, fills and positions), and
  orders that were never transmitted are invisible to the API. What TWS has is found again
  through ``reqAllOpenOrders`` (open, any client), ``reqCompletedOrders`` (done) and
  ``reqExecutions`` (fills): ``find_by_ref`` asks all three.

ib_async is imported lazily (it costs about 0.3 s), so importing this module stays cheap.

Longer than most modules: it is the one boundary to ib_async, kept in one place on purpose.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import pandas as pd

from ibkr_assets.domain.bars import empty_bars, normalize_bars, window_ending
from ibkr_assets.ibkr.errors import (
    GatewayError,
    GatewayUnavailableError,
    UnknownContractError,
)

if TYPE_CHECKING:
    from ib_async import AccountValue, Contract, Fill, Order, Position, Trade

log = logging.getLogger(__name__)

NO_SECURITY_DEFINITION = 200
HISTORICAL_DATA_ERROR = 162
CLIENT_ID_IN_USE = 326
ORDER_CANCELLED = 202  # "Order Canceled - reason:": TWS confirming a cancel
# Not connected (504), IB <-> TWS connectivity lost (1100), socket port reset (1300),
# TWS <-> server connectivity broken (2110).
CONNECTIVITY_CODES = frozenset({504, 1100, 1300, 2110})
# Notices that never mean a request failed: farm status 21xx (except 2110), HMDS query notice
# (165), query already cancelled (366), connectivity restored (1101, 1102), delayed data (10167).
_NOTICE_CODES = frozenset({165, 366, 1101, 1102, 10167})


class ReadonlySessionError(RuntimeError):
    """An order method was called on an adapter configured with ``readonly=True``."""


class IbError(NamedTuple):
    """One ``errorEvent`` from IB: request id (-1 when not tied to a request), code, text."""

    req_id: int
    code: int
    message: str

    def __str__(self) -> str:
        return f"error {self.code}: {self.message}"

    @property
    def is_notice(self) -> bool:
        """True for informational codes that do not mean the request failed."""
        return self.code in _NOTICE_CODES or (2100 <= self.code < 2200 and self.code != 2110)


@dataclass(frozen=True)
class IbkrConfig:
    """Where IB Gateway / TWS listens and how patiently to talk to it.

    ``readonly`` stays True for market data: the API session then cannot place orders.
    ``sync_account`` loads orders, executions and account updates at connect time, which
    order work needs and market data does not (it only slows the handshake).
    ``market_timezone`` is where a trading day ends, used to build ``endDateTime``.
    """

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 1
    connect_timeout: float = 4.0
    request_timeout: float = 30.0
    readonly: bool = True
    sync_account: bool = False
    connect_attempts: int = 3
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    market_timezone: str = "America/New_York"

    @property
    def endpoint(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def hard_timeout(self) -> float:
        """Outer bound for any blocking ib_async call (``IB.RequestTimeout``).

        Longer than both the historical-data timeout and the connect handshake (socket, API
        start, startup sync), so it only fires for calls with no timeout of their own, such as
        ``qualifyContracts``, which would otherwise wait forever.
        """
        return self.request_timeout + 4 * self.connect_timeout


def history_duration(bars: int) -> str:
    """An IB ``durationStr`` covering ``bars`` trading days, with room for weekends and holidays.

    IB rejects day counts above 365 (error 321: "durations longer than 365 days must be made in
    years"), so longer spans are rounded up to whole years.
    """
    days = math.ceil(bars * 1.5) + 10
    return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"


def _default_ib_factory() -> Any:
    from ib_async import IB

    return IB()


class IbkrAdapter:
    """A narrow, blocking facade over ``ib_async.IB`` that raises ``GatewayError`` subclasses.

    ``ib_factory`` builds the ``IB``-like object (default ``ib_async.IB``); tests pass a fake.
    ``sleep`` waits between connection attempts. The adapter connects on first use and again
    on the next call after the connection dropped.
    """

    def __init__(
        self,
        config: IbkrConfig | None = None,
        *,
        ib_factory: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config or IbkrConfig()
        self._ib_factory = ib_factory or _default_ib_factory
        self._sleep = sleep
        self._ib: Any = None
        self._sinks: list[list[IbError]] = []
        self._contracts: dict[tuple[str, str, str, str], Contract] = {}

    @property
    def config(self) -> IbkrConfig:
        return self._config

    @property
    def is_connected(self) -> bool:
        return self._ib is not None and self._ib.isConnected()

    def __enter__(self) -> IbkrAdapter:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect unless already connected, retrying with exponential backoff.

        Raises ``GatewayUnavailableError`` naming host:port and what to check when every attempt
        fails (connection refused, handshake timeout, client id in use, ...).
        """
        if self.is_connected:
            return
        from ib_async import StartupFetchALL, StartupFetchNONE

        ib = self._client()
        cfg = self._config
        attempts = max(1, cfg.connect_attempts)
        failure: BaseException | None = None
        reported: list[IbError] = []
        for attempt in range(1, attempts + 1):
            with self._capturing() as errors:
                try:
                    ib.connect(
                        host=cfg.host,
                        port=cfg.port,
                        clientId=cfg.client_id,
                        timeout=cfg.connect_timeout,
                        readonly=cfg.readonly,
                        fetchFields=StartupFetchALL if cfg.sync_account else StartupFetchNONE,
                    )
                    log.info("connected to IBKR at %s (client id %s)", cfg.endpoint, cfg.client_id)
                    return
                except (OSError, asyncio.TimeoutError) as exc:
                    failure, reported = exc, [e for e in errors if not e.is_notice]
            log.warning(
                "IBKR connect attempt %d/%d to %s failed: %r",
                attempt,
                attempts,
                cfg.endpoint,
                failure,
            )
            if attempt < attempts:
                self._sleep(min(cfg.backoff_max_seconds, cfg.backoff_seconds * 2 ** (attempt - 1)))
        assert failure is not None
        raise GatewayUnavailableError(self._unreachable_message(attempts, failure, reported))

    def close(self) -> None:
        """Disconnect; safe to call when not connected. The next request reconnects."""
        if self._ib is not None:
            self._ib.disconnect()

    # -- requests ---------------------------------------------------------------------------

    def qualify_stock(
        self,
        symbol: str,
        exchange: str = "SMART",
        currency: str = "USD",
        primary_exchange: str = "",
    ) -> Contract:
        """The stock's fully qualified contract (``conId`` set); cached, as conIds never change.

        Raises ``UnknownContractError`` when IB has no such stock (error 200) or several match
        (set ``primary_exchange`` then).
        """
        key = (symbol, exchange, currency, primary_exchange)
        if key in self._contracts:
            return self._contracts[key]
        from ib_async import Stock

        contract = Stock(symbol, exchange, currency, primaryExchange=primary_exchange)
        with self._request(f"the contract lookup for {symbol}") as errors:
            result = self._ib.qualifyContracts(contract)
        # ib_async 2.x puts None in the slot of a contract it could not qualify; 1.x dropped it.
        qualified = next((c for c in result if c is not None and c.conId), None)
        if qualified is None:
            raise self._unqualified_error(symbol, exchange, currency, errors)
        self._contracts[key] = qualified
        return qualified

    def daily_bars(self, symbol: str, end: dt.date, bars: int) -> pd.DataFrame:
        """The last ``bars`` daily TRADES bars (regular hours) dated on or before ``end``.

        Returns a bar frame, empty when IB has no bar in the window or did not answer within
        ``request_timeout`` (ib_async then returns an empty list). Never returns a bar dated
        after ``end``, whatever IB sends.
        """
        if bars < 1:
            raise ValueError(f"bars must be at least 1, got {bars}")
        contract = self.qualify_stock(symbol)
        end_of_day = dt.datetime.combine(
            end, dt.time(23, 59, 59), tzinfo=ZoneInfo(self._config.market_timezone)
        )
        with self._request(f"daily bars for {symbol}") as errors:
            received = self._ib.reqHistoricalData(
                contract,
                endDateTime=end_of_day,
                durationStr=history_duration(bars),
                barSizeSetting="1 day",
                whatToShow="TRADES",
                useRTH=True,
                formatDate=1,
                timeout=self._config.request_timeout,
            )
        if not received:
            problem = self._history_problem(symbol, end, errors)
            if problem is not None:
                raise problem
            return empty_bars()
        rows = [
            dict(date=b.date, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
            for b in received
        ]
        frame = normalize_bars(pd.DataFrame(rows), origin=f"IBKR daily bars for {symbol}")
        return window_ending(frame, end, bars)

    def matching_symbols(self, pattern: str) -> list[dict[str, Any]]:
        """Contracts whose symbol or name matches ``pattern`` (IB's symbol search), as dicts.

        Keys: symbol, conId, secType, primaryExchange, currency, description.
        """
        with self._request(f"the symbol search for {pattern!r}") as errors:
            found = self._ib.reqMatchingSymbols(pattern)
        if found is None:  # ib_async gives up after 4 s and returns None
            raise GatewayUnavailableError(
                f"IBKR at {self._config.endpoint} did not answer the symbol search for "
                f"{pattern!r}{_describe(errors)}; retry later"
            )
        return [
            {
                "symbol": c.symbol,
                "conId": c.conId,
                "secType": c.secType,
                "primaryExchange": c.primaryExchange,
                "currency": c.currency,
                "description": c.description,
            }
            for c in (d.contract for d in found)
            if c is not None
        ]

    # -- orders -----------------------------------------------------------------------------

    def place_bracket(
        self,
        contract: Contract,
        action: str,
        quantity: float,
        limit_price: float,
        take_profit: float,
        stop_loss: float,
        order_ref: str,
    ) -> list[Trade]:
        """Send a limit entry with a take-profit limit and a stop: ``[parent, take_profit, stop]``.

        Built by ``IB.bracketOrder``: the children carry ``parentId``, the parent and the
        take-profit ``transmit=False`` and the stop ``transmit=True``, so TWS releases all three
        together or none. All three carry the same ``orderRef`` (the decision's identity); their
        roles follow from the structure (no parent: entry; child LMT: take-profit; child STP:
        stop). No ``ocaGroup`` is set: TWS makes a parent's children one-cancels-other itself.
        The entry is a DAY order; the children are GTC so the protection outlives the session.
        """
        self._require_trading(f"place bracket {order_ref}")
        with self._request(f"placing bracket {order_ref}") as errors:
            bracket = self._ib.bracketOrder(
                action, quantity, limit_price, take_profit, stop_loss, orderRef=order_ref
            )
            bracket.parent.tif = "DAY"
            bracket.takeProfit.tif = bracket.stopLoss.tif = "GTC"
            trades = [self._ib.placeOrder(contract, order) for order in bracket]
            self._settle()
        self._log_order_errors(errors, trades)
        return trades

    def place_market(
        self, contract: Contract, action: str, quantity: float, order_ref: str
    ) -> Trade:
        """Send a DAY market order carrying ``orderRef``; its state is known on return."""
        from ib_async import MarketOrder

        self._require_trading(f"place market order {order_ref}")
        order = MarketOrder(action, quantity, orderRef=order_ref, tif="DAY")
        with self._request(f"placing market order {order_ref}") as errors:
            trade = self._ib.placeOrder(contract, order)
            self._settle()
        self._log_order_errors(errors, [trade])
        return trade

    def cancel(self, order: Order) -> Trade | None:
        """Cancel ``order``; returns its trade (None when this session does not know it).

        Cancelling a bracket parent cancels its children too (TWS does it). A done order stays
        as it is (TWS answers error 10148).
        """
        self._require_trading(f"cancel order {order.orderRef or order.orderId}")
        with self._request(f"cancelling order {order.orderId}") as errors:
            trade = self._ib.cancelOrder(order)
            self._settle()
        self._log_order_errors(errors, [trade] if trade else [])
        return trade

    def open_trades(self) -> list[Trade]:
        """Open orders of every API client, as TWS reports them now (not only this session's)."""
        with self._request("the open-orders query"):
            reported = self._ib.reqAllOpenOrders()
            session = self._ib.openTrades()
        return [t for t in _unique([*session, *reported]) if not t.isDone()]

    def executions(self) -> list[Fill]:
        """Today's executions with their commission reports, also those made while disconnected.

        ``reqExecutions`` returns fresh ``Fill`` objects for executions this session already
        knows, and their commission reports then update the stored fills; so the stored ones
        are returned where they exist.
        """
        with self._request("the executions query"):
            received = self._ib.reqExecutions()
            stored = {f.execution.execId: f for f in self._ib.fills()}
        return [stored.get(f.execution.execId, f) for f in received]

    def session_fills(self) -> list[Fill]:
        """The fills this session already knows (live reports and earlier queries); no request.

        ib_async attaches an execution to its trade only the first time it sees the execId, so
        a trade loaded after its executions (a completed order after a reconnect) has none
        attached: match these by ``execution.permId`` instead.
        """
        return list(self._ib.fills()) if self._ib is not None else []

    def positions(self) -> list[Position]:
        """Current non-zero positions, asked from TWS (``reqPositions``) rather than cached."""
        with self._request("the positions query"):
            reported = self._ib.reqPositions()
        return [p for p in reported if p.position]

    def account_values(self) -> list[AccountValue]:
        """The account summary (cash, net liquidation, ``$LEDGER`` tags such as RealizedPnL).

        The first call subscribes and waits for the values; later calls read what ib_async has
        received since (TWS refreshes the summary every few minutes) without a round trip.
        """
        with self._request("the account summary"):
            return list(self._ib.accountSummary())

    def find_by_ref(self, order_ref: str) -> list[Trade]:
        """Every order carrying ``order_ref`` that TWS knows, open or done, with its fills.

        Asks TWS rather than the session cache, so it also works after a reconnect, and for
        orders another client placed. Open orders, then completed ones, then executions, as
        ``IB.connect`` orders its startup sync: ib_async attaches an execution to a trade it
        already has when it first sees the execId (for the others see ``session_fills``).
        Orders never transmitted (a bracket interrupted before its stop was sent) are not
        reported by TWS at all; they are never executed either.
        """
        with self._request(f"the order lookup for {order_ref}"):
            reported = self._ib.reqAllOpenOrders()
            completed = self._ib.reqCompletedOrders(apiOnly=True)
            self._ib.reqExecutions()
            session = self._ib.trades()
        return [
            t for t in _unique([*session, *reported, *completed]) if t.order.orderRef == order_ref
        ]

    # -- plumbing ---------------------------------------------------------------------------

    def _require_trading(self, what: str) -> None:
        if self._config.readonly:
            raise ReadonlySessionError(
                f"cannot {what}: this IBKR adapter is read-only (IbkrConfig.readonly=True); "
                "trading needs an adapter built with IbkrConfig(readonly=False)"
            )

    def _settle(self) -> None:
        """One round trip, so TWS's answers to what was just sent have been processed."""
        self._ib.reqAllOpenOrders()

    @staticmethod
    def _log_order_errors(errors: list[IbError], trades: list[Trade]) -> None:
        """Log what TWS said about these orders (the trades' logs keep it as well)."""
        ids = {t.order.orderId for t in trades}
        for e in errors:
            if e.req_id in ids and not e.is_notice:
                level = logging.INFO if e.code == ORDER_CANCELLED else logging.WARNING
                log.log(level, "IBKR order %s: %s", e.req_id, e)

    def _client(self) -> Any:
        if self._ib is None:
            self._ib = self._ib_factory()
            self._ib.RequestTimeout = self._config.hard_timeout
            self._ib.errorEvent.connect(self._on_error)
        return self._ib

    def _on_error(self, reqId: int, errorCode: int, errorString: str, contract: Any) -> None:
        error = IbError(reqId, errorCode, errorString)
        for sink in self._sinks:
            sink.append(error)
        if not self._sinks:
            log.debug("IBKR %s (outside any request)", error)

    @contextmanager
    def _capturing(self) -> Iterator[list[IbError]]:
        """Collect every ``errorEvent`` fired while the block runs (calls are blocking)."""
        sink: list[IbError] = []
        self._sinks.append(sink)
        try:
            yield sink
        finally:
            self._sinks.remove(sink)

    @contextmanager
    def _request(self, what: str) -> Iterator[list[IbError]]:
        """Connect if needed, collect IB errors, and turn ib_async exceptions into ours."""
        self.connect()
        endpoint = self._config.endpoint
        with self._capturing() as errors:
            try:
                yield errors
            except ConnectionError as exc:  # "Not connected" / "Socket disconnect"
                self.close()
                raise GatewayUnavailableError(
                    f"IBKR connection to {endpoint} was lost during {what} ({exc}); "
                    "the next request reconnects"
                ) from exc
            except asyncio.TimeoutError as exc:
                raise GatewayUnavailableError(
                    f"IBKR at {endpoint} did not answer {what} within "
                    f"{self._config.hard_timeout:g} s{_describe(errors)}"
                ) from exc

    def _unreachable_message(
        self, attempts: int, failure: BaseException, errors: list[IbError]
    ) -> str:
        cfg = self._config
        reason = str(failure) or f"no API handshake within {cfg.connect_timeout:g} s"
        if any(e.code == CLIENT_ID_IN_USE for e in errors):
            reason = f"client id {cfg.client_id} is already in use"
        return (
            f"IBKR is not reachable at {cfg.endpoint} after {attempts} attempt(s): "
            f"{type(failure).__name__}: {reason}{_describe(errors)}. Check that IB Gateway or "
            "TWS is running and logged in, that its API accepts socket clients (API settings: "
            "enable socket clients, trust this host), that the port is right (Gateway 4001 live "
            f"/ 4002 paper, TWS 7496 live / 7497 paper) and that client id {cfg.client_id} is "
            "not used by another session."
        )

    def _unqualified_error(
        self, symbol: str, exchange: str, currency: str, errors: list[IbError]
    ) -> GatewayError:
        failures = [e for e in errors if not e.is_notice]
        if any(e.code == NO_SECURITY_DEFINITION for e in failures):
            return UnknownContractError(
                f"IBKR has no stock {symbol!r} on {exchange} in {currency} "
                f"(error {NO_SECURITY_DEFINITION}: no security definition). Check the ticker, "
                "exchange and currency; matching_symbols() lists candidates."
            )
        if failures:
            return GatewayUnavailableError(
                f"IBKR could not look up {symbol!r} on {exchange} in {currency}"
                f"{_describe(failures)}"
            )
        return UnknownContractError(
            f"IBKR found several stocks for {symbol!r} on {exchange} in {currency}; "
            "pass primary_exchange (for example NASDAQ or NYSE) to pick one."
        )

    def _history_problem(
        self, symbol: str, end: dt.date, errors: list[IbError]
    ) -> GatewayError | None:
        """Why IB sent no bars: an error to raise, or None when the window is simply empty."""
        failures = [e for e in errors if not e.is_notice]
        where = f"daily bars for {symbol} ending {end.isoformat()}"
        for e in failures:
            if e.code in CONNECTIVITY_CODES:
                return GatewayUnavailableError(
                    f"IBKR lost connectivity while fetching {where} ({e}); retry once IB "
                    "Gateway / TWS shows it is connected to IB's servers again"
                )
        for e in failures:
            text = e.message.lower()
            if e.code == NO_SECURITY_DEFINITION:
                return UnknownContractError(f"IBKR has no data for {symbol!r}: {e}")
            if e.code == HISTORICAL_DATA_ERROR and "pacing" in text:
                return GatewayUnavailableError(
                    f"IBKR refused {where}: pacing violation ({e}). IBKR allows no identical "
                    "request within 15 s and about 60 historical requests per 10 minutes; "
                    "wait and retry"
                )
            if e.code == HISTORICAL_DATA_ERROR and "returned no data" in text:
                continue  # HMDS answered: no bar in the window; the caller decides
            hint = "; check the account's market-data permissions" if "permission" in text else ""
            return GatewayUnavailableError(f"IBKR refused {where} ({e}){hint}")
        log.warning(
            "IBKR sent no %s within %g s (no data in the window, or the request timed out)",
            where,
            self._config.request_timeout,
        )
        return None


def _unique(trades: list[Trade]) -> list[Trade]:
    """One trade per order: by permId (stable across sessions and clients), else by object."""
    seen: dict[object, Trade] = {}
    for trade in trades:
        key = trade.order.permId or trade.orderStatus.permId or id(trade)
        seen.setdefault(key, trade)
    return list(seen.values())


def _describe(errors: list[IbError]) -> str:
    """`` (error 162: ...; error 1100: ...)`` for the errors that are not mere notices."""
    failures = [str(e) for e in errors if not e.is_notice]
    return f" ({'; '.join(failures)})" if failures else ""
