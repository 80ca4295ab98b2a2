"""What to do with a signal, given the position and the risk limits. Pure: no broker, no I/O.

BUY with no position -> bracket buy sized by risk; SELL with a position -> close it; anything
else (HOLD, not actionable, already long, nothing to close, kill switch, size 0) -> no order,
and the reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ibkr_assets.domain.orders import BracketRequest, CloseRequest
from ibkr_assets.domain.signal import TradingSignal
from ibkr_assets.domain.sizing import RiskLimits, SizingDecision, size_order


@dataclass(frozen=True)
class OrderDecision:
    kind: Literal["bracket", "close", "none"]
    reason: str
    request: BracketRequest | CloseRequest | None = None
    sizing: SizingDecision | None = None


def decide(
    signal: TradingSignal,
    *,
    order_ref: str,
    position: int,
    equity: float,
    limits: RiskLimits,
    kill_switch: str | None = None,
) -> OrderDecision:
    """The order (or the reason for none) for ``signal``."""
    if kill_switch:
        return OrderDecision("none", f"kill switch active: {kill_switch}; no new orders")
    if signal.action == "HOLD":
        why = "; ".join(signal.rejections) if signal.rejections else "signal is HOLD"
        return OrderDecision("none", why)
    if not signal.is_actionable:
        return OrderDecision("none", "signal is not actionable")
    if signal.action == "SELL":
        if position > 0:
            return OrderDecision(
                "close",
                f"SELL signal closes the open position of {position} shares",
                CloseRequest(order_ref=order_ref, symbol=signal.symbol, session=signal.as_of),
            )
        if not limits.allow_short:
            return OrderDecision(
                "none", "SELL signal but no position to close (shorting is not configured)"
            )
    if signal.action == "BUY" and position > 0:
        return OrderDecision("none", f"BUY signal but already long {position} shares")
    sizing = size_order(
        equity=equity,
        entry=signal.entry_price,
        stop=signal.stop_loss,
        confidence=signal.confidence,
        limits=limits,
        held=position,
    )
    if sizing.quantity < 1:
        return OrderDecision("none", "size is 0: " + "; ".join(sizing.reasons), sizing=sizing)
    request = BracketRequest(
        order_ref=order_ref,
        symbol=signal.symbol,
        side=signal.action,
        quantity=sizing.quantity,
        entry_price=signal.entry_price,
        take_profit=signal.take_profit,
        stop_loss=signal.stop_loss,
        session=signal.as_of,
    )
    return OrderDecision(
        "bracket", f"{signal.action} bracket of {sizing.quantity} shares", request, sizing
    )
