"""What the IO manager reads within one run and across runs (real instance, local objects)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from ibkr_assets.resources import io_manager
from ibkr_assets.storage import layout
from ibkr_assets_tests.helpers import add_symbols, failure_messages, job_name, key, run_partitions

pytestmark = pytest.mark.slow  # whole-graph runs

DAY = "2025-03-14"
PARTITION = f"{DAY}|AAPL"


@pytest.fixture
def version_lookups(monkeypatch) -> list[dg.AssetKey]:
    """The asset keys whose versions were looked up in the event log, in order."""
    seen: list[dg.AssetKey] = []
    original = io_manager._latest_versions

    def spy(instance, store, asset_key, keys):
        seen.append(asset_key)
        return original(instance, store, asset_key, keys)

    monkeypatch.setattr(io_manager, "_latest_versions", spy)
    return seen


def _materialize_indicators_alone(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from ibkr_assets.definitions import build_definitions

    add_symbols(instance, ["AAPL"])
    job = build_definitions().resolve_job_def(job_name("market_data_job"))
    return job.execute_in_process(
        instance=instance,
        partition_key=PARTITION,
        asset_selection=[key("indicators")],
        raise_on_error=False,
    )


def test_a_step_reads_its_same_run_upstream_without_asking_the_event_log(
    deployment, instance, version_lookups
):
    deployment()
    assert run_partitions(instance, symbol="AAPL", start=DAY).success
    assert version_lookups == []  # indicators found market_data's versions in this run
    assert _materialize_indicators_alone(instance).success
    assert version_lookups == [key("market_data")]  # a later run asks the event log


def test_a_value_read_by_several_steps_of_a_run_is_decoded_once(deployment, instance, monkeypatch):
    deployment()
    decoded: Counter[str] = Counter()
    original = layout.decode

    def counting(asset, symbol, day, data):
        decoded[asset] += 1
        return original(asset, symbol, day, data)

    monkeypatch.setattr(layout, "decode", counting)
    result = run_partitions(
        instance, symbol="AAPL", start=DAY, job_name=job_name("trading_workflow_job")
    )
    assert result.success
    # charts, llm_analysis, trading_signal and order all take the indicators as input
    assert decoded["indicators"] == 1
    assert decoded["market_data"] == 1


def test_each_run_verifies_what_it_reads_again(deployment, instance, tmp_path):
    deployment()
    assert run_partitions(instance, symbol="AAPL", start=DAY).success
    raw = Path(tmp_path / "home" / "objects" / "trading-data" / "momentum" / "AAPL" / "raw")
    (version,) = raw.glob(f"{DAY}_sample.*.json")  # the immutable version the run recorded
    version.write_bytes(version.read_bytes().replace(b'"AAPL"', b'"AAPX"', 1))
    result = _materialize_indicators_alone(instance)
    assert not result.success
    assert any("changed after it was recorded" in m for m in failure_messages(result))
