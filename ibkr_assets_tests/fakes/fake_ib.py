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
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import inspect
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from eventkit import Event
from ib_async import (
    BarData,
    BarDataList,
    Contract,
    ContractDescription,
    StartupFetch,
    StartupFetchALL,
    TagValue,
    util,
)

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
        self.connectedEvent = Event("connectedEvent")
        self.disconnectedEvent = Event("disconnectedEvent")
        self.errorEvent = Event("errorEvent")
        self.calls: list[Call] = []
        # Also send this many bars dated after endDateTime (a look-ahead trap for the caller).
        self.bars_past_end = 0
        self._clock = clock
        self._connected = False
        self._next_req_id = 1
        self._listings: list[_Listing] = []
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
            self._connected = False
            self.disconnectedEvent.emit()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

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
        for code, message in FARM_NOTICES:
            self.errorEvent.emit(-1, code, message, None)
        self.connectedEvent.emit()
        return self

    @_recorded
    def disconnect(self) -> str | None:
        if not self._connected:
            return None
        self._connected = False
        self.disconnectedEvent.emit()
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

    # -- internals --------------------------------------------------------------------------

    def _queue_connect_failure(
        self, make: Callable[[str, int], BaseException], times: int | None
    ) -> None:
        if times is None:
            self._always_fail = make
        else:
            self._connect_failures.extend([make] * times)

    def _begin(self, method: str) -> object:
        """What happens to this request; raises like ib_async when there is no connection."""
        if not self._connected:
            raise ConnectionError("Not connected")
        outcome = self._scripted[method].popleft() if self._scripted[method] else None
        if outcome == _DROP:
            self.drop_connection()
            raise ConnectionError("Socket disconnect")
        return outcome

    def _req_id(self) -> int:
        self._next_req_id += 1
        return self._next_req_id - 1

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
