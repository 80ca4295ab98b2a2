"""Backfills from the command line, in a temporary DAGSTER_HOME: the project's own command
(one fast run plus the portfolio) and Dagster's daemon-driven job backfill (one run per partition).

The installed programs run as subprocesses where that is what the test proves (the progress bar,
the daemon); refusals and summaries run ``ibkr-assets`` in this process (``run_cli``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests import cli_runner
from ibkr_assets_tests.helpers import add_symbols, job_name, run_command, seed_mlflow_store

pytestmark = pytest.mark.slow  # whole backfills and the daemon

BIN = Path(sys.executable).parent
run_cli = cli_runner.run_cli  # a fixture


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("IBKR_ASSETS_", "DAGSTER_HOME"))
    }
    env.update(
        {"DAGSTER_HOME": str(tmp_path / "dagster_home"), "IBKR_ASSETS_HOME": str(tmp_path / "home")}
    )
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    seed_mlflow_store(tmp_path / "home")
    return env


def test_project_backfill_runs_the_whole_graph_as_one_run_and_summarizes(tmp_path):
    """The installed program with its progress bar, as a user runs it."""
    done = run_command(
        [str(BIN / "ibkr-assets"), "backfill", "--start", "2025-03-13", "--end", "2025-03-14",
         "--symbols", "AAPL,MSFT"],
        cwd=tmp_path, env=_env(tmp_path), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    # the progress bar counts every materialization: 2 x 2 partitions x 7 assets + 2 portfolio
    assert re.search(r"\b30/30 \[", done.stderr), done.stderr[-500:]
    assert "2 days (2 sessions) x 2 symbols as one run" in out
    assert "momentum_workflow_job [AAPL, MSFT]: run" in out
    assert "momentum_portfolio_job [portfolio]: run" in out
    assert "Partitions: 4 done, 0 failed" in out
    assert "Portfolio 2025-03-14: equity" in out
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(
        step_name="order"
    )
    assert sorted(r["partition_key"] for r in rows) == [
        "2025-03-13|AAPL", "2025-03-13|MSFT", "2025-03-14|AAPL", "2025-03-14|MSFT",
    ]  # fmt: skip
    assert {r["metadata"]["mode"] for r in rows} == {"backtest"}  # history never reaches a broker
    assert len({r["execution_id"] for r in rows}) == 1  # one run for the whole range


def test_project_backfill_over_exchange_holidays_summarizes_them_as_market_closed(
    run_cli, deployment
):
    """Good Friday 2025-04-18 and the national day of mourning 2025-01-09 are weekday partitions
    with no session, between two sessions: no signal, no order, and the summary still prints."""
    from ibkr_assets.settings import load_settings

    deployment()
    for start, end, holiday in (
        ("2025-04-17", "2025-04-21", "2025-04-18"),
        ("2025-01-08", "2025-01-10", "2025-01-09"),
    ):
        code, out, err = run_cli(
            "backfill", "--no-progress", "--start", start, "--end", end, "--symbols", "AAPL"
        )
        assert code == 0, out + err
        assert "Partitions: 3 done, 0 failed (1 market closed)" in out
        signals = out.split("Signals: ", 1)[1].splitlines()[0]
        assert sum(int(n) for n in re.findall(r"[A-Z]+ (\d+)", signals)) == 2  # sessions only
        assert out.split("Orders: ", 1)[1].splitlines()[0].strip()
        assert "Portfolio " + end in out and "Traceback" not in out + err
        rows = LineageStore(load_settings().lineage_url).lineage_rows(
            step_name="order", partition_key=f"{holiday}|AAPL"
        )
        assert [r["status"] for r in rows] == ["market_closed"]


def test_project_backfill_refuses_bad_ranges_with_clear_messages(run_cli, deployment, tmp_path):
    deployment()
    for args, message in (
        (("--start", "2001-01-02", "--end", "2001-01-05"), "before the first partition"),
        (("--start", "2025-03-13", "--end", "2999-01-01"), "is in the future"),
        (("--start", "2025-03-13", "--end", "2025-03-14", "--symbols", "GOOGG"),
         "not symbols of strategy 'momentum'"),
        (("--strategy", "nope", "--start", "2025-03-13", "--end", "2025-03-14"),
         "'nope' is not in the strategies file"),
        (("--start", "2025-03-14", "--end", "2025-03-13"), "is before --start"),
    ):  # fmt: skip
        code, out, err = run_cli("backfill", "--no-progress", *args)
        assert code == 2, (args, out + err)
        assert message in err and "Traceback" not in out + err
    from ibkr_assets.storage.symbol_registry import SymbolRegistry

    registry = SymbolRegistry(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    registry.create_schema()
    assert registry.get("GOOGG") is None  # refused symbols are never cached nor partitions
    lineage = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    lineage.create_schema()
    assert lineage.lineage_rows() == []


def test_project_backfill_refuses_a_listed_symbol_that_does_not_resolve(
    run_cli, deployment, tmp_path
):
    deployment({"symbols": ["AAPL", "GOOGG"]})
    code, out, err = run_cli(
        "backfill", "--no-progress", "--start", "2025-03-13", "--end", "2025-03-14"
    )
    assert code == 2
    assert "strategy 'momentum': unknown symbol 'GOOGG'" in err and "Traceback" not in out + err
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert "GOOGG" not in instance.get_dynamic_partitions("momentum_symbols")
    lineage = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    lineage.create_schema()
    assert lineage.lineage_rows() == []  # nothing ran


def test_dagster_job_backfill_runs_one_run_per_partition_through_the_daemon(tmp_path):
    """Two partitions of the smallest per-symbol job (market data, then indicators, each step in
    its own process): the daemon dequeues and launches one run per partition. The daemon starts
    first, so its start-up overlaps the backfill command's."""
    env = _env(tmp_path)
    with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
        add_symbols(instance, ["AAPL"])
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "ibkr_assets.definitions"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        launched = run_command(
            [str(BIN / "dagster"), "job", "backfill", "-m", "ibkr_assets.definitions",
             "-j", job_name("market_data_job"), "--partitions", "2025-03-13|AAPL,2025-03-14|AAPL",
             "--noprompt"],
            cwd=tmp_path, env=env, timeout=300,
        )  # fmt: skip
        assert launched.returncode == 0, launched.stderr[-2000:]
        assert "Launched backfill job" in launched.stdout + launched.stderr
        statuses: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(1)
            with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
                runs = instance.get_runs()
            statuses = [r.status.value for r in runs]
            if len(statuses) == 2 and all(
                s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses
            ):
                break
        assert statuses == ["SUCCESS", "SUCCESS"]
        assert sorted(r.tags["dagster/partition"] for r in runs) == [
            "2025-03-13|AAPL", "2025-03-14|AAPL",
        ]  # fmt: skip
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(
        step_name="indicators"
    )
    assert sorted(r["partition_key"] for r in rows) == ["2025-03-13|AAPL", "2025-03-14|AAPL"]
    assert len({r["execution_id"] for r in rows}) == 2  # one run per partition
