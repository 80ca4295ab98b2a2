"""Backfills from the command line, in a temporary DAGSTER_HOME: the project's own command
(one fast run plus the portfolio) and Dagster's daemon-driven job backfill (one run per partition)."""

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


def _backfill(
    tmp_path: Path, *args: str, progress: bool = False, **extra: str
) -> subprocess.CompletedProcess:
    quiet = [] if progress else ["--no-progress"]
    return run_command(
        [str(BIN / "ibkr-assets"), "backfill", *quiet, *args],
        cwd=tmp_path, env={**_env(tmp_path), **extra}, timeout=600,
    )  # fmt: skip


def test_project_backfill_runs_the_whole_graph_as_one_run_and_summarizes(tmp_path):
    done = _backfill(
        tmp_path, "--start", "2025-03-13", "--end", "2025-03-14", "--symbols", "AAPL,MSFT",
        progress=True,
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
    with no session: no signal, no order, and the summary still prints."""
    from ibkr_assets.settings import load_settings

    deployment()
    for start, end, holiday in (
        ("2025-04-17", "2025-04-21", "2025-04-18"),
        ("2025-01-08", "2025-01-10", "2025-01-09"),
    ):
        code, out, err = run_cli(
            "backfill", "--no-progress", "--start", start, "--end", end, "--symbols", "AAPL,MSFT"
        )
        assert code == 0, out + err
        assert "Partitions: 6 done, 0 failed (2 market closed)" in out
        signals = out.split("Signals: ", 1)[1].splitlines()[0]
        assert sum(int(n) for n in re.findall(r"[A-Z]+ (\d+)", signals)) == 4  # sessions only
        assert out.split("Orders: ", 1)[1].splitlines()[0].strip()
        assert "Portfolio " + end in out and "Traceback" not in out + err
        rows = LineageStore(load_settings().lineage_url).lineage_rows(
            step_name="order", partition_key=f"{holiday}|AAPL"
        )
        assert [r["status"] for r in rows] == ["market_closed"]


def test_project_backfill_refuses_bad_ranges_with_clear_messages(tmp_path):
    early = _backfill(tmp_path, "--start", "2001-01-02", "--end", "2001-01-05")
    assert early.returncode == 2 and "before the first partition" in early.stderr
    future = _backfill(tmp_path, "--start", "2025-03-13", "--end", "2999-01-01")
    assert future.returncode == 2 and "is in the future" in future.stderr
    unknown = _backfill(
        tmp_path, "--start", "2025-03-13", "--end", "2025-03-14", "--symbols", "GOOGG"
    )
    assert unknown.returncode == 2 and "not symbols of strategy 'momentum'" in unknown.stderr
    no_such = _backfill(
        tmp_path, "--strategy", "nope", "--start", "2025-03-13", "--end", "2025-03-14"
    )
    assert no_such.returncode == 2 and "'nope' is not in the strategies file" in no_such.stderr
    backwards = _backfill(tmp_path, "--start", "2025-03-14", "--end", "2025-03-13")
    assert backwards.returncode == 2 and "is before --start" in backwards.stderr
    from ibkr_assets.storage.symbol_registry import SymbolRegistry

    registry = SymbolRegistry(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    registry.create_schema()
    assert registry.get("GOOGG") is None  # refused symbols are never cached nor partitions
    lineage = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    lineage.create_schema()
    assert lineage.lineage_rows() == []


@pytest.mark.slow
def test_dagster_job_backfill_runs_one_run_per_partition_through_the_daemon(tmp_path):
    env = _env(tmp_path)
    with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
        add_symbols(instance, ["AAPL"])
    launched = run_command(
        [str(BIN / "dagster"), "job", "backfill", "-m", "ibkr_assets.definitions", "-j", job_name("trading_workflow_job"),
         "--partitions", "2025-03-13|AAPL,2025-03-14|AAPL", "--noprompt"],
        cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert "Launched backfill job" in launched.stdout + launched.stderr
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "ibkr_assets.definitions"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        statuses: list[str] = []
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            time.sleep(3)
            with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
                statuses = [r.status.value for r in instance.get_runs()]
            if len(statuses) == 2 and all(
                s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses
            ):
                break
        assert statuses == ["SUCCESS", "SUCCESS"]
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(
        step_name="trading_signal"
    )
    assert sorted(r["partition_key"] for r in rows) == ["2025-03-13|AAPL", "2025-03-14|AAPL"]
    assert len({r["execution_id"] for r in rows}) == 2  # one run per partition


def test_project_backfill_refuses_a_listed_symbol_that_does_not_resolve(tmp_path):
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text("strategies:\n  - {id: momentum, symbols: [AAPL, GOOGG]}\n")
    done = _backfill(
        tmp_path, "--start", "2025-03-13", "--end", "2025-03-14",
        IBKR_ASSETS_STRATEGIES_FILE=str(strategies),
    )  # fmt: skip
    assert done.returncode == 2
    assert "strategy 'momentum': unknown symbol 'GOOGG'" in done.stderr
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        assert "GOOGG" not in instance.get_dynamic_partitions("momentum_symbols")
    lineage = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    lineage.create_schema()
    assert lineage.lineage_rows() == []  # nothing ran
