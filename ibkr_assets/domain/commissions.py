"""Commissions: IBKR's fixed-rate US stock pricing, the simulator's default.

Fixed rate is $0.005 a share with a $1.00 minimum per order and a maximum of 1% of the trade
value; the maximum wins over the minimum, so a very small trade pays less than $1. Exchange,
regulatory and clearing fees, which IBKR passes through on top, are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class CommissionModel:
    """Per-share commission with a per-order minimum and a cap in percent of trade value."""

    per_share: float = 0.005
    minimum: float = 1.0
    maximum_pct: float = 1.0

    def __post_init__(self) -> None:
        for name in ("per_share", "minimum", "maximum_pct"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"CommissionModel.{name} must be a finite number >= 0, got {value}"
                )

    def commission(self, quantity: float, price: float) -> float:
        """The commission for one order of ``quantity`` shares at ``price``, in cents."""
        shares = abs(quantity)
        if shares == 0:
            return 0.0
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"commission needs a positive price, got {price}")
        fee = max(shares * self.per_share, self.minimum)
        fee = min(fee, shares * price * self.maximum_pct / 100.0)
        return float(Decimal(repr(fee)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


IBKR_FIXED = CommissionModel()
"""IBKR's fixed-rate pricing for US stocks, the simulator's default."""
