"""The quality gates' validation report (always) and debug mode (``IBKR_ASSETS_DEBUG``): what a
user finds in the partition's MLflow run, the ``artifacts`` table and the DEBUG log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import (
    CSV_5_BARS,
    home_lineage,
    home_mlflow,
    read_file_uri,
    run_partitions,
)

pytestmark = pytest.mark.slow  # whole-graph runs

KEY = "2025-03-14|AAPL"


def _artifact_paths(client: MlflowClient, run_id: str, folder: str | None = None) -> set[str]:
    paths = set()
    for item in client.list_artifacts(run_id, folder):
        paths |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return paths


def test_validation_report_is_in_the_mlflow_run_and_an_artifact_row_without_debug(
    deployment, instance, tmp_path
):
    deployment()
    first = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    assert first.success
    (row,) = home_lineage(tmp_path).artifact_rows(partition_key=KEY, type="validation")
    assert row["step_name"] == "market_data_quality" and row["execution_id"] == first.run_id
    assert row["metadata"] == {"passed": True, "failed_gates": []}
    data = read_file_uri(row["uri"])
    assert hashlib.sha256(data).hexdigest() == row["sha256"]
    report = json.loads(data)
    assert report["partition_key"] == KEY and report["passed"] is True
    assert [g["name"] for g in report["gates"]][:2] == ["required_columns", "no_nulls"]
    assert len(report["gates"]) == 8
    assert all(g["passed"] and g["failed_rows"] == [] for g in report["gates"])

    client = home_mlflow(tmp_path)
    assert _artifact_paths(client, row["mlflow_run_id"]) == {"validation_report.json"}
    assert client.get_run(row["mlflow_run_id"]).data.tags["partition_key"] == KEY

    # A new execution of the same bars stores the same bytes.
    second = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    (again,) = home_lineage(tmp_path).artifact_rows(execution_id=second.run_id, type="validation")
    assert again["sha256"] == row["sha256"] and again["mlflow_run_id"] != row["mlflow_run_id"]


def test_a_failing_gates_report_lists_the_bars_that_failed(deployment, instance, tmp_path):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    bars = {10: "10,11,9,10,100", 11: "10,11,9,10,-5", 12: "10,8,9,10,100",
            13: "10,11,9,10,100", 14: "10,11,9,10,100"}  # fmt: skip
    rows = "\n".join(f"2025-03-{d},{bar}" for d, bar in bars.items())
    (csv_dir / "AAPL.csv").write_text("Date,Open,High,Low,Close,Volume\n" + rows + "\n")
    deployment(strategy=CSV_5_BARS, CSV_DIR=str(csv_dir))
    assert run_partitions(instance, symbol="AAPL", start="2025-03-14").success

    (row,) = home_lineage(tmp_path).artifact_rows(partition_key=KEY, type="validation")
    assert row["metadata"] == {
        "passed": False,
        "failed_gates": ["ohlc_consistent", "non_negative_volume"],
    }
    report = json.loads(read_file_uri(row["uri"]))
    gates = {g["name"]: g for g in report["gates"]}
    assert report["passed"] is False and gates["positive_prices"]["passed"] is True
    assert gates["non_negative_volume"]["failed_row_count"] == 1
    assert gates["non_negative_volume"]["failed_rows"] == [
        {"row": 1, "date": "2025-03-11", "open": 10.0, "high": 11.0, "low": 9.0,
         "close": 10.0, "volume": -5}
    ]  # fmt: skip
    assert [r["date"] for r in gates["ohlc_consistent"]["failed_rows"]] == ["2025-03-12"]
    assert "2025-03-12" in gates["ohlc_consistent"]["examples"][0]


DB_PASSWORD = "db-pass-7f3a9c"  # trust authentication ignores it; it must never be shown
API_KEY = "sk-debug-test-2b8e41"
VIEWER_TOKEN = "viewer-token-5d0c77"
SECRETS = (DB_PASSWORD, API_KEY, VIEWER_TOKEN)


def test_debug_mode_attaches_samples_and_debug_info_and_logs_sql_without_secrets(
    deployment, instance, tmp_path, postgres_url, monkeypatch, caplog
):
    import logging

    import sqlalchemy as sa

    from ibkr_assets_tests.helpers import job_name

    url = sa.make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(False)
    deployment(DEBUG="true", DATABASE_URL=url, VIEWER_TOKEN=VIEWER_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    caplog.set_level(logging.DEBUG)
    result = run_partitions(
        instance, symbol="AAPL", start="2025-03-14", job_name=job_name("trading_workflow_job")
    )
    assert result.success

    lineage = LineageStore(url)
    (validation,) = lineage.artifact_rows(  # the database is the session's: this run's row
        partition_key=KEY, type="validation", execution_id=result.run_id
    )
    run_id = validation["mlflow_run_id"]
    client = home_mlflow(tmp_path)
    paths = _artifact_paths(client, run_id)
    assert {
        "validation_report.json",
        "debug/market_data_sample.csv",
        "debug/indicators_sample.csv",
        "debug/market_data_info.json",
        "debug/market_data_quality_info.json",
        "debug/indicators_info.json",
        "debug/daily_chart_info.json",
        "debug/llm_analysis_info.json",
        "debug/trading_signal_info.json",
    } <= paths
    files = {p: Path(client.download_artifacts(run_id, p, str(tmp_path / "dl"))).read_bytes()
             for p in paths}  # fmt: skip

    # Samples: the first and last bars, the first and last indicator rows.
    bars = files["debug/market_data_sample.csv"].decode().splitlines()
    assert bars[0] == "row,date,open,high,low,close,volume" and len(bars) == 11
    assert bars[-1].split(",")[1].startswith("2025-03-14")
    indicators = files["debug/indicators_sample.csv"].decode().splitlines()
    assert "sma_20" in indicators[0] and len(indicators) == 11

    # Debug info: settings with secrets hidden, versions, timings, the step's summaries.
    info = json.loads(files["debug/indicators_info.json"])
    assert info["settings"]["debug"] is True
    for field in ("database_url", "openai_api_key", "viewer_token"):
        assert info["settings"][field] == "***"
    assert set(info["versions"]) == {"dagster", "mlflow", "pandas", "ibkr_assets"}
    assert all(info["versions"].values())
    assert info["timings"]["partition_ms"] >= 0 and info["timings"]["step_elapsed_ms"] >= 0
    assert info["step"]["partition_key"] == KEY and info["step"]["status"] == "success"
    assert info["outputs"]["object"]["sha256"]

    # SQL statements and each step's inputs and outputs at DEBUG.
    sql = [r.getMessage() for r in caplog.records if r.name == "ibkr_assets.sql"]
    assert any("INSERT INTO workflow_lineage" in line for line in sql)
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("indicators 2025-03-14|AAPL [success] inputs:" in m for m in logs)
    assert any("trading_signal 2025-03-14|AAPL [success] outputs:" in m for m in logs)

    # No secret anywhere: MLflow files, Python and Dagster logs, lineage and artifact rows.
    rows = json.dumps([lineage.lineage_rows(), lineage.artifact_rows()], default=str)
    shown = [
        caplog.text,
        "\n".join(logs),
        rows,
        *(b.decode(errors="replace") for b in files.values()),
    ]
    for secret in SECRETS:
        assert not any(secret in text for text in shown), secret


def test_without_debug_no_sql_is_logged(deployment, instance, tmp_path, caplog):
    import logging

    deployment()
    caplog.set_level(logging.DEBUG)
    assert run_partitions(instance, symbol="AAPL", start="2025-03-14").success
    assert not [r for r in caplog.records if r.name == "ibkr_assets.sql"]
    logs = [e.user_message for e in instance.all_logs(instance.get_runs()[0].run_id)]
    assert not any("[success] inputs:" in m for m in logs)


def test_mlflow_down_leaves_market_data_stored_and_says_the_reports_are_missing(
    deployment, instance, tmp_path, monkeypatch
):
    from ibkr_assets_tests.conftest import free_port

    deployment(DEBUG="true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # MLflow is down
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    result = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    assert result.success
    assert home_lineage(tmp_path).artifact_rows(type="validation") == []
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith("validation reports not stored in MLflow: ") for m in logs)
