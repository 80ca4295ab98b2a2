"""Signals become orders in the paper simulator, fills move positions, snapshots balance, and an
order is never sent twice: reruns, crashes between sending and recording, kill switch."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ibkr_assets.brokers.paper import PaperBroker
from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.order_records import OrderRecords
from ibkr_assets_tests.helpers import failure_messages, job_name, node, run_partitions
from ibkr_assets_tests.openai_stub import answer, start_openai_stub

pytestmark = pytest.mark.slow  # the whole graph through orders and the portfolio

DAYS = ["2025-03-10", "2025-03-11", "2025-03-12", "2025-03-13"]
REF = "ibkr-assets:momentum:AAPL:2025-03-10"


def _close(day: str) -> float:
    return float(
        SampleBarSource().fetch_bars("AAPL", dt.date.fromisoformat(day), 1)["close"].iloc[-1]
    )


def _answer(action: str, day: str):
    if action == "HOLD":
        body = {"action": "HOLD", "confidence": 50, "entry_price": None, "stop_loss": None,
                "take_profit": None, "reasoning": "No setup."}  # fmt: skip
    else:
        c, sign = _close(day), 1 if action == "BUY" else -1
        body = {"action": action, "confidence": 80, "entry_price": c, "stop_loss": round(c * (1 - 0.08 * sign), 4),
                "take_profit": round(c * (1 + 0.16 * sign), 4), "reasoning": f"{action} setup."}  # fmt: skip
    return answer(json.dumps(body))


@pytest.fixture
def stub(deployment, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("IBKR_ASSETS_KILL_SWITCH", raising=False)
    with start_openai_stub() as server:
        deployment(
            strategy={"analyst": {"provider": "openai", "base_url": server.base_url}},
            LLM_MAX_RETRIES="0",
        )
        yield server


def _day(instance, stub, action: str, day: str, raise_on_error: bool = False):
    stub.script(_answer(action, day))
    return run_partitions(instance, symbol="AAPL", start=day, job_name=job_name("trading_workflow_job"),
                          raise_on_error=raise_on_error)  # fmt: skip


def _paper(tmp_path) -> PaperBroker:
    return PaperBroker(
        f"sqlite:///{tmp_path / 'home' / 'lineage.db'}", account="momentum", mode="backtest"
    )


def _order_row(tmp_path, day: str, execution_id: str | None = None) -> dict:
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(
        partition_key=f"{day}|AAPL", step_name="order", execution_id=execution_id
    )
    return rows[-1]


def test_buy_becomes_a_bracket_fills_then_sell_closes_and_snapshots_balance(
    stub, instance, tmp_path
):
    for action, day in zip(["BUY", "HOLD", "SELL", "HOLD"], DAYS, strict=True):
        assert _day(instance, stub, action, day).success, day
    buy = _order_row(tmp_path, DAYS[0])["output_data"]
    assert (buy["decision"], buy["outcome"], buy["mode"]) == ("bracket", "placed", "backtest")
    assert sorted(o["role"] for o in buy["orders"]) == ["parent", "stop_loss", "take_profit"]
    assert all(o["order_ref"] == REF for o in buy["orders"])
    hold = _order_row(tmp_path, DAYS[1])["output_data"]
    assert hold["outcome"] == "none" and hold["decision"] == "none"
    assert hold["reason"] == "signal is HOLD"
    sell = _order_row(tmp_path, DAYS[2])["output_data"]
    assert sell["decision"] == "close" and sell["position_before"] > 0

    paper = _paper(tmp_path)
    statuses = [
        e["status"]
        for e in paper.order_events(REF)
        if e["broker_order_id"] == buy["orders"][0]["broker_order_id"]
    ]
    assert statuses[0] in ("pending_submit", "submitted") and statuses[-1] == "filled"
    assert paper.positions() == [] or all(p.quantity == 0 for p in paper.positions())

    from ibkr_assets.definitions import build_definitions

    result = (
        build_definitions()
        .resolve_job_def(job_name("portfolio_job"))
        .execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": DAYS[0],
                "dagster/asset_partition_range_end": DAYS[-1],
            },
        )
    )
    assert result.success
    store = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    snaps = {
        r["partition_key"]: r["output_data"]
        for r in store.lineage_rows(step_name="portfolio_snapshot")
    }
    assert sorted(snaps) == DAYS
    for snap in snaps.values():
        assert snap["cash"] + snap["market_value"] == pytest.approx(snap["equity"], abs=0.01)
    assert snaps[DAYS[1]]["positions"][0]["symbol"] == "AAPL"  # held after the entry filled
    assert snaps[DAYS[-1]]["positions"] == []  # closed at the next open
    fills = paper.executions()
    cash_flow = sum(
        (-1 if f.side == "BUY" else 1) * f.quantity * f.price - f.commission for f in fills
    )
    assert snaps[DAYS[-1]]["realized_pnl"] == pytest.approx(cash_flow, abs=0.01)
    assert snaps[DAYS[-1]]["cash"] == pytest.approx(100_000 + cash_flow, abs=0.01)
    events = result.asset_materializations_for_node(node("portfolio_snapshot"))
    for event in events:  # each date's page shows that date's account, not the range's last
        assert event.metadata["equity"].value == pytest.approx(
            snaps[event.partition]["equity"], abs=0.01
        )
    held = {e.partition: e.metadata["positions"].value.records for e in events}
    assert held[DAYS[1]][0].data["symbol"] == "AAPL" and held[DAYS[-1]] == []
    artifact_types = {a["type"] for a in store.artifact_rows(type="portfolio")} | {
        a["type"] for a in store.artifact_rows(type="order")
    }
    assert artifact_types == {"portfolio", "order"}
    # The portfolio value lands in the MLflow run that holds the partition's chart and signal.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("momentum/trading_workflow_AAPL")
    for day in DAYS:
        (run,) = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.partition_key = '{day}|AAPL'"
        )
        assert run.data.metrics["portfolio_value"] == pytest.approx(snaps[day]["equity"])
        assert run.data.tags["signal_action"] in ("BUY", "SELL", "HOLD")


def test_rerunning_a_partition_never_sends_the_order_twice(stub, instance, tmp_path):
    first = _day(instance, stub, "BUY", DAYS[0])
    second = _day(instance, stub, "BUY", DAYS[0])
    assert first.success and second.success
    assert _order_row(tmp_path, DAYS[0], second.run_id)["output_data"]["outcome"] == "existing"
    assert len(_paper(tmp_path).orders_by_ref(REF)) == 3


def test_crash_between_sending_and_recording_is_healed_by_reconciliation(
    stub, instance, tmp_path, monkeypatch
):
    real_write = OrderRecords.write

    def crash_after_send(self, order_ref, *, state, **fields):
        if state == "sent":
            raise SystemError("process killed after the broker accepted the order")
        return real_write(self, order_ref, state=state, **fields)

    monkeypatch.setattr(OrderRecords, "write", crash_after_send)
    crashed = _day(instance, stub, "BUY", DAYS[0])
    assert not crashed.success
    assert any("process killed" in m for m in failure_messages(crashed))
    records = OrderRecords(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    assert records.get(REF)["state"] == "sending"
    assert len(_paper(tmp_path).orders_by_ref(REF)) == 3  # the broker has it

    monkeypatch.setattr(OrderRecords, "write", real_write)
    healed = _day(instance, stub, "BUY", DAYS[0])
    assert healed.success
    assert _order_row(tmp_path, DAYS[0], healed.run_id)["output_data"]["outcome"] == "reconciled"
    assert records.get(REF)["state"] == "reconciled"
    assert len(_paper(tmp_path).orders_by_ref(REF)) == 3  # nothing was sent twice


def test_kill_switch_blocks_new_orders_and_the_session_stays_decidable(stub, instance, tmp_path):
    (tmp_path / "home").mkdir(exist_ok=True)
    switch = tmp_path / "home" / "KILL_SWITCH"
    switch.write_text("stop")
    assert _day(instance, stub, "BUY", DAYS[0]).success
    row = _order_row(tmp_path, DAYS[0])
    assert row["status"] == "blocked"
    assert row["output_data"]["reason"].startswith("kill switch active")
    paper = _paper(tmp_path)
    assert paper.orders_by_ref(REF) == []
    assert paper.last_synced("AAPL") is None  # the simulator did not move
    assert OrderRecords(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").get(REF) is None

    switch.unlink()
    again = _day(instance, stub, "BUY", DAYS[0])
    assert _order_row(tmp_path, DAYS[0], again.run_id)["output_data"]["outcome"] == "placed"
    assert len(paper.orders_by_ref(REF)) == 3


def test_kill_switch_environment_variable_blocks_too(stub, instance, tmp_path, monkeypatch):
    monkeypatch.setenv("IBKR_ASSETS_KILL_SWITCH", "1")
    assert _day(instance, stub, "BUY", DAYS[0]).success
    assert (
        "IBKR_ASSETS_KILL_SWITCH is set" in _order_row(tmp_path, DAYS[0])["output_data"]["reason"]
    )
