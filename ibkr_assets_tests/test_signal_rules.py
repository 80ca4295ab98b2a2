"""Sanity checks before a signal is actionable; a failed check turns it into HOLD with the reason."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from ibkr_assets.domain.signal import SignalProposal, SignalRules, build_signal, hold_proposal

RULES = SignalRules(min_risk_reward=1.5, max_entry_distance_pct=3.0, min_confidence=60)
DAY = dt.date(2025, 3, 14)


def proposal(action="BUY", confidence=75, entry=100.0, stop=97.0, target=106.0) -> SignalProposal:
    return SignalProposal(
        action=action,
        confidence=confidence,
        entry_price=entry,
        stop_loss=stop,
        take_profit=target,
        reasoning="r",
    )


def signal(p: SignalProposal, last_close: float = 100.0):
    return build_signal(p, symbol="AAPL", as_of=DAY, last_close=last_close, rules=RULES)


def test_sound_buy_is_actionable_with_its_risk_reward():
    s = signal(proposal())
    assert s.action == "BUY" and s.is_actionable
    assert s.risk_reward == pytest.approx(2.0)
    assert s.rejections == []


def test_sound_sell_is_actionable():
    s = signal(proposal("SELL", entry=100.0, stop=103.0, target=94.0))
    assert s.action == "SELL" and s.is_actionable
    assert s.risk_reward == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("p", "reason"),
    [
        (proposal(stop=101.0), "stop-loss 101.0 is on the wrong side"),
        (proposal(target=99.0), "take-profit 99.0 is on the wrong side"),
        (proposal("SELL", stop=97.0, target=94.0), "stop-loss 97.0 is on the wrong side"),
        (proposal(target=103.0), "risk/reward 1.0 is below the minimum 1.5"),
        (proposal(entry=110.0, stop=107.0, target=116.0), "is 10.00% from the last close"),
        (proposal(confidence=40), "confidence 40 is below the threshold 60"),
        (proposal(entry=None), "all required"),
        (proposal(stop=float("nan")), "must be finite numbers"),
    ],
)
def test_failed_sanity_check_turns_the_signal_into_hold_with_the_reason(p, reason):
    s = signal(p)
    assert s.action == "HOLD"
    assert not s.is_actionable
    assert s.proposed_action == p.action
    assert any(reason in r for r in s.rejections), s.rejections
    assert reason in s.reasoning


def test_hold_is_never_actionable_and_has_no_rejections():
    s = signal(hold_proposal("no setup"))
    assert s.action == "HOLD" and not s.is_actionable and s.rejections == []


def test_proposal_schema_refuses_out_of_range_confidence_and_extra_fields():
    with pytest.raises(ValidationError):
        proposal(confidence=150)
    with pytest.raises(ValidationError):
        SignalProposal.model_validate({**proposal().model_dump(), "leverage": 10})
