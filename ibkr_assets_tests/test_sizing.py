"""Position sizing under the risk limits: which rule decides the size, and why nothing is sent."""

from __future__ import annotations

import pytest

from ibkr_assets.domain.sizing import RiskLimits, size_order

LIMITS = RiskLimits()  # 1% risk, 10% of equity, $25,000 notional, confidence 60, long only


def test_risk_budget_decides_when_no_cap_binds() -> None:
    decision = size_order(equity=100_000, entry=50.0, stop=40.0, confidence=80, limits=LIMITS)
    assert decision.quantity == 100  # $1,000 risk / $10 per share
    assert decision.risk_amount == 1_000.0 and decision.notional == 5_000.0
    assert len(decision.reasons) == 1 and "allows 100 shares" in decision.reasons[0]


def test_max_position_pct_caps_a_tight_stop() -> None:
    decision = size_order(equity=100_000, entry=100.0, stop=98.0, confidence=80, limits=LIMITS)
    assert decision.quantity == 100  # risk allows 500; 10% of equity buys 100
    assert decision.notional == 10_000.0 and decision.risk_amount == 200.0
    assert any("max_position_pct" in r and "100 shares" in r for r in decision.reasons)
    assert not any("max_notional" in r for r in decision.reasons)


def test_max_notional_caps_a_large_account() -> None:
    decision = size_order(equity=1_000_000, entry=100.0, stop=99.0, confidence=80, limits=LIMITS)
    assert decision.quantity == 250
    assert decision.notional == 25_000.0
    assert "max_notional" in decision.reasons[-1]


def test_refusals_are_a_zero_size_with_the_reason() -> None:
    low = size_order(equity=100_000, entry=100.0, stop=95.0, confidence=59, limits=LIMITS)
    flat = size_order(equity=100_000, entry=100.0, stop=100.0, confidence=90, limits=LIMITS)
    broke = size_order(equity=0.0, entry=100.0, stop=95.0, confidence=90, limits=LIMITS)
    assert (low.quantity, flat.quantity, broke.quantity) == (0, 0, 0)
    assert "confidence 59 is below the minimum 60" in low.reasons[0]
    assert "stop distance is 0" in flat.reasons[0]
    assert "not positive" in broke.reasons[0]
    assert low.notional == low.risk_amount == 0.0


def test_caps_that_leave_less_than_one_share_send_nothing() -> None:
    decision = size_order(equity=100_000, entry=30_000.0, stop=29_000.0, confidence=90)
    assert decision.quantity == 0
    assert "less than 1 share" in decision.reasons[-1]
    assert any("capped at 0 shares" in r for r in decision.reasons)


def test_stop_above_entry_is_a_short_refused_unless_allowed() -> None:
    refused = size_order(equity=100_000, entry=100.0, stop=105.0, confidence=90, limits=LIMITS)
    assert refused.quantity == 0 and "short sale" in refused.reasons[0]
    shorting = RiskLimits(allow_short=True)
    allowed = size_order(equity=100_000, entry=100.0, stop=105.0, confidence=90, limits=shorting)
    assert allowed.quantity == 100  # $1,000 / $5 = 200, capped by 10% of equity at 100


def test_floor_does_not_lose_a_share_to_floating_point() -> None:
    roomy = RiskLimits(max_position_pct=1_000.0, max_notional=1e9)
    decision = size_order(equity=100_000, entry=10.0, stop=9.9, confidence=90, limits=roomy)
    assert decision.quantity == 10_000  # 1000 / 0.1 is 9999.999... in binary floating point


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="risk_per_trade_pct"):
        RiskLimits(risk_per_trade_pct=0)
    with pytest.raises(ValueError, match="min_confidence"):
        RiskLimits(min_confidence=101)


def test_max_position_caps_every_broker_in_the_domain() -> None:
    capped = RiskLimits(max_position=30)
    fresh = size_order(equity=100_000, entry=50.0, stop=40.0, confidence=80, limits=capped)
    assert fresh.quantity == 30  # risk allows 100
    assert "max_position 30 shares (holding 0)" in fresh.reasons[-1]
    adding = size_order(
        equity=100_000, entry=50.0, stop=40.0, confidence=80, limits=capped, held=-25
    )
    assert adding.quantity == 5  # a short of 25 may grow by 5 at most
    full = size_order(equity=100_000, entry=50.0, stop=40.0, confidence=80, limits=capped, held=30)
    assert full.quantity == 0 and "less than 1 share" in full.reasons[-1]
    with pytest.raises(ValueError, match="max_position must be >= 0"):
        RiskLimits(max_position=-1)
