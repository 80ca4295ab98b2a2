"""Every failure is recorded and nothing false is: a bad partition is blocked on its own, a step
that fails leaves an ``error`` row with its cause for each partition, and a ``success`` row is
written only once its object is in the store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.conftest import free_port
from ibkr_assets_tests.helpers import job_name, node, run_partitions

pytestmark = pytest.mark.slow  # whole-graph runs with faults

DAYS = ["2025-03-12", "2025-03-13", "2025-03-14"]


def _rows(tmp_path: Path, **filters) -> list[dict]:
    return LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(**filters)


def _write_csv(path: Path, *, bad_day: str | None = None, drop_volume: bool = False) -> None:
    """80 weekday bars up to 2025-03-14, drifting up; ``bad_day`` gets high < low."""
    day, lines = dt.date(2025, 3, 14), []
    while len(lines) < 80:
        if day.weekday() < 5:
            price = 100 + len(lines) * -0.2
            high, low = (
                (price - 1, price + 1) if day.isoformat() == bad_day else (price + 1, price - 1)
            )
            row = [day.isoformat(), price, high, low, price + 0.1]
            lines.append(",".join(map(str, row if drop_volume else [*row, 1_000_000])))
        day -= dt.timedelta(days=1)
    header = "Date,Open,High,Low,Close" + ("" if drop_volume else ",Volume")
    path.write_text(header + "\n" + "\n".join(reversed(lines)) + "\n")


def test_one_bad_symbol_and_one_bad_day_are_blocked_and_the_range_goes_on(
    deployment, instance, tmp_path
):
    csv = tmp_path / "csv"
    csv.mkdir()
    _write_csv(csv / "AAPL.csv", drop_volume=True)  # a broken file: every AAPL partition
    _write_csv(csv / "MSFT.csv", bad_day=DAYS[-1])  # one bad bar: only MSFT's last day
    deployment(
        strategy={
            "symbols": ["AAPL", "MSFT"],
            "market_data": {"source": "csv", "lookback_bars": 60},
        },
        CSV_DIR=str(csv),
    )
    from ibkr_assets.definitions import build_definitions
    from ibkr_assets_tests.helpers import add_symbols

    add_symbols(instance, ["AAPL", "MSFT"])
    job = build_definitions().resolve_job_def(job_name("trading_workflow_job"))
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{DAYS[0]}|AAPL",
            "dagster/asset_partition_range_end": f"{DAYS[-1]}|MSFT",
        },
    )
    assert result.success  # no step failed: each bad partition is blocked on its own

    order = {r["partition_key"]: r for r in _rows(tmp_path, step_name="order")}
    for day in DAYS[:-1]:
        assert order[f"{day}|MSFT"]["status"] == "success"
    assert order[f"{DAYS[-1]}|MSFT"]["status"] == "blocked"
    assert "quality gate failed: ohlc_consistent" in order[f"{DAYS[-1]}|MSFT"]["error"]
    market = {r["partition_key"]: r for r in _rows(tmp_path, step_name="market_data")}
    for day in DAYS:
        assert order[f"{day}|AAPL"]["status"] == "blocked"
        assert market[f"{day}|AAPL"]["status"] == "error"
        assert "Volume" in market[f"{day}|AAPL"]["error"]

    verdicts = {(e.check_name, e.partition): e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts[("ohlc_consistent", f"{DAYS[-1]}|MSFT")] is False
    assert verdicts[("ohlc_consistent", f"{DAYS[0]}|MSFT")] is True
    assert verdicts[("required_columns", f"{DAYS[0]}|AAPL")] is False
    assert ("ohlc_consistent", f"{DAYS[0]}|AAPL") not in verdicts  # no bars: nothing to judge

    # each partition's materialization tells its own story
    signals = {
        m.partition: m.metadata for m in result.asset_materializations_for_node(node("order"))
    }
    assert signals[f"{DAYS[-1]}|MSFT"]["status"].value == "blocked"
    assert signals[f"{DAYS[0]}|MSFT"]["status"].value == "success"
    assert signals[f"{DAYS[0]}|MSFT"]["reason"].value  # why an order was (not) placed
    assert "run_partitions" not in signals[f"{DAYS[0]}|MSFT"]  # totals are named run_*

    # the verifier agrees with a record that holds failed and blocked partitions
    from ibkr_assets.settings import load_settings
    from ibkr_assets.strategies.config import load_strategies
    from ibkr_assets.verification.run import verify

    (strategy,) = load_strategies()
    checked = verify(load_settings(), strategy, dt.date.fromisoformat(DAYS[0]),
                     dt.date.fromisoformat(DAYS[-1]), instance=instance)  # fmt: skip
    assert checked.ok, [str(d) for d in checked.discrepancies]


def test_an_object_store_that_is_down_leaves_error_rows_never_success(
    deployment, instance, tmp_path
):
    deployment(
        OBJECT_STORE="s3",
        S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    result = run_partitions(instance, symbol="AAPL", start=DAYS[0], end=DAYS[1])
    assert not result.success
    rows = _rows(tmp_path, step_name="market_data")
    assert {r["partition_key"] for r in rows} == {f"{d}|AAPL" for d in DAYS[:2]}
    assert {r["status"] for r in rows} == {"error"}
    assert all("connect" in r["error"].lower() for r in rows)
    assert all("object" not in r["output_data"] for r in rows)  # points at nothing


def test_a_step_that_raises_records_its_cause_for_every_partition(
    deployment, instance, tmp_path, monkeypatch
):
    deployment()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # MLflow is down
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    result = run_partitions(
        instance,
        symbol="AAPL",
        start=DAYS[0],
        end=DAYS[1],
        job_name=job_name("trading_workflow_job"),
    )
    assert not result.success
    for step in ("daily_chart", "weekly_chart"):
        rows = _rows(tmp_path, step_name=step)
        assert {r["partition_key"] for r in rows} == {f"{d}|AAPL" for d in DAYS[:2]}, step
        assert {r["status"] for r in rows} == {"error"}
        assert all("MLflow" in r["error"] and "unavailable" in r["error"] for r in rows), rows
    assert {r["status"] for r in _rows(tmp_path, step_name="indicators")} == {"success"}


def test_a_step_that_cannot_load_its_inputs_records_why(deployment, instance, tmp_path):
    """The stored market data is gone: indicators fails before its code runs, and still leaves an
    error row with the cause for its partition."""
    from ibkr_assets.definitions import build_definitions
    from ibkr_assets_tests.helpers import key

    deployment()
    assert run_partitions(instance, symbol="AAPL", start=DAYS[-1]).success
    for stored in (tmp_path / "home" / "objects" / "trading-data").rglob("*_sample*.json"):
        stored.unlink()  # the bytes an upstream row points at are lost
    job = build_definitions().resolve_job_def(job_name("market_data_job"))
    result = job.get_subset(asset_selection={key("indicators")}).execute_in_process(
        instance=instance, partition_key=f"{DAYS[-1]}|AAPL", raise_on_error=False
    )
    assert not result.success
    (row,) = _rows(tmp_path, step_name="indicators", execution_id=result.run_id)
    assert row["status"] == "error" and row["partition_key"] == f"{DAYS[-1]}|AAPL"
    assert row["error"].startswith("loading momentum/market_data: ")
    assert row["code_version"]
