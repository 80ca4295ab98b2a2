"""Re-executing a failed run (Dagster's "re-execute from failure") never duplicates lineage rows."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import CSV_5_BARS, add_symbols
from ibkr_assets_tests.reconstructable_jobs import market_data_job

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
KEY = "2025-03-14|AAPL"
TAGS = {
    "dagster/partition": KEY,
    "dagster/partition/date": "2025-03-14",
    "dagster/partition/symbol": "AAPL",
}


def test_reexecution_from_failure_updates_the_failed_row_in_place(deployment, instance, tmp_path):
    csv_dir = tmp_path / "csv"
    deployment(strategy=CSV_5_BARS, CSV_DIR=str(csv_dir))
    add_symbols(instance, ["AAPL"])
    job = dg.reconstructable(market_data_job)

    with dg.execute_job(job, instance=instance, tags=TAGS, run_config=IN_PROCESS) as first:
        assert not first.success  # the csv folder does not exist yet: the source is down
        first_run_id = first.run_id

    csv_dir.mkdir()
    lines = [f"2025-03-{d:02d},10,11,9,10,100" for d in (10, 11, 12, 13, 14)]
    (csv_dir / "AAPL.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n")
    options = dg.ReexecutionOptions.from_failure(first_run_id, instance)
    with dg.execute_job(
        job, instance=instance, reexecution_options=options, tags=TAGS, run_config=IN_PROCESS
    ) as second:
        assert second.success
        second_run_id = second.run_id

    store = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    (row,) = store.lineage_rows(partition_key=KEY, step_name="market_data")
    assert row["execution_id"] == first_run_id  # the root run: re-executions share it
    assert row["run_id"] == second_run_id
    assert row["status"] == "success"
    assert row["attempts"] == 2
    (previous,) = row["previous_attempts"]
    assert previous["status"] == "error"
    assert previous["run_id"] == first_run_id
    assert "csv source folder" in previous["error"] and "does not exist" in previous["error"]
    steps = {r["step_name"] for r in store.lineage_rows(execution_id=first_run_id)}
    assert steps == {"market_data", "market_data_quality", "indicators"}
