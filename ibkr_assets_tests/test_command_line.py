"""The README's commands, run as a user runs them: the installed programs as subprocesses in a
temporary folder (the demo, ``dagster definitions validate``, ``dagster asset materialize``);
configuration errors and the backfill of a PostgreSQL strategy run ``ibkr-assets`` in this
process (``run_cli``), with the same environment variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests import cli_runner
from ibkr_assets_tests.helpers import add_symbols, run_command, seed_mlflow_store

pytestmark = pytest.mark.slow  # the installed commands as subprocesses

BIN = Path(sys.executable).parent
run_cli = cli_runner.run_cli  # a fixture


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("IBKR_ASSETS_", "DAGSTER_HOME"))
    }
    env.update(
        {"DAGSTER_HOME": str(tmp_path / "dagster_home"), "IBKR_ASSETS_HOME": str(tmp_path / "home")}
    )
    env.update(extra)
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return env


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    return run_command(args, cwd=tmp_path, env=_env(tmp_path, **extra), timeout=300)


def test_demo_materializes_and_prints_where_everything_is(tmp_path):
    done = _run([str(BIN / "ibkr-assets"), "demo", "--symbols", "AAPL", "--days", "2"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "momentum_workflow_job [AAPL]: run" in out
    assert "momentum_portfolio_job [portfolio]: run" in out
    assert "FAILED" not in out
    signal_lines = [line for line in out.splitlines() if "|AAPL " in line]
    assert len(signal_lines) == 2
    assert all(any(a in line for a in ("BUY", "SELL", "HOLD")) for line in signal_lines)
    assert f"{tmp_path / 'home' / 'objects'}" in out
    # 2 partitions x 8 steps + 2 portfolio snapshots; 2 x 7 artifacts (a validation report
    # each) + 2 portfolio artifacts
    assert "18 workflow_lineage rows and 16 artifacts rows" in out
    assert re.search(
        r"Portfolio \d{4}-\d\d-\d\d .*: equity [\d,.]+ = cash [\d,.]+ \+ positions", out
    )
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    objects = tmp_path / "home/objects"
    assert list((objects / "trading-data/momentum/AAPL/processed").glob("*_indicators.json"))
    assert list(
        (objects / "ml-experiments/momentum/trading_workflow_AAPL/charts").glob("*_daily.png")
    )


def test_demo_refuses_an_unknown_symbol_before_it_becomes_a_partition(
    run_cli, deployment, tmp_path
):
    deployment({"symbols": ["AAPL", "GOOGG"]})
    code, out, err = run_cli("demo", "--days", "1")
    assert code == 2
    assert "strategy 'momentum': unknown symbol 'GOOGG'" in err and "Traceback" not in out + err
    from ibkr_assets.storage.symbol_registry import SymbolRegistry

    registry = SymbolRegistry(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    registry.create_schema()
    assert registry.get("GOOGG") is None  # refused symbols are never cached nor partitions
    lineage = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    lineage.create_schema()
    assert lineage.lineage_rows() == []


def test_demo_reports_wrong_configuration_by_variable_name(run_cli, deployment):
    deployment(OBJECT_STORE="ftp")
    code, out, err = run_cli("demo")
    assert code == 2
    assert "IBKR_ASSETS_OBJECT_STORE='ftp'" in err and "Traceback" not in out + err


def test_demo_reports_a_wrong_strategies_file_by_strategy_and_field(run_cli, deployment):
    deployment({"symbols": ["AAPL"], "market_data": {"source": "yahoo"}})
    code, out, err = run_cli("demo")
    assert code == 2
    assert "strategy 'momentum': market_data.source:" in err
    assert "Traceback" not in out + err


def test_dagster_definitions_validate_is_clean(tmp_path):
    done = _run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "ibkr_assets.definitions"], tmp_path
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr


def test_dagster_cli_materializes_a_partition_and_a_single_run_range(tmp_path):
    """``dagster asset materialize`` as in the README, with the smallest selection (market data,
    one step): one partition, then a range of two days as one run."""
    import dagster as dg

    env = _env(tmp_path)
    seed_mlflow_store(tmp_path / "home")  # the demo's test covers a home's first run
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        add_symbols(instance, ["AAPL"])
    for how, target in (
        ("partition", "2025-03-14|AAPL"),
        ("partition-range", "2025-03-12|AAPL...2025-03-13|AAPL"),
    ):
        done = run_command(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "ibkr_assets.definitions",
             "--select", "momentum/market_data", f"--{how}", target],
            cwd=tmp_path, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "RUN_SUCCESS" in done.stderr
    objects = tmp_path / "home/objects/trading-data/momentum/AAPL"
    for day in ("12", "13", "14"):
        assert (objects / f"raw/2025-03-{day}_sample.json").is_file()
    assert not (objects / "processed").exists()  # indicators were not selected
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        runs = instance.get_runs()
    assert len(runs) == 2  # the range is one run


def test_backfill_of_a_postgres_strategy_reads_the_stock_data_table(
    run_cli, deployment, tmp_path, postgres_url
):
    """The CLI resolves symbols against the strategy's source with the URL from the environment."""
    import datetime as dt

    import sqlalchemy as sa

    from ibkr_assets.storage.tables import stock_data

    engine = sa.create_engine(postgres_url)
    days = [dt.date(2025, 3, d) for d in (6, 7, 10, 11, 12, 13, 14)]
    with engine.begin() as connection:
        stock_data.create(connection, checkfirst=True)
        connection.execute(sa.delete(stock_data).where(stock_data.c.symbol == "PGCLI"))
        connection.execute(
            sa.insert(stock_data),
            [
                {"symbol": "PGCLI", "date": d, "open": 10, "high": 11, "low": 9, "close": 10,
                 "volume": 1000}
                for d in days
            ],
        )  # fmt: skip
    deployment(
        {"id": "table", "symbols": ["PGCLI"],
         "market_data": {"source": "postgres", "lookback_bars": 5}},
        STOCK_DATA_URL=postgres_url,
    )  # fmt: skip
    try:
        code, out, err = run_cli(
            "backfill", "--no-progress", "--start", "2025-03-13", "--end", "2025-03-14"
        )
    finally:  # the database is shared by the session's tests
        with engine.begin() as connection:
            connection.execute(sa.delete(stock_data).where(stock_data.c.symbol == "PGCLI"))
        engine.dispose()
    assert code == 0, out[-2000:] + err[-2000:]
    assert "Partitions: 2 done, 0 failed" in out
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows(
        step_name="market_data"
    )
    assert {(r["strategy_id"], r["output_data"]["source"]) for r in rows} == {("table", "postgres")}
