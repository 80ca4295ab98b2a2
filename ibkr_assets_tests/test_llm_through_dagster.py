"""The OpenAI path end to end: the real client against an OpenAI-compatible server on 127.0.0.1,
the replay cache across materializations, replay mode, and fail-closed signals."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import failure_messages, job_name, node, run_partitions
from ibkr_assets_tests.openai_stub import answer, drip, non_json, start_openai_stub

pytestmark = pytest.mark.slow  # the whole graph against an OpenAI-compatible server

KEY = "2025-03-14|AAPL"


@pytest.fixture
def openai_server():
    with start_openai_stub() as stub:
        yield stub


@pytest.fixture
def openai_deployment(deployment, openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    deployment(
        strategy={
            "analyst": {
                "provider": "openai",
                "base_url": openai_server.base_url,
                "model": "stub-model",
            }
        },
        LLM_MAX_RETRIES="1",
    )
    return openai_server


def _buy_answer() -> str:
    close = float(SampleBarSource().fetch_bars("AAPL", dt.date(2025, 3, 14), 1)["close"].iloc[-1])
    return json.dumps(
        {
            "action": "BUY",
            "confidence": 80,
            "entry_price": close,
            "stop_loss": round(close * 0.97, 4),
            "take_profit": round(close * 1.06, 4),
            "reasoning": "Uptrend above both moving averages.",
        }
    )


def _rows(tmp_path, **filters) -> dict[str, dict]:
    store = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    return {r["step_name"]: r for r in store.lineage_rows(**filters)}


def test_openai_analysis_drives_the_signal_and_records_tokens_and_cost(
    openai_deployment, instance, tmp_path
):
    stub = openai_deployment
    stub.script(answer(_buy_answer(), prompt_tokens=1000, completion_tokens=100))
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert result.success
    assert stub.request_count == 1
    body = stub.bodies[0]
    assert body["model"] == "stub-model"
    assert body["response_format"]["type"] == "json_schema"
    images = [
        p
        for m in body["messages"]
        for p in (m["content"] if isinstance(m["content"], list) else [])
        if p.get("type") == "image_url"
    ]
    assert len(images) == 2 and all(
        i["image_url"]["url"].startswith("data:image/png;base64,") for i in images
    )
    rows = _rows(tmp_path, execution_id=result.run_id)
    analysis = rows["llm_analysis"]["output_data"]
    assert analysis["provider"] == "openai" and analysis["valid"] is True
    assert (analysis["input_tokens"], analysis["output_tokens"]) == (1000, 100)
    assert analysis["cost_usd"] == pytest.approx(1000 * 0.15 / 1e6 + 100 * 0.60 / 1e6)
    signal = rows["trading_signal"]["output_data"]
    assert signal["action"] == "BUY" and signal["is_actionable"] is True


def test_second_materialization_reuses_the_stored_response_without_a_request(
    openai_deployment, instance, tmp_path
):
    stub = openai_deployment
    stub.script(answer(_buy_answer()))
    first = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    second = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert first.success and second.success
    assert stub.request_count == 1  # the second run paid for nothing
    one, two = (
        _rows(tmp_path, execution_id=first.run_id),
        _rows(tmp_path, execution_id=second.run_id),
    )
    assert one["llm_analysis"]["output_data"]["cache_hit"] is False
    assert two["llm_analysis"]["output_data"]["cache_hit"] is True
    assert two["llm_analysis"]["output_data"]["cost_usd"] == 0
    # The decision is reproduced byte for byte from what was stored.
    assert (
        one["trading_signal"]["output_data"]["object"]["sha256"]
        == two["trading_signal"]["output_data"]["object"]["sha256"]
    )
    meta = second.asset_materializations_for_node(node("llm_analysis"))[0].metadata
    assert meta["cache_hits"].value == 1


def test_replay_mode_refuses_to_call_the_network(openai_deployment, deployment, instance, tmp_path):
    stub = openai_deployment
    deployment(LLM_CACHE_MODE="replay")
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert not result.success
    assert stub.request_count == 0
    assert any("replay mode: no stored response" in m for m in failure_messages(result))
    row = _rows(tmp_path, partition_key=KEY)["llm_analysis"]
    assert row["status"] == "error" and "AAPL" in row["error"]


def test_replay_mode_reproduces_a_stored_decision(
    openai_deployment, deployment, instance, tmp_path
):
    stub = openai_deployment
    stub.script(answer(_buy_answer()))
    original = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    deployment(LLM_CACHE_MODE="replay")
    replayed = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert original.success and replayed.success
    assert stub.request_count == 1
    a, b = (
        _rows(tmp_path, execution_id=original.run_id),
        _rows(tmp_path, execution_id=replayed.run_id),
    )
    for step in ("market_data", "indicators", "daily_chart", "weekly_chart", "trading_signal"):
        assert (
            a[step]["output_data"]["object"]["sha256"] == b[step]["output_data"]["object"]["sha256"]
        ), step


def test_malformed_answer_fails_closed_to_hold_and_keeps_the_raw_response(
    openai_deployment, instance, tmp_path
):
    stub = openai_deployment
    stub.script(answer("Sure! I think you should BUY {not json"))
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert result.success  # the run goes on
    rows = _rows(tmp_path, execution_id=result.run_id)
    assert rows["llm_analysis"]["output_data"]["valid"] is False
    assert rows["llm_analysis"]["error"]
    assert rows["trading_signal"]["output_data"]["action"] == "HOLD"
    store = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    (llm,) = store.artifact_rows(type="llm", execution_id=result.run_id)
    assert llm["response"] == "Sure! I think you should BUY {not json"


def test_a_proxy_page_holds_the_session_undecided_and_a_rerun_decides_again(
    openai_deployment, instance, tmp_path
):
    stub = openai_deployment
    stub.script(non_json())  # HTTP 200 with a proxy's HTML page
    first = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert first.success  # fail closed, the range goes on
    rows = _rows(tmp_path, execution_id=first.run_id)
    analysis = rows["llm_analysis"]
    assert analysis["output_data"]["valid"] is False and analysis["output_data"]["final"] is False
    assert "content type text/html" in analysis["error"]
    signal = rows["trading_signal"]["output_data"]
    assert signal["action"] == "HOLD" and signal["decision_final"] is False
    meta = first.asset_materializations_for_node(node("trading_signal"))[0].metadata
    assert meta["decision_final"].value is False and meta["not_final"].value == 1

    stub.script(answer(_buy_answer()))  # the model is back
    second = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert second.success and stub.request_count == 2  # asked again, not replayed
    rows = _rows(tmp_path, execution_id=second.run_id)
    assert rows["llm_analysis"]["output_data"]["cache_hit"] is False
    signal = rows["trading_signal"]["output_data"]
    assert signal["action"] == "BUY" and signal["decision_final"] is True


def test_the_llm_timeout_is_the_budget_of_the_whole_call(
    openai_deployment, deployment, instance, tmp_path
):
    stub = openai_deployment
    deployment(LLM_TIMEOUT="2")
    stub.script(drip(answer(_buy_answer()), seconds_per_byte=1.0, count=30))  # 30 s in all
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert result.success
    rows = _rows(tmp_path, execution_id=result.run_id)
    assert "within the 2s budget (1 attempt)" in rows["llm_analysis"]["error"]
    signal = rows["trading_signal"]["output_data"]
    assert signal["action"] == "HOLD" and signal["decision_final"] is False
