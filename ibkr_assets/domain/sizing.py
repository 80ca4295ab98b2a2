"""Position sizing: how many shares a signal may buy, under the account's risk limits.

The size is the number of shares whose loss at the stop equals the risk budget
(``equity x risk_per_trade_pct``), then capped by the largest position the account may hold
(``max_position_pct`` of equity) and by ``max_notional``. Any refusal is a quantity of 0 with
the reason, never an exception: the ``order`` asset records why nothing was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Ratios like 1000 / 0.1 land just below a whole number in binary floating point.
_EPSILON = 1e-9


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits. Percentages are of account equity (1.0 means 1%)."""

    risk_per_trade_pct: float = 1.0
    max_position_pct: float = 10.0
    max_notional: float = 25_000.0
    min_confidence: int = 60
    allow_short: bool = False
    max_position: int | None = None  # shares held at most, whichever broker (None: no cap)

    def __post_init__(self) -> None:
        for name in ("risk_per_trade_pct", "max_position_pct", "max_notional"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"RiskLimits.{name} must be a positive number, got {value}")
        if not 0 <= self.min_confidence <= 100:
            raise ValueError(f"RiskLimits.min_confidence must be 0-100, got {self.min_confidence}")
        if self.max_position is not None and self.max_position < 0:
            raise ValueError(f"RiskLimits.max_position must be >= 0, got {self.max_position}")


@dataclass(frozen=True)
class SizingDecision:
    """The size and why. ``risk_amount`` is the loss at the stop, ``notional`` the cost at entry."""

    quantity: int
    reasons: list[str] = field(default_factory=list)
    risk_amount: float = 0.0
    notional: float = 0.0

    def to_record(self) -> dict[str, int | float | list[str]]:
        """The sizing as the order's decision record shows it."""
        return {
            "quantity": self.quantity,
            "reasons": list(self.reasons),
            "risk_amount": self.risk_amount,
            "notional": self.notional,
        }


def size_order(
    *,
    equity: float,
    entry: float,
    stop: float,
    confidence: int,
    limits: RiskLimits = RiskLimits(),
    held: int = 0,
) -> SizingDecision:
    """Size a trade entering at ``entry`` with a protective stop at ``stop``, adding to a
    position of ``held`` shares (``max_position`` bounds what is held after the fill).

    A stop above the entry means a short sale, refused unless ``limits.allow_short``.
    Commissions and slippage are not part of the risk amount.
    """
    refusal = _refusal(equity, entry, stop, confidence, limits)
    if refusal:
        return SizingDecision(quantity=0, reasons=[refusal])

    distance = abs(entry - stop)
    budget = equity * limits.risk_per_trade_pct / 100.0
    quantity = math.floor(budget / distance + _EPSILON)
    reasons = [
        f"risk budget {budget:,.2f} ({limits.risk_per_trade_pct}% of equity {equity:,.2f}) "
        f"over stop distance {distance:,.2f} allows {quantity} shares"
    ]
    position_cap = math.floor(equity * limits.max_position_pct / 100.0 / entry + _EPSILON)
    notional_cap = math.floor(limits.max_notional / entry + _EPSILON)
    caps = [
        (position_cap, f"max_position_pct {limits.max_position_pct}% of equity"),
        (notional_cap, f"max_notional {limits.max_notional:,.2f}"),
    ]
    if limits.max_position is not None:
        room = max(limits.max_position - abs(held), 0)
        caps.append((room, f"max_position {limits.max_position} shares (holding {held})"))
    for cap, name in caps:
        if cap < quantity:
            quantity = cap
            reasons.append(f"capped at {cap} shares by {name} at entry {entry:,.2f}")
    if quantity < 1:
        reasons.append("the caps leave less than 1 share: no order")
        return SizingDecision(quantity=0, reasons=reasons)
    return SizingDecision(
        quantity=quantity,
        reasons=reasons,
        risk_amount=round(quantity * distance, 2),
        notional=round(quantity * entry, 2),
    )


def _refusal(
    equity: float, entry: float, stop: float, confidence: int, limits: RiskLimits
) -> str | None:
    """Why no size can be computed at all, or None."""
    if confidence < limits.min_confidence:
        return f"confidence {confidence} is below the minimum {limits.min_confidence}"
    if not all(math.isfinite(v) for v in (equity, entry, stop)):
        return f"equity, entry and stop must be numbers (got {equity}, {entry}, {stop})"
    if equity <= 0:
        return f"equity {equity:,.2f} is not positive"
    if entry <= 0 or stop <= 0:
        return f"entry {entry} and stop {stop} must be positive prices"
    if abs(entry - stop) <= 0:
        return f"stop distance is 0 (entry {entry} equals stop {stop})"
    if stop > entry and not limits.allow_short:
        return (
            f"stop {stop:,.2f} above entry {entry:,.2f} means a short sale, "
            "which the risk limits do not allow (allow_short=False)"
        )
    return None
