"""Interactive Brokers behind the ``Broker`` protocol, through the one IBKR adapter.

Safety, in the order ``place_bracket`` applies it:

1. Identity first: every order carries the decision's ``order_ref`` as IBKR ``orderRef``.
   Before sending, TWS is asked (open orders of every client, completed orders, executions)
   whether anything carries that ref; if so, that is returned and nothing is sent. This holds
   across retries, re-executions and reconnects, because the answer comes from TWS, not from
   this process. A bracket interrupted before its stop was sent was never transmitted: TWS
   does not report it and never executes it, so sending the bracket again is correct.
2. Live trading is an explicit opt-in (``live=True``) with pre-trade limits (max notional and
   max position), refuses sessions in the past, and paper mode refuses a live account.
3. Every refusal and every IBKR failure is a ``BrokerError`` that says what to do.

Longer than most modules: the safety sequence below is one unit, and splitting it would hide
the order in which the checks run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from ibkr_assets.brokers.base import BrokerError
from ibkr_assets.domain.orders import (
    AccountSummary,
    BracketRequest,
    BrokerOrder,
    CloseRequest,
    Fill,
    OrderStatus,
    Position,
    order_ref,
)
from ibkr_assets.ibkr.adapter import ORDER_CANCELLED, IbkrAdapter, ReadonlySessionError
from ibkr_assets.ibkr.errors import GatewayError

if TYPE_CHECKING:
    from ib_async import Fill as IbFill
    from ib_async import Trade

log = logging.getLogger(__name__)

T = TypeVar("T")

LIMITS_REQUIRED = "live trading needs the strategy's risk.max_notional and risk.max_position"
# The prefix every order_ref of this project starts with: orders without it are not ours.
REF_PREFIX = order_ref("s", "X", dt.date(2000, 1, 1)).split(":", 1)[0] + ":"
# ib_async's markers for "no value" (ib_async.util.UNSET_DOUBLE / UNSET_INTEGER).
_UNSET_DOUBLE = 1.7976931348623157e308
_UNSET_INTEGER = 2**31 - 1
_ROLE_ORDER = {"parent": 0, "take_profit": 1, "stop_loss": 2, "close": 3}
_ORDER_TYPES = frozenset({"MKT", "LMT", "STP"})  # what BrokerOrder.order_type allows


class IbkrBroker:
    """The ``Broker`` for an IBKR paper or live account.

    ``live=True`` is the explicit opt-in to a live account and requires both limits;
    ``max_notional`` (quantity x entry price) and ``max_position`` (shares held after the
    entry fills) are enforced in paper mode too when given.
    """

    name = "ibkr"

    def __init__(
        self,
        adapter: IbkrAdapter,
        *,
        live: bool = False,
        max_notional: float | None = None,
        max_position: int | None = None,
    ) -> None:
        if live and (max_notional is None or max_position is None):
            raise BrokerError(LIMITS_REQUIRED)
        for limit, value in (("max_notional", max_notional), ("max_position", max_position)):
            if value is not None and value <= 0:
                raise BrokerError(f"{limit} must be positive, got {value}")
        if adapter.config.readonly:
            raise BrokerError(
                "the IBKR broker needs an adapter that may trade: IbkrConfig(readonly=False)"
            )
        self._adapter = adapter
        self.live = live
        self.mode = "live" if live else "paper"
        self.max_notional = max_notional
        self.max_position = max_position
        self._account_checked = False

    # -- queries ----------------------------------------------------------------------------

    def orders_by_ref(self, order_ref: str) -> list[BrokerOrder]:
        """Every order carrying ``order_ref`` that TWS knows, open or done, parent first."""
        trades = self._ibkr(f"looking up orders {order_ref}", self._adapter.find_by_ref, order_ref)
        return to_broker_orders(trades, self._adapter.session_fills())

    def open_orders(self) -> list[BrokerOrder]:
        """Open orders this project placed (``orderRef`` with its prefix), from every client."""
        trades = self._ibkr("listing open orders", self._adapter.open_trades)
        ours = [t for t in trades if t.order.orderRef.startswith(REF_PREFIX)]
        return to_broker_orders(ours, self._adapter.session_fills())

    def executions(self) -> list[Fill]:
        """Today's executions, including those made while this process was disconnected."""
        fills = self._ibkr("listing executions", self._adapter.executions)
        return [to_fill(f) for f in fills]

    def positions(self) -> list[Position]:
        found = self._ibkr("listing positions", self._adapter.positions)
        return [
            Position(symbol=p.contract.symbol, quantity=int(p.position), avg_cost=p.avgCost)
            for p in found
        ]

    def account(self) -> AccountSummary:
        """Cash and realized P&L from the account summary; commissions from today's fills."""
        commissions = sum(f.commission for f in self.executions())  # also takes in TWS's updates
        values = self._ibkr("reading the account summary", self._adapter.account_values)
        return AccountSummary(
            cash=_account_number(values, "TotalCashValue"),
            realized_pnl=_account_number(values, "RealizedPnL"),
            commissions=commissions,
        )

    # -- orders -----------------------------------------------------------------------------

    def place_bracket(self, request: BracketRequest) -> list[BrokerOrder]:
        """Place entry + take-profit + stop, unless TWS already has ``request.order_ref``.

        Raises ``BrokerError`` when a limit, the session date, the prices or the account
        forbid it, and when IBKR fails; after a failure while sending, calling again is safe.
        """
        existing = self.orders_by_ref(request.order_ref)
        if existing:
            log.info("IBKR already has %s: nothing sent", request.order_ref)
            return existing
        self._check_session(request.order_ref, request.session)
        _check_bracket_prices(request)
        self._check_limits(request)
        self._check_account()
        contract = self._ibkr(
            f"looking up {request.symbol}", self._adapter.qualify_stock, request.symbol
        )
        trades = self._ibkr(
            f"placing bracket {request.order_ref}",
            self._adapter.place_bracket,
            contract,
            request.side,
            request.quantity,
            request.entry_price,
            request.take_profit,
            request.stop_loss,
            request.order_ref,
            sending=True,
        )
        return to_broker_orders(trades, self._adapter.session_fills())

    def disconnect(self) -> None:
        """End the IB session (the resource calls this at the end of each run)."""
        self._adapter.close()

    def close_position(self, request: CloseRequest) -> list[BrokerOrder]:
        """Cancel the symbol's open orders, then close the whole position at market.

        Idempotent by ``request.order_ref``. No position: nothing is cancelled or sent, ``[]``.
        All of this project's open orders on the symbol are cancelled first (bracket children
        and any entry still working), so no stop or target can trade after the position is
        flat; the position is read again afterwards in case one filled meanwhile.
        """
        existing = self.orders_by_ref(request.order_ref)
        if existing:
            log.info("IBKR already has %s: nothing sent", request.order_ref)
            return existing
        self._check_session(request.order_ref, request.session)
        if self._held(request.symbol) == 0:
            return []
        self._check_account()
        contract = self._ibkr(
            f"looking up {request.symbol}", self._adapter.qualify_stock, request.symbol
        )
        for trade in self._working(contract.conId):
            # isDone: cancelling a parent has already cancelled its children (TWS does it)
            if not trade.isDone():
                self._ibkr(f"cancelling {trade.order.orderRef}", self._adapter.cancel, trade.order)
        still = self._working(contract.conId)
        if still:
            refs = ", ".join(sorted({t.order.orderRef for t in still}))
            raise BrokerError(
                f"{request.order_ref}: IBKR did not cancel the open orders on {request.symbol} "
                f"({refs}; placed by another client id?); nothing was sold, so no stop or "
                "target can trade against a flat position. Cancel them in TWS and retry."
            )
        held = self._held(request.symbol)
        if held == 0:
            return []
        trade = self._ibkr(
            f"placing close {request.order_ref}",
            self._adapter.place_market,
            contract,
            "SELL" if held > 0 else "BUY",
            abs(held),
            request.order_ref,
            sending=True,
        )
        return to_broker_orders([trade], self._adapter.session_fills())

    # -- checks -----------------------------------------------------------------------------

    def _check_session(self, ref: str, session: dt.date) -> None:
        """Orders for a past session (backfills, replays) never reach a live account."""
        if not self.live:
            return
        today = dt.datetime.now(ZoneInfo(self._adapter.config.market_timezone)).date()
        if session < today:
            raise BrokerError(
                f"{ref}: session {session.isoformat()} is in the past (today is "
                f"{today.isoformat()}); orders for historical dates never reach a live broker"
            )

    def _check_limits(self, request: BracketRequest) -> None:
        ref = request.order_ref
        notional = request.quantity * request.entry_price
        if self.max_notional is not None and notional > self.max_notional:
            raise BrokerError(
                f"{ref}: notional {notional:,.2f} ({request.quantity} x {request.entry_price:g}) "
                f"exceeds max_notional {self.max_notional:,.2f} (the strategy's risk.max_notional); "
                "nothing was sent"
            )
        if self.max_position is not None:
            signed = request.quantity if request.side == "BUY" else -request.quantity
            after = self._held(request.symbol) + signed
            if abs(after) > self.max_position:
                raise BrokerError(
                    f"{ref}: {request.side} {request.quantity} {request.symbol} would make the "
                    f"position {after}, beyond max_position {self.max_position} "
                    "(the strategy's risk.max_position); nothing was sent"
                )

    def _check_account(self) -> None:
        """Paper mode must not trade a live account (IB paper account codes start with D)."""
        if self.live or self._account_checked:
            return
        values = self._ibkr("reading the account summary", self._adapter.account_values)
        live_accounts = sorted({v.account for v in values if not v.account.startswith("D")})
        if live_accounts:
            raise BrokerError(
                f"paper mode, but IBKR at {self._adapter.config.endpoint} is logged in to live "
                f"account {', '.join(live_accounts)}; connect to the paper gateway (Gateway "
                "4002 / TWS 7497) or opt in to live trading with its limits"
            )
        self._account_checked = True

    def _working(self, con_id: int) -> list[Trade]:
        """This project's open orders on the contract."""
        trades = self._ibkr("listing open orders", self._adapter.open_trades)
        return [
            t
            for t in trades
            if t.order.orderRef.startswith(REF_PREFIX) and t.contract.conId == con_id
        ]

    def _held(self, symbol: str) -> int:
        positions = self._ibkr("listing positions", self._adapter.positions)
        return int(sum(p.position for p in positions if p.contract.symbol == symbol))

    def _ibkr(self, what: str, call: Callable[..., T], *args: Any, sending: bool = False) -> T:
        """Run an adapter call, turning its errors into ``BrokerError``."""
        try:
            return call(*args)
        except ReadonlySessionError as exc:
            raise BrokerError(str(exc)) from exc
        except GatewayError as exc:
            retry = (
                "; the order may have reached IBKR: calling again is safe, it looks the "
                "order_ref up before sending anything"
                if sending
                else ""
            )
            raise BrokerError(f"IBKR failed while {what}: {exc}{retry}") from exc


# -- conversions (ib_async -> domain) --------------------------------------------------------


def to_broker_orders(trades: Iterable[Trade], fills: Iterable[IbFill] = ()) -> list[BrokerOrder]:
    """Domain orders for ib_async trades, parent first; children point at their parent.

    ``fills`` (the session's) complete trades that ib_async loaded without their executions.
    """
    trades = list(trades)
    ids = {(t.order.clientId, t.order.orderId): broker_order_id(t) for t in trades}
    by_perm_id: dict[int, list[IbFill]] = {}
    for fill in fills:
        by_perm_id.setdefault(fill.execution.permId, []).append(fill)
    orders = []
    for trade in trades:
        if trade.order.orderType not in _ORDER_TYPES:
            log.warning("skipping IBKR order of type %s", trade.order.orderType)
            continue
        extra = by_perm_id.get(trade.order.permId or trade.orderStatus.permId, [])
        orders.append(to_broker_order(trade, ids, extra))
    return sorted(orders, key=lambda o: (o.order_ref, _ROLE_ORDER[o.role], o.broker_order_id))


def to_broker_order(
    trade: Trade,
    ids: dict[tuple[int, int], str] | None = None,
    fills: Iterable[IbFill] = (),
) -> BrokerOrder:
    """One ib_async trade as a domain order.

    ``ids`` maps (clientId, orderId) to broker ids, to link children to their parent;
    ``fills`` are executions of this order that the trade may not carry.
    """
    order = trade.order
    executions = _executions(trade, fills)
    status, reason = order_status(trade, executions)
    filled = filled_quantity(trade, executions)
    limit = _number(order.lmtPrice) if order.orderType == "LMT" else None
    stop = _number(order.auxPrice) if order.orderType == "STP" else None
    times = [e.time for e in trade.log if e.time.tzinfo] + [f.time for f in executions]
    return BrokerOrder(
        order_ref=order.orderRef,
        broker_order_id=broker_order_id(trade),
        symbol=trade.contract.symbol,
        side=order.action,
        order_type=order.orderType,
        role=_role(trade),
        quantity=int(order.totalQuantity),
        limit_price=limit,
        stop_price=stop,
        parent_id=_parent_id(trade, ids or {}),
        status=status,
        filled_quantity=int(filled),
        avg_fill_price=_avg_fill_price(trade, executions) if filled else None,
        commission=sum(f.commissionReport.commission for f in executions),
        reason=reason,
        updated_at=max(times) if times else None,
    )


def to_fill(fill: IbFill) -> Fill:
    e = fill.execution
    return Fill(
        execution_id=e.execId,
        broker_order_id=str(e.permId),
        order_ref=e.orderRef,
        symbol=fill.contract.symbol,
        side="BUY" if e.side == "BOT" else "SELL",
        quantity=int(e.shares),
        price=e.price,
        commission=fill.commissionReport.commission,
        time=e.time,
    )


def broker_order_id(trade: Trade) -> str:
    """IB's permId, stable across sessions and clients; before TWS assigns it, the local id."""
    perm_id = trade.order.permId or trade.orderStatus.permId
    if perm_id:
        return str(perm_id)
    return f"local:{trade.order.clientId}:{trade.order.orderId}"


def order_status(trade: Trade, fills: list[IbFill] | None = None) -> tuple[OrderStatus, str]:
    """The domain status of an ib_async trade, and the reason when IBKR rejected it.

    A rejection reaches ib_async as an error on the order id (201 "Order rejected"): the
    wrapper marks the trade Cancelled and logs the code, then TWS reports Inactive. So a done
    trade whose log holds an error other than 202 (the normal cancel confirmation), or an
    Inactive one, is rejected; Cancelled / ApiCancelled otherwise is cancelled.
    """
    status = trade.orderStatus.status
    filled = filled_quantity(trade, fills)
    if status == "Filled" or (filled and filled >= float(trade.order.totalQuantity)):
        return OrderStatus.FILLED, ""
    rejection = _rejection(trade)
    if status == "Inactive" or (status in ("Cancelled", "ApiCancelled") and rejection):
        why = trade.orderStatus.whyHeld
        return OrderStatus.REJECTED, rejection or (
            f"IBKR made the order inactive{f' ({why})' if why else ''}"
        )
    if status in ("Cancelled", "ApiCancelled"):
        return OrderStatus.CANCELLED, ""
    if filled:
        return OrderStatus.PARTIALLY_FILLED, ""
    if status in ("PendingSubmit", "ApiPending"):
        return OrderStatus.PENDING_SUBMIT, ""
    return OrderStatus.SUBMITTED, ""  # PreSubmitted, Submitted, PendingCancel, ...


def filled_quantity(trade: Trade, fills: list[IbFill] | None = None) -> float:
    """Shares filled, from whichever source this trade has (status, completed order, fills)."""
    completed = _number(trade.order.filledQuantity) or 0.0
    from_fills = sum(f.execution.shares for f in (trade.fills if fills is None else fills))
    return max(float(trade.orderStatus.filled), float(completed), float(from_fills))


def _executions(trade: Trade, extra: Iterable[IbFill]) -> list[IbFill]:
    """The trade's fills plus ``extra`` ones, once per execId."""
    unique = {f.execution.execId: f for f in [*extra, *trade.fills]}
    return sorted(unique.values(), key=lambda f: f.time)


def _avg_fill_price(trade: Trade, fills: list[IbFill]) -> float | None:
    if trade.orderStatus.avgFillPrice:
        return trade.orderStatus.avgFillPrice
    shares = sum(f.execution.shares for f in fills)
    if not shares:
        return None  # a completed order whose executions are older than today's
    return sum(f.execution.shares * f.execution.price for f in fills) / shares


def _rejection(trade: Trade) -> str:
    """The first error that ended the order (warnings leave it ValidationError, not Cancelled)."""
    for entry in trade.log:
        ended = entry.status in ("Cancelled", "Inactive")
        if ended and entry.errorCode and entry.errorCode != ORDER_CANCELLED:
            # ib_async logs "Error 201, reqId 7: Order rejected - reason:..."
            text = entry.message.split(": ", 1)[-1]
            return f"IBKR error {entry.errorCode}: {text}"
    return ""


def _is_child(trade: Trade) -> bool:
    return bool(trade.order.parentId) or _valid_id(trade.order.parentPermId)


def _role(trade: Trade) -> str:
    if trade.order.orderType == "MKT":
        return "close"
    if _is_child(trade):
        return "stop_loss" if trade.order.orderType == "STP" else "take_profit"
    return "parent"


def _parent_id(trade: Trade, ids: dict[tuple[int, int], str]) -> str | None:
    order = trade.order
    if order.parentId and (order.clientId, order.parentId) in ids:
        return ids[(order.clientId, order.parentId)]
    if _valid_id(order.parentPermId):
        return str(order.parentPermId)
    return None


def _valid_id(value: int | None) -> bool:
    return bool(value) and value != _UNSET_INTEGER


def _number(value: Any) -> float | None:
    if value is None or value == _UNSET_DOUBLE or value == "":
        return None
    return float(value)


def _account_number(values: list[Any], tag: str) -> float:
    """A numeric account-summary tag, preferring the base currency, then USD."""
    by_currency = {v.currency: v.value for v in values if v.tag == tag}
    for currency in ("BASE", "USD", *by_currency):
        if currency in by_currency:
            return float(by_currency[currency])
    raise BrokerError(f"IBKR's account summary has no {tag}")


def _check_bracket_prices(request: BracketRequest) -> None:
    """The stop and the target must sit on either side of the entry, on the right sides."""
    entry, target, stop = request.entry_price, request.take_profit, request.stop_loss
    ordered = stop < entry < target if request.side == "BUY" else target < entry < stop
    if not ordered:
        expected = (
            "stop < entry < take-profit"
            if request.side == "BUY"
            else ("take-profit < entry < stop")
        )
        raise BrokerError(
            f"{request.order_ref}: a {request.side} bracket needs {expected}; got entry "
            f"{entry:g}, take-profit {target:g}, stop {stop:g}; nothing was sent"
        )
