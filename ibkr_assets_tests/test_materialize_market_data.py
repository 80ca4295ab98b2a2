"""Materialize real partitions into temporary instances and check what a user would look at."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import boto3
import pytest

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import (
    CSV_5_BARS,
    check_results,
    job_name,
    key,
    node,
    run_partitions,
)


def _store(tmp_path) -> LineageStore:
    return LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")


def _read_uri(uri: str) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).read_bytes()
    body = boto3.client("s3", endpoint_url=_read_uri.endpoint).get_object(
        Bucket=parsed.netloc, Key=parsed.path[1:]
    )
    return body["Body"].read()


@pytest.mark.slow
def test_single_partition_records_lineage_artifacts_and_objects(deployment, instance, tmp_path):
    deployment()
    result = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    assert result.success
    assert set(check_results(result).values()) == {True}
    evaluated_in = {
        e.step_key for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert evaluated_in == {node("market_data")}, "the gates run in the step that made the data"
    rows = _store(tmp_path).lineage_rows(partition_key="2025-03-14|AAPL")
    assert [r["step_name"] for r in sorted(rows, key=lambda r: r["step_number"])] == [
        "market_data",
        "market_data_quality",
        "indicators",
    ]
    market = next(r for r in rows if r["step_name"] == "market_data")
    assert market["status"] == "success"
    assert market["execution_id"] == result.run_id
    assert market["output_data"]["bars_count"] == 200
    assert market["output_data"]["end_date"] == "2025-03-14"
    assert market["output_data"]["synthetic"] is True
    # The lineage row points at the exact bytes in the object store.
    ref = market["output_data"]["object"]
    data = _read_uri(ref["uri"])
    assert hashlib.sha256(data).hexdigest() == ref["sha256"]
    assert "trading-data/momentum/AAPL/raw/2025-03-14_sample." in ref["uri"]
    assert (
        tmp_path / "home/objects/trading-data/momentum/AAPL/raw/2025-03-14_sample.json"
    ).is_file()
    assert (
        tmp_path / "home/objects/trading-data/momentum/AAPL/processed/2025-03-14_indicators.json"
    ).is_file()
    # An artifacts row of type market_data, and the same facts in Dagster's metadata.
    (artifact,) = _store(tmp_path).artifact_rows(
        type="market_data", partition_key="2025-03-14|AAPL"
    )
    assert artifact["sha256"] == ref["sha256"]
    materialization = result.asset_materializations_for_node(node("market_data"))[0]
    assert materialization.metadata["rows"].value == 200
    assert materialization.metadata["lineage_row_ids"].value == {"2025-03-14|AAPL": market["id"]}
    manifest = materialization.metadata["object_versions"].value  # one per step
    assert "/manifests/momentum/market_data/" in manifest["uri"]
    versions = json.loads(_read_uri(manifest["uri"]))
    assert hashlib.sha256(_read_uri(manifest["uri"])).hexdigest() == manifest["sha256"]
    assert versions["2025-03-14|AAPL"]["sha256"] == ref["sha256"]


def test_indicators_are_computed_from_the_recorded_market_data(deployment, instance, tmp_path):
    deployment()
    assert run_partitions(instance, symbol="MSFT", start="2025-03-14").success
    rows = {
        r["step_name"]: r for r in _store(tmp_path).lineage_rows(partition_key="2025-03-14|MSFT")
    }
    indicators = rows["indicators"]
    assert indicators["status"] == "success"
    assert (
        indicators["input_data"]["market_data"]["latest_price"]
        == rows["market_data"]["output_data"]["latest_price"]
    )
    latest = indicators["output_data"]["latest"]
    assert 0 <= latest["rsi_14"] <= 100
    stored = json.loads(_read_uri(indicators["output_data"]["object"]["uri"]))
    assert stored["status"] == "ok"
    assert "macd_hist" in stored["columns"]


@pytest.mark.slow
def test_partition_range_runs_as_one_run_and_records_every_partition(
    deployment, instance, tmp_path
):
    deployment(VIEWER_URL="http://viewer.example:8000/")
    result = run_partitions(instance, symbol="NVDA", start="2025-03-10", end="2025-03-14")
    assert result.success
    rows = _store(tmp_path).lineage_rows(execution_id=result.run_id)
    by_step: dict[str, set[str]] = {}
    for row in rows:
        by_step.setdefault(row["step_name"], set()).add(row["partition_key"])
    expected = {f"2025-03-{d}|NVDA" for d in (10, 11, 12, 13, 14)}
    assert by_step == {
        "market_data": expected,
        "market_data_quality": expected,
        "indicators": expected,
    }
    materializations = result.asset_materializations_for_node(node("indicators"))
    assert {m.partition for m in materializations} == expected
    # Each partition's event carries its own facts; the range's totals are named run_*.
    assert all("lineage_row_ids" not in m.metadata for m in materializations)
    assert {m.metadata["run_lineage_rows"].value for m in materializations} == {5}
    for m in materializations:
        assert (
            m.metadata["lineage_row"].value == f"{result.run_id}/momentum/indicators/{m.partition}"
        )
        assert m.metadata["status"].value == "success"
        assert m.metadata["object_uri"].value.endswith(".json")
        day = m.partition.split("|")[0]
        assert (
            m.metadata["viewer"].value
            == f"http://viewer.example:8000/decisions/momentum/{day}/NVDA"
        )
    closes = {m.partition: m.metadata["latest_price"].value
              for m in result.asset_materializations_for_node(node("market_data"))}  # fmt: skip
    assert len(set(closes.values())) == 5  # each day's own close, not the range's last
    for day in (10, 11, 12, 13, 14):
        assert (
            tmp_path / f"home/objects/trading-data/momentum/NVDA/raw/2025-03-{day}_sample.json"
        ).is_file()


def test_market_data_never_contains_a_bar_after_the_partition_date(deployment, instance, tmp_path):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    rows = "\n".join(f"2025-03-{d:02d},10,11,9,10,100" for d in (10, 11, 12, 13, 14, 17, 18))
    (csv_dir / "AAPL.csv").write_text("Date,Open,High,Low,Close,Volume\n" + rows + "\n")
    deployment(strategy=CSV_5_BARS, CSV_DIR=str(csv_dir))
    assert run_partitions(instance, symbol="AAPL", start="2025-03-13").success
    (row,) = _store(tmp_path).lineage_rows(partition_key="2025-03-13|AAPL", step_name="market_data")
    stored = json.loads(_read_uri(row["output_data"]["object"]["uri"]))
    assert max(r[0] for r in stored["rows"]) == "2025-03-13"
    assert row["output_data"]["source"] == "csv" and row["output_data"]["synthetic"] is False


def test_exchange_holiday_records_market_closed_and_nothing_downstream_acts(
    deployment, instance, tmp_path
):
    deployment()
    result = run_partitions(instance, symbol="AAPL", start="2025-07-04")
    assert result.success
    rows = {
        r["step_name"]: r for r in _store(tmp_path).lineage_rows(partition_key="2025-07-04|AAPL")
    }
    assert rows["market_data"]["status"] == "market_closed"
    assert "not a XNYS trading session" in rows["market_data"]["output_data"]["note"]
    assert rows["indicators"]["status"] == "market_closed"
    assert rows["indicators"]["output_data"]["rows"] == 0
    assert rows["market_data_quality"]["status"] == "market_closed"
    assert check_results(result) == {}  # nothing to check on a closed day: no gate fails


def _bad_csv(folder: Path) -> None:
    folder.mkdir()
    lines = [f"2025-03-{d:02d},10,11,9,10,100" for d in (10, 11, 12, 13, 14)]
    lines[2] = "2025-03-12,10,9,11,10,100"  # high < low
    (folder / "AAPL.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n")


def test_failed_quality_check_blocks_its_partition_downstream_and_says_why(
    deployment, instance, tmp_path
):
    _bad_csv(tmp_path / "csv")
    deployment(strategy=CSV_5_BARS, CSV_DIR=str(tmp_path / "csv"))
    result = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    assert result.success  # one bad partition never fails the step: it is blocked on its own
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["ohlc_consistent"].passed is False
    assert evaluations["ohlc_consistent"].partition == "2025-03-14|AAPL"
    assert "1 row(s)" in evaluations["ohlc_consistent"].description
    assert evaluations["positive_prices"].passed is True
    assert result.asset_materializations_for_node(node("market_data"))
    rows = {
        r["step_name"]: r for r in _store(tmp_path).lineage_rows(partition_key="2025-03-14|AAPL")
    }
    assert rows["indicators"]["status"] == "blocked"
    assert "quality gate failed: ohlc_consistent" in rows["indicators"]["error"]
    assert rows["market_data_quality"]["status"] == "error"
    assert "ohlc_consistent: 1 row(s)" in rows["market_data_quality"]["error"]


@pytest.mark.slow
def test_indicators_alone_refuse_data_that_failed_a_gate(deployment, instance, tmp_path):
    """Without the checks in the run, the indicators step still blocks the bad partition."""
    from ibkr_assets.definitions import build_definitions

    _bad_csv(tmp_path / "csv")
    deployment(strategy=CSV_5_BARS, CSV_DIR=str(tmp_path / "csv"))
    run_partitions(instance, symbol="AAPL", start="2025-03-14")
    defs = build_definitions()
    job = defs.resolve_job_def(job_name("market_data_job")).get_subset(
        asset_selection={key("indicators")}
    )
    result = job.execute_in_process(instance=instance, partition_key="2025-03-14|AAPL")
    assert result.success
    (row,) = _store(tmp_path).lineage_rows(
        partition_key="2025-03-14|AAPL", step_name="indicators", execution_id=result.run_id
    )
    assert row["status"] == "blocked"
    assert "quality gate failed: ohlc_consistent" in row["error"]


def test_unknown_symbol_is_blocked_with_a_clear_error_row(deployment, instance, tmp_path):
    deployment(strategy={"symbols": ["AAPL", "GOOGG"]})  # listed, but the source has no GOOGG
    result = run_partitions(instance, symbol="GOOGG", start="2025-03-14")
    assert result.success  # one symbol's data never fails the step: its partition is blocked
    rows = {
        r["step_name"]: r for r in _store(tmp_path).lineage_rows(partition_key="2025-03-14|GOOGG")
    }
    assert rows["market_data"]["status"] == "error"
    assert rows["market_data"]["error"].startswith("UnknownSymbolError: unknown symbol 'GOOGG'")
    assert rows["market_data"]["input_data"]["symbol"] == "GOOGG"
    assert rows["indicators"]["status"] == "blocked"
    assert "unknown symbol 'GOOGG'" in rows["indicators"]["error"]
    assert check_results(result) == {"required_columns": False}


@pytest.mark.slow
def test_rematerializing_keeps_the_old_rows_and_the_bytes_they_point_to(
    deployment, instance, tmp_path
):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    rows = [f"2025-03-{d:02d},10,11,9,10,100" for d in (10, 11, 12, 13, 14)]
    (csv_dir / "AAPL.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    deployment(strategy=CSV_5_BARS, CSV_DIR=str(csv_dir))
    first = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    rows[-1] = "2025-03-14,10,12,9,11.5,100"  # a corrected bar arrives
    (csv_dir / "AAPL.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    second = run_partitions(instance, symbol="AAPL", start="2025-03-14")
    market_rows = _store(tmp_path).lineage_rows(
        partition_key="2025-03-14|AAPL", step_name="market_data"
    )
    by_run = {r["execution_id"]: r for r in market_rows}
    assert set(by_run) == {first.run_id, second.run_id}
    old, new = by_run[first.run_id]["output_data"], by_run[second.run_id]["output_data"]
    assert old["latest_price"] == 10 and new["latest_price"] == 11.5
    assert json.loads(_read_uri(old["object"]["uri"]))["rows"][-1][4] == 10
    assert json.loads(_read_uri(new["object"]["uri"]))["rows"][-1][4] == 11.5


@pytest.mark.slow
def test_objects_go_to_s3_through_the_endpoint_url(deployment, instance, tmp_path, s3_endpoint):
    deployment(OBJECT_STORE="s3", S3_ENDPOINT_URL=s3_endpoint, S3_BUCKET="ibkr-assets-it")
    _read_uri.endpoint = s3_endpoint
    assert run_partitions(instance, symbol="AAPL", start="2025-03-14").success
    keys = {
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
            Bucket="ibkr-assets-it"
        )["Contents"]
    }
    assert "trading-data/momentum/AAPL/raw/2025-03-14_sample.json" in keys
    assert "trading-data/momentum/AAPL/processed/2025-03-14_indicators.json" in keys
    (row,) = _store(tmp_path).lineage_rows(partition_key="2025-03-14|AAPL", step_name="indicators")
    ref = row["output_data"]["object"]
    assert ref["uri"].startswith(
        "s3://ibkr-assets-it/trading-data/momentum/AAPL/processed/2025-03-14_indicators."
    )
    assert hashlib.sha256(_read_uri(ref["uri"])).hexdigest() == ref["sha256"]


@pytest.mark.slow
def test_lineage_goes_to_postgresql_by_url(deployment, instance, postgres_url):
    deployment(DATABASE_URL=postgres_url)
    result = run_partitions(instance, symbol="AAPL", start="2025-03-13", end="2025-03-14")
    assert result.success
    rows = LineageStore(postgres_url).lineage_rows(execution_id=result.run_id)
    assert len(rows) == 6
    assert {r["status"] for r in rows} == {"success"}


@pytest.mark.parametrize("bad", [{"OBJECT_STORE": "ftp"}, {"LLM_CONCURRENCY": "0"}])
def test_wrong_configuration_names_the_variable(deployment, bad):
    from ibkr_assets.settings import ConfigError, load_settings

    deployment(**bad)
    (name,) = bad
    with pytest.raises(ConfigError, match=f"IBKR_ASSETS_{name}="):
        load_settings()
