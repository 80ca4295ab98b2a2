"""The whole graph for real partitions: charts, analysis, signal, lineage, artifacts and MLflow."""

from __future__ import annotations

import hashlib
import json

import pytest

from ibkr_assets.domain.chart_image import PNG_SIGNATURE, ChartImage
from ibkr_assets_tests.helpers import (
    home_lineage,
    home_mlflow,
    job_name,
    node,
    read_file_uri,
    run_partitions,
)

KEY = "2025-03-14|AAPL"


def test_one_partition_produces_charts_analysis_signal_and_their_records(
    deployment, instance, tmp_path
):
    deployment()
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert result.success
    rows = {r["step_name"]: r for r in home_lineage(tmp_path).lineage_rows(partition_key=KEY)}
    assert [s for s, _ in sorted(rows.items(), key=lambda kv: kv[1]["step_number"])] == [
        "market_data",
        "market_data_quality",
        "indicators",
        "daily_chart",
        "weekly_chart",
        "llm_analysis",
        "trading_signal",
        "order",
    ]
    assert {r["status"] for r in rows.values()} == {"success"}

    # Charts: PNG objects of the configured size at the seed's ml-experiments layout.
    for timeframe in ("daily", "weekly"):
        out = rows[f"{timeframe}_chart"]["output_data"]
        png = read_file_uri(out["object"]["uri"])
        assert png.startswith(PNG_SIGNATURE)
        assert ChartImage.from_png("AAPL", None, timeframe, png).size == (1200, 900)
        assert (
            f"ml-experiments/momentum/trading_workflow_AAPL/charts/2025-03-14_{timeframe}."
            in out["object"]["uri"]
        )
        assert hashlib.sha256(png).hexdigest() == out["object"]["sha256"]

    # The analysis names the rules analyst honestly and records the prompt template.
    analysis = rows["llm_analysis"]
    assert analysis["output_data"]["provider"] == "rules"
    assert analysis["input_data"]["template_id"] == "chart_analysis"
    assert (
        analysis["input_data"]["images"]["daily"]
        == rows["daily_chart"]["output_data"]["object"]["sha256"]
    )

    # The signal and its artifacts rows.
    signal = rows["trading_signal"]["output_data"]
    assert signal["action"] in {"BUY", "SELL", "HOLD"}
    assert signal["proposed_action"] == analysis["output_data"]["signal_action"]
    artifacts = home_lineage(tmp_path).artifact_rows(partition_key=KEY)
    types = sorted(a["type"] for a in artifacts)
    assert types == ["chart", "chart", "llm", "market_data", "order", "signal", "validation"]
    llm_row = next(a for a in artifacts if a["type"] == "llm")
    assert "AAPL" in llm_row["prompt"] and "2025-03-14" in llm_row["prompt"]
    assert llm_row["model_name"] == "rules-v1"
    chart_row = next(a for a in artifacts if a["type"] == "chart")
    assert chart_row["chart_data"]["timeframe"] in {"daily", "weekly"}
    assert chart_row["image_path"].startswith("file://")

    # One MLflow run for the partition with the seed's tags, params, metrics and artifacts.
    run_ids = {a["mlflow_run_id"] for a in artifacts if a["type"] not in ("market_data", "order")}
    assert len(run_ids) == 1
    (run_id,) = run_ids
    run = home_mlflow(tmp_path).get_run(run_id)
    assert run.data.tags["symbol"] == "AAPL"
    assert run.data.tags["partition_key"] == KEY
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.tags["signal_action"] == signal["action"]
    assert run.data.params["analyst_provider"] == "rules"
    assert run.data.params["template_id"] == "chart_analysis"
    assert run.data.metrics["latest_price"] == rows["market_data"]["output_data"]["latest_price"]
    assert run.data.metrics["confidence_score"] == signal["confidence"]
    names = {f.path for f in home_mlflow(tmp_path).list_artifacts(run_id)}
    assert {
        "daily_chart.png",
        "weekly_chart.png",
        "trading_signal.json",
        "prompt.txt",
        "response.txt",
    } <= names
    experiment = home_mlflow(tmp_path).get_experiment(run.info.experiment_id)
    assert experiment.name == "momentum/trading_workflow_AAPL"
    meta = result.asset_materializations_for_node(node("trading_signal"))[0].metadata
    assert meta["mlflow_run_ids"].value == {KEY: run_id}


def test_holiday_flows_through_the_graph_as_market_closed(deployment, instance, tmp_path):
    deployment()
    result = run_partitions(
        instance, symbol="AAPL", start="2025-07-04", job_name=job_name("trading_workflow_job")
    )
    assert result.success
    rows = home_lineage(tmp_path).lineage_rows(partition_key="2025-07-04|AAPL")
    statuses = {r["step_name"]: r["status"] for r in rows}
    assert (
        statuses["daily_chart"]
        == statuses["llm_analysis"]
        == statuses["trading_signal"]
        == "market_closed"
    )
    assert not [
        a
        for a in home_lineage(tmp_path).artifact_rows(partition_key="2025-07-04|AAPL")
        if a["type"] != "market_data"
    ]


@pytest.mark.slow
def test_range_run_renders_every_chart_and_signal(deployment, instance, tmp_path):
    deployment(CHART_WORKERS="2")
    result = run_partitions(
        instance,
        symbol="MSFT",
        start="2025-03-12",
        end="2025-03-14",
        job_name=job_name("trading_workflow_job"),
    )
    assert result.success
    rows = home_lineage(tmp_path).lineage_rows(
        execution_id=result.run_id, step_name="trading_signal"
    )
    assert sorted(r["partition_key"] for r in rows) == [f"2025-03-{d}|MSFT" for d in (12, 13, 14)]
    charts = home_lineage(tmp_path).lineage_rows(
        execution_id=result.run_id, step_name="daily_chart"
    )
    shas = {r["output_data"]["object"]["sha256"] for r in charts}
    assert len(shas) == 3  # a different chart per day
    stored = json.loads(read_file_uri(rows[0]["output_data"]["object"]["uri"]))
    assert stored["symbol"] == "MSFT"
