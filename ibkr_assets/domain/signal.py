"""Trading signals: what an analyst proposes, and the checks before it may become an order.

``SignalProposal`` is the schema every analyst fills (the OpenAI path receives it as a JSON
schema for structured output). ``build_signal`` turns a proposal into a ``TradingSignal``; a
proposal that fails a sanity check becomes HOLD with the reasons kept. A signal whose analysis
failed (``decision_final=False``) is a HOLD for now, not the session's decision.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["BUY", "SELL", "HOLD"]


class SignalProposal(BaseModel):
    """An analyst's answer. Prices are absolute levels in the symbol's currency."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    confidence: int = Field(ge=0, le=100, description="0-100: how sure the analyst is")
    entry_price: float | None = Field(description="limit price to enter; null for HOLD")
    stop_loss: float | None = Field(description="protective stop; null for HOLD")
    take_profit: float | None = Field(description="profit target; null for HOLD")
    reasoning: str = Field(description="why, in a few sentences, citing the indicators")


def hold_proposal(reason: str) -> SignalProposal:
    """The fail-closed answer: no trade, and why."""
    return SignalProposal(
        action="HOLD",
        confidence=0,
        entry_price=None,
        stop_loss=None,
        take_profit=None,
        reasoning=reason,
    )


@dataclass(frozen=True)
class SignalRules:
    """Sanity limits a proposal must meet to be actionable."""

    min_risk_reward: float = 1.5
    max_entry_distance_pct: float = 3.0
    min_confidence: int = 60

    def to_record(self) -> dict[str, float | int]:
        """The rules as the signal's lineage row shows them."""
        return {
            "min_risk_reward": self.min_risk_reward,
            "max_entry_distance_pct": self.max_entry_distance_pct,
            "min_confidence": self.min_confidence,
        }


class TradingSignal(BaseModel):
    """The decision for one symbol and session, with everything needed to audit it.

    ``decision_final`` is False when the analysis behind the signal was not a valid proposal
    (a timeout, exhausted retries, a rate limit, an answer that was not a proposal): the signal
    is a fail-closed HOLD, nothing may be ordered on it, and the session must stay undecided so
    a later run (after the model recovers) analyses and decides again. A signal built on a
    valid proposal, a HOLD included, is final.
    """

    model_config = ConfigDict(extra="forbid")

    symbol: str
    as_of: dt.date
    action: Action
    confidence: int
    entry_price: float | None
    stop_loss: float | None
    take_profit: float | None
    risk_reward: float | None
    reasoning: str
    is_actionable: bool
    proposed_action: Action
    rejections: list[str]
    last_close: float
    decision_final: bool = True


def risk_reward(action: Action, entry: float, stop: float, target: float) -> float | None:
    """Reward over risk for a long (BUY) or short (SELL) trade; None when risk is not positive."""
    risk = entry - stop if action == "BUY" else stop - entry
    reward = target - entry if action == "BUY" else entry - target
    if risk <= 0:
        return None
    return round(reward / risk, 4)


def sanity_failures(proposal: SignalProposal, last_close: float, rules: SignalRules) -> list[str]:
    """Every reason ``proposal`` may not be acted on (empty when it may)."""
    if proposal.action == "HOLD":
        return []
    entry, stop, target = proposal.entry_price, proposal.stop_loss, proposal.take_profit
    if entry is None or stop is None or target is None:
        return ["entry, stop-loss and take-profit are all required for BUY/SELL"]
    if not all(math.isfinite(p) for p in (entry, stop, target)):
        return ["entry, stop-loss and take-profit must be finite numbers"]
    problems: list[str] = []
    if min(entry, stop, target) <= 0:
        problems.append("prices must be positive")
    long = proposal.action == "BUY"
    if (stop >= entry) if long else (stop <= entry):
        problems.append(
            f"stop-loss {stop} is on the wrong side of entry {entry} for {proposal.action}"
        )
    if (target <= entry) if long else (target >= entry):
        problems.append(
            f"take-profit {target} is on the wrong side of entry {entry} for {proposal.action}"
        )
    rr = risk_reward(proposal.action, entry, stop, target)
    if not problems and (rr is None or rr < rules.min_risk_reward):
        problems.append(f"risk/reward {rr} is below the minimum {rules.min_risk_reward}")
    distance = abs(entry - last_close) / last_close * 100 if last_close > 0 else float("inf")
    if distance > rules.max_entry_distance_pct:
        problems.append(
            f"entry {entry} is {distance:.2f}% from the last close {last_close} "
            f"(max {rules.max_entry_distance_pct}%)"
        )
    if proposal.confidence < rules.min_confidence:
        problems.append(
            f"confidence {proposal.confidence} is below the threshold {rules.min_confidence}"
        )
    return problems


def build_signal(
    proposal: SignalProposal,
    *,
    symbol: str,
    as_of: dt.date,
    last_close: float,
    rules: SignalRules,
    decision_final: bool = True,
) -> TradingSignal:
    """The signal for ``proposal``: HOLD with the reasons when any sanity check fails.

    ``decision_final=False`` (the analysis failed) always gives a non-actionable HOLD.
    """
    problems = sanity_failures(proposal, last_close, rules)
    if not decision_final and proposal.action != "HOLD":
        problems.append("the analysis failed, so the decision is not final")
    actionable = proposal.action != "HOLD" and not problems
    rr = None
    if proposal.action != "HOLD" and None not in (
        proposal.entry_price,
        proposal.stop_loss,
        proposal.take_profit,
    ):
        rr = risk_reward(
            proposal.action, proposal.entry_price, proposal.stop_loss, proposal.take_profit
        )
    return TradingSignal(
        symbol=symbol,
        as_of=as_of,
        action=proposal.action if actionable else "HOLD",
        confidence=proposal.confidence,
        entry_price=proposal.entry_price,
        stop_loss=proposal.stop_loss,
        take_profit=proposal.take_profit,
        risk_reward=rr,
        reasoning=proposal.reasoning
        if not problems
        else f"{proposal.reasoning} [HOLD: {'; '.join(problems)}]",
        is_actionable=actionable,
        proposed_action=proposal.action,
        rejections=problems,
        last_close=last_close,
        decision_final=decision_final,
    )
