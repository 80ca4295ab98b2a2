"""The account: positions, cash and realized P&L, and the account summary TWS reports.

``IB.positions`` is ib_async's own code, reading what the wrapper was sent.

* Every session subscribes to positions at connect; each fill pushes a ``position`` update.
* ``reqPositions`` lists every position including ones closed today (size 0).
* ``accountSummary`` loads the summary tags and the ``$LEDGER`` tags (cash, realized P&L)
  once, then TWS pushes updates. IB's average cost includes commissions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ib_async import IB, AccountValue, Contract, Position

from ibkr_assets_tests.fakes.ib.client import recorded, wire_contract
from ibkr_assets_tests.fakes.ib.tws_orders import ServerOrder

ACCOUNT = "DU1234567"  # IB paper accounts start with D


@dataclass
class _Holding:
    contract: Contract
    quantity: float = 0.0
    avg_cost: float = 0.0


class AccountMixin:
    """``set_position`` to script holdings; ``positions``, ``reqPositions``, ``accountSummary``."""

    # -- scripting --------------------------------------------------------------------------

    def set_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """The account holds ``quantity`` of ``symbol`` (held before this test's orders)."""
        listing = self._listing_for(symbol)
        self._holdings[listing.contract.conId] = _Holding(
            wire_contract(listing.contract, listing.contract.primaryExchange), quantity, avg_cost
        )
        self._push_position(self._holdings[listing.contract.conId])
        self._push_account()

    # -- the ib_async.IB surface ------------------------------------------------------------

    positions = recorded(IB.positions)

    @recorded
    def reqPositions(self) -> list[Position]:
        return self._answer("reqPositions", "positions", self._send_positions)

    @recorded
    def accountSummary(self, account: str = "") -> list[AccountValue]:
        if not self.wrapper.acctSummary:  # loaded on demand, then kept updated by TWS
            self._answer("accountSummary", None, self._send_account_summary)
        values = self.wrapper.acctSummary.values()
        return [v for v in values if not account or v.account == account]

    # -- internals --------------------------------------------------------------------------

    def _book(
        self, so: ServerOrder, shares: float, price: float, commission: float
    ) -> tuple[_Holding, float | None]:
        """Update position, cash and realized P&L; IB's average cost includes commissions."""
        conid = so.contract.conId
        exchange = self._listing_for(so.contract.symbol).contract.primaryExchange
        holding = self._holdings.setdefault(conid, _Holding(wire_contract(so.contract, exchange)))
        signed = shares if so.order.action == "BUY" else -shares
        realized: float | None = None
        if holding.quantity == 0 or (holding.quantity > 0) == (signed > 0):
            cost = holding.avg_cost * abs(holding.quantity) + price * shares + commission
            holding.quantity += signed
            holding.avg_cost = cost / abs(holding.quantity)
        else:
            closing = min(shares, abs(holding.quantity))
            direction = 1 if holding.quantity > 0 else -1
            realized = (price - holding.avg_cost) * closing * direction - commission
            holding.quantity += signed
            if holding.quantity == 0:
                holding.avg_cost = 0.0
            elif (holding.quantity > 0) != (direction > 0):  # crossed through zero
                holding.avg_cost = price
            self._realized += realized
        self._cash -= signed * price + commission
        return holding, realized

    def _send_positions(self, _key: Any) -> None:
        for holding in self._holdings.values():  # size 0 too: closed today
            self.wrapper.position(
                self.account,
                dataclasses.replace(holding.contract),
                holding.quantity,
                holding.avg_cost,
            )
        self.wrapper.positionEnd()

    def _send_account_summary(self, req_id: int) -> None:
        self._summary_req_id = req_id
        for message in self._account_messages(req_id):
            message()
        self.wrapper.accountSummaryEnd(req_id)

    def _push_position(self, holding: _Holding) -> None:
        if self._connected:  # every session subscribes to positions at connect
            args = (self.account, dataclasses.replace(holding.contract))
            self._outbox.append(
                functools.partial(self.wrapper.position, *args, holding.quantity, holding.avg_cost)
            )

    def _push_account(self) -> None:
        if self._connected and self._summary_req_id is not None:
            self._outbox.extend(self._account_messages(self._summary_req_id))

    def _account_messages(self, req_id: int) -> list[Callable[[], None]]:
        invested = sum(h.quantity * h.avg_cost for h in self._holdings.values())
        values = [
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", f"{self._cash + invested:.2f}", "USD"),
            ("TotalCashValue", f"{self._cash:.2f}", "USD"),
            ("BuyingPower", f"{4 * (self._cash + invested):.2f}", "USD"),
        ]
        for currency in ("BASE", "USD"):  # the $LEDGER:ALL tags
            values += [
                ("CashBalance", f"{self._cash:.2f}", currency),
                ("RealizedPnL", f"{self._realized:.2f}", currency),
            ]
        return [
            functools.partial(self.wrapper.accountSummary, req_id, self.account, *value)
            for value in values
        ]
