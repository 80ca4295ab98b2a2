"""Audit rows come from explicit serializers: their keys are pinned here, so renaming a field
of an internal dataclass cannot change what a lineage row or an order record holds."""

from __future__ import annotations

import dataclasses

from ibkr_assets.domain.quality import GateResult, QualityReport
from ibkr_assets.domain.signal import SignalRules
from ibkr_assets.domain.sizing import SizingDecision
from ibkr_assets.execution.decision import OrderDecision
from ibkr_assets.execution.placement import _describe


def test_signal_rules_record_names_each_rule():
    rules = SignalRules(min_risk_reward=2.0, max_entry_distance_pct=1.5, min_confidence=70)
    assert rules.to_record() == {
        "min_risk_reward": 2.0,
        "max_entry_distance_pct": 1.5,
        "min_confidence": 70,
    }
    assert rules.to_record() == dataclasses.asdict(rules)  # what the rows held before


def test_sizing_record_names_quantity_reasons_risk_and_notional():
    sizing = SizingDecision(quantity=12, reasons=["budget", "cap"], risk_amount=99.5, notional=1e3)
    record = sizing.to_record()
    assert list(record) == ["quantity", "reasons", "risk_amount", "notional"]
    assert record == {"quantity": 12, "reasons": ["budget", "cap"], "risk_amount": 99.5,
                      "notional": 1e3}  # fmt: skip
    assert record["reasons"] is not sizing.reasons


def test_order_decision_record_keys():
    sized = OrderDecision("none", "size is 0", sizing=SizingDecision(quantity=0, reasons=["x"]))
    assert list(_describe(sized)) == ["kind", "reason", "request", "sizing"]
    assert _describe(sized)["sizing"] == {"quantity": 0, "reasons": ["x"], "risk_amount": 0.0,
                                          "notional": 0.0}  # fmt: skip
    assert _describe(OrderDecision("none", "HOLD"))["sizing"] is None


def test_quality_report_record_names_each_gate_field():
    gate = GateResult("no_nulls", False, "2 row(s) with nulls", ["2025-03-11", "2025-03-12"])
    assert gate.to_record() == {
        "name": "no_nulls",
        "passed": False,
        "detail": "2 row(s) with nulls",
        "examples": ["2025-03-11", "2025-03-12"],
    }
    held_before = {k: v for k, v in dataclasses.asdict(gate).items() if k != "rows"}
    assert gate.to_record() == held_before  # failing positions go to the validation report only
    report = QualityReport([gate, GateResult("not_stale", True, "ok")])
    assert report.to_json() == {
        "passed": False,
        "gates": [
            gate.to_record(),
            {"name": "not_stale", "passed": True, "detail": "ok", "examples": []},
        ],
    }
