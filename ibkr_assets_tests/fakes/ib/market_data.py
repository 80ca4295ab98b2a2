"""Contracts and history: the stocks IB knows, qualifying them, their bars, symbol search.

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
* ``reqMatchingSymbols`` matches a symbol prefix or a word of the description, and returns
  ``ContractDescription`` objects with the few contract fields the decoder sets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ib_async import BarData, BarDataList, Contract, ContractDescription, TagValue, util

from ibkr_assets_tests.fakes.ib.client import TIMEOUT, Fail, recorded

NO_SECURITY_DEFINITION = "No security definition has been found for the request"
HMDS_NO_DATA = (
    "Historical Market Data Service error message:HMDS query returned no data: "
    "{symbol}@{exchange} Trades"
)
PACING_VIOLATION = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
DURATION_IN_YEARS = (
    "Error validating request.-'bH' : cause - Historical data requests for durations longer "
    "than 365 days must be made in years."
)
INVALID_REQUEST = "Error validating request.-'bH' : cause - {detail}"  # detail wording approximate
BAR_SIZES = frozenset(
    "1 secs,5 secs,10 secs,15 secs,30 secs,1 min,2 mins,3 mins,5 mins,10 mins,15 mins,"
    "20 mins,30 mins,1 hour,2 hours,3 hours,4 hours,8 hours,1 day,1 week,1 month".split(",")
)
WHAT_TO_SHOW = frozenset(
    "TRADES,MIDPOINT,BID,ASK,BID_ASK,ADJUSTED_LAST,HISTORICAL_VOLATILITY,"
    "OPTION_IMPLIED_VOLATILITY,REBATE_RATE,FEE_RATE,YIELD_BID,YIELD_ASK,YIELD_BID_ASK,"
    "YIELD_LAST".split(",")
)
PACING_WINDOW_SECONDS = 15.0
MATCHING_SYMBOLS_TIMEOUT = 4.0  # hard-coded in ib_async's reqMatchingSymbolsAsync

_DURATION = re.compile(r"^(\d+) ([SDWMY])$")
_WIRE_END = re.compile(r"^(\d{8})([ -])(\d\d:\d\d:\d\d)(?: (\S+))?$")
_DAYS_PER_UNIT = {"D": 1, "W": 7, "M": 31, "Y": 366}  # generous: TWS counts calendar spans


@dataclass
class _Listing:
    contract: Contract
    bars: list[BarData]


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


class MarketDataMixin:
    """``add_stock`` to script listings; ``qualifyContracts``, ``reqHistoricalData``, search."""

    exchange_timezone = ZoneInfo("America/New_York")

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

    # -- the ib_async.IB surface ------------------------------------------------------------

    @recorded
    def qualifyContracts(self, *contracts: Contract) -> list[Contract]:
        outcome = self._begin("qualifyContracts")
        result: list[Any] = []
        for contract in contracts:
            req_id = self._req_id()
            if outcome == TIMEOUT or self._answer_fails(outcome, req_id, contract):
                self._block(None)  # no timeout of its own: only RequestTimeout ends it
            if isinstance(outcome, Fail):
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

    @recorded
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
            outcome = Fail(321, invalid)
        if outcome == TIMEOUT or self._answer_fails(outcome, req_id, contract):
            return self._block(timeout, bars)
        if isinstance(outcome, Fail):
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

    @recorded
    def reqMatchingSymbols(self, pattern: str) -> list[ContractDescription]:
        outcome = self._begin("reqMatchingSymbols")
        req_id = self._req_id()
        if outcome == TIMEOUT or self._answer_fails(outcome, req_id, None):
            return self._block(MATCHING_SYMBOLS_TIMEOUT, None)
        if isinstance(outcome, Fail):
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

    # -- internals: listings ----------------------------------------------------------------

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

    def _listing_for(self, symbol: str) -> _Listing:
        return next(listing for listing in self._listings if listing.contract.symbol == symbol)


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
