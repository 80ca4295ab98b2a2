"""A single-run range gives the same results as one run per partition (rules analyst, simulator),
and fetches each symbol's market data once."""

from __future__ import annotations

import datetime as dt

import pytest

from ibkr_assets.definitions import build_definitions
from ibkr_assets.runs import run_workflow
from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import STRATEGY_ID, job_name, run_partitions, seed_mlflow_store

pytestmark = pytest.mark.slow  # a range run against per-partition runs

# NVDA buys on the 11th and the bracket fills on the 12th: orders, a fill and a position to compare
DAYS = ["2025-03-11", "2025-03-12"]
SYMBOLS = ["AAPL", "NVDA"]
SAME_BYTES = ("market_data", "indicators", "daily_chart", "weekly_chart", "trading_signal")


def _results(home) -> dict[tuple[str, str], dict]:
    rows = LineageStore(f"sqlite:///{home / 'lineage.db'}").lineage_rows()
    return {(r["partition_key"], r["step_name"]): r for r in rows}


def _instance(folder, monkeypatch):
    """A Dagster instance as ``IBKR_ASSETS_DAGSTER_EVENT_LOG=pooled`` configures one, events in
    batches: Dagster's own tables, a transaction per batch instead of per event."""
    import dagster as dg

    from ibkr_assets.dagster_home import write_instance_config

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    return dg.DagsterInstance.from_config(str(write_instance_config(folder, "pooled").parent))


@pytest.fixture
def fetch_calls(monkeypatch) -> list[tuple[str, dt.date, int]]:
    calls: list[tuple[str, dt.date, int]] = []
    real = SampleBarSource.fetch_bars

    def counting(self, symbol, end, bars):
        calls.append((symbol, end, bars))
        return real(self, symbol, end, bars)

    monkeypatch.setattr(SampleBarSource, "fetch_bars", counting)
    return calls


def test_single_run_range_matches_per_partition_runs(
    deployment, tmp_path, monkeypatch, fetch_calls
):

    monkeypatch.setenv("IBKR_ASSETS_HOME", str(tmp_path / "single"))
    seed_mlflow_store(tmp_path / "single")
    with _instance(tmp_path / "single_dagster", monkeypatch) as instance:
        outcomes = run_workflow(
            build_definitions(),
            instance,
            STRATEGY_ID,
            SYMBOLS,
            dt.date.fromisoformat(DAYS[0]),
            dt.date.fromisoformat(DAYS[-1]),
        )
        assert all(o.success for o in outcomes)
    assert sorted(c[0] for c in fetch_calls) == SYMBOLS  # one fetch per symbol for the whole range
    fetch_calls.clear()

    monkeypatch.setenv("IBKR_ASSETS_HOME", str(tmp_path / "per_partition"))
    seed_mlflow_store(tmp_path / "per_partition")
    with _instance(tmp_path / "per_partition_dagster", monkeypatch) as instance:
        for day in DAYS:  # in date order, as a user replaying the sessions would
            for symbol in SYMBOLS:
                assert run_partitions(
                    instance, symbol=symbol, start=day, job_name=job_name("trading_workflow_job")
                ).success
        portfolio = build_definitions().resolve_job_def(job_name("portfolio_job"))
        for day in DAYS:
            assert portfolio.execute_in_process(instance=instance, partition_key=day).success
    assert len(fetch_calls) == len(DAYS) * len(SYMBOLS)

    single, separate = _results(tmp_path / "single"), _results(tmp_path / "per_partition")
    assert set(single) == set(separate)
    last = single[(DAYS[-1], "portfolio_snapshot")]["output_data"]
    assert last["positions"], "the range must hold a position, or the book comparison proves little"
    for (key, step), row in single.items():
        other = separate[(key, step)]
        assert row["status"] == other["status"], (key, step)
        if step in SAME_BYTES:
            assert (
                row["output_data"]["object"]["sha256"] == other["output_data"]["object"]["sha256"]
            ), (key, step)
        if step == "llm_analysis":
            assert row["output_data"]["proposal"] == other["output_data"]["proposal"], key
        if step == "order":
            for field in ("decision", "outcome", "reason", "position_before"):
                assert row["output_data"][field] == other["output_data"][field], (key, field)
        if step == "portfolio_snapshot":
            for field in ("cash", "equity", "realized_pnl", "positions"):
                assert row["output_data"][field] == other["output_data"][field], (key, field)
