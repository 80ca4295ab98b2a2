"""Shared test helpers: build the project's definitions for a temporary deployment and run them.

Tests work on one strategy, ``momentum`` (the packaged strategies file's, and the id the
``deployment`` fixture gives a strategy it writes).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import dagster as dg

STRATEGY_ID = "momentum"
JOBS = {
    "market_data_job": f"{STRATEGY_ID}_market_data_job",
    "trading_workflow_job": f"{STRATEGY_ID}_workflow_job",
    "portfolio_job": f"{STRATEGY_ID}_portfolio_job",
}
# A strategy on CSV bars with a 5-bar window (the ``deployment`` fixture's ``strategy=``).
CSV_5_BARS = {"market_data": {"source": "csv", "lookback_bars": 5}}


@functools.cache
def _mlflow_template() -> Path:
    """An empty MLflow SQLite store set up by the project's own tracker, once per test process."""
    from ibkr_assets.tracking.mlflow_tracker import MlflowTracker

    folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    database = folder / "mlflow.db"
    tracker = MlflowTracker(f"sqlite:///{database}")
    tracker.client.search_experiments()  # creates and migrates the store
    tracker.client._tracking_client.store.engine.dispose()
    with closing(sqlite3.connect(database)) as connection:  # the whole store in the one file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return database


def seed_mlflow_store(home: Path) -> None:
    """Give a new deployment home a copy of an empty, migrated MLflow store.

    Creating and migrating a SQLite MLflow store costs seconds, and nearly every test makes a
    home; the first-run path itself is covered by the tests that leave the home unseeded (the
    demo command's, the tracker's own)."""
    database = home / "mlflow.db"
    if database.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_mlflow_template(), database)
    Path(f"{database}.ready").touch()


def home_lineage(tmp_path: Path):
    """The lineage store of the deployment home ``tmp_path / "home"`` (the fixture's)."""
    from ibkr_assets.storage.lineage_store import LineageStore

    return LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")


def home_mlflow(tmp_path: Path):
    """An MLflow client on the deployment home's tracking store."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")


def read_file_uri(uri: str) -> bytes:
    """The bytes a ``file://`` URI (the local object store's, MLflow's) points at."""
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path)).read_bytes()


def key(name: str) -> dg.AssetKey:
    """The asset key of ``name`` in the test strategy, e.g. ``momentum/indicators``."""
    return dg.AssetKey([STRATEGY_ID, name])


def job_name(short: str) -> str:
    """``"market_data_job"`` -> ``"momentum_market_data_job"`` (also accepts full names)."""
    return JOBS.get(short, short)


def run_partitions(
    instance: dg.DagsterInstance,
    *,
    symbol: str,
    start: str,
    end: str | None = None,
    job_name: str = "market_data_job",
    raise_on_error: bool = False,
) -> dg.ExecuteInProcessResult:
    """Run ``job_name`` for ``symbol`` over the dates ``start`` .. ``end`` in ONE run."""
    from ibkr_assets.definitions import build_definitions

    defs = build_definitions()
    add_symbols(instance, [symbol])
    job = defs.resolve_job_def(JOBS.get(job_name, job_name))
    if end is None or end == start:
        return job.execute_in_process(
            instance=instance, partition_key=f"{start}|{symbol}", raise_on_error=raise_on_error
        )
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{start}|{symbol}",
            "dagster/asset_partition_range_end": f"{end}|{symbol}",
        },
        raise_on_error=raise_on_error,
    )


def add_symbols(
    instance: dg.DagsterInstance, symbols: Iterable[str], strategy_id: str = STRATEGY_ID
) -> None:
    from ibkr_assets.partitions import symbols_partition_name

    name = symbols_partition_name(strategy_id)
    have = set(instance.get_dynamic_partitions(name))
    new = [s for s in symbols if s not in have]
    if new:
        instance.add_dynamic_partitions(name, new)


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every asset check evaluated in the run."""
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every step failure's message, including the messages of its causes."""
    messages = []
    for event in result.all_events:
        if not event.is_step_failure or not event.step_failure_data.error:
            continue
        error, parts = event.step_failure_data.error, []
        while error is not None:
            parts.append(error.message)
            error = error.cause
        messages.append("\n".join(parts))
    return messages


def node(name: str) -> str:
    """The op name of asset ``name`` in the test strategy, e.g. ``momentum__indicators``."""
    return f"{STRATEGY_ID}__{name}"


def run_command(args: list[str], *, cwd, env: dict, timeout: float):
    """``subprocess.run(..., capture_output=True, text=True)`` through files, not pipes: a helper
    process the command leaves behind (Dagster's log mirroring) must not hold the test open."""
    import subprocess
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(args, cwd=cwd, env=env, stdout=out, stderr=err, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, done.returncode, out.read(), err.read())
