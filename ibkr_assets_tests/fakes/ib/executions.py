"""Executions: the market fills working orders, and TWS reports each fill.

``IB.fills`` is ib_async's own code, so ``Fill``, ``Execution`` and ``CommissionReport``
objects and the ``execDetailsEvent`` / ``commissionReportEvent`` emissions are ib_async's.

* Fills come as ``execDetails`` (reqId -1), ``commissionReport``, ``openOrder`` + ``orderStatus``
  (``Submitted`` with ``filled`` > 0 while partial) and a ``position`` update.
* A filled bracket parent releases its children; a filled child cancels its sibling.
* ``reqExecutions`` returns the executions with their commission reports, filtered like TWS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

from ib_async import IB, CommissionReport, Contract, Execution, ExecutionFilter, Fill, OrderStatus
from ib_async.util import UNSET_DOUBLE

from ibkr_assets_tests.fakes.ib.client import recorded, wire_contract
from ibkr_assets_tests.fakes.ib.tws_orders import ServerOrder


@dataclass
class _Execution:
    contract: Contract
    execution: Execution
    report: CommissionReport


class ExecutionsMixin:
    """``set_price`` and ``fill`` to script the market; ``fills`` and ``reqExecutions``."""

    # -- scripting (what the market does) ---------------------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        """Where the market trades ``symbol``: the default price of market-order fills."""
        self._prices[symbol] = price

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
        record = _Execution(wire_contract(so.contract, "ISLAND"), execution, report)
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

    # -- the ib_async.IB surface ------------------------------------------------------------

    fills = recorded(IB.fills)

    @recorded
    def reqExecutions(self, execFilter: ExecutionFilter | None = None) -> list[Fill]:
        return self._answer(
            "reqExecutions", None, lambda key: self._send_executions(key, execFilter)
        )

    # -- internals --------------------------------------------------------------------------

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

    def _send_executions(self, req_id: int, execution_filter: ExecutionFilter | None) -> None:
        wanted = execution_filter or ExecutionFilter()
        for record in self.server_executions:
            if _matches(wanted, record):
                for message in self._execution_messages(req_id, record):
                    message()
        self.wrapper.execDetailsEnd(req_id)

    def _execution_messages(self, req_id: int, record: _Execution) -> list[Callable[[], None]]:
        contract = dataclasses.replace(record.contract)
        execution = dataclasses.replace(record.execution)
        report = dataclasses.replace(record.report)
        return [
            functools.partial(self.wrapper.execDetails, req_id, contract, execution),
            functools.partial(self.wrapper.commissionReport, report),
        ]


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
